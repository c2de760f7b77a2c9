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
use file::{BoundedFile, FileState};

/// How full redb's file may get (events and dead entries against the file's length, in
/// percent) while its next growth would pass `RELAY_SPOOL_MAX_FILE_BYTES`: past it appends are
/// refused, so redb never has to grow. redb grew its file when its content passed about 83% of
/// it (docs/spool.md); the margin covers the B-tree's own pages.
const LAST_FILL_PERCENT: u64 = 70;
/// After a growth was refused at the file bound anyway, appends resume once the spool holds
/// this share (percent) of what it held then.
const RESUME_PERCENT: u64 = 90;

/// `RELAY_SPOOL_MAX_FILE_BYTES` when it is not set: room for a spool of `max_bytes` with
/// redb's doubling (see docs/spool.md), and never less than `MIN_FILE_BYTES`.
pub fn default_max_file_bytes(max_bytes: u64) -> u64 {
    (max_bytes.saturating_mul(5) / 2).max(MIN_FILE_BYTES)
}

/// The smallest file bound: a new redb file and its first few doublings.
pub const MIN_FILE_BYTES: u64 = 8 << 20;

/// redb's page cache; redb's default is 1 GiB, and with it a full 1 GiB spool was held in
/// memory (1.46 GB resident) and some of it stayed after the drain. The spool is written at its
/// tail and read once at its head, so the cache only needs the pages of one commit and the
/// B-tree's upper levels: 16 MiB holds a 500-entry forwarding batch many times over. Pages it
/// does not hold are read back through the OS page cache, which is not the relay's memory. Half
/// of it also bounds a write transaction's dirty pages: redb writes the excess out early.
pub const CACHE_BYTES: usize = 16 << 20;

/// Where the entries of one layout live; the table, not the entry, tells v0 from later ones.
#[derive(Clone, Copy)]
struct Tables {
    layout: Layout,
    events: TableDefinition<'static, u64, &'static [u8]>,
    /// Entries Kafka refused for good (too large, not authorized): kept, counted, never dropped.
    dead: TableDefinition<'static, u64, &'static [u8]>,
}

/// The first release's tables (layout v0). Read and drained, never appended to; `events` is
/// deleted once empty.
const LEGACY: Tables = Tables {
    layout: Layout::Legacy,
    events: TableDefinition::new("events"),
    dead: TableDefinition::new("dead"),
};
/// The tables this release appends to (layout v1 and later, each entry with its version byte).
const VERSIONED: Tables = Tables {
    layout: Layout::Versioned,
    events: TableDefinition::new("events_v1"),
    dead: TableDefinition::new("dead_v1"),
};

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

/// One callback's entries, committed all together or not at all.
struct Append {
    entries: Vec<Vec<u8>>,
    spooled_at_ms: u64,
    done: oneshot::Sender<Result<(), SpoolError>>,
}

struct Shared {
    /// `None` only between a failed backend and its reopening ([`Shared::recover`]).
    db: RwLock<Option<Database>>,
    file: Arc<FileState>,
    events: AtomicU64,
    bytes: AtomicU64,
    dead: AtomicU64,
    dead_bytes: AtomicU64,
    /// Bytes held (events and dead) when a growth was refused at the file bound; 0: none was.
    full_at: AtomicU64,
    /// `spooled_at_ms` of the oldest waiting entry; 0 when the spool is empty.
    oldest_ms: AtomicU64,
    /// Whether the legacy `events` table still holds entries (they are older than any other).
    legacy_left: AtomicBool,
    /// Held from a write transaction's start until `oldest_ms` and `legacy_left` are updated,
    /// so they follow commit order (redb lets one write transaction run at a time anyway).
    writing: Mutex<()>,
    /// Legacy entries have sequence numbers below this, the entries of this release at or
    /// above it, so a sequence number says which table holds it.
    legacy_end: u64,
    max_bytes: u64,
    appended: Notify,
}

/// The open database, for the length of one operation.
struct Db<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for Db<'_> {
    type Target = Database;

    fn deref(&self) -> &Database {
        self.0.as_ref().expect("checked by Shared::db")
    }
}

impl Shared {
    fn db(&self) -> Result<Db<'_>, SpoolError> {
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        if db.is_none() {
            return Err(storage(
                "the spool's database is closed after a failed write and could not be reopened",
            ));
        }
        Ok(Db(db))
    }

    /// After its backend failed, redb answers every call with an error until the database is
    /// reopened: closes and reopens it, and counts it again (the commit that failed may or may
    /// not have reached the disk). Cheap when nothing failed. Takes the write lock: call with
    /// no transaction open.
    fn recover(&self) {
        if !self.file.failed() {
            return;
        }
        let _writing = self.write_lock();
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        if !self.file.failed() {
            return;
        }
        drop(db.take());
        let at_limit = self.file.reset();
        let reopened = open_db(&self.file).map_err(storage).and_then(|new| {
            let scan = scan(&new)?;
            Ok((new, scan))
        });
        match reopened {
            Ok((new, scan)) => {
                self.events.store(scan.events, Ordering::Release);
                self.bytes.store(scan.bytes, Ordering::Release);
                self.dead.store(scan.dead, Ordering::Release);
                self.dead_bytes.store(scan.dead_bytes, Ordering::Release);
                self.oldest_ms.store(scan.oldest_ms, Ordering::Release);
                *db = Some(new);
                if at_limit {
                    self.full_at.store(self.held(), Ordering::Release);
                }
                log::warn!(
                    "spool reopened after a failed write; it holds {} events ({} bytes)",
                    scan.events,
                    scan.bytes
                );
            }
            Err(e) => log::error!("spool could not be reopened after a failed write: {e}"),
        }
    }

    /// Bytes of entries in the file: waiting and dead.
    fn held(&self) -> u64 {
        self.bytes.load(Ordering::Acquire) + self.dead_bytes.load(Ordering::Acquire)
    }

    /// Why an append of `len` bytes, on top of `bytes` waiting, is refused; `None`: it fits.
    fn refusal(&self, bytes: u64, len: u64) -> Option<SpoolError> {
        if bytes + len > self.max_bytes {
            return Some(SpoolError::Full {
                bytes,
                max: self.max_bytes,
            });
        }
        if let Some(cause) = self.file.no_room() {
            return Some(SpoolError::DiskFull(cause));
        }
        let held = bytes + self.dead_bytes.load(Ordering::Acquire) + len;
        let file = self.file.len();
        let full_at = self.full_at.load(Ordering::Acquire);
        let file_full = SpoolError::FileFull {
            file,
            max: self.file.max_len(),
        };
        if full_at > 0 {
            if held * 100 > full_at * RESUME_PERCENT {
                return Some(file_full);
            }
            self.full_at.store(0, Ordering::Release);
        }
        if self.file.next_growth() > self.file.max_len() && held * 100 > file * LAST_FILL_PERCENT {
            return Some(file_full);
        }
        None
    }

    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn tables_for(&self, seq: u64) -> Tables {
        if seq < self.legacy_end {
            LEGACY
        } else {
            VERSIONED
        }
    }
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

/// What [`Spool::open`] finds in the database.
#[derive(Default)]
struct Scan {
    events: u64,
    bytes: u64,
    dead: u64,
    dead_bytes: u64,
    oldest_ms: u64,
    legacy_end: u64,
    first_versioned: Option<u64>,
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

#[derive(Default)]
struct Counts {
    freed: u64,
    removed: u64,
    moved: u64,
    moved_bytes: u64,
}

/// Settles the entries of one layout; returns whether its events table is now empty.
fn settle_in(
    tx: &WriteTransaction,
    tables: Tables,
    delivered: &[u64],
    refused: &[(u64, String)],
    counts: &mut Counts,
) -> Result<bool, SpoolError> {
    let mut events = tx.open_table(tables.events).map_err(storage)?;
    for seq in delivered {
        if let Some(v) = events.remove(seq).map_err(storage)? {
            counts.freed += v.value().len() as u64;
            counts.removed += 1;
        }
    }
    if !refused.is_empty() {
        let mut dead = tx.open_table(tables.dead).map_err(storage)?;
        // Keyed by a number of its own: event numbers start again once the spool is empty, so
        // keying by them would overwrite an older dead entry.
        let mut next = dead.last().map_err(storage)?.map_or(0, |(k, _)| k.value() + 1);
        let mut reasons = tx.open_table(dead::REASONS).map_err(storage)?;
        for (seq, reason) in refused {
            if let Some(v) = events.remove(seq).map_err(storage)? {
                let entry = v.value().to_vec();
                counts.freed += entry.len() as u64;
                counts.removed += 1;
                counts.moved += 1;
                counts.moved_bytes += entry.len() as u64;
                dead.insert(next, entry.as_slice()).map_err(storage)?;
                reasons
                    .insert((dead::layout_id(tables.layout), next), reason.as_str())
                    .map_err(storage)?;
                next += 1;
            }
        }
    }
    events.is_empty().map_err(storage)
}

enum Head {
    Empty,
    At(u64),
    /// The first entry fails its checksum: the forwarder's next read sets it aside.
    Unreadable,
}

/// The oldest waiting entry's time, seen from inside a write transaction.
fn head(tx: &WriteTransaction, legacy_left: bool) -> Result<Head, SpoolError> {
    for tables in [LEGACY, VERSIONED] {
        if tables.layout == Layout::Legacy && !legacy_left {
            continue;
        }
        let table = tx.open_table(tables.events).map_err(storage)?;
        let first = table.first().map_err(storage)?;
        if let Some((_, value)) = first {
            return Ok(entry::spooled_at(tables.layout, value.value()).map_or(Head::Unreadable, Head::At));
        }
    }
    Ok(Head::Empty)
}

fn open_db(file: &Arc<FileState>) -> Result<Database, redb::DatabaseError> {
    let shown = file.path().display().to_string();
    let backend =
        BoundedFile::open(file).map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .set_repair_callback(move |_| {
            log::error!("spool {shown} was not closed cleanly; repairing (checksums decide what is kept)")
        })
        .create_with_backend(backend)
}

/// A table in a read transaction; `None` if no transaction has created it yet.
fn open_read(
    tx: &ReadTransaction,
    table: TableDefinition<'static, u64, &'static [u8]>,
) -> Result<Option<ReadOnlyTable<u64, &'static [u8]>>, SpoolError> {
    match tx.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(storage(e)),
    }
}

/// Counts what the database holds, streaming through it (one page at a time, not the whole
/// spool in memory), and checks that every entry is in a format this release reads.
fn scan(db: &Database) -> Result<Scan, SpoolError> {
    let tx = db.begin_read().map_err(storage)?;
    let mut scan = Scan::default();
    for tables in [LEGACY, VERSIONED] {
        if let Some(dead) = open_read(&tx, tables.dead)? {
            for item in dead.iter().map_err(storage)? {
                let (_, value) = item.map_err(storage)?;
                scan.dead += 1;
                scan.dead_bytes += value.value().len() as u64;
            }
        }
        let Some(events) = open_read(&tx, tables.events)? else {
            continue;
        };
        for item in events.iter().map_err(storage)? {
            let (seq, value) = item.map_err(storage)?;
            let (seq, value) = (seq.value(), value.value());
            scan.events += 1;
            scan.bytes += value.len() as u64;
            match tables.layout {
                Layout::Legacy => scan.legacy_end = seq + 1,
                Layout::Versioned => {
                    scan.first_versioned.get_or_insert(seq);
                }
            }
            // A damaged entry is set aside when the forwarder reaches it; an intact entry of
            // a newer format was written by a newer release, which is the one to drain it.
            if let Some(version) = entry::version(tables.layout, value).filter(|v| *v > entry::CURRENT) {
                return Err(storage(format!(
                    "spool entry {seq} is in format version {version}, newer than this release \
                     reads (up to {}); run the newer release until the spool is drained, or move \
                     spool.redb aside",
                    entry::CURRENT
                )));
            }
            if scan.oldest_ms == 0 {
                scan.oldest_ms = entry::spooled_at(tables.layout, value).unwrap_or(0);
            }
        }
    }
    Ok(scan)
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
        shared.recover();
        shared.appended.notify_one();
    }
}

fn commit_batch(shared: &Shared, pending: &mut [Append]) -> Vec<Result<(), SpoolError>> {
    let _writing = shared.write_lock();
    let mut bytes = shared.bytes.load(Ordering::Acquire);
    let mut outcome: Vec<Result<(), SpoolError>> = Vec::with_capacity(pending.len());
    let mut first_at = None;
    let mut write = || -> Result<(u64, u64), SpoolError> {
        let db = shared.db()?;
        let tx = db.begin_write().map_err(storage)?;
        let mut added = (0u64, 0u64);
        {
            let mut table = tx.open_table(VERSIONED.events).map_err(storage)?;
            let mut seq = table
                .last()
                .map_err(storage)?
                .map_or(0, |(k, _)| k.value() + 1)
                .max(shared.legacy_end);
            for append in pending.iter() {
                let len: u64 = append.entries.iter().map(|e| e.len() as u64).sum();
                if let Some(refusal) = shared.refusal(bytes, len) {
                    outcome.push(Err(refusal));
                    continue;
                }
                for entry in &append.entries {
                    table.insert(seq, entry.as_slice()).map_err(storage)?;
                    seq += 1;
                }
                bytes += len;
                added = (added.0 + append.entries.len() as u64, added.1 + len);
                first_at.get_or_insert(append.spooled_at_ms);
                outcome.push(Ok(()));
            }
        }
        tx.commit().map_err(storage)?;
        Ok(added)
    };
    match write() {
        Ok((events, added_bytes)) => {
            if let Some(at) = first_at {
                // Only an empty spool's head moves on append.
                let _ = shared
                    .oldest_ms
                    .compare_exchange(0, at, Ordering::AcqRel, Ordering::Acquire);
            }
            shared.events.fetch_add(events, Ordering::AcqRel);
            shared.bytes.fetch_add(added_bytes, Ordering::AcqRel);
            outcome
        }
        Err(e) => {
            // A growth refused for want of room (or at the file bound) was logged where it was
            // refused; the callers hear why.
            let why = |_| match shared.file.no_room() {
                Some(cause) => SpoolError::DiskFull(cause),
                None if shared.file.refused_at_limit() => SpoolError::FileFull {
                    file: shared.file.len(),
                    max: shared.file.max_len(),
                },
                None => storage(&e),
            };
            if !shared.file.failed() || !(shared.file.is_out_of_room() || shared.file.refused_at_limit()) {
                log::error!("spool commit failed: {e}");
            }
            pending.iter().map(|a| Err(why(a))).collect()
        }
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
mod tests {
    use super::*;
    use entry::tests::{encode_future, encode_v0, record};

    /// Writes raw entries into a table, as another release (or damage) would have left them.
    fn put_raw(db: &Database, table: TableDefinition<u64, &[u8]>, entries: &[(u64, Vec<u8>)]) {
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(table).unwrap();
            for (seq, entry) in entries {
                table.insert(seq, entry.as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    }

    fn count(db: &Database, table: TableDefinition<'static, u64, &'static [u8]>) -> u64 {
        let tx = db.begin_read().unwrap();
        open_read(&tx, table).unwrap().map_or(0, |t| t.len().unwrap())
    }

    fn keys(spool: &Spool) -> Vec<String> {
        spool
            .oldest(100)
            .unwrap()
            .into_iter()
            .map(|s| s.record.key)
            .collect()
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
        assert_eq!(keys(&spool), ["b", "c"]);
        assert_eq!(spool.depth().0, 2);
    }

    #[tokio::test]
    async fn a_callback_s_records_are_spooled_all_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let one = entry::encode(0, &record("a")).len() as u64;
        let spool = Spool::open(dir.path(), 3 * one).unwrap();
        let batch = [record("a"), record("b")];
        spool.append_all(&batch).await.unwrap();
        assert!(matches!(
            spool.append_all(&batch).await,
            Err(SpoolError::Full { .. })
        ));
        let keys: Vec<String> = spool
            .oldest(10)
            .unwrap()
            .into_iter()
            .map(|s| s.record.key)
            .collect();
        assert_eq!(keys, ["a", "b"], "nothing of the refused batch was kept");
        spool.append(&record("c")).await.unwrap();
        assert_eq!(spool.depth().0, 3);
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
        assert!(matches!(err, SpoolError::InUse(_)), "{err}");
        assert!(err.to_string().contains("held by another process"), "{err}");
        assert_eq!(first.oldest(10).unwrap().len(), 1);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing moved aside"
        );
    }

    #[tokio::test]
    async fn a_spool_of_the_previous_release_is_forwarded_first_then_retired() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join("spool.redb")).unwrap();
            let old = [
                (4, encode_v0(1_000, &record("old1"))),
                (5, encode_v0(2_000, &record("old2"))),
            ];
            put_raw(&db, LEGACY.events, &old);
            put_raw(&db, LEGACY.dead, &[(1, encode_v0(500, &record("dead")))]);
        }
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((spool.depth().0, spool.dead_events()), (2, 1));
        spool.append(&record("new")).await.unwrap();
        let batch = spool.oldest(10).unwrap();
        let seqs: Vec<u64> = batch.iter().map(|s| s.seq).collect();
        assert_eq!(keys(&spool), ["old1", "old2", "new"]);
        assert_eq!(seqs, [4, 5, 6], "new entries are numbered after the legacy ones");
        assert_eq!(batch[0].spooled_at_ms, 1_000);
        spool.settle(&seqs[..2], &[]).unwrap();
        assert_eq!(keys(&spool), ["new"]);
        assert_eq!(
            count(&spool.shared.db().unwrap(), LEGACY.dead),
            1,
            "legacy dead entries are kept"
        );
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let tx = spool.shared.db().unwrap().begin_read().unwrap();
        assert!(
            open_read(&tx, LEGACY.events).unwrap().is_none(),
            "drained legacy table deleted"
        );
        assert_eq!(keys(&spool), ["new"]);
    }

    #[tokio::test]
    async fn a_spool_holding_a_newer_format_is_refused_at_open_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        {
            let db = Database::create(&path).unwrap();
            put_raw(
                &db,
                VERSIONED.events,
                &[(0, entry::encode(1, &record("a"))), (1, encode_future(3))],
            );
        }
        let err = Spool::open(dir.path(), 1 << 20).err().expect("refused");
        assert!(
            err.to_string().contains("entry 1 is in format version 3"),
            "{err}"
        );
        let db = Database::open(&path).unwrap();
        assert_eq!(count(&db, VERSIONED.events), 2, "every entry is left in place");
        assert_eq!(count(&db, VERSIONED.dead), 0);
    }

    #[tokio::test]
    async fn an_entry_of_an_unknown_version_met_later_goes_to_the_dead_table_not_away() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        put_raw(
            &spool.shared.db().unwrap(),
            VERSIONED.events,
            &[(0, encode_future(9))],
        );
        spool.shared.events.fetch_add(1, Ordering::AcqRel);
        assert!(keys(&spool).is_empty());
        assert!(spool.is_empty());
        assert_eq!(spool.dead_events(), 1);
        assert_eq!(count(&spool.shared.db().unwrap(), VERSIONED.dead), 1);
    }

    #[tokio::test]
    async fn oldest_age_follows_appends_and_settles_and_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.oldest_age(), None);
        assert_eq!(spool.max_bytes(), 1 << 20);
        spool.append(&record("a")).await.unwrap();
        let first = spool.oldest(1).unwrap()[0].spooled_at_ms;
        tokio::time::sleep(Duration::from_millis(30)).await;
        spool.append(&record("b")).await.unwrap();
        let second = spool.oldest(2).unwrap()[1].spooled_at_ms;
        let age = spool.oldest_age().unwrap().as_millis() as u64;
        assert!(age >= now_ms() - first - 5 && age >= 30, "{age} ms");
        spool.settle(&[0], &[]).unwrap();
        let age = spool.oldest_age().unwrap().as_millis() as u64;
        assert!(
            age <= now_ms() - second && age < now_ms() - first,
            "head moved to b: {age} ms"
        );

        // A damaged head: the metric reads atomics only, so it neither sets the entry aside
        // nor commits anything; the forwarder's read does.
        let mut damaged = entry::encode(now_ms(), &record("c"));
        damaged[10] ^= 1;
        put_raw(&spool.shared.db().unwrap(), VERSIONED.events, &[(0, damaged)]);
        spool.shared.events.fetch_add(1, Ordering::AcqRel);
        let file = dir.path().join("spool.redb");
        let (len, modified) = (
            std::fs::metadata(&file).unwrap().len(),
            std::fs::metadata(&file).unwrap().modified().unwrap(),
        );
        for _ in 0..3 {
            assert!(spool.oldest_age().is_some());
        }
        assert_eq!(count(&spool.shared.db().unwrap(), VERSIONED.dead), 0);
        assert_eq!(count(&spool.shared.db().unwrap(), VERSIONED.events), 2);
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!((meta.len(), meta.modified().unwrap()), (len, modified));
        assert_eq!(keys(&spool), ["b"]);
        assert_eq!(count(&spool.shared.db().unwrap(), VERSIONED.dead), 1);
        spool.settle(&[1], &[]).unwrap();
        assert_eq!(spool.oldest_age(), None);
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

    /// A record the size of a real GroupInfoChanged event (about 1.2 KB in the spool).
    fn sized(group: &str) -> Record {
        let mut r = record(group);
        r.payload = vec![b'x'; 1_100];
        r
    }

    #[tokio::test]
    async fn the_file_never_grows_past_its_bound_and_a_full_file_takes_appends_again_once_drained() {
        let dir = tempfile::tempdir().unwrap();
        let bound = 24 << 20;
        let spool = Spool::open_bounded(dir.path(), 1 << 30, bound).unwrap();
        let mut refused = None;
        let mut growths = Vec::new();
        for batch in 0..1_000 {
            let records: Vec<Record> = (0..200).map(|i| sized(&format!("g{batch}-{i}"))).collect();
            let before = spool.file_bytes();
            match spool.append_all(&records).await {
                Ok(()) => {
                    if spool.file_bytes() > before {
                        growths.push((spool.depth().1, spool.file_bytes()));
                    }
                }
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let (events, bytes) = spool.depth();
        let file = std::fs::metadata(dir.path().join("spool.redb")).unwrap().len();
        eprintln!("growths (held bytes, file bytes): {growths:?}; full at {events} events, {bytes} B, file {file} B");
        assert!(
            matches!(refused, Some(SpoolError::FileFull { .. })),
            "refused as full: {refused:?}"
        );
        assert!(file <= bound, "file {file} B within the bound {bound} B");
        assert_eq!(spool.file_bytes(), file, "the metric reads the file's size");
        assert!(
            bytes * 100 > bound * 40,
            "the file is used, not wasted: {bytes} B held in {file} B"
        );
        let more: Vec<Record> = (0..200).map(|i| sized(&format!("more-{i}"))).collect();
        assert!(matches!(
            spool.append_all(&more).await,
            Err(SpoolError::FileFull { .. })
        ));
        // Nothing answered was lost: every appended event is there, in order.
        let all = spool.oldest(events as usize).unwrap();
        assert_eq!(all.len() as u64, events);
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        let half: Vec<u64> = all.iter().take(all.len() / 2).map(|s| s.seq).collect();
        spool.settle(&half, &[]).unwrap();
        assert!(spool.has_room(), "room again once half is forwarded");
        spool.append(&sized("after")).await.unwrap();
        assert!(std::fs::metadata(dir.path().join("spool.redb")).unwrap().len() <= bound);
    }

    #[tokio::test]
    async fn refused_records_keep_their_reason_and_a_replay_sends_them_after_everything_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for g in ["a", "b", "c", "d"] {
            spool.append(&record(g)).await.unwrap();
        }
        let mut big = record("e");
        big.topic = "tim.other".into();
        spool.append(&big).await.unwrap();
        let seqs: Vec<u64> = spool.oldest(10).unwrap().iter().map(|s| s.seq).collect();
        spool
            .settle(
                &[seqs[1]],
                &[
                    (seqs[0], "MessageSizeTooLarge".into()),
                    (seqs[2], "InvalidRecord".into()),
                    (seqs[4], "MessageSizeTooLarge".into()),
                ],
            )
            .unwrap();
        assert_eq!(keys(&spool), ["d"]);
        assert_eq!(spool.dead_events(), 3);
        let mut summary = spool.dead_summary().unwrap();
        summary.name_default_topic("tim.group-changes");
        assert_eq!(summary.events, 3);
        let groups: Vec<(&str, &str, u64)> = summary
            .by_topic_and_reason
            .iter()
            .map(|g| (g.topic.as_str(), g.reason.as_str(), g.events))
            .collect();
        assert_eq!(
            groups,
            [
                ("tim.group-changes", "InvalidRecord", 1),
                ("tim.group-changes", "MessageSizeTooLarge", 1),
                ("tim.other", "MessageSizeTooLarge", 1)
            ]
        );
        assert!(summary.oldest_spooled_at_ms <= summary.newest_spooled_at_ms);
        assert!(summary.oldest_spooled_at_ms.is_some());

        spool.append(&record("f")).await.unwrap();
        let done = spool.replay_dead().unwrap();
        assert_eq!((done.replayed, done.left), (3, 0));
        assert_eq!(spool.dead_events(), 0);
        assert_eq!(
            keys(&spool),
            ["d", "f", "a", "c", "e"],
            "what waited keeps its place; the dead follow in the order they were set aside"
        );
        assert_eq!(spool.dead_summary().unwrap(), DeadSummary::default());
        let replayed = spool.oldest(10).unwrap();
        assert_eq!(
            replayed[4].record.topic, "tim.other",
            "a replayed record keeps its topic"
        );
        // Counted the same after a restart.
        drop(replayed);
        let depth = spool.depth();
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.depth(), depth);
        assert_eq!(spool.dead_events(), 0);
    }

    #[tokio::test]
    async fn a_replay_leaves_damaged_entries_in_the_dead_table() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&record("a")).await.unwrap();
        let mut damaged = entry::encode(now_ms(), &record("b"));
        damaged[10] ^= 1;
        put_raw(&spool.shared.db().unwrap(), VERSIONED.events, &[(1, damaged)]);
        spool.shared.events.fetch_add(1, Ordering::AcqRel);
        assert_eq!(keys(&spool), ["a"]);
        let summary = spool.dead_summary().unwrap();
        assert_eq!(summary.by_topic_and_reason[0].reason, "Damaged");
        assert_eq!(summary.by_topic_and_reason[0].topic, "?");
        let done = spool.replay_dead().unwrap();
        assert_eq!((done.replayed, done.left), (0, 1));
        assert_eq!(spool.dead_events(), 1);
    }

    #[tokio::test]
    async fn a_growth_refused_at_the_bound_fails_only_its_own_append_and_the_spool_reopens_intact() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open_bounded(dir.path(), 1 << 30, MIN_FILE_BYTES).unwrap();
        for i in 0..100 {
            spool.append(&sized(&format!("g{i}"))).await.unwrap();
        }
        // One record larger than the bound: redb must grow past it, the backend refuses, redb
        // refuses every later call until the database is reopened.
        let mut huge = record("huge");
        huge.payload = vec![b'x'; MIN_FILE_BYTES as usize];
        let err = spool.append(&huge).await.expect_err("refused");
        assert!(matches!(err, SpoolError::FileFull { .. }), "{err}");
        assert!(std::fs::metadata(dir.path().join("spool.redb")).unwrap().len() <= MIN_FILE_BYTES);
        assert_eq!(spool.depth().0, 100);
        let kept = keys(&spool);
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0], "g0");
        assert_eq!(kept[99], "g99");
        // Appends resume once the spool holds less than it did at the refusal.
        let first: Vec<u64> = spool.oldest(20).unwrap().iter().map(|s| s.seq).collect();
        spool.settle(&first, &[]).unwrap();
        spool.append(&sized("after")).await.unwrap();
        drop(spool);
        let spool = Spool::open_bounded(dir.path(), 1 << 30, MIN_FILE_BYTES).unwrap();
        assert_eq!(spool.depth().0, 81);
    }
}
