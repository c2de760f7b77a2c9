//! Rebuilding a partition's groups from the state topic, read to its committed end, before any
//! of its events is folded; the documents as they are kept in memory.

use super::*;
use rdkafka::message::BorrowedMessage;

/// A group as held in memory between batches: compact, parsed only when an event arrives.
pub(super) struct Stored {
    /// The document's JSON; `None`: destroyed.
    pub(super) doc: Option<Box<[u8]>>,
    pub(super) destroyed_at: Option<u64>,
    pub(super) recent: Box<[u64]>,
}

impl Stored {
    pub(super) fn from_group(group: &Group) -> Self {
        Stored {
            doc: group
                .doc
                .as_ref()
                .map(|d| serde_json::to_vec(d).expect("a state document serializes").into()),
            destroyed_at: group.destroyed_at,
            recent: group.recent.0.clone().into(),
        }
    }

    pub(super) fn to_group(&self) -> Result<Group, serde_json::Error> {
        Ok(Group {
            doc: self.doc.as_deref().map(serde_json::from_slice).transpose()?,
            destroyed_at: self.destroyed_at,
            recent: Recent(self.recent.to_vec()),
        })
    }
}

/// The groups of each assigned partition.
pub(super) type Partitions = HashMap<i32, HashMap<String, Stored>>;

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
    state_reader_with(config, role, &[])
}

/// [`state_reader`] with more client properties (the reconciler bounds its prefetch).
pub(crate) fn state_reader_with(
    config: &StateConfig,
    role: &str,
    extra: &[(&str, &str)],
) -> Result<BaseConsumer<Reader>, KafkaError> {
    let mut client = client(config);
    for (k, v) in extra {
        client.set(*k, *v);
    }
    client
        .set("group.id", format!("{}-{role}", config.group_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create_with_context(Reader)
}

/// Reads `partitions` of the state topic from their beginning, handing each record that has
/// a key to `each`, until every partition is at its end of file or, with `ends`, its position
/// has passed the end given for it (the ends seen when a read began that must not follow a
/// writer: transaction markers have offsets too, and are never delivered). `turn` runs before
/// each poll, and ends the read with its error.
pub(crate) fn read_state_topic(
    reader: &BaseConsumer<Reader>,
    topic: &str,
    partitions: &[i32],
    ends: Option<&HashMap<i32, i64>>,
    poll: Duration,
    mut turn: impl FnMut() -> Result<(), StateError>,
    mut each: impl FnMut(String, &BorrowedMessage<'_>),
) -> Result<(), StateError> {
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    reader.assign(&list)?;
    let mut open: Vec<i32> = partitions.to_vec();
    while !open.is_empty() {
        turn()?;
        let polled = reader.poll(poll);
        if let Some(ends) = ends {
            close_passed(reader, ends, &mut open);
        }
        match polled {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => open.retain(|q| *q != p),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => {
                if let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) {
                    each(key, &m);
                }
            }
        }
    }
    Ok(())
}

/// Leaves out of `open` the partitions whose position has passed their end in `ends`.
fn close_passed(reader: &BaseConsumer<Reader>, ends: &HashMap<i32, i64>, open: &mut Vec<i32>) {
    let Ok(positions) = reader.position() else {
        return;
    };
    for e in positions.elements() {
        if let (Offset::Offset(at), Some(end)) = (e.offset(), ends.get(&e.partition())) {
            if at >= *end {
                open.retain(|q| *q != e.partition());
            }
        }
    }
}

/// Reads the state topic's `partitions` from the beginning to the end of what is committed.
/// Gives up (with an error) once `stop` is set.
/// Tells `health` the loop is alive while it reads.
pub(super) fn read_state(
    config: &StateConfig,
    partitions: &[i32],
    stop: &AtomicBool,
    health: &Health,
) -> Result<Partitions, StateError> {
    let mut out: Partitions = partitions.iter().map(|p| (*p, HashMap::new())).collect();
    let reader = state_reader(config, "rebuild")?;
    let turn = || {
        if stop.load(Ordering::Relaxed) {
            return Err(StateError::Stopped);
        }
        health.beat();
        Ok(())
    };
    let each = |key: String, m: &BorrowedMessage<'_>| {
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
    };
    read_state_topic(
        &reader,
        &config.state_topic,
        partitions,
        None,
        Duration::from_secs(1),
        turn,
        each,
    )?;
    Ok(out)
}

impl Materializer {
    /// Reads the state of `partitions` back from the state topic. The committed offsets are
    /// asked for first: with `read_committed` that waits for any transaction that still holds
    /// offsets of these partitions, so the state read next matches them.
    pub(super) fn rebuild(&mut self, partitions: &[i32]) -> Result<(), StateError> {
        let started = Instant::now();
        let rebuilt = loop {
            match self.try_rebuild(partitions) {
                Ok(rebuilt) => break rebuilt,
                Err(StateError::Kafka(e)) if !self.stop.load(Ordering::Relaxed) => {
                    log::warn!("rebuilding partitions {partitions:?} failed, retrying in 1 s: {e}");
                    self.health.beat();
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

    pub(super) fn try_rebuild(&self, partitions: &[i32]) -> Result<Partitions, StateError> {
        let mut offsets = TopicPartitionList::new();
        for p in partitions {
            offsets.add_partition(&self.config.shared.topic, *p);
        }
        self.consumer.committed_offsets(offsets, CALL_TIMEOUT)?;
        read_state(&self.config, partitions, &self.stop, &self.health)
    }
}
