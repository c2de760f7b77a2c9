//! Arbitrary bytes as a `Group.CallbackAfterGroupInfoChanged` body: reading it never panics,
//! under the default bounds and under tight ones, a refusal always gives a reason, and every
//! accepted body becomes an event and a Kafka record that say exactly what the body said. The
//! body is read a second time with plain serde_json as the reference.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tim_relay::delivery::record::Record;
use tim_relay::ingress::body::BodyLimits;
use tim_relay::ingress::event::Event;


#[path = "../../tests/support/group_info_fields.rs"]
mod group_info_fields;
use group_info_fields::{CHANGES, KNOWN, LAST_RFC3339_MS, TOP};

/// `data` as a GroupInfoChanged body (`group_info_fields::event_from`).
fn read(data: &[u8], limits: BodyLimits) -> Result<Event, tim_relay::ingress::body::BodyError> {
    group_info_fields::event_from(
        data,
        "SdkAppid=1400000000&ClientIP=127.0.0.1&OptPlatform=RESTAPI",
        limits,
    )
}

fuzz_target!(|data: &[u8]| {
    let tight = BodyLimits {
        max_custom_fields: 2,
        max_field_bytes: 5,
    };
    if let Err(e) = read(data, tight) {
        assert!(!e.to_string().is_empty(), "an error without a reason: {e:?}");
    }
    let event = match read(data, BodyLimits::default()) {
        Ok(event) => event,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error without a reason: {e:?}");
            return;
        }
    };
    let input: Map<String, Value> = match serde_json::from_slice(data) {
        Ok(Value::Object(map)) => map,
        other => panic!("accepted a body serde_json reads as {other:?}"),
    };
    let group_id = input["GroupId"].as_str().expect("accepted a non-string GroupId");
    assert!(!group_id.is_empty(), "accepted an empty GroupId");

    // Once a panic in `Record::from_event` (ce_time); such times are now refused.
    assert!(
        event.event_time_ms <= Some(LAST_RFC3339_MS),
        "accepted an EventTime past year 9999"
    );
    let record = Record::from_event(&event, "tim.group-changes");

    // Key: the GroupId bytes, from the event and in the record.
    assert_eq!(event.key.as_bytes(), group_id.as_bytes());
    assert_eq!(record.key.as_bytes(), group_id.as_bytes());
    assert_eq!(record.payload, event.to_json());
    let header = |name: &str| {
        record
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("ce_id"), Some(event.id.as_str()));
    assert_eq!(header("ce_subject"), Some(group_id));

    // Bounded output: at worst every byte of input becomes a six-byte `\u00XX` escape.
    assert!(record.payload.len() <= 6 * data.len() + 1024, "payload blew up");

    let payload: Map<String, Value> = match serde_json::from_slice(&record.payload) {
        Ok(Value::Object(map)) => map,
        other => panic!("payload is not a JSON object: {other:?}"),
    };
    assert_eq!(payload["group_id"], Value::String(group_id.into()));
    let changes = payload["changes"].as_object().expect("changes is not an object");

    for (field, member) in CHANGES {
        assert_eq!(
            changes.get(member),
            input.get(field),
            "{field} -> changes.{member}"
        );
    }
    for (field, member) in TOP {
        assert_eq!(payload.get(member), input.get(field), "{field} -> {member}");
    }
    match input.get("UserDefinedDataList") {
        None => assert!(!changes.contains_key("custom")),
        Some(list) => {
            let mut want = BTreeMap::new();
            for entry in list.as_array().expect("accepted a non-array list") {
                let key = entry["Key"].as_str().expect("accepted a non-string Key");
                let value = entry["Value"].as_str().expect("accepted a non-string Value");
                want.insert(key, value); // last value wins
            }
            let got: BTreeMap<&str, &str> = changes["custom"]
                .as_object()
                .expect("custom is not an object")
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().expect("a custom value is not a string")))
                .collect();
            assert_eq!(got, want);
        }
    }

    match input.get("EventTime") {
        None => assert!(!payload.contains_key("event_time_ms")),
        Some(time) => {
            let ms: u64 = match time {
                Value::Number(n) => n.as_u64().expect("accepted a non-u64 EventTime"),
                Value::String(s) => s.parse().expect("accepted a non-digit EventTime"),
                other => panic!("accepted EventTime {other:?}"),
            };
            assert_eq!(event.event_time_ms, Some(ms));
            assert_eq!(payload["event_time_ms"].as_u64(), Some(ms));
            // A re-delivery of the same bytes gets the same id.
            let again = read(data, BodyLimits::default()).expect("accepted again");
            assert_eq!(again.id, event.id);
        }
    }

    // Unknown fields land in `extra`, in their order, numbers as written; absent when none.
    let unknown: Vec<(&String, &Value)> = input
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .collect();
    match payload.get("extra") {
        None => assert!(unknown.is_empty(), "unknown fields lost: {unknown:?}"),
        Some(extra) => {
            let extra: Vec<(&String, &Value)> = extra
                .as_object()
                .expect("extra is not an object")
                .iter()
                .collect();
            assert!(!extra.is_empty(), "extra present but empty");
            assert_eq!(extra, unknown);
        }
    }

    // Nothing the relay writes itself is ever null. What Tencent sent verbatim may be: `extra`,
    // and `changes.custom_members` (members of custom entries besides Key and Value).
    for (k, v) in &payload {
        match (k.as_str(), v) {
            ("extra", _) => {}
            ("changes", Value::Object(changes)) => {
                for (member, value) in changes {
                    if member != "custom_members" {
                        assert!(!contains_null(value), "null in changes.{member}");
                    }
                }
            }
            _ => assert!(!contains_null(v), "null in {k}"),
        }
    }
});

fn contains_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(map) => map.values().any(contains_null),
        _ => false,
    }
}
