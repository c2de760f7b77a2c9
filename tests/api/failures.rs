//! When Kafka cannot take records: OK only after the spool has the event, in time; FAIL when
//! the spool is full; and what was spooled reaches the topic first once Kafka answers.

use std::time::{Duration, Instant};

use tim_relay::delivery::record::Record;
use tim_relay::delivery::spool::Spool;

use crate::helpers::{create_topic, launch, metric, query, spawn_app_without_broker};

#[tokio::test]
async fn with_kafka_unreachable_callbacks_are_spooled_and_answered_ok_in_time() {
    let app = spawn_app_without_broker(&[]).await;
    for i in 0..5 {
        let started = Instant::now();
        let answer = app
            .post(&query(), format!(r#"{{"GroupId":"g1","Name":"n{i}"}}"#))
            .await;
        let took = started.elapsed();
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(answer.body["ActionStatus"], "OK");
        assert!(took < Duration::from_millis(1500), "answer {i} took {took:?}");
    }
    let (_, text) = app.admin_get("/metrics").await;
    assert_eq!(metric(&text, "tim_relay_spooled_total"), 5.0);
    assert_eq!(metric(&text, "tim_relay_spool_events"), 5.0);
    assert_eq!(metric(&text, "tim_relay_kafka_reachable"), 0.0);
    assert!(metric(&text, "tim_relay_spool_bytes") > 0.0);
    assert!(metric(&text, "tim_relay_spool_oldest_age_seconds") >= 0.0);
    assert_eq!(metric(&text, r#"tim_relay_callbacks_total{outcome="ok"}"#), 5.0);
}

#[tokio::test]
async fn readyz_stays_200_and_says_kafka_is_unreachable_while_the_spool_has_room() {
    let app = spawn_app_without_broker(&[]).await;
    let (status, body) = app.admin_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Kafka unreachable"), "{body}");
    assert_eq!(app.admin_get("/healthz").await.0, 200);
}

#[tokio::test]
async fn a_full_spool_answers_503_fail_and_keeps_what_it_has() {
    let app = spawn_app_without_broker(&[
        ("RELAY_SPOOL_MAX_BYTES", "1048576"),
        ("RELAY_BODY_LIMIT_BYTES", "2000000"),
        ("RELAY_MAX_FIELD_BYTES", "1000000"),
    ])
    .await;
    let big = format!(r#"{{"GroupId":"g1","Name":"{}"}}"#, "x".repeat(700_000));
    assert_eq!(app.post(&query(), big.clone()).await.status, 200);
    let answer = app.post(&query(), big).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.body["ActionStatus"], "FAIL");
    assert_eq!(answer.body["ErrorCode"], 5034);
    let (_, text) = app.admin_get("/metrics").await;
    assert_eq!(metric(&text, "tim_relay_spool_events"), 1.0);
    assert_eq!(
        metric(&text, r#"tim_relay_callbacks_total{outcome="spool_full"}"#),
        1.0
    );
}

#[tokio::test]
async fn events_left_in_the_spool_are_forwarded_first_and_in_order_on_start() {
    let topic = create_topic("respool").await;
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), 1 << 30).unwrap();
        for i in 0..20 {
            let record = Record {
                // Entries of a release with one topic carry none: they go to KAFKA_TOPIC.
                topic: String::new(),
                key: "g1".into(),
                payload: format!(r#"{{"group_id":"g1","changes":{{"name":"old-{i}"}}}}"#).into_bytes(),
                headers: vec![("ce_id".into(), format!("old-{i}"))],
            };
            spool.append(&record).await.unwrap();
        }
    }
    let app = launch(topic, dir, &[]).await;
    let answer = app.post(&query(), r#"{"GroupId":"g1","Name":"new"}"#).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let names: Vec<String> = app
        .consume(21)
        .await
        .iter()
        .map(|r| r.value["changes"]["name"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = (0..20).map(|i| format!("old-{i}")).collect();
    expected.push("new".into());
    assert_eq!(names, expected);
    let (_, text) = app.admin_get("/metrics").await;
    // The new callback joins the queue when it arrives while old events are still spooled.
    let spooled_now = metric(&text, "tim_relay_spooled_total");
    assert_eq!(metric(&text, "tim_relay_forwarded_total"), 20.0 + spooled_now);
    assert_eq!(metric(&text, "tim_relay_spool_events"), 0.0);
}
