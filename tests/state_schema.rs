//! The state document (`tim_relay::state::fold::GroupState`, the value of each record in the state
//! topic) against its documented JSON Schema, `docs/state/group-state.schema.json`.
//!
//! Real documents are folded from representative event histories and validated whole, nested
//! maps included, by the `jsonschema` crate (Draft 2020-12, formats checked). No broker needed.

use serde_json::{json, Map, Value};
use tim_relay::state::fold::{FoldRules, Group, InEvent, STATE_SCHEMA_VERSION};

fn schema() -> Value {
    let path = format!(
        "{}/docs/state/group-state.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// Where `doc` breaks the schema (JSON Schema Draft 2020-12, at every level, `format` checked
/// rather than only annotated), as "path: why" lines; empty when it conforms.
fn violations(schema: &Value, doc: &Value) -> Vec<String> {
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("not a valid 2020-12 schema: {e}"));
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// An event as the relay writes it to KAFKA_TOPIC: the envelope, then the command's fields.
fn ev(id: &str, group_type: &str, kind: &str, time: Option<u64>, data: Value) -> InEvent {
    let mut body = json!({"id": id, "type": format!("tim.group.{kind}"), "schema_version": 1,
        "sdk_app_id": "1400000000", "group_id": "@TGS#2J4SZEAEL", "group_type": group_type,
        "received_at": "2026-03-01T08:00:00.000Z"});
    if let Some(t) = time {
        body["event_time_ms"] = json!(t);
    }
    for (k, v) in data.as_object().unwrap() {
        body[k] = v.clone();
    }
    InEvent::parse(&serde_json::to_vec(&body).unwrap()).expect("a relay event")
}

/// The document the events fold to, serialized as the materializer writes it.
fn document(events: &[InEvent], rules: FoldRules) -> Value {
    let mut group = Group::default();
    for e in events {
        group.apply(e, rules);
    }
    let doc = group.doc.expect("a live group");
    serde_json::from_slice(&serde_json::to_vec(&doc).unwrap()).unwrap()
}

const T: u64 = 1_772_352_000_000;

/// Representative histories: a created group with members, custom fields and attributes; an
/// AVChatRoom; a group beyond the member limit; incomplete groups (one with a negative count);
/// a group in its next life.
fn documents() -> Vec<(&'static str, Value)> {
    let rules = FoldRules::default();
    let full = document(
        &[
            ev(
                "1",
                "Public",
                "created",
                Some(T),
                json!({"owner": "leckie", "name": "hikers", "introduction": "we walk",
                    "notification": "sunday 9:00", "face_url": "https://example.com/f.png",
                    "members": ["leckie", "bob", "peter"], "custom": {"level": "3"}}),
            ),
            ev(
                "2",
                "Public",
                "member_joined",
                Some(T + 1),
                json!({"members": ["jared"]}),
            ),
            ev(
                "3",
                "Public",
                "member_exited",
                Some(T + 2),
                json!({"members": ["peter"]}),
            ),
            ev(
                "4",
                "Public",
                "member_changed",
                Some(T + 3),
                json!({"member": "bob", "role": "Admin", "name_card": "Bob"}),
            ),
            ev(
                "5",
                "Public",
                "info_changed",
                Some(T + 4),
                json!({"changes": {"name": "hikers club", "custom": {"level": "4", "city": "Oslo"}}}),
            ),
            ev(
                "6",
                "Public",
                "attr_changed",
                Some(T + 5),
                json!({"option_type": "set", "attrs": {"color": "red", "size": "L"}}),
            ),
            ev(
                "7",
                "Public",
                "attr_changed",
                Some(T + 6),
                json!({"option_type": "delete", "attrs": {"size": null}}),
            ),
            ev(
                "8",
                "Public",
                "owner_changed",
                Some(T + 7),
                json!({"new_owner": "bob"}),
            ),
            // Without event_time_ms: applied in topic order, no time recorded.
            ev(
                "9",
                "Public",
                "member_joined",
                None,
                json!({"members": ["tommy"]}),
            ),
        ],
        rules,
    );
    let av_chat_room = document(
        &[
            ev(
                "1",
                "AVChatRoom",
                "created",
                Some(T),
                json!({"owner": "host", "name": "live", "members": ["host"]}),
            ),
            ev(
                "2",
                "AVChatRoom",
                "member_joined",
                Some(T + 1),
                json!({"members": ["a", "b", "c"]}),
            ),
            ev(
                "3",
                "AVChatRoom",
                "member_exited",
                Some(T + 2),
                json!({"members": ["a"]}),
            ),
        ],
        rules,
    );
    let beyond_limit = document(
        &[
            ev(
                "1",
                "Public",
                "created",
                Some(T),
                json!({"name": "big", "members": ["a", "b"]}),
            ),
            ev(
                "2",
                "Public",
                "member_changed",
                Some(T + 1),
                json!({"member": "a", "role": "Admin"}),
            ),
            ev(
                "3",
                "Public",
                "member_joined",
                Some(T + 2),
                json!({"members": ["c", "d", "e"]}),
            ),
            ev(
                "4",
                "Public",
                "member_exited",
                Some(T + 3),
                json!({"members": ["b"]}),
            ),
        ],
        FoldRules {
            max_members: 3,
            recent_ids: 16,
        },
    );
    // First seen after it was created: only what changed since is known.
    let incomplete = document(
        &[
            ev(
                "1",
                "Work",
                "member_exited",
                Some(T),
                json!({"members": ["x", "y"]}),
            ),
            ev(
                "2",
                "Work",
                "member_joined",
                Some(T + 1),
                json!({"members": ["z"]}),
            ),
            ev(
                "3",
                "Work",
                "info_changed",
                Some(T + 2),
                json!({"changes": {"notification": "moved"}}),
            ),
        ],
        rules,
    );
    // Untracked and first seen through exits: the count goes negative.
    let incomplete_av_chat_room = document(
        &[
            ev(
                "1",
                "AVChatRoom",
                "member_exited",
                Some(T),
                json!({"members": ["a", "b"]}),
            ),
            ev(
                "2",
                "AVChatRoom",
                "member_joined",
                Some(T + 1),
                json!({"members": ["c"]}),
            ),
        ],
        rules,
    );
    let next_life = document(
        &[
            ev(
                "1",
                "Public",
                "created",
                Some(T),
                json!({"name": "old", "members": ["x"]}),
            ),
            ev("2", "Public", "destroyed", Some(T + 1), json!({})),
            ev(
                "3",
                "Public",
                "created",
                Some(T + 2),
                json!({"name": "new", "members": ["y"]}),
            ),
            ev(
                "4",
                "Public",
                "attr_changed",
                Some(T + 3),
                json!({"option_type": "clear"}),
            ),
        ],
        rules,
    );
    // Reconciled: a membership change, then Tencent's whole group at T + 10, then a newer one.
    type Change<'a> = (&'a str, Value);
    let reconciled_history = |group_type: &str, first: Change, snapshot: Value, last: Change| {
        let mut snapshot = snapshot;
        snapshot["snapshot_at_ms"] = json!(T + 10);
        let events = [
            ev("1", group_type, first.0, Some(T), first.1),
            ev("2", group_type, "snapshot", None, snapshot),
            ev("3", group_type, last.0, Some(T + 11), last.1),
        ];
        document(&events, rules)
    };
    let (joined, exited) = ("member_joined", "member_exited");
    let reconciled = reconciled_history(
        "Public",
        (joined, json!({"members": ["gone", "kept"]})),
        snapshot_body(),
        (exited, json!({"members": ["kept"]})),
    );
    let room = json!({"name": "live", "owner": "host", "custom": {}, "attrs": {}, "member_num": 250});
    let reconciled_av_chat_room = reconciled_history(
        "AVChatRoom",
        (exited, json!({"members": ["a", "b"]})),
        room,
        (joined, json!({"members": ["c"]})),
    );
    assert_eq!(reconciled["complete"], true);
    assert_eq!(
        reconciled["members"]["owner"],
        json!({"role": "Owner", "name_card": "Boss"})
    );
    assert_eq!(reconciled["member_count"], 2);
    assert_eq!(reconciled["field_times"]["members_listed"], T + 10);
    assert_eq!(reconciled_av_chat_room["member_count"], 251);
    assert_eq!(reconciled_av_chat_room["field_times"]["member_count"], T + 10);
    // The histories cover what they are meant to.
    assert_eq!(
        full["members"]["bob"],
        json!({"role": "Admin", "name_card": "Bob"})
    );
    assert_eq!(av_chat_room["members_tracked"], false);
    assert_eq!(av_chat_room["member_count"], 3);
    assert_eq!(beyond_limit["members_tracked"], false);
    assert_eq!(incomplete["complete"], false);
    assert_eq!(incomplete["member_count"], 1);
    assert_eq!(incomplete_av_chat_room["complete"], false);
    assert_eq!(incomplete_av_chat_room["member_count"], -1);
    assert_eq!(next_life["field_times"]["destroyed"], T + 1);
    vec![
        ("created, members, custom, attrs", full),
        ("AVChatRoom", av_chat_room),
        ("beyond RELAY_STATE_MAX_MEMBERS", beyond_limit),
        ("incomplete", incomplete),
        ("incomplete AVChatRoom", incomplete_av_chat_room),
        ("next life after a destruction", next_life),
        ("reconciled by a snapshot", reconciled),
        ("AVChatRoom reconciled by a snapshot", reconciled_av_chat_room),
    ]
}

/// The body of a tim.group.snapshot as `tim-relay reconcile` publishes it (without its stamp).
fn snapshot_body() -> Value {
    json!({"source": "reconciler", "name": "hikers", "introduction": "we walk",
        "notification": "sunday 9:00", "face_url": "https://example.com/f.png", "owner": "owner",
        "custom": {"level": "3"}, "attrs": {"color": "red"},
        "members": [{"account": "owner", "role": "Owner", "name_card": "Boss"},
            {"account": "kept", "role": "Admin"}, {"account": "new", "role": "Member"}],
        "member_num": 3, "members_complete": true})
}

/// A snapshot event conforms to its documented schema (`docs/events/tim.group.snapshot.schema.json`),
/// and the schema rejects what a snapshot must not be.
#[test]
fn the_snapshot_event_conforms_to_its_schema() {
    let path = format!(
        "{}/docs/events/tim.group.snapshot.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    let mut event = json!({"id": "0b3c5a4e-9d7f-4f8e-8a51-6c2f0e1d9b77", "type": "tim.group.snapshot",
        "schema_version": 1, "sdk_app_id": "1400000000", "group_id": "@TGS#2J4SZEAEL",
        "group_type": "Public", "received_at": "2026-03-01T08:00:10.250Z", "snapshot_at_ms": T});
    for (k, v) in snapshot_body().as_object().unwrap() {
        event[k] = v.clone();
    }
    assert_eq!(violations(&schema, &event), Vec::<String>::new());
    let parsed = InEvent::parse(&serde_json::to_vec(&event).unwrap()).expect("the fold reads it");
    assert_eq!(parsed.time, Some(T));
    for (field, bad) in [
        ("source", json!("callback")),
        ("snapshot_at_ms", json!(-1)),
        ("members", json!([{"account": "x", "role": "Boss"}])),
        ("event_time_ms", json!(T)),
    ] {
        let mut broken = event.clone();
        broken[field] = bad;
        assert!(
            !violations(&schema, &broken).is_empty(),
            "{field} should break the schema"
        );
    }
}

#[test]
fn folded_documents_conform_to_the_documented_schema() {
    let schema = schema();
    assert_eq!(
        schema["properties"]["schema_version"]["const"], STATE_SCHEMA_VERSION,
        "the schema documents the version the fold writes"
    );
    for (name, doc) in documents() {
        let broken = violations(&schema, &doc);
        assert!(broken.is_empty(), "{name}: {broken:#?}\n{doc:#}");
        // Stricter than `date-time`: what the fold writes, UTC with milliseconds.
        let at = doc["updated_at"].as_str().expect("updated_at");
        let parsed = humantime::parse_rfc3339(at).unwrap_or_else(|e| panic!("{name}: {at:?}: {e}"));
        assert_eq!(
            humantime::format_rfc3339_millis(parsed).to_string(),
            at,
            "{name}: updated_at is not RFC 3339 UTC with milliseconds"
        );
    }
}

/// Every property the schema documents (nested ones too) is one the fold really writes, so a
/// misspelt optional property cannot pass unnoticed, and every one has a description.
#[test]
fn every_documented_property_is_written_and_described() {
    fn documented(schema: &Value, path: &str, out: &mut Vec<String>) {
        let Some(object) = schema.as_object() else {
            return;
        };
        if let Some(properties) = object.get("properties").and_then(Value::as_object) {
            for (name, sub) in properties {
                let p = format!("{path}.{name}");
                assert!(
                    sub.get("description")
                        .and_then(Value::as_str)
                        .is_some_and(|d| !d.is_empty()),
                    "{p} has no description"
                );
                out.push(p.clone());
                documented(sub, &p, out);
            }
        }
        if let Some(items) = object.get("additionalProperties").filter(|a| a.is_object()) {
            documented(items, &format!("{path}[*]"), out);
        }
    }
    fn written(value: &Value, path: &str, maps: &[&str], out: &mut Vec<String>) {
        let Some(object) = value.as_object() else {
            return;
        };
        let keyed_by_data = maps.contains(&path);
        for (name, v) in object {
            let p = if keyed_by_data {
                format!("{path}[*]")
            } else {
                let p = format!("{path}.{name}");
                out.push(p.clone());
                p
            };
            written(v, &p, maps, out);
        }
    }
    let mut properties = Vec::new();
    documented(&schema(), "$", &mut properties);
    // The maps keyed by data (accounts, custom keys, attribute keys).
    let maps = [
        "$.custom",
        "$.attrs",
        "$.members",
        "$.field_times.custom",
        "$.field_times.attrs",
        "$.field_times.members",
    ];
    let mut seen = Vec::new();
    for (_, doc) in documents() {
        written(&doc, "$", &maps, &mut seen);
    }
    for p in &properties {
        assert!(
            seen.contains(p),
            "{p} is documented but no folded document has it"
        );
    }
}

#[test]
fn the_schema_rejects_documents_the_fold_never_writes() {
    let schema = schema();
    let (_, good) = documents().swap_remove(0);
    assert!(violations(&schema, &good).is_empty());
    let tracked_av = {
        let (_, mut d) = documents().swap_remove(1);
        d["members"] = json!({"a": {}});
        d
    };
    let broken: Vec<(&str, Value)> = vec![
        (
            "member_count as a string",
            with(&good, &["member_count"], json!("3")),
        ),
        ("complete as a number", with(&good, &["complete"], json!(1))),
        (
            "a custom value that is not a string",
            with(&good, &["custom", "level"], json!(4)),
        ),
        (
            "a role that is not a string",
            with(&good, &["members", "bob", "role"], json!(true)),
        ),
        (
            "a negative field time",
            with(&good, &["field_times", "name"], json!(-1)),
        ),
        (
            "a member time that is not an integer",
            with(&good, &["field_times", "members", "bob", "presence"], json!("x")),
        ),
        (
            "an undocumented property",
            with(&good, &["members_total"], json!(3)),
        ),
        (
            "an undocumented member property",
            with(&good, &["members", "bob", "nick"], json!("b")),
        ),
        (
            "another schema version",
            with(&good, &["schema_version"], json!(2)),
        ),
        (
            "updated_at that is not a time",
            with(&good, &["updated_at"], json!("yesterday")),
        ),
        ("members listed while untracked", tracked_av),
        (
            "a reason while tracked",
            with(&good, &["members_untracked_reason"], json!("why not")),
        ),
        ("field_times missing", without(&good, "field_times")),
    ];
    for (name, doc) in broken {
        assert!(
            !violations(&schema, &doc).is_empty(),
            "the schema accepts a document with {name}"
        );
    }
}

fn with(doc: &Value, path: &[&str], value: Value) -> Value {
    let mut doc = doc.clone();
    let mut at = &mut doc;
    for p in &path[..path.len() - 1] {
        at = &mut at[*p];
    }
    at.as_object_mut()
        .expect("an object on the way")
        .insert(path[path.len() - 1].to_string(), value);
    doc
}

fn without(doc: &Value, field: &str) -> Value {
    let mut object: Map<String, Value> = doc.as_object().unwrap().clone();
    object.remove(field);
    Value::Object(object)
}
