//! Test harness: one relay in-process on port 0 and one fresh topic per test, against the real broker.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tim_relay::config::Config;
use tim_relay::startup::Application;

pub const APP_ID: &str = "1400000000";
pub const COMMAND: &str = "Group.CallbackAfterGroupInfoChanged";

pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Fails the test, with the way out, when no broker answers.
fn require_broker() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .map_err(|e| e.to_string())?;
        consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        panic!(
            "no Kafka broker answers at {} ({e}). Start one with `bash scripts/kafka.sh start`, \
             or run the whole suite with `bash scripts/test.sh`, or point KAFKA_BOOTSTRAP_SERVERS at one.",
            bootstrap()
        );
    }
}

/// A unique topic per test (`__tim_relay_<name>_<random>`), created with one partition so that
/// "nothing before the sentinel" means nothing was published at all.
pub async fn create_topic(name: &str) -> String {
    create_topic_with(name, 1).await
}

/// A unique topic with `partitions` partitions.
pub async fn create_topic_with(name: &str, partitions: i32) -> String {
    require_broker();
    let topic = format!("__tim_relay_{name}_{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(&topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic request");
    for r in results {
        r.expect("topic created");
    }
    topic
}

pub struct TestApp {
    /// The callback listener.
    pub address: String,
    /// The admin listener: `/healthz`, `/readyz`, `/metrics`.
    pub admin: String,
    pub topic: String,
    pub client: reqwest::Client,
    /// The relay's spool directory, removed when the test ends.
    pub _spool: tempfile::TempDir,
}

pub async fn spawn_app(name: &str) -> TestApp {
    spawn_app_with(name, &[]).await
}

/// Starts the relay with the test's own topic; `extra` adds or overrides environment variables.
pub async fn spawn_app_with(name: &str, extra: &[(&str, &str)]) -> TestApp {
    let topic = create_topic(name).await;
    launch(topic, tempfile::tempdir().expect("spool dir"), extra).await
}

/// Starts the relay on `topic` with the given spool directory.
/// Returns once the relay answers `/healthz` on its admin listener, so a test may block its
/// thread right after.
pub async fn launch(topic: String, spool: tempfile::TempDir, extra: &[(&str, &str)]) -> TestApp {
    let mut vars: HashMap<String, String> = [
        ("TIM_SDK_APP_ID", APP_ID.to_string()),
        ("RELAY_LISTEN", "127.0.0.1:0".to_string()),
        ("RELAY_ADMIN_LISTEN", "127.0.0.1:0".to_string()),
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap()),
        ("KAFKA_TOPIC", topic.clone()),
        ("RELAY_SPOOL_DIR", spool.path().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_vars(vars).expect("test config");
    let app = Application::build(config).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    tokio::spawn(app.run_until_stopped());
    let app = TestApp {
        address,
        admin,
        topic,
        client: reqwest::Client::new(),
        _spool: spool,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .client
        .get(format!("{}/healthz", app.admin))
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "relay did not come up at {}",
            app.admin
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app
}

/// A relay pointed at a port where no broker listens (a real refused connection).
pub async fn spawn_app_without_broker(extra: &[(&str, &str)]) -> TestApp {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut vars = vec![
        ("KAFKA_BOOTSTRAP_SERVERS", closed.as_str()),
        ("RELAY_ACK_TIMEOUT_MS", "400"),
    ];
    vars.extend_from_slice(extra);
    launch("unreachable".into(), tempfile::tempdir().unwrap(), &vars).await
}

/// The value of the first sample named `name` (labels included) in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

/// Tencent's query string for this app, without Sign.
pub fn query() -> String {
    format!(
        "SdkAppid={APP_ID}&CallbackCommand={COMMAND}&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI"
    )
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    pub async fn post(&self, query: &str, body: impl Into<reqwest::Body>) -> Answer {
        let response = self
            .client
            .post(format!("{}/callback?{query}", self.address))
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("answer is not JSON: {text:?}"));
        Answer { status, body }
    }

    /// GET on the callback listener.
    pub async fn get(&self, path: &str) -> (u16, String) {
        self.get_from(&self.address, path).await
    }

    /// GET on the admin listener.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        self.get_from(&self.admin, path).await
    }

    /// One sample's value from the admin listener's `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.admin_get("/metrics").await;
        metric(&text, name)
    }

    async fn get_from(&self, base: &str, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("sent");
        (
            response.status().as_u16(),
            response.text().await.expect("body read"),
        )
    }

    /// Reads exactly `n` records from the start of the topic, then checks no further one arrives.
    pub async fn consume(&self, n: usize) -> Vec<Record> {
        consume_topic(&self.topic, n).await
    }
}

#[derive(Debug)]
pub struct Record {
    pub key: Option<String>,
    pub value: Value,
    pub headers: HashMap<String, String>,
}

/// Reads exactly `n` records from the start of a one-partition topic, then checks that no
/// further one arrives.
pub async fn consume_topic(topic: &str, n: usize) -> Vec<Record> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || consume_blocking(&topic, n))
        .await
        .expect("consumer thread")
}

fn consume_blocking(topic: &str, n: usize) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("tim-relay-test-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while records.len() < n && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            records.push(Record::from(&m.expect("consume")));
        }
    }
    assert_eq!(
        records.len(),
        n,
        "expected {n} records in {topic}, found {}: {records:#?}",
        records.len()
    );
    // A second look: nothing beyond what was expected may have been published.
    let quiet = Instant::now() + Duration::from_millis(700);
    while Instant::now() < quiet {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            panic!(
                "unexpected extra record in {topic}: {:#?}",
                Record::from(&m.expect("consume"))
            );
        }
    }
    records
}

impl From<&rdkafka::message::BorrowedMessage<'_>> for Record {
    fn from(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Record {
            key: m.key().map(|k| String::from_utf8(k.to_vec()).expect("UTF-8 key")),
            value: serde_json::from_slice(m.payload().expect("payload")).expect("JSON value"),
            headers,
        }
    }
}
