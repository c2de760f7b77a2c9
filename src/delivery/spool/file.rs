//! The spool's file as redb sees it, with the two limits redb's own file backend does not have:
//! the file never grows past `RELAY_SPOOL_MAX_FILE_BYTES`, and the room for each growth is
//! reserved on the file system (`fallocate`) before redb writes into it, so a full file system
//! shows up as a refused growth, never as a failed write in the middle of a commit.
//!
//! redb grows its file by doubling it (68, 136, ... MiB) up to 4 GiB, then by 4 GiB at a time;
//! its own growth cannot be tuned. What this module adds is the knowledge of when the next
//! growth would pass the bound ([`FileState::next_growth`]), so the spool can refuse appends
//! before it happens, and a hard stop in case it happens anyway.
//!
//! redb treats any error from its backend as fatal for the open database (every later call
//! answers `PreviousIo`): the spool reopens the database after one ([`FileState::failed`]); what
//! was committed before is intact, the commit that failed never happened.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// How full redb's file may get (events and dead entries against the file's length, in
/// percent) while its next growth would pass `RELAY_SPOOL_MAX_FILE_BYTES`: past it appends are
/// refused, so redb never has to grow. redb grew its file when its content passed about 83% of
/// it (docs/spool.md); the margin covers the B-tree's own pages.
pub(super) const LAST_FILL_PERCENT: u64 = 70;
/// After a growth was refused at the file bound anyway, appends resume once the spool holds
/// this share (percent) of what it held then.
pub(super) const RESUME_PERCENT: u64 = 90;

/// `RELAY_SPOOL_MAX_FILE_BYTES` when it is not set: room for a spool of `max_bytes` with
/// redb's doubling (see docs/spool.md), and never less than `MIN_FILE_BYTES`.
pub fn default_max_file_bytes(max_bytes: u64) -> u64 {
    (max_bytes.saturating_mul(5) / 2).max(MIN_FILE_BYTES)
}

/// The smallest file bound: a new redb file and its first few doublings.
pub const MIN_FILE_BYTES: u64 = 8 << 20;

/// redb's largest doubling: past it the file grows by this much at a time.
const REGION: u64 = 4 << 30;
/// How often a spool refusing appends for lack of room asks the file system again.
const ROOM_RECHECK: Duration = Duration::from_secs(1);

/// Why appends are refused for lack of disk space, and what would end it.
#[derive(Debug, Clone)]
struct NoRoom {
    /// The growth that failed (bytes): appends resume once the file system has this much free.
    wanted: u64,
    checked: Instant,
    cause: String,
}

/// What the backend and the spool share about the file; it outlives each open database.
#[derive(Debug)]
pub struct FileState {
    path: PathBuf,
    max_len: u64,
    len: AtomicU64,
    /// The backend returned an error since the database was opened: redb refuses every later
    /// call, so the spool must reopen it.
    failed: AtomicBool,
    /// A growth was refused at `max_len` (the spool's own guard let it come that far).
    refused_at_limit: AtomicBool,
    no_room: Mutex<Option<NoRoom>>,
}

impl FileState {
    /// The state of the file at `path`; its length is read when [`BoundedFile::open`] opens it.
    pub fn new(path: &Path, max_len: u64) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_path_buf(),
            max_len,
            len: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            refused_at_limit: AtomicBool::new(false),
            no_room: Mutex::new(None),
        })
    }

    /// The file's length now (bytes): what it takes on disk, as every growth is reserved.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub fn max_len(&self) -> u64 {
        self.max_len
    }

    /// The length redb will ask for at its next growth (redb's `grow`: double below 4 GiB,
    /// then one 4 GiB region more). A little more than redb's own figure, never less.
    pub fn next_growth(&self) -> u64 {
        let len = self.len();
        if len < REGION {
            2 * len.max(1 << 20)
        } else {
            len + REGION
        }
    }

    /// Whether the backend failed since the database was opened (see the module's doc).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Whether a growth was refused at the bound since the database was opened.
    pub fn refused_at_limit(&self) -> bool {
        self.refused_at_limit.load(Ordering::Acquire)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clears the failure and the limit refusal, before the database is reopened (the
    /// reopening reads the file's length). Returns whether a growth had been refused at the limit.
    pub fn reset(&self) -> bool {
        self.failed.store(false, Ordering::Release);
        self.refused_at_limit.swap(false, Ordering::AcqRel)
    }

    /// `Some(cause)` while the file system has had no room for the spool's last growth; asks
    /// the file system again at most once a second, and clears it once there is room.
    pub fn no_room(&self) -> Option<String> {
        let mut no_room = self.no_room.lock().unwrap_or_else(|e| e.into_inner());
        let state = no_room.as_mut()?;
        if state.checked.elapsed() < ROOM_RECHECK {
            return Some(state.cause.clone());
        }
        state.checked = Instant::now();
        match available(&self.path) {
            Ok(free) if free >= state.wanted => {
                log::info!(
                    "the spool's file system has room again ({} MiB free); callbacks are spooled again",
                    free >> 20
                );
                *no_room = None;
                None
            }
            _ => Some(state.cause.clone()),
        }
    }

    /// Whether appends are refused for lack of disk space now, without asking the file system.
    pub fn is_out_of_room(&self) -> bool {
        self.no_room.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    fn out_of_room(&self, wanted: u64, error: &io::Error) {
        let cause = format!(
            "the spool's file system is full ({error}; the spool needs {} MiB more to grow)",
            wanted.div_ceil(1 << 20)
        );
        let mut no_room = self.no_room.lock().unwrap_or_else(|e| e.into_inner());
        if no_room.is_none() {
            log::error!("{cause}: callbacks that need the spool get 503 until there is room");
        }
        *no_room = Some(NoRoom {
            wanted,
            checked: Instant::now(),
            cause,
        });
    }
}

/// Free bytes on the file system holding `path`, for an unprivileged writer.
fn available(path: &Path) -> io::Result<u64> {
    let dir = path.parent().unwrap_or(path);
    let c_path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statvfs the call fills.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Reserves `[from, to)` of the file on its file system. `Ok(false)`: the file system cannot
/// reserve (no `fallocate`), the plain `set_len` is all there is.
fn reserve(file: &File, from: u64, to: u64) -> io::Result<bool> {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(from), libc::off_t::try_from(to - from)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file offset too large",
        ));
    };
    // SAFETY: a file descriptor this process owns for as long as `file` lives.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(false),
        _ => Err(e),
    }
}

fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// redb's file backend with the limits above.
#[derive(Debug)]
pub struct BoundedFile {
    inner: FileBackend,
    /// The same open file as `inner`'s, for `fallocate`.
    file: File,
    state: Arc<FileState>,
}

impl BoundedFile {
    pub fn open(state: &Arc<FileState>) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&state.path)?;
        let inner = FileBackend::new(file.try_clone()?).map_err(io::Error::other)?;
        state.len.store(file.metadata()?.len(), Ordering::Release);
        Ok(Self {
            inner,
            file,
            state: state.clone(),
        })
    }

    fn io<T>(&self, result: Result<T, io::Error>) -> Result<T, io::Error> {
        if let Err(e) = &result {
            self.state.failed.store(true, Ordering::Release);
            if is_no_space(e) {
                self.state.out_of_room(16 << 20, e);
            }
        }
        result
    }
}

impl StorageBackend for BoundedFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.io(self.inner.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.io(self.inner.read(offset, out))
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let old = self.state.len();
        if len > old {
            if len > self.state.max_len {
                self.state.refused_at_limit.store(true, Ordering::Release);
                self.state.failed.store(true, Ordering::Release);
                log::error!(
                    "the spool's file would grow to {} MiB, past RELAY_SPOOL_MAX_FILE_BYTES ({} MiB); refused",
                    len >> 20,
                    self.state.max_len >> 20
                );
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "the spool file is at RELAY_SPOOL_MAX_FILE_BYTES",
                ));
            }
            if let Err(e) = reserve(&self.file, old, len) {
                self.state.failed.store(true, Ordering::Release);
                if is_no_space(&e) {
                    self.state.out_of_room(len - old, &e);
                }
                // A partial reservation is given back; redb's data all lies below `old`.
                let _ = self.file.set_len(old);
                return Err(e);
            }
        }
        self.io(self.inner.set_len(len))?;
        self.state.len.store(len, Ordering::Release);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.io(self.inner.sync_data())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.io(self.inner.write(offset, data))
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
