//! The spool's order, formats and damage.

use super::*;
use entry::tests::{encode_future, encode_v0, record};

/// Writes raw entries into a table, as another release (or damage) would have left them.
pub(super) fn put_raw(db: &Database, table: TableDefinition<u64, &[u8]>, entries: &[(u64, Vec<u8>)]) {
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(table).unwrap();
        for (seq, entry) in entries {
            table.insert(seq, entry.as_slice()).unwrap();
        }
    }
    tx.commit().unwrap();
}

pub(super) fn count(db: &Database, table: TableDefinition<'static, u64, &'static [u8]>) -> u64 {
    let tx = db.begin_read().unwrap();
    open_read(&tx, table).unwrap().map_or(0, |t| t.len().unwrap())
}

pub(super) fn keys(spool: &Spool) -> Vec<String> {
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
