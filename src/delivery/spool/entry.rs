//! The spool's on-disk entry: a CRC-32 envelope around a versioned body.
//!
//! Every layout, past and future, keeps the envelope `crc32(rest) | rest`, so damage (the CRC
//! fails) is always told apart from a format this release does not know (the CRC holds, the
//! version byte is unknown).
//!
//! - v0, the first release's layout, only in the tables `events` and `dead`:
//!   `crc32 | spooled_at_ms (u64 LE) | record`. It has no version byte, and its first body byte
//!   (the low byte of a timestamp) can take any value, so the table it sits in is what says
//!   it is v0.
//! - v1, in the tables `events_v1` and `dead_v1`: `crc32 | version = 1 | spooled_at_ms (u64 LE)
//!   | record`. A later layout writes its own version byte into the same tables.
//! - v2, in the same tables: `crc32 | version = 2 | spooled_at_ms (u64 LE) | topic (u32 LE
//!   length, UTF-8) | record`. Since the relay publishes to several topics, each entry names
//!   its own; v0 and v1 entries were all for `KAFKA_TOPIC` and read back with an empty topic,
//!   which the publisher sends there.
//!
//! `record` is [`Record::encode_into`]'s length-prefixed form.

use crate::delivery::record::Record;

/// The layout this release writes.
pub const CURRENT: u8 = 2;
/// The first versioned layout, without a topic; still read.
const V1: u8 = 1;

/// Which tables an entry was read from, and so how its body starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// v0: no version byte.
    Legacy,
    /// A version byte first (v1 and later).
    Versioned,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Entry {
        spooled_at_ms: u64,
        record: Record,
    },
    /// The CRC fails, or the body does not parse.
    Damaged,
    /// The CRC holds but the version is newer than this release reads.
    Unknown(u8),
}

/// The current layout: `crc32 | CURRENT | spooled_at_ms | topic | record`.
pub fn encode(spooled_at_ms: u64, record: &Record) -> Vec<u8> {
    let mut entry = vec![0; 4];
    entry.push(CURRENT);
    entry.extend_from_slice(&spooled_at_ms.to_le_bytes());
    entry.extend_from_slice(&(record.topic.len() as u32).to_le_bytes());
    entry.extend_from_slice(record.topic.as_bytes());
    record.encode_into(&mut entry);
    let crc = crc32fast::hash(&entry[4..]);
    entry[..4].copy_from_slice(&crc.to_le_bytes());
    entry
}

pub fn decode(layout: Layout, entry: &[u8]) -> Decoded {
    match header(layout, entry) {
        None => Decoded::Damaged,
        Some((Err(version), _)) => Decoded::Unknown(version),
        Some((Ok((spooled_at_ms, topic)), record)) => {
            match (String::from_utf8(topic.to_vec()), Record::decode(record)) {
                (Ok(topic), Some(record)) => Decoded::Entry {
                    spooled_at_ms,
                    record: Record { topic, ..record },
                },
                _ => Decoded::Damaged,
            }
        }
    }
}

/// The entry's version, checksum checked: `None` when damaged.
pub fn version(layout: Layout, entry: &[u8]) -> Option<u8> {
    let body = checked(entry)?;
    match layout {
        Layout::Legacy => Some(0),
        Layout::Versioned => body.first().copied(),
    }
}

/// When the entry was spooled, checksum checked: `None` when damaged or of an unknown version.
pub fn spooled_at(layout: Layout, entry: &[u8]) -> Option<u64> {
    header(layout, entry)?.0.ok().map(|(at, _)| at)
}

/// The checksum-checked body after the CRC.
fn checked(entry: &[u8]) -> Option<&[u8]> {
    let (crc, body) = entry.split_at_checked(4)?;
    (crc32fast::hash(body).to_le_bytes() == crc).then_some(body)
}

/// `spooled_at_ms` and the topic's bytes.
type Head<'a> = (u64, &'a [u8]);

/// `(Ok((spooled_at_ms, topic bytes)) or Err(unknown version), record bytes)`; `None` when
/// damaged. v0 and v1 entries have an empty topic.
fn header(layout: Layout, entry: &[u8]) -> Option<(Result<Head<'_>, u8>, &[u8])> {
    let body = checked(entry)?;
    let (version, rest) = match layout {
        Layout::Legacy => (0, body),
        Layout::Versioned => match body.split_first()? {
            (&v @ (V1 | CURRENT), rest) => (v, rest),
            (&version, _) => return Some((Err(version), &[])),
        },
    };
    let (at, rest) = rest.split_at_checked(8)?;
    let at = u64::from_le_bytes(at.try_into().ok()?);
    if version < CURRENT {
        return Some((Ok((at, &[])), rest));
    }
    let (len, rest) = rest.split_at_checked(4)?;
    let (topic, record) = rest.split_at_checked(u32::from_le_bytes(len.try_into().ok()?) as usize)?;
    Some((Ok((at, topic)), record))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn record(group: &str) -> Record {
        Record {
            topic: String::new(),
            key: group.into(),
            payload: format!(r#"{{"group_id":"{group}"}}"#).into_bytes(),
            headers: vec![("ce_id".into(), "1".into())],
        }
    }

    /// The previous release's `encode`, verbatim: `crc32 | spooled_at_ms | record`.
    pub fn encode_v0(spooled_at_ms: u64, record: &Record) -> Vec<u8> {
        let mut body = spooled_at_ms.to_le_bytes().to_vec();
        record.encode_into(&mut body);
        let mut entry = crc32fast::hash(&body).to_le_bytes().to_vec();
        entry.extend_from_slice(&body);
        entry
    }

    /// An entry of a later layout: the envelope holds, the body is unknown.
    pub fn encode_future(version: u8) -> Vec<u8> {
        let body = [version, 0xAB, 0xCD];
        let mut entry = crc32fast::hash(&body).to_le_bytes().to_vec();
        entry.extend_from_slice(&body);
        entry
    }

    #[test]
    fn a_new_entry_round_trips_and_carries_its_version() {
        let entry = encode(7, &record("a"));
        assert_eq!(entry[4], CURRENT);
        assert_eq!(
            decode(Layout::Versioned, &entry),
            Decoded::Entry {
                spooled_at_ms: 7,
                record: record("a")
            }
        );
        assert_eq!(version(Layout::Versioned, &entry), Some(CURRENT));
        assert_eq!(spooled_at(Layout::Versioned, &entry), Some(7));
    }

    /// The first versioned layout: `crc32 | 1 | spooled_at_ms | record`, no topic.
    fn encode_v1(spooled_at_ms: u64, record: &Record) -> Vec<u8> {
        let mut body = vec![V1];
        body.extend_from_slice(&spooled_at_ms.to_le_bytes());
        record.encode_into(&mut body);
        let mut entry = crc32fast::hash(&body).to_le_bytes().to_vec();
        entry.extend_from_slice(&body);
        entry
    }

    #[test]
    fn the_topic_survives_and_a_v1_entry_reads_back_without_one() {
        let with_topic = Record {
            topic: "tim.webhooks".into(),
            ..record("a")
        };
        assert_eq!(
            decode(Layout::Versioned, &encode(3, &with_topic)),
            Decoded::Entry {
                spooled_at_ms: 3,
                record: with_topic.clone()
            }
        );
        assert_eq!(
            decode(Layout::Versioned, &encode_v1(4, &with_topic)),
            Decoded::Entry {
                spooled_at_ms: 4,
                record: record("a")
            }
        );
        assert_eq!(version(Layout::Versioned, &encode_v1(4, &with_topic)), Some(V1));
    }

    #[test]
    fn a_legacy_entry_is_read() {
        let entry = encode_v0(9, &record("old"));
        assert_eq!(
            decode(Layout::Legacy, &entry),
            Decoded::Entry {
                spooled_at_ms: 9,
                record: record("old")
            }
        );
        assert_eq!(version(Layout::Legacy, &entry), Some(0));
    }

    #[test]
    fn an_unknown_version_is_reported_not_taken_for_damage() {
        let entry = encode_future(3);
        assert_eq!(decode(Layout::Versioned, &entry), Decoded::Unknown(3));
        assert_eq!(version(Layout::Versioned, &entry), Some(3));
        assert_eq!(spooled_at(Layout::Versioned, &entry), None);
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        for layout in [Layout::Versioned, Layout::Legacy] {
            let good = match layout {
                Layout::Versioned => encode(7, &record("a")),
                Layout::Legacy => encode_v0(7, &record("a")),
            };
            for i in 0..good.len() {
                let mut entry = good.clone();
                entry[i] ^= 1;
                assert_eq!(decode(layout, &entry), Decoded::Damaged, "{layout:?} byte {i}");
                assert_eq!(version(layout, &entry), None);
            }
            assert_eq!(decode(layout, &good[..3]), Decoded::Damaged);
        }
    }
}
