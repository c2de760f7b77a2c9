//! The durable local spool: events answered OK that Kafka has not acknowledged yet.
//!
//! Stored in a redb database (crash-safe, checksummed commits, fsync on every commit). Each
//! entry also carries its own CRC-32, so a damaged entry is found, logged and set aside rather
//! than sent or allowed to panic. Appends from concurrent callbacks share one commit (group
//! commit on a dedicated writer thread), so a burst costs one fsync, not one per callback.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::{oneshot, Notify};

use crate::record::Record;

/// redb's page cache; redb's default is 1 GiB, and with it a full 1 GiB spool was held in
/// memory (1.46 GB resident) and some of it stayed after the drain. The spool is written at its
/// tail and read once at its head, so the cache only needs the pages of one commit and the
/// B-tree's upper levels: 16 MiB holds a 500-entry forwarding batch many times over. Pages it
/// does not hold are read back through the OS page cache, which is not the relay's memory. Half
/// of it also bounds a write transaction's dirty pages: redb writes the excess out early.
pub const CACHE_BYTES: usize = 16 << 20;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Entries Kafka refused for good (too large, not authorized): kept, counted, never dropped.
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full ({bytes} of {max} bytes used)")]
    Full { bytes: u64, max: u64 },
    #[error("spool storage failed: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Storage(e.to_string())
}

struct Append {
    entry: Vec<u8>,
    done: oneshot::Sender<Result<(), SpoolError>>,
}

struct Shared {
    db: Database,
    events: AtomicU64,
    bytes: AtomicU64,
    dead: AtomicU64,
    max_bytes: u64,
    appended: Notify,
}

/// A handle to the spool; cheap to clone. The database closes when the last handle is dropped.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
    writer: Arc<Writer>,
}

/// The writer thread's queue; dropping it ends the thread and waits for it.
struct Writer {
    queue: Option<mpsc::Sender<Append>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One spooled entry, in arrival order.
pub struct Spooled {
    pub seq: u64,
    pub spooled_at_ms: u64,
    pub record: Record,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`. A database that cannot be opened even after
    /// redb's own repair is moved aside with an `error` line and a new one is started.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(|e| storage(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("spool.redb");
        let db = match open_db(&path) {
            Ok(db) => db,
            // Only damage is set aside; a spool locked by another process, or an I/O error, stops
            // start-up instead, so data is never moved away from under its owner.
            Err(e @ redb::DatabaseError::Storage(redb::StorageError::Corrupted(_))) => {
                let aside = PathBuf::from(format!("{}.corrupt-{}", path.display(), now_ms()));
                log::error!(
                    "spool {} is damaged beyond repair ({e}); moved to {}",
                    path.display(),
                    aside.display()
                );
                std::fs::rename(&path, &aside).map_err(storage)?;
                open_db(&path).map_err(storage)?
            }
            Err(e) => return Err(storage(format!("cannot open {}: {e}", path.display()))),
        };
        let (events, bytes, dead) = Self::count(&db)?;
        if events > 0 {
            log::info!(
                "spool holds {events} events ({bytes} bytes) from an earlier run; forwarding them first"
            );
        }
        let shared = Arc::new(Shared {
            db,
            events: AtomicU64::new(events),
            bytes: AtomicU64::new(bytes),
            dead: AtomicU64::new(dead),
            max_bytes,
            appended: Notify::new(),
        });
        let (sender, queue) = mpsc::channel();
        let for_writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || write_loop(&for_writer, queue))
            .map_err(storage)?;
        let writer = Arc::new(Writer {
            queue: Some(sender),
            thread: Some(thread),
        });
        Ok(Self { shared, writer })
    }

    fn count(db: &Database) -> Result<(u64, u64, u64), SpoolError> {
        let tx = db.begin_write().map_err(storage)?;
        let counts = {
            let events = tx.open_table(EVENTS).map_err(storage)?;
            let dead = tx.open_table(DEAD).map_err(storage)?;
            let mut bytes = 0;
            for item in events.iter().map_err(storage)? {
                bytes += item.map_err(storage)?.1.value().len() as u64;
            }
            (
                events.len().map_err(storage)?,
                bytes,
                dead.len().map_err(storage)?,
            )
        };
        tx.commit().map_err(storage)?;
        Ok(counts)
    }

    /// Appends a record; returns once it is committed to disk (fsynced).
    pub async fn append(&self, record: &Record) -> Result<(), SpoolError> {
        let (done, result) = oneshot::channel();
        let entry = encode(now_ms(), record);
        self.writer
            .queue
            .as_ref()
            .ok_or_else(|| storage("spool writer stopped"))?
            .send(Append { entry, done })
            .map_err(|_| storage("spool writer stopped"))?;
        result.await.map_err(|_| storage("spool writer stopped"))?
    }

    pub fn is_empty(&self) -> bool {
        self.shared.events.load(Ordering::Acquire) == 0
    }

    /// (events, bytes) waiting to be forwarded.
    pub fn depth(&self) -> (u64, u64) {
        (
            self.shared.events.load(Ordering::Acquire),
            self.shared.bytes.load(Ordering::Acquire),
        )
    }

    pub fn dead_events(&self) -> u64 {
        self.shared.dead.load(Ordering::Acquire)
    }

    pub fn has_room(&self) -> bool {
        self.shared.bytes.load(Ordering::Acquire) < self.shared.max_bytes
    }

    /// Resolves when something is appended (or at once if something already was).
    pub async fn appended(&self) {
        self.shared.appended.notified().await
    }

    /// The oldest entries, up to `max`, in arrival order. Blocking. Damaged entries are moved
    /// to the dead table with an `error` line.
    pub fn oldest(&self, max: usize) -> Result<Vec<Spooled>, SpoolError> {
        let mut batch = Vec::new();
        let mut damaged = Vec::new();
        {
            let tx = self.shared.db.begin_read().map_err(storage)?;
            let table = tx.open_table(EVENTS).map_err(storage)?;
            for item in table.iter().map_err(storage)?.take(max) {
                let (seq, value) = item.map_err(storage)?;
                match decode(value.value()) {
                    Some((spooled_at_ms, record)) => batch.push(Spooled {
                        seq: seq.value(),
                        spooled_at_ms,
                        record,
                    }),
                    None => damaged.push(seq.value()),
                }
            }
        }
        if !damaged.is_empty() {
            log::error!(
                "spool: {} entries failed their checksum; moved to the dead table",
                damaged.len()
            );
            self.settle(&[], &damaged)?;
        }
        Ok(batch)
    }

    /// Age of the oldest waiting entry.
    pub fn oldest_age(&self) -> Option<Duration> {
        let first = self.oldest(1).ok()?.into_iter().next()?;
        Some(Duration::from_millis(
            now_ms().saturating_sub(first.spooled_at_ms),
        ))
    }

    /// Removes delivered entries and moves refused ones to the dead table, in one commit. Blocking.
    pub fn settle(&self, delivered: &[u64], refused: &[u64]) -> Result<(), SpoolError> {
        let tx = self.shared.db.begin_write().map_err(storage)?;
        let (mut freed, mut removed, mut moved) = (0u64, 0u64, 0u64);
        {
            let mut events = tx.open_table(EVENTS).map_err(storage)?;
            let mut dead = tx.open_table(DEAD).map_err(storage)?;
            for seq in delivered {
                if let Some(v) = events.remove(seq).map_err(storage)? {
                    freed += v.value().len() as u64;
                    removed += 1;
                }
            }
            for seq in refused {
                if let Some(v) = events.remove(seq).map_err(storage)? {
                    let entry = v.value().to_vec();
                    freed += entry.len() as u64;
                    removed += 1;
                    moved += 1;
                    dead.insert(seq, entry.as_slice()).map_err(storage)?;
                }
            }
        }
        tx.commit().map_err(storage)?;
        self.shared.events.fetch_sub(removed, Ordering::AcqRel);
        self.shared.bytes.fetch_sub(freed, Ordering::AcqRel);
        self.shared.dead.fetch_add(moved, Ordering::AcqRel);
        Ok(())
    }
}

fn open_db(path: &Path) -> Result<Database, redb::DatabaseError> {
    let shown = path.display().to_string();
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .set_repair_callback(move |_| {
            log::error!("spool {shown} was not closed cleanly; repairing (checksums decide what is kept)")
        })
        .create(path)
}

/// The writer thread: takes every append waiting, commits them together, answers each.
fn write_loop(shared: &Shared, queue: mpsc::Receiver<Append>) {
    while let Ok(first) = queue.recv() {
        let mut pending = vec![first];
        pending.extend(queue.try_iter());
        let result = commit_batch(shared, &mut pending);
        for (append, ok) in pending.into_iter().zip(result) {
            let _ = append.done.send(ok);
        }
        shared.appended.notify_one();
    }
}

fn commit_batch(shared: &Shared, pending: &mut [Append]) -> Vec<Result<(), SpoolError>> {
    let mut bytes = shared.bytes.load(Ordering::Acquire);
    let mut outcome: Vec<Result<(), SpoolError>> = Vec::with_capacity(pending.len());
    let mut write = || -> Result<(u64, u64), SpoolError> {
        let tx = shared.db.begin_write().map_err(storage)?;
        let mut added = (0u64, 0u64);
        {
            let mut table = tx.open_table(EVENTS).map_err(storage)?;
            let mut seq = table
                .last()
                .map_err(storage)?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(0);
            for append in pending.iter() {
                let len = append.entry.len() as u64;
                if bytes + len > shared.max_bytes {
                    outcome.push(Err(SpoolError::Full {
                        bytes,
                        max: shared.max_bytes,
                    }));
                    continue;
                }
                table.insert(seq, append.entry.as_slice()).map_err(storage)?;
                seq += 1;
                bytes += len;
                added = (added.0 + 1, added.1 + len);
                outcome.push(Ok(()));
            }
        }
        tx.commit().map_err(storage)?;
        Ok(added)
    };
    match write() {
        Ok((events, added_bytes)) => {
            shared.events.fetch_add(events, Ordering::AcqRel);
            shared.bytes.fetch_add(added_bytes, Ordering::AcqRel);
            outcome
        }
        Err(e) => {
            log::error!("spool commit failed: {e}");
            pending.iter().map(|_| Err(storage(&e))).collect()
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// `crc32 | spooled_at_ms | record`, the CRC covering everything after it.
fn encode(spooled_at_ms: u64, record: &Record) -> Vec<u8> {
    let mut body = spooled_at_ms.to_le_bytes().to_vec();
    record.encode_into(&mut body);
    let mut entry = crc32fast::hash(&body).to_le_bytes().to_vec();
    entry.extend_from_slice(&body);
    entry
}

fn decode(entry: &[u8]) -> Option<(u64, Record)> {
    let (crc, body) = entry.split_at_checked(4)?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let (at, record) = body.split_at_checked(8)?;
    Some((u64::from_le_bytes(at.try_into().ok()?), Record::decode(record)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(group: &str) -> Record {
        Record {
            key: group.into(),
            payload: format!(r#"{{"group_id":"{group}"}}"#).into_bytes(),
            headers: vec![("ce_id".into(), "1".into())],
        }
    }

    #[tokio::test]
    async fn appended_records_come_back_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for g in ["a", "b", "c"] {
            spool.append(&record(g)).await.unwrap();
        }
        assert_eq!(spool.depth().0, 3);
        let first = spool.oldest(2).unwrap();
        spool.settle(&[first[0].seq], &[]).unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let keys: Vec<String> = spool
            .oldest(10)
            .unwrap()
            .into_iter()
            .map(|s| s.record.key)
            .collect();
        assert_eq!(keys, ["b", "c"]);
        assert_eq!(spool.depth().0, 2);
    }

    #[tokio::test]
    async fn a_full_spool_refuses_the_append() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 100).unwrap();
        spool.append(&record("a")).await.unwrap();
        assert!(matches!(
            spool.append(&record("b")).await,
            Err(SpoolError::Full { .. })
        ));
        assert_eq!(spool.depth().0, 1);
    }

    #[tokio::test]
    async fn a_spool_open_elsewhere_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let first = Spool::open(dir.path(), 1 << 20).unwrap();
        first.append(&record("a")).await.unwrap();
        let err = Spool::open(dir.path(), 1 << 20)
            .err()
            .expect("second open refused");
        assert!(err.to_string().contains("cannot open"), "{err}");
        assert_eq!(first.oldest(10).unwrap().len(), 1);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing moved aside"
        );
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let mut entry = encode(7, &record("a"));
        assert_eq!(decode(&entry).unwrap().1.key, "a");
        let last = entry.len() - 1;
        entry[last] ^= 1;
        assert!(decode(&entry).is_none());
        assert!(decode(&entry[..3]).is_none());
    }

    #[tokio::test]
    async fn a_truncated_database_file_never_panics_and_the_spool_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = Spool::open(dir.path(), 1 << 20).unwrap();
            for i in 0..50 {
                spool.append(&record(&format!("g{i}"))).await.unwrap();
            }
        }
        let path = dir.path().join("spool.redb");
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len / 3).unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&record("after")).await.unwrap();
        assert!(spool.oldest(100).unwrap().iter().any(|s| s.record.key == "after"));
    }
}
