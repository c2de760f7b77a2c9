//! tim-relay: Tencent Cloud IM webhooks to Kafka, answered OK only once the event is safe.

pub mod access;
pub mod admin;
pub mod auth;
pub mod body;
pub mod callback;
pub mod commands;
pub mod config;
pub mod dead_letters;
pub mod decision;
pub mod error;
pub mod event;
pub mod http;
pub mod log_limit;
pub mod materialize;
pub mod metrics;
pub mod publish;
pub mod record;
pub mod relay;
pub mod spool;
pub mod state;
pub mod tls;
