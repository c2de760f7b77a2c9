//! The Kafka side: the idempotent producer, one awaited delivery per event, error classes, readiness.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::config::{Config, ConfigError};
use crate::event::ChangeEvent;

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

/// Publishes change events to the configured topic.
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
    ack_timeout: Duration,
}

impl Publisher {
    /// Creates the producer. librdkafka checks every property here, so a bad
    /// `KAFKA_PRODUCER_*` value stops start-up with the variable named.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("client.id", "tim-relay")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // A delivery librdkafka gives up on at the same deadline the caller is answered at
            // cannot land later, after the caller was told FAIL.
            .set("message.timeout.ms", config.ack_timeout.as_millis().to_string())
            .set("linger.ms", "2");
        for (name, value) in &config.producer_properties {
            client.set(name, value);
        }
        let producer: FutureProducer = client.create().map_err(|e| match e {
            KafkaError::ClientConfig(_, desc, key, _) => ConfigError::new(Config::producer_var(&key), desc),
            other => ConfigError::new("KAFKA_BOOTSTRAP_SERVERS", other.to_string()),
        })?;
        Ok(Self {
            producer,
            topic: config.topic.clone(),
            ack_timeout: config.ack_timeout,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends one event and waits for the broker's acknowledgement (acks=all) up to the ack
    /// timeout. Returns how long the acknowledgement took.
    pub async fn publish(&self, event: &ChangeEvent) -> Result<Duration, PublishError> {
        let start = Instant::now();
        let payload = event.to_json();
        let (source, time) = (event.ce_source(), event.ce_time());
        let headers = OwnedHeaders::new_with_capacity(7)
            .insert(header("ce_specversion", "1.0"))
            .insert(header("ce_id", &event.id))
            .insert(header("ce_type", event.event_type))
            .insert(header("ce_source", &source))
            .insert(header("ce_subject", &event.group_id))
            .insert(header("ce_time", &time))
            .insert(header("content-type", "application/json"));
        let record = FutureRecord::to(&self.topic)
            .key(event.key())
            .payload(&payload)
            .headers(headers);
        let delivery = match self.producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                return Err(PublishError::QueueFull)
            }
            Err((e, _)) => return Err(PublishError::Rejected(e)),
        };
        // librdkafka times the message out itself; the extra margin covers its timer granularity.
        match tokio::time::timeout(self.ack_timeout + Duration::from_millis(50), delivery).await {
            Ok(Ok(Ok(_))) => Ok(start.elapsed()),
            Ok(Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut), _)))) | Err(_) => {
                Err(PublishError::Timeout(self.ack_timeout.as_millis()))
            }
            Ok(Ok(Err((e, _)))) => Err(PublishError::Rejected(e)),
            Ok(Err(_canceled)) => Err(PublishError::Rejected(KafkaError::Canceled)),
        }
    }

    /// Whether the broker answers a metadata request for the topic. Blocks up to `timeout`.
    pub fn check_ready(&self, timeout: Duration) -> Result<(), String> {
        let metadata = self
            .producer
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
        self.producer.flush(Timeout::After(timeout))
    }

    pub fn in_queue(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}
