//! `tim.group.snapshot`: the whole group as Tencent's REST API returned it, stamped with a time
//! `s` read before the reads were sent (`snapshot_at_ms`, `docs/reconcile.md`). It is applied
//! field by field by last-writer-wins at `s`, like any event: a field changed after `s` keeps
//! its newer value, and every other field becomes Tencent's. Parts the snapshot does not carry
//! (no `custom`, no `attrs`, no `members`) are left as they are.

use serde_json::Value;

use super::changes::write_attrs;
use super::{set_field, wins, FoldRules, GroupState, InEvent};

/// Applies a snapshot to a live document; whether anything changed.
pub(super) fn apply(doc: &mut GroupState, e: &InEvent, rules: FoldRules) -> bool {
    let Some(s) = e.time else { return false };
    let t = Some(s);
    let mut changed = false;
    let ft = &mut doc.field_times;
    for (value, at, key) in [
        (&mut doc.name, &mut ft.name, "name"),
        (&mut doc.introduction, &mut ft.introduction, "introduction"),
        (&mut doc.notification, &mut ft.notification, "notification"),
        (&mut doc.face_url, &mut ft.face_url, "face_url"),
        (&mut doc.owner, &mut ft.owner, "owner"),
    ] {
        changed |= set_field(value, at, e.str_at(&[key]), t);
    }
    let has_custom = e.body.get("custom").is_some_and(Value::is_object);
    if has_custom {
        changed |= custom(doc, e, s);
    }
    let has_attrs = e.body.get("attrs").is_some_and(Value::is_object);
    if has_attrs {
        // Tencent's attributes are the whole set: as an attr_changed `set` at `s`.
        changed |= write_attrs(doc, "set", e.string_map(&["attrs"]), t);
    }
    // A group Tencent counts beyond the limit is not tracked, whether or not its list came.
    let num = e.body.get("member_num").and_then(Value::as_u64);
    if doc.members_tracked && num.is_some_and(|n| n > rules.max_members as u64) {
        doc.untrack(format!(
            "more than RELAY_STATE_MAX_MEMBERS ({}) members",
            rules.max_members
        ));
        changed = true;
    }
    let listed = members(e);
    if let (true, Some(listed)) = (doc.members_tracked, &listed) {
        changed |= write_members(doc, listed, complete_list(e), s, rules);
    }
    if !doc.members_tracked {
        changed |= member_num(doc, e, s);
    }
    let members_known = !doc.members_tracked || (listed.is_some() && complete_list(e));
    if has_custom && has_attrs && members_known && !doc.complete {
        doc.complete = true;
        doc.field_times.created = doc.field_times.created.or(t);
        changed = true;
    }
    changed
}

/// Whether the snapshot lists every member (a stable read): only then does it remove members.
fn complete_list(e: &InEvent) -> bool {
    e.body.get("members_complete").and_then(Value::as_bool) == Some(true)
}

/// A listed member: account, role, name card.
type Listed = (String, Option<String>, Option<String>);

/// The listed members; None when the snapshot has no member list.
fn members(e: &InEvent) -> Option<Vec<Listed>> {
    let list = e.body.get("members")?.as_array()?;
    let text = |m: &Value, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    Some(
        list.iter()
            .filter_map(|m| Some((text(m, "account")?, text(m, "role"), text(m, "name_card"))))
            .collect(),
    )
}

/// Custom fields are Tencent's whole set: listed keys are set at `s`, a key the document holds
/// and the snapshot does not list is removed at `s`, and `custom_listed` = `s` keeps any change
/// at or before `s` from applying later; a key changed after `s` keeps its newer value.
fn custom(doc: &mut GroupState, e: &InEvent, s: u64) -> bool {
    if !wins(Some(s), doc.field_times.custom_listed) {
        return false;
    }
    let listed: Vec<(String, String)> = e
        .string_map(&["custom"])
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let mut changed = false;
    let held: Vec<String> = doc.custom.keys().cloned().collect();
    for key in held {
        let at = doc.field_times.custom.get(&key).copied();
        if !listed.iter().any(|(k, _)| *k == key) && wins(Some(s), at) {
            doc.custom.remove(&key);
            doc.field_times.custom.remove(&key);
            changed = true;
        }
    }
    for (key, value) in listed {
        let at = doc.field_times.custom.get(&key).copied();
        if wins(Some(s), at) {
            doc.field_times.custom.insert(key.clone(), s);
            doc.custom.insert(key, value);
            changed = true;
        }
    }
    // Keys never seen were empty at `s` too: no older change may add them.
    doc.field_times.custom_listed = Some(s);
    changed
}

/// A listed member's role and name card at `t`, each unless a newer change set it.
fn write_member_fields(
    doc: &mut GroupState,
    account: &str,
    role: Option<&str>,
    name_card: Option<&str>,
    t: Option<u64>,
) -> bool {
    let times = doc.field_times.members.entry(account.to_owned()).or_default();
    let member = doc.members.entry(account.to_owned()).or_default();
    let role_changed = set_field(&mut member.role, &mut times.role, role, t);
    let name_card_changed = set_field(&mut member.name_card, &mut times.name_card, name_card, t);
    role_changed || name_card_changed
}

/// Each listed member is present at `s` with its role and name card; with a complete list,
/// each member the document holds and the list does not name is absent at `s`. A member who
/// joined or left after `s` is left as the newer change made it.
fn write_members(doc: &mut GroupState, listed: &[Listed], complete: bool, s: u64, rules: FoldRules) -> bool {
    let t = Some(s);
    let presence = |doc: &GroupState, a: &str| doc.field_times.members.get(a).and_then(|m| m.presence);
    let mut changed = false;
    for (account, role, name_card) in listed {
        if doc.listed_after(t) {
            continue;
        }
        if !wins(t, presence(doc, account)) {
            // A newer join or exit decides whether the member is there. A member who is there
            // still takes the role and name card read, field by field: a join callback carries
            // neither, and a change of either after `s` keeps its newer value.
            if doc.members.contains_key(account) {
                changed |= write_member_fields(doc, account, role.as_deref(), name_card.as_deref(), t);
            }
            continue;
        }
        changed |= doc.presence(account, true, t);
        changed |= write_member_fields(doc, account, role.as_deref(), name_card.as_deref(), t);
    }
    if complete {
        let gone: Vec<String> = doc
            .members
            .keys()
            .filter(|a| !listed.iter().any(|(l, _, _)| l == *a))
            .cloned()
            .collect();
        for account in gone {
            if wins(t, presence(doc, &account)) {
                changed |= doc.presence(&account, false, t);
            }
        }
        // Accounts never seen are absent too: no older join may add them. The departures it
        // covers need no record of their own (so arrival order leaves no trace).
        if wins(t, doc.field_times.members_listed) {
            doc.field_times.members_listed = t;
            let members = &doc.members;
            doc.field_times
                .members
                .retain(|a, m| members.contains_key(a) || m.presence.is_none_or(|p| p > s));
        }
    }
    doc.member_count = doc.members.len() as i64;
    if doc.members.len() > rules.max_members {
        doc.untrack(format!(
            "more than RELAY_STATE_MAX_MEMBERS ({}) members",
            rules.max_members
        ));
        changed = true;
    }
    doc.prune_departed(rules.max_members);
    changed
}

/// An untracked group's count is Tencent's `member_num` at `s`; joins and exits after `s` are
/// counted on top of it.
fn member_num(doc: &mut GroupState, e: &InEvent, s: u64) -> bool {
    let Some(n) = e.body.get("member_num").and_then(Value::as_i64) else {
        return false;
    };
    if !wins(Some(s), doc.field_times.member_count) {
        return false;
    }
    doc.member_count = n;
    doc.field_times.member_count = Some(s);
    true
}
