//! When Kafka cannot be reached: a timely FAIL answer, and readiness says why.

use std::time::{Duration, Instant};

use tim_relay::config::Config;
use tim_relay::http::Application;

use crate::helpers::{query, TestApp, APP_ID};

/// A relay pointed at a port where no broker listens (a real refused connection).
async fn spawn_app_without_broker() -> TestApp {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let vars = [
        ("TIM_SDK_APP_ID", APP_ID.to_string()),
        ("RELAY_LISTEN", "127.0.0.1:0".into()),
        ("KAFKA_BOOTSTRAP_SERVERS", closed.to_string()),
        ("KAFKA_TOPIC", "unreachable".into()),
        ("RELAY_ACK_TIMEOUT_MS", "400".into()),
    ];
    let config = Config::from_vars(vars.map(|(k, v)| (k.to_string(), v))).unwrap();
    let app = Application::build(config).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        topic: "unreachable".into(),
        client: reqwest::Client::new(),
    }
}

#[tokio::test]
async fn an_unreachable_broker_gives_503_fail_within_the_ack_timeout() {
    let app = spawn_app_without_broker().await;
    let started = Instant::now();
    let answer = app.post(&query(), r#"{"GroupId":"g1"}"#).await;
    let took = started.elapsed();
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.body["ActionStatus"], "FAIL");
    assert_eq!(answer.body["ErrorCode"], 5031, "{:?}", answer.body);
    assert!(took < Duration::from_millis(1500), "answered after {took:?}");
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"tim_relay_callbacks_total{outcome="kafka_timeout"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn readyz_is_503_with_a_reason_while_the_broker_is_unreachable() {
    let app = spawn_app_without_broker().await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready:"), "{body}");
    assert_eq!(app.get("/healthz").await.0, 200);
}
