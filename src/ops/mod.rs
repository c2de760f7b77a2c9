//! What operators see: the admin listener ([`admin`]: health, readiness, metrics, the dead
//! table), the metrics ([`metrics`]), rate-limited log lines ([`log_limit`]) and
//! `tim-relay dead list|replay` ([`dead_letters`]).

pub mod admin;
pub mod dead_letters;
pub mod log_limit;
pub mod metrics;
