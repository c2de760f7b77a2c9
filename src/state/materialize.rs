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
pub mod config;
pub mod show;

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
use config::StateConfig;

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

/// A group as held in memory between batches: compact, parsed only when an event arrives.
struct Stored {
    /// The document's JSON; `None`: destroyed.
    doc: Option<Box<[u8]>>,
    destroyed_at: Option<u64>,
    recent: Box<[u64]>,
}

impl Stored {
    fn from_group(group: &Group) -> Self {
        Stored {
            doc: group
                .doc
                .as_ref()
                .map(|d| serde_json::to_vec(d).expect("a state document serializes").into()),
            destroyed_at: group.destroyed_at,
            recent: group.recent.0.clone().into(),
        }
    }

    fn to_group(&self) -> Result<Group, serde_json::Error> {
        Ok(Group {
            doc: self.doc.as_deref().map(serde_json::from_slice).transpose()?,
            destroyed_at: self.destroyed_at,
            recent: Recent(self.recent.to_vec()),
        })
    }
}

/// The groups of each assigned partition.
type Partitions = HashMap<i32, HashMap<String, Stored>>;

/// What happened in a rebalance, recorded by the consumer's callbacks for the loop.
#[derive(Default)]
struct RebalanceLog {
    revoked: Vec<i32>,
    /// The revoked partitions were lost (this member was dropped from the group): another
    /// instance may have folded their events since.
    lost: bool,
    assigned: Vec<i32>,
    changed: bool,
}

struct StateContext {
    log: Mutex<RebalanceLog>,
}

impl ClientContext for StateContext {}

impl ConsumerContext for StateContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let mut log = self.log.lock().expect("rebalance log");
            log.revoked.extend(list.elements().iter().map(|e| e.partition()));
            log.lost |= consumer.assignment_lost();
            log.changed = true;
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut log = self.log.lock().expect("rebalance log");
        match rebalance {
            Rebalance::Assign(list) => {
                log.assigned.extend(list.elements().iter().map(|e| e.partition()));
                log.changed = true;
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => log::warn!("rebalance failed: {e}"),
        }
    }
}

/// The context of the readers of the state topic: reaching the end of a partition is how they
/// know they are done, not an error to log.
pub(crate) struct Reader;

impl ClientContext for Reader {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            log::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for Reader {}

/// A consumer that reads the state topic to its committed end (it never joins the group
/// named after `role`, nor commits): the rebuild and `tim-relay state` both use one.
pub(crate) fn state_reader(config: &StateConfig, role: &str) -> Result<BaseConsumer<Reader>, KafkaError> {
    client(config)
        .set("group.id", format!("{}-{role}", config.group_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create_with_context(Reader)
}

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
    c.set("bootstrap.servers", &config.bootstrap_servers);
    for (k, v) in &config.client_properties {
        c.set(k, v);
    }
    c
}

/// Creates the state topic (compacted, as many partitions as the event topic) when it is
/// missing; refuses one that is not compacted or has fewer partitions.
pub fn ensure_state_topic(config: &StateConfig) -> Result<i32, StateError> {
    let probe: BaseConsumer = client(config).create()?;
    let timeout = Duration::from_secs(10);
    let partitions_of = |topic: &str| -> Result<Option<i32>, StateError> {
        let metadata = probe.fetch_metadata(Some(topic), timeout)?;
        let Some(t) = metadata.topics().first() else {
            return Ok(None);
        };
        match t.error() {
            None => Ok(Some(t.partitions().len() as i32)),
            Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(None),
            Some(e) => Err(StateError::Setup(format!("topic {topic}: {e:?}"))),
        }
    };
    let events = partitions_of(&config.topic)?.ok_or_else(|| {
        StateError::Setup(format!(
            "the event topic {} (KAFKA_TOPIC) does not exist: start the relay first, or create it",
            config.topic
        ))
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StateError::Setup(e.to_string()))?;
    let admin: AdminClient<DefaultClientContext> = client(config).create()?;
    let options = AdminOptions::new().request_timeout(Some(timeout));
    if partitions_of(&config.state_topic)?.is_none() {
        let topic = NewTopic::new(
            &config.state_topic,
            events,
            TopicReplication::Fixed(config.replication_factor),
        )
        .set("cleanup.policy", "compact")
        .set("delete.retention.ms", TOMBSTONE_RETENTION_MS);
        let results = runtime.block_on(admin.create_topics([&topic], &options))?;
        for result in results {
            match result {
                Ok(_) => log::info!(
                    "created the state topic {} (compacted, {events} partitions)",
                    config.state_topic
                ),
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(StateError::Setup(format!("cannot create {topic}: {code}")))
                }
            }
        }
    }
    // A topic created a moment ago may not be known yet to the broker that answers (on a cluster
    // of several): its configuration and partitions are asked for again, for up to 10 s, before
    // they are judged.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (policy, state) = loop {
        let described = runtime
            .block_on(admin.describe_configs([&ResourceSpecifier::Topic(&config.state_topic)], &options));
        let policy = described
            .as_ref()
            .ok()
            .and_then(|d| d.first()?.as_ref().ok()?.get("cleanup.policy")?.value.clone());
        let state = partitions_of(&config.state_topic)?.unwrap_or(0);
        if (policy.is_some() && state > 0) || Instant::now() >= deadline {
            described?;
            break (policy, state);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    if policy.as_deref() != Some("compact") {
        return Err(StateError::Setup(format!(
            "the state topic {} (KAFKA_STATE_TOPIC) has cleanup.policy={}; it must be `compact` \
             alone, or new services could not bootstrap from it",
            config.state_topic,
            policy.unwrap_or_else(|| "unknown".into())
        )));
    }
    if state < events {
        return Err(StateError::Setup(format!(
            "the state topic {} has {state} partitions, fewer than the {events} of {}: partition p \
             of the state holds the groups of partition p of the events",
            config.state_topic, config.topic
        )));
    }
    Ok(events)
}

/// The fold loop, until `stop` is set. Runs on its own thread.
pub struct Materializer {
    config: StateConfig,
    consumer: BaseConsumer<StateContext>,
    producer: BaseProducer,
    partitions: Partitions,
    /// Partitions revoked in a rebalance whose assignment has not come yet.
    parked: Partitions,
    metrics: Arc<StateMetrics>,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
}

/// One event read, not folded yet.
struct Pending {
    partition: i32,
    offset: i64,
    key: Option<String>,
    payload: Option<Vec<u8>>,
}

impl Materializer {
    pub fn new(
        config: StateConfig,
        metrics: Arc<StateMetrics>,
        health: Arc<Health>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, StateError> {
        let consumer: BaseConsumer<StateContext> = client(&config)
            .set("group.id", &config.group_id)
            .set("group.instance.id", &config.instance_id)
            .set("session.timeout.ms", "10000")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            .create_with_context(StateContext {
                log: Mutex::new(RebalanceLog::default()),
            })?;
        let producer: BaseProducer = client(&config)
            .set("transactional.id", config.transactional_id())
            .set(
                "transaction.timeout.ms",
                TRANSACTION_TIMEOUT.as_millis().to_string(),
            )
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "zstd")
            .create()?;
        // Fences an earlier run of this instance and aborts the transaction it left open.
        producer.init_transactions(CALL_TIMEOUT)?;
        consumer.subscribe(&[&config.topic])?;
        Ok(Materializer {
            config,
            consumer,
            producer,
            partitions: HashMap::new(),
            parked: HashMap::new(),
            metrics,
            health,
            stop,
        })
    }

    pub fn run(mut self) -> Result<(), StateError> {
        let stop = self.stop.clone();
        let mut batch: Vec<Pending> = Vec::new();
        let mut batch_started = Instant::now();
        let mut lag_at = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            self.health.turn();
            let message = match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => Some(Pending {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().map(<[u8]>::to_vec),
                }),
                // A fatal consumer error: this consumer reads nothing more, ever (seen after the
                // group coordinator's node died: FENCED_INSTANCE_ID on rejoining). Polling on
                // would leave a live, ready instance that folds nothing; stopping lets a restart
                // take its place, as for a fatal transactional error.
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(StateError::Fatal(e)),
                Some(Err(e)) => {
                    log::warn!("reading {}: {e}", self.config.topic);
                    None
                }
                None => None,
            };
            if self.rebalanced()? {
                // What was read before the rebalance is read again from the committed offsets
                // of the new assignment; a message this poll returned came after it.
                batch.clear();
            }
            if let Some(pending) = message {
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                batch.push(pending);
            }
            let full = batch.len() >= self.config.batch_events;
            if !batch.is_empty() && (full || batch_started.elapsed() >= self.config.batch_wait) {
                self.fold_batch(std::mem::take(&mut batch))?;
            }
            if lag_at.elapsed() >= LAG_EVERY {
                self.measure_lag();
                lag_at = Instant::now();
            }
        }
        if !batch.is_empty() {
            self.fold_batch(batch)?;
        }
        self.health.set_stopping();
        // Dropping the consumer closes it without leaving the group: with static membership,
        // a restart within the session timeout takes its partitions back without a rebalance.
        Ok(())
    }

    /// Applies what the consumer's rebalance callbacks recorded. Revoked partitions are set
    /// aside; if the same rebalance hands them back (the eager protocol revokes everything
    /// first), their groups are kept, as nobody else held them in between. Other assigned
    /// partitions are rebuilt from the state topic. Whether anything changed.
    fn rebalanced(&mut self) -> Result<bool, StateError> {
        let log = std::mem::take(&mut *self.consumer.context().log.lock().expect("rebalance log"));
        if !log.changed {
            return Ok(false);
        }
        for p in &log.revoked {
            if let Some(groups) = self.partitions.remove(p) {
                if !log.lost {
                    self.parked.insert(*p, groups);
                }
            }
        }
        self.health.set_ready(false);
        self.metrics.ready.set(0);
        if log.assigned.is_empty() {
            // The assignment follows in a later poll.
            self.update_groups();
            return Ok(true);
        }
        let mut parked = std::mem::take(&mut self.parked);
        let mut missing = Vec::new();
        for p in log.assigned {
            if self.partitions.contains_key(&p) {
                continue;
            }
            match parked.remove(&p) {
                Some(groups) => {
                    self.partitions.insert(p, groups);
                }
                None => missing.push(p),
            }
        }
        if !missing.is_empty() {
            self.rebuild(&missing)?;
        }
        let held = self.consumer.assignment()?.count();
        self.metrics.partitions.set(held as i64);
        self.update_groups();
        self.health.set_ready(true);
        self.metrics.ready.set(1);
        log::info!(
            "rebalanced: {held} partitions of {} assigned, {} rebuilt ({} groups held)",
            self.config.topic,
            missing.len(),
            self.metrics.groups.get()
        );
        Ok(true)
    }

    fn update_groups(&self) {
        let groups: usize = self.partitions.values().map(HashMap::len).sum();
        self.metrics.groups.set(groups as i64);
    }

    /// Reads the state of `partitions` back from the state topic. The committed offsets are
    /// asked for first: with `read_committed` that waits for any transaction that still holds
    /// offsets of these partitions, so the state read next matches them.
    fn rebuild(&mut self, partitions: &[i32]) -> Result<(), StateError> {
        let started = Instant::now();
        let rebuilt = loop {
            match self.try_rebuild(partitions) {
                Ok(rebuilt) => break rebuilt,
                Err(StateError::Kafka(e)) if !self.stop.load(Ordering::Relaxed) => {
                    log::warn!("rebuilding partitions {partitions:?} failed, retrying in 1 s: {e}");
                    self.health.turn();
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        };
        let count: usize = rebuilt.values().map(HashMap::len).sum();
        self.partitions.extend(rebuilt);
        self.metrics.rebuilt_groups.inc_by(count as u64);
        self.metrics
            .rebuild_seconds
            .observe(started.elapsed().as_secs_f64());
        log::info!(
            "rebuilt partitions {partitions:?} of {}: {count} groups in {:.3} s",
            self.config.state_topic,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn try_rebuild(&self, partitions: &[i32]) -> Result<Partitions, StateError> {
        let mut offsets = TopicPartitionList::new();
        for p in partitions {
            offsets.add_partition(&self.config.topic, *p);
        }
        self.consumer.committed_offsets(offsets, CALL_TIMEOUT)?;
        read_state(&self.config, partitions, &self.stop, &self.health)
    }

    /// Folds one batch and writes its result in one transaction. On a failed transaction the
    /// batch's changes are dropped and its partitions are read again from where it began.
    fn fold_batch(&mut self, batch: Vec<Pending>) -> Result<(), StateError> {
        let started = Instant::now();
        let mut missing: Vec<i32> = batch.iter().map(|p| p.partition).collect();
        missing.sort_unstable();
        missing.dedup();
        missing.retain(|p| !self.partitions.contains_key(p));
        if !missing.is_empty() {
            self.rebuild(&missing)?;
        }
        // The groups this batch read, and whether it changed them (their order of change).
        let mut touched: HashMap<(i32, String), (Group, bool)> = HashMap::new();
        let mut order: Vec<(i32, String)> = Vec::new();
        let mut counts: HashMap<&'static str, u64> = HashMap::new();
        let mut first: HashMap<i32, i64> = HashMap::new();
        let mut next: HashMap<i32, i64> = HashMap::new();
        for pending in &batch {
            first.entry(pending.partition).or_insert(pending.offset);
            next.insert(pending.partition, pending.offset + 1);
            let parsed = match pending.payload.as_deref() {
                Some(payload) => InEvent::parse(payload),
                None => Err("no value".to_string()),
            };
            let event = match parsed {
                Ok(event) => event,
                Err(reason) => {
                    log::warn!(
                        "skipped the record at {}/{}@{} (key {:?}): {reason}",
                        self.config.topic,
                        pending.partition,
                        pending.offset,
                        pending.key
                    );
                    *counts.entry("invalid").or_default() += 1;
                    continue;
                }
            };
            let slot = (pending.partition, event.group_id.clone());
            let group = match touched.get_mut(&slot) {
                Some(group) => group,
                None => {
                    let group = match self
                        .partitions
                        .get(&pending.partition)
                        .and_then(|m| m.get(&event.group_id))
                    {
                        Some(stored) => stored
                            .to_group()
                            .map_err(|e| StateError::Corrupt(format!("{}: {e}", event.group_id)))?,
                        None => Group::default(),
                    };
                    touched.entry(slot.clone()).or_insert((group, false))
                }
            };
            let (group, dirty) = group;
            let outcome = group.apply(&event, self.config.rules);
            *counts.entry(outcome.label()).or_default() += 1;
            if outcome == Outcome::Applied && !*dirty {
                *dirty = true;
                order.push(slot);
            }
        }
        let stored: HashMap<(i32, String), Stored> = touched
            .into_iter()
            .map(|(slot, (group, _))| (slot, Stored::from_group(&group)))
            .collect();
        let result = self.commit(&stored, &order, &next);
        match result {
            Ok(tombstones) => {
                for ((partition, group_id), group) in stored {
                    self.partitions
                        .entry(partition)
                        .or_default()
                        .insert(group_id, group);
                }
                for (label, n) in counts {
                    self.metrics.events.with_label_values(&[label]).inc_by(n);
                }
                self.metrics.transactions.with_label_values(&["committed"]).inc();
                self.metrics.state_records.inc_by(order.len() as u64);
                self.metrics.tombstones.inc_by(tombstones);
                self.metrics
                    .transaction_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.update_groups();
                Ok(())
            }
            Err(e) => {
                let fatal = matches!(&e, KafkaError::Transaction(t) if t.is_fatal());
                if fatal {
                    return Err(StateError::Fatal(e));
                }
                log::warn!("a fold transaction failed and is aborted; its events are read again: {e}");
                self.metrics.transactions.with_label_values(&["aborted"]).inc();
                let mut tries = 0;
                while let Err(abort) = abort_transaction(&self.producer, CALL_TIMEOUT) {
                    tries += 1;
                    let fatal = matches!(&abort, KafkaError::Transaction(t) if t.is_fatal());
                    if fatal {
                        return Err(StateError::Fatal(abort));
                    }
                    if tries == 5 {
                        // A restart fences this producer and the broker aborts the transaction.
                        return Err(abort.into());
                    }
                    log::warn!("aborting the fold transaction failed, retrying: {abort}");
                    std::thread::sleep(Duration::from_secs(1));
                }
                for (partition, offset) in first {
                    if let Err(e) = self.consumer.seek(
                        &self.config.topic,
                        partition,
                        Offset::Offset(offset),
                        CALL_TIMEOUT,
                    ) {
                        log::warn!("cannot rewind partition {partition}: {e}; it is rebuilt");
                        self.partitions.remove(&partition);
                        self.rebuild(&[partition])?;
                    }
                }
                Ok(())
            }
        }
    }

    /// One transaction: the changed documents, then the offsets after the batch. Returns the
    /// number of tombstones written.
    fn commit(
        &self,
        stored: &HashMap<(i32, String), Stored>,
        order: &[(i32, String)],
        next: &HashMap<i32, i64>,
    ) -> Result<u64, KafkaError> {
        self.producer.begin_transaction()?;
        let mut tombstones = 0;
        for slot in order {
            let group = &stored[slot];
            let (partition, group_id) = slot;
            let payload = group.doc.as_deref();
            let mut headers = OwnedHeaders::new().insert(Header {
                key: RECENT_HEADER,
                value: Some(&Recent(group.recent.to_vec()).to_header()),
            });
            if payload.is_none() {
                tombstones += 1;
                if let Some(at) = group.destroyed_at {
                    headers = headers.insert(Header {
                        key: DESTROYED_HEADER,
                        value: Some(&at.to_string()),
                    });
                }
            }
            let mut record = BaseRecord::<str, [u8]>::to(&self.config.state_topic)
                .key(group_id.as_str())
                .partition(*partition)
                .headers(headers);
            if let Some(payload) = payload {
                record = record.payload(payload);
            }
            let mut record = record;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                        self.producer.poll(Duration::from_millis(10));
                        record = r;
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in next {
            offsets.add_partition_offset(&self.config.topic, *partition, Offset::Offset(*offset))?;
        }
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or(KafkaError::Global(rdkafka::types::RDKafkaErrorCode::State))?;
        self.producer
            .send_offsets_to_transaction(&offsets, &metadata, CALL_TIMEOUT)?;
        self.producer.commit_transaction(CALL_TIMEOUT)?;
        Ok(tombstones)
    }

    /// Events not folded yet in the assigned partitions.
    fn measure_lag(&self) {
        let Ok(position) = self.consumer.position() else {
            return;
        };
        let mut lag = 0i64;
        for element in position.elements() {
            let Ok((_, high)) = self.consumer.fetch_watermarks(
                &self.config.topic,
                element.partition(),
                Duration::from_secs(1),
            ) else {
                continue;
            };
            let at = match element.offset() {
                Offset::Offset(o) => o,
                _ => continue,
            };
            lag += (high - at).max(0);
        }
        self.metrics.lag.set(lag);
    }
}

/// Aborts the producer's open transaction. librdkafka's abort purges what is still queued, then
/// waits until every message of the transaction is accounted for, delivery reports included. A
/// `BaseProducer` serves those only when polled: its `commit_transaction` does so (through
/// `flush`), its `abort_transaction` does not, so it timed out whenever the transaction had sent
/// a record. A thread polls the producer while the abort runs.
fn abort_transaction(producer: &BaseProducer, timeout: Duration) -> Result<(), KafkaError> {
    let aborting = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while aborting.load(Ordering::Relaxed) {
                producer.poll(Duration::from_millis(50));
            }
        });
        let result = producer.abort_transaction(timeout);
        aborting.store(false, Ordering::Relaxed);
        result
    })
}

/// Reads the state topic's `partitions` from the beginning to the end of what is committed.
/// Gives up (with an error) once `stop` is set.
/// Tells `health` the loop is alive while it reads.
fn read_state(
    config: &StateConfig,
    partitions: &[i32],
    stop: &AtomicBool,
    health: &Health,
) -> Result<Partitions, StateError> {
    let mut out: Partitions = partitions.iter().map(|p| (*p, HashMap::new())).collect();
    let reader = state_reader(config, "rebuild")?;
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition_offset(&config.state_topic, *p, Offset::Beginning)?;
    }
    reader.assign(&list)?;
    let mut open: Vec<i32> = partitions.to_vec();
    while !open.is_empty() {
        if stop.load(Ordering::Relaxed) {
            return Err(StateError::Stopped);
        }
        health.turn();
        match reader.poll(Duration::from_secs(1)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => open.retain(|q| *q != p),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => {
                let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) else {
                    continue;
                };
                let mut recent = Recent::default();
                let mut destroyed_at = None;
                if let Some(headers) = m.headers() {
                    for h in headers.iter() {
                        let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                        match h.key {
                            RECENT_HEADER => recent = Recent::from_header(&value),
                            DESTROYED_HEADER => destroyed_at = value.parse().ok(),
                            _ => {}
                        }
                    }
                }
                // Kept as written; it is parsed when an event of its group arrives.
                let stored = Stored {
                    doc: m.payload().map(Into::into),
                    destroyed_at,
                    recent: recent.0.into(),
                };
                out.entry(m.partition()).or_default().insert(key, stored);
            }
        }
    }
    Ok(out)
}

/// Runs the materializer until SIGTERM or SIGINT: admin listener, topic check, fold loop.
pub fn run(config: StateConfig) -> Result<(), StateError> {
    let metrics = Arc::new(StateMetrics::new());
    let health = Health::new();
    ensure_state_topic(&config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let system = actix_web::rt::System::new();
    let server = system
        .block_on(async { admin::serve(config.admin_listen, health.clone(), metrics.clone()) })
        .map_err(|e| StateError::Setup(format!("RELAY_ADMIN_LISTEN {}: {e}", config.admin_listen)))?;
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
