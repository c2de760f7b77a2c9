//! What each event type the state follows changes in a live document, field by field, by
//! last-writer-wins.

use super::{after, set_field, wins, FoldRules, GroupState, InEvent, UNTRACKED_TYPE};
use crate::ingress::commands::event_types as types;

/// Applies a (non-destroy) event to a live document; whether anything changed.
pub(super) fn fold_into(doc: &mut GroupState, e: &InEvent, rules: FoldRules) -> bool {
    let t = e.time;
    let mut changed = false;
    if let Some(group_type) = &e.group_type {
        if doc.group_type.as_deref() != Some(group_type) {
            doc.group_type = Some(group_type.clone());
            changed = true;
        }
        if group_type == UNTRACKED_TYPE && doc.members_tracked {
            doc.untrack(format!("{UNTRACKED_TYPE} groups: members are not tracked"));
            changed = true;
        }
    }
    let ft = &mut doc.field_times;
    match e.event_type.as_str() {
        types::GROUP_CREATED => {
            if wins(t, ft.created) || !doc.complete {
                doc.complete = true;
                ft.created = after(t, ft.created);
                changed = true;
            }
            changed |= profile(doc, e, &[]);
            changed |= custom(doc, e, &["custom"]);
            changed |= members(doc, e, true, rules);
        }
        types::GROUP_INFO_CHANGED => {
            changed |= profile(doc, e, &["changes"]);
            changed |= custom(doc, e, &["changes", "custom"]);
        }
        types::MEMBER_JOINED => changed |= members(doc, e, true, rules),
        types::MEMBER_EXITED => changed |= members(doc, e, false, rules),
        types::OWNER_CHANGED => {
            changed |= set_field(&mut doc.owner, &mut ft.owner, e.str_at(&["new_owner"]), t);
        }
        types::MEMBER_CHANGED => changed |= member_changed(doc, e),
        types::GROUP_ATTR_CHANGED => changed |= attrs(doc, e),
        types::GROUP_SNAPSHOT => changed |= super::snapshot::apply(doc, e, rules),
        _ => {}
    }
    if doc.members_tracked && doc.members.len() > rules.max_members {
        doc.untrack(format!(
            "more than RELAY_STATE_MAX_MEMBERS ({}) members",
            rules.max_members
        ));
        changed = true;
    }
    changed
}

/// Name, introduction, notification, face and (for created) owner, under `path`.
fn profile(doc: &mut GroupState, e: &InEvent, path: &[&str]) -> bool {
    let ft = &mut doc.field_times;
    let at = |field: &str| {
        let mut p = path.to_vec();
        p.push(field);
        e.str_at(&p)
    };
    let mut changed = false;
    changed |= set_field(&mut doc.name, &mut ft.name, at("name"), e.time);
    changed |= set_field(
        &mut doc.introduction,
        &mut ft.introduction,
        at("introduction"),
        e.time,
    );
    changed |= set_field(
        &mut doc.notification,
        &mut ft.notification,
        at("notification"),
        e.time,
    );
    changed |= set_field(&mut doc.face_url, &mut ft.face_url, at("face_url"), e.time);
    if path.is_empty() {
        changed |= set_field(&mut doc.owner, &mut ft.owner, at("owner"), e.time);
    }
    changed
}

fn custom(doc: &mut GroupState, e: &InEvent, path: &[&str]) -> bool {
    let mut changed = false;
    for (key, value) in e.string_map(path) {
        let Some(value) = value else { continue };
        let at = doc.field_times.custom.get(&key).copied();
        let listed_after = matches!((e.time, doc.field_times.custom_listed), (Some(t), Some(l)) if t <= l);
        if wins(e.time, at) && !listed_after {
            if let Some(t) = after(e.time, at) {
                doc.field_times.custom.insert(key.clone(), t);
            }
            doc.custom.insert(key, value);
            changed = true;
        }
    }
    changed
}

fn members(doc: &mut GroupState, e: &InEvent, present: bool, rules: FoldRules) -> bool {
    let accounts = e.accounts("members");
    if accounts.is_empty() {
        return false;
    }
    if !doc.members_tracked {
        // A snapshot's absolute count already holds every join and exit up to its stamp.
        if let (Some(t), Some(counted)) = (e.time, doc.field_times.member_count) {
            if t <= counted {
                return false;
            }
        }
        let n = accounts.len() as i64;
        doc.member_count += if present { n } else { -n };
        return true;
    }
    let mut changed = false;
    for account in &accounts {
        changed |= doc.presence(account, present, e.time);
    }
    doc.member_count = doc.members.len() as i64;
    doc.prune_departed(rules.max_members);
    changed
}

/// A member's role or name card changed: that happened during the membership that started
/// last, so it is stale if older than that start, and it implies the member is present.
fn member_changed(doc: &mut GroupState, e: &InEvent) -> bool {
    let Some(account) = e.str_at(&["member"]) else {
        return false;
    };
    if !doc.members_tracked {
        return false;
    }
    let t = e.time;
    let presence = doc.field_times.members.get(account).and_then(|m| m.presence);
    if !wins(t, presence) || doc.listed_after(t) {
        return false;
    }
    let mut changed = false;
    if !doc.members.contains_key(account) {
        changed |= doc.presence(account, true, t);
        doc.member_count = doc.members.len() as i64;
    }
    let times = doc.field_times.members.entry(account.to_string()).or_default();
    let member = doc.members.entry(account.to_string()).or_default();
    changed |= set_field(&mut member.role, &mut times.role, e.str_at(&["role"]), t);
    changed |= set_field(
        &mut member.name_card,
        &mut times.name_card,
        e.str_at(&["name_card"]),
        t,
    );
    changed
}

/// `set` replaces every attribute, `modify` sets those listed, `clear` removes all, `delete`
/// removes those listed (as Tencent's group attribute calls do).
fn attrs(doc: &mut GroupState, e: &InEvent) -> bool {
    let option = e
        .str_at(&["option_type"])
        .unwrap_or("modify")
        .to_ascii_lowercase();
    write_attrs(doc, &option, e.string_map(&["attrs"]), e.time)
}

/// Applies one attribute change (`option`: set, modify, clear or delete) at time `t`.
pub(super) fn write_attrs(
    doc: &mut GroupState,
    option: &str,
    entries: Vec<(String, Option<String>)>,
    t: Option<u64>,
) -> bool {
    let ft = &mut doc.field_times;
    let mut changed = false;
    if option == "set" || option == "clear" {
        if !wins(t, ft.attrs_cleared) {
            return false;
        }
        ft.attrs_cleared = after(t, ft.attrs_cleared);
        let keep: Vec<String> = match t {
            Some(t) => ft
                .attrs
                .iter()
                .filter(|(_, at)| **at > t)
                .map(|(k, _)| k.clone())
                .collect(),
            None => Vec::new(),
        };
        ft.attrs.retain(|k, _| keep.contains(k));
        doc.attrs.retain(|k, _| keep.contains(k));
        changed = true;
        if option == "clear" {
            return changed;
        }
    }
    let delete = option == "delete";
    for (key, value) in entries {
        let at = ft.attrs.get(&key).copied();
        let cleared_later = matches!((t, ft.attrs_cleared), (Some(t), Some(c)) if t < c);
        if cleared_later || !wins(t, at) {
            continue;
        }
        match (delete, value) {
            (false, Some(value)) => {
                doc.attrs.insert(key.clone(), value);
            }
            _ => {
                doc.attrs.remove(&key);
            }
        }
        if let Some(t) = after(t, at) {
            ft.attrs.insert(key, t);
        }
        changed = true;
    }
    changed
}
