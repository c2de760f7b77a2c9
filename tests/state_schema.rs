//! The state document (`tim_relay::state::fold::GroupState`, the value of each record in the state
//! topic) against its documented JSON Schema, `docs/state/group-state.schema.json`.
//!
//! Real documents are folded from representative event histories and validated whole, nested
//! maps included. The checker below knows only the keywords the schema uses and fails on any
//! other, so a keyword added to the schema cannot go unchecked. No broker needed.

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

/// Where `value` breaks `schema` (JSON Schema 2020-12, the keywords the state schema uses),
/// as "path: why" lines; empty when it conforms.
fn violations(schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let schema = match schema {
        Value::Bool(true) => return out,
        Value::Bool(false) => return vec![format!("{path}: nothing is allowed here")],
        Value::Object(s) => s,
        other => panic!("{path}: a schema must be an object or a boolean, not {other}"),
    };
    for (keyword, arg) in schema {
        match keyword.as_str() {
            "$schema" | "title" | "description" => {}
            // An annotation in 2020-12; checked anyway, the RFC 3339 form the fold writes.
            "format" => {
                assert_eq!(arg, "date-time", "{path}: unknown format");
                if let Some(s) = value.as_str() {
                    if !is_rfc3339_utc_ms(s) {
                        out.push(format!("{path}: {s:?} is not a date-time"));
                    }
                }
            }
            "type" => {
                let types: Vec<&str> = match arg {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().map(|t| t.as_str().expect("type name")).collect(),
                    _ => panic!("{path}: bad type"),
                };
                if !types.iter().any(|t| has_type(value, t)) {
                    out.push(format!("{path}: {value} is not {types:?}"));
                }
            }
            "const" => {
                if value != arg {
                    out.push(format!("{path}: {value} is not {arg}"));
                }
            }
            "minimum" => {
                let min = arg.as_i64().expect("integer minimum");
                if value.as_i64().is_some_and(|v| v < min) {
                    out.push(format!("{path}: {value} is below {min}"));
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for name in arg.as_array().expect("required is a list") {
                        let name = name.as_str().expect("required names");
                        if !object.contains_key(name) {
                            out.push(format!("{path}: `{name}` is missing"));
                        }
                    }
                }
            }
            "maxProperties" => {
                let max = arg.as_u64().expect("maxProperties") as usize;
                if value.as_object().is_some_and(|o| o.len() > max) {
                    out.push(format!("{path}: more than {max} members"));
                }
            }
            "properties" => {
                if let Some(object) = value.as_object() {
                    for (name, sub) in arg.as_object().expect("properties") {
                        if let Some(v) = object.get(name) {
                            out.extend(violations(sub, v, &format!("{path}.{name}")));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(object) = value.as_object() {
                    let declared = schema.get("properties").and_then(Value::as_object);
                    for (name, v) in object {
                        if declared.is_some_and(|d| d.contains_key(name)) {
                            continue;
                        }
                        if *arg == Value::Bool(false) {
                            out.push(format!("{path}: `{name}` is not a documented property"));
                        } else {
                            out.extend(violations(arg, v, &format!("{path}[{name:?}]")));
                        }
                    }
                }
            }
            "not" => {
                if violations(arg, value, path).is_empty() {
                    out.push(format!("{path}: matches what `not` forbids: {arg}"));
                }
            }
            "if" => {
                let branch = if violations(arg, value, path).is_empty() {
                    "then"
                } else {
                    "else"
                };
                if let Some(sub) = schema.get(branch) {
                    out.extend(violations(sub, value, path));
                }
            }
            "then" | "else" => {}
            other => panic!("{path}: the checker does not know the keyword `{other}`; teach it"),
        }
    }
    out
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => panic!("unknown type {other}"),
    }
}

/// `1970-01-01T00:00:00.020Z`: what the fold writes (event_time_ms) and the relay's received_at.
fn is_rfc3339_utc_ms(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
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
    ]
}

#[test]
fn folded_documents_conform_to_the_documented_schema() {
    let schema = schema();
    assert_eq!(
        schema["properties"]["schema_version"]["const"], STATE_SCHEMA_VERSION,
        "the schema documents the version the fold writes"
    );
    for (name, doc) in documents() {
        let broken = violations(&schema, &doc, "$");
        assert!(broken.is_empty(), "{name}: {broken:#?}\n{doc:#}");
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
    assert!(violations(&schema, &good, "$").is_empty());
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
            !violations(&schema, &doc, "$").is_empty(),
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
