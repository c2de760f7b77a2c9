//! The spool's table layout and what reads or rewrites it inside a transaction: the tables of
//! each entry layout, the scan at open, settling delivered and refused entries, the head's time.

use super::*;

/// Where the entries of one layout live; the table, not the entry, tells v0 from later ones.
#[derive(Clone, Copy)]
pub(super) struct Tables {
    pub(super) layout: Layout,
    pub(super) events: TableDefinition<'static, u64, &'static [u8]>,
    /// Entries Kafka refused for good (too large, not authorized): kept, counted, never dropped.
    pub(super) dead: TableDefinition<'static, u64, &'static [u8]>,
}

/// The first release's tables (layout v0). Read and drained, never appended to; `events` is
/// deleted once empty.
pub(super) const LEGACY: Tables = Tables {
    layout: Layout::Legacy,
    events: TableDefinition::new("events"),
    dead: TableDefinition::new("dead"),
};
/// The tables this release appends to (layout v1 and later, each entry with its version byte).
pub(super) const VERSIONED: Tables = Tables {
    layout: Layout::Versioned,
    events: TableDefinition::new("events_v1"),
    dead: TableDefinition::new("dead_v1"),
};

/// What [`Spool::open`] finds in the database.
#[derive(Default)]
pub(super) struct Scan {
    pub(super) events: u64,
    pub(super) bytes: u64,
    pub(super) dead: u64,
    pub(super) dead_bytes: u64,
    pub(super) oldest_ms: u64,
    pub(super) legacy_end: u64,
    pub(super) first_versioned: Option<u64>,
}

#[derive(Default)]
pub(super) struct Counts {
    pub(super) freed: u64,
    pub(super) removed: u64,
    pub(super) moved: u64,
    pub(super) moved_bytes: u64,
}

/// Settles the entries of one layout; returns whether its events table is now empty.
pub(super) fn settle_in(
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

pub(super) enum Head {
    Empty,
    At(u64),
    /// The first entry fails its checksum: the forwarder's next read sets it aside.
    Unreadable,
}

/// The oldest waiting entry's time, seen from inside a write transaction.
pub(super) fn head(tx: &WriteTransaction, legacy_left: bool) -> Result<Head, SpoolError> {
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

pub(super) fn open_db(file: &Arc<FileState>) -> Result<Database, redb::DatabaseError> {
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
pub(super) fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &ReadTransaction,
    table: TableDefinition<'static, K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, SpoolError> {
    match tx.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(storage(e)),
    }
}

/// Counts what the database holds, streaming through it (one page at a time, not the whole
/// spool in memory), and checks that every entry is in a format this release reads.
pub(super) fn scan(db: &Database) -> Result<Scan, SpoolError> {
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
