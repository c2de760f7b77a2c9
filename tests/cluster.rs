//! Fault tests against a real three-node Kafka cluster (`scripts/kafka-cluster.sh`: replication
//! factor 3, `min.insync.replicas=2`), with two relays behind one address, as issue 13 asks:
//! the leader of the hot partition killed twice, a rolling restart, two nodes down at once, the
//! active controller killed.
//!
//! They are slow and need the cluster, so `cargo test` skips them (ignored). Run them with
//! `bash scripts/cluster-faults.sh`, which starts the cluster, runs them one at a time and stops
//! it. By hand, with a cluster running: `cargo test --test cluster -- --ignored --test-threads 1
//! --nocapture` (with the same `KAFKA_CLUSTER_*` variables as the cluster, which the test
//! passes on to `kafka-cluster.sh`).
//!
//! The load: each group gets one callback at a time, and its callbacks alternate between relay
//! A and relay B, which is what a round-robin load balancer in front of two replicas does to
//! Tencent's callbacks (the `GroupId` is in the body, so it cannot route by group). The tally
//! is `tests/fault.rs`'s, plus which relay answered each callback: order per group must hold
//! among the callbacks one relay answered (asserted), while order across the two relays is only
//! measured (issue 13's "16%": what the design work on ordering across replicas must reduce).
//!
//! Each scenario has its own topic, two spool dirs and a log per relay
//! (`target/cluster-logs/<scenario>-relay-{a,b}.log`, with the harness's timeline in both); the
//! summary lines also go to `target/cluster-logs/summary.txt`.
//!
//! Knobs: `CLUSTER_FAULTS_SECS` (each scenario's load runs at least this long, default 60; the
//! faults take what they take, and the load runs on for 5 s after the last); `KAFKA_PRODUCER_*`
//! and `RELAY_ACK_TIMEOUT_MS` reach both relays, as in `tests/fault.rs`;
//! `CLUSTER_FAULTS_PEERS=0` runs the relays without `RELAY_PEERS`, to measure order across
//! relays without it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use tokio::runtime::Handle;

mod support;
use support::broker::{admin, create_topic};
use support::cluster::{cluster, cluster_ready, Metadata};
use support::load::{not_ok_reasons, Load, Sent};
use support::lock::lock_file;
use support::relay::{Relay, CALLBACK_QUERY};
use support::tally::{read_topic, tally, Found, Shape, Tally};
use support::timeline::{append_line, Timeline};
use support::{wait_for, REPO};

const NODES: [u32; 3] = [1, 2, 3];
const PARTITIONS: i32 = 6;
/// Tencent's budget for an answer.
const BUDGET: Duration = Duration::from_secs(2);
/// Load before the first fault and after the last.
const STEADY: u64 = 5;
const RELAYS: [&str; 2] = ["A", "B"];
/// The groups of this test's load: `@TGS#cluster-<n>`.
const GROUPS: &str = "cluster";
const SHAPE: Shape<'static> = Shape {
    prefix: GROUPS,
    relays: &RELAYS,
    budget: BUDGET,
};

#[test]
#[ignore = "needs the three-node cluster: bash scripts/cluster-faults.sh"]
fn leader_of_the_hot_partition_killed_twice() {
    run(
        "leader of partition 0 killed (kill -9) twice",
        leader_killed_twice,
        false,
    );
}

#[test]
#[ignore = "needs the three-node cluster: bash scripts/cluster-faults.sh"]
fn rolling_restart_of_all_three_nodes() {
    run("rolling restart of all three nodes", rolling_restart, false);
}

#[test]
#[ignore = "needs the three-node cluster: bash scripts/cluster-faults.sh"]
fn two_nodes_stopped_for_10_s() {
    run("two nodes stopped for 10 s", two_nodes_stopped, true);
}

#[test]
#[ignore = "needs the three-node cluster: bash scripts/cluster-faults.sh"]
fn active_controller_killed() {
    run("active controller killed (kill -9)", controller_killed, false);
}

/// What a scenario does to the cluster while the load runs.
type Faults = fn(&mut Scenario);

fn leader_killed_twice(s: &mut Scenario) {
    for round in 1..=2 {
        let node = s.leader_of(0);
        let led = s.partitions_led_by(node);
        s.note(&format!(
            "kill {round}: node {node} leads partitions {led:?} (partition 0 among them)"
        ));
        s.cluster(&["kill-node", &node.to_string()]);
        s.pause(10);
        s.cluster(&["start-node", &node.to_string()]);
        s.wait_in_sync();
        s.pause(STEADY);
    }
}

fn rolling_restart(s: &mut Scenario) {
    for node in NODES {
        let node = node.to_string();
        s.cluster(&["stop-node", &node]);
        s.pause(5);
        s.cluster(&["start-node", &node]);
        // As an operator would: the next node goes only once every replica is back in sync.
        s.wait_in_sync();
        s.pause(STEADY);
    }
}

fn two_nodes_stopped(s: &mut Scenario) {
    // The survivor is the active controller: each controlled shutdown then finds a quorum (the
    // controller and the stopping node) to grant it, and both end cleanly.
    let controller = s.controller();
    let stopped: Vec<u32> = NODES.into_iter().filter(|&n| n != controller).collect();
    s.note(&format!(
        "stopping nodes {stopped:?}; node {controller} (the active controller) stays"
    ));
    for node in &stopped {
        s.cluster(&["stop-node", &node.to_string()]);
    }
    s.note("two nodes down: acks=all cannot be met");
    s.pause(10);
    s.cluster(&["start"]);
    s.wait_in_sync();
}

fn controller_killed(s: &mut Scenario) {
    let node = s.controller();
    let led = s.partitions_led_by(node);
    s.note(&format!(
        "node {node} is the active controller and leads partitions {led:?}"
    ));
    s.cluster(&["kill-node", &node.to_string()]);
    let killed = Instant::now();
    s.pause(3);
    let new = s.controller();
    s.note(&format!("the new active controller is node {new}"));
    // Down for 10 s in all, however long the look-up took (a JVM each: seconds on a busy machine).
    std::thread::sleep(Duration::from_secs(10).saturating_sub(killed.elapsed()));
    s.cluster(&["start-node", &node.to_string()]);
    s.wait_in_sync();
}

/// Runs one scenario under load, waits until both relays' spools are empty, reads the topic
/// back, prints the tally and asserts what must hold.
fn run(name: &str, faults: Faults, answers_within_budget: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let logs = PathBuf::from(REPO).join("target/cluster-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let _one_at_a_time = lock_file(&logs.join("cluster-test.lock"), "a cluster scenario");
    let mut s = Scenario::new(rt.handle().clone(), name);
    for relay in 0..RELAYS.len() {
        s.start_relay(relay);
    }
    s.wait_ready();
    s.start_load();
    s.pause(STEADY);
    faults(&mut s);
    let min = std::env::var("CLUSTER_FAULTS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60u64);
    let load_ran = s.load_started.elapsed();
    let more = Duration::from_secs(min)
        .saturating_sub(load_ran)
        .max(Duration::from_secs(STEADY));
    std::thread::sleep(more);
    let sent = s.finish_load();
    s.note("load stopped; waiting for both spools to drain");
    let drained = s.drain_spools(Duration::from_secs(180));
    let spooled: Vec<String> = (0..RELAYS.len())
        .map(|r| {
            let n = s.metric(r, "tim_relay_spooled_total");
            format!("{} {}", RELAYS[r], n.map_or("?".into(), |n| n.to_string()))
        })
        .collect();
    if let Err(left) = drained {
        s.problems.push(format!(
            "the spools did not drain within 180 s: {left} (those events count as lost below)"
        ));
    }
    for (r, label) in RELAYS.iter().enumerate() {
        if let Some(dead) = s.metric(r, "tim_relay_spool_dead_events").filter(|&d| d > 0.0) {
            s.problems.push(format!(
                "relay {label} refused {dead} events for good (dead table)"
            ));
        }
    }
    let (retry, within) = (Duration::from_secs(60), Duration::from_secs(120));
    let records = read_topic(&s.bootstrap, &s.topic, PARTITIONS, retry, within, &mut s.problems);
    s.note("topic read");
    let t = tally(&sent, &records, &SHAPE);
    let line = format!(
        "{name}{}: {}; spooled {}; took {:.0} s",
        if peers_on() { "" } else { " (RELAY_PEERS unset)" },
        summary(&t),
        spooled.join(", "),
        s.timeline.now().as_secs_f64()
    );
    s.note(&line);
    s.note(&format!(
        "not answered OK, by reason: {}",
        not_ok_reasons(&sent, &RELAYS)
    ));
    s.note(&format!(
        "out of order across the relays, by when they were sent (timeline seconds): {}",
        t.across_when()
    ));
    eprintln!("{line}");
    append_line(&logs.join("summary.txt"), &line);
    if t.lost > 0 || t.out_of_order_one_relay > 0 || t.strange > 0 {
        s.problems.extend(t.examples.iter().cloned());
    }
    if t.lost > 0 {
        s.problems
            .push(format!("{} callbacks answered OK are not in the topic", t.lost));
    }
    if t.out_of_order_one_relay > 0 {
        s.problems.push(format!(
            "{} events are out of order among the callbacks one relay answered",
            t.out_of_order_one_relay
        ));
    }
    if t.ok * 2 < t.sent {
        s.problems.push(format!(
            "only {} of {} callbacks answered OK: the harness tests little",
            t.ok, t.sent
        ));
    }
    if answers_within_budget && (t.ok < t.sent || t.slow > 0) {
        s.problems.push(format!(
            "every callback must be answered OK within {} s: {} were not answered OK, {} took longer",
            BUDGET.as_secs(),
            t.sent - t.ok,
            t.slow
        ));
    }
    if !s.problems.is_empty() {
        s.problems.push(format!(
            "relay logs with the timeline: {}",
            s.relays
                .iter()
                .map(|r| r.log.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    assert!(
        s.problems.is_empty(),
        "{line}\n\nproblems:\n{}",
        s.problems.join("\n")
    );
}

/// One scenario: its topic, the two relays and the load.
struct Scenario {
    rt: Handle,
    bootstrap: String,
    metadata: Metadata,
    topic: String,
    relays: Vec<Relay>,
    timeline: Timeline,
    load_started: Instant,
    load: Option<Load>,
    problems: Vec<String>,
}

impl Scenario {
    fn new(rt: Handle, name: &str) -> Self {
        let bootstrap = cluster_ready();
        let slug: String = name
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        let topic = format!("cluster-{slug}-{}", uuid::Uuid::new_v4().simple());
        let new_topic =
            NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
        create_topic(&bootstrap, &new_topic, &AdminOptions::new());
        let logs = PathBuf::from(REPO).join("target/cluster-logs");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let relays: Vec<Relay> = RELAYS
            .iter()
            .map(|r| {
                let log = logs.join(format!("{slug}-relay-{}.log", r.to_lowercase()));
                Relay::new(&format!("relay {r}"), log, rt.clone(), http.clone())
            })
            .collect();
        let timeline = Timeline::new(name, relays.iter().map(|r| r.log.clone()).collect());
        let s = Scenario {
            rt,
            metadata: Metadata::new(&bootstrap),
            bootstrap,
            topic,
            relays,
            timeline,
            load_started: Instant::now(),
            load: None,
            problems: Vec::new(),
        };
        s.note(&format!(
            "topic {} ({PARTITIONS} partitions, replication factor 3, min.insync.replicas 2) on {}",
            s.topic, s.bootstrap
        ));
        s.wait_in_sync();
        s.warm_up();
        s
    }

    /// On a fresh cluster the first idempotent producer waits seconds for its producer id
    /// ("Coordinator load in progress"), and the relays would spool for it: a fault of its own
    /// that would blur the first scenario's figures. One acknowledged record from an
    /// idempotent producer, to a topic of its own, gets that done before the load starts.
    fn warm_up(&self) {
        let t0 = Instant::now();
        let topic = NewTopic::new("cluster-warm-up", 1, TopicReplication::Fixed(3));
        // "Topic already exists" from an earlier scenario is fine; anything else shows below.
        let admin = admin(&self.bootstrap);
        let _ = self
            .rt
            .block_on(async { admin.create_topics([&topic], &AdminOptions::new()).await });
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "60000")
            .create()
            .expect("warm-up producer");
        let record = FutureRecord::to("cluster-warm-up").key("warm-up").payload("{}");
        let sent = self
            .rt
            .block_on(async { producer.send(record, Duration::from_secs(60)).await });
        if let Err((e, _)) = sent {
            panic!(
                "{}: the cluster took no record within 60 s: {e}",
                self.timeline.name
            );
        }
        self.note(&format!(
            "an idempotent producer's first record acknowledged after {:.1} s",
            t0.elapsed().as_secs_f64()
        ));
    }

    /// Both relays answer `/readyz` 200 (Kafka reachable), as a load balancer would wait for.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for relay in &self.relays {
            while !relay.answers("/readyz") {
                if Instant::now() > deadline {
                    panic!("{}: {} not ready after 30 s", self.timeline.name, relay.label);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.note("both relays ready");
    }

    /// Marks the timeline on stderr and in both relays' logs, so faults line up with their lines.
    fn note(&self, what: &str) {
        self.timeline.note(what);
    }

    fn pause(&self, secs: u64) {
        std::thread::sleep(Duration::from_secs(secs));
    }

    /// A lifecycle or look-up command of `kafka-cluster.sh`, on the timeline.
    fn cluster(&self, args: &[&str]) -> String {
        cluster(&self.timeline, args)
    }

    fn controller(&self) -> u32 {
        let out = self.cluster(&["controller"]);
        out.parse()
            .unwrap_or_else(|_| panic!("kafka-cluster.sh controller printed {out:?}"))
    }

    /// Leader and in-sync replica count of each partition of the topic, from fresh metadata.
    fn partitions(&self) -> Result<Vec<(i32, i32, usize)>, String> {
        let partitions = self.metadata.partitions(&self.topic, Duration::from_secs(5))?;
        Ok(partitions.iter().map(|p| (p.id, p.leader, p.isr)).collect())
    }

    fn leader_of(&self, partition: i32) -> u32 {
        let out = self.cluster(&["leader", &self.topic, &partition.to_string()]);
        match out.parse::<i32>() {
            Ok(id) if id > 0 => id as u32,
            _ => panic!(
                "{}: partition {partition} has no leader ({out:?})",
                self.timeline.name
            ),
        }
    }

    fn partitions_led_by(&self, node: u32) -> Vec<i32> {
        let within = Duration::from_secs(5);
        self.metadata.partitions_led_by(&self.topic, node as i32, within)
    }

    /// Waits until every partition has a leader and all three replicas in sync.
    fn wait_in_sync(&self) {
        let t0 = Instant::now();
        let within = Duration::from_secs(120);
        let mut last = String::new();
        while t0.elapsed() < within {
            match self.partitions() {
                Ok(p)
                    if p.len() == PARTITIONS as usize && p.iter().all(|&(_, l, isr)| l >= 0 && isr == 3) =>
                {
                    let leaders: Vec<i32> = p.iter().map(|&(_, l, _)| l).collect();
                    self.note(&format!(
                        "all replicas in sync after {:.1} s; leaders by partition {leaders:?}",
                        t0.elapsed().as_secs_f64()
                    ));
                    return;
                }
                Ok(p) => last = format!("(partition, leader, in sync) {p:?}"),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "{}: the topic's replicas were not all in sync within {} s: {last}",
            self.timeline.name,
            within.as_secs()
        );
    }

    fn start_relay(&mut self, r: usize) {
        // Every relay's admin address, its own included: a relay recognizes itself by the
        // instance id in the answer, as it does behind a headless Service.
        let peers: Vec<String> = self
            .relays
            .iter()
            .map(|relay| format!("127.0.0.1:{}", relay.admin_port))
            .collect();
        let relay = &mut self.relays[r];
        let mut command = relay.command(&self.bootstrap, &self.topic);
        command
            .envs(peers_on().then(|| ("RELAY_PEERS", peers.join(","))))
            .envs(
                std::env::vars()
                    .filter(|(k, _)| k.starts_with("KAFKA_PRODUCER_") || k == "RELAY_ACK_TIMEOUT_MS"),
            )
            .envs(std::env::var_os("KAFKA_PRODUCER_DEBUG").map(|_| ("RUST_LOG", "info,librdkafka=debug")));
        let pid = relay.start(command, &self.timeline.name);
        let port = relay.port;
        self.note(&format!("relay {} started (pid {pid}, port {port})", RELAYS[r]));
    }

    fn start_load(&mut self) {
        let urls = self
            .relays
            .iter()
            .map(|r| r.url(&format!("/callback?{CALLBACK_QUERY}")))
            .collect();
        self.load = Some(Load::start(&self.rt, urls, GROUPS, self.timeline.started));
        self.load_started = Instant::now();
        self.note("load started");
    }

    fn finish_load(&mut self) -> Vec<Sent> {
        let load = self.load.take().expect("load running");
        load.finish(&self.rt)
    }

    /// One value from a relay's `/metrics` (None: unreadable).
    fn metric(&self, relay: usize, name: &str) -> Option<f64> {
        self.relays[relay].metric_sum(name, &[])
    }

    /// Polls both relays' `/metrics` until both spools are empty: everything they answered OK
    /// is then in Kafka. Otherwise says what each spool still holds.
    fn drain_spools(&self, within: Duration) -> Result<(), String> {
        let mut left = Vec::new();
        let drained = wait_for(within, Duration::from_millis(500), "the spools", || {
            left = (0..RELAYS.len())
                .map(|r| self.metric(r, "tim_relay_spool_events"))
                .collect();
            left.iter().all(|l| *l == Some(0.0)).then_some(())
        });
        if drained.is_ok() {
            self.note("both spools drained");
            return Ok(());
        }
        Err(left
            .iter()
            .zip(RELAYS)
            .map(|(l, r)| format!("relay {r} holds {}", l.map_or("?".into(), |n| n.to_string())))
            .collect::<Vec<_>>()
            .join(", "))
    }
}

/// Whether the relays wait for each other's older spooled events (`RELAY_PEERS`);
/// `CLUSTER_FAULTS_PEERS=0` measures the relays without it.
fn peers_on() -> bool {
    std::env::var("CLUSTER_FAULTS_PEERS").as_deref() != Ok("0")
}

/// The tally line: answers by relay, order within one relay and across the two, slow answers.
fn summary(t: &Tally) -> String {
    let delivered = t.ok - t.lost;
    let percent = match delivered {
        0 => 0.0,
        n => 100.0 * t.out_of_order_across as f64 / n as f64,
    };
    format!(
        "sent {}, answered OK {} (A {}, B {}), in topic {}, lost {}, duplicates {}, \
         out-of-order {} within one relay, {} across the two relays ({percent:.1}%); \
         answered OK after {} s: {}, slowest {:.2} s",
        t.sent,
        t.ok,
        t.ok_by_relay[0],
        t.ok_by_relay[1],
        t.in_topic,
        t.lost,
        t.duplicates,
        t.out_of_order_one_relay,
        t.out_of_order_across,
        BUDGET.as_secs(),
        t.slow,
        t.slowest.as_secs_f64()
    )
}

/// The harness checks itself without a cluster: a tally that missed loss or reordering, or
/// blamed one relay for the other's order, would make the figures worthless.
#[test]
fn the_tally_tells_order_within_one_relay_from_order_across_relays() {
    let sent = |group, seq, relay, ok: bool| Sent {
        group,
        seq,
        relay,
        at: Duration::from_secs(seq),
        took: Duration::from_millis(if seq == 4 { 2500 } else { 10 }),
        why: if ok { "" } else { "HTTP 503" }.into(),
    };
    let found = |offset, g, s| Found::marked(GROUPS, offset, g, s);
    let answered = [
        sent(1, 0, 0, true),
        sent(1, 1, 1, true),
        sent(1, 2, 0, true),
        sent(1, 3, 1, false),
        sent(1, 4, 0, true),
        sent(2, 0, 0, true),
        sent(2, 1, 1, true),
    ];
    // g1: s1 (B) lands before s0 (A): across only. s4 (A) before s2 (A): within A, and across.
    // s3 (not OK) anywhere; s1 twice; g2-s1 missing.
    let topic = [
        found(0, 1, 1),
        found(1, 1, 0),
        found(2, 1, 3),
        found(3, 1, 4),
        found(4, 1, 2),
        found(5, 1, 1),
        found(6, 2, 0),
    ];
    let t = tally(&answered, &[topic.into()], &SHAPE);
    assert_eq!(
        (t.sent, t.ok, &t.ok_by_relay[..], t.in_topic),
        (7, 6, &[4, 2][..], 6)
    );
    assert_eq!((t.lost, t.duplicates, t.strange), (1, 1, 0));
    assert_eq!((t.out_of_order_one_relay, t.out_of_order_across), (1, 2));
    assert_eq!(t.slow, 1);
    assert_eq!(t.across_when(), "0 s: 1, 2 s: 1");
}
