//! Every command of the webhook reference (`../shared/spec/tencent-im-webhooks.md`) through the
//! relay, end to end: each documented body in, the right record out, on the right topic, with
//! its type, key and CloudEvents headers; before-callbacks answered and not published; push
//! batches split; a switched-off class answered OK and not published.

use std::collections::HashMap;

use serde_json::{json, Value};
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

/// Tencent's documented body of each command, the body's CallbackCommand included.
fn sample(command: &str, fields: Value) -> (String, String) {
    let mut body = json!({ "CallbackCommand": command });
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    (command.to_string(), body.to_string())
}

fn state_samples() -> Vec<Sample> {
    let g = "@TGS#2J4SZEAEL";
    vec![
        (
            sample(
                "Group.CallbackAfterCreateGroup",
                json!({"GroupId": g, "Type": "Public", "Operator_Account": "leckie", "Owner_Account": "leckie", "Name": "MyFirstGroup", "MemberList": [{"Member_Account": "bob"}, {"Member_Account": "peter"}], "UserDefinedDataList": [{"Key": "k", "Value": "v"}], "EventTime": "1670574414123"}),
            ),
            "tim.group.created",
        ),
        (
            sample(
                "Group.CallbackAfterGroupInfoChanged",
                json!({"GroupId": g, "Type": "Public", "Operator_Account": "leckie", "Name": "NewName", "Introduction": "", "EventTime": 1670574414124u64}),
            ),
            "tim.group.info_changed",
        ),
        (
            sample(
                "Group.CallbackAfterNewMemberJoin",
                json!({"GroupId": g, "Type": "Public", "JoinType": "Apply", "Operator_Account": "leckie", "NewMemberList": [{"Member_Account": "jared"}, {"Member_Account": "tommy"}], "EventTime": "1670574414125"}),
            ),
            "tim.group.member_joined",
        ),
        (
            sample(
                "Group.CallbackAfterMemberExit",
                json!({"GroupId": g, "Type": "Public", "ExitType": "Kicked", "Operator_Account": "leckie", "ExitMemberList": [{"Member_Account": "jared"}], "EventTime": "1670574414126"}),
            ),
            "tim.group.member_exited",
        ),
        (
            sample(
                "Group.CallbackAfterChangeGroupOwner",
                json!({"GroupId": g, "Type": "Public", "Operator_Account": "leckie", "OldOwner_Account": "leckie", "NewOwner_Account": "tommy", "EventTime": "1670574414127"}),
            ),
            "tim.group.owner_changed",
        ),
        (
            sample(
                "Group.CallbackAfterMemberFieldChanged",
                json!({"GroupId": g, "Type": "Public", "Operator_Account": "tommy", "Member_Account": "bob", "Role": "Admin", "NameCard": "Bobby", "EventTime": "1670574414128"}),
            ),
            "tim.group.member_changed",
        ),
        (
            sample(
                "Group.CallbackAfterGroupAttrChanged",
                json!({"GroupId": g, "Type": "AVChatRoom", "Operator_Account": "tommy", "OptionType": "set", "GroupAttr": [{"key": "color", "value": "red"}], "EventTime": "1670574414129"}),
            ),
            "tim.group.attr_changed",
        ),
        (
            sample(
                "Group.CallbackAfterGroupFull",
                json!({"GroupId": g, "EventTime": "1670574414130"}),
            ),
            "tim.group.full",
        ),
        (
            sample(
                "Group.CallbackAfterCreateTopic",
                json!({"GroupId": g, "TopicId": "@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_TestTopic", "Operator_Account": "leckie", "Owner_Account": "leckie", "Type": "Community", "Name": "TestTopic", "UserDefinedDataList": [{"Key": "k", "Value": "v"}]}),
            ),
            "tim.group.topic_created",
        ),
        (
            sample(
                "Group.CallbackAfterTopicInfoChanged",
                json!({"GroupId": g, "Type": "Community", "Operator_Account": "leckie", "Name": "Renamed"}),
            ),
            "tim.group.topic_info_changed",
        ),
        (
            sample(
                "Group.CallbackAfterTopicDestroyed",
                json!({"GroupId": g, "Type": "Community", "TopicIdList": ["@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_TestTopic"]}),
            ),
            "tim.group.topic_destroyed",
        ),
        (
            sample(
                "Group.CallbackOnMemberStateChange",
                json!({"GroupId": g, "EventType": "Offline", "EventCause": "HeartbeatInterrupt", "MemberList": [{"Member_Account": "bob"}], "EventTime": 1670574414131u64}),
            ),
            "tim.group.member_state_changed",
        ),
        (
            sample(
                "Group.CallbackAfterGroupDestroyed",
                json!({"GroupId": g, "Type": "Public", "Owner_Account": "tommy", "Name": "NewName", "MemberList": [{"Member_Account": "bob"}], "EventTime": "1670574414132"}),
            ),
            "tim.group.destroyed",
        ),
    ]
}

fn message_samples() -> Vec<Sample> {
    let g = "@TGS#2J4SZEAEL";
    let body = json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "red packet"}}]);
    vec![
        (
            sample(
                "Group.CallbackAfterSendMsg",
                json!({"GroupId": g, "Type": "Public", "From_Account": "jared", "Operator_Account": "", "Random": 2010340400, "MsgSeq": 123, "MsgTime": 1490686222, "OnlineOnlyFlag": 0, "MsgBody": body, "CloudCustomData": "your cloud custom data", "EventTime": "1670574414123"}),
            ),
            "tim.group.message_sent",
        ),
        (
            sample(
                "Group.CallbackAfterRecallMsg",
                json!({"GroupId": g, "Type": "Public", "Operator_Account": "jared", "MsgSeqList": [{"MsgSeq": 123}, {"MsgSeq": 124}], "EventTime": "1670574414124"}),
            ),
            "tim.group.message_recalled",
        ),
        (
            sample(
                "Group.CallbackAfterReadReceipt",
                json!({"GroupId": g, "Type": "Public", "GroupMsgReceiptList": [{"MsgSeq": 123, "ReadNum": 1, "UnreadNum": 2, "ReadReceiptMembers": [{"Member_Account": "bob"}]}], "EventTime": "1670574414125"}),
            ),
            "tim.group.read_receipt",
        ),
        (
            sample(
                "Group.CallbackAfterGroupMsgExtension",
                json!({"GroupId": g, "MsgSeq": 123, "OperateType": 1, "ExtensionList": [{"Key": "like", "Value": "1", "Seq": 1}], "Seq": 1, "EventTime": 1670574414126u64}),
            ),
            "tim.group.message_extension_changed",
        ),
        (
            sample(
                "Group.CallbackSendMsgException",
                json!({"GroupId": g, "Type": "Public", "From_Account": "jared", "Operator_Account": "", "Random": 7, "OnlineOnlyFlag": 0, "MsgBody": body, "CloudCustomData": "", "ErrorCode": 10017, "ErrorInfo": "muted", "EventTime": "1670574414127"}),
            ),
            "tim.group.message_send_failed",
        ),
    ]
}

/// (command, body, expected key) of callbacks that become `tim.webhook` events.
fn other_samples() -> Vec<Sample> {
    vec![
        (
            sample(
                "State.StateChange",
                json!({"EventTime": 1670574414123u64, "Info": {"Action": "Login", "To_Account": "marketing", "Reason": "Register"}, "KickedDevice": [{"Platform": "Windows"}]}),
            ),
            "marketing",
        ),
        (
            sample(
                "Profile.CallbackPortraitSet",
                json!({"From_Account": "bob", "Operator_Account": "bob", "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "Bobby"}]}),
            ),
            "bob",
        ),
        (
            sample(
                "Sns.CallbackFriendAdd",
                json!({"PairList": [{"From_Account": "bob", "To_Account": "peter", "Initiator_Account": "bob"}], "ClientCmd": "friend_add"}),
            ),
            "bob",
        ),
        (
            sample(
                "Sns.CallbackFriendDelete",
                json!({"PairList": [{"From_Account": "bob", "To_Account": "peter"}]}),
            ),
            "bob",
        ),
        (
            sample(
                "Sns.CallbackBlackListAdd",
                json!({"PairList": [{"From_Account": "bob", "To_Account": "spam"}]}),
            ),
            "bob",
        ),
        (
            sample(
                "Sns.CallbackBlackListDelete",
                json!({"PairList": [{"From_Account": "bob", "To_Account": "spam"}]}),
            ),
            "bob",
        ),
        (
            sample(
                "Follow.CallbackAfterFollowAdd",
                json!({"From_Account": "bob", "To_Account": "star"}),
            ),
            "bob",
        ),
        (
            sample(
                "Follow.CallbackAfterFollowDelete",
                json!({"From_Account": "bob", "To_Account": "star"}),
            ),
            "bob",
        ),
        (
            sample(
                "C2C.CallbackAfterSendMsg",
                json!({"From_Account": "jared", "To_Account": "Jonh", "MsgSeq": 48374, "MsgRandom": 2837546, "MsgTime": 1557481126, "MsgKey": "48374_2837546_1557481126", "OnlineOnlyFlag": 1, "SendMsgResult": 0, "ErrorInfo": "send msg succeed", "UnreadMsgNum": 1, "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}], "EventTime": 1670574414123u64}),
            ),
            "jared",
        ),
        (
            sample(
                "C2C.CallbackAfterMsgReport",
                json!({"Report_Account": "jared", "Peer_Account": "Jonh", "LastReadTime": 1560316620, "UnreadMsgNum": 0, "From_Account": "jared"}),
            ),
            "jared",
        ),
        (
            sample(
                "C2C.CallbackAfterMsgWithDraw",
                json!({"From_Account": "jared", "To_Account": "Jonh", "MsgKey": "k", "UnreadMsgNum": 0}),
            ),
            "jared",
        ),
        (
            sample(
                "C2C.CallbackAfterC2CMsgExtension",
                json!({"From_Account": "jared", "To_Account": "Jonh", "MsgKey": "k", "OperateType": 1, "ExtensionList": []}),
            ),
            "jared",
        ),
        (
            sample(
                "OfficialAccount.CallbackAfterSendMsg",
                json!({"Official_Account": "news", "From_Account": "news"}),
            ),
            "news",
        ),
        (
            sample(
                "Alert.RequestOverLimit",
                json!({"ServiceName": "group_open_http_svc", "Command": "create_group", "Request": 160, "Limit": 200}),
            ),
            "create_group",
        ),
        (
            sample(
                "Bot.OnC2CMessage",
                json!({"From_Account": "bob", "To_Account": "@RBT#001", "MsgBody": []}),
            ),
            "bob",
        ),
        (
            sample(
                "Group.CallbackOnDailyGroupQuotaAlarm",
                json!({"QuotaUsed": 7000, "Quota": 10000, "EventTime": 1670574414123u64}),
            ),
            "Group.CallbackOnDailyGroupQuotaAlarm",
        ),
        (
            sample("Vendor.CallbackNobodyKnows", json!({"To_Account": "someone"})),
            "someone",
        ),
    ]
}

/// The event's documented JSON Schema (`docs/events/<type>.schema.json`): every member of the
/// event is a documented property of the right JSON type, every required one is present, and
/// `type` is the schema's.
fn assert_conforms(event: &Value) {
    let event_type = event["type"].as_str().expect("type");
    let path = format!(
        "{}/docs/events/{event_type}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let properties = schema["properties"].as_object().unwrap();
    for (name, value) in event.as_object().unwrap() {
        let property = properties
            .get(name)
            .unwrap_or_else(|| panic!("{event_type}: `{name}` is not in {path}"));
        if let Some(c) = property.get("const") {
            assert_eq!(value, c, "{event_type}.{name}");
        }
        let types: Vec<&str> = match &property["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        let fits = types.iter().any(|t| match *t {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            _ => true,
        });
        assert!(fits, "{event_type}.{name} = {value} is not {types:?}");
    }
    for required in schema["required"].as_array().unwrap() {
        let required = required.as_str().unwrap();
        assert!(
            event.get(required).is_some(),
            "{event_type}: `{required}` missing"
        );
    }
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
