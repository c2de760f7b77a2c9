//! `tim-relay materialize` against the real broker: random group histories, delivered out of
//! order and with duplicates, must fold to the state a simple simulation of the same histories
//! ends in, through kill -9 and through rebalances between two instances.
//!
//! The seed of each run is printed; `STATE_TEST_SEED=<n>` replays one.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

mod support;
use support::broker::{bootstrap, require_broker};
use support::state_model::{self, delivery, histories, Histories, Rng, Truth};

const PARTITIONS: i32 = 6;

fn create_topic(name: &str) -> String {
    require_broker();
    let topic = format!("__tim_state_{name}_{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let results = runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .expect("create topic request");
    for r in results {
        r.expect("topic created");
    }
    topic
}

fn produce(topic: &str, records: &[(String, Vec<u8>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for (key, payload) in records {
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(5));
                    record = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("events produced");
}

struct Instance {
    child: Child,
    admin: String,
}

/// `tim-relay materialize` for `topic`, as instance `instance`, admin listener on `port`.
fn materialize(topic: &str, instance: &str, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tim-relay"));
    command
        .arg("materialize")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
        .env("KAFKA_TOPIC", topic)
        .env("KAFKA_STATE_TOPIC", format!("{topic}.state"))
        .env("RELAY_STATE_GROUP_ID", format!("{topic}.group"))
        .env("RELAY_STATE_INSTANCE_ID", instance)
        .env("RELAY_STATE_BATCH_EVENTS", "500")
        .env("RELAY_ADMIN_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn,tim_relay=info");
    command
}

impl Instance {
    fn start(topic: &str, instance: &str) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = materialize(topic, instance, port)
            .stdout(Stdio::null())
            .spawn()
            .expect("tim-relay materialize starts");
        Instance {
            child,
            admin: format!("127.0.0.1:{port}"),
        }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "materialize exits cleanly on SIGTERM: {status}");
    }

    /// Waits until this instance has committed `n` fold transactions; false if `load` ended
    /// first.
    fn wait_for_commits(&self, n: u64, load: &std::thread::JoinHandle<()>) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let committed = self
                .metric("tim_relay_state_transactions_total{outcome=\"committed\"}")
                .unwrap_or(0);
            if committed >= n {
                return true;
            }
            if load.is_finished() {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "no fold transaction committed within a minute"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metric(&self, line_start: &str) -> Option<u64> {
        let text = http_get(&self.admin, "/metrics")?;
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(address: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// Waits until the consumer group's committed offsets reach the end of every partition.
fn wait_caught_up(topic: &str, within: Duration) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("{topic}.group"))
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let deadline = Instant::now() + within;
    loop {
        let mut list = TopicPartitionList::new();
        let mut ends = Vec::new();
        for p in 0..PARTITIONS {
            list.add_partition(topic, p);
            ends.push(
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .unwrap()
                    .1,
            );
        }
        let committed = consumer.committed_offsets(list, Duration::from_secs(10));
        let behind: i64 = match &committed {
            Ok(c) => c
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => ends[e.partition() as usize] - o,
                    _ => ends[e.partition() as usize],
                })
                .sum(),
            Err(_) => i64::MAX,
        };
        if behind == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the materializer did not fold every event within {within:?}: {behind} behind"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The compacted view of the state topic: each key's last value (None: tombstone).
fn read_state(topic: &str) -> HashMap<String, Option<Value>> {
    state_model::read_state(
        &bootstrap(),
        &format!("{topic}.state"),
        PARTITIONS,
        Duration::from_secs(60),
    )
    .last
}

fn assert_state_is_the_truth(topic: &str, histories: &Histories) {
    let state = read_state(topic);
    let mut wrong = Vec::new();
    for (group_id, truth) in &histories.truth {
        let folded = state.get(group_id).cloned().flatten().map(|d| Truth::of(&d));
        if &folded != truth {
            wrong.push(format!("{group_id}:\n  folded {folded:?}\n  truth  {truth:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} groups differ from the truth; first ones:\n{}",
        wrong.len(),
        histories.truth.len(),
        wrong.iter().take(3).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn reordered_and_repeated_events_fold_to_the_truth() {
    let mut rng = Rng::seeded();
    let topic = create_topic("fold");
    let h = histories(&mut rng, 3000, "f");
    let (records, repeats) = delivery(&mut rng, &h);
    produce(&topic, &records);
    let instance = Instance::start(&topic, "a");
    wait_caught_up(&topic, Duration::from_secs(120));
    let metric = |outcome: &str| {
        instance
            .metric(&format!("tim_relay_state_events_total{{outcome=\"{outcome}\"}}"))
            .unwrap()
    };
    assert_eq!(metric("duplicate"), repeats as u64, "every repeat is recognized");
    assert!(metric("stale") > 0, "the delivery reordered some events");
    assert_eq!(metric("invalid"), 0);
    assert_eq!(
        metric("applied") + metric("duplicate") + metric("stale") + metric("not_state"),
        records.len() as u64
    );
    assert_state_is_the_truth(&topic, &h);
    let tombstones = h.truth.values().filter(|t| t.is_none()).count();
    assert!(tombstones > 0, "some groups were destroyed");

    // `tim-relay state GROUP_ID` prints what the topic holds.
    let (live, truth) = h
        .truth
        .iter()
        .find_map(|(g, t)| Some((g.clone(), t.clone()?)))
        .unwrap();
    let (code, stdout, _) = state_command(&topic, &live);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&stdout).expect("the document as JSON");
    assert_eq!(doc["group_id"], live.as_str());
    assert_eq!(Truth::of(&doc), truth);
    let destroyed = h
        .events
        .iter()
        .find(|(g, events)| h.truth[g].is_none() && events.iter().any(|e| e["type"] == "tim.group.destroyed"))
        .map(|(g, _)| g.clone())
        .unwrap();
    let (code, stdout, stderr) = state_command(&topic, &destroyed);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.contains("was destroyed at event_time_ms"), "{stderr}");
    let (code, _, stderr) = state_command(&topic, "@TGS#never");
    assert_eq!(code, 1);
    assert!(stderr.contains("no state for group @TGS#never"), "{stderr}");
}

fn state_command(topic: &str, group_id: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tim-relay"))
        .args(["state", group_id])
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
        .env("KAFKA_STATE_TOPIC", format!("{topic}.state"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_state_topic_that_is_not_compacted_is_refused() {
    let topic = create_topic("notcompacted");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let state = format!("{topic}.state");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for r in runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(&state, PARTITIONS, TopicReplication::Fixed(1)).set("cleanup.policy", "delete")],
            &AdminOptions::new(),
        ))
        .unwrap()
    {
        r.unwrap();
    }
    let out = materialize(&topic, "a", 0).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "materialize refuses to start: {stderr}"
    );
    assert!(
        stderr.contains("has cleanup.policy=delete; it must be `compact`"),
        "{stderr}"
    );
}

#[test]
fn kill_9_under_load_neither_skips_nor_repeats_an_event() {
    let mut rng = Rng::seeded();
    let topic = create_topic("kill");
    let h = histories(&mut rng, 3000, "k");
    let (records, _) = delivery(&mut rng, &h);
    let producer_topic = topic.clone();
    let chunks: Vec<Vec<(String, Vec<u8>)>> = records
        .chunks(records.len() / 16 + 1)
        .map(<[_]>::to_vec)
        .collect();
    let load = std::thread::spawn(move || {
        for chunk in chunks {
            produce(&producer_topic, &chunk);
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let mut instance = Instance::start(&topic, "a");
    let mut kills = 0;
    for round in 0..4 {
        // Killed while it folds: after its first committed transaction, a little later each
        // time, as long as events still arrive.
        if !instance.wait_for_commits(1, &load) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200 + 250 * round));
        instance.kill9();
        kills += 1;
        instance = Instance::start(&topic, "a");
    }
    assert!(kills >= 3, "only {kills} kills happened while events arrived");
    load.join().unwrap();
    wait_caught_up(&topic, Duration::from_secs(120));
    assert!(
        instance.metric("tim_relay_state_rebuilt_groups_total").unwrap() > 0,
        "the last restart read its groups back from the state topic"
    );
    instance.stop();
    assert_state_is_the_truth(&topic, &h);
}

#[test]
fn two_instances_share_the_groups_through_rebalances() {
    let mut rng = Rng::seeded();
    let topic = create_topic("scale");
    let h = histories(&mut rng, 3000, "s");
    let (records, _) = delivery(&mut rng, &h);
    let (first, second) = records.split_at(records.len() / 2);
    produce(&topic, first);
    let mut a = Instance::start(&topic, "a");
    std::thread::sleep(Duration::from_secs(2));
    let mut b = Instance::start(&topic, "b");
    produce(&topic, &second[..second.len() / 2]);
    // Both hold partitions once the rebalance is over.
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.metric("tim_relay_state_partitions").unwrap_or(0) == 0
        || b.metric("tim_relay_state_partitions").unwrap_or(0) == 0
        || a.metric("tim_relay_state_partitions").unwrap_or(0)
            + b.metric("tim_relay_state_partitions").unwrap_or(0)
            != PARTITIONS as u64
    {
        assert!(
            Instant::now() < deadline,
            "the two instances did not share the partitions"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // A leaves: B takes its partitions over and rebuilds them from the state topic.
    a.stop();
    produce(&topic, &second[second.len() / 2..]);
    wait_caught_up(&topic, Duration::from_secs(120));
    assert!(b.metric("tim_relay_state_rebuilt_groups_total").unwrap() > 0);
    b.stop();
    assert_state_is_the_truth(&topic, &h);
}
