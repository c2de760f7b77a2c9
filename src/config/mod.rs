//! Start-up configuration: read once from the environment, checked before anything binds.
//!
//! One section per part of the relay, each one struct whose fields say which variable they come
//! from, read, checked and described (for the start-up line) by the section itself:
//! [`Tencent`] (the app), [`Shared`] (what the relay and the materializer share: Kafka's
//! address, the events' topic, the admin listener, the log format), [`Http`] (the callback
//! listener and its bounds), [`Kafka`] (the relay's topics and producers), [`Spool`],
//! [`Decision`] (before-callbacks) and [`Replicas`] (`RELAY_PEERS`). [`Env`] reads each
//! variable with its default and names it in any error.
//!
//! Adding a variable: one field in its section with a doc comment naming it, one line in the
//! section's `read` (its default and, if any, its check), and one row in the README's table;
//! `tests.rs` fails when a variable the code reads has no row.

mod decision;
mod env;
mod http;
mod kafka;
mod replicas;
mod shared;
mod spool;
mod tencent;

use std::fmt;

pub use decision::{check_url, Decision};
pub use env::{property_var, Env};
pub use http::{AccessRules, Http, Limits, TlsPaths};
pub use kafka::{is_secret_property, Kafka, PRODUCER_PREFIX};
pub use replicas::Replicas;
pub(crate) use shared::is_topic_name;
pub use shared::{LogFormat, Shared};
pub use spool::Spool;
pub use tencent::Tencent;

/// A start-up configuration problem; its message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            var: var.into(),
            reason: reason.into(),
        }
    }
}

/// The relay's configuration, by section.
#[derive(Clone)]
pub struct Config {
    pub tencent: Tencent,
    pub shared: Shared,
    pub http: Http,
    pub kafka: Kafka,
    pub spool: Spool,
    pub decision: Decision,
    pub replicas: Replicas,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads configuration from the given variables (tests pass their own).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        Self::read(&Env::new(vars))
    }

    /// Reads every section from `env`, in the order a problem is reported.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let tencent = Tencent::read(env)?;
        let http = Http::read(env)?;
        let shared = Shared::read(env)?;
        if shared.admin_listen == http.listen && http.listen.port() != 0 {
            return Err(ConfigError::new(
                "RELAY_ADMIN_LISTEN",
                "must differ from RELAY_LISTEN: operator endpoints stay off the callback listener",
            ));
        }
        let kafka = Kafka::read(env, &shared.topic)?;
        let decision = Decision::read(env)?;
        let spool = Spool::read(env)?;
        let replicas = Replicas::read(env, kafka.ack_timeout)?;
        Ok(Self {
            tencent,
            shared,
            http,
            kafka,
            spool,
            decision,
            replicas,
        })
    }
}

/// The effective configuration for the start-up log line, each section as it describes itself,
/// secrets masked.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} topic={} {} {} {} {} {}",
            self.tencent,
            self.shared,
            shared::shown_topic(&self.shared.topic),
            self.kafka,
            self.http,
            self.decision,
            self.spool,
            self.replicas
        )
    }
}

/// Debug output is the masked Display form, so a stray `{:?}` cannot leak a secret.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests;
