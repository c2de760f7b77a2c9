//! One error for the callback boundary, mapped once to an HTTP status, Tencent's FAIL body,
//! a stable error code and a metric label.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;
use crate::callback::BodyError;
use crate::publish::PublishError;
use crate::relay::DeliveryError;
use crate::spool::SpoolError;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("caller address is not allowed")]
    AddressNotAllowed,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("CallbackCommand must be {expected}")]
    WrongCommand { expected: &'static str },
    #[error("body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("body could not be read: {0}")]
    BodyUnreadable(String),
    #[error("body was not received in time")]
    BodyTimeout,
    #[error("too many callbacks are waiting on Kafka; try again")]
    Busy,
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl From<DeliveryError> for RelayError {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::Kafka(e) => RelayError::Publish(e),
            DeliveryError::Spool(e) => RelayError::Spool(e),
            DeliveryError::Busy => RelayError::Busy,
        }
    }
}

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

impl RelayError {
    /// The `ErrorCode` in the FAIL answer: one per reason, documented in the README.
    pub fn code(&self) -> u32 {
        match self {
            RelayError::AddressNotAllowed => 4033,
            RelayError::Auth(AuthError::MissingAppId) => 4031,
            RelayError::Auth(AuthError::WrongAppId) => 4032,
            RelayError::Auth(AuthError::MissingSign) => 4011,
            RelayError::Auth(AuthError::BadRequestTime) => 4012,
            RelayError::Auth(AuthError::StaleRequestTime) => 4013,
            RelayError::Auth(AuthError::WrongSign) => 4014,
            RelayError::WrongCommand { .. } => 4001,
            RelayError::BodyTooLarge { .. } => 4131,
            RelayError::BodyUnreadable(_) => 4002,
            RelayError::BodyTimeout => 4081,
            RelayError::Busy => 5036,
            RelayError::Body(BodyError::NotJson(_)) => 4003,
            RelayError::Body(BodyError::NotAnObject) => 4004,
            RelayError::Body(BodyError::MissingGroupId) => 4005,
            RelayError::Body(BodyError::EmptyGroupId) => 4006,
            RelayError::Body(BodyError::NotAString(_)) => 4007,
            RelayError::Body(BodyError::BadEventTime) => 4008,
            RelayError::Body(BodyError::BadCustomList) => 4009,
            RelayError::Body(BodyError::TooManyCustomFields(_)) => 4021,
            RelayError::Body(BodyError::FieldTooLong(..)) => 4022,
            RelayError::Publish(PublishError::Timeout(_)) => 5031,
            RelayError::Publish(PublishError::QueueFull) => 5032,
            RelayError::Publish(PublishError::Rejected(_)) => 5033,
            RelayError::Spool(SpoolError::Full { .. }) => 5034,
            RelayError::Spool(SpoolError::Storage(_)) => 5035,
        }
    }

    /// The `outcome` label of `tim_relay_callbacks_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            RelayError::AddressNotAllowed => "rejected_address",
            RelayError::Auth(AuthError::MissingAppId | AuthError::WrongAppId) => "rejected_app_id",
            RelayError::Auth(_) => "rejected_sign",
            RelayError::WrongCommand { .. } => "rejected_command",
            RelayError::BodyTooLarge { .. } => "rejected_too_large",
            RelayError::BodyUnreadable(_) | RelayError::Body(_) => "rejected_body",
            RelayError::BodyTimeout => "rejected_slow_body",
            RelayError::Busy => "busy",
            RelayError::Publish(PublishError::Timeout(_)) => "kafka_timeout",
            RelayError::Publish(_) => "kafka_error",
            RelayError::Spool(SpoolError::Full { .. }) => "spool_full",
            RelayError::Spool(SpoolError::Storage(_)) => "spool_error",
        }
    }
}

impl ResponseError for RelayError {
    fn status_code(&self) -> StatusCode {
        match self {
            RelayError::AddressNotAllowed => StatusCode::FORBIDDEN,
            RelayError::Auth(AuthError::MissingAppId | AuthError::WrongAppId) => StatusCode::FORBIDDEN,
            RelayError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            RelayError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            RelayError::Auth(_) => StatusCode::UNAUTHORIZED,
            RelayError::WrongCommand { .. } | RelayError::BodyUnreadable(_) | RelayError::Body(_) => {
                StatusCode::BAD_REQUEST
            }
            RelayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RelayError::Publish(_) | RelayError::Spool(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        fail_response(self.status_code(), self.code(), &self.to_string())
    }
}
