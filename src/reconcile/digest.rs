//! What the state topic holds, kept small enough for a million groups: per group, one 64-bit
//! hash per compared field ([`Digest`]). The sweep hashes Tencent's group the same way, after
//! folding its snapshot into an empty document, so both sides are compared in the fold's own
//! terms (its empty strings, its member tracking), never by a second reading of the rules.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};

use crate::state::fold::GroupState;
use crate::state::materialize::config::StateConfig;
use crate::state::materialize::rebuild::{read_state_topic, state_reader_with};
use crate::state::materialize::show::partition_ids;
use crate::state::materialize::StateError;

/// The compared fields, in the order of a [`Digest`]'s hashes; the names are the metric's
/// `field` label (`tim_relay_reconcile_drift_total`).
pub const FIELDS: [&str; 11] = [
    "incomplete",
    "group_type",
    "name",
    "introduction",
    "notification",
    "face_url",
    "owner",
    "custom",
    "attrs",
    "members",
    "member_count",
];

/// One hash per field of [`FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u64; 11]);

fn hash_of(value: impl Hash) -> u64 {
    // SipHash with fixed keys: the same on both sides of one comparison, which is all it needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

impl Digest {
    pub fn of(doc: &GroupState) -> Self {
        let members: Vec<(&String, &Option<String>, &Option<String>)> = doc
            .members
            .iter()
            .map(|(a, m)| (a, &m.role, &m.name_card))
            .collect();
        Digest([
            hash_of(doc.complete),
            hash_of(&doc.group_type),
            hash_of(&doc.name),
            hash_of(&doc.introduction),
            hash_of(&doc.notification),
            hash_of(&doc.face_url),
            hash_of(&doc.owner),
            hash_of(&doc.custom),
            hash_of(&doc.attrs),
            hash_of((doc.members_tracked, &members)),
            hash_of(doc.member_count),
        ])
    }

    /// The fields whose hashes differ.
    pub fn differences(&self, other: &Digest) -> Vec<&'static str> {
        FIELDS
            .iter()
            .zip(self.0.iter().zip(other.0.iter()))
            .filter(|(_, (a, b))| a != b)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// Every live group of the state topic, and the custom field keys any of them holds.
#[derive(Debug, Default)]
pub struct Known {
    pub groups: HashMap<String, Known1>,
    /// Custom field keys seen in any document (or, during a sweep, in any answer): asked for
    /// by name when a group must be read with a `ResponseFilter`.
    pub custom_keys: BTreeSet<String>,
}

/// One live group of the state topic.
#[derive(Debug, Clone)]
pub struct Known1 {
    pub digest: Digest,
    pub group_type: Option<String>,
}

/// Reads the state topic from its beginning to its committed end. A topic that does not exist
/// yet is an empty state (the materializer creates it); documents that do not parse are left
/// out, so the sweep sees their groups as missing and repairs them.
pub fn load(config: &StateConfig) -> Result<Known, StateError> {
    // librdkafka prefetches up to 64 MiB by default: with documents of hundreds of members
    // that was most of the reconciler's 311 MiB at 100,000 groups. The index needs one
    // document at a time.
    let reader = state_reader_with(config, "reconcile", &[("queued.max.messages.kbytes", "8192")])?;
    let metadata = reader.fetch_metadata(Some(&config.state_topic), Duration::from_secs(10))?;
    let partitions = partition_ids(&metadata);
    let mut known = Known::default();
    if partitions.is_empty() {
        log::warn!(
            "the state topic {} (KAFKA_STATE_TOPIC) does not exist yet: every group counts as missing",
            config.state_topic
        );
        return Ok(known);
    }
    // To the ends seen now: the materializer keeps writing while the sweep reads, so "until
    // the end" would never come.
    let mut ends = HashMap::new();
    for p in &partitions {
        let (_, high) = reader.fetch_watermarks(&config.state_topic, *p, Duration::from_secs(10))?;
        if high > 0 {
            ends.insert(*p, high);
        }
    }
    if ends.is_empty() {
        return Ok(known);
    }
    let written: Vec<i32> = partitions.into_iter().filter(|p| ends.contains_key(p)).collect();
    let each = |key: String, m: &BorrowedMessage<'_>| {
        let doc = m.payload().map(serde_json::from_slice::<GroupState>);
        match doc {
            None => {
                known.groups.remove(&key);
            }
            Some(Ok(doc)) => {
                known.custom_keys.extend(doc.custom.keys().cloned());
                let entry = Known1 {
                    digest: Digest::of(&doc),
                    group_type: doc.group_type.clone(),
                };
                known.groups.insert(key, entry);
            }
            Some(Err(e)) => {
                log::warn!("a state document that does not parse is left out: {e}");
                known.groups.remove(&key);
            }
        }
    };
    let (topic, poll) = (&config.state_topic, Duration::from_millis(500));
    read_state_topic(&reader, topic, &written, Some(&ends), poll, || Ok(()), each)?;
    Ok(known)
}
