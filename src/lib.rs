//! tim-relay: Tencent Cloud IM `Group.CallbackAfterGroupInfoChanged` callbacks to a Kafka topic.

pub mod access;
pub mod admin;
pub mod auth;
pub mod callback;
pub mod config;
pub mod error;
pub mod event;
pub mod http;
pub mod log_limit;
pub mod metrics;
pub mod publish;
pub mod record;
pub mod relay;
pub mod spool;
pub mod tls;
