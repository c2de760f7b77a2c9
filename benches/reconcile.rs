//! The reconciler's benchmark (issue 22, item 8): sweeps of `BENCH_GROUPS` groups (100,000)
//! held by the Tencent emulator, against the real broker, with the release binary:
//!
//! 1. drift everywhere, nothing in the state yet: every group gets a snapshot;
//! 2. no drift: the same groups again once the materializer has folded them;
//! 3. drift everywhere in documents that exist: every group renamed at Tencent without a
//!    callback.
//!
//! Each prints its wall time, REST calls per group by API, events published and the
//! reconciler's peak resident memory (VmHWM). Then the memory of the state index alone for
//! `BENCH_INDEX_GROUPS` (1,000,000) groups, built in this process. A measurement, not a test:
//! `bash scripts/reconcile-bench.sh` runs it (`cargo bench --bench reconcile`); figures in
//! docs/performance.md.
//!
//! Knobs: BENCH_GROUPS (100000), BENCH_QPS (RECONCILE_MAX_QPS, 200: Tencent's per-API limit,
//! the fastest a sweep may go), BENCH_SWEEPS (3: how many of the three sweeps to run),
//! BENCH_INDEX_GROUPS (1000000), BENCH_NO_ATTRS (0; 1: no group type has attributes, so a
//! sweep costs 0.02 calls a group and the memory figures come in a minute),
//! KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

#[path = "../tests/support/emulator/mod.rs"]
mod emulator;
#[path = "../tests/support/state_model.rs"]
mod state_model;

use emulator::{Config, Emulator, Population, Rng};
use state_model::read_state;
use tim_relay::reconcile::digest::{Digest, Known, Known1};

const PARTITIONS: i32 = 6;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Resident memory of `pid` (`VmRSS`, or `VmHWM` for the peak) in MiB.
fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Sweep {
    summary: String,
    took: Duration,
    peak_mib: f64,
}

fn sweep(emu: &Emulator, topic: &str, qps: u64) -> Sweep {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tim-relay"))
        .args(["reconcile", "--once"])
        .envs(emu.env())
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
        .env("KAFKA_TOPIC", topic)
        .env("KAFKA_STATE_TOPIC", format!("{topic}.state"))
        .env("RELAY_STATE_GROUP_ID", format!("{topic}.group"))
        .env("RECONCILE_MAX_QPS", qps.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("tim-relay reconcile starts");
    let pid = child.id();
    let mut peak: f64 = 0.0;
    while child.try_wait().expect("status").is_none() {
        peak = peak.max(memory_mib(pid, "VmHWM:").unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "reconcile --once failed: {}", out.status);
    Sweep {
        summary: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        took: started.elapsed(),
        peak_mib: peak,
    }
}

fn create_topic(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .expect("create topic");
    for r in created {
        r.expect("topic created");
    }
}

/// Live documents in the state topic.
fn documents(state: &str) -> usize {
    read_state(&bootstrap(), state, PARTITIONS, Duration::from_secs(300))
        .last
        .values()
        .filter(|doc| doc.is_some())
        .count()
}

fn print(name: &str, s: &Sweep, groups: u64) {
    println!(
        "{name}: {:.1} s wall, {:.0} groups/s, peak RSS {:.1} MiB\n  {}",
        s.took.as_secs_f64(),
        groups as f64 / s.took.as_secs_f64(),
        s.peak_mib,
        s.summary
    );
}

/// The state index for `n` groups, built here: what a sweep holds for every group.
fn index_memory(n: u64) {
    let before = memory_mib(std::process::id(), "VmRSS:").unwrap_or(0.0);
    let mut known = Known::default();
    for i in 0..n {
        let mut d = [0u64; 11];
        for (k, h) in d.iter_mut().enumerate() {
            *h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(k as u32);
        }
        let entry = Known1 {
            digest: Digest(d),
            group_type: Some(
                ["Public", "Private", "ChatRoom", "AVChatRoom", "Community"][i as usize % 5].into(),
            ),
        };
        known.groups.insert(format!("@TGS#2EMU{i:08}"), entry);
    }
    let after = memory_mib(std::process::id(), "VmRSS:").unwrap_or(0.0);
    println!(
        "state index for {n} groups: {:.1} MiB ({:.0} bytes a group)",
        after - before,
        (after - before) * 1024.0 * 1024.0 / n as f64
    );
    drop(known);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it, and must
    // not start a sweep of 100,000 groups.
    if !std::env::args().any(|a| a == "--bench") {
        println!("the reconciler's benchmark: run it with `bash scripts/reconcile-bench.sh`");
        return;
    }
    let groups = knob("BENCH_GROUPS", 100_000);
    let qps = knob("BENCH_QPS", 200);
    let sweeps = knob("BENCH_SWEEPS", 3);
    let topic = format!("__tim_reconcile_bench_{}", uuid::Uuid::new_v4().simple());
    create_topic(&topic);
    let emu = Emulator::start(Config::default());
    let started = Instant::now();
    emu.with_world(|w| {
        if knob("BENCH_NO_ATTRS", 0) == 1 {
            w.set_types_without_attrs(emulator::GroupType::ALL);
        }
        w.populate(
            &mut Rng::new(2026),
            &Population {
                groups: groups as usize,
                large_every: 10,
                huge_members: None,
            },
        )
    });
    println!(
        "{groups} groups at the emulator in {:.1} s; RECONCILE_MAX_QPS={qps}",
        started.elapsed().as_secs_f64()
    );
    let mut materialize = Command::new(env!("CARGO_BIN_EXE_tim-relay"))
        .arg("materialize")
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
        .env("KAFKA_TOPIC", &topic)
        .env("KAFKA_STATE_TOPIC", format!("{topic}.state"))
        .env("RELAY_STATE_GROUP_ID", format!("{topic}.group"))
        .env("RELAY_ADMIN_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("materialize starts");
    let first = sweep(&emu, &topic, qps);
    print("sweep 1, drift everywhere (no documents yet)", &first, groups);
    if sweeps >= 2 {
        let waited = Instant::now();
        while documents(&format!("{topic}.state")) < groups as usize {
            assert!(
                waited.elapsed() < Duration::from_secs(900),
                "the fold did not catch up"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        let second = sweep(&emu, &topic, qps);
        print("sweep 2, no drift", &second, groups);
    }
    if sweeps >= 3 {
        emu.with_world(|w| {
            for id in w.group_ids() {
                if let Some(g) = w.group_mut(&id) {
                    g.name = format!("{} (renamed)", g.name);
                }
            }
        });
        let third = sweep(&emu, &topic, qps);
        print("sweep 3, drift everywhere (every group renamed)", &third, groups);
    }
    let _ = materialize.kill();
    let _ = materialize.wait();
    index_memory(knob("BENCH_INDEX_GROUPS", 1_000_000));
}
