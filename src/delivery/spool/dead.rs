//! The dead table: entries Kafka refused for what they are (too large, invalid), and entries
//! that failed their checksum. Each is kept with why it was set aside, can be listed, and can be
//! sent again once the cause is fixed (an operator's replay), in spool order.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

use super::entry::{self, Decoded, Layout};
use super::{open_read, storage, Spool, SpoolError, LEGACY, VERSIONED};

/// Why each dead entry was set aside: (layout, key in that layout's dead table) → reason.
pub(super) const REASONS: TableDefinition<'static, (u8, u64), &'static str> =
    TableDefinition::new("dead_reasons");

/// The reason of an entry that failed its checksum (or did not parse).
pub(super) const DAMAGED: &str = "Damaged";
/// The reason shown for entries set aside before reasons were kept.
const UNRECORDED: &str = "Unrecorded";

pub(super) fn layout_id(layout: Layout) -> u8 {
    match layout {
        Layout::Legacy => 0,
        Layout::Versioned => 1,
    }
}

/// What the dead table holds, for an operator (`GET /spool/dead`, `tim-relay dead list`).
#[derive(Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DeadSummary {
    pub events: u64,
    pub bytes: u64,
    /// When the oldest and newest dead event were answered OK (ms since the epoch).
    pub oldest_spooled_at_ms: Option<u64>,
    pub newest_spooled_at_ms: Option<u64>,
    /// Counts by topic (`""`: the default topic, `KAFKA_TOPIC`; `"?"`: unreadable) and reason.
    pub by_topic_and_reason: Vec<DeadGroup>,
}

impl DeadSummary {
    /// Shows records without a topic of their own under `KAFKA_TOPIC`, where they are sent.
    pub fn name_default_topic(&mut self, default_topic: &str) {
        for group in &mut self.by_topic_and_reason {
            if group.topic.is_empty() {
                group.topic = default_topic.to_string();
            }
        }
    }
}

#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DeadGroup {
    pub topic: String,
    pub reason: String,
    pub events: u64,
}

/// What a replay did.
#[derive(Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Replayed {
    /// Entries moved back to the end of the spool, for the forwarder to send.
    pub replayed: u64,
    /// Entries left in the dead table: damaged ones (never sent), and those the spool had no
    /// room for (replay again once it has).
    pub left: u64,
}

impl Spool {
    /// Counts the dead table by topic and reason, with the oldest and newest entry. Blocking;
    /// reads every dead entry (the table is meant to be small).
    pub fn dead_summary(&self) -> Result<DeadSummary, SpoolError> {
        let db = self.shared.db()?;
        let tx = db.begin_read().map_err(storage)?;
        let reasons = open_read(&tx, REASONS)?;
        let mut summary = DeadSummary::default();
        let mut groups: BTreeMap<(String, String), u64> = BTreeMap::new();
        for tables in [LEGACY, VERSIONED] {
            let Some(dead) = open_read(&tx, tables.dead)? else {
                continue;
            };
            for item in dead.iter().map_err(storage)? {
                let (key, value) = item.map_err(storage)?;
                let (key, value) = (key.value(), value.value());
                summary.events += 1;
                summary.bytes += value.len() as u64;
                let reason = match &reasons {
                    Some(r) => r
                        .get((layout_id(tables.layout), key))
                        .map_err(storage)?
                        .map(|v| v.value().to_string()),
                    None => None,
                };
                let topic = match entry::decode(tables.layout, value) {
                    Decoded::Entry {
                        spooled_at_ms,
                        record,
                    } => {
                        summary.oldest_spooled_at_ms = Some(
                            summary
                                .oldest_spooled_at_ms
                                .map_or(spooled_at_ms, |o| o.min(spooled_at_ms)),
                        );
                        summary.newest_spooled_at_ms = Some(
                            summary
                                .newest_spooled_at_ms
                                .map_or(spooled_at_ms, |n| n.max(spooled_at_ms)),
                        );
                        record.topic
                    }
                    Decoded::Damaged | Decoded::Unknown(_) => "?".to_string(),
                };
                *groups
                    .entry((topic, reason.unwrap_or_else(|| UNRECORDED.to_string())))
                    .or_default() += 1;
            }
        }
        summary.by_topic_and_reason = groups
            .into_iter()
            .map(|((topic, reason), events)| DeadGroup {
                topic,
                reason,
                events,
            })
            .collect();
        Ok(summary)
    }

    /// Moves the dead entries back to the end of the spool, oldest first (legacy entries, then
    /// the others, each table in the order its entries were set aside), in one commit, for the
    /// forwarder to send after everything already waiting. Entries that fail their checksum
    /// stay; so do those past `RELAY_SPOOL_MAX_BYTES` (a later replay takes them). Nothing else
    /// in the spool moves. Blocking.
    pub fn replay_dead(&self) -> Result<Replayed, SpoolError> {
        let result = self.move_dead_back();
        if result.is_err() {
            self.shared.recover();
        }
        let replayed = result?;
        if replayed.replayed > 0 {
            self.shared.appended.notify_one();
        }
        Ok(replayed)
    }

    fn move_dead_back(&self) -> Result<Replayed, SpoolError> {
        let shared = &self.shared;
        let _writing = shared.write_lock();
        let db = shared.db()?;
        let tx = db.begin_write().map_err(storage)?;
        let mut done = Replayed::default();
        let (mut added, mut added_bytes, mut taken_bytes) = (0u64, 0u64, 0u64);
        let mut first_at = None;
        let mut bytes = shared.bytes.load(Ordering::Acquire);
        {
            let mut events = tx.open_table(VERSIONED.events).map_err(storage)?;
            let mut reasons = tx.open_table(REASONS).map_err(storage)?;
            let mut seq = events
                .last()
                .map_err(storage)?
                .map_or(0, |(k, _)| k.value() + 1)
                .max(shared.legacy_end);
            for tables in [LEGACY, VERSIONED] {
                let mut dead = tx.open_table(tables.dead).map_err(storage)?;
                let mut back = Vec::new();
                for item in dead.iter().map_err(storage)? {
                    let (key, value) = item.map_err(storage)?;
                    let Decoded::Entry {
                        spooled_at_ms,
                        record,
                    } = entry::decode(tables.layout, value.value())
                    else {
                        done.left += 1;
                        continue;
                    };
                    let encoded = entry::encode(spooled_at_ms, &record);
                    if bytes + encoded.len() as u64 > shared.max_bytes {
                        done.left += 1;
                        continue;
                    }
                    bytes += encoded.len() as u64;
                    taken_bytes += value.value().len() as u64;
                    first_at.get_or_insert(spooled_at_ms);
                    back.push((key.value(), encoded));
                }
                for (key, encoded) in back {
                    events.insert(seq, encoded.as_slice()).map_err(storage)?;
                    seq += 1;
                    dead.remove(key).map_err(storage)?;
                    reasons.remove((layout_id(tables.layout), key)).map_err(storage)?;
                    added += 1;
                    added_bytes += encoded.len() as u64;
                }
            }
        }
        tx.commit().map_err(storage)?;
        if let Some(at) = first_at {
            let _ = shared
                .oldest_ms
                .compare_exchange(0, at, Ordering::AcqRel, Ordering::Acquire);
        }
        shared.events.fetch_add(added, Ordering::AcqRel);
        shared.bytes.fetch_add(added_bytes, Ordering::AcqRel);
        shared.dead.fetch_sub(added, Ordering::AcqRel);
        shared.dead_bytes.fetch_sub(taken_bytes, Ordering::AcqRel);
        done.replayed = added;
        if added > 0 {
            log::warn!(
                "replay: {added} dead events moved back to the end of the spool for forwarding; {} left in the dead table",
                done.left
            );
        }
        Ok(done)
    }
}
