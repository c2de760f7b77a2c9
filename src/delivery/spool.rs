//! The durable local spool: events answered OK that Kafka has not acknowledged yet.
//!
//! Stored in a redb database (crash-safe, checksummed commits, fsync on every commit). Each
//! entry also carries its own CRC-32 and a format version ([`entry`]), so a damaged entry is
//! found, logged and set aside rather than sent or allowed to panic, and a later release can
//! read what this one wrote. Appends from concurrent callbacks share one commit (group commit
//! on a dedicated writer thread), so a burst costs one fsync, not one per callback.
//!
//! Memory does not grow with the spool: redb's page cache is bounded ([`CACHE_BYTES`]), the
//! forwarder reads a batch at a time, and what `/metrics` shows is kept in atomics, so a scrape
//! never opens a transaction.

mod dead;
mod entry;
mod file;
mod shared;
mod tables;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError, WriteTransaction,
};
use tokio::sync::{oneshot, Notify};

use crate::delivery::record::Record;
pub use dead::{DeadGroup, DeadSummary, Replayed};
use entry::{Decoded, Layout};
pub use file::{default_max_file_bytes, MIN_FILE_BYTES};
use file::{BoundedFile, FileState, LAST_FILL_PERCENT, RESUME_PERCENT};
use shared::*;
use tables::*;
use writer::*;

/// redb's page cache; redb's default is 1 GiB, and with it a full 1 GiB spool was held in
/// memory (1.46 GB resident) and some of it stayed after the drain. The spool is written at its
/// tail and read once at its head, so the cache only needs the pages of one commit and the
/// B-tree's upper levels: 16 MiB holds a 500-entry forwarding batch many times over. Pages it
/// does not hold are read back through the OS page cache, which is not the relay's memory. Half
/// of it also bounds a write transaction's dirty pages: redb writes the excess out early.
pub const CACHE_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full ({bytes} of {max} bytes used)")]
    Full { bytes: u64, max: u64 },
    #[error("spool is full: its file ({file} bytes) is at RELAY_SPOOL_MAX_FILE_BYTES ({max})")]
    FileFull { file: u64, max: u64 },
    #[error("{0}")]
    DiskFull(String),
    #[error("{0} is held by another process (a running relay)")]
    InUse(String),
    #[error("spool storage failed: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Storage(e.to_string())
}

/// A handle to the spool; cheap to clone. The database closes when the last handle is dropped.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
    writer: Arc<Writer>,
}

/// One spooled entry, in arrival order.
pub struct Spooled {
    pub seq: u64,
    pub spooled_at_ms: u64,
    pub record: Record,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`. A database that cannot be opened even after
    /// redb's own repair is moved aside with an `error` line and a new one is started. A spool
    /// holding entries of a newer format than this release reads is refused (see docs/spool.md).
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        Self::open_bounded(dir, max_bytes, default_max_file_bytes(max_bytes))
    }

    /// [`Self::open`], with the file held to `max_file_bytes` on disk (`RELAY_SPOOL_MAX_FILE_BYTES`).
    pub fn open_bounded(dir: &Path, max_bytes: u64, max_file_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(|e| storage(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("spool.redb");
        let file = FileState::new(&path, max_file_bytes);
        let db = match open_db(&file) {
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
                file.reset();
                open_db(&file).map_err(storage)?
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(SpoolError::InUse(path.display().to_string()))
            }
            Err(e) => return Err(storage(format!("cannot open {}: {e}", path.display()))),
        };
        let scan = scan(&db).map_err(|e| storage(format!("{}: {e}", path.display())))?;
        if scan.first_versioned.is_some_and(|first| first < scan.legacy_end) {
            // Only a downgrade to the first release and back writes both with the same numbers.
            return Err(storage(format!(
                "{}: its legacy and current tables overlap (was an older release run on it?); \
                 drain it with the release that wrote the legacy entries, or move it aside",
                path.display()
            )));
        }
        if scan.events > 0 {
            log::info!(
                "spool holds {} events ({} bytes) from an earlier run; forwarding them first",
                scan.events,
                scan.bytes
            );
        }
        if file.len() > max_file_bytes {
            log::warn!(
                "the spool's file ({} MiB) is already larger than RELAY_SPOOL_MAX_FILE_BYTES ({} MiB): \
                 it does not grow further, and appends are refused while it is {}% full",
                file.len() >> 20,
                max_file_bytes >> 20,
                LAST_FILL_PERCENT
            );
        }
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(db)),
            file,
            events: AtomicU64::new(scan.events),
            bytes: AtomicU64::new(scan.bytes),
            dead: AtomicU64::new(scan.dead),
            dead_bytes: AtomicU64::new(scan.dead_bytes),
            full_at: AtomicU64::new(0),
            oldest_ms: AtomicU64::new(scan.oldest_ms),
            legacy_left: AtomicBool::new(scan.legacy_end > 0),
            writing: Mutex::new(()),
            legacy_end: scan.legacy_end,
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

    /// Appends a record; returns once it is committed to disk (fsynced).
    pub async fn append(&self, record: &Record) -> Result<(), SpoolError> {
        self.append_all(std::slice::from_ref(record)).await
    }

    /// Appends the records of one callback, in order, in one commit: all of them or, when the
    /// spool has no room for all, none. Returns once they are on disk (fsynced).
    pub async fn append_all(&self, records: &[Record]) -> Result<(), SpoolError> {
        let (done, result) = oneshot::channel();
        let spooled_at_ms = now_ms();
        let entries = records.iter().map(|r| entry::encode(spooled_at_ms, r)).collect();
        self.writer
            .queue
            .as_ref()
            .ok_or_else(|| storage("spool writer stopped"))?
            .send(Append {
                entries,
                spooled_at_ms,
                done,
            })
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

    /// `RELAY_SPOOL_MAX_BYTES`: appends that would pass it are refused.
    pub fn max_bytes(&self) -> u64 {
        self.shared.max_bytes
    }

    /// Whether an append of a small callback would be taken now (the byte bound, the file
    /// bound and the file system's room).
    pub fn has_room(&self) -> bool {
        self.shared
            .refusal(self.shared.bytes.load(Ordering::Acquire), 1)
            .is_none()
    }

    /// What the spool's gauges show (`tim_relay_spool_*`), from memory: never a transaction.
    pub fn reading(&self, kafka_down: bool) -> crate::ops::metrics::SpoolReading {
        let (events, bytes) = self.depth();
        crate::ops::metrics::SpoolReading {
            events,
            bytes,
            dead_events: self.dead_events(),
            file_bytes: self.file_bytes(),
            max_file_bytes: self.max_file_bytes(),
            disk_full: self.disk_full(),
            oldest_age: self.oldest_age(),
            kafka_down,
        }
    }

    /// The spool file's size on disk.
    pub fn file_bytes(&self) -> u64 {
        self.shared.file.len()
    }

    /// `RELAY_SPOOL_MAX_FILE_BYTES`.
    pub fn max_file_bytes(&self) -> u64 {
        self.shared.file.max_len()
    }

    /// Whether appends are refused now because the file system has no room for the spool.
    pub fn disk_full(&self) -> bool {
        self.shared.file.is_out_of_room()
    }

    /// Resolves when something is appended (or at once if something already was).
    pub async fn appended(&self) {
        self.shared.appended.notified().await
    }

    /// The oldest entries, up to `max`, in arrival order. Blocking. Damaged entries, and
    /// entries of a format this release does not read, are moved to the dead table with an
    /// `error` line.
    pub fn oldest(&self, max: usize) -> Result<Vec<Spooled>, SpoolError> {
        let result = self.read_oldest(max);
        if result.is_err() {
            self.shared.recover();
        }
        result
    }

    fn read_oldest(&self, max: usize) -> Result<Vec<Spooled>, SpoolError> {
        let mut batch = Vec::new();
        let mut damaged = Vec::new();
        {
            let db = self.shared.db()?;
            let tx = db.begin_read().map_err(storage)?;
            for tables in [LEGACY, VERSIONED] {
                let Some(table) = open_read(&tx, tables.events)? else {
                    continue;
                };
                let room = max.saturating_sub(batch.len() + damaged.len());
                for item in table.iter().map_err(storage)?.take(room) {
                    let (seq, value) = item.map_err(storage)?;
                    let seq = seq.value();
                    match entry::decode(tables.layout, value.value()) {
                        Decoded::Entry {
                            spooled_at_ms,
                            record,
                        } => batch.push(Spooled {
                            seq,
                            spooled_at_ms,
                            record,
                        }),
                        Decoded::Damaged => damaged.push((seq, dead::DAMAGED.to_string())),
                        Decoded::Unknown(version) => {
                            log::error!(
                                "spool entry {seq} is in format version {version}, which this release \
                                 does not read; moved to the dead table"
                            );
                            damaged.push((seq, format!("UnknownFormat{version}")));
                        }
                    }
                }
            }
        }
        if !damaged.is_empty() {
            log::error!(
                "spool: {} entries failed their checksum or format check; moved to the dead table",
                damaged.len()
            );
            self.settle(&[], &damaged)?;
        }
        Ok(batch)
    }

    /// When the oldest waiting entry was spooled (ms since the epoch); `None` when empty.
    pub fn oldest_ms(&self) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        match self.shared.oldest_ms.load(Ordering::Acquire) {
            0 => None,
            at => Some(at),
        }
    }

    /// Age of the oldest waiting entry. Reads two atomics: never touches the database.
    pub fn oldest_age(&self) -> Option<Duration> {
        self.oldest_ms()
            .map(|at| Duration::from_millis(now_ms().saturating_sub(at)))
    }

    /// Removes delivered entries and moves refused ones to the dead table with the reason for
    /// each, in one commit. Blocking.
    pub fn settle(&self, delivered: &[u64], refused: &[(u64, String)]) -> Result<(), SpoolError> {
        let result = self.settle_in_one_commit(delivered, refused);
        if result.is_err() {
            self.shared.recover();
        }
        result
    }

    fn settle_in_one_commit(&self, delivered: &[u64], refused: &[(u64, String)]) -> Result<(), SpoolError> {
        let shared = &self.shared;
        let _writing = shared.write_lock();
        let db = shared.db()?;
        let tx = db.begin_write().map_err(storage)?;
        let mut counts = Counts::default();
        let mut legacy_left = shared.legacy_left.load(Ordering::Acquire);
        for tables in [LEGACY, VERSIONED] {
            let ours = |seq: &&u64| shared.tables_for(**seq).layout == tables.layout;
            let delivered: Vec<u64> = delivered.iter().filter(ours).copied().collect();
            let refused: Vec<(u64, String)> = refused.iter().filter(|(seq, _)| ours(&seq)).cloned().collect();
            if delivered.is_empty() && refused.is_empty() {
                continue;
            }
            let now_empty = settle_in(&tx, tables, &delivered, &refused, &mut counts)?;
            if tables.layout == Layout::Legacy && now_empty {
                tx.delete_table(LEGACY.events).map_err(storage)?;
                legacy_left = false;
            }
        }
        let head = head(&tx, legacy_left)?;
        tx.commit().map_err(storage)?;
        if !legacy_left && shared.legacy_left.swap(false, Ordering::AcqRel) {
            log::info!("spool: the entries of the previous format are all forwarded");
        }
        match head {
            Head::Empty => shared.oldest_ms.store(0, Ordering::Release),
            Head::At(at) => shared.oldest_ms.store(at, Ordering::Release),
            // Keeps the removed head's time: the age shown errs on the old side until the
            // damaged entry is set aside.
            Head::Unreadable => {}
        }
        shared.events.fetch_sub(counts.removed, Ordering::AcqRel);
        shared.bytes.fetch_sub(counts.freed, Ordering::AcqRel);
        shared.dead.fetch_add(counts.moved, Ordering::AcqRel);
        shared.dead_bytes.fetch_add(counts.moved_bytes, Ordering::AcqRel);
        Ok(())
    }
}

/// The clock `spooled_at_ms` is read from (ms since the epoch); replicas compare it
/// (`relay::peers`).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

#[cfg(test)]
mod bound_tests;
#[cfg(test)]
mod tests;
