//! `Group.CallbackAfterGroupInfoChanged`: a group's profile changed (name, introduction,
//! notification, face, custom fields). Event `tim.group.info_changed`, keyed by GroupId; only
//! the fields present in the callback appear under `changes`, and an empty string is a change.

use super::fields::profile;
use super::{custom, group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterGroupInfoChanged",
    class: Class::GroupState,
    event_type: super::event_types::GROUP_INFO_CHANGED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut changes = Members::new();
    profile(body, &mut changes)?;
    custom(body, &mut changes)?;
    let mut data = Members::new();
    data.insert("changes", changes);
    Ok(group_event(group_id, common, data))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{json, Value};

    use super::*;
    use crate::ingress::body::BodyLimits;
    use crate::ingress::callback::CallbackQuery;
    use crate::ingress::commands::CUSTOM_SHAPE;
    use crate::ingress::event::{Event, Origin};

    fn event(body: &str, query: &str) -> Event {
        try_event(body, query).unwrap()
    }

    fn try_event(body: &str, query: &str) -> Result<Event, BodyError> {
        let query = CallbackQuery::parse(query);
        let origin = Origin {
            sdk_app_id: "1400000000",
            query: &query,
            raw_body: body.as_bytes(),
            received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        COMMAND.event(&origin, BodyLimits::default())
    }

    fn value(e: &Event) -> Value {
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
        assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
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
        assert_eq!(e.key, "@TGS#2J4SZEAEL");
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
    fn wrong_shapes_are_refused_with_the_field_named() {
        for (body, expected) in [
            (r#"{"Name":"n"}"#, BodyError::Missing("GroupId")),
            (r#"{"GroupId":""}"#, BodyError::Empty("GroupId")),
            (r#"{"GroupId":"g","Name":1}"#, BodyError::NotAString("Name")),
            (
                r#"{"GroupId":"g","EventTime":1.5}"#,
                BodyError::BadTime("EventTime"),
            ),
            (
                r#"{"GroupId":"g","UserDefinedDataList":{}}"#,
                BodyError::BadShape("UserDefinedDataList", CUSTOM_SHAPE),
            ),
            (
                r#"{"GroupId":"g","UserDefinedDataList":[{"Key":"k","Value":1}]}"#,
                BodyError::BadShape("UserDefinedDataList", CUSTOM_SHAPE),
            ),
            (
                r#"{"GroupId":"g","UserDefinedDataList":["k"]}"#,
                BodyError::BadShape("UserDefinedDataList", CUSTOM_SHAPE),
            ),
            (
                r#"{"GroupId":"g","CallbackCommand":"Group.CallbackAfterCreateGroup"}"#,
                BodyError::CommandMismatch,
            ),
        ] {
            assert_eq!(try_event(body, "").unwrap_err(), expected, "{body}");
        }
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

    #[test]
    fn event_time_is_accepted_as_number_and_as_string() {
        for body in [
            r#"{"GroupId":"g","EventTime":1670574414123}"#,
            r#"{"GroupId":"g","EventTime":"1670574414123"}"#,
        ] {
            assert_eq!(event(body, "").event_time_ms, Some(1670574414123));
        }
        for bad in [
            r#"{"GroupId":"g","EventTime":-1}"#,
            r#"{"GroupId":"g","EventTime":"12a"}"#,
            r#"{"GroupId":"g","EventTime":253402300800000}"#,
        ] {
            assert_eq!(try_event(bad, "").unwrap_err(), BodyError::BadTime("EventTime"));
        }
    }

    #[test]
    fn lists_and_strings_beyond_the_bounds_are_refused() {
        let limits = BodyLimits {
            max_custom_fields: 2,
            max_field_bytes: 4,
        };
        let query = CallbackQuery::default();
        let bounded = |body: &str| {
            let origin = Origin {
                sdk_app_id: "1",
                query: &query,
                raw_body: body.as_bytes(),
                received_at: UNIX_EPOCH,
            };
            COMMAND.event(&origin, limits)
        };
        let three = r#"{"GroupId":"g","UserDefinedDataList":[{"Key":"a","Value":"1"},{"Key":"b","Value":"2"},{"Key":"c","Value":"3"}]}"#;
        assert_eq!(
            bounded(three).unwrap_err(),
            BodyError::TooManyEntries("UserDefinedDataList", 2)
        );
        assert_eq!(
            bounded(r#"{"GroupId":"g","Name":"12345"}"#).unwrap_err(),
            BodyError::TooLong("Name", 4)
        );
        assert_eq!(
            bounded(r#"{"GroupId":"g","UserDefinedDataList":[{"Key":"a","Value":"12345"}]}"#).unwrap_err(),
            BodyError::TooLong("UserDefinedDataList.Value", 4)
        );
        // The bound counts bytes: four bytes of UTF-8 pass, five do not.
        assert!(bounded("{\"GroupId\":\"🙂\"}").is_ok());
        assert!(bounded("{\"GroupId\":\"🙂a\"}").is_err());
    }

    #[test]
    fn invalid_utf8_is_refused_even_where_the_value_is_not_kept() {
        let query = CallbackQuery::default();
        for body in [
            &b"{\"GroupId\":\"g\",\"UserDefinedDataList\":[{\"Key\":\"k\",\"Value\":\"v\",\"Note\":\"\xff\"}]}"[..],
            b"{\"GroupId\":\"g\",\"Other\":{\"Key\":\"\xff\"}}",
            b"[\"\xff\"]",
        ] {
            let origin = Origin {
                sdk_app_id: "1",
                query: &query,
                raw_body: body,
                received_at: UNIX_EPOCH,
            };
            assert!(matches!(
                COMMAND.event(&origin, BodyLimits::default()),
                Err(BodyError::NotJson(_))
            ));
        }
    }
}
