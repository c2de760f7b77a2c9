//! What every handle of one spool shares: the database (reopened after a failed write), the
//! counts kept in atomics, and the bounds an append is checked against.

use super::*;

pub(super) struct Shared {
    /// `None` only between a failed backend and its reopening ([`Shared::recover`]).
    pub(super) db: RwLock<Option<Database>>,
    pub(super) file: Arc<FileState>,
    pub(super) events: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) dead: AtomicU64,
    pub(super) dead_bytes: AtomicU64,
    /// Bytes held (events and dead) when a growth was refused at the file bound; 0: none was.
    pub(super) full_at: AtomicU64,
    /// `spooled_at_ms` of the oldest waiting entry; 0 when the spool is empty.
    pub(super) oldest_ms: AtomicU64,
    /// Whether the legacy `events` table still holds entries (they are older than any other).
    pub(super) legacy_left: AtomicBool,
    /// Held from a write transaction's start until `oldest_ms` and `legacy_left` are updated,
    /// so they follow commit order (redb lets one write transaction run at a time anyway).
    pub(super) writing: Mutex<()>,
    /// Legacy entries have sequence numbers below this, the entries of this release at or
    /// above it, so a sequence number says which table holds it.
    pub(super) legacy_end: u64,
    pub(super) max_bytes: u64,
    pub(super) appended: Notify,
}

/// The open database, for the length of one operation.
pub(super) struct Db<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for Db<'_> {
    type Target = Database;

    fn deref(&self) -> &Database {
        self.0.as_ref().expect("checked by Shared::db")
    }
}

impl Shared {
    pub(super) fn db(&self) -> Result<Db<'_>, SpoolError> {
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
    pub(super) fn recover(&self) {
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
    pub(super) fn held(&self) -> u64 {
        self.bytes.load(Ordering::Acquire) + self.dead_bytes.load(Ordering::Acquire)
    }

    /// Why an append of `len` bytes, on top of `bytes` waiting, is refused; `None`: it fits.
    pub(super) fn refusal(&self, bytes: u64, len: u64) -> Option<SpoolError> {
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

    pub(super) fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn tables_for(&self, seq: u64) -> Tables {
        if seq < self.legacy_end {
            LEGACY
        } else {
            VERSIONED
        }
    }
}
