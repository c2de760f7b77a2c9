//! The Kafka side: the idempotent producer, awaited deliveries, error classes, broker reachability.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use rdkafka::client::ClientContext;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{BaseProducer, DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::util::Timeout;

use crate::config::{Config, ConfigError};
use crate::delivery::record::Record;
pub use producers::{BrokerWatch, WatchContext};
use producers::{Producer_, Slot};
use refusal::delivery_result;
pub use refusal::PublishError;

mod producers;
mod refusal;

/// Publishes records to the configured topic through two idempotent producers: the direct one,
/// whose records the callbacks wait for (and give up on at the ack timeout), and the forwarding
/// one, which moves spooled records and never gives up on a record (see docs/delivery.md).
pub struct Publisher {
    direct: Slot,
    forwarding: Slot,
    watch: Arc<BrokerWatch>,
    /// `KAFKA_TOPIC`: where records without a topic of their own go (spooled by a release that
    /// had only this topic).
    default_topic: String,
    /// The configured topics: readiness asks the broker about each, the stuck-producer probe
    /// about the first.
    topics: Vec<String>,
    ack_timeout: Duration,
    late_deliveries: IntCounter,
}

/// A record handed to librdkafka, not yet acknowledged.
pub struct Pending(DeliveryFuture);

impl Pending {
    /// The broker's answer for this record. Waits as long as the producer holds the record;
    /// cancel-safe, so the caller can bound each wait and ask again.
    pub async fn outcome(&mut self) -> Result<(), PublishError> {
        delivery_result((&mut self.0).await)
    }
}

/// The producer settings the relay's promise rests on, set after the operator's
/// `KAFKA_PRODUCER_*` properties so that none of those can weaken them.
const ALWAYS: [(&str, &str); 2] = [("acks", "all"), ("enable.idempotence", "true")];

/// Batching defaults, each under all of its librdkafka names: (names, direct, forwarding).
/// The direct producer sends each record at once (`linger.ms=0`) with one produce request in
/// flight per broker, so what arrives while a request is out goes in the next one: no floor
/// under an answer at light load, batches that grow with the load (franz-go's way). The
/// forwarding producer moves the spool in bulk, where lingering and five requests in flight
/// keep the drain fast. Measured in docs/performance.md (issue 12).
const BATCHING: [(&[&str], &str, &str); 2] = [
    (&["linger.ms", "queue.buffering.max.ms"], "0", "2"),
    (
        &["max.in.flight.requests.per.connection", "max.in.flight"],
        "1",
        "5",
    ),
];

impl Publisher {
    /// Creates both producers. librdkafka checks every property here, so a bad
    /// `KAFKA_PRODUCER_*` value stops start-up with the variable named. `late_deliveries`
    /// counts records acknowledged after their caller stopped waiting (known duplicates).
    pub fn new(config: &Config, late_deliveries: IntCounter) -> Result<Self, ConfigError> {
        let mut direct = ClientConfig::new();
        direct
            .set("bootstrap.servers", &config.shared.bootstrap_servers)
            .set("client.id", "tim-relay")
            // A delivery librdkafka gives up on at the deadline the caller stops waiting at
            // cannot land later, behind a spooled copy of itself.
            .set(
                "message.timeout.ms",
                config.kafka.ack_timeout.as_millis().to_string(),
            );
        let mut forwarding_defaults = Vec::new();
        for (names, direct_value, forwarding_value) in BATCHING {
            // A property the operator sets under either of its names is theirs for both producers.
            if names
                .iter()
                .any(|n| config.kafka.producer_properties.contains_key(*n))
            {
                continue;
            }
            direct.set(names[0], direct_value);
            forwarding_defaults.push((names[0], forwarding_value));
        }
        for (name, value) in &config.kafka.producer_properties {
            if ALWAYS.iter().any(|(always, _)| always == name) {
                log::warn!("KAFKA_PRODUCER_* cannot change {name}: the relay always sets it");
            }
            direct.set(name, value);
        }
        for (name, value) in ALWAYS {
            direct.set(name, value);
        }
        let mut forwarding = direct.clone();
        // A forwarded record that failed while a later one of its partition was delivered would
        // land behind it; so librdkafka keeps each record, in order, until it is delivered or
        // refused for good, or the producer is replaced.
        for name in [
            "message.timeout.ms",
            "delivery.timeout.ms",
            "retries",
            "message.send.max.retries",
        ] {
            forwarding.remove(name);
        }
        for (name, value) in forwarding_defaults {
            forwarding.set(name, value);
        }
        let client_id = format!("{}-forwarder", direct.get("client.id").unwrap_or("tim-relay"));
        forwarding
            .set("client.id", client_id)
            .set("message.timeout.ms", "0")
            .set("message.send.max.retries", i32::MAX.to_string());
        let watch = Arc::new(BrokerWatch::default());
        let slot = |client| {
            Slot::new(client, &watch).map_err(|e| match e {
                KafkaError::ClientConfig(_, desc, key, _) => {
                    ConfigError::new(crate::config::Kafka::producer_var(&key), desc)
                }
                other => ConfigError::new("KAFKA_BOOTSTRAP_SERVERS", other.to_string()),
            })
        };
        Ok(Self {
            direct: slot(direct)?,
            forwarding: slot(forwarding)?,
            watch: watch.clone(),
            default_topic: config.shared.topic.clone(),
            topics: [
                &config.shared.topic,
                &config.kafka.messages_topic,
                &config.kafka.other_topic,
            ]
            .into_iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
            ack_timeout: config.kafka.ack_timeout,
            late_deliveries,
        })
    }

    /// librdkafka's fatal error, if either producer had one (it then refuses every record).
    pub fn fatal_error(&self) -> Option<String> {
        let fatal = |name, slot: &Slot| slot.fatal_error().map(|e| format!("{name} producer: {e}"));
        fatal("direct", &self.direct).or_else(|| fatal("forwarding", &self.forwarding))
    }

    /// Replaces both producers with new ones from the same configuration. Blocking. Records still
    /// held by the old ones fail when they are dropped: callbacks spool theirs, and the forwarder
    /// sends its own again from the spool, in order.
    pub fn recreate(&self) -> Result<(), KafkaError> {
        self.direct.recreate()?;
        self.forwarding.recreate()
    }

    /// Gives up on every record the forwarding producer still holds (they stay in the spool).
    /// Blocking, briefly.
    pub fn abandon_forwarded(&self) {
        self.forwarding
            .get()
            .purge(PurgeConfig::default().queue().inflight());
    }

    /// Whether a fresh client (not the producer) gets metadata for the topic: tells a broker that
    /// is down from a producer that is stuck. Blocks up to `timeout`.
    pub fn probe(&self, timeout: Duration) -> bool {
        let probe: Result<BaseProducer, _> = self.direct.client.create();
        probe.is_ok_and(|p| {
            p.client()
                .fetch_metadata(self.topics.first().map(String::as_str), Timeout::After(timeout))
                .is_ok()
        })
    }

    /// How long a callback waits for the broker before its record goes to the spool.
    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout
    }

    pub fn watch(&self) -> &BrokerWatch {
        &self.watch
    }

    /// Hands the record to the direct producer without waiting for the broker.
    pub fn send(&self, record: &Record) -> Result<Pending, PublishError> {
        self.send_with(&self.direct.get(), record)
    }

    /// Hands a spooled record to the forwarding producer, which keeps it until the broker takes
    /// or refuses it.
    pub fn send_forwarded(&self, record: &Record) -> Result<Pending, PublishError> {
        self.send_with(&self.forwarding.get(), record)
    }

    /// `KAFKA_TOPIC`: where records without a topic of their own go.
    pub fn default_topic(&self) -> &str {
        &self.default_topic
    }

    /// The topic a record goes to: its own, or `KAFKA_TOPIC` for a record without one.
    pub fn topic_of<'r>(&'r self, record: &'r Record) -> &'r str {
        if record.topic.is_empty() {
            &self.default_topic
        } else {
            &record.topic
        }
    }

    fn send_with(&self, producer: &Producer_, record: &Record) -> Result<Pending, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let topic = self.topic_of(record);
        let kafka_record = FutureRecord::to(topic)
            .key(record.key.as_bytes())
            .payload(&record.payload)
            .headers(headers);
        match producer.send_result(kafka_record) {
            Ok(delivery) => Ok(Pending(delivery)),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(PublishError::QueueFull)
            }
            Err((e, _)) => Err(PublishError::Rejected(e)),
        }
    }

    /// Waits up to the ack timeout for the broker's acknowledgement (acks=all).
    pub async fn wait(&self, pending: Pending) -> Result<(), PublishError> {
        let mut delivery = pending.0;
        let result = match tokio::time::timeout(self.ack_timeout, &mut delivery).await {
            Ok(result) => delivery_result(result),
            Err(_) => {
                // The caller moves on (spools or answers FAIL); if the broker still takes the
                // record, it is a duplicate worth counting.
                let late = self.late_deliveries.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(_)) = delivery.await {
                        late.inc();
                        log::warn!(
                            "a record was acknowledged after its deadline: it may be in the topic twice"
                        );
                    }
                });
                return Err(PublishError::Timeout(self.ack_timeout.as_millis()));
            }
        };
        match result {
            Ok(()) => {
                self.watch.set_down(false);
                Ok(())
            }
            Err(PublishError::Timeout(_)) => Err(PublishError::Timeout(self.ack_timeout.as_millis())),
            Err(e) => Err(e),
        }
    }

    /// Sends one record and waits for its acknowledgement; returns how long that took.
    pub async fn publish(&self, record: &Record) -> Result<Duration, PublishError> {
        let start = Instant::now();
        let pending = self.send(record)?;
        self.wait(pending).await?;
        Ok(start.elapsed())
    }

    /// Whether the broker answers a metadata request for every configured topic, each with
    /// partitions. Blocks up to `timeout` per topic.
    pub fn check_ready(&self, timeout: Duration) -> Result<(), String> {
        let producer = self.direct.get();
        let client = producer.client();
        // Every class switched off: the broker answering is all there is to know.
        if self.topics.is_empty() {
            return client
                .fetch_metadata(None, Timeout::After(timeout))
                .map(|_| ())
                .map_err(|e| format!("Kafka metadata request failed: {e}"));
        }
        for name in &self.topics {
            let metadata = client
                .fetch_metadata(Some(name), Timeout::After(timeout))
                .map_err(|e| format!("Kafka metadata request failed: {e}"))?;
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| format!("topic {name} is not in the broker's metadata"))?;
            if let Some(err) = topic.error() {
                return Err(format!("topic {name}: {:?}", RDKafkaErrorCode::from(err)));
            }
            if topic.partitions().is_empty() {
                return Err(format!("topic {name} has no partitions"));
            }
        }
        Ok(())
    }

    /// Waits, up to `timeout` in all, for everything both producers still hold to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        let direct = self.direct.get().flush(Timeout::After(timeout));
        let left = deadline.saturating_duration_since(Instant::now());
        direct.and(self.forwarding.get().flush(Timeout::After(left)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn publisher(vars: &[(&str, &str)]) -> Publisher {
        let vars = [("TIM_SDK_APP_ID", "1400000000")]
            .iter()
            .chain(vars)
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = Config::from_vars(vars).unwrap();
        let late = IntCounter::with_opts(Opts::new("late", "late")).unwrap();
        // librdkafka connects lazily: creating the producers needs no broker.
        Publisher::new(&config, late).unwrap()
    }

    fn props<'a>(slot: &'a Slot, names: &[&str]) -> Vec<Option<&'a str>> {
        names.iter().map(|n| slot.client.get(n)).collect()
    }

    const NAMES: [&str; 4] = [
        "linger.ms",
        "queue.buffering.max.ms",
        "max.in.flight.requests.per.connection",
        "max.in.flight",
    ];

    #[test]
    fn direct_producer_sends_at_once_and_the_forwarder_batches() {
        let p = publisher(&[]);
        assert_eq!(props(&p.direct, &NAMES), [Some("0"), None, Some("1"), None]);
        assert_eq!(props(&p.forwarding, &NAMES), [Some("2"), None, Some("5"), None]);
    }

    #[test]
    fn an_operator_setting_under_either_name_replaces_the_default_for_both_producers() {
        // Under an alias: the relay must not also set the other name (librdkafka would apply
        // the two in no set order).
        let p = publisher(&[
            ("KAFKA_PRODUCER_QUEUE_BUFFERING_MAX_MS", "5"),
            ("KAFKA_PRODUCER_MAX_IN_FLIGHT", "3"),
        ]);
        for slot in [&p.direct, &p.forwarding] {
            assert_eq!(props(slot, &NAMES), [None, Some("5"), None, Some("3")]);
        }
        let p = publisher(&[("KAFKA_PRODUCER_LINGER_MS", "1")]);
        assert_eq!(props(&p.direct, &NAMES), [Some("1"), None, Some("1"), None]);
        assert_eq!(props(&p.forwarding, &NAMES), [Some("1"), None, Some("5"), None]);
    }
}
