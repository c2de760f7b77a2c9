//! The forwarder against librdkafka's in-process mock cluster, whose brokers can be slowed to a
//! standstill or taken down at will: spooled events reach the topic in spool order per group
//! through a flaky broker, and a stop drains the spool within a bounded time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tim_relay::config::Config;
use tim_relay::delivery::publish::Publisher;
use tim_relay::delivery::record::Record;
use tim_relay::delivery::spool::Spool;
use tim_relay::delivery::Relay;
use tim_relay::ops::metrics::Metrics;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TOPIC: &str = "forwarding";
const PARTITIONS: i32 = 2;

type Mock = MockCluster<'static, DefaultProducerContext>;

struct Setup {
    mock: Mock,
    relay: Relay,
    spool: Spool,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let _ = env_logger::builder().is_test(true).try_init();
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let dir = tempfile::tempdir().expect("spool dir");
    let vars = [
        ("TIM_SDK_APP_ID", "1400000000".to_string()),
        ("KAFKA_BOOTSTRAP_SERVERS", mock.bootstrap_servers()),
        ("KAFKA_TOPIC", TOPIC.to_string()),
        ("RELAY_SPOOL_DIR", dir.path().display().to_string()),
    ];
    let config = Config::from_vars(vars.map(|(k, v)| (k.to_string(), v))).expect("config");
    let metrics = Arc::new(Metrics::new());
    let publisher = Arc::new(Publisher::new(&config, metrics.duplicates.clone()).expect("publisher"));
    let spool = Spool::open(dir.path(), 1 << 30).expect("spool");
    let relay = Relay::new(publisher, spool.clone(), metrics, 16);
    Setup {
        mock,
        relay,
        spool,
        _dir: dir,
    }
}

fn record(group: usize, n: usize) -> Record {
    Record {
        topic: String::new(),
        key: format!("g{group}"),
        payload: format!(r#"{{"group":{group},"n":{n}}}"#).into_bytes(),
        headers: vec![("ce_id".into(), format!("g{group}-{n}"))],
    }
}

fn start(relay: &Relay, drain: Duration) -> (watch::Sender<bool>, JoinHandle<()>) {
    let (stop, stopped) = watch::channel(false);
    (stop, tokio::spawn(relay.clone().forward(stopped, drain)))
}

async fn wait_until_empty(spool: &Spool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !spool.is_empty() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Every record of the topic as (group, n), per partition, in offset order.
fn read_topic(bootstrap: &str) -> Vec<(usize, usize)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "forwarding-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut high = Vec::new();
    for p in 0..PARTITIONS {
        let (_, h) = consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
            .expect("watermarks");
        high.push(h);
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut next = vec![0i64; PARTITIONS as usize];
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while next.iter().zip(&high).any(|(n, h)| n < h) {
        assert!(
            Instant::now() < deadline,
            "topic not read to its end: {next:?} of {high:?}"
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("consume");
        next[m.partition() as usize] = m.offset() + 1;
        let v: Value = serde_json::from_slice(m.payload().expect("payload")).expect("JSON");
        found.push((
            v["group"].as_u64().unwrap() as usize,
            v["n"].as_u64().unwrap() as usize,
        ));
    }
    found
}

/// The first copy of each event, per group, must come in the order it was spooled; every event
/// must be there. Returns (duplicates, problems).
fn check_order(found: &[(usize, usize)], groups: usize, per_group: usize) -> (usize, Vec<String>) {
    let mut seen = HashSet::new();
    let mut last: HashMap<usize, usize> = HashMap::new();
    let (mut duplicates, mut problems) = (0, Vec::new());
    for &(g, n) in found {
        if !seen.insert((g, n)) {
            duplicates += 1;
            continue;
        }
        if let Some(&before) = last.get(&g) {
            if n < before {
                problems.push(format!("g{g}-{n} first appears after g{g}-{before}"));
                continue;
            }
        }
        last.insert(g, n);
    }
    for g in 0..groups {
        for n in 0..per_group {
            if !seen.contains(&(g, n)) {
                problems.push(format!("g{g}-{n} is missing"));
            }
        }
    }
    (duplicates, problems)
}

fn append_all(spool: &Spool, groups: usize, per_group: usize, pause: Duration) -> JoinHandle<()> {
    let spool = spool.clone();
    tokio::spawn(async move {
        for n in 0..per_group {
            for g in 0..groups {
                spool.append(&record(g, n)).await.expect("append");
            }
            tokio::time::sleep(pause).await;
        }
    })
}

async fn read_all(mock: &Mock) -> Vec<(usize, usize)> {
    let bootstrap = mock.bootstrap_servers();
    tokio::task::spawn_blocking(move || read_topic(&bootstrap))
        .await
        .unwrap()
}

/// While records are spooled, the broker stalls past the 1.5 s ack timeout, answers, goes
/// down, answers, and ends slower than the ack timeout: every wait outlasts a delivery deadline
/// of 1.5 s, and each recovery comes while later records are still queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_events_reach_the_topic_in_spool_order_per_group_through_a_flaky_and_slow_broker() {
    const GROUPS: usize = 4;
    const PER_GROUP: usize = 150;
    let s = setup();
    let (stop, forwarder) = start(&s.relay, Duration::from_secs(5));
    // 600 appends spread over 9 s, so records reach librdkafka at different times, through
    // every phase below.
    let appender = append_all(&s.spool, GROUPS, PER_GROUP, Duration::from_millis(60));
    let rtt = |ms| {
        s.mock
            .broker_round_trip_time(-1, Duration::from_millis(ms))
            .unwrap()
    };
    let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));
    for (stalled_ms, answering_ms) in [(1800, 300), (2200, 150), (1700, 500)] {
        rtt(stalled_ms);
        pause(stalled_ms).await;
        rtt(0);
        pause(answering_ms).await;
    }
    s.mock.broker_down(-1).unwrap();
    pause(2000).await;
    s.mock.broker_up(-1).unwrap();
    pause(200).await;
    // Slower than the ack timeout, but answering: every record arrives, 1.7 s after it was sent.
    rtt(1700);
    appender.await.unwrap();
    assert!(
        wait_until_empty(&s.spool, Duration::from_secs(45)).await,
        "the spool did not drain from a broker that answers in 1.7 s: {:?} left",
        s.spool.depth()
    );
    rtt(0);
    stop.send(true).unwrap();
    forwarder.await.unwrap();
    let found = read_all(&s.mock).await;
    let (duplicates, problems) = check_order(&found, GROUPS, PER_GROUP);
    eprintln!("{} records in the topic, {duplicates} duplicates", found.len());
    assert!(
        problems.is_empty(),
        "{} problems, first: {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

/// Spooled while Kafka was down; the broker answers (slowly) just before the stop: the
/// forwarder returns only once the spool is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_stop_the_forwarder_returns_once_the_spool_is_empty() {
    let s = setup();
    s.mock.broker_down(-1).unwrap();
    let (stop, forwarder) = start(&s.relay, Duration::from_secs(20));
    append_all(&s.spool, 3, 100, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.spool.depth().0, 300, "nothing can be forwarded yet");
    s.mock
        .broker_round_trip_time(-1, Duration::from_millis(500))
        .unwrap();
    s.mock.broker_up(-1).unwrap();
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), forwarder)
        .await
        .expect("forwarder returned within the drain time")
        .unwrap();
    assert!(
        s.spool.is_empty(),
        "returned with {:?} still spooled",
        s.spool.depth()
    );
    let (duplicates, problems) = check_order(&read_all(&s.mock).await, 3, 100);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(duplicates, 0);
}

/// Kafka stays down: the forwarder returns at the drain deadline, the events stay in the spool,
/// and the next forwarder over that spool sends them, in order, once Kafka answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kafka_down_a_stop_returns_at_the_drain_deadline_and_the_spool_keeps_the_events() {
    let s = setup();
    s.mock.broker_down(-1).unwrap();
    let drain = Duration::from_secs(2);
    let (stop, forwarder) = start(&s.relay, drain);
    append_all(&s.spool, 2, 25, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped_at = Instant::now();
    stop.send(true).unwrap();
    tokio::time::timeout(drain + Duration::from_secs(1), forwarder)
        .await
        .expect("forwarder returned within drain + 1 s")
        .unwrap();
    let took = stopped_at.elapsed();
    assert!(took >= drain, "returned after {took:?}, before the drain time");
    assert_eq!(s.spool.depth().0, 50, "every event stays in the spool");
    s.mock.broker_up(-1).unwrap();
    let (stop, forwarder) = start(&s.relay, drain);
    assert!(wait_until_empty(&s.spool, Duration::from_secs(20)).await);
    stop.send(true).unwrap();
    forwarder.await.unwrap();
    let (_, problems) = check_order(&read_all(&s.mock).await, 2, 25);
    assert!(problems.is_empty(), "{problems:#?}");
}
