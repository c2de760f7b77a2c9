//! Liveness, readiness and metrics on the admin listener, with the broker up.

use crate::helpers::{query, spawn_app};

#[tokio::test]
async fn healthz_and_readyz_answer_200_while_the_broker_is_up() {
    let app = spawn_app("ready").await;
    assert_eq!(app.admin_get("/healthz").await.0, 200);
    let (status, body) = app.admin_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn metrics_count_outcomes_and_publish_latency() {
    let app = spawn_app("metrics").await;
    assert_eq!(app.post(&query(), r#"{"GroupId":"g1"}"#).await.status, 200);
    assert_eq!(app.post("SdkAppid=1", r#"{"GroupId":"g1"}"#).await.status, 403);
    let (status, text) = app.admin_get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        r#"tim_relay_callbacks_total{outcome="ok"} 1"#,
        r#"tim_relay_callbacks_total{outcome="rejected_app_id"} 1"#,
        "tim_relay_publish_duration_seconds_count 1",
        "tim_relay_in_flight_requests 0",
        r#"tim_relay_callback_duration_seconds_count{outcome="ok"} 1"#,
        r#"tim_relay_callback_duration_seconds_count{outcome="rejected_app_id"} 1"#,
        r#"tim_relay_build_info{version=""#,
        "tim_relay_spool_max_bytes 1073741824",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_cpu_seconds_total ",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    app.consume(1).await;
}

#[tokio::test]
async fn the_callback_listener_answers_404_for_the_operator_endpoints() {
    let app = spawn_app("admin_apart").await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 404, "{path} on the callback listener: {body}");
        assert!(body.contains(r#""ActionStatus":"FAIL""#), "{body}");
        assert_eq!(app.admin_get(path).await.0, 200, "{path} on the admin listener");
    }
    let (_, text) = app.admin_get("/metrics").await;
    assert!(text.contains("tim_relay_ready 1"), "{text}");
}
