//! Tencent's answer bodies, which every part that answers Tencent may use: the exact OK body and
//! the FAIL answer (`{"ActionStatus","ErrorInfo","ErrorCode"}`).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

/// Tencent's answer body, `{"ActionStatus","ErrorInfo","ErrorCode"}`.
#[derive(Debug, Serialize)]
pub struct Answer<'a> {
    #[serde(rename = "ActionStatus")]
    pub action_status: &'a str,
    #[serde(rename = "ErrorInfo")]
    pub error_info: &'a str,
    #[serde(rename = "ErrorCode")]
    pub error_code: u32,
}

/// The exact OK answer Tencent expects.
pub const OK_BODY: &str = r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}"#;

pub fn fail_response(status: StatusCode, code: u32, reason: &str) -> HttpResponse {
    HttpResponse::build(status).json(Answer {
        action_status: "FAIL",
        error_info: reason,
        error_code: code,
    })
}
