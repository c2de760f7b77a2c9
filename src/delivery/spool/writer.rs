//! The writer thread: appends from concurrent callbacks share one commit (group commit), so a
//! burst costs one fsync, not one per callback.

use super::*;

/// One callback's entries, committed all together or not at all.
pub(super) struct Append {
    pub(super) entries: Vec<Vec<u8>>,
    pub(super) spooled_at_ms: u64,
    pub(super) done: oneshot::Sender<Result<(), SpoolError>>,
}

/// The writer thread's queue; dropping it ends the thread and waits for it.
pub(super) struct Writer {
    pub(super) queue: Option<mpsc::Sender<Append>>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: takes every append waiting, commits them together, answers each.
pub(super) fn write_loop(shared: &Shared, queue: mpsc::Receiver<Append>) {
    while let Ok(first) = queue.recv() {
        let mut pending = vec![first];
        pending.extend(queue.try_iter());
        let result = commit_batch(shared, &mut pending);
        // A failed commit leaves redb refusing every call until it is reopened: reopen before
        // the callers hear of it, so that nobody reads the closed database in between.
        shared.recover();
        for (append, ok) in pending.into_iter().zip(result) {
            let _ = append.done.send(ok);
        }
        shared.appended.notify_one();
    }
}

pub(super) fn commit_batch(shared: &Shared, pending: &mut [Append]) -> Vec<Result<(), SpoolError>> {
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
            let why = || match shared.file.no_room() {
                Some(cause) => SpoolError::DiskFull(cause),
                None if shared.file.refused_at_limit() => SpoolError::FileFull {
                    file: shared.file.len(),
                    max: shared.file.max_len(),
                },
                None => storage(&e),
            };
            if !(shared.file.is_out_of_room() || shared.file.refused_at_limit()) {
                log::error!("spool commit failed: {e}");
            }
            pending.iter().map(|_| Err(why())).collect()
        }
    }
}
