//! Liveness, readiness and metrics with the broker up.

use crate::helpers::{query, spawn_app};

#[tokio::test]
async fn healthz_and_readyz_answer_200_while_the_broker_is_up() {
    let app = spawn_app("ready").await;
    assert_eq!(app.get("/healthz").await.0, 200);
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn metrics_count_outcomes_and_publish_latency() {
    let app = spawn_app("metrics").await;
    assert_eq!(app.post(&query(), r#"{"GroupId":"g1"}"#).await.status, 200);
    assert_eq!(app.post("SdkAppid=1", r#"{"GroupId":"g1"}"#).await.status, 403);
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        r#"tim_relay_callbacks_total{outcome="ok"} 1"#,
        r#"tim_relay_callbacks_total{outcome="rejected_app_id"} 1"#,
        "tim_relay_publish_duration_seconds_count 1",
        "tim_relay_in_flight_requests 0",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    app.consume(1).await;
}
