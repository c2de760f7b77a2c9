//! The spool's bounds (the file on disk) and its dead table (reasons, listing, replay).

use super::tests::{keys, put_raw};
use super::*;
use entry::tests::record;

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
    eprintln!(
        "growths (held bytes, file bytes): {growths:?}; full at {events} events, {bytes} B, file {file} B"
    );
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
