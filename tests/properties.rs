//! Properties of the change event that hold for every accepted callback body, checked on
//! generated bodies with proptest (no Kafka needed). Bodies are built with serde_json, so they
//! are valid JSON, and the event is checked through its published JSON payload.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};
use tim_relay::delivery::record::Record;
use tim_relay::ingress::body::{BodyError, BodyLimits};
use tim_relay::ingress::callback::CallbackQuery;
use tim_relay::ingress::commands;
use tim_relay::ingress::event::{Event, Origin};

const APP_ID: &str = "1400000000";

#[path = "support/group_info_fields.rs"]
mod group_info_fields;
use group_info_fields::{CHANGES, KNOWN, LAST_RFC3339_MS};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Edge cases live in the strategies; nothing is written next to the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any Unicode text: proptest's printable strings, any `char` including controls and astral
/// ones, and hand-picked troublemakers.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        vec(any::<char>(), 0..12).prop_map(String::from_iter),
        Just(String::new()),
        Just("\u{0}\u{1}\u{8}\t\n\u{c}\r\u{1b}\u{1f}\u{7f}\u{80}\u{9f}".to_string()),
        Just("\"\\\"\\\\/\\u0000'".to_string()),
        Just("🙂𝄞\u{10FFFF}\u{1F600}群".to_string()),
        Just("\u{2028}\u{2029}\u{FEFF}\u{200B}\u{202E}".to_string()),
        "[\"\\\\\\x00-\\x1f ]{1,8}",
    ]
}

fn group_id() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("@TGS#2J4SZEAEL".to_string()),
        text().prop_filter("GroupId is never empty", |s| !s.is_empty())
    ]
}

/// `EventTime` as Tencent sends it: a JSON number or a string of digits (leading zeros too).
fn event_time(ms: impl Strategy<Value = u64>) -> impl Strategy<Value = (u64, Value)> {
    (ms, any::<bool>(), 0usize..3).prop_map(|(ms, as_string, zeros)| {
        let value = if as_string {
            Value::String(format!("{}{ms}", "0".repeat(zeros)))
        } else {
            Value::from(ms)
        };
        (ms, value)
    })
}

fn writable_ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1_670_574_414_123),
        Just(LAST_RFC3339_MS),
        0..=LAST_RFC3339_MS
    ]
}

/// Numbers as written on the wire: integers past 64 bits, decimals with trailing zeros, exponents.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("2.50".to_string()),
        Just("-0".to_string()),
        Just("1E400".to_string()),
        "-?[1-9][0-9]{19,40}",
        "-?(0|[1-9][0-9]{0,6})\\.[0-9]{1,6}",
        "-?(0|[1-9][0-9]{0,3})(\\.[0-9]{1,3})?[eE][+-]?[0-9]{1,3}",
    ]
}

fn number(text: &str) -> Value {
    Value::Number(serde_json::from_str::<Number>(text).expect("a valid JSON number"))
}

fn json_value(with_null: bool) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        number_text().prop_map(|t| number(&t)),
        text().prop_map(Value::String),
    ];
    let leaf = if with_null {
        prop_oneof![1 => Just(Value::Null), 6 => leaf].boxed()
    } else {
        leaf.boxed()
    };
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((text(), inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn unknown_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ShutUpAllMember".to_string()),
        "[A-Za-z_][A-Za-z0-9_]{0,12}",
        text(),
    ]
    .prop_filter("not a field this version knows", |n| !KNOWN.contains(&n.as_str()))
}

/// Unknown top-level fields, deduplicated the way a JSON object is (first position, last value).
fn unknown_fields(with_null: bool) -> impl Strategy<Value = Map<String, Value>> {
    vec((unknown_name(), json_value(with_null)), 0..5).prop_map(|kv| kv.into_iter().collect())
}

fn custom_pairs(max: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    // Few distinct short keys, so repeats are common.
    let key = prop_oneof![3 => "[abc]{0,2}", 1 => text()];
    vec((key, text()), 0..=max)
}

fn custom_list(pairs: &[(String, String)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
        .collect()
}

fn try_event_from(body: &[u8], query: &str, limits: BodyLimits) -> Result<Event, BodyError> {
    group_info_fields::event_from(body, query, limits)
}

fn event_from(body: &[u8], query: &str) -> Event {
    try_event_from(body, query, BodyLimits::default()).expect("a well-formed body is accepted")
}

fn event(body: &Map<String, Value>) -> Event {
    event_from(&serde_json::to_vec(body).unwrap(), "SdkAppid=1400000000")
}

/// The event as consumers see it: its JSON payload read back.
fn published(event: &Event) -> Map<String, Value> {
    match serde_json::from_slice(&event.to_json()) {
        Ok(Value::Object(map)) => map,
        other => panic!("the payload is not a JSON object: {other:?}"),
    }
}

fn with_group_id(group_id: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert(
        "CallbackCommand".into(),
        "Group.CallbackAfterGroupInfoChanged".into(),
    );
    body.insert("GroupId".into(), group_id.into());
    body
}

fn contains_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(map) => map.values().any(contains_null),
        _ => false,
    }
}

fn uuid_version(id: &str) -> char {
    assert_eq!(id.len(), 36, "not a hyphenated UUID: {id}");
    id.as_bytes()[14] as char
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_known_string_field_reaches_changes_byte_for_byte(
        group_id in group_id(),
        values in [weighted(0.7, text()), weighted(0.7, text()), weighted(0.7, text()), weighted(0.7, text())],
    ) {
        let mut body = with_group_id(&group_id);
        for ((field, _), value) in CHANGES.iter().zip(&values) {
            if let Some(v) = value {
                body.insert(field.to_string(), v.as_str().into());
            }
        }
        let e = event(&body);
        let changes = published(&e)["changes"].clone();
        for ((field, member), value) in CHANGES.iter().zip(&values) {
            match value {
                Some(v) => {
                    let got = changes[member].as_str().unwrap_or_else(|| panic!("{field} missing from changes"));
                    prop_assert_eq!(got.as_bytes(), v.as_bytes(), "{} -> changes.{}", field, member);
                }
                None => prop_assert!(changes.get(member).is_none(), "{} absent but changes.{} present", field, member),
            }
        }
    }

    #[test]
    fn an_absent_field_stays_absent_and_nothing_is_null(
        group_id in group_id(),
        strings in [weighted(0.5, text()), weighted(0.5, text()), weighted(0.5, text()),
                    weighted(0.5, text()), weighted(0.5, text()), weighted(0.5, text())],
        custom in weighted(0.5, custom_pairs(8)),
        time in weighted(0.5, event_time(writable_ms())),
        client_ip in weighted(0.5, "[0-9.:a-f]{1,39}"),
        platform in weighted(0.5, text()),
        unknown in unknown_fields(false),
    ) {
        // (body field, where it lands: top level or inside `changes`, under which name)
        let fields = [
            ("Type", false, "group_type"),
            ("Operator_Account", false, "operator"),
            ("Name", true, "name"),
            ("Introduction", true, "introduction"),
            ("Notification", true, "notification"),
            ("FaceUrl", true, "face_url"),
        ];
        let mut body = with_group_id(&group_id);
        for ((field, _, _), value) in fields.iter().zip(&strings) {
            if let Some(v) = value {
                body.insert(field.to_string(), v.as_str().into());
            }
        }
        if let Some(pairs) = &custom {
            body.insert("UserDefinedDataList".into(), custom_list(pairs));
        }
        if let Some((_, t)) = &time {
            body.insert("EventTime".into(), t.clone());
        }
        body.extend(unknown.clone());
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("SdkAppid", APP_ID);
        if let Some(ip) = &client_ip {
            query.append_pair("ClientIP", ip);
        }
        if let Some(p) = &platform {
            query.append_pair("OptPlatform", p);
        }
        let e = event_from(&serde_json::to_vec(&body).unwrap(), &query.finish());
        let v = published(&e);
        let changes = v["changes"].as_object().expect("changes is always an object");

        for ((field, in_changes, member), value) in fields.iter().zip(&strings) {
            let place = if *in_changes { changes } else { &v };
            prop_assert_eq!(place.contains_key(*member), value.is_some(), "{} -> {}", field, member);
        }
        prop_assert_eq!(changes.contains_key("custom"), custom.is_some());
        prop_assert_eq!(v.contains_key("event_time_ms"), time.is_some());
        prop_assert_eq!(v.contains_key("client_ip"), client_ip.is_some());
        prop_assert_eq!(v.contains_key("platform"), platform.is_some());
        prop_assert_eq!(v.contains_key("extra"), !unknown.is_empty());
        let nulls: Vec<&String> = v.iter().filter(|(_, x)| contains_null(x)).map(|(k, _)| k).collect();
        prop_assert!(nulls.is_empty(), "null under {:?}", nulls);
    }

    #[test]
    fn unknown_top_level_fields_land_in_extra_unchanged(
        group_id in group_id(),
        before in unknown_fields(true),
        after in unknown_fields(true),
        name in weighted(0.5, text()),
    ) {
        // Unknown fields on both sides of the known ones: their order must survive too.
        let mut body = before.clone();
        for (k, v) in with_group_id(&group_id) {
            body.shift_remove(&k);
            body.insert(k, v);
        }
        if let Some(n) = &name {
            body.shift_remove("Name");
            body.insert("Name".into(), n.as_str().into());
        }
        for (k, v) in &after {
            body.shift_remove(k);
            body.insert(k.clone(), v.clone());
        }
        let expected: Vec<(&String, &Value)> =
            body.iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())).collect();

        let raw = serde_json::to_vec(&body).unwrap();
        let e = event_from(&raw, "SdkAppid=1400000000");
        let payload = e.to_json();
        let v = published(&e);
        if expected.is_empty() {
            prop_assert!(!v.contains_key("extra"));
        } else {
            let extra: Vec<(&String, &Value)> = v["extra"].as_object().expect("extra is an object").iter().collect();
            prop_assert_eq!(extra.len(), expected.len());
            for ((got_k, got_v), (want_k, want_v)) in extra.iter().zip(&expected) {
                prop_assert_eq!(got_k, want_k);
                // Textually: numbers keep their exact digits (2.50 stays 2.50, big integers whole).
                let (got, want) = (serde_json::to_string(got_v).unwrap(), serde_json::to_string(want_v).unwrap());
                prop_assert_eq!(&got, &want);
                let payload_text = String::from_utf8_lossy(&payload);
                prop_assert!(payload_text.contains(&want), "{} not verbatim in the payload", want);
            }
        }
    }

    #[test]
    fn the_kafka_key_is_always_the_group_id_bytes(
        group_id in group_id(),
        time in weighted(0.5, event_time(writable_ms())),
    ) {
        let mut body = with_group_id(&group_id);
        if let Some((_, t)) = time {
            body.insert("EventTime".into(), t);
        }
        let e = event(&body);
        prop_assert_eq!(e.key.as_bytes(), group_id.as_bytes());
        let record = Record::from_event(&e, "tim.group-changes");
        prop_assert_eq!(record.key.as_bytes(), group_id.as_bytes());
        let payload = published(&e);
        prop_assert_eq!(payload["group_id"].as_str(), Some(group_id.as_str()));
    }

    #[test]
    fn the_id_is_stable_for_a_redelivered_body_with_event_time(
        group_id in group_id(),
        name in weighted(0.5, text()),
        (ms, time) in event_time(writable_ms()),
    ) {
        let mut body = with_group_id(&group_id);
        if let Some(n) = name {
            body.insert("Name".into(), n.into());
        }
        body.insert("EventTime".into(), time);
        let (a, b) = (event(&body), event(&body));
        prop_assert_eq!(&a.id, &b.id);
        prop_assert_eq!(uuid_version(&a.id), '5');
        prop_assert_eq!(a.event_time_ms, Some(ms));
    }

    #[test]
    fn different_bodies_with_event_time_get_different_ids(
        (g1, g2) in (group_id(), group_id()),
        (n1, n2) in (text(), text()),
        ((_, t1), (_, t2)) in (event_time(writable_ms()), event_time(writable_ms())),
    ) {
        let body = |g: &str, n: &str, t: &Value| {
            let mut b = with_group_id(g);
            b.insert("Name".into(), n.into());
            b.insert("EventTime".into(), t.clone());
            serde_json::to_vec(&b).unwrap()
        };
        let (raw1, raw2) = (body(&g1, &n1, &t1), body(&g2, &n2, &t2));
        prop_assume!(raw1 != raw2);
        prop_assert_ne!(event_from(&raw1, "").id, event_from(&raw2, "").id);
    }

    #[test]
    fn without_event_time_every_event_gets_a_new_id(group_id in group_id(), name in weighted(0.5, text())) {
        let mut body = with_group_id(&group_id);
        if let Some(n) = name {
            body.insert("Name".into(), n.into());
        }
        let (a, b) = (event(&body), event(&body));
        prop_assert_ne!(&a.id, &b.id);
        prop_assert_eq!(uuid_version(&a.id), '4');
    }

    #[test]
    fn the_custom_map_holds_exactly_the_listed_pairs_last_value_winning(
        group_id in group_id(),
        // Up to the default limit of 64 entries.
        pairs in custom_pairs(64),
    ) {
        let mut body = with_group_id(&group_id);
        body.insert("UserDefinedDataList".into(), custom_list(&pairs));
        let e = event(&body);
        let want: BTreeMap<&str, &str> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let v = published(&e);
        let custom = v["changes"]["custom"].as_object().expect("custom is an object when the list is sent");
        let got: BTreeMap<&str, &str> = custom
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().expect("custom values are strings")))
            .collect();
        prop_assert_eq!(custom.len(), want.len());
        prop_assert_eq!(got, want);
    }
}

proptest! {
    #![proptest_config(config())]

    /// Found by the `body_event` fuzz target: an `EventTime` past year 9999 has no RFC 3339
    /// form for `ce_time`, and once made the record builder panic. Such bodies are refused.
    #[test]
    fn an_event_time_past_year_9999_is_refused_not_a_panic(
        (_, time) in event_time(prop_oneof![Just(LAST_RFC3339_MS + 1), Just(u64::MAX), LAST_RFC3339_MS + 1..=u64::MAX]),
    ) {
        let mut body = with_group_id("g");
        body.insert("EventTime".into(), time);
        let raw = serde_json::to_vec(&Value::Object(body)).unwrap();
        prop_assert_eq!(
            try_event_from(&raw, "", BodyLimits::default()).map(|e| e.id),
            Err(BodyError::BadTime("EventTime"))
        );
    }
}

/// A member value: often the right shape, often not.
fn member_value(name: &str) -> BoxedStrategy<Value> {
    let any_value = json_value(true);
    match name {
        "UserDefinedDataList" => {
            let member = prop_oneof![
                Just("Key".to_string()),
                Just("Value".to_string()),
                Just("Note".to_string())
            ];
            let entry = prop_oneof![
                4 => vec((member, prop_oneof![3 => "[a-z]{0,8}".prop_map(Value::String), 1 => json_value(true)]), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                1 => json_value(true),
            ];
            prop_oneof![4 => vec(entry, 0..6).prop_map(Value::Array), 1 => any_value].boxed()
        }
        "EventTime" => prop_oneof![
            event_time(writable_ms()).prop_map(|(_, v)| v),
            (0..u64::MAX).prop_map(|n| Value::String(n.to_string())),
            any_value,
        ]
        .boxed(),
        _ => prop_oneof![3 => "[a-z🙂]{0,8}".prop_map(Value::String), 1 => any_value].boxed(),
    }
}

/// A body as raw members, so a name can repeat (a `Map` cannot say that), then written out by
/// hand; sometimes cut short, so it is not even JSON.
fn raw_body() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        3 => proptest::sample::select(KNOWN.to_vec()).prop_map(str::to_string),
        1 => unknown_name(),
    ];
    let members = vec(name.prop_flat_map(|n| (Just(n.clone()), member_value(&n))), 0..10);
    (members, weighted(0.1, any::<prop::sample::Index>())).prop_map(|(members, cut)| {
        let text: Vec<String> = members
            .iter()
            .map(|(n, v)| format!("{}:{}", Value::String(n.clone()), v))
            .collect();
        let mut raw = format!("{{{}}}", text.join(",")).into_bytes();
        if let Some(cut) = cut {
            raw.truncate(cut.index(raw.len()));
        }
        raw
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..config() })]

    /// Any body, well-formed or not, cut short or not, under the default bounds and tight
    /// ones: the reader either accepts it, with every known field where it belongs, or refuses
    /// it with a reason; it never panics. Accepted bodies keep every unknown member in `extra`.
    #[test]
    fn any_body_is_accepted_whole_or_refused_with_a_reason(raw in raw_body()) {
        let tight = BodyLimits { max_custom_fields: 3, max_field_bytes: 6 };
        for limits in [BodyLimits::default(), tight] {
            match try_event_from(&raw, "", limits) {
                Err(e) => prop_assert!(!e.to_string().is_empty()),
                Ok(event) => {
                    let input: Map<String, Value> = serde_json::from_slice(&raw).expect("accepted JSON");
                    prop_assert_eq!(Some(&Value::String(event.key.clone())), input.get("GroupId"));
                    let unknown: Map<String, Value> = input
                        .into_iter()
                        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
                        .collect();
                    prop_assert_eq!(&event.extra, &unknown, "body {}", String::from_utf8_lossy(&raw));
                }
            }
        }
    }
}

/// Names no command reads in any body: unknown to every command file.
fn unread_name() -> impl Strategy<Value = String> {
    "X_[A-Za-z0-9_]{1,10}"
}

proptest! {
    #![proptest_config(config())]

    /// Every registered command, given its GroupId and fields no command reads: one event of
    /// its type, keyed by the GroupId, with every unread field in `extra`, verbatim and in order.
    #[test]
    fn every_registered_command_keeps_what_it_does_not_read_in_extra(
        index in 0..commands::REGISTRY.len(),
        group_id in group_id(),
        unread in vec((unread_name(), json_value(true)), 0..6),
    ) {
        let command = &commands::REGISTRY[index];
        let mut body = Map::new();
        body.insert("GroupId".into(), group_id.clone().into());
        // Fields some commands require besides GroupId.
        for (field, value) in [("NewOwner_Account", "o"), ("Member_Account", "m"), ("TopicId", "t")] {
            body.insert(field.into(), value.into());
        }
        body.extend(unread.iter().cloned());
        let raw = serde_json::to_vec(&body).unwrap();
        let query = CallbackQuery::parse("SdkAppid=1400000000");
        let origin = Origin { sdk_app_id: APP_ID, query: &query, raw_body: &raw, received_at: UNIX_EPOCH };
        let Ok(commands::Dispatched::Publish(events, class)) = commands::dispatch(command.name, &origin, BodyLimits::default()) else {
            panic!("{} refused {}", command.name, String::from_utf8_lossy(&raw));
        };
        prop_assert_eq!(class, command.class);
        prop_assert_eq!(events.len(), 1);
        let event = &events[0];
        prop_assert_eq!(event.event_type, command.event_type);
        prop_assert_eq!(&event.key, &group_id);
        // The fields a command does not read (the required extras above, for commands that do
        // not read them) are kept too; only the generated ones are compared here.
        let extra: Vec<(&String, &Value)> = event.extra.iter().filter(|(k, _)| k.starts_with("X_")).collect();
        let mut want: Vec<(&String, &Value)> = Vec::new();
        for (k, v) in &unread {
            // A repeated name keeps its first position and its last value, like a JSON object.
            match want.iter().position(|(n, _)| *n == k) {
                Some(i) => want[i].1 = v,
                None => want.push((k, v)),
            }
        }
        prop_assert_eq!(extra, want);
        let published: Value = serde_json::from_slice(&event.to_json()).unwrap();
        prop_assert_eq!(&published["type"], command.event_type);
    }

    /// Any command the relay has no file for is published verbatim as `tim.webhook` with a
    /// non-empty key, or refused with a reason; never half read.
    #[test]
    fn an_unknown_command_is_published_verbatim_or_refused(
        family in proptest::sample::select(vec!["State", "Profile", "Sns", "C2C", "Bot", "Alert", "Follow", "Vendor"]),
        suffix in "[A-Za-z]{1,12}",
        fields in vec((prop_oneof![Just("From_Account".to_string()), Just("To_Account".to_string()), Just("GroupId".to_string()), unread_name()], json_value(true)), 0..6),
    ) {
        let name = format!("{family}.After{suffix}");
        let body: Map<String, Value> = fields.into_iter().collect();
        let raw = serde_json::to_vec(&body).unwrap();
        let query = CallbackQuery::parse("SdkAppid=1400000000");
        let origin = Origin { sdk_app_id: APP_ID, query: &query, raw_body: &raw, received_at: UNIX_EPOCH };
        match commands::dispatch(&name, &origin, BodyLimits::default()) {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(commands::Dispatched::Decide) => prop_assert!(false, "{} decided", name),
            Ok(commands::Dispatched::Publish(events, class)) => {
                prop_assert_eq!(class, commands::Class::Other);
                prop_assert_eq!(events.len(), 1);
                prop_assert_eq!(events[0].event_type, "tim.webhook");
                prop_assert!(!events[0].key.is_empty());
                prop_assert_eq!(&events[0].data["body"], &Value::Object(body));
            }
        }
    }
}
