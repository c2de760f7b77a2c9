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
//!
//! `record` is [`Record::encode_into`]'s length-prefixed form.

use crate::record::Record;

/// The layout this release writes.
pub const CURRENT: u8 = 1;

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

/// The current layout: `crc32 | CURRENT | spooled_at_ms | record`.
pub fn encode(spooled_at_ms: u64, record: &Record) -> Vec<u8> {
    let mut entry = vec![0; 4];
    entry.push(CURRENT);
    entry.extend_from_slice(&spooled_at_ms.to_le_bytes());
    record.encode_into(&mut entry);
    let crc = crc32fast::hash(&entry[4..]);
    entry[..4].copy_from_slice(&crc.to_le_bytes());
    entry
}

pub fn decode(layout: Layout, entry: &[u8]) -> Decoded {
    match header(layout, entry) {
        None => Decoded::Damaged,
        Some((Err(version), _)) => Decoded::Unknown(version),
        Some((Ok(spooled_at_ms), record)) => match Record::decode(record) {
            Some(record) => Decoded::Entry {
                spooled_at_ms,
                record,
            },
            None => Decoded::Damaged,
        },
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
    header(layout, entry)?.0.ok()
}

/// The checksum-checked body after the CRC.
fn checked(entry: &[u8]) -> Option<&[u8]> {
    let (crc, body) = entry.split_at_checked(4)?;
    (crc32fast::hash(body).to_le_bytes() == crc).then_some(body)
}

/// `(Ok(spooled_at_ms) or Err(unknown version), record bytes)`; `None` when damaged.
fn header(layout: Layout, entry: &[u8]) -> Option<(Result<u64, u8>, &[u8])> {
    let body = checked(entry)?;
    let rest = match layout {
        Layout::Legacy => body,
        Layout::Versioned => match body.split_first()? {
            (&CURRENT, rest) => rest,
            (&version, _) => return Some((Err(version), &[])),
        },
    };
    let (at, record) = rest.split_at_checked(8)?;
    Some((Ok(u64::from_le_bytes(at.try_into().ok()?)), record))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn record(group: &str) -> Record {
        Record {
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
        let entry = encode_future(2);
        assert_eq!(decode(Layout::Versioned, &entry), Decoded::Unknown(2));
        assert_eq!(version(Layout::Versioned, &entry), Some(2));
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
