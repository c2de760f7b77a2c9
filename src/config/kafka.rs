//! Kafka for the relay: the topics of the other callback classes, how long a callback waits for
//! the broker, and the producers' librdkafka properties.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::env::property_var;
use super::shared::{is_topic_name, shown_topic};
use super::{ConfigError, Env};

/// Prefix of the variables that are passed through to librdkafka verbatim.
pub const PRODUCER_PREFIX: &str = "KAFKA_PRODUCER_";

/// The relay's producers and topics (`KAFKA_BOOTSTRAP_SERVERS` and `KAFKA_TOPIC` are in
/// [`super::Shared`]).
#[derive(Clone)]
pub struct Kafka {
    /// `KAFKA_MESSAGES_TOPIC`: the group message events; empty when switched off.
    pub messages_topic: String,
    /// `KAFKA_OTHER_TOPIC`: every other after/notify callback; empty when switched off.
    pub other_topic: String,
    /// `RELAY_ACK_TIMEOUT_MS`: how long a callback waits for the broker's acknowledgement.
    pub ack_timeout: Duration,
    /// librdkafka properties from `KAFKA_PRODUCER_*`, keyed by property name.
    pub producer_properties: BTreeMap<String, String>,
}

impl Kafka {
    /// Reads the section; `topic` is `KAFKA_TOPIC`, checked here with the other two.
    pub fn read(env: &Env, topic: &str) -> Result<Self, ConfigError> {
        let messages_topic = env.string("KAFKA_MESSAGES_TOPIC", "tim.group-messages");
        let other_topic = env.string("KAFKA_OTHER_TOPIC", "tim.webhooks");
        for (var, topic) in [
            ("KAFKA_TOPIC", topic),
            ("KAFKA_MESSAGES_TOPIC", &messages_topic),
            ("KAFKA_OTHER_TOPIC", &other_topic),
        ] {
            if !topic.is_empty() && !is_topic_name(topic) {
                return Err(ConfigError::new(
                    var,
                    "must be a Kafka topic name (letters, digits, `.`, `_`, `-`; at most 249), \
                     or empty to switch its callbacks off",
                ));
            }
        }
        let ack_timeout = env.millis("RELAY_ACK_TIMEOUT_MS", 1500)?;
        if !(1..2000).contains(&ack_timeout.as_millis()) {
            return Err(ConfigError::new(
                "RELAY_ACK_TIMEOUT_MS",
                "must be between 1 and 1999: Tencent waits 2000 ms for the answer",
            ));
        }
        let producer_properties = env.properties(PRODUCER_PREFIX);
        guard_producer_properties(&producer_properties, ack_timeout)?;
        Ok(Self {
            messages_topic,
            other_topic,
            ack_timeout,
            producer_properties,
        })
    }

    /// The environment variable a librdkafka property came from.
    pub fn producer_var(property: &str) -> String {
        property_var(PRODUCER_PREFIX, property)
    }
}

impl fmt::Display for Kafka {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ack_timeout={}ms messages_topic={} other_topic={}",
            self.ack_timeout.as_millis(),
            shown_topic(&self.messages_topic),
            shown_topic(&self.other_topic)
        )?;
        for (k, v) in &self.producer_properties {
            let shown = if is_secret_property(k) { "***" } else { v.as_str() };
            write!(f, " {k}={shown}")?;
        }
        Ok(())
    }
}

/// Refuses `KAFKA_PRODUCER_*` overrides that would let an OK answer mean less than
/// "acknowledged by every in-sync replica, or spooled", or would break one group's order.
fn guard_producer_properties(
    props: &BTreeMap<String, String>,
    ack_timeout: Duration,
) -> Result<(), ConfigError> {
    for (name, value) in props {
        let v = value.trim().to_ascii_lowercase();
        let refused = match name.as_str() {
            "acks" | "request.required.acks" => (v != "all" && v != "-1")
                .then_some("must stay `all`: OK means every in-sync replica has the event"),
            "enable.idempotence" => (!matches!(v.as_str(), "true" | "1"))
                .then_some("must stay true: retries must not duplicate or reorder a group's events"),
            "message.timeout.ms" | "delivery.timeout.ms" => match v.parse::<u64>() {
                Ok(ms) if ms > 0 && ms <= ack_timeout.as_millis() as u64 => None,
                _ => Some(
                    "must be between 1 and RELAY_ACK_TIMEOUT_MS: a record must not reach Kafka \
                     after the relay spooled a copy of it",
                ),
            },
            "transactional.id" => Some("is not supported: the relay's producer is not transactional"),
            "partitioner" => matches!(v.as_str(), "random")
                .then_some("must keep one GroupId in one partition (not `random`)"),
            "max.in.flight.requests.per.connection" | "max.in.flight" => match v.parse::<u64>() {
                Ok(n) if (1..=5).contains(&n) => None,
                _ => Some("must be 1 to 5: the idempotent producer keeps order only up to 5"),
            },
            "retries" | "message.send.max.retries" => {
                (v == "0").then_some("must not be 0: a transient broker error would turn into a spool write")
            }
            _ => None,
        };
        if let Some(reason) = refused {
            return Err(ConfigError::new(property_var(PRODUCER_PREFIX, name), reason));
        }
    }
    Ok(())
}

/// Whether a producer property holds a secret that must never be printed.
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "sasl", "key", "token", "credential"]
        .iter()
        .any(|s| name.contains(s))
}
