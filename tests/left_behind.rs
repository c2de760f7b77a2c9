//! Nothing answered OK is left behind (issue 20), against a real broker: a topic that is not
//! there yet (created by the broker after an outage, or by an operator) holds the spool instead
//! of dead-lettering, a record too large for its topic is set aside alone and replayed once the
//! topic takes it, and a spool on a full file system refuses callbacks with 503 and takes them
//! again once there is room. Each test checks that every callback answered OK is in its topic.
//!
//! These tests run their own broker (127.0.0.1:19192, controller 19193, data in
//! `target/kafka-left-behind`, wiped once per run) and the relay binary as a child process; they
//! run one at a time (the broker is stopped and started under them). Relay logs, with the
//! harness's timeline, go to `target/left-behind-logs/<test>.log`. The full-disk test mounts a
//! tmpfs and must run as root.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::message::Message;
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

mod support;
use support::broker::{self, admin, alter_topic, Broker, Reader};
use support::lock::lock_file;
use support::relay::{series, Relay, CALLBACK_QUERY};
use support::timeline::Timeline;
use support::REPO;

const BOOTSTRAP: &str = "127.0.0.1:19192";
/// librdkafka's `topic.metadata.propagation.max.ms` for the relay (default 30 s): after this long
/// without the topic in a metadata answer, librdkafka fails its records with `UnknownTopic`. The
/// outage test stays down well beyond it.
const PROPAGATION_MS: &str = "3000";

// ---- the outage race: a topic the broker creates only once it is back ------------------------

#[test]
fn nothing_is_dead_lettered_when_kafka_comes_back_after_an_outage_longer_than_the_topic_metadata_propagation_timeout_and_creates_the_topic(
) {
    let _serial = serial();
    let mut broker = broker(true);
    const ROUNDS: usize = 3;
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let mut clean_rounds = 0;
    for round in 1..=ROUNDS {
        let name = format!("outage-round-{round}");
        let mut t = TestRelay::new(&name, &format!("left-behind-outage-r{round}"));
        broker.stop();
        t.note("broker stopped; the topic does not exist yet");
        // The last round runs with librdkafka's own default (30 s) and an outage longer than it,
        // as in production; the others with 3 s, to repeat the race more cheaply.
        let last = round == ROUNDS;
        if last {
            t.note("librdkafka's default topic.metadata.propagation.max.ms (30 s); down for 35 s");
            t.start(&[]);
        } else {
            t.start(&[("KAFKA_PRODUCER_TOPIC_METADATA_PROPAGATION_MAX_MS", PROPAGATION_MS)]);
        }
        let load = Load::start(&t, &name, 8, Duration::from_millis(40), 0, None);
        // Down for 10 s (35 s) plus the broker's start (several seconds): more than 3x (1x) the
        // propagation.
        t.pause_ms(if last { 35_000 } else { 10_000 });
        t.note("starting the broker (auto.create.topics.enable=true)");
        broker.start();
        t.note("broker started");
        t.pause_ms(2_000);
        let sent = load.finish(&t);
        t.note(&format!("load stopped: {}", summary(&sent)));
        let mut round_problems = Vec::new();
        if let Err(e) = t.wait_spool_empty(Duration::from_secs(60)) {
            round_problems.push(e);
        }
        let dead_metric = t.metric_sum("tim_relay_spool_dead_events", &[]);
        let dead = t.dead_summary();
        let dead_events = dead.as_ref().ok().and_then(|d| d["events"].as_u64());
        t.note(&format!(
            "dead table: GET /spool/dead {} / tim_relay_spool_dead_events {dead_metric:?}",
            dead.as_ref().map_or_else(|e| e.clone(), |d| d.to_string())
        ));
        match &dead {
            Ok(_) if dead_events == Some(0) => {}
            Ok(d) => round_problems.push(format!("events were dead-lettered: GET /spool/dead = {d}")),
            Err(e) => round_problems.push(e.clone()),
        }
        if dead_metric != Some(0.0) {
            round_problems.push(format!("tim_relay_spool_dead_events is {dead_metric:?}, not 0"));
        }
        let found = read_topic(&t.topic);
        let check = check_delivered(&sent, &found);
        round_problems.extend(check.problems.iter().cloned());
        if dead_events == Some(0) && dead_metric == Some(0.0) {
            clean_rounds += 1;
        }
        let line = format!(
            "round {round}: {}; in topic {}; dead-lettered {} (GET /spool/dead), {} (tim_relay_spool_dead_events)",
            summary(&sent),
            found.len(),
            dead_events.map_or("unknown".into(), |n| n.to_string()),
            dead_metric.map_or("unknown".into(), |n| n.to_string())
        );
        t.note(&line);
        lines.push(line);
        if !round_problems.is_empty() {
            round_problems.push(format!("relay log and timeline: {}", t.relay.log.display()));
        }
        problems.extend(round_problems.into_iter().map(|p| format!("round {round}: {p}")));
        t.kill();
    }
    let verdict = format!("{clean_rounds} of {ROUNDS} rounds dead-lettered nothing");
    eprintln!("{}\n{verdict}", lines.join("\n"));
    let _ = std::fs::write(
        format!("{REPO}/target/left-behind-logs/outage-summary.txt"),
        format!("{}\n{verdict}\n", lines.join("\n")),
    );
    assert!(
        problems.is_empty(),
        "{verdict}\n{}\n\nproblems:\n{}",
        lines.join("\n"),
        problems.join("\n")
    );
}

// ---- a topic nobody created, and nobody will until an operator does --------------------------

#[test]
fn the_spool_holds_while_the_topic_is_missing_with_auto_creation_off_and_delivers_everything_once_it_is_created(
) {
    let _serial = serial();
    let mut broker = broker(false);
    broker.start();
    let mut t = TestRelay::new("missing-topic", "left-behind-missing");
    let broker_auto_create = auto_create_setting();
    t.note(&format!(
        "broker auto.create.topics.enable = {broker_auto_create:?}; the relay's producer also asks \
         for no auto-creation (KAFKA_PRODUCER_ALLOW_AUTO_CREATE_TOPICS=false)"
    ));
    t.start(&[
        ("KAFKA_PRODUCER_TOPIC_METADATA_PROPAGATION_MAX_MS", PROPAGATION_MS),
        ("KAFKA_PRODUCER_ALLOW_AUTO_CREATE_TOPICS", "false"),
    ]);
    let mut problems = Vec::new();
    // Before and after librdkafka's verdict on the topic (PROPAGATION_MS): all OK, all spooled.
    let load = Load::start(&t, "missing-before", 4, Duration::from_millis(50), 0, None);
    t.pause_ms(8_000);
    let mut sent = load.finish(&t);
    t.note(&format!("callbacks before the topic exists: {}", summary(&sent)));
    if sent.iter().any(|s| !s.answer.ok()) {
        problems.push(format!(
            "a callback was refused while the topic is missing (the spool has room, so Tencent \
             should get OK): {}",
            summary(&sent)
        ));
    }
    let held = t.wait_for(Duration::from_secs(20), "the held gauge to say 1", || {
        let held = t.metric_values("tim_relay_forwarding_held", &[("topic", &t.topic)]);
        held.iter().any(|(_, v)| *v == 1.0).then_some(held)
    });
    match &held {
        Ok(series) => t.note(&format!("held: {series:?}")),
        Err(e) => problems.push(format!(
            "tim_relay_forwarding_held{{topic=\"{}\"}} never became 1: {e}; /metrics has {:?}",
            t.topic,
            t.metric_values("tim_relay_forwarding_held", &[])
        )),
    }
    let holds = t.metric_sum("tim_relay_forward_holds_total", &[("topic", &t.topic)]);
    if !holds.is_some_and(|n| n >= 1.0) {
        problems.push(format!(
            "tim_relay_forward_holds_total{{topic}} is {holds:?}, not at least 1"
        ));
    }
    let spooled = t.metric_sum("tim_relay_spool_events", &[]);
    if !spooled.is_some_and(|n| n > 0.0) {
        problems.push(format!(
            "the spool should hold the events, tim_relay_spool_events is {spooled:?}"
        ));
    }
    expect_no_dead(&t, &mut problems, "while held");
    if broker::topic_exists(BOOTSTRAP, &t.topic) {
        problems.push(format!(
            "topic {} exists before the test created it: something auto-created it, the test no \
             longer shows a missing topic",
            t.topic
        ));
    }
    t.note("creating the topic");
    create_topic(&t.topic, 3, &[]);
    let load = Load::start(&t, "missing-after", 4, Duration::from_millis(50), 0, None);
    t.pause_ms(3_000);
    let after = load.finish(&t);
    t.note(&format!(
        "callbacks after the topic was created: {}",
        summary(&after)
    ));
    if after.iter().any(|s| !s.answer.ok()) {
        problems.push(format!(
            "a callback was refused after the topic was created: {}",
            summary(&after)
        ));
    }
    sent.extend(after);
    if let Err(e) = t.wait_spool_empty(Duration::from_secs(60)) {
        problems.push(e);
    }
    let released = t.wait_for(Duration::from_secs(30), "the held gauge to return to 0", || {
        let held = t.metric_values("tim_relay_forwarding_held", &[("topic", &t.topic)]);
        held.iter().all(|(_, v)| *v == 0.0).then_some(())
    });
    if let Err(e) = released {
        problems.push(format!(
            "{e}: {:?}",
            t.metric_values("tim_relay_forwarding_held", &[("topic", &t.topic)])
        ));
    }
    expect_no_dead(&t, &mut problems, "after the topic was created");
    let found = read_topic(&t.topic);
    problems.extend(check_delivered(&sent, &found).problems);
    t.note(&format!("{}; in topic {}", summary(&sent), found.len()));
    finish(&t, problems);
}

// ---- a record the topic refuses for its size ------------------------------------------------

#[test]
fn a_record_too_large_for_its_topic_is_set_aside_alone_the_events_behind_it_are_delivered_and_the_replay_delivers_it_once_the_topic_takes_it(
) {
    let _serial = serial();
    let mut broker = broker(true);
    broker.start();
    let mut t = TestRelay::new("too-large", "left-behind-too-large");
    // The limit applies to a whole record batch: the small events stay far below it together.
    create_topic(&t.topic, 3, &[("max.message.bytes", "16384")]);
    t.note("topic created with max.message.bytes=16384; stopping the broker so that events are spooled");
    broker.stop();
    t.start(&[]);
    let mut problems = Vec::new();
    let rt = t.rt.clone();
    let url = t.url(&format!("/callback?{CALLBACK_QUERY}"));
    let big_pad = 48 * 1024;
    let mut sent = Vec::new();
    for (i, pad) in (0..21).map(|i| (i, if i == 10 { big_pad } else { 0 })) {
        let marker = format!("too-large-n{i}");
        let group = format!("@TGS#left-behind-{}", i % 7);
        let answer = rt.block_on(callback(&t.http, &url, &group, &marker, pad));
        sent.push(Sent {
            marker,
            group,
            pad,
            answer,
        });
    }
    t.note(&format!(
        "10 small, one of {big_pad} bytes, 10 small: {}",
        summary(&sent)
    ));
    assert!(
        sent.iter().all(|s| s.answer.ok()),
        "every callback should be answered OK (spooled, the broker is down): {}",
        summary(&sent)
    );
    broker.start();
    t.note("broker started");
    if let Err(e) = t.wait_spool_empty(Duration::from_secs(60)) {
        problems.push(e);
    }
    let dead_metric = t.wait_for(
        Duration::from_secs(10),
        "tim_relay_spool_dead_events to be 1",
        || {
            t.metric_sum("tim_relay_spool_dead_events", &[])
                .filter(|n| *n == 1.0)
        },
    );
    if let Err(e) = dead_metric {
        problems.push(format!(
            "{e}: it is {:?} (a record batch holding the large event and small ones is refused \
             as a whole with MessageSizeTooLarge; only the large event may be set aside)",
            t.metric_sum("tim_relay_spool_dead_events", &[])
        ));
    }
    match t.dead_summary() {
        Ok(d) => {
            t.note(&format!("GET /spool/dead: {d}"));
            if d["events"].as_u64() != Some(1) {
                problems.push(format!(
                    "GET /spool/dead should list exactly the large event: {d}"
                ));
            }
            if d["bytes"].as_u64().is_none_or(|b| b < big_pad as u64) {
                problems.push(format!("GET /spool/dead bytes should cover the large event: {d}"));
            }
            for when in ["oldest_spooled_at_ms", "newest_spooled_at_ms"] {
                if !d[when].is_u64() {
                    problems.push(format!("GET /spool/dead {when} should be a time: {d}"));
                }
            }
            let by = d["by_topic_and_reason"].as_array().cloned().unwrap_or_default();
            let listed = by.iter().any(|e| {
                e["topic"] == t.topic.as_str()
                    && e["events"] == 1
                    && e["reason"].as_str().is_some_and(|r| r.contains("TooLarge"))
            });
            if by.len() != 1 || !listed {
                problems.push(format!(
                    "by_topic_and_reason should be one entry for {} with a MessageSizeTooLarge reason: {d}",
                    t.topic
                ));
            }
        }
        Err(e) => problems.push(e),
    }
    let found = read_topic(&t.topic);
    let small: Vec<Sent> = sent.iter().filter(|s| s.pad == 0).cloned().collect();
    let before_replay = check_delivered(&small, &found);
    if !before_replay.problems.is_empty() {
        problems.push(format!(
            "the events around the large one should be delivered before any replay: {}",
            before_replay.problems.join("; ")
        ));
    }
    if found.contains_key("too-large-n10") {
        problems.push("the large event is in the topic although the topic refuses its size".into());
    }
    // The subcommand, while the relay runs: it goes through the admin listener.
    match t.dead_cli("list") {
        Ok(v) if v["events"] == 1 => t.note(&format!("tim-relay dead list: {v}")),
        Ok(v) => problems.push(format!("`tim-relay dead list` should count 1 dead event: {v}")),
        Err(e) => problems.push(e),
    }
    t.note("raising max.message.bytes to 1048588");
    alter_topic(BOOTSTRAP, &t.topic, &[("max.message.bytes", "1048588")]);
    match t.replay() {
        Ok(v) if v["replayed"] == 1 => t.note(&format!("POST /spool/dead/replay: {v}")),
        Ok(v) => problems.push(format!("POST /spool/dead/replay should replay 1 event: {v}")),
        Err(e) => problems.push(e),
    }
    if let Err(e) = t.wait_spool_empty(Duration::from_secs(60)) {
        problems.push(e);
    }
    expect_no_dead(&t, &mut problems, "after the replay");
    let found = read_topic(&t.topic);
    problems.extend(check_delivered(&sent, &found).problems);
    t.note(&format!("{}; in topic {}", summary(&sent), found.len()));
    // Without a relay on the spool dir, the subcommand opens the spool itself.
    if t.terminate() != Some(0) {
        problems.push("the relay did not exit 0 after SIGTERM".into());
    }
    match t.dead_cli("list") {
        Ok(v) if v["events"] == 0 => t.note(&format!("tim-relay dead list (relay stopped): {v}")),
        Ok(v) => problems.push(format!(
            "`tim-relay dead list` with the relay stopped should count 0: {v}"
        )),
        Err(e) => problems.push(format!("with the relay stopped: {e}")),
    }
    finish(&t, problems);
}

// ---- a spool on a file system that fills up ---------------------------------------------------

#[test]
fn a_spool_on_a_full_file_system_answers_503_keeps_running_loses_nothing_and_takes_callbacks_again_once_space_is_freed(
) {
    let uid = Command::new("id").arg("-u").output().expect("run id -u");
    let uid = String::from_utf8_lossy(&uid.stdout).trim().to_string();
    assert_eq!(
        uid, "0",
        "this test mounts a size-limited tmpfs for the spool and must run as root (id -u says {uid})"
    );
    let _serial = serial();
    let mut broker = broker(true);
    broker.start();
    // Declared before the relay, so it is unmounted after the relay is gone (also on panic).
    let volume = Tmpfs::mount(&format!("{REPO}/target/left-behind-spool-fs"), "48m");
    let spool_dir = volume.path.join("spool");
    let mut t = TestRelay::new("full-disk", "left-behind-full-disk");
    t.relay.spool_dir = spool_dir;
    create_topic(&t.topic, 3, &[]);
    broker.stop();
    t.note("topic created, broker stopped: every callback goes to the spool");
    let filler = volume.path.join("filler");
    write_filler(&filler, 28 << 20);
    t.note(&format!(
        "48 MiB tmpfs at {}, 28 MiB filler written",
        volume.path.display()
    ));
    t.start(&[
        ("RELAY_SPOOL_MAX_BYTES", "268435456"),
        ("RELAY_SPOOL_MAX_FILE_BYTES", "536870912"),
    ]);
    let mut problems = Vec::new();
    let pad = 4096;
    let load = Load::start(&t, "disk-fill", 8, Duration::ZERO, pad, Some(5037));
    let filled = t.wait_for(
        Duration::from_secs(120),
        "a callback answered 503 with code 5037",
        || load.stopped().then_some(()),
    );
    let mut sent = load.finish(&t);
    t.note(&format!("filling: {}", summary(&sent)));
    if let Err(e) = filled {
        panic!(
            "{e}: the spool never reported a full disk; {}; see {}",
            summary(&sent),
            t.relay.log.display()
        );
    }
    let full: Vec<Sent> = sent.iter().filter(|s| s.answer.code == 5037).cloned().collect();
    for s in &full {
        let info = s.answer.info.to_lowercase();
        let about_disk = ["disk", "file system", "no space"]
            .iter()
            .any(|w| info.contains(w));
        if s.answer.status != 503 || !about_disk {
            problems.push(format!(
                "a full disk should be answered 503 with an ErrorInfo about the disk: {:?}",
                s.answer
            ));
            break;
        }
    }
    let other: Vec<&Sent> = sent
        .iter()
        .filter(|s| !s.answer.ok() && s.answer.code != 5037)
        .collect();
    if !other.is_empty() {
        problems.push(format!(
            "{} callbacks failed otherwise than 5037 while the disk filled, e.g. {:?}",
            other.len(),
            other[0].answer
        ));
    }
    if t.relay_exited() {
        panic!("the relay exited on a full disk; see {}", t.relay.log.display());
    }
    match t
        .rt
        .block_on(async { t.http.get(t.admin_url("/healthz")).send().await })
    {
        Ok(r) if r.status() == 200 => {}
        other => problems.push(format!("/healthz on a full disk: {other:?}")),
    }
    let disk_full = t.metric_sum("tim_relay_spool_disk_full", &[]);
    if disk_full != Some(1.0) {
        problems.push(format!(
            "tim_relay_spool_disk_full should be 1 on a full disk: {disk_full:?}"
        ));
    }
    let file_bytes = t.metric_sum("tim_relay_spool_file_bytes", &[]);
    let on_disk = std::fs::metadata(t.relay.spool_dir.join("spool.redb"))
        .map(|m| m.len())
        .ok();
    t.note(&format!(
        "spool file: tim_relay_spool_file_bytes {file_bytes:?}, on disk {on_disk:?}"
    ));
    if file_bytes.is_none() {
        problems.push("/metrics has no tim_relay_spool_file_bytes".into());
    }
    std::fs::remove_file(&filler).expect("remove the filler");
    t.note("filler removed");
    let url = t.url(&format!("/callback?{CALLBACK_QUERY}"));
    let mut n = 0;
    let taken = t.wait_for(
        Duration::from_secs(20),
        "a callback answered OK after space was freed",
        || {
            n += 1;
            let marker = format!("disk-freed-probe-n{n}");
            let group = "@TGS#left-behind-probe".to_string();
            let answer = t.rt.block_on(callback(&t.http, &url, &group, &marker, pad));
            let ok = answer.ok();
            sent.push(Sent {
                marker,
                group,
                pad,
                answer,
            });
            ok.then_some(())
        },
    );
    if let Err(e) = taken {
        problems.push(format!(
            "{e}: the last answer was {:?}",
            sent.last().map(|s| &s.answer)
        ));
    }
    let load = Load::start(&t, "disk-freed", 4, Duration::from_millis(20), pad, None);
    t.pause_ms(2_000);
    let after = load.finish(&t);
    t.note(&format!("after the filler was removed: {}", summary(&after)));
    if after.is_empty() || after.iter().any(|s| !s.answer.ok()) {
        problems.push(format!(
            "callbacks should be taken again once there is room: {}",
            summary(&after)
        ));
    }
    sent.extend(after);
    let disk_full = t.metric_sum("tim_relay_spool_disk_full", &[]);
    if disk_full != Some(0.0) {
        problems.push(format!(
            "tim_relay_spool_disk_full should be 0 again: {disk_full:?}"
        ));
    }
    broker.start();
    t.note("broker started");
    if let Err(e) = t.wait_spool_empty(Duration::from_secs(120)) {
        problems.push(e);
    }
    expect_no_dead(&t, &mut problems, "after the drain");
    let found = read_topic(&t.topic);
    problems.extend(check_delivered(&sent, &found).problems);
    t.note(&format!("{}; in topic {}", summary(&sent), found.len()));
    if full.is_empty() {
        problems.push("no callback was answered 5037".into());
    }
    t.kill();
    finish(&t, problems);
}

// ---- harness ------------------------------------------------------------------------------

/// The tests share one broker they stop and start: one at a time in this process (a mutex) and
/// across processes (a lock file outside the broker's data dir, like the fault test's).
fn serial() -> (MutexGuard<'static, ()>, File) {
    static SERIAL: Mutex<()> = Mutex::new(());
    // A test that panicked poisons the mutex; the next one still runs.
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = PathBuf::from(REPO).join("target/kafka-left-behind.lock");
    (guard, lock_file(&path, "the left-behind broker"))
}

/// This file's broker (127.0.0.1:19192); its data is wiped the first time in this process, and
/// it is not started. `auto_create` is its `auto.create.topics.enable`.
fn broker(auto_create: bool) -> Broker {
    static RESET: Once = Once::new();
    let broker = Broker {
        name: "left-behind",
        port: 19192,
        controller_port: 19193,
        data_dir: "target/kafka-left-behind",
        auto_create,
    };
    RESET.call_once(|| broker.run("reset"));
    broker
}

/// The broker's `auto.create.topics.enable`, as it reports it.
fn auto_create_setting() -> Option<String> {
    let admin = admin(BOOTSTRAP);
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = broker::block_on(admin.describe_configs([&ResourceSpecifier::Broker(1)], &opts)).ok()?;
    let resource = described.into_iter().next()?.ok()?;
    resource.get("auto.create.topics.enable")?.value.clone()
}

/// A size-limited tmpfs, unmounted when dropped (also on panic).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &str, size: &str) -> Tmpfs {
        let path = PathBuf::from(path);
        // A run that died before its guard ran may have left its mount behind.
        let _ = Command::new("umount").arg(&path).stderr(Stdio::null()).status();
        std::fs::create_dir_all(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs -o size={size} tmpfs {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            eprintln!("umount {} failed; detaching it lazily", self.path.display());
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Real pages (tmpfs counts what is written), in 1 MiB writes.
fn write_filler(path: &Path, bytes: usize) {
    let mut f = File::create(path).expect("filler file");
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..bytes / chunk.len() {
        f.write_all(&chunk).expect("write the filler");
    }
    f.sync_all().expect("sync the filler");
}

/// One relay under test: its topic, its timeline, and the relay (spool dir kept across
/// restarts, ports, log).
struct TestRelay {
    name: String,
    rt: Arc<Runtime>,
    http: reqwest::Client,
    topic: String,
    timeline: Timeline,
    relay: Relay,
    env: Vec<(String, String)>,
}

impl TestRelay {
    fn new(name: &str, topic_prefix: &str) -> TestRelay {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let logs = PathBuf::from(REPO).join("target/left-behind-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let log = logs.join(format!("{name}.log"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let t = TestRelay {
            name: name.into(),
            timeline: Timeline::new(name, vec![log.clone()]),
            relay: Relay::new("relay", log, rt.handle().clone(), http.clone()),
            rt: Arc::new(rt),
            http,
            topic: format!("{topic_prefix}-{}", uuid::Uuid::new_v4().simple()),
            env: Vec::new(),
        };
        t.note(&format!("topic {}", t.topic));
        t
    }

    /// Marks the timeline on stderr and in the relay's log, so steps line up with its lines.
    fn note(&self, what: &str) {
        self.timeline.note(what);
    }

    fn pause_ms(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    fn url(&self, path: &str) -> String {
        self.relay.url(path)
    }

    fn admin_url(&self, path: &str) -> String {
        self.relay.admin_url(path)
    }

    /// The relay's environment (also the `dead` subcommand's).
    fn command(&self) -> Command {
        let mut c = self.relay.command(BOOTSTRAP, &self.topic);
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    fn start(&mut self, env: &[(&str, &str)]) {
        self.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let pid = self.relay.start(self.command(), &self.name);
        self.note(&format!("relay started (pid {pid}) with {env:?}"));
    }

    fn relay_exited(&mut self) -> bool {
        self.relay.exited()
    }

    fn kill(&mut self) {
        if self.relay.kill().is_some() {
            self.note("relay killed");
        }
    }

    /// SIGTERM; waits for the relay to exit by itself and returns its exit code.
    fn terminate(&mut self) -> Option<i32> {
        let timeline = &self.timeline;
        self.relay.terminate(|what| timeline.note(what))
    }

    /// Every series of `name` whose labels include `labels`, with its value.
    fn metric_values(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(String, f64)> {
        self.relay.metric_values(name, labels)
    }

    /// The sum of the matching series; None when there is none (or /metrics is unreadable).
    fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.relay.metric_sum(name, labels)
    }

    /// Polls `what` every 200 ms until it gives a value or `within` has passed.
    fn wait_for<T>(&self, within: Duration, what: &str, f: impl FnMut() -> Option<T>) -> Result<T, String> {
        support::wait_for(within, Duration::from_millis(200), what, f)
    }
    /// Waits until the spool holds nothing: everything answered OK is then in Kafka (or dead).
    fn wait_spool_empty(&self, within: Duration) -> Result<(), String> {
        let result = self.wait_for(within, "the spool to drain", || {
            (self.metric_sum("tim_relay_spool_events", &[]) == Some(0.0)).then_some(())
        });
        match result {
            Ok(()) => {
                self.note("spool drained");
                Ok(())
            }
            Err(e) => Err(format!(
                "{e}: tim_relay_spool_events is {:?}, held {:?}",
                self.metric_sum("tim_relay_spool_events", &[]),
                self.metric_values("tim_relay_forwarding_held", &[])
            )),
        }
    }

    fn admin_json(&self, post: bool, path: &str) -> Result<Value, String> {
        let url = self.admin_url(path);
        let what = format!("{} {path}", if post { "POST" } else { "GET" });
        self.rt.block_on(async {
            let request = if post {
                self.http.post(&url)
            } else {
                self.http.get(&url)
            };
            let r = request.send().await.map_err(|e| format!("{what}: {e}"))?;
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            if status != 200 {
                return Err(format!("{what} answered HTTP {status}: {text}"));
            }
            serde_json::from_str(&text).map_err(|e| format!("{what} is not JSON ({e}): {text}"))
        })
    }

    /// `GET /spool/dead`.
    fn dead_summary(&self) -> Result<Value, String> {
        self.admin_json(false, "/spool/dead")
    }

    /// `POST /spool/dead/replay`.
    fn replay(&self) -> Result<Value, String> {
        self.admin_json(true, "/spool/dead/replay")
    }

    /// `tim-relay dead <action>` with the relay's environment: one JSON document on stdout.
    fn dead_cli(&self, action: &str) -> Result<Value, String> {
        let out = self
            .command()
            .args(["dead", action])
            .output()
            .map_err(|e| format!("cannot run tim-relay dead {action}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "tim-relay dead {action} exited {}: {stdout}{stderr}",
                out.status
            ));
        }
        serde_json::from_str(stdout.trim())
            .map_err(|e| format!("tim-relay dead {action} printed no JSON document ({e}): {stdout}"))
    }
}

/// Both views of the dead table say it is empty.
fn expect_no_dead(t: &TestRelay, problems: &mut Vec<String>, when: &str) {
    match t.dead_summary() {
        Ok(d) if d["events"] == 0 => {}
        Ok(d) => problems.push(format!(
            "{when}: events were dead-lettered: GET /spool/dead = {d}"
        )),
        Err(e) => problems.push(format!("{when}: {e}")),
    }
    let metric = t.metric_sum("tim_relay_spool_dead_events", &[]);
    if metric != Some(0.0) {
        problems.push(format!(
            "{when}: tim_relay_spool_dead_events is {metric:?}, not 0"
        ));
    }
}

fn finish(t: &TestRelay, mut problems: Vec<String>) {
    if !problems.is_empty() {
        problems.push(format!("relay log and timeline: {}", t.relay.log.display()));
    }
    assert!(
        problems.is_empty(),
        "{}: problems:\n{}",
        t.name,
        problems.join("\n")
    );
}

/// What the relay answered to one callback.
#[derive(Debug, Clone, Default)]
struct Answer {
    status: u16,
    code: i64,
    info: String,
    action: String,
}

impl Answer {
    fn ok(&self) -> bool {
        self.status == 200 && self.action == "OK" && self.code == 0
    }
}

#[derive(Debug, Clone)]
struct Sent {
    marker: String,
    group: String,
    pad: usize,
    answer: Answer,
}

/// Counts answers by kind: "OK 120, HTTP 503 code 5037 4".
fn summary(sent: &[Sent]) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for s in sent {
        let a = &s.answer;
        let key = match (a.ok(), a.status) {
            (true, _) => "OK".to_string(),
            (false, 0) => format!("no answer ({})", a.info),
            (false, status) => format!("HTTP {status} code {}", a.code),
        };
        *by.entry(key).or_default() += 1;
    }
    let parts: Vec<String> = by.into_iter().map(|(k, n)| format!("{k} x{n}")).collect();
    format!("sent {}: {}", sent.len(), parts.join(", "))
}

/// One signed-less callback (no token configured): Name carries the marker, `Padding` (kept
/// verbatim under the event's `extra`) makes it as large as wanted.
async fn callback(http: &reqwest::Client, url: &str, group: &str, marker: &str, pad: usize) -> Answer {
    let body = serde_json::json!({
        "GroupId": group,
        "Name": marker,
        "Padding": padding(marker, pad),
    });
    match http.post(url).body(body.to_string()).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or_default();
            Answer {
                status,
                code: v["ErrorCode"].as_i64().unwrap_or(-1),
                info: v["ErrorInfo"].as_str().unwrap_or_default().to_string(),
                action: v["ActionStatus"].as_str().unwrap_or_default().to_string(),
            }
        }
        Err(e) => Answer {
            info: if e.is_timeout() {
                "timeout".into()
            } else {
                format!("{e}")
            },
            ..Answer::default()
        },
    }
}

/// Text that does not compress much, derived from the marker (so a damaged copy shows).
fn padding(marker: &str, len: usize) -> String {
    let mut x: u64 = marker.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chars[(x % chars.len() as u64) as usize] as char
        })
        .collect()
}

/// Workers that each send callbacks one after the other (own group per worker) until stopped,
/// or until one is answered with `stop_on` as its ErrorCode.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Sent>>>,
}

impl Load {
    fn start(
        t: &TestRelay,
        prefix: &str,
        workers: usize,
        pause: Duration,
        pad: usize,
        stop_on: Option<i64>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let url = t.url(&format!("/callback?{CALLBACK_QUERY}"));
        let workers = (0..workers)
            .map(|w| {
                let (http, url, stop) = (t.http.clone(), url.clone(), stop.clone());
                let group = format!("@TGS#left-behind-{prefix}-w{w}");
                let prefix = prefix.to_string();
                t.rt.spawn(async move {
                    let mut sent = Vec::new();
                    for n in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let marker = format!("{prefix}-w{w}-n{n}");
                        let answer = callback(&http, &url, &group, &marker, pad).await;
                        if stop_on.is_some_and(|code| answer.code == code) {
                            stop.store(true, Ordering::Relaxed);
                        }
                        sent.push(Sent {
                            marker,
                            group: group.clone(),
                            pad,
                            answer,
                        });
                        tokio::time::sleep(pause).await;
                    }
                    sent
                })
            })
            .collect();
        Load { stop, workers }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn finish(self, t: &TestRelay) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        let results = t.rt.block_on(futures_util::future::join_all(self.workers));
        results
            .into_iter()
            .flat_map(|r| r.expect("load worker"))
            .collect()
    }
}

fn create_topic(topic: &str, partitions: i32, config: &[(&str, &str)]) {
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in config {
        new_topic = new_topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    broker::create_topic(BOOTSTRAP, &new_topic, &opts);
}

/// One record read back: its group and its padding.
#[derive(Debug)]
struct Found {
    group: Option<String>,
    padding: Option<String>,
}

/// Reads every partition of the topic from the beginning to its high watermark, by marker.
fn read_topic(topic: &str) -> HashMap<String, Found> {
    let reader = Reader::new(BOOTSTRAP, topic, "left-behind");
    let partitions = reader.partitions();
    let mut found: HashMap<String, Found> = HashMap::new();
    let (retry, within) = (Duration::ZERO, Duration::from_secs(60));
    let read = reader.read(&partitions, retry, within, |m| {
        let value: Value = m
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or_default();
        let marker = value["changes"]["name"]
            .as_str()
            .unwrap_or("(not a test event)")
            .to_string();
        // A duplicate (which the promise allows) keeps the first copy.
        found.entry(marker).or_insert(Found {
            group: value["group_id"].as_str().map(String::from),
            padding: value["extra"]["Padding"].as_str().map(String::from),
        });
    });
    if let Err(e) = read {
        panic!("{e}");
    }
    found
}

struct Delivery {
    problems: Vec<String>,
}

/// Every callback answered OK is in the topic, intact (its group and padding as sent).
fn check_delivered(sent: &[Sent], found: &HashMap<String, Found>) -> Delivery {
    let mut problems = Vec::new();
    let mut lost = Vec::new();
    let mut damaged = Vec::new();
    for s in sent.iter().filter(|s| s.answer.ok()) {
        match found.get(&s.marker) {
            None => lost.push(s.marker.clone()),
            Some(f) => {
                let pad_ok = f.padding.as_deref() == Some(padding(&s.marker, s.pad).as_str());
                if f.group.as_deref() != Some(s.group.as_str()) || !pad_ok {
                    damaged.push(s.marker.clone());
                }
            }
        }
    }
    let ok = sent.iter().filter(|s| s.answer.ok()).count();
    if !lost.is_empty() {
        lost.sort();
        problems.push(format!(
            "{} of {ok} callbacks answered OK are not in the topic, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(8)]
        ));
    }
    if !damaged.is_empty() {
        problems.push(format!(
            "{} events in the topic differ from what was sent, e.g. {:?}",
            damaged.len(),
            &damaged[..damaged.len().min(8)]
        ));
    }
    if ok == 0 {
        problems.push("no callback was answered OK: the test checks nothing".into());
    }
    Delivery { problems }
}

/// The harness checks itself without a broker.
#[test]
fn the_metric_reader_finds_labelled_series_and_the_delivery_check_finds_lost_and_damaged_events() {
    let text = "# HELP x\n\
        tim_relay_forwarding_held{reason=\"UnknownTopic\",topic=\"a\"} 1\n\
        tim_relay_forwarding_held{reason=\"UnknownTopic\",topic=\"ab\"} 0\n\
        tim_relay_spool_dead_events 3\n";
    assert_eq!(
        series(text, "tim_relay_forwarding_held", &[("topic", "a")]).len(),
        1
    );
    assert_eq!(series(text, "tim_relay_forwarding_held", &[]).len(), 2);
    assert_eq!(series(text, "tim_relay_spool_dead_events", &[])[0].1, 3.0);
    let ok = Answer {
        status: 200,
        action: "OK".into(),
        ..Answer::default()
    };
    let sent = |m: &str, pad| Sent {
        marker: m.into(),
        group: "g".into(),
        pad,
        answer: ok.clone(),
    };
    let mut found = HashMap::new();
    found.insert(
        "a".to_string(),
        Found {
            group: Some("g".into()),
            padding: Some(padding("a", 5)),
        },
    );
    found.insert(
        "b".to_string(),
        Found {
            group: Some("g".into()),
            padding: Some("xx".into()),
        },
    );
    let check = check_delivered(&[sent("a", 5), sent("b", 2), sent("c", 0)], &found);
    assert_eq!(check.problems.len(), 2, "{:?}", check.problems);
    assert!(check_delivered(&[sent("a", 5)], &found).problems.is_empty());
}
