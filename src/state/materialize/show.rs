//! `tim-relay state GROUP_ID`: prints one group's current document from the state topic.

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::config::StateConfig;
use super::{state_reader, StateError, DESTROYED_HEADER};

/// What the state topic holds for one group.
#[derive(Debug, PartialEq)]
pub enum Found {
    /// The document's JSON.
    Live(Vec<u8>),
    /// A tombstone, with when the group was destroyed if known.
    Destroyed(Option<u64>),
    Missing,
}

/// Reads every partition of the state topic to its committed end and keeps the last record
/// of `group_id`.
pub fn find(config: &StateConfig, group_id: &str) -> Result<Found, StateError> {
    let reader = state_reader(config, "reader")?;
    let metadata = reader.fetch_metadata(Some(&config.state_topic), Duration::from_secs(10))?;
    let partitions = partition_ids(&metadata);
    if partitions.is_empty() {
        return Err(StateError::Setup(format!(
            "the state topic {} (KAFKA_STATE_TOPIC) does not exist: is `tim-relay materialize` running?",
            config.state_topic
        )));
    }
    let mut list = TopicPartitionList::new();
    for p in &partitions {
        list.add_partition_offset(&config.state_topic, *p, Offset::Beginning)?;
    }
    reader.assign(&list)?;
    let mut open = partitions;
    let mut found = Found::Missing;
    while !open.is_empty() {
        match reader.poll(Duration::from_secs(1)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => open.retain(|q| *q != p),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => {
                if m.key() != Some(group_id.as_bytes()) {
                    continue;
                }
                found = match m.payload() {
                    Some(doc) => Found::Live(doc.to_vec()),
                    None => Found::Destroyed(m.headers().and_then(|h| {
                        h.iter()
                            .find(|h| h.key == DESTROYED_HEADER)
                            .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
                    })),
                };
            }
        }
    }
    Ok(found)
}

/// The partitions of the one topic a metadata answer is about; none if it does not exist.
pub fn partition_ids(metadata: &rdkafka::metadata::Metadata) -> Vec<i32> {
    metadata
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default()
}
