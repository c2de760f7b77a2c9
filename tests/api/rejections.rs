//! Every refusal: the status, Tencent's FAIL body with its code, and nothing in the topic.

use std::time::{SystemTime, UNIX_EPOCH};

use tim_relay::ingress::auth::sign_for;

use crate::helpers::{query, spawn_app_with, APP_ID, COMMAND};

const TOKEN: &str = "test-token";

fn signed(query: &str, at: u64) -> String {
    format!(
        "{query}&Sign={}&RequestTime={at}",
        sign_for(TOKEN, &at.to_string())
    )
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn every_refusal_answers_fail_with_its_code_and_publishes_nothing() {
    let app = spawn_app_with(
        "refusals",
        &[
            ("TIM_CALLBACK_TOKEN", TOKEN),
            ("RELAY_BODY_LIMIT_BYTES", "1024"),
            ("RELAY_MAX_CUSTOM_FIELDS", "3"),
            ("RELAY_MAX_FIELD_BYTES", "100"),
        ],
    )
    .await;
    let good = signed(&query(), now());
    let body = r#"{"GroupId":"g1","Name":"n"}"#;
    let big = format!(r#"{{"GroupId":"g1","Name":"{}"}}"#, "x".repeat(2000));
    let no_app_id = good.replace(&format!("SdkAppid={APP_ID}&"), "");
    let other_app = good.replace(APP_ID, "1400000001");
    let wrong_sign = format!(
        "{query}&Sign={}&RequestTime={t}",
        sign_for("other", &now().to_string()),
        query = query(),
        t = now()
    );
    let stale = signed(&query(), now() - 3600);
    let unsigned = query();
    let bad_time = format!("{}&Sign=00&RequestTime=yesterday", query());
    let too_many = format!(
        r#"{{"GroupId":"g1","UserDefinedDataList":[{}{{"Key":"k","Value":"v"}}]}}"#,
        r#"{"Key":"k","Value":"v"},"#.repeat(3)
    );
    let long_name = format!(r#"{{"GroupId":"g1","Name":"{}"}}"#, "名".repeat(50));
    let no_command = good.replace(&format!("CallbackCommand={COMMAND}&"), "");
    let owner_changed = good.replace(COMMAND, "Group.CallbackAfterChangeGroupOwner");
    let cases: Vec<(&str, &str, String, u16, u32)> = vec![
        ("SdkAppid missing", &no_app_id, body.into(), 403, 4031),
        ("SdkAppid of another app", &other_app, body.into(), 403, 4032),
        ("Sign missing", &unsigned, body.into(), 401, 4011),
        ("RequestTime not a number", &bad_time, body.into(), 401, 4012),
        ("RequestTime an hour old", &stale, body.into(), 401, 4013),
        (
            "Sign made with another token",
            &wrong_sign,
            body.into(),
            401,
            4014,
        ),
        ("CallbackCommand missing", &no_command, body.into(), 400, 4001),
        (
            "another command without a field it requires",
            &owner_changed,
            body.into(),
            400,
            4005,
        ),
        (
            "CallbackCommand in the body differs",
            &good,
            r#"{"CallbackCommand":"Group.CallbackAfterCreateGroup","GroupId":"g1"}"#.into(),
            400,
            4001,
        ),
        ("body over the limit", &good, big, 413, 4131),
        ("body not JSON", &good, "GroupId=g1".into(), 400, 4003),
        ("body empty", &good, String::new(), 400, 4003),
        (
            "body not an object",
            &good,
            r#"["GroupId","g1"]"#.into(),
            400,
            4004,
        ),
        ("GroupId missing", &good, r#"{"Name":"n"}"#.into(), 400, 4005),
        ("GroupId empty", &good, r#"{"GroupId":""}"#.into(), 400, 4006),
        ("GroupId a number", &good, r#"{"GroupId":12}"#.into(), 400, 4007),
        (
            "Name not a string",
            &good,
            r#"{"GroupId":"g1","Name":{"a":1}}"#.into(),
            400,
            4007,
        ),
        (
            "EventTime a float",
            &good,
            r#"{"GroupId":"g1","EventTime":1.5}"#.into(),
            400,
            4008,
        ),
        (
            "UserDefinedDataList not a list",
            &good,
            r#"{"GroupId":"g1","UserDefinedDataList":{}}"#.into(),
            400,
            4009,
        ),
        ("UserDefinedDataList too long", &good, too_many, 400, 4021),
        ("Name longer than the field bound", &good, long_name, 400, 4022),
    ];
    for (what, query, body, status, code) in cases {
        let answer = app.post(query, body).await;
        assert_eq!(answer.status, status, "{what}: {:?}", answer.body);
        assert_eq!(answer.body["ActionStatus"], "FAIL", "{what}");
        assert_eq!(answer.body["ErrorCode"], code, "{what}: {:?}", answer.body);
        assert!(
            !answer.body["ErrorInfo"].as_str().unwrap().is_empty(),
            "{what}: a reason is given"
        );
    }
    // The sentinel is the first and only record: none of the refused callbacks was published.
    assert_eq!(
        app.post(&signed(&query(), now()), r#"{"GroupId":"sentinel"}"#)
            .await
            .status,
        200
    );
    let records = app.consume(1).await;
    assert_eq!(records[0].value["group_id"], "sentinel");

    let (_, metrics) = app.admin_get("/metrics").await;
    for line in [
        r#"tim_relay_callbacks_total{outcome="ok"} 1"#,
        r#"tim_relay_callbacks_total{outcome="rejected_app_id"} 2"#,
        r#"tim_relay_callbacks_total{outcome="rejected_sign"} 4"#,
        r#"tim_relay_callbacks_total{outcome="rejected_command"} 2"#,
        r#"tim_relay_callbacks_total{outcome="rejected_too_large"} 1"#,
        r#"tim_relay_callbacks_total{outcome="rejected_body"} 12"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_without_content_length_is_refused_too() {
    let app = spawn_app_with("chunked", &[("RELAY_BODY_LIMIT_BYTES", "64")]).await;
    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok(r#"{"GroupId":"g1","Name":""#.into()),
        Ok("y".repeat(100)),
        Ok(r#""}"#.into()),
    ];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let answer = app.post(&query(), body).await;
    assert_eq!(
        (answer.status, answer.body["ErrorCode"].as_u64()),
        (413, Some(4131))
    );
    assert_eq!(app.post(&query(), r#"{"GroupId":"sentinel"}"#).await.status, 200);
    assert_eq!(app.consume(1).await[0].value["group_id"], "sentinel");
}

#[tokio::test]
async fn other_methods_and_paths_get_a_fail_answer() {
    let app = spawn_app_with("paths", &[]).await;
    let (status, body) = app.get(&format!("/callback?{}", query())).await;
    assert_eq!(status, 405, "{body}");
    assert!(body.contains(r#""ActionStatus":"FAIL""#), "{body}");
    let (status, body) = app.get("/nope").await;
    assert_eq!(status, 404, "{body}");
}
