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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

#[path = "support/cluster.rs"]
mod cluster_support;
use cluster_support::{cluster_script, lock_cluster};

const BIN: &str = env!("CARGO_BIN_EXE_tim-relay");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const NODES: [u32; 3] = [1, 2, 3];
const GROUPS: usize = 300;
const WORKERS: usize = 32;
const PARTITIONS: i32 = 6;
/// Each worker's pause after a callback: 32 workers send at most ~300 callbacks/s, as in
/// `tests/fault.rs`; three brokers and two relays share this 2-core machine with other work.
const PAUSE: Duration = Duration::from_millis(100);
/// Tencent's budget for an answer.
const BUDGET: Duration = Duration::from_secs(2);
/// Load before the first fault and after the last.
const STEADY: u64 = 5;
const CALLBACK_QUERY: &str = "SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterGroupInfoChanged\
    &contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI";
const RELAYS: [&str; 2] = ["A", "B"];

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
    let _one_at_a_time = lock_cluster(&logs);
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
    let records = read_topic(&s.bootstrap, &s.topic, &mut s.problems);
    s.note("topic read");
    let t = tally(&sent, &records);
    let line = format!(
        "{name}{}: {}; spooled {}; took {:.0} s",
        if peers_on() { "" } else { " (RELAY_PEERS unset)" },
        t.summary(),
        spooled.join(", "),
        s.started.elapsed().as_secs_f64()
    );
    s.note(&line);
    s.note(&format!("not answered OK, by reason: {}", not_ok_reasons(&sent)));
    s.note(&format!(
        "out of order across the relays, by when they were sent (timeline seconds): {}",
        t.across_when()
    ));
    eprintln!("{line}");
    let logs = PathBuf::from(REPO).join("target/cluster-logs");
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("summary.txt"))
    {
        let _ = writeln!(f, "{line}");
    }
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

/// One relay: its ports (kept), its spool dir and log, and its process.
struct Relay {
    port: u16,
    admin_port: u16,
    spool: tempfile::TempDir,
    log: PathBuf,
    child: Option<Child>,
}

/// One scenario: its topic, the two relays and the load.
struct Scenario {
    name: String,
    rt: Handle,
    http: reqwest::Client,
    bootstrap: String,
    metadata: BaseConsumer,
    topic: String,
    relays: Vec<Relay>,
    started: Instant,
    load_started: Instant,
    load: Option<Load>,
    problems: Vec<String>,
}

impl Scenario {
    fn new(rt: Handle, name: &str) -> Self {
        let started = Instant::now();
        // A cluster that is not running at all was not started for us: say how to run this.
        // Some nodes down (an earlier scenario failed half-way): `start` brings them back.
        let status = Command::new("bash")
            .arg(format!("{REPO}/scripts/kafka-cluster.sh"))
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .and_then(|s| s.code());
        match status {
            Some(0) => {}
            Some(3) => panic!(
                "the three-node cluster is not running. Run these tests with \
                 `bash scripts/cluster-faults.sh` (it starts and stops the cluster)."
            ),
            _ => {
                if let Err(e) = cluster_script(&["start"]) {
                    panic!("kafka-cluster.sh start failed:\n{e}");
                }
            }
        }
        let bootstrap = cluster_script(&["bootstrap"]).expect("kafka-cluster.sh bootstrap");
        let slug: String = name
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        let topic = format!("cluster-{slug}-{}", uuid::Uuid::new_v4().simple());
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("admin client");
        let new_topic =
            NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
        let created = rt.block_on(async { admin.create_topics([&new_topic], &AdminOptions::new()).await });
        for result in created.expect("create topic request") {
            result.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
        }
        let logs = PathBuf::from(REPO).join("target/cluster-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let relays = RELAYS
            .iter()
            .map(|r| {
                let log = logs.join(format!("{slug}-relay-{}.log", r.to_lowercase()));
                let _ = std::fs::remove_file(&log);
                Relay {
                    port: free_port(),
                    admin_port: free_port(),
                    spool: tempfile::tempdir().expect("spool dir"),
                    log,
                    child: None,
                }
            })
            .collect();
        let metadata: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("metadata client");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let s = Scenario {
            name: name.into(),
            rt,
            http,
            bootstrap,
            metadata,
            topic,
            relays,
            started,
            load_started: Instant::now(),
            load: None,
            problems: Vec::new(),
        };
        s.note(&format!(
            "topic {} ({PARTITIONS} partitions, replication factor 3, min.insync.replicas 2) on {}",
            s.topic, s.bootstrap
        ));
        s.wait_in_sync();
        s.warm_up(&admin);
        s
    }

    /// On a fresh cluster the first idempotent producer waits seconds for its producer id
    /// ("Coordinator load in progress"), and the relays would spool for it: a fault of its own
    /// that would blur the first scenario's figures. One acknowledged record from an
    /// idempotent producer, to a topic of its own, gets that done before the load starts.
    fn warm_up(&self, admin: &AdminClient<DefaultClientContext>) {
        let t0 = Instant::now();
        let topic = NewTopic::new("cluster-warm-up", 1, TopicReplication::Fixed(3));
        // "Topic already exists" from an earlier scenario is fine; anything else shows below.
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
            panic!("{}: the cluster took no record within 60 s: {e}", self.name);
        }
        self.note(&format!(
            "an idempotent producer's first record acknowledged after {:.1} s",
            t0.elapsed().as_secs_f64()
        ));
    }

    /// Both relays answer `/readyz` 200 (Kafka reachable), as a load balancer would wait for.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (r, label) in RELAYS.iter().enumerate() {
            loop {
                let ready = self
                    .rt
                    .block_on(async { self.http.get(self.admin_url(r, "/readyz")).send().await });
                if ready.is_ok_and(|r| r.status() == 200) {
                    break;
                }
                if Instant::now() > deadline {
                    panic!("{}: relay {label} not ready after 30 s", self.name);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.note("both relays ready");
    }

    /// Marks the timeline on stderr and in both relays' logs, so faults line up with their lines.
    fn note(&self, what: &str) {
        let at = self.started.elapsed().as_secs_f64();
        eprintln!("[{at:6.1}s] {}: {what}", self.name);
        let now = humantime::format_rfc3339_millis(SystemTime::now());
        for relay in &self.relays {
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&relay.log) {
                let _ = writeln!(f, "[{now} HARNESS +{at:.1}s] {what}");
            }
        }
    }

    fn pause(&self, secs: u64) {
        std::thread::sleep(Duration::from_secs(secs));
    }

    /// A lifecycle or look-up command of `kafka-cluster.sh`, on the timeline; a failure panics
    /// (the scenario cannot go on as designed).
    fn cluster(&self, args: &[&str]) -> String {
        let t0 = Instant::now();
        match cluster_script(args) {
            Ok(out) => {
                self.note(&format!(
                    "kafka-cluster.sh {} ({:.1} s){}",
                    args.join(" "),
                    t0.elapsed().as_secs_f64(),
                    if out.is_empty() {
                        String::new()
                    } else {
                        format!(": {out}")
                    }
                ));
                out
            }
            Err(e) => panic!("{}: kafka-cluster.sh {} failed:\n{e}", self.name, args.join(" ")),
        }
    }

    fn controller(&self) -> u32 {
        let out = self.cluster(&["controller"]);
        out.parse()
            .unwrap_or_else(|_| panic!("kafka-cluster.sh controller printed {out:?}"))
    }

    /// Leader and in-sync replica count of each partition of the topic, from fresh metadata.
    fn partitions(&self) -> Result<Vec<(i32, i32, usize)>, String> {
        let metadata = self
            .metadata
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .ok_or("topic not in the metadata")?;
        if let Some(e) = topic.error() {
            return Err(format!("topic error {e:?}"));
        }
        Ok(topic
            .partitions()
            .iter()
            .map(|p| (p.id(), p.leader(), p.isr().len()))
            .collect())
    }

    fn leader_of(&self, partition: i32) -> u32 {
        let out = self.cluster(&["leader", &self.topic, &partition.to_string()]);
        match out.parse::<i32>() {
            Ok(id) if id > 0 => id as u32,
            _ => panic!("{}: partition {partition} has no leader ({out:?})", self.name),
        }
    }

    fn partitions_led_by(&self, node: u32) -> Vec<i32> {
        self.partitions()
            .unwrap_or_default()
            .into_iter()
            .filter(|&(_, leader, _)| leader == node as i32)
            .map(|(p, _, _)| p)
            .collect()
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
            self.name,
            within.as_secs()
        );
    }

    fn url(&self, relay: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.relays[relay].port)
    }

    fn admin_url(&self, relay: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.relays[relay].admin_port)
    }

    fn start_relay(&mut self, r: usize) {
        // Every relay's admin address, its own included: a relay recognizes itself by the
        // instance id in the answer, as it does behind a headless Service.
        let peers: Vec<String> = self
            .relays
            .iter()
            .map(|relay| format!("127.0.0.1:{}", relay.admin_port))
            .collect();
        let relay = &self.relays[r];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&relay.log)
            .expect("log file");
        let child = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TIM_SDK_APP_ID", "1400000000")
            .env("RELAY_LISTEN", format!("127.0.0.1:{}", relay.port))
            .env("RELAY_ADMIN_LISTEN", format!("127.0.0.1:{}", relay.admin_port))
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.bootstrap)
            .env("KAFKA_TOPIC", &self.topic)
            .env("RELAY_SPOOL_DIR", relay.spool.path())
            .env("RUST_LOG", "info")
            .envs(peers_on().then(|| ("RELAY_PEERS", peers.join(","))))
            .envs(
                std::env::vars()
                    .filter(|(k, _)| k.starts_with("KAFKA_PRODUCER_") || k == "RELAY_ACK_TIMEOUT_MS"),
            )
            .envs(std::env::var_os("KAFKA_PRODUCER_DEBUG").map(|_| ("RUST_LOG", "info,librdkafka=debug")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("relay binary starts");
        let pid = child.id();
        // Owned by the scenario at once, so any panic below still kills and reaps it.
        self.relays[r].child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self
                .rt
                .block_on(async { self.http.get(self.admin_url(r, "/healthz")).send().await });
            if health.is_ok_and(|r| r.status() == 200) {
                break;
            }
            let relay = &mut self.relays[r];
            if let Some(exit) = relay
                .child
                .as_mut()
                .expect("relay")
                .try_wait()
                .expect("relay status")
            {
                panic!(
                    "{}: relay {} exited at start ({exit}); see {}",
                    self.name,
                    RELAYS[r],
                    relay.log.display()
                );
            }
            if Instant::now() > deadline {
                panic!("{}: relay {} not healthy after 30 s", self.name, RELAYS[r]);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.note(&format!(
            "relay {} started (pid {pid}, port {})",
            RELAYS[r], self.relays[r].port
        ));
    }

    fn start_load(&mut self) {
        let urls = (0..RELAYS.len())
            .map(|r| self.url(r, &format!("/callback?{CALLBACK_QUERY}")))
            .collect();
        self.load = Some(Load::start(&self.rt, urls, self.started));
        self.load_started = Instant::now();
        self.note("load started");
    }

    fn finish_load(&mut self) -> Vec<Sent> {
        let load = self.load.take().expect("load running");
        load.stop.store(true, Ordering::Relaxed);
        let results = self.rt.block_on(futures_util::future::join_all(load.workers));
        results
            .into_iter()
            .flat_map(|r| r.expect("load worker"))
            .collect()
    }

    /// One value from a relay's `/metrics` (None: unreadable).
    fn metric(&self, relay: usize, name: &str) -> Option<f64> {
        let text = self.rt.block_on(async {
            let response = self
                .http
                .get(self.admin_url(relay, "/metrics"))
                .send()
                .await
                .ok()?;
            response.text().await.ok()
        })?;
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Polls both relays' `/metrics` until both spools are empty: everything they answered OK
    /// is then in Kafka. Otherwise says what each spool still holds.
    fn drain_spools(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut left = Vec::new();
        while Instant::now() < deadline {
            left = (0..RELAYS.len())
                .map(|r| self.metric(r, "tim_relay_spool_events"))
                .collect();
            if left.iter().all(|l| *l == Some(0.0)) {
                self.note("both spools drained");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(left
            .iter()
            .zip(RELAYS)
            .map(|(l, r)| format!("relay {r} holds {}", l.map_or("?".into(), |n| n.to_string())))
            .collect::<Vec<_>>()
            .join(", "))
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if let Some(load) = &self.load {
            load.stop.store(true, Ordering::Relaxed);
        }
        for relay in &mut self.relays {
            if let Some(mut child) = relay.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// One callback attempt: which relay it went to, how long the answer took, and why it was not
/// answered HTTP 200 with ActionStatus OK (empty if it was).
struct Sent {
    group: usize,
    seq: u64,
    relay: usize,
    /// When it was sent, on the scenario's timeline (as in its notes).
    at: Duration,
    took: Duration,
    why: String,
}

impl Sent {
    fn ok(&self) -> bool {
        self.why.is_empty()
    }
}

fn not_ok_reasons(sent: &[Sent]) -> String {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for s in sent.iter().filter(|s| !s.ok()) {
        *reasons
            .entry(format!("relay {}: {}", RELAYS[s.relay], s.why))
            .or_default() += 1;
    }
    format!("{reasons:?}")
}

/// The steady stream of callbacks: each worker owns a slice of the groups and sends each group's
/// next callback only after the previous one was answered (or failed); a group's callbacks
/// alternate between the two relays.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Sent>>>,
}

impl Load {
    fn start(rt: &Handle, urls: Vec<String>, start: Instant) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        // Longer than Tencent's 2 s, so a slow answer is measured rather than cut off.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("HTTP client");
        let workers = (0..WORKERS)
            .map(|w| {
                let groups: Vec<usize> = (w..GROUPS).step_by(WORKERS).collect();
                let stagger = PAUSE * w as u32 / WORKERS as u32;
                rt.spawn(worker(
                    client.clone(),
                    urls.clone(),
                    groups,
                    stop.clone(),
                    start,
                    stagger,
                ))
            })
            .collect();
        Load { stop, workers }
    }
}

/// Whether the relays wait for each other's older spooled events (`RELAY_PEERS`);
/// `CLUSTER_FAULTS_PEERS=0` measures the relays without it.
fn peers_on() -> bool {
    std::env::var("CLUSTER_FAULTS_PEERS").as_deref() != Ok("0")
}

fn group_id(g: usize) -> String {
    format!("@TGS#cluster-{g}")
}

async fn worker(
    client: reqwest::Client,
    urls: Vec<String>,
    groups: Vec<usize>,
    stop: Arc<AtomicBool>,
    start: Instant,
    stagger: Duration,
) -> Vec<Sent> {
    tokio::time::sleep(stagger).await;
    let mut sent = Vec::new();
    for seq in 0.. {
        for &group in &groups {
            if stop.load(Ordering::Relaxed) {
                return sent;
            }
            // Round robin per group: consecutive callbacks of a group reach different relays.
            let relay = (group + seq as usize) % urls.len();
            let body = format!(r#"{{"GroupId":"{}","Name":"g{group}-s{seq}"}}"#, group_id(group));
            let t0 = Instant::now();
            let at = t0 - start;
            let why = match client.post(&urls[relay]).body(body).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let answer: Value = r.json().await.unwrap_or_default();
                    match status == 200 && answer["ActionStatus"] == "OK" {
                        true => String::new(),
                        false => format!("HTTP {status} ErrorCode {}", answer["ErrorCode"]),
                    }
                }
                Err(e) if e.is_timeout() => "timeout".into(),
                Err(e) if e.is_connect() => "connection refused".into(),
                Err(_) => "connection error".into(),
            };
            sent.push(Sent {
                group,
                seq,
                relay,
                at,
                took: t0.elapsed(),
                why,
            });
            tokio::time::sleep(PAUSE).await;
        }
    }
    sent
}

/// One record read back: where it is and what it says.
struct Found {
    partition: i32,
    offset: i64,
    group_id: Option<String>,
    marker: Option<String>,
}

/// The partition's high watermark. Just after a leader moves (a node restarted), the new leader
/// can answer OffsetNotAvailable until its high watermark has caught up: asked again for up to
/// 60 s, then the last error fails the test.
fn high_watermark(consumer: &BaseConsumer, topic: &str, partition: i32) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok((_, high)) => return high,
            Err(e) if Instant::now() < deadline => {
                eprintln!("watermarks of {topic}-{partition}: {e}; asking again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("watermarks of {topic}-{partition} for 60 s: {e}"),
        }
    }
}

/// Reads every partition of the topic from the beginning up to its high watermark.
fn read_topic(bootstrap: &str, topic: &str, problems: &mut Vec<String>) -> Vec<Vec<Found>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("cluster-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut high = Vec::new();
    for p in 0..PARTITIONS {
        high.push(high_watermark(&consumer, topic, p));
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut records: Vec<Vec<Found>> = (0..PARTITIONS).map(|_| Vec::new()).collect();
    let mut next = vec![0i64; PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(120);
    while next.iter().zip(&high).any(|(n, h)| n < h) {
        if Instant::now() > deadline {
            problems.push(format!(
                "topic not read to its end within 120 s: at {next:?} of {high:?}"
            ));
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = message.expect("consume");
        let value: Value = m
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or_default();
        let text = |v: &Value| v.as_str().map(String::from);
        next[m.partition() as usize] = m.offset() + 1;
        records[m.partition() as usize].push(Found {
            partition: m.partition(),
            offset: m.offset(),
            group_id: text(&value["group_id"]),
            marker: text(&value["changes"]["name"]),
        });
    }
    records
}

#[derive(Default)]
struct Tally {
    sent: usize,
    ok: usize,
    ok_by_relay: [usize; 2],
    in_topic: usize,
    lost: usize,
    duplicates: usize,
    /// First copies behind a later callback of the same group that the same relay answered.
    out_of_order_one_relay: usize,
    /// First copies behind a later callback of the same group, whichever relay answered it.
    out_of_order_across: usize,
    /// Answered OK, but later than Tencent's budget.
    slow: usize,
    slowest: Duration,
    /// Out of order across the relays, by the second of the timeline the event was sent in.
    across_by_second: BTreeMap<u64, usize>,
    strange: usize,
    examples: Vec<String>,
}

impl Tally {
    /// When the reordering across relays happened: "12-19 s: 430, 35 s: 22" (seconds of the
    /// scenario's timeline, runs of consecutive seconds merged).
    fn across_when(&self) -> String {
        let mut runs: Vec<(u64, u64, usize)> = Vec::new();
        for (&sec, &n) in &self.across_by_second {
            match runs.last_mut() {
                Some((_, end, count)) if *end + 1 == sec => {
                    *end = sec;
                    *count += n;
                }
                _ => runs.push((sec, sec, n)),
            }
        }
        let runs: Vec<String> = runs
            .iter()
            .map(|&(a, b, n)| match a == b {
                true => format!("{a} s: {n}"),
                false => format!("{a}-{b} s: {n}"),
            })
            .collect();
        match runs.is_empty() {
            true => "none".into(),
            false => runs.join(", "),
        }
    }

    fn summary(&self) -> String {
        let delivered = self.ok - self.lost;
        let percent = match delivered {
            0 => 0.0,
            n => 100.0 * self.out_of_order_across as f64 / n as f64,
        };
        format!(
            "sent {}, answered OK {} (A {}, B {}), in topic {}, lost {}, duplicates {}, \
             out-of-order {} within one relay, {} across the two relays ({percent:.1}%); \
             answered OK after {} s: {}, slowest {:.2} s",
            self.sent,
            self.ok,
            self.ok_by_relay[0],
            self.ok_by_relay[1],
            self.in_topic,
            self.lost,
            self.duplicates,
            self.out_of_order_one_relay,
            self.out_of_order_across,
            BUDGET.as_secs(),
            self.slow,
            self.slowest.as_secs_f64()
        )
    }
}

fn example(t: &mut Tally, text: String) {
    if t.examples.len() < 12 {
        t.examples.push(text);
    }
}

fn parse_marker(marker: &str) -> Option<(usize, u64)> {
    let (g, s) = marker.strip_prefix('g')?.split_once("-s")?;
    Some((g.parse().ok()?, s.parse().ok()?))
}

/// Compares what was answered OK with what the topic holds. Order is judged per group on the
/// first copy of each OK-answered event (later copies are duplicates, which the promise
/// allows): once among the events one relay answered, once among all of them.
fn tally(sent: &[Sent], partitions: &[Vec<Found>]) -> Tally {
    let answered: HashMap<(usize, u64), &Sent> = sent.iter().map(|s| ((s.group, s.seq), s)).collect();
    let mut t = Tally {
        sent: sent.len(),
        ok: sent.iter().filter(|s| s.ok()).count(),
        ..Tally::default()
    };
    for s in sent.iter().filter(|s| s.ok()) {
        t.ok_by_relay[s.relay] += 1;
        if s.took > BUDGET {
            t.slow += 1;
        }
        t.slowest = t.slowest.max(s.took);
    }
    let mut seen = HashSet::new();
    for records in partitions {
        let mut last_any: HashMap<usize, (u64, usize)> = HashMap::new();
        let mut last_by_relay: HashMap<(usize, usize), u64> = HashMap::new();
        for r in records {
            let at = format!("partition {} offset {}", r.partition, r.offset);
            let Some((group, seq)) = r.marker.as_deref().and_then(parse_marker) else {
                t.strange += 1;
                example(
                    &mut t,
                    format!("record at {at} is not one of this test's callbacks"),
                );
                continue;
            };
            if r.group_id.as_deref() != Some(group_id(group).as_str()) {
                t.strange += 1;
                example(
                    &mut t,
                    format!("g{group}-s{seq} at {at} carries group {:?}", r.group_id),
                );
            }
            if !seen.insert((group, seq)) {
                t.duplicates += 1;
                continue;
            }
            let Some(s) = answered.get(&(group, seq)).filter(|s| s.ok()) else {
                continue;
            };
            let relay = s.relay;
            match last_by_relay.get(&(relay, group)) {
                Some(&before) if before > seq => {
                    t.out_of_order_one_relay += 1;
                    example(
                        &mut t,
                        format!(
                            "out of order within relay {}: g{group}-s{seq} first at {at}, after g{group}-s{before}",
                            RELAYS[relay]
                        ),
                    );
                }
                _ => {
                    last_by_relay.insert((relay, group), seq);
                }
            }
            match last_any.get(&group) {
                Some(&(before, _)) if before > seq => {
                    t.out_of_order_across += 1;
                    *t.across_by_second.entry(s.at.as_secs()).or_default() += 1;
                }
                _ => {
                    last_any.insert(group, (seq, relay));
                }
            }
        }
    }
    t.in_topic = seen.len();
    let mut lost: Vec<_> = sent
        .iter()
        .filter(|s| s.ok() && !seen.contains(&(s.group, s.seq)))
        .collect();
    lost.sort_by_key(|s| (s.group, s.seq));
    t.lost = lost.len();
    for s in lost {
        example(
            &mut t,
            format!(
                "lost: g{}-s{} was answered OK by relay {}",
                s.group, s.seq, RELAYS[s.relay]
            ),
        );
    }
    t
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
    let found = |offset, g: usize, s: u64| Found {
        partition: 0,
        offset,
        group_id: Some(group_id(g)),
        marker: Some(format!("g{g}-s{s}")),
    };
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
    let t = tally(&answered, &[topic.into()]);
    assert_eq!((t.sent, t.ok, t.ok_by_relay, t.in_topic), (7, 6, [4, 2], 6));
    assert_eq!((t.lost, t.duplicates, t.strange), (1, 1, 0));
    assert_eq!((t.out_of_order_one_relay, t.out_of_order_across), (1, 2));
    assert_eq!(t.slow, 1);
    assert_eq!(t.across_when(), "0 s: 1, 2 s: 1");
}
