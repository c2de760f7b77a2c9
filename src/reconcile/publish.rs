//! Publishing the reconciler's events to `KAFKA_TOPIC`: `acks=all`, idempotent, each event
//! awaited. A cluster that is down or refusing for a passing cause holds the sweep (the event
//! is sent again with a growing pause) rather than losing the repair; only a refusal of the
//! record itself (too large) gives up on it, and the group counts as failed for this sweep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::config::ReconcileConfig;
use crate::delivery::publish::PublishError;
use crate::delivery::record::Record;
use crate::state::materialize::client;

pub struct Publisher {
    producer: FutureProducer,
    stop: Arc<AtomicBool>,
}

impl Publisher {
    pub fn new(config: &ReconcileConfig, stop: Arc<AtomicBool>) -> Result<Self, KafkaError> {
        let producer = client(&config.state)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .create()?;
        Ok(Self { producer, stop })
    }

    /// Sends `record` until Kafka acknowledges it. Err: the record itself was refused, or the
    /// process is stopping.
    pub async fn publish(&self, record: &Record) -> Result<(), String> {
        let mut pause = Duration::from_secs(1);
        let mut told = false;
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let sent = FutureRecord::to(&record.topic)
                .key(&record.key)
                .payload(&record.payload)
                .headers(headers);
            match self.producer.send(sent, Timeout::Never).await {
                Ok(_) => {
                    if told {
                        log::info!("Kafka takes the reconciler's events again");
                    }
                    return Ok(());
                }
                Err((e, _)) => {
                    let error = PublishError::Rejected(e);
                    if error.is_about_the_record() {
                        return Err(format!("Kafka refused the event itself: {error}"));
                    }
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(format!("stopping while Kafka refuses: {error}"));
                    }
                    if !told {
                        log::warn!(
                            "Kafka refuses the reconciler's events ({}); the sweep waits and sends again",
                            error.reason()
                        );
                        told = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Checks that Kafka answers (the readiness of the loop): the events topic's metadata.
    pub fn reachable(&self, topic: &str) -> bool {
        use rdkafka::producer::Producer;
        self.producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .is_ok()
    }
}
