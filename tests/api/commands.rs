//! Every command of the webhook reference (`../shared/spec/tencent-im-webhooks.md`) through the
//! relay, end to end: each documented body in, the right record out, on the right topic, with
//! its type, key and CloudEvents headers; before-callbacks answered and not published; push
//! batches split; a switched-off class answered OK and not published.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};
use tim_relay::ingress::commands::{Class, REGISTRY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{consume_topic, create_topic, launch, TestApp, APP_ID};

/// The three topics of one relay.
struct Topics {
    state: String,
    messages: String,
    other: String,
}

async fn spawn_with_topics(name: &str, extra: &[(&str, &str)]) -> (TestApp, Topics) {
    let topics = Topics {
        state: create_topic(&format!("{name}_state")).await,
        messages: create_topic(&format!("{name}_messages")).await,
        other: create_topic(&format!("{name}_other")).await,
    };
    let mut vars = vec![
        ("KAFKA_MESSAGES_TOPIC", topics.messages.as_str()),
        ("KAFKA_OTHER_TOPIC", topics.other.as_str()),
    ];
    vars.extend_from_slice(extra);
    let app = launch(topics.state.clone(), tempfile::tempdir().unwrap(), &vars).await;
    (app, topics)
}

fn query_for(command: &str) -> String {
    format!(
        "SdkAppid={APP_ID}&CallbackCommand={command}&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI"
    )
}

/// (command, body) and what the test expects of it: its type, or its key.
type Sample = ((String, String), &'static str);

/// Where a command's sample body is kept: `tests/fixtures/commands/<CallbackCommand>.json`.
fn fixture_path(command: &str) -> String {
    format!(
        "{}/tests/fixtures/commands/{command}.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Tencent's documented body of each command, the body's CallbackCommand included, from its
/// fixture file; sent compact, members in the file's order.
fn sample(command: &str) -> (String, String) {
    let path = fixture_path(command);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        body["CallbackCommand"], command,
        "{path} is another command's body"
    );
    (command.to_string(), body.to_string())
}

fn samples(expected: &[(&'static str, &'static str)]) -> Vec<Sample> {
    expected
        .iter()
        .map(|(command, e)| (sample(command), *e))
        .collect()
}

/// The group state commands the end-to-end test sends, in order, and the type of each event.
const STATE_COMMANDS: &[(&str, &str)] = &[
    ("Group.CallbackAfterCreateGroup", "tim.group.created"),
    ("Group.CallbackAfterGroupInfoChanged", "tim.group.info_changed"),
    ("Group.CallbackAfterNewMemberJoin", "tim.group.member_joined"),
    ("Group.CallbackAfterMemberExit", "tim.group.member_exited"),
    ("Group.CallbackAfterChangeGroupOwner", "tim.group.owner_changed"),
    (
        "Group.CallbackAfterMemberFieldChanged",
        "tim.group.member_changed",
    ),
    ("Group.CallbackAfterGroupAttrChanged", "tim.group.attr_changed"),
    ("Group.CallbackAfterGroupFull", "tim.group.full"),
    ("Group.CallbackAfterCreateTopic", "tim.group.topic_created"),
    (
        "Group.CallbackAfterTopicInfoChanged",
        "tim.group.topic_info_changed",
    ),
    ("Group.CallbackAfterTopicDestroyed", "tim.group.topic_destroyed"),
    (
        "Group.CallbackOnMemberStateChange",
        "tim.group.member_state_changed",
    ),
    ("Group.CallbackAfterGroupDestroyed", "tim.group.destroyed"),
];

fn state_samples() -> Vec<Sample> {
    samples(STATE_COMMANDS)
}

/// The group message commands the end-to-end test sends, in order, and the type of each event.
const MESSAGE_COMMANDS: &[(&str, &str)] = &[
    ("Group.CallbackAfterSendMsg", "tim.group.message_sent"),
    ("Group.CallbackAfterRecallMsg", "tim.group.message_recalled"),
    ("Group.CallbackAfterReadReceipt", "tim.group.read_receipt"),
    (
        "Group.CallbackAfterGroupMsgExtension",
        "tim.group.message_extension_changed",
    ),
    ("Group.CallbackSendMsgException", "tim.group.message_send_failed"),
];

fn message_samples() -> Vec<Sample> {
    samples(MESSAGE_COMMANDS)
}

/// Callbacks that become `tim.webhook` events, in order, and the key of each.
const OTHER_COMMANDS: &[(&str, &str)] = &[
    ("State.StateChange", "marketing"),
    ("Profile.CallbackPortraitSet", "bob"),
    ("Sns.CallbackFriendAdd", "bob"),
    ("Sns.CallbackFriendDelete", "bob"),
    ("Sns.CallbackBlackListAdd", "bob"),
    ("Sns.CallbackBlackListDelete", "bob"),
    ("Follow.CallbackAfterFollowAdd", "bob"),
    ("Follow.CallbackAfterFollowDelete", "bob"),
    ("C2C.CallbackAfterSendMsg", "jared"),
    ("C2C.CallbackAfterMsgReport", "jared"),
    ("C2C.CallbackAfterMsgWithDraw", "jared"),
    ("C2C.CallbackAfterC2CMsgExtension", "jared"),
    ("OfficialAccount.CallbackAfterSendMsg", "news"),
    ("Alert.RequestOverLimit", "create_group"),
    ("Bot.OnC2CMessage", "bob"),
    (
        "Group.CallbackOnDailyGroupQuotaAlarm",
        "Group.CallbackOnDailyGroupQuotaAlarm",
    ),
    ("Vendor.CallbackNobodyKnows", "someone"),
];

fn other_samples() -> Vec<Sample> {
    samples(OTHER_COMMANDS)
}

/// Where the JSON Schema of an event type is published: `docs/events/<type>.schema.json`.
fn schema_path(event_type: &str) -> String {
    format!(
        "{}/docs/events/{event_type}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The event against its documented JSON Schema (`docs/events/<type>.schema.json`, Draft
/// 2020-12, formats checked), at every level: every member is documented (each schema forbids
/// any other) and of its JSON type, every required one is present, and `type` is the schema's.
fn assert_conforms(event: &Value) {
    let broken = violations(event);
    assert!(broken.is_empty(), "{}: {broken:#?}\n{event:#}", event["type"]);
}

/// Where the event breaks its schema, as "path: why" lines; empty when it conforms.
fn violations(event: &Value) -> Vec<String> {
    let event_type = event["type"].as_str().expect("type");
    let path = schema_path(event_type);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    assert_eq!(
        schema["additionalProperties"], false,
        "{path}: every member of the event must be documented"
    );
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{path} is not a valid schema: {e}"));
    validator
        .iter_errors(event)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

async fn post_ok(app: &TestApp, command: &str, body: &str) {
    let answer = app.post(&query_for(command), body.to_string()).await;
    assert_eq!(answer.status, 200, "{command}: {:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0}),
        "{command}"
    );
}

#[tokio::test]
async fn every_documented_command_reaches_its_topic_with_its_type_and_key() {
    let (app, topics) = spawn_with_topics("every_command", &[]).await;
    let (state, messages, others) = (state_samples(), message_samples(), other_samples());
    for ((command, body), _) in state.iter().chain(&messages).chain(&others) {
        post_ok(&app, command, body).await;
    }
    for (records, samples) in [
        (consume_topic(&topics.state, state.len()).await, &state),
        (consume_topic(&topics.messages, messages.len()).await, &messages),
    ] {
        for (record, ((command, body), event_type)) in records.iter().zip(samples.iter()) {
            let sent: Value = serde_json::from_str(body).unwrap();
            assert_eq!(record.value["type"], *event_type, "{command}");
            assert_eq!(record.headers["ce_type"], *event_type, "{command}");
            assert_eq!(record.headers["ce_id"], record.value["id"].as_str().unwrap());
            assert_eq!(record.key.as_deref(), Some("@TGS#2J4SZEAEL"), "{command}");
            assert_eq!(record.value["group_id"], "@TGS#2J4SZEAEL", "{command}");
            assert_eq!(record.value["sdk_app_id"], APP_ID);
            assert_eq!(record.value["schema_version"], 1);
            if let Some(t) = sent.get("Type") {
                assert_eq!(&record.value["group_type"], t, "{command}");
            }
            if let Some(t) = sent.get("EventTime") {
                let ms: u64 = t.as_u64().unwrap_or_else(|| t.as_str().unwrap().parse().unwrap());
                assert_eq!(record.value["event_time_ms"], ms, "{command}");
            }
            assert!(record.value.get("CallbackCommand").is_none());
            assert_conforms(&record.value);
        }
    }
    let other = consume_topic(&topics.other, others.len()).await;
    for (record, ((command, body), key)) in other.iter().zip(&others) {
        assert_eq!(record.value["type"], "tim.webhook", "{command}");
        assert_eq!(record.headers["ce_type"], "tim.webhook");
        assert_eq!(record.value["command"], command.as_str());
        assert_eq!(record.key.as_deref(), Some(*key), "{command}");
        let sent: Value = serde_json::from_str(body).unwrap();
        assert_eq!(record.value["body"], sent, "{command}: the body verbatim");
        assert_conforms(&record.value);
    }
    // A few typed fields, as consumers read them.
    let created = consume_topic(&topics.state, state.len()).await;
    assert_eq!(created[0].value["owner"], "leckie");
    assert_eq!(created[0].value["members"], json!(["bob", "peter"]));
    assert_eq!(created[0].value["custom"], json!({"k": "v"}));
    assert_eq!(created[2].value["join_type"], "Apply");
    assert_eq!(created[2].value["members"], json!(["jared", "tommy"]));
    assert_eq!(created[4].value["new_owner"], "tommy");
    assert_eq!(created[6].value["attrs"], json!({"color": "red"}));
    assert_eq!(created[10].value["topic_ids"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn message_fields_are_typed_and_the_message_body_is_kept_verbatim() {
    let (app, topics) = spawn_with_topics("message_fields", &[]).await;
    let ((command, body), _) = &message_samples()[0];
    post_ok(&app, command, body).await;
    let record = &consume_topic(&topics.messages, 1).await[0];
    assert_eq!(record.value["from"], "jared");
    assert_eq!(record.value["msg_seq"], 123);
    assert_eq!(record.value["random"], 2010340400);
    assert_eq!(
        record.value["msg_body"],
        json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "red packet"}}])
    );
    assert_eq!(record.value["cloud_custom_data"], "your cloud custom data");
    // An empty Operator_Account is kept as sent.
    assert_eq!(record.value["operator"], "");
    assert_conforms(&record.value);
}

#[tokio::test]
async fn a_push_batch_becomes_one_record_per_event_in_order() {
    let (app, topics) = spawn_with_topics("push", &[]).await;
    let events = json!({"Events": [
        {"CallbackCommand": "Push.OfflinePush", "EventType": 1, "EventTime": 1670574414, "From_Account": "a", "To_Account": "b", "PushPlatform": 1, "PushStage": 1, "MsgKey": "k1", "PushID": "p1", "ErrCode": 0, "ErrInfo": ""},
        {"CallbackCommand": "Push.OfflinePush", "EventType": 2, "EventTime": 1670574415, "From_Account": "a", "GroupID": "@TGS#1", "PushPlatform": 4, "PushStage": 2, "MsgSeq": 9, "PushID": "p2", "ErrCode": 0, "ErrInfo": ""}
    ]});
    let query = format!("SdkAppid={APP_ID}&CallbackCommand=Push.OfflinePush&contenttype=json");
    let answer = app.post(&query, events.to_string()).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let records = consume_topic(&topics.other, 2).await;
    assert_eq!(records[0].key.as_deref(), Some("b"));
    assert_eq!(records[1].key.as_deref(), Some("@TGS#1"));
    assert_eq!(records[0].value["event_time_ms"], 1670574414000u64);
    assert_eq!(records[1].value["group_id"], "@TGS#1");
    assert_eq!(records[0].value["body"], events["Events"][0]);
    assert_ne!(records[0].value["id"], records[1].value["id"]);
    assert_conforms(&records[0].value);
    // A batch with one bad event is refused whole: nothing of it is published.
    let bad = json!({"Events": [{"CallbackCommand": "Push.OfflinePush", "To_Account": "c"}, {"CallbackCommand": "Push.OfflinePush"}]});
    assert_eq!(app.post(&query, bad.to_string()).await.status, 400);
    let empty = json!({"Events": []});
    assert_eq!(app.post(&query, empty.to_string()).await.status, 400);
    consume_topic(&topics.other, 2).await;
}

#[tokio::test]
async fn before_callbacks_are_allowed_at_once_and_nothing_is_published() {
    let (app, topics) = spawn_with_topics("before_default", &[]).await;
    for (command, body) in [
        (
            "Group.CallbackBeforeCreateGroup",
            json!({"Operator_Account": "leckie", "Owner_Account": "leckie", "Type": "Public", "Name": "g", "CreateGroupNum": 1, "MemberList": []}),
        ),
        (
            "Group.CallbackBeforeApplyJoinGroup",
            json!({"GroupId": "g", "Type": "Public", "Requestor_Account": "bob"}),
        ),
        (
            "Group.CallbackBeforeInviteJoinGroup",
            json!({"GroupId": "g", "Type": "Public", "Operator_Account": "a", "DestinationMembers": [{"Member_Account": "b"}]}),
        ),
        (
            "Group.CallbackBeforeSendMsg",
            json!({"GroupId": "g", "Type": "Public", "From_Account": "a", "Operator_Account": "a", "Random": 1, "OnlineOnlyFlag": 0, "MsgBody": []}),
        ),
        (
            "Group.CallbackBeforeCreateTopic",
            json!({"Operator_Account": "a", "Type": "Community", "Name": "t"}),
        ),
        (
            "C2C.CallbackBeforeSendMsg",
            json!({"From_Account": "a", "To_Account": "b", "MsgBody": []}),
        ),
        (
            "Sns.CallbackPrevFriendAdd",
            json!({"PairList": [{"From_Account": "a", "To_Account": "b"}]}),
        ),
        (
            "OfficialAccount.CallbackBeforeSendMsg",
            json!({"Official_Account": "news"}),
        ),
    ] {
        post_ok(&app, command, &body.to_string()).await;
    }
    // Checked like any callback: a group before-callback without its GroupId is refused.
    let answer = app
        .post(
            &query_for("Group.CallbackBeforeSendMsg"),
            r#"{"From_Account":"a"}"#,
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["ErrorCode"], 4005);
    post_ok(&app, "Group.CallbackAfterGroupFull", r#"{"GroupId":"sentinel"}"#).await;
    assert_eq!(
        consume_topic(&topics.state, 1).await[0].value["group_id"],
        "sentinel"
    );
    consume_topic(&topics.messages, 0).await;
    consume_topic(&topics.other, 0).await;
    let (_, text) = app.admin_get("/metrics").await;
    assert!(
        text.contains(r#"tim_relay_decisions_total{outcome="allowed_default"} 8"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tim_relay_callbacks_total{outcome="decided"} 8"#),
        "{text}"
    );
}

/// A decision service on a local port that answers every request with `answer` and reports
/// each request it saw (request line and body).
async fn decision_service(
    answer: &'static str,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<(String, String)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/decide", listener.local_addr().unwrap());
    let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() < len {
                        continue;
                    }
                    let _ = seen.send((head.lines().next().unwrap().to_string(), body[..len].to_string()));
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    conn.write_all(response.as_bytes()).await.unwrap();
                    buf.clear();
                }
            });
        }
    });
    (url, requests)
}

#[tokio::test]
async fn with_a_decision_service_its_answer_is_returned_verbatim() {
    const DENY: &str = r#"{"ActionStatus":"OK","ErrorInfo":"no spam","ErrorCode":1,"MsgBody":[]}"#;
    let (url, mut requests) = decision_service(DENY).await;
    let (app, _topics) = spawn_with_topics("before_service", &[("RELAY_DECISION_URL", &url)]).await;
    let body =
        r#"{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"g","From_Account":"a","MsgBody":[]}"#;
    let query = query_for("Group.CallbackBeforeSendMsg");
    let response = app
        .client
        .post(format!("{}/callback?{query}", app.address))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), DENY);
    let (line, seen_body) = requests.recv().await.unwrap();
    assert_eq!(line, format!("POST /decide?{query} HTTP/1.1"));
    assert_eq!(seen_body, body);
}

#[tokio::test]
async fn an_unreachable_decision_service_gets_the_fallback_in_time() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/decide");
    let (app, _topics) = spawn_with_topics(
        "before_fallback",
        &[
            ("RELAY_DECISION_URL", &url),
            ("RELAY_DECISION_FALLBACK", "deny"),
            ("RELAY_DECISION_TIMEOUT_MS", "300"),
        ],
    )
    .await;
    let started = std::time::Instant::now();
    let answer = app
        .post(
            &query_for("C2C.CallbackBeforeSendMsg"),
            r#"{"From_Account":"a","To_Account":"b"}"#,
        )
        .await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["ActionStatus"], "OK");
    assert_eq!(answer.body["ErrorCode"], 1, "{:?}", answer.body);
    let (_, text) = app.admin_get("/metrics").await;
    assert!(
        text.contains(r#"tim_relay_decisions_total{outcome="fallback_deny"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_switched_off_class_is_answered_ok_and_counted_as_ignored() {
    let (app, topics) = spawn_with_topics("switched_off", &[("KAFKA_MESSAGES_TOPIC", "")]).await;
    let ((command, body), _) = &message_samples()[0];
    post_ok(&app, command, body).await;
    post_ok(&app, "Group.CallbackAfterGroupFull", r#"{"GroupId":"sentinel"}"#).await;
    consume_topic(&topics.state, 1).await;
    consume_topic(&topics.messages, 0).await;
    let (_, text) = app.admin_get("/metrics").await;
    assert!(
        text.contains(r#"tim_relay_callbacks_total{outcome="ignored"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_group_command_without_its_group_is_refused_and_publishes_nothing() {
    let (app, topics) = spawn_with_topics("strict", &[]).await;
    let mut seen = HashMap::new();
    for ((command, body), _) in state_samples().into_iter().chain(message_samples()) {
        let mut without: Value = serde_json::from_str(&body).unwrap();
        without.as_object_mut().unwrap().remove("GroupId");
        let answer = app.post(&query_for(&command), without.to_string()).await;
        assert_eq!(answer.status, 400, "{command}: {:?}", answer.body);
        assert_eq!(answer.body["ErrorCode"], 4005, "{command}");
        let mut empty = without.clone();
        empty["GroupId"] = json!("");
        let answer = app.post(&query_for(&command), empty.to_string()).await;
        assert_eq!(answer.body["ErrorCode"], 4006, "{command}");
        seen.insert(command, ());
    }
    assert_eq!(seen.len(), 18);
    // The body's command must be the query's.
    let ((command, body), _) = &state_samples()[0];
    let answer = app
        .post(&query_for("Group.CallbackAfterGroupFull"), body.clone())
        .await;
    assert_eq!(answer.body["ErrorCode"], 4001, "{command}");
    consume_topic(&topics.state, 0).await;
    consume_topic(&topics.messages, 0).await;
}

/// The registry is the one list of commands with an event of their own; each needs its sample
/// body (`tests/fixtures/commands/<CallbackCommand>.json`), its place in the end-to-end test
/// above, its event's JSON Schema (`docs/events/<type>.schema.json`) and its row in the
/// README's table of commands. No broker needed.
#[test]
fn every_registered_command_has_its_fixture_its_schema_and_its_readme_row() {
    let readme_path = format!("{}/README.md", env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(&readme_path).unwrap_or_else(|e| panic!("{readme_path}: {e}"));
    let sent: Vec<&str> = STATE_COMMANDS
        .iter()
        .chain(MESSAGE_COMMANDS)
        .map(|(command, _)| *command)
        .collect();
    let mut missing = Vec::new();
    for command in REGISTRY {
        let (name, event_type) = (command.name, command.event_type);
        if !Path::new(&fixture_path(name)).is_file() {
            missing.push(format!(
                "{name}: no sample body, tests/fixtures/commands/{name}.json"
            ));
        } else if !sent.contains(&name) {
            missing.push(format!(
                "{name}: not sent by the end-to-end test (STATE_COMMANDS or MESSAGE_COMMANDS in tests/api/commands.rs)"
            ));
        }
        if !Path::new(&schema_path(event_type)).is_file() {
            missing.push(format!("{name}: no schema, docs/events/{event_type}.schema.json"));
        }
        let class = match command.class {
            Class::GroupState => "group state",
            Class::GroupMessage => "group messages",
            Class::Other => "other",
        };
        let row = format!("| `{name}` | {class} | `{event_type}` |");
        if !readme.lines().any(|line| line.starts_with(&row)) {
            missing.push(format!("{name}: no README row starting {row}"));
        }
    }
    assert!(
        missing.is_empty(),
        "the registry has commands without what each needs (README, \"Adding a command\"):\n{}",
        missing.join("\n")
    );
}

/// The schemas hold below the top level too: a nested member of the wrong type, or one its
/// schema does not document, breaks them. No broker needed.
#[test]
fn a_wrong_member_below_the_top_level_breaks_the_schema() {
    // The README's example event.
    let event = json!({
        "id": "0b6f5f5e-4a0f-5d43-9a57-3c1e2d9b8f10", "type": "tim.group.info_changed",
        "schema_version": 1, "sdk_app_id": "1400000000", "group_id": "@TGS#2J4SZEAEL",
        "group_type": "Public", "operator": "leckie", "event_time_ms": 1670574414123u64,
        "received_at": "2026-11-26T01:25:44.123Z", "client_ip": "127.0.0.1", "platform": "RESTAPI",
        "changes": {"name": "NewGroupName", "introduction": "", "custom": {"UserDefinedKey1": "UserDefinedValue1"}},
        "extra": {"ShutUpAllMember": "On"}
    });
    assert_conforms(&event);
    let with = |pointer: &str, value: Value| {
        let mut e = event.clone();
        *e.pointer_mut(pointer).expect("a member of the example") = value;
        e
    };
    let mut undocumented = event.clone();
    undocumented["changes"]["nick"] = json!("x");
    for (name, broken) in [
        ("a name that is not a string", with("/changes/name", json!(5))),
        (
            "a custom value that is not a string",
            with("/changes/custom/UserDefinedKey1", json!(1)),
        ),
        (
            "a received_at that is not a time",
            with("/received_at", json!("yesterday")),
        ),
        ("an id that is not a UUID", with("/id", json!("42"))),
        ("an undocumented member of changes", undocumented),
    ] {
        assert!(
            !violations(&broken).is_empty(),
            "the schema accepts an event with {name}"
        );
    }
}
