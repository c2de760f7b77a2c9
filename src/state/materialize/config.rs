//! The materializer's configuration, from the environment like the relay's. It shares the
//! relay's Kafka, admin-listener and logging variables; the rest are its own.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{is_topic_name, property_var, ConfigError, Env, Shared};
use crate::state::fold::FoldRules;

/// Prefix of the variables passed to every Kafka client of the materializer verbatim
/// (`KAFKA_CLIENT_SECURITY_PROTOCOL=ssl` sets `security.protocol`).
pub const CLIENT_PREFIX: &str = "KAFKA_CLIENT_";

#[derive(Debug, Clone)]
pub struct StateConfig {
    /// `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`, `RELAY_ADMIN_LISTEN`, `RELAY_LOG_FORMAT`: read
    /// once, as the relay reads them.
    pub shared: Shared,
    /// `KAFKA_STATE_TOPIC`: the compacted topic of every group's current state.
    pub state_topic: String,
    pub replication_factor: i32,
    pub group_id: String,
    pub instance_id: String,
    pub rules: FoldRules,
    pub batch_events: usize,
    pub batch_wait: Duration,
    /// librdkafka properties from `KAFKA_CLIENT_*`, for every client.
    pub client_properties: BTreeMap<String, String>,
}

impl StateConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        Self::read(&Env::new(vars))
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let client_properties = env.properties(CLIENT_PREFIX);
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
                    property_var(CLIENT_PREFIX, name),
                    "is set by the materializer itself: it is what makes the fold exactly once",
                ));
            }
        }
        let shared = Shared::read(env)?;
        let state_topic = env.string("KAFKA_STATE_TOPIC", "tim.group-state");
        for (var, topic) in [
            ("KAFKA_TOPIC", &shared.topic),
            ("KAFKA_STATE_TOPIC", &state_topic),
        ] {
            if !is_topic_name(topic) {
                return Err(ConfigError::new(
                    var,
                    "must be a Kafka topic name (letters, digits, `.`, `_`, `-`; at most 249)",
                ));
            }
        }
        if shared.topic == state_topic {
            return Err(ConfigError::new(
                "KAFKA_STATE_TOPIC",
                "must differ from KAFKA_TOPIC",
            ));
        }
        let replication_factor: i32 = env.parse("KAFKA_STATE_REPLICATION_FACTOR", -1, "a whole number")?;
        if replication_factor == 0 || replication_factor < -1 {
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
        let group_id = env.string("RELAY_STATE_GROUP_ID", "tim-relay-state");
        if !name_ok(&group_id) {
            return Err(ConfigError::new(
                "RELAY_STATE_GROUP_ID",
                "must be letters, digits, `.`, `_` or `-`",
            ));
        }
        // Names this instance in the consumer group (static membership) and in its
        // transactional id; unique per instance and stable across its restarts.
        let instance_id = env
            .get("RELAY_STATE_INSTANCE_ID")
            .or_else(|| env.get("HOSTNAME"))
            .unwrap_or_else(|| "local".into());
        if !name_ok(&instance_id) {
            return Err(ConfigError::new(
                "RELAY_STATE_INSTANCE_ID",
                "must be letters, digits, `.`, `_` or `-` (default: HOSTNAME)",
            ));
        }
        let defaults = FoldRules::default();
        let max_members = env.positive("RELAY_STATE_MAX_MEMBERS", defaults.max_members as u64)? as usize;
        let recent_ids: usize = env.number("RELAY_STATE_RECENT_IDS", defaults.recent_ids)?;
        if recent_ids == 0 || recent_ids > 1024 {
            return Err(ConfigError::new(
                "RELAY_STATE_RECENT_IDS",
                "must be between 1 and 1024",
            ));
        }
        Ok(StateConfig {
            shared,
            state_topic,
            replication_factor,
            group_id,
            instance_id,
            rules: FoldRules {
                max_members,
                recent_ids,
            },
            batch_events: env.positive("RELAY_STATE_BATCH_EVENTS", 1000)? as usize,
            batch_wait: env.millis("RELAY_STATE_BATCH_MS", 50)?,
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
            self.shared.topic,
            self.state_topic,
            self.group_id,
            self.instance_id,
            self.rules.max_members,
            self.rules.recent_ids,
            self.batch_events,
            self.batch_wait.as_millis(),
            self.shared.bootstrap_servers
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
        assert_eq!(c.shared.topic, "tim.group-changes");
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
