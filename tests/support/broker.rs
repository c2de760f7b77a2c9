//! A single-node broker of a test's own, through `scripts/kafka.sh` (on its own ports, with its
//! own data dir), and what the tests ask of a broker: topics created and altered, a topic's
//! existence, and a topic read from its beginning to its end.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::REPO;

/// A broker `scripts/kafka.sh` runs; stopped when dropped, also on panic.
pub struct Broker {
    /// Which test's broker ("fault", "left-behind"): in messages.
    pub name: &'static str,
    pub port: u16,
    pub controller_port: u16,
    /// Under the repository: `target/kafka-fault`.
    pub data_dir: &'static str,
    /// `KAFKA_AUTO_CREATE_TOPICS` (kafka.sh's `auto.create.topics.enable`, true by default).
    pub auto_create: bool,
}

impl Broker {
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn script(&self, action: &str) -> Result<(), String> {
        let out = Command::new("bash")
            .arg(format!("{REPO}/scripts/kafka.sh"))
            .arg(action)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("KAFKA_DATA_DIR", format!("{REPO}/{}", self.data_dir))
            .env("KAFKA_AUTO_CREATE_TOPICS", self.auto_create.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run bash scripts/kafka.sh: {e}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// `reset`, `start` (which waits until the broker answers) or `stop`; a failure panics.
    pub fn run(&self, action: &str) {
        if let Err(e) = self.script(action) {
            panic!(
                "kafka.sh {action} failed for the {} broker on {}:\n{e}\nTry it by hand: \
                 KAFKA_PORT={} KAFKA_CONTROLLER_PORT={} KAFKA_DATA_DIR={} bash scripts/kafka.sh {action} \
                 (needs Java 17+ and Maven; see its log under {})",
                self.name,
                self.bootstrap(),
                self.port,
                self.controller_port,
                self.data_dir,
                self.data_dir
            );
        }
    }

    /// A clean broker, started: earlier runs' topics and data are wiped.
    pub fn fresh(self) -> Broker {
        // The guard exists first, so a broker that started but never became ready is stopped too.
        self.run("reset");
        self.run("start");
        self
    }

    pub fn start(&mut self) {
        self.run("start");
    }

    pub fn stop(&mut self) {
        self.run("stop");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Err(e) = self.script("stop") {
            eprintln!("could not stop the {} broker: {e}", self.name);
        }
    }
}

/// The fault tests' broker (`tests/fault.rs`, `tests/ownership.rs`): 127.0.0.1:19092, its
/// controller on 19093, data in `target/kafka-fault`, wiped and started. Two runs at once would
/// reset each other's broker and topics, so the lock (held until the returned file is dropped,
/// after the broker) makes a run wait for the other.
pub fn fault_broker(name: &'static str) -> (std::fs::File, Broker) {
    let lock = super::lock::lock_file(
        &std::path::PathBuf::from(REPO).join("target/kafka-fault.lock"),
        "the fault broker",
    );
    let broker = Broker {
        name,
        port: 19092,
        controller_port: 19093,
        data_dir: "target/kafka-fault",
        auto_create: true,
    }
    .fresh();
    (lock, broker)
}

/// The broker the tests without one of their own use: `KAFKA_BOOTSTRAP_SERVERS`, else
/// 127.0.0.1:9092.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Panics, saying how to start one, unless the broker at [`bootstrap`] answers.
pub fn require_broker() {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("client");
    if let Err(e) = consumer.fetch_metadata(None, Duration::from_secs(10)) {
        panic!(
            "no Kafka broker answers at {} ({e}). Start one with `bash scripts/kafka.sh start`, \
             or run the whole suite with `bash scripts/test.sh`.",
            bootstrap()
        );
    }
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// Runs an admin request to its end on a runtime of its own.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Creates the topic; a failure panics.
pub fn create_topic(bootstrap: &str, topic: &NewTopic<'_>, opts: &AdminOptions) {
    let created = block_on(admin(bootstrap).create_topics([topic], opts));
    for result in created.expect("create topic request") {
        result.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

pub fn alter_topic(bootstrap: &str, topic: &str, config: &[(&str, &str)]) {
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in config {
        alter = alter.set(k, v);
    }
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(20)));
    let altered = block_on(admin(bootstrap).alter_configs([&alter], &opts));
    for result in altered.expect("alter configs request") {
        result.unwrap_or_else(|(r, e)| panic!("cannot alter {r:?}: {e}"));
    }
}

/// A consumer's metadata request, which never asks the broker to create the topic.
pub fn topic_exists(bootstrap: &str, topic: &str) -> bool {
    let metadata = Reader::new(bootstrap, topic, "exists")
        .consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
}

/// Reads a topic from its beginning to the high watermarks it had when asked.
pub struct Reader {
    consumer: BaseConsumer,
    topic: String,
}

impl Reader {
    /// A consumer of a group of its own (`<who>-reader-<uuid>`), which commits nothing and never
    /// asks the broker to create the topic.
    pub fn new(bootstrap: &str, topic: &str, who: &str) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("{who}-reader-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("consumer");
        Reader {
            consumer,
            topic: topic.into(),
        }
    }

    /// The topic's partitions, from the metadata.
    pub fn partitions(&self) -> Vec<i32> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect()
    }

    /// The partition's high watermark. Just after a leader moves (a node restarted), the new
    /// leader can answer OffsetNotAvailable until its high watermark has caught up: asked again
    /// for up to `retry_for`, then the last error fails the test.
    pub fn high_watermark(&self, partition: i32, retry_for: Duration) -> i64 {
        let topic = &self.topic;
        let deadline = Instant::now() + retry_for;
        loop {
            match self
                .consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
            {
                Ok((_, high)) => return high,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("watermarks of {topic}-{partition}: {e}; asking again");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!(
                    "watermarks of {topic}-{partition} (asked for {} s): {e}",
                    retry_for.as_secs()
                ),
            }
        }
    }

    /// Reads `partitions` from their beginning up to their high watermark, each record to
    /// `each`; says how far it got when `within` runs out first.
    pub fn read(
        self,
        partitions: &[i32],
        retry_watermarks: Duration,
        within: Duration,
        mut each: impl FnMut(&BorrowedMessage<'_>),
    ) -> Result<(), String> {
        let mut assignment = TopicPartitionList::new();
        let mut high = BTreeMap::new();
        for &p in partitions {
            let h = self.high_watermark(p, retry_watermarks);
            if h > 0 {
                high.insert(p, h);
                assignment
                    .add_partition_offset(&self.topic, p, Offset::Beginning)
                    .unwrap();
            }
        }
        if high.is_empty() {
            return Ok(());
        }
        self.consumer.assign(&assignment).expect("assign");
        let mut next: BTreeMap<i32, i64> = high.keys().map(|&p| (p, 0)).collect();
        let deadline = Instant::now() + within;
        while next.iter().any(|(p, n)| *n < high[p]) {
            if Instant::now() > deadline {
                return Err(format!(
                    "topic {} not read to its end within {} s: at {next:?} of {high:?}",
                    self.topic,
                    within.as_secs()
                ));
            }
            let Some(message) = self.consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let m = message.expect("consume");
            next.insert(m.partition(), m.offset() + 1);
            each(&m);
        }
        Ok(())
    }
}
