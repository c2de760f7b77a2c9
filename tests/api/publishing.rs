//! What reaches the topic for callbacks that are accepted.

use serde_json::{json, Value};

use crate::helpers::{query, spawn_app, spawn_app_with, APP_ID};

const OK: &str = r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}"#;

fn ok() -> Value {
    serde_json::from_str(OK).unwrap()
}

#[tokio::test]
async fn the_three_seed_bodies_are_published_with_key_value_and_headers() {
    let app = spawn_app("seeds").await;
    let bodies = [
        r#"{"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "Operator_Account":"leckie","Notification":"NewNotification"}"#,
        r#"{"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "Operator_Account":"leckie","UserDefinedDataList":[{"Key":"UserDefinedKey2","Value":"UserDefinedValue2"}]}"#,
        r#"{"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "Operator_Account":"leckie","Name":"NewGroupName","Introduction":"NewIntroduction",
            "Notification":"NewNotification","FaceUrl":"NewFaceUrl","UserDefinedDataList":[
            {"Key":"UserDefinedKey1","Value":"UserDefinedValue1"},{"Key":"UserDefinedKey2","Value":"UserDefinedValue2"},
            {"Key":"UserDefinedKey3","Value":"UserDefinedValue3"}]}"#,
    ];
    for body in bodies {
        let answer = app.post(&query(), body).await;
        assert_eq!((answer.status, answer.body), (200, ok()));
    }
    let records = app.consume(3).await;
    let changes: Vec<&Value> = records.iter().map(|r| &r.value["changes"]).collect();
    assert_eq!(changes[0], &json!({"notification": "NewNotification"}));
    assert_eq!(
        changes[1],
        &json!({"custom": {"UserDefinedKey2": "UserDefinedValue2"}})
    );
    assert_eq!(
        changes[2],
        &json!({"name": "NewGroupName", "introduction": "NewIntroduction", "notification": "NewNotification",
                "face_url": "NewFaceUrl", "custom": {"UserDefinedKey1": "UserDefinedValue1",
                "UserDefinedKey2": "UserDefinedValue2", "UserDefinedKey3": "UserDefinedValue3"}})
    );
    for r in &records {
        let v = &r.value;
        assert_eq!(r.key.as_deref(), Some("@TGS#2J4SZEAEL"));
        assert_eq!(v["type"], "tim.group.info_changed");
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["sdk_app_id"], APP_ID);
        assert_eq!(v["group_id"], "@TGS#2J4SZEAEL");
        assert_eq!(v["group_type"], "Public");
        assert_eq!(v["operator"], "leckie");
        assert_eq!(v["client_ip"], "127.0.0.1");
        assert_eq!(v["platform"], "RESTAPI");
        assert!(
            v.get("event_time_ms").is_none() && v.get("extra").is_none(),
            "{v}"
        );
        assert!(
            humantime::parse_rfc3339(v["received_at"].as_str().unwrap()).is_ok(),
            "{v}"
        );
        let h = &r.headers;
        assert_eq!(h["ce_specversion"], "1.0");
        assert_eq!(h["ce_id"], v["id"].as_str().unwrap());
        assert_eq!(h["ce_type"], "tim.group.info_changed");
        assert_eq!(h["ce_source"], format!("/tencent-im/{APP_ID}"));
        assert_eq!(h["ce_subject"], "@TGS#2J4SZEAEL");
        assert_eq!(h["ce_time"], v["received_at"].as_str().unwrap());
        assert_eq!(h["content-type"], "application/json");
    }
    assert_ne!(records[0].value["id"], records[1].value["id"]);
}

#[tokio::test]
async fn an_empty_string_is_published_as_a_change_and_absent_fields_stay_absent() {
    let app = spawn_app("empty").await;
    let answer = app
        .post(&query(), r#"{"GroupId":"g1","Name":"","FaceUrl":""}"#)
        .await;
    assert_eq!(answer.status, 200);
    let records = app.consume(1).await;
    assert_eq!(records[0].value["changes"], json!({"name": "", "face_url": ""}));
    assert!(records[0].value.get("group_type").is_none());
    assert!(records[0].value.get("operator").is_none());
}

#[tokio::test]
async fn event_time_as_number_or_string_gives_the_same_event_time_and_a_stable_id() {
    let app = spawn_app("eventtime").await;
    let as_number = r#"{"GroupId":"g1","Name":"a","EventTime":1670574414123}"#;
    let as_string = r#"{"GroupId":"g1","Name":"a","EventTime":"1670574414123"}"#;
    for body in [as_number, as_string, as_number] {
        assert_eq!(app.post(&query(), body).await.status, 200);
    }
    let records = app.consume(3).await;
    for r in &records {
        assert_eq!(r.value["event_time_ms"], 1670574414123u64);
        assert_eq!(r.headers["ce_time"], "2022-12-09T08:26:54.123Z");
    }
    assert_eq!(
        records[0].value["id"], records[2].value["id"],
        "a re-delivered body keeps its id"
    );
    assert_ne!(records[0].value["id"], records[1].value["id"]);
}

#[tokio::test]
async fn unknown_fields_are_carried_in_extra_unchanged() {
    let app = spawn_app("extra").await;
    let body = r#"{"GroupId":"g1","ShutUpAllMember":"On","ApplyJoinOption":"NeedPermission","Nested":{"b":[1,2.50,null]}}"#;
    assert_eq!(app.post(&query(), body).await.status, 200);
    let records = app.consume(1).await;
    // Parsed from text, not built with json!, so that `2.50` keeps its written form.
    let expected: Value = serde_json::from_str(
        r#"{"ShutUpAllMember":"On","ApplyJoinOption":"NeedPermission","Nested":{"b":[1,2.50,null]}}"#,
    )
    .unwrap();
    assert_eq!(records[0].value["extra"], expected);
    assert_eq!(records[0].value["changes"], json!({}));
}

#[tokio::test]
async fn non_ascii_text_is_published_byte_for_byte() {
    let app = spawn_app("unicode").await;
    let body = json!({"GroupId": "@TGS#群组🙂", "Name": "新群名 ✨", "Notification": "Ünïcödé\n\t\"quoted\"",
                      "Operator_Account": "李雷", "UserDefinedDataList": [{"Key": "键", "Value": "值🙂"}]});
    assert_eq!(app.post(&query(), body.to_string()).await.status, 200);
    let records = app.consume(1).await;
    let r = &records[0];
    assert_eq!(r.key.as_deref(), Some("@TGS#群组🙂"));
    assert_eq!(r.headers["ce_subject"], "@TGS#群组🙂");
    assert_eq!(r.value["changes"]["name"], "新群名 ✨");
    assert_eq!(r.value["changes"]["notification"], "Ünïcödé\n\t\"quoted\"");
    assert_eq!(r.value["changes"]["custom"], json!({"键": "值🙂"}));
    assert_eq!(r.value["operator"], "李雷");
}

#[tokio::test]
async fn a_valid_sign_is_accepted_when_token_auth_is_on() {
    let app = spawn_app_with("signok", &[("TIM_CALLBACK_TOKEN", "xxxxyyyy")]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sign = tim_relay::ingress::auth::sign_for("xxxxyyyy", &now);
    let answer = app
        .post(
            &format!("{}&Sign={sign}&RequestTime={now}", query()),
            r#"{"GroupId":"g1"}"#,
        )
        .await;
    assert_eq!((answer.status, answer.body), (200, ok()));
    assert_eq!(app.consume(1).await[0].value["group_id"], "g1");
}

#[tokio::test]
async fn fifty_changes_to_one_group_arrive_in_order() {
    let app = spawn_app("order").await;
    for i in 0..50 {
        let answer = app
            .post(
                &query(),
                format!(r#"{{"GroupId":"@TGS#order","Name":"name-{i}"}}"#),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    let names: Vec<String> = app
        .consume(50)
        .await
        .iter()
        .map(|r| r.value["changes"]["name"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("name-{i}")).collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn the_content_type_header_is_not_required() {
    let app = spawn_app("ctype").await;
    let response = app
        .client
        .post(format!("{}/callback?{}", app.address, query()))
        .header("Content-Type", "text/plain")
        .body(r#"{"GroupId":"g1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), OK);
    app.consume(1).await;
}
