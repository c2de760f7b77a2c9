//! Arbitrary bytes as any callback: the first byte picks a command (every registered one, the
//! before, push and other families, and an unknown one), the rest is the body. Dispatching
//! never panics, a refusal always gives a reason, and every event it accepts becomes a record
//! that says what the route promises: its type, a non-empty key, and a JSON object payload.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tim_relay::delivery::record::Record;
use tim_relay::ingress::body::BodyLimits;
use tim_relay::ingress::callback::CallbackQuery;
use tim_relay::ingress::commands::{self, Class, Dispatched, REGISTRY};
use tim_relay::ingress::event::Origin;

const OTHERS: [&str; 9] = [
    "Group.CallbackBeforeSendMsg",
    "C2C.CallbackBeforeSendMsg",
    "Push.OfflinePush",
    "State.StateChange",
    "C2C.CallbackAfterSendMsg",
    "Sns.CallbackFriendAdd",
    "Alert.RequestOverLimit",
    "Group.CallbackOnDailyGroupQuotaAlarm",
    "Vendor.Unknown",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let index = pick as usize % (REGISTRY.len() + OTHERS.len());
    let name = REGISTRY
        .get(index)
        .map_or_else(|| OTHERS[index - REGISTRY.len()], |c| c.name);
    let query = CallbackQuery::parse("SdkAppid=1400000000&ClientIP=127.0.0.1");
    let origin = Origin {
        sdk_app_id: "1400000000",
        query: &query,
        raw_body: body,
        received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
    };
    let tight = BodyLimits {
        max_custom_fields: 2,
        max_field_bytes: 5,
    };
    for limits in [BodyLimits::default(), tight] {
        let events = match commands::dispatch(name, &origin, limits) {
            Err(e) => {
                assert!(!e.to_string().is_empty(), "an error without a reason: {e:?}");
                continue;
            }
            Ok(Dispatched::Decide) => {
                assert!(
                    commands::find(name).is_none(),
                    "{name} has an event but was decided"
                );
                continue;
            }
            Ok(Dispatched::Publish(events, class)) => {
                match commands::find(name) {
                    Some(command) => {
                        assert_eq!(class, command.class);
                        assert_eq!(events.len(), 1);
                        assert_eq!(events[0].event_type, command.event_type);
                        assert_eq!(events[0].group_id.as_deref(), Some(events[0].key.as_str()));
                    }
                    None => {
                        assert_eq!(class, Class::Other);
                        assert!(!events.is_empty() && events.len() <= 100);
                        assert!(events.iter().all(|e| e.event_type == "tim.webhook"));
                    }
                }
                events
            }
        };
        for event in &events {
            assert!(!event.key.is_empty(), "{name}: an empty key");
            let record = Record::from_event(event, "t");
            assert_eq!(record.key, event.key);
            match serde_json::from_slice(&record.payload) {
                Ok(Value::Object(map)) => assert_eq!(map["type"], event.event_type),
                other => panic!("{name}: payload is not a JSON object: {other:?}"),
            }
            let header = |n: &str| {
                record
                    .headers
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(header("ce_type"), Some(event.event_type));
            assert_eq!(header("ce_id"), Some(event.id.as_str()));
        }
    }
});
