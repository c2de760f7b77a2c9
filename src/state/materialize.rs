//! `tim-relay materialize`: folds the group state events into each group's current state, in a
//! compacted topic, exactly once.
//!
//! Each instance consumes `KAFKA_TOPIC` in consumer group `RELAY_STATE_GROUP_ID` and owns the
//! groups of its partitions. Events are folded in batches; each batch is one Kafka transaction
//! that writes the changed documents (partition p of the state topic holds the groups of
//! partition p of the event topic) and the consumer offsets together, so a crash at any moment
//! leaves either the whole batch or none of it. The state is read back with `read_committed`.
//!
//! The groups of a partition live in memory, as the JSON of their documents. When a partition
//! is assigned, its state is rebuilt from the state topic before any of its events is folded.

pub mod admin;
mod batch;
pub mod config;
pub(crate) mod rebuild;
mod runner;
pub mod show;
mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::state::fold::{Group, InEvent, Outcome, Recent};
use admin::{Health, StateMetrics};
use batch::*;
use config::StateConfig;
pub(crate) use rebuild::state_reader;
use rebuild::*;
pub use runner::Materializer;
pub use topic::ensure_state_topic;

/// Header of a state record: the hashes of the group's latest event ids (duplicates).
pub const RECENT_HEADER: &str = "tim_state_recent_ids";
/// Header of a tombstone: when the group was destroyed, in ms since 1970.
pub const DESTROYED_HEADER: &str = "tim_state_destroyed_at_ms";
/// How long one transaction may stay open before the broker aborts it.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of the transactional calls (commit, offsets, abort).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(2);
/// How long the tombstone of a destroyed group stays in the compacted topic.
const TOMBSTONE_RETENTION_MS: &str = "604800000";

/// Why the materializer stopped.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{0}")]
    Setup(String),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// An error librdkafka makes fatal (a fenced producer or consumer): this process cannot go
    /// on, a restart of the instance can.
    #[error("fatal Kafka error (a restart takes over): {0}")]
    Fatal(KafkaError),
    #[error("a document in the state topic is not one the materializer wrote: {0}")]
    Corrupt(String),
    #[error("stopped")]
    Stopped,
}

pub(crate) fn client(config: &StateConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.shared.bootstrap_servers);
    for (k, v) in &config.client_properties {
        c.set(k, v);
    }
    c
}

/// Runs the materializer until SIGTERM or SIGINT: admin listener, topic check, fold loop.
pub fn run(config: StateConfig) -> Result<(), StateError> {
    let metrics = Arc::new(StateMetrics::new());
    let health = Health::new();
    ensure_state_topic(&config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let system = actix_web::rt::System::new();
    let server = system
        .block_on(async { admin::serve(config.shared.admin_listen, health.clone(), metrics.clone()) })
        .map_err(|e| StateError::Setup(format!("RELAY_ADMIN_LISTEN {}: {e}", config.shared.admin_listen)))?;
    let materializer = Materializer::new(config, metrics, health, stop.clone())?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = std::thread::Builder::new()
        .name("fold".into())
        .spawn(move || {
            let result = materializer.run();
            let _ = done_tx.send(());
            result
        })
        .map_err(|e| StateError::Setup(e.to_string()))?;
    let signal_stop = stop.clone();
    system.block_on(async move {
        actix_web::rt::spawn(server);
        tokio::select! {
            signal = crate::shutdown::stop_signal() => {
                log::info!("{signal}: stopping after the current transaction");
                signal_stop.store(true, Ordering::Relaxed);
            }
            _ = done_rx => {}
        }
    });
    match worker.join() {
        Ok(Err(StateError::Stopped)) => Ok(()),
        Ok(result) => result,
        Err(_) => Err(StateError::Setup("the fold loop panicked".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    /// librdkafka makes FENCED_INSTANCE_ID fatal for a consumer: it never reads again. The fold
    /// must stop (and be restarted), not go on polling a dead consumer.
    #[test]
    fn a_fatal_consumer_error_stops_the_fold() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("events", 1, 1).expect("topic");
        cluster.create_topic("state", 1, 1).expect("topic");
        let vars = [
            ("KAFKA_BOOTSTRAP_SERVERS", cluster.bootstrap_servers()),
            ("KAFKA_TOPIC", "events".into()),
            ("KAFKA_STATE_TOPIC", "state".into()),
            ("RELAY_STATE_INSTANCE_ID", "state-0".into()),
            ("KAFKA_CLIENT_HEARTBEAT_INTERVAL_MS", "200".into()),
        ];
        let config = StateConfig::from_vars(vars.map(|(k, v)| (k.to_string(), v))).expect("config");
        // The group coordinator's answer once another member holds this instance id.
        cluster.request_errors(
            RDKafkaApiKey::Heartbeat,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let materializer =
            Materializer::new(config, Arc::new(StateMetrics::new()), Health::new(), stop.clone())
                .expect("materializer");
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(materializer.run()));
        let result = ended.recv_timeout(Duration::from_secs(30));
        stop.store(true, Ordering::Relaxed);
        match result {
            Ok(Err(StateError::Fatal(KafkaError::MessageConsumptionFatal(_)))) => {}
            Ok(other) => panic!("the fold ended otherwise: {other:?}"),
            Err(_) => panic!("the fold went on for 30 s after its consumer was fenced"),
        }
    }

    /// A fold transaction that fails after its documents were sent (its offsets refused, say,
    /// after a rebalance or a coordinator move) must be aborted, so that its events are folded
    /// again by this process; it used to time out on the unserved delivery reports, five times,
    /// before the materializer gave up and exited.
    #[test]
    fn a_transaction_that_sent_records_is_aborted_at_once() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("state", 1, 1).expect("topic");
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("transactional.id", "fold-test")
            .create()
            .expect("producer");
        producer
            .init_transactions(CALL_TIMEOUT)
            .expect("init_transactions");
        for round in 0..2 {
            producer.begin_transaction().expect("begin");
            for i in 0..100 {
                let key = format!("@TGS#{i}");
                producer
                    .send(BaseRecord::<str, str>::to("state").key(&key).payload("{}"))
                    .expect("queued");
            }
            // Most are delivered by the time the abort begins; their reports are not served.
            std::thread::sleep(Duration::from_millis(500));
            let started = Instant::now();
            abort_transaction(&producer, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("round {round}: the abort failed: {e}"));
            assert!(started.elapsed() < Duration::from_secs(5), "round {round}");
        }
        // The producer goes on: the next transaction commits.
        producer.begin_transaction().expect("begin after the aborts");
        producer
            .send(BaseRecord::<str, str>::to("state").key("k").payload("{}"))
            .expect("queued");
        producer.commit_transaction(CALL_TIMEOUT).expect("commit");
    }
}
