//! The Kafka side: the idempotent producer, awaited deliveries, error classes, broker reachability.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use rdkafka::client::ClientContext;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::config::{Config, ConfigError};
use crate::record::Record;

/// Why an event did not reach the topic.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Kafka did not acknowledge within {0} ms")]
    Timeout(u128),
    #[error("Kafka producer queue is full")]
    QueueFull,
    #[error("Kafka refused the event: {0}")]
    Rejected(KafkaError),
}

impl PublishError {
    /// Whether trying the same event again later can succeed (broker down, slow, or busy),
    /// as opposed to a refusal that repeats (too large, not authorized, unknown topic).
    pub fn is_retryable(&self) -> bool {
        match self {
            PublishError::Timeout(_) | PublishError::QueueFull => true,
            PublishError::Rejected(e) => !matches!(
                e.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::MessageSizeTooLarge
                        | RDKafkaErrorCode::InvalidMessageSize
                        | RDKafkaErrorCode::TopicAuthorizationFailed
                        | RDKafkaErrorCode::ClusterAuthorizationFailed
                        | RDKafkaErrorCode::InvalidMessage
                        | RDKafkaErrorCode::InvalidRecord
                        | RDKafkaErrorCode::InvalidTopic
                )
            ),
        }
    }
}

/// librdkafka callbacks: notes when every broker is unreachable, so callbacks can go straight
/// to the spool instead of waiting out the ack timeout each time.
#[derive(Default)]
pub struct BrokerWatch {
    down: AtomicBool,
}

impl BrokerWatch {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    pub fn set_down(&self, down: bool) {
        if self.down.swap(down, Ordering::AcqRel) != down {
            if down {
                log::error!("Kafka is unreachable: callbacks go to the spool until it is back");
            } else {
                log::info!("Kafka is reachable again");
            }
        }
    }
}

/// The producer's context: reports broker reachability to the shared [`BrokerWatch`].
pub struct WatchContext(Arc<BrokerWatch>);

impl ClientContext for WatchContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::AllBrokersDown)) {
            self.0.set_down(true);
        }
        log::warn!("librdkafka: {error}: {reason}");
    }
}

type Producer_ = FutureProducer<WatchContext>;

/// Publishes records to the configured topic.
pub struct Publisher {
    /// Replaced as a whole when librdkafka's producer is stuck or failed fatally.
    producer: RwLock<Arc<Producer_>>,
    client: ClientConfig,
    watch: Arc<BrokerWatch>,
    topic: String,
    ack_timeout: Duration,
    late_deliveries: IntCounter,
}

/// A record handed to librdkafka, not yet acknowledged.
pub struct Pending(DeliveryFuture);

impl Publisher {
    /// Creates the producer. librdkafka checks every property here, so a bad
    /// `KAFKA_PRODUCER_*` value stops start-up with the variable named. `late_deliveries`
    /// counts records acknowledged after their caller stopped waiting (known duplicates).
    pub fn new(config: &Config, late_deliveries: IntCounter) -> Result<Self, ConfigError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("client.id", "tim-relay")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // A delivery librdkafka gives up on at the deadline the caller stops waiting at
            // cannot land later, behind a spooled copy of itself.
            .set("message.timeout.ms", config.ack_timeout.as_millis().to_string())
            .set("linger.ms", "2");
        for (name, value) in &config.producer_properties {
            client.set(name, value);
        }
        let watch = Arc::new(BrokerWatch::default());
        let producer: Producer_ =
            client
                .create_with_context(WatchContext(watch.clone()))
                .map_err(|e| match e {
                    KafkaError::ClientConfig(_, desc, key, _) => {
                        ConfigError::new(Config::producer_var(&key), desc)
                    }
                    other => ConfigError::new("KAFKA_BOOTSTRAP_SERVERS", other.to_string()),
                })?;
        Ok(Self {
            producer: RwLock::new(Arc::new(producer)),
            client,
            watch,
            topic: config.topic.clone(),
            ack_timeout: config.ack_timeout,
            late_deliveries,
        })
    }

    fn current(&self) -> Arc<Producer_> {
        self.producer.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// librdkafka's fatal error, if the producer had one (it then refuses every record).
    pub fn fatal_error(&self) -> Option<String> {
        self.current()
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code:?}: {reason}"))
    }

    /// Replaces the producer with a new one from the same configuration. Records still queued
    /// in the old one fail when it is dropped, so their callers spool them or retry them.
    pub fn recreate(&self) -> Result<(), KafkaError> {
        let fresh: Producer_ = self
            .client
            .create_with_context(WatchContext(self.watch.clone()))?;
        *self.producer.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// Whether a fresh client (not the producer) gets metadata for the topic: tells a broker that
    /// is down from a producer that is stuck. Blocks up to `timeout`.
    pub fn probe(&self, timeout: Duration) -> bool {
        let probe: Result<BaseProducer, _> = self.client.create();
        probe.is_ok_and(|p| {
            p.client()
                .fetch_metadata(Some(&self.topic), Timeout::After(timeout))
                .is_ok()
        })
    }

    pub fn watch(&self) -> &BrokerWatch {
        &self.watch
    }

    /// Hands the record to librdkafka without waiting for the broker.
    pub fn send(&self, record: &Record) -> Result<Pending, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let kafka_record = FutureRecord::to(&self.topic)
            .key(record.key.as_bytes())
            .payload(&record.payload)
            .headers(headers);
        match self.current().send_result(kafka_record) {
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
            Ok(result) => result,
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
            Ok(Ok(_)) => {
                self.watch.set_down(false);
                Ok(())
            }
            Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut), _))) => {
                Err(PublishError::Timeout(self.ack_timeout.as_millis()))
            }
            Ok(Err((e, _))) => Err(PublishError::Rejected(e)),
            Err(_canceled) => Err(PublishError::Rejected(KafkaError::Canceled)),
        }
    }

    /// Sends one record and waits for its acknowledgement; returns how long that took.
    pub async fn publish(&self, record: &Record) -> Result<Duration, PublishError> {
        let start = Instant::now();
        let pending = self.send(record)?;
        self.wait(pending).await?;
        Ok(start.elapsed())
    }

    /// Whether the broker answers a metadata request for the topic. Blocks up to `timeout`.
    pub fn check_ready(&self, timeout: Duration) -> Result<(), String> {
        let metadata = self
            .current()
            .client()
            .fetch_metadata(Some(&self.topic), Timeout::After(timeout))
            .map_err(|e| format!("Kafka metadata request failed: {e}"))?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .ok_or_else(|| format!("topic {} is not in the broker's metadata", self.topic))?;
        if let Some(err) = topic.error() {
            return Err(format!("topic {}: {:?}", self.topic, RDKafkaErrorCode::from(err)));
        }
        if topic.partitions().is_empty() {
            return Err(format!("topic {} has no partitions", self.topic));
        }
        Ok(())
    }

    /// Waits, up to `timeout`, for everything still queued to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.current().flush(Timeout::After(timeout))
    }
}
