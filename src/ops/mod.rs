//! What operators see: the admin listener ([`admin`]: health, readiness, metrics, the dead
//! table), the metrics ([`metrics`]), rate-limited log lines ([`log_limit`]) and
//! `tim-relay dead list|replay` ([`dead_letters`]); the admin listener of `materialize` and
//! `reconcile`, which each run one loop ([`loop_admin`]).

pub mod admin;
pub mod dead_letters;
pub mod log_limit;
pub mod loop_admin;
pub mod metrics;
