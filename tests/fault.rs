//! Fault test of the delivery promise: a callback answered OK reaches the topic, and one group's
//! events appear there in the order the relay answered them OK, through broker outages, relay
//! crashes (SIGKILL), a clean stop (SIGTERM) and a start while the broker is down.
//!
//! The faults are real, so this test runs its own broker (127.0.0.1:19092, data in
//! `target/kafka-fault`, wiped at the start) and the relay binary as a child process. Each
//! scenario has its own topic, spool dir and log (`target/fault-logs/<scenario>.log`, relay
//! stderr interleaved with the harness's timeline), and runs after the previous one.

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
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

const BIN: &str = env!("CARGO_BIN_EXE_tim-relay");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const BOOTSTRAP: &str = "127.0.0.1:19092";
const GROUPS: usize = 300;
const WORKERS: usize = 32;
const PARTITIONS: i32 = 3;
/// Each worker's pause after a callback: 32 workers stay below ~300 callbacks/s, which leaves
/// this 2-core machine room for the broker and the relay.
const PAUSE: Duration = Duration::from_millis(100);
const CALLBACK_QUERY: &str = "SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterGroupInfoChanged\
    &contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI";

#[test]
fn every_callback_answered_ok_reaches_the_topic_in_answer_order_through_broker_and_relay_faults() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let _one_at_a_time = lock_fault_broker();
    let broker = Broker::fresh();
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let scenarios: [(&str, Faults); 4] = [
        ("broker stopped for 10 s three times", broker_stopped_three_times),
        ("relay killed with SIGKILL twice", relay_killed_twice),
        (
            "relay stopped with SIGTERM and restarted",
            relay_terminated_and_restarted,
        ),
        (
            "relay started while the broker is down",
            relay_started_while_broker_down,
        ),
    ];
    // FAULT_ONLY=<part of a name> runs just the matching scenarios (when chasing one failure).
    let only = std::env::var("FAULT_ONLY").unwrap_or_default();
    for (name, faults) in scenarios.into_iter().filter(|(name, _)| name.contains(&only)) {
        let (line, found) = run_scenario(&rt, &broker, name, faults);
        eprintln!("{line}");
        lines.push(line);
        problems.extend(found.into_iter().map(|p| format!("{name}: {p}")));
    }
    eprintln!("fault test took {:.0} s", started.elapsed().as_secs_f64());
    // cargo hides a passing test's output: the lines also go to a file that scripts/test.sh prints.
    let summary = format!("{REPO}/target/fault-logs/summary.txt");
    let _ = std::fs::write(
        &summary,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    );
    assert!(
        problems.is_empty(),
        "{}\n\nproblems:\n{}",
        lines.join("\n"),
        problems.join("\n")
    );
}

/// Two runs at once (say `bash scripts/test.sh` in two shells) would reset each other's broker
/// and topics, so a run waits for the other; the lock file lives outside the wiped data dir.
fn lock_fault_broker() -> std::fs::File {
    let path = format!("{REPO}/target/kafka-fault.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("lock file");
    if file.try_lock().is_err() {
        eprintln!("another fault test run holds {path}; waiting for it to finish");
        file.lock().expect("lock the fault broker");
    }
    file
}

/// What a scenario does to the broker and the relay while the load runs.
type Faults = fn(&mut Scenario, &Broker);

fn broker_stopped_three_times(s: &mut Scenario, broker: &Broker) {
    s.start_relay();
    s.start_load();
    s.pause(4);
    for _ in 0..3 {
        s.note("stopping the broker");
        broker.run("stop");
        s.note("broker stopped");
        s.pause(10);
        broker.run("start");
        s.note("broker started");
        s.pause(3);
    }
}

fn relay_killed_twice(s: &mut Scenario, _: &Broker) {
    s.start_relay();
    s.start_load();
    for _ in 0..2 {
        s.pause(6);
        s.kill_relay();
        s.pause(1);
        s.start_relay();
    }
    s.pause(6);
}

fn relay_terminated_and_restarted(s: &mut Scenario, _: &Broker) {
    s.start_relay();
    s.start_load();
    s.pause(8);
    let exit = s.terminate_relay();
    if exit != Some(0) {
        s.problems
            .push(format!("relay exited with {exit:?} after SIGTERM, not 0"));
    }
    s.pause(1);
    s.start_relay();
    s.pause(8);
}

fn relay_started_while_broker_down(s: &mut Scenario, broker: &Broker) {
    // The topic exists already (created while the broker was up); only the broker is missing.
    broker.run("stop");
    s.note("broker stopped");
    s.start_relay();
    s.start_load();
    s.pause(12);
    broker.run("start");
    s.note("broker started");
    s.pause(8);
}

/// Runs one scenario's faults under load, lets the relay drain its spool, reads the whole topic
/// back and returns the scenario's summary line and what went wrong.
fn run_scenario(rt: &Runtime, broker: &Broker, name: &str, faults: Faults) -> (String, Vec<String>) {
    let mut s = Scenario::new(rt.handle().clone(), name);
    faults(&mut s, broker);
    let sent = s.finish_load();
    s.note("load stopped; waiting for the spool to drain");
    if s.relay.is_none() {
        s.start_relay();
    }
    if let Err(left) = s.drain_spool(Duration::from_secs(60)) {
        // Not lost yet, but not forwarded either: the relay's log says why it is stuck.
        let left = left.map_or("an unknown number of".into(), |n| n.to_string());
        s.problems.push(format!(
            "the spool did not drain within 60 s: it still holds {left} events (counted as lost below)"
        ));
    }
    let records = read_topic(&s.topic, &mut s.problems);
    s.note("topic read");
    let t = tally(&sent, &records);
    let counts = format!(
        "sent {}, answered OK {}, in topic {}, lost {}, duplicates {}, out-of-order {}",
        t.sent, t.ok, t.in_topic, t.lost, t.duplicates, t.out_of_order
    );
    s.note(&format!("not answered OK, by reason: {}", not_ok_reasons(&sent)));
    let line = format!("{name}: {counts}");
    if t.lost > 0 || t.out_of_order > 0 || t.strange > 0 {
        s.problems.extend(t.examples);
    }
    if t.ok * 2 < t.sent {
        s.problems.push(format!(
            "only {} of {} callbacks answered OK: the harness tests little",
            t.ok, t.sent
        ));
    }
    if !s.problems.is_empty() {
        s.problems
            .push(format!("relay log and timeline: {}", s.log.display()));
    }
    (line, std::mem::take(&mut s.problems))
}

/// The fault test's own broker, through `scripts/kafka.sh`; stopped when dropped, also on panic.
struct Broker;

impl Broker {
    fn script(action: &str) -> Result<(), String> {
        let out = Command::new("bash")
            .arg(format!("{REPO}/scripts/kafka.sh"))
            .arg(action)
            .env("KAFKA_PORT", "19092")
            .env("KAFKA_CONTROLLER_PORT", "19093")
            .env("KAFKA_DATA_DIR", format!("{REPO}/target/kafka-fault"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run bash scripts/kafka.sh: {e}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// `stop` or `start` (which waits until the broker answers).
    fn run(&self, action: &str) {
        if let Err(e) = Self::script(action) {
            panic!("kafka.sh {action} failed for the fault broker on {BOOTSTRAP}:\n{e}");
        }
    }

    /// A clean broker: earlier runs' topics and data are wiped.
    fn fresh() -> Broker {
        // The guard exists first, so a broker that started but never became ready is stopped too.
        let broker = Broker;
        if let Err(e) = Self::script("reset").and_then(|()| Self::script("start")) {
            panic!(
                "the fault-test Kafka broker did not start on {BOOTSTRAP}:\n{e}\nStart it by hand to see why: \
                 KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 KAFKA_DATA_DIR=target/kafka-fault \
                 bash scripts/kafka.sh start (needs Java 17+ and Maven; see its log under target/kafka-fault)"
            );
        }
        broker
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Err(e) = Self::script("stop") {
            eprintln!("could not stop the fault broker: {e}");
        }
    }
}

/// One scenario: its topic, its spool dir (kept across relay restarts), the relay and the load.
struct Scenario {
    name: String,
    rt: Handle,
    http: reqwest::Client,
    topic: String,
    spool: tempfile::TempDir,
    port: u16,
    admin_port: u16,
    log: PathBuf,
    started: Instant,
    relay: Option<Child>,
    load: Option<Load>,
    problems: Vec<String>,
}

impl Scenario {
    fn new(rt: Handle, name: &str) -> Self {
        let slug: String = name
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        let topic = format!("fault-{slug}-{}", uuid::Uuid::new_v4().simple());
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", BOOTSTRAP)
            .create()
            .expect("admin client");
        let new_topic = NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1));
        let created = rt.block_on(async { admin.create_topics([&new_topic], &AdminOptions::new()).await });
        for result in created.expect("create topic request") {
            result.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
        }
        let logs = PathBuf::from(REPO).join("target/fault-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let log = logs.join(format!("{slug}.log"));
        let _ = std::fs::remove_file(&log);
        // The relay gets the port back after each restart, so the load keeps one address.
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, admin_port) = (free_port(), free_port());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let s = Scenario {
            name: name.into(),
            rt,
            http,
            topic,
            spool: tempfile::tempdir().expect("spool dir"),
            port,
            admin_port,
            log,
            started: Instant::now(),
            relay: None,
            load: None,
            problems: Vec::new(),
        };
        s.note(&format!(
            "topic {} ({PARTITIONS} partitions), port {}",
            s.topic, s.port
        ));
        s
    }

    /// Marks the timeline on stderr and in the relay's log, so faults line up with its lines.
    fn note(&self, what: &str) {
        let at = self.started.elapsed().as_secs_f64();
        eprintln!("[{at:6.1}s] {}: {what}", self.name);
        let now = humantime::format_rfc3339_millis(SystemTime::now());
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&self.log) {
            let _ = writeln!(f, "[{now} HARNESS +{at:.1}s] {what}");
        }
    }

    fn pause(&self, secs: u64) {
        std::thread::sleep(Duration::from_secs(secs));
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The relay's admin listener: `/healthz`, `/readyz`, `/metrics`.
    fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    fn start_relay(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TIM_SDK_APP_ID", "1400000000")
            .env("RELAY_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("RELAY_ADMIN_LISTEN", format!("127.0.0.1:{}", self.admin_port))
            .env("KAFKA_BOOTSTRAP_SERVERS", BOOTSTRAP)
            .env("KAFKA_TOPIC", &self.topic)
            .env("RELAY_SPOOL_DIR", self.spool.path())
            .env("RUST_LOG", "info")
            // KAFKA_PRODUCER_DEBUG=eos,broker,msg etc. reach the relay, to see inside librdkafka.
            .envs(std::env::vars().filter(|(k, _)| k.starts_with("KAFKA_PRODUCER_")))
            .envs(std::env::var_os("KAFKA_PRODUCER_DEBUG").map(|_| ("RUST_LOG", "info,librdkafka=debug")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("relay binary starts");
        let pid = child.id();
        // Owned by the scenario at once, so any panic below still kills and reaps it.
        self.relay = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self
                .rt
                .block_on(async { self.http.get(self.admin_url("/healthz")).send().await });
            if health.is_ok_and(|r| r.status() == 200) {
                break;
            }
            let child = self.relay.as_mut().expect("relay running");
            if let Some(exit) = child.try_wait().expect("relay status") {
                panic!(
                    "{}: relay exited at start ({exit}); see {}",
                    self.name,
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: relay not healthy after 30 s; see {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.note(&format!("relay started (pid {pid})"));
    }

    fn kill_relay(&mut self) {
        let mut child = self.relay.take().expect("relay running");
        child.kill().expect("SIGKILL");
        let exit = child.wait().expect("reap relay");
        self.note(&format!("relay killed with SIGKILL ({exit})"));
    }

    /// SIGTERM, then waits for the relay to exit by itself; returns its exit code.
    fn terminate_relay(&mut self) -> Option<i32> {
        let mut child = self.relay.take().expect("relay running");
        self.note("sending SIGTERM to the relay");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM failed");
        // Its own bounds: 5 s for in-flight callbacks, 10 s for the forwarder, 10 s for the flush.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(exit) = child.try_wait().expect("relay status") {
                self.note(&format!("relay exited after SIGTERM ({exit})"));
                return exit.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.note("relay still running 30 s after SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    fn start_load(&mut self) {
        self.load = Some(Load::start(
            &self.rt,
            self.url(&format!("/callback?{CALLBACK_QUERY}")),
        ));
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

    /// Polls `/metrics` until the spool is empty: everything answered OK is then in Kafka.
    /// Otherwise returns how many events the spool still holds (None: metrics unreadable).
    fn drain_spool(&self, within: Duration) -> Result<(), Option<u64>> {
        let deadline = Instant::now() + within;
        let mut left = None;
        while Instant::now() < deadline {
            let text = self.rt.block_on(async {
                let response = self.http.get(self.admin_url("/metrics")).send().await.ok()?;
                response.text().await.ok()
            });
            left = text.as_deref().and_then(|t| {
                let line = t.lines().find(|l| l.starts_with("tim_relay_spool_events "))?;
                line.split_whitespace().nth(1)?.parse().ok()
            });
            if left == Some(0) {
                self.note("spool drained");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(left)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if let Some(load) = &self.load {
            load.stop.store(true, Ordering::Relaxed);
        }
        if let Some(mut child) = self.relay.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One callback attempt, and why it was not answered HTTP 200 with ActionStatus OK (empty if it was).
struct Sent {
    group: usize,
    seq: u64,
    why: String,
}

impl Sent {
    fn ok(&self) -> bool {
        self.why.is_empty()
    }
}

/// How many callbacks were not answered OK, by reason (for the log, to tell faults apart).
fn not_ok_reasons(sent: &[Sent]) -> String {
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for s in sent.iter().filter(|s| !s.ok()) {
        *reasons.entry(&s.why).or_default() += 1;
    }
    format!("{reasons:?}")
}

/// The steady stream of callbacks: each worker owns a slice of the groups and sends each group's
/// next callback only after the previous one was answered (or failed), so per group "the order
/// the relay answered OK" is well defined.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Sent>>>,
}

impl Load {
    fn start(rt: &Handle, url: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("HTTP client");
        let workers = (0..WORKERS)
            .map(|w| {
                let groups: Vec<usize> = (w..GROUPS).step_by(WORKERS).collect();
                let stagger = PAUSE * w as u32 / WORKERS as u32;
                rt.spawn(worker(client.clone(), url.clone(), groups, stop.clone(), stagger))
            })
            .collect();
        Load { stop, workers }
    }
}

fn group_id(g: usize) -> String {
    format!("@TGS#fault-{g}")
}

async fn worker(
    client: reqwest::Client,
    url: String,
    groups: Vec<usize>,
    stop: Arc<AtomicBool>,
    stagger: Duration,
) -> Vec<Sent> {
    tokio::time::sleep(stagger).await;
    let mut sent = Vec::new();
    for seq in 0.. {
        for &group in &groups {
            if stop.load(Ordering::Relaxed) {
                return sent;
            }
            let body = format!(r#"{{"GroupId":"{}","Name":"g{group}-s{seq}"}}"#, group_id(group));
            let why = match client.post(&url).body(body).send().await {
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
            sent.push(Sent { group, seq, why });
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

/// Reads every partition of the topic from the beginning up to its high watermark.
fn read_topic(topic: &str, problems: &mut Vec<String>) -> Vec<Vec<Found>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
        .set("group.id", format!("fault-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut high = Vec::new();
    for p in 0..PARTITIONS {
        let (_, h) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        high.push(h);
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut records: Vec<Vec<Found>> = (0..PARTITIONS).map(|_| Vec::new()).collect();
    let mut next = vec![0i64; PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().zip(&high).any(|(n, h)| n < h) {
        if Instant::now() > deadline {
            problems.push(format!(
                "topic not read to its end within 60 s: at {next:?} of {high:?}"
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
    in_topic: usize,
    lost: usize,
    duplicates: usize,
    out_of_order: usize,
    strange: usize,
    examples: Vec<String>,
}

/// Keeps the first few findings of each run readable.
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
/// first copy of each OK-answered event (later copies are duplicates, which the promise allows).
fn tally(sent: &[Sent], partitions: &[Vec<Found>]) -> Tally {
    let answered: HashMap<(usize, u64), bool> = sent.iter().map(|s| ((s.group, s.seq), s.ok())).collect();
    let mut t = Tally {
        sent: sent.len(),
        ok: sent.iter().filter(|s| s.ok()).count(),
        ..Tally::default()
    };
    let mut seen = HashSet::new();
    for records in partitions {
        let mut last_ok: HashMap<usize, u64> = HashMap::new();
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
            if answered.get(&(group, seq)) != Some(&true) {
                continue;
            }
            match last_ok.insert(group, seq) {
                Some(before) if before > seq => {
                    t.out_of_order += 1;
                    last_ok.insert(group, before);
                    example(
                        &mut t,
                        format!("out of order: g{group}-s{seq} first at {at}, after g{group}-s{before}"),
                    );
                }
                _ => {}
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
        example(&mut t, format!("lost: g{}-s{} was answered OK", s.group, s.seq));
    }
    t
}

/// The harness checks itself without a broker: a tally that missed loss or reordering would let
/// a broken relay pass.
#[test]
fn the_tally_finds_lost_duplicated_and_reordered_events() {
    let sent = |group, seq, ok: bool| Sent {
        group,
        seq,
        why: if ok { "" } else { "HTTP 503" }.into(),
    };
    let found = |offset, g: usize, s: u64| Found {
        partition: 0,
        offset,
        group_id: Some(group_id(g)),
        marker: Some(format!("g{g}-s{s}")),
    };
    let answered = [
        sent(1, 0, true),
        sent(1, 1, false),
        sent(1, 2, true),
        sent(1, 3, true),
        sent(2, 0, true),
    ];
    // g1: s2 lands before s0 (reordered), s0 twice, s1 (not OK) anywhere; s3 and g2-s0 missing.
    let topic = [found(0, 1, 2), found(1, 1, 1), found(2, 1, 0), found(3, 1, 0)];
    let t = tally(&answered, &[topic.into()]);
    assert_eq!((t.sent, t.ok, t.in_topic), (5, 4, 3));
    assert_eq!((t.lost, t.duplicates, t.out_of_order, t.strange), (2, 1, 1, 0));
}
