//! What a group's state document (`docs/state.md`, `GroupState`) should say once the
//! reconciler has made it Tencent's truth, and a field-by-field comparison that says what
//! differs.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use super::world::{Group, GroupType, World};

/// `RELAY_STATE_MAX_MEMBERS`' default: beyond it the state keeps only `member_count`.
pub const DEFAULT_MAX_TRACKED_MEMBERS: usize = 1000;

/// The compared part of the state document of `group`: `group_id`, `group_type`, `complete`
/// (true), `name`, `introduction`, `notification`, `face_url`, `owner`, `custom`, `attrs`,
/// `members_tracked`, `members` (`{account: {role, name_card}}`, the name card left out when
/// empty; none when not tracked) and `member_count`. Members are tracked unless the group is
/// an AVChatRoom or has more than `max_tracked_members`. Attributes are `{}` for a type the
/// world says has none (the reconciler cannot read them).
pub fn expected_state(world: &World, group: &Group, max_tracked_members: usize) -> Value {
    let tracked = group.group_type != GroupType::AVChatRoom && group.member_num() <= max_tracked_members;
    let mut members = Map::new();
    if tracked {
        for m in group.members() {
            let mut entry = Map::new();
            entry.insert("role".into(), json!(m.role.as_str()));
            if !m.name_card.is_empty() {
                entry.insert("name_card".into(), json!(m.name_card));
            }
            members.insert(m.account.clone(), Value::Object(entry));
        }
    }
    let attrs = if world.has_attrs(group.group_type) {
        json!(group.attrs)
    } else {
        json!({})
    };
    json!({
        "group_id": group.group_id,
        "group_type": group.group_type.as_str(),
        "complete": true,
        "name": group.name,
        "introduction": group.introduction,
        "notification": group.notification,
        "face_url": group.face_url,
        "owner": group.owner,
        "custom": group.custom,
        "attrs": attrs,
        "members_tracked": tracked,
        "members": members,
        "member_count": group.member_num(),
    })
}

/// The differences between an expected document (from [`expected_state`]) and an actual state
/// document, one readable line each (`@TGS#.. name: expected "a", got "b"`); empty when they
/// agree. Only the expected document's fields are compared (`field_times`, `updated_at`, ...
/// are not). An absent string and `""` are the same (Tencent answers `""` for a field never
/// set; a document folded from callbacks may lack it), for profile fields and name cards.
pub fn diff_state(expected: &Value, actual: &Value) -> Vec<String> {
    let id = expected["group_id"].as_str().unwrap_or("?");
    let mut out = Vec::new();
    let mut say = |what: String| out.push(format!("{id} {what}"));
    for field in ["group_type", "complete", "members_tracked", "member_count"] {
        if expected.get(field) != actual.get(field) {
            say(format!(
                "{field}: expected {}, got {}",
                show(expected.get(field)),
                show(actual.get(field))
            ));
        }
    }
    for field in ["name", "introduction", "notification", "face_url", "owner"] {
        let (e, a) = (text(expected.get(field)), text(actual.get(field)));
        if e != a {
            say(format!("{field}: expected {e:?}, got {a:?}"));
        }
    }
    for field in ["custom", "attrs"] {
        for line in diff_maps(expected.get(field), actual.get(field), |e, a| e == a) {
            say(format!("{field}.{line}"));
        }
    }
    let member_eq = |e: &Value, a: &Value| {
        e.get("role") == a.get("role") && text(e.get("name_card")) == text(a.get("name_card"))
    };
    for line in diff_maps(expected.get("members"), actual.get("members"), member_eq) {
        say(format!("members.{line}"));
    }
    out
}

/// Every group of `world` against `states` (`GroupId` -> document; a destroyed group is
/// simply absent): groups missing from the states, groups the states hold that Tencent does
/// not, and [`diff_state`] for each group in both.
pub fn diff_world(world: &World, states: &HashMap<String, Value>, max_tracked_members: usize) -> Vec<String> {
    let mut out = Vec::new();
    for g in world.groups() {
        match states.get(&g.group_id) {
            None => out.push(format!("{} missing from the state", g.group_id)),
            Some(actual) => out.extend(diff_state(&expected_state(world, g, max_tracked_members), actual)),
        }
    }
    let mut extra: Vec<&String> = states.keys().filter(|id| world.group(id).is_none()).collect();
    extra.sort();
    out.extend(
        extra
            .into_iter()
            .map(|id| format!("{id} in the state but not at Tencent")),
    );
    out
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

fn show(v: Option<&Value>) -> String {
    v.map_or("(absent)".into(), Value::to_string)
}

/// Key by key: `key: expected .., got ..`, missing and unexpected keys.
fn diff_maps(
    expected: Option<&Value>,
    actual: Option<&Value>,
    eq: impl Fn(&Value, &Value) -> bool,
) -> Vec<String> {
    let empty = Map::new();
    let e = expected.and_then(Value::as_object).unwrap_or(&empty);
    let a = actual.and_then(Value::as_object).unwrap_or(&empty);
    let keys: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        match (e.get(k), a.get(k)) {
            (Some(ev), Some(av)) if !eq(ev, av) => out.push(format!("{k}: expected {ev}, got {av}")),
            (Some(ev), None) => out.push(format!("{k}: expected {ev}, missing")),
            (None, Some(av)) => out.push(format!("{k}: not expected, got {av}")),
            _ => {}
        }
    }
    out
}
