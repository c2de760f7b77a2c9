//! The normalized change event (schema version 1): the only thing the relay publishes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::callback::{CallbackQuery, GroupInfoChanged};

pub const EVENT_TYPE: &str = "tim.group.info_changed";
pub const SCHEMA_VERSION: u32 = 1;

/// Namespace of the name-based (v5) event ids; fixed forever so re-deliveries map to one id.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a8e_5b7d_4c3e_9a10_4e2b_7d5f_0c11);

/// Only the fields present in the callback; an empty string is a change, `None` is "not sent".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<Map<String, Value>>,
    /// Members of `UserDefinedDataList` entries besides `Key` and `Value`, by the entry's `Key`;
    /// absent when no entry has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_members: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub schema_version: u32,
    pub sdk_app_id: String,
    pub group_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time_ms: Option<u64>,
    pub received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub changes: Changes,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl ChangeEvent {
    /// Builds the event. `sdk_app_id` is the checked app ID and `raw_body` the bytes as received,
    /// which (with `EventTime` present) name the event so a re-delivery gets the same `id`.
    pub fn new(
        sdk_app_id: &str,
        query: &CallbackQuery,
        body: GroupInfoChanged,
        raw_body: &[u8],
        received_at: SystemTime,
    ) -> Self {
        let id = match body.event_time_ms {
            Some(_) => {
                let mut name = Vec::with_capacity(sdk_app_id.len() + 1 + raw_body.len());
                name.extend_from_slice(sdk_app_id.as_bytes());
                name.push(b'\n');
                name.extend_from_slice(raw_body);
                Uuid::new_v5(&ID_NAMESPACE, &name)
            }
            None => Uuid::new_v4(),
        };
        let mut custom_members = Map::new();
        let custom = body.custom.map(|list| {
            list.into_iter()
                .map(|f| {
                    if f.extra.is_empty() {
                        // A repeated Key keeps its last entry, members included.
                        custom_members.shift_remove(&f.key);
                    } else {
                        custom_members.insert(f.key.clone(), Value::Object(f.extra));
                    }
                    (f.key, Value::String(f.value))
                })
                .collect::<Map<_, _>>()
        });
        ChangeEvent {
            id: id.to_string(),
            event_type: EVENT_TYPE,
            schema_version: SCHEMA_VERSION,
            sdk_app_id: sdk_app_id.to_string(),
            group_id: body.group_id,
            group_type: body.group_type,
            operator: body.operator,
            event_time_ms: body.event_time_ms,
            received_at: rfc3339(received_at),
            client_ip: query.client_ip.clone(),
            platform: query.opt_platform.clone(),
            changes: Changes {
                name: body.name,
                introduction: body.introduction,
                notification: body.notification,
                face_url: body.face_url,
                custom,
                custom_members: (!custom_members.is_empty()).then_some(custom_members),
            },
            extra: body.extra,
        }
    }

    /// The Kafka record key: the GroupId, so one group's changes stay in one partition, in order.
    pub fn key(&self) -> &[u8] {
        self.group_id.as_bytes()
    }

    /// CloudEvents `source`, naming the Tencent IM app.
    pub fn ce_source(&self) -> String {
        format!("/tencent-im/{}", self.sdk_app_id)
    }

    /// CloudEvents `time`: when the change happened if Tencent said so, else when it was received.
    pub fn ce_time(&self) -> String {
        match self.event_time_ms {
            Some(ms) => rfc3339(UNIX_EPOCH + Duration::from_millis(ms)),
            None => self.received_at.clone(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a ChangeEvent always serializes")
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(body: &str, query: &str) -> ChangeEvent {
        let parsed = GroupInfoChanged::from_slice(body.as_bytes()).unwrap();
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        ChangeEvent::new(
            "1400000000",
            &CallbackQuery::parse(query),
            parsed,
            body.as_bytes(),
            at,
        )
    }

    fn value(e: &ChangeEvent) -> Value {
        serde_json::from_slice(&e.to_json()).unwrap()
    }

    #[test]
    fn the_mixed_seed_body_becomes_the_documented_event() {
        let e = event(
            r#"{"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
               "Operator_Account":"leckie","Name":"NewGroupName","Introduction":"NewIntroduction",
               "Notification":"NewNotification","FaceUrl":"NewFaceUrl",
               "UserDefinedDataList":[{"Key":"UserDefinedKey1","Value":"UserDefinedValue1"},
                                      {"Key":"UserDefinedKey2","Value":"UserDefinedValue2"}]}"#,
            "SdkAppid=1400000000&ClientIP=127.0.0.1&OptPlatform=RESTAPI",
        );
        let mut v = value(&e);
        assert!(Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
        v.as_object_mut().unwrap().remove("id");
        assert_eq!(
            v,
            json!({
                "type": "tim.group.info_changed", "schema_version": 1, "sdk_app_id": "1400000000",
                "group_id": "@TGS#2J4SZEAEL", "group_type": "Public", "operator": "leckie",
                "received_at": "2023-11-14T22:13:20.123Z", "client_ip": "127.0.0.1", "platform": "RESTAPI",
                "changes": {
                    "name": "NewGroupName", "introduction": "NewIntroduction",
                    "notification": "NewNotification", "face_url": "NewFaceUrl",
                    "custom": {"UserDefinedKey1": "UserDefinedValue1", "UserDefinedKey2": "UserDefinedValue2"}
                }
            })
        );
        assert_eq!(e.key(), b"@TGS#2J4SZEAEL");
        assert_eq!(e.ce_time(), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn an_empty_string_is_a_change_and_an_absent_field_stays_absent() {
        let v = value(&event(r#"{"GroupId":"g","Name":""}"#, ""));
        assert_eq!(v["changes"], json!({"name": ""}));
        for absent in [
            "group_type",
            "operator",
            "event_time_ms",
            "client_ip",
            "platform",
            "extra",
        ] {
            assert!(v.get(absent).is_none(), "{absent} should be absent");
        }
    }

    #[test]
    fn the_id_is_stable_for_a_redelivered_body_with_event_time() {
        let body = r#"{"GroupId":"g","Name":"n","EventTime":"1670574414123"}"#;
        let (a, b) = (event(body, ""), event(body, ""));
        assert_eq!(a.id, b.id);
        assert_eq!(a.event_time_ms, Some(1670574414123));
        assert_eq!(a.ce_time(), "2022-12-09T08:26:54.123Z");
        assert_ne!(
            a.id,
            event(r#"{"GroupId":"g","Name":"m","EventTime":"1670574414123"}"#, "").id
        );
    }

    #[test]
    fn custom_entry_members_besides_key_and_value_are_kept_under_custom_members() {
        let v = value(&event(
            r#"{"GroupId":"g","UserDefinedDataList":[
                {"Key":"a","Value":"1","Seq":7,"Tag":{"x":true}},
                {"Key":"b","Value":"2"},
                {"Key":"c","Value":"3","Note":"first"},{"Key":"c","Value":"4"}]}"#,
            "",
        ));
        assert_eq!(v["changes"]["custom"], json!({"a": "1", "b": "2", "c": "4"}));
        assert_eq!(
            v["changes"]["custom_members"],
            json!({"a": {"Seq": 7, "Tag": {"x": true}}})
        );
        let plain = value(&event(
            r#"{"GroupId":"g","UserDefinedDataList":[{"Key":"a","Value":"1"}]}"#,
            "",
        ));
        assert!(plain["changes"].get("custom_members").is_none());
    }

    #[test]
    fn without_event_time_every_event_gets_its_own_id() {
        let body = r#"{"GroupId":"g","Name":"n"}"#;
        assert_ne!(event(body, "").id, event(body, "").id);
    }

    #[test]
    fn unknown_fields_and_unicode_survive_byte_for_byte() {
        let body = r#"{"GroupId":"群🙂","Name":"名字\u0000\n","ShutUpAllMember":"On","Big":123456789012345678901234567890}"#;
        let v = value(&event(body, ""));
        assert_eq!(v["group_id"], "群🙂");
        assert_eq!(v["changes"]["name"], "名字\u{0}\n");
        assert_eq!(
            v["extra"],
            json!({"ShutUpAllMember": "On", "Big": 123456789012345678901234567890u128})
        );
        let text = String::from_utf8(event(body, "").to_json()).unwrap();
        assert!(text.contains("123456789012345678901234567890"), "{text}");
    }
}
