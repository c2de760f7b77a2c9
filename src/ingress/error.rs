//! One error for the callback boundary, mapped once, in one table, to an HTTP status, the
//! `ErrorCode` of Tencent's FAIL body, and the `outcome` label of the metrics.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::answer::fail_response;
use crate::delivery::publish::PublishError;
use crate::delivery::spool::SpoolError;
use crate::delivery::DeliveryError;
use crate::ingress::auth::AuthError;
use crate::ingress::body::BodyError;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("caller address is not allowed")]
    AddressNotAllowed,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("CallbackCommand is missing from the query")]
    MissingCommand,
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

impl RelayError {
    /// The one table: HTTP status, `ErrorCode` (documented in the README), outcome label.
    fn mapping(&self) -> (StatusCode, u32, &'static str) {
        use BodyError as B;
        use StatusCode as S;
        match self {
            RelayError::AddressNotAllowed => (S::FORBIDDEN, 4033, "rejected_address"),
            RelayError::Auth(AuthError::MissingAppId) => (S::FORBIDDEN, 4031, "rejected_app_id"),
            RelayError::Auth(AuthError::WrongAppId) => (S::FORBIDDEN, 4032, "rejected_app_id"),
            RelayError::Auth(AuthError::MissingSign) => (S::UNAUTHORIZED, 4011, "rejected_sign"),
            RelayError::Auth(AuthError::BadRequestTime) => (S::UNAUTHORIZED, 4012, "rejected_sign"),
            RelayError::Auth(AuthError::StaleRequestTime) => (S::UNAUTHORIZED, 4013, "rejected_sign"),
            RelayError::Auth(AuthError::WrongSign) => (S::UNAUTHORIZED, 4014, "rejected_sign"),
            RelayError::MissingCommand => (S::BAD_REQUEST, 4001, "rejected_command"),
            RelayError::Body(B::CommandMismatch) => (S::BAD_REQUEST, 4001, "rejected_command"),
            RelayError::BodyTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, 4131, "rejected_too_large"),
            RelayError::BodyUnreadable(_) => (S::BAD_REQUEST, 4002, "rejected_body"),
            RelayError::BodyTimeout => (S::REQUEST_TIMEOUT, 4081, "rejected_slow_body"),
            RelayError::Body(B::NotJson(_)) => (S::BAD_REQUEST, 4003, "rejected_body"),
            RelayError::Body(B::NotAnObject) => (S::BAD_REQUEST, 4004, "rejected_body"),
            RelayError::Body(B::Missing(_)) => (S::BAD_REQUEST, 4005, "rejected_body"),
            RelayError::Body(B::Empty(_)) => (S::BAD_REQUEST, 4006, "rejected_body"),
            RelayError::Body(B::NotAString(_)) => (S::BAD_REQUEST, 4007, "rejected_body"),
            RelayError::Body(B::BadTime(_)) => (S::BAD_REQUEST, 4008, "rejected_body"),
            RelayError::Body(B::BadShape(..)) => (S::BAD_REQUEST, 4009, "rejected_body"),
            RelayError::Body(B::TooManyEntries(..)) => (S::BAD_REQUEST, 4021, "rejected_body"),
            RelayError::Body(B::TooLong(..)) => (S::BAD_REQUEST, 4022, "rejected_body"),
            RelayError::Busy => (S::SERVICE_UNAVAILABLE, 5036, "busy"),
            RelayError::Publish(PublishError::Timeout(_)) => (S::SERVICE_UNAVAILABLE, 5031, "kafka_timeout"),
            RelayError::Publish(PublishError::QueueFull) => (S::SERVICE_UNAVAILABLE, 5032, "kafka_error"),
            RelayError::Publish(PublishError::Rejected(_)) => (S::SERVICE_UNAVAILABLE, 5033, "kafka_error"),
            RelayError::Spool(SpoolError::Full { .. }) => (S::SERVICE_UNAVAILABLE, 5034, "spool_full"),
            RelayError::Spool(SpoolError::FileFull { .. }) => (S::SERVICE_UNAVAILABLE, 5034, "spool_full"),
            RelayError::Spool(SpoolError::Storage(_) | SpoolError::InUse(_)) => {
                (S::SERVICE_UNAVAILABLE, 5035, "spool_error")
            }
            RelayError::Spool(SpoolError::DiskFull(_)) => (S::SERVICE_UNAVAILABLE, 5037, "spool_disk_full"),
        }
    }

    /// The `ErrorCode` in the FAIL answer.
    pub fn code(&self) -> u32 {
        self.mapping().1
    }

    /// The `outcome` label of `tim_relay_callbacks_total`.
    pub fn outcome(&self) -> &'static str {
        self.mapping().2
    }
}

impl ResponseError for RelayError {
    fn status_code(&self) -> StatusCode {
        self.mapping().0
    }

    fn error_response(&self) -> HttpResponse {
        fail_response(self.status_code(), self.code(), &self.to_string())
    }
}
