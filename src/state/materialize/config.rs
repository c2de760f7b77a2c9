//! The materializer's configuration, from the environment like the relay's. It shares the
//! relay's Kafka, admin-listener and logging variables; the rest are its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, LogFormat};
use crate::state::fold::FoldRules;

/// Prefix of the variables passed to every Kafka client of the materializer verbatim
/// (`KAFKA_CLIENT_SECURITY_PROTOCOL=ssl` sets `security.protocol`).
pub const CLIENT_PREFIX: &str = "KAFKA_CLIENT_";

#[derive(Debug, Deserialize)]
struct Env {
    #[serde(default = "default_bootstrap")]
    kafka_bootstrap_servers: String,
    /// The group state events, as the relay writes them.
    #[serde(default = "default_topic")]
    kafka_topic: String,
    /// The compacted topic of every group's current state.
    #[serde(default = "default_state_topic")]
    kafka_state_topic: String,
    /// Replication factor of the state topic when the materializer creates it (-1: the
    /// broker's default).
    #[serde(default = "default_replication")]
    kafka_state_replication_factor: i32,
    #[serde(default = "default_group")]
    relay_state_group_id: String,
    /// Names this instance in the consumer group (static membership) and in its transactional
    /// id; must be unique per instance and stable across its restarts.
    relay_state_instance_id: Option<String>,
    hostname: Option<String>,
    #[serde(default = "default_max_members")]
    relay_state_max_members: usize,
    #[serde(default = "default_recent_ids")]
    relay_state_recent_ids: usize,
    /// Most events folded in one transaction.
    #[serde(default = "default_batch")]
    relay_state_batch_events: usize,
    /// Longest a transaction waits for more events once it has one.
    #[serde(default = "default_batch_ms")]
    relay_state_batch_ms: u64,
    #[serde(default = "default_admin_listen")]
    relay_admin_listen: String,
    #[serde(default = "default_log_format")]
    relay_log_format: String,
}

fn default_bootstrap() -> String {
    "127.0.0.1:9092".into()
}
fn default_topic() -> String {
    "tim.group-changes".into()
}
fn default_state_topic() -> String {
    "tim.group-state".into()
}
fn default_replication() -> i32 {
    -1
}
fn default_group() -> String {
    "tim-relay-state".into()
}
fn default_max_members() -> usize {
    FoldRules::default().max_members
}
fn default_recent_ids() -> usize {
    FoldRules::default().recent_ids
}
fn default_batch() -> usize {
    1000
}
fn default_batch_ms() -> u64 {
    50
}
fn default_admin_listen() -> String {
    "0.0.0.0:9090".into()
}
fn default_log_format() -> String {
    "text".into()
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    pub state_topic: String,
    pub replication_factor: i32,
    pub group_id: String,
    pub instance_id: String,
    pub rules: FoldRules,
    pub batch_events: usize,
    pub batch_wait: Duration,
    pub admin_listen: SocketAddr,
    pub log_format: LogFormat,
    /// librdkafka properties from `KAFKA_CLIENT_*`, for every client.
    pub client_properties: BTreeMap<String, String>,
}

impl StateConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let env: Env = envy::from_iter(vars.iter().cloned()).map_err(crate::config::envy_error)?;
        let client_properties = vars
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(CLIENT_PREFIX)?;
                Some((name.to_ascii_lowercase().replace('_', "."), v.clone()))
            })
            .collect::<BTreeMap<_, _>>();
        for name in client_properties.keys() {
            if matches!(
                name.as_str(),
                "transactional.id"
                    | "isolation.level"
                    | "enable.auto.commit"
                    | "group.id"
                    | "group.instance.id"
            ) {
                return Err(ConfigError::new(
                    format!("{CLIENT_PREFIX}{}", name.replace('.', "_").to_ascii_uppercase()),
                    "is set by the materializer itself: it is what makes the fold exactly once",
                ));
            }
        }
        if env.kafka_bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::new("KAFKA_BOOTSTRAP_SERVERS", "must not be empty"));
        }
        for (var, topic) in [
            ("KAFKA_TOPIC", &env.kafka_topic),
            ("KAFKA_STATE_TOPIC", &env.kafka_state_topic),
        ] {
            if !crate::config::is_topic_name(topic) {
                return Err(ConfigError::new(
                    var,
                    "must be a Kafka topic name (letters, digits, `.`, `_`, `-`; at most 249)",
                ));
            }
        }
        if env.kafka_topic == env.kafka_state_topic {
            return Err(ConfigError::new(
                "KAFKA_STATE_TOPIC",
                "must differ from KAFKA_TOPIC",
            ));
        }
        if env.kafka_state_replication_factor == 0 || env.kafka_state_replication_factor < -1 {
            return Err(ConfigError::new(
                "KAFKA_STATE_REPLICATION_FACTOR",
                "must be -1 (the broker's default) or at least 1",
            ));
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if !name_ok(&env.relay_state_group_id) {
            return Err(ConfigError::new(
                "RELAY_STATE_GROUP_ID",
                "must be letters, digits, `.`, `_` or `-`",
            ));
        }
        let instance_id = env
            .relay_state_instance_id
            .or(env.hostname)
            .unwrap_or_else(|| "local".into());
        if !name_ok(&instance_id) {
            return Err(ConfigError::new(
                "RELAY_STATE_INSTANCE_ID",
                "must be letters, digits, `.`, `_` or `-` (default: HOSTNAME)",
            ));
        }
        if env.relay_state_max_members == 0 {
            return Err(ConfigError::new(
                "RELAY_STATE_MAX_MEMBERS",
                "must be greater than 0",
            ));
        }
        if env.relay_state_recent_ids == 0 || env.relay_state_recent_ids > 1024 {
            return Err(ConfigError::new(
                "RELAY_STATE_RECENT_IDS",
                "must be between 1 and 1024",
            ));
        }
        if env.relay_state_batch_events == 0 {
            return Err(ConfigError::new(
                "RELAY_STATE_BATCH_EVENTS",
                "must be greater than 0",
            ));
        }
        let admin_listen = env.relay_admin_listen.parse().map_err(|_| {
            ConfigError::new(
                "RELAY_ADMIN_LISTEN",
                format!("`{}` is not an address like 0.0.0.0:9090", env.relay_admin_listen),
            )
        })?;
        let log_format = match env.relay_log_format.trim().to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(ConfigError::new("RELAY_LOG_FORMAT", "must be `text` or `json`")),
        };
        Ok(StateConfig {
            bootstrap_servers: env.kafka_bootstrap_servers,
            topic: env.kafka_topic,
            state_topic: env.kafka_state_topic,
            replication_factor: env.kafka_state_replication_factor,
            group_id: env.relay_state_group_id,
            instance_id,
            rules: FoldRules {
                max_members: env.relay_state_max_members,
                recent_ids: env.relay_state_recent_ids,
            },
            batch_events: env.relay_state_batch_events,
            batch_wait: Duration::from_millis(env.relay_state_batch_ms),
            admin_listen,
            log_format,
            client_properties,
        })
    }

    /// The id of this instance's transactions: one per instance, stable across restarts, so a
    /// restarted instance fences its former self and aborts what it left open.
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.group_id, self.instance_id)
    }
}

impl std::fmt::Display for StateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "events {} -> state {} (group {}, instance {}), max members {}, recent ids {}, \
             batch {} events / {} ms, Kafka {}",
            self.topic,
            self.state_topic,
            self.group_id,
            self.instance_id,
            self.rules.max_members,
            self.rules.recent_ids,
            self.batch_events,
            self.batch_wait.as_millis(),
            self.bootstrap_servers
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_variable() {
        let c = StateConfig::from_vars(vars(&[("HOSTNAME", "state-0")])).unwrap();
        assert_eq!(c.topic, "tim.group-changes");
        assert_eq!(c.state_topic, "tim.group-state");
        assert_eq!(c.transactional_id(), "tim-relay-state-state-0");
        assert_eq!(c.rules, FoldRules::default());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (list, var) in [
            (vec![("KAFKA_STATE_TOPIC", "a b")], "KAFKA_STATE_TOPIC"),
            (
                vec![("KAFKA_STATE_TOPIC", "tim.group-changes")],
                "KAFKA_STATE_TOPIC",
            ),
            (vec![("RELAY_STATE_MAX_MEMBERS", "0")], "RELAY_STATE_MAX_MEMBERS"),
            (vec![("RELAY_STATE_MAX_MEMBERS", "x")], "RELAY_STATE_MAX_MEMBERS"),
            (
                vec![("RELAY_STATE_INSTANCE_ID", "a/b")],
                "RELAY_STATE_INSTANCE_ID",
            ),
            (
                vec![("KAFKA_CLIENT_ISOLATION_LEVEL", "read_uncommitted")],
                "KAFKA_CLIENT_ISOLATION_LEVEL",
            ),
            (
                vec![("KAFKA_STATE_REPLICATION_FACTOR", "0")],
                "KAFKA_STATE_REPLICATION_FACTOR",
            ),
        ] {
            let err = StateConfig::from_vars(vars(&list)).unwrap_err();
            assert_eq!(err.var, var, "{list:?}: {err}");
        }
    }
}
