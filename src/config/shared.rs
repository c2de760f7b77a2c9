//! The variables the relay and the materializer share, read once for both.

use std::fmt;
use std::net::SocketAddr;

use super::{ConfigError, Env};

/// Kafka's address, the group events' topic, the admin listener and the log format: the same
/// for every role of the binary.
#[derive(Debug, Clone)]
pub struct Shared {
    /// `KAFKA_BOOTSTRAP_SERVERS`, comma separated.
    pub bootstrap_servers: String,
    /// `KAFKA_TOPIC`: the group state events; empty when that class is switched off (relay).
    pub topic: String,
    /// `RELAY_ADMIN_LISTEN`: `/healthz`, `/readyz` and `/metrics`, apart from the callbacks.
    pub admin_listen: SocketAddr,
    /// `RELAY_LOG_FORMAT`.
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// env_logger's human-readable lines.
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `message`.
    Json,
}

impl Shared {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let bootstrap_servers = env.string("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092");
        if bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::new("KAFKA_BOOTSTRAP_SERVERS", "must not be empty"));
        }
        Ok(Self {
            bootstrap_servers,
            topic: env.string("KAFKA_TOPIC", "tim.group-changes"),
            admin_listen: env.parse(
                "RELAY_ADMIN_LISTEN",
                SocketAddr::from(([0, 0, 0, 0], 9090)),
                "an address like 0.0.0.0:9090",
            )?,
            log_format: match env
                .string("RELAY_LOG_FORMAT", "text")
                .trim()
                .to_ascii_lowercase()
                .as_str()
            {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(ConfigError::new("RELAY_LOG_FORMAT", "must be `text` or `json`")),
            },
        })
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "admin_listen={} bootstrap={}",
            self.admin_listen, self.bootstrap_servers
        )
    }
}

/// Whether Kafka accepts `topic` as a topic name.
pub(crate) fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && topic != "."
        && topic != ".."
}

/// A topic for the start-up line: empty means its callbacks are answered OK and not published.
pub(super) fn shown_topic(topic: &str) -> &str {
    if topic.is_empty() {
        "off"
    } else {
        topic
    }
}
