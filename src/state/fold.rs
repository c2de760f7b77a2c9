//! The current state of one group, folded from its events (`tim-relay materialize`).
//!
//! Every field is a last-writer-wins register ordered by the `event_time_ms` of the event that
//! set it; `field_times` keeps those times, so the fold gives the same document whatever order
//! Kafka and Tencent deliver the events in. On equal times the event later in the topic wins.
//! Events without `event_time_ms` are applied in topic order: they always write, and leave the
//! field's time as it was. A re-delivered event is recognized by its `id` (the last
//! [`FoldRules::recent_ids`] ids of each group are kept) and changes nothing.
//!
//! A destroyed group is a tombstone that remembers when it was destroyed: an event from before
//! that time never brings the group back, one from after it starts the group's next life.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ingress::commands::event_types as types;

/// Version of the state document; bumped on any change a reader must know of.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// The group type whose members Tencent does not report one by one in a way worth tracking.
const UNTRACKED_TYPE: &str = "AVChatRoom";

/// The current state of one group: the value of its record in the state topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub schema_version: u32,
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    /// True once the group's created event was applied: before it, only what changed since the
    /// relay started is known.
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Custom group fields (`UserDefinedDataList`), key -> value.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
    /// Group attributes, key -> value.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
    /// False for AVChatRoom groups and groups beyond `RELAY_STATE_MAX_MEMBERS`: `members` is
    /// then empty and only `member_count` is kept.
    pub members_tracked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_untracked_reason: Option<String>,
    /// Current members by account, with what the callbacks told of them.
    #[serde(default)]
    pub members: BTreeMap<String, Member>,
    /// Members the callbacks named. For a group that is not `complete`, the count is relative
    /// to the members known when the relay started, and may be negative.
    pub member_count: i64,
    /// The time of the newest change applied (its `event_time_ms`, else when it was received).
    pub updated_at: String,
    /// The `event_time_ms` of the last change to each field.
    pub field_times: FieldTimes,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Member {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_card: Option<String>,
}

/// When each field last changed, in milliseconds since 1970. A field set by an event without
/// `event_time_ms` has no time here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldTimes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The group's previous life ended here: nothing older applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, u64>,
    /// All attributes were cleared (or set anew) at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs_cleared: Option<u64>,
    /// Per attribute; an attribute listed here but absent from `attrs` was deleted then.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, u64>,
    /// Per member; a member listed here but absent from `members` left then.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, MemberTimes>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberTimes {
    /// When the member joined (present) or left (absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_card: Option<u64>,
}

/// Limits of the fold, from the materializer's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldRules {
    /// `RELAY_STATE_MAX_MEMBERS`: beyond it a group's members are no longer tracked.
    pub max_members: usize,
    /// `RELAY_STATE_RECENT_IDS`: how many event ids per group are kept to recognize duplicates.
    pub recent_ids: usize,
}

impl Default for FoldRules {
    fn default() -> Self {
        Self {
            max_members: 1000,
            recent_ids: 16,
        }
    }
}

/// One group as the fold holds it: its document (None: destroyed, or never seen), when its
/// last life ended, and the ids of its latest events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub doc: Option<GroupState>,
    /// While the group is a tombstone: when it was destroyed.
    pub destroyed_at: Option<u64>,
    pub recent: Recent,
}

/// The ids of a group's latest events, newest last, as 64-bit hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recent(pub Vec<u64>);

impl Recent {
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(&id_hash(id))
    }

    pub fn push(&mut self, id: &str, keep: usize) {
        self.0.push(id_hash(id));
        if self.0.len() > keep {
            let extra = self.0.len() - keep;
            self.0.drain(..extra);
        }
    }

    /// The header form: hex hashes, comma separated.
    pub fn to_header(&self) -> String {
        self.0
            .iter()
            .map(|h| format!("{h:016x}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn from_header(text: &str) -> Self {
        Recent(
            text.split(',')
                .filter_map(|h| u64::from_str_radix(h.trim(), 16).ok())
                .collect(),
        )
    }
}

/// FNV-1a: a fixed hash, so the ids kept in the state topic mean the same to every version.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What folding one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The document changed.
    Applied,
    /// The same event (by `id`) was applied before.
    Duplicate,
    /// Every change it carried was older than what the group holds, or than its destruction.
    Stale,
    /// A type the state does not follow (group full, topics, member online state).
    NotState,
}

impl Outcome {
    /// The `outcome` label of `tim_relay_state_events_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::NotState => "not_state",
        }
    }
}

/// An event as the fold reads it from the group state topic.
#[derive(Debug, Clone, PartialEq)]
pub struct InEvent {
    pub id: String,
    pub event_type: String,
    pub group_id: String,
    pub group_type: Option<String>,
    pub time: Option<u64>,
    pub received_at: String,
    pub body: Value,
}

impl InEvent {
    /// Reads an event of the group state topic; the reason when it is not one.
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let body: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
        let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_string);
        let id = text("id").ok_or("no id")?;
        let event_type = text("type").ok_or("no type")?;
        let group_id = text("group_id").filter(|g| !g.is_empty()).ok_or("no group_id")?;
        let time = match body.get("event_time_ms") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or("event_time_ms is not an integer")?),
        };
        Ok(InEvent {
            id,
            event_type,
            group_id,
            group_type: text("group_type"),
            time,
            received_at: text("received_at").unwrap_or_default(),
            body,
        })
    }

    fn str_at(&self, path: &[&str]) -> Option<&str> {
        let mut v = &self.body;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str()
    }

    fn accounts(&self, field: &str) -> Vec<String> {
        self.body
            .get(field)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn string_map(&self, path: &[&str]) -> Vec<(String, Option<String>)> {
        let mut v = &self.body;
        for p in path {
            match v.get(p) {
                Some(next) => v = next,
                None => return Vec::new(),
            }
        }
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether a change at `time` may overwrite a field last changed at `field`: later or equal
/// times win (equal: the later in the topic), and an event without time always writes.
fn wins(time: Option<u64>, field: Option<u64>) -> bool {
    match (time, field) {
        (None, _) | (_, None) => true,
        (Some(t), Some(f)) => t >= f,
    }
}

/// The time a field keeps after a write: the event's, or the field's own when it had none.
fn after(time: Option<u64>, field: Option<u64>) -> Option<u64> {
    time.or(field)
}

fn rfc3339_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

impl GroupState {
    fn new(group_id: &str) -> Self {
        GroupState {
            schema_version: STATE_SCHEMA_VERSION,
            group_id: group_id.to_string(),
            group_type: None,
            complete: false,
            name: None,
            introduction: None,
            notification: None,
            face_url: None,
            owner: None,
            custom: BTreeMap::new(),
            attrs: BTreeMap::new(),
            members_tracked: true,
            members_untracked_reason: None,
            members: BTreeMap::new(),
            member_count: 0,
            updated_at: String::new(),
            field_times: FieldTimes::default(),
        }
    }

    fn untrack(&mut self, reason: String) {
        if self.members_tracked {
            self.member_count = self.members.len() as i64;
        }
        self.members_tracked = false;
        self.members_untracked_reason = Some(reason);
        self.members.clear();
        self.field_times.members.clear();
    }

    /// A member joins (`present`) or leaves at `time`; whether that changed anything.
    fn presence(&mut self, account: &str, present: bool, time: Option<u64>) -> bool {
        let times = self.field_times.members.entry(account.to_string()).or_default();
        if !wins(time, times.presence) {
            return false;
        }
        times.presence = after(time, times.presence);
        if present {
            // A join starts a membership: what was known of an older one goes.
            let member = self.members.entry(account.to_string()).or_default();
            if let Some(t) = time {
                if times.role.is_some_and(|r| r < t) {
                    (member.role, times.role) = (None, None);
                }
                if times.name_card.is_some_and(|n| n < t) {
                    (member.name_card, times.name_card) = (None, None);
                }
            }
        } else {
            // A new membership starts with nothing known of the old one.
            times.role = None;
            times.name_card = None;
            self.members.remove(account);
        }
        true
    }

    /// Keeps the departed members' times (they stop older joins from bringing them back) to
    /// at most `max` entries, dropping the oldest.
    fn prune_departed(&mut self, max: usize) {
        let members = &self.members;
        let mut departed: Vec<(u64, String)> = self
            .field_times
            .members
            .iter()
            .filter(|(a, _)| !members.contains_key(*a))
            .map(|(a, t)| (t.presence.unwrap_or(0), a.clone()))
            .collect();
        if departed.len() <= max {
            return;
        }
        departed.sort();
        let over = departed.len() - max;
        for (_, account) in departed.into_iter().take(over) {
            self.field_times.members.remove(&account);
        }
    }
}

/// Sets an optional string field by last-writer-wins; whether it changed anything.
fn set_field(value: &mut Option<String>, at: &mut Option<u64>, new: Option<&str>, time: Option<u64>) -> bool {
    let Some(new) = new else { return false };
    if !wins(time, *at) {
        return false;
    }
    *value = Some(new.to_string());
    *at = after(time, *at);
    true
}

impl Group {
    /// Folds one event into the group.
    pub fn apply(&mut self, event: &InEvent, rules: FoldRules) -> Outcome {
        if !is_state_type(&event.event_type) {
            return Outcome::NotState;
        }
        if self.recent.contains(&event.id) {
            return Outcome::Duplicate;
        }
        self.recent.push(&event.id, rules.recent_ids);
        let floor = self
            .doc
            .as_ref()
            .map_or(self.destroyed_at, |d| d.field_times.destroyed);
        if let (Some(t), Some(f)) = (event.time, floor) {
            if t <= f {
                return Outcome::Stale;
            }
        }
        if event.event_type == types::GROUP_DESTROYED {
            return self.destroy(event.time);
        }
        let fresh = self.doc.is_none();
        let doc = self.doc.get_or_insert_with(|| {
            let mut d = GroupState::new(&event.group_id);
            d.field_times.destroyed = floor;
            d
        });
        if !fold_into(doc, event, rules) && !fresh {
            return Outcome::Stale;
        }
        let doc = self.doc.as_mut().expect("set above");
        let stamp = event
            .time
            .map(rfc3339_ms)
            .unwrap_or_else(|| event.received_at.clone());
        if stamp > doc.updated_at {
            doc.updated_at = stamp;
        }
        self.destroyed_at = None;
        Outcome::Applied
    }

    /// The group was destroyed at `time`: everything it holds from before then goes. What a
    /// later event already set (its next life) stays; with nothing left, it is a tombstone.
    fn destroy(&mut self, time: Option<u64>) -> Outcome {
        let Some(doc) = self.doc.as_mut() else {
            let newer = match (time, self.destroyed_at) {
                (Some(t), Some(f)) => t > f,
                _ => true,
            };
            if newer {
                self.destroyed_at = time.or(self.destroyed_at);
            }
            return Outcome::Applied;
        };
        let Some(t) = time else {
            // In topic order, the destruction comes after everything the group holds.
            self.doc = None;
            return Outcome::Applied;
        };
        let newer = |at: Option<u64>| at.is_some_and(|a| a > t);
        let ft = &mut doc.field_times;
        ft.destroyed = Some(t);
        if !newer(ft.created) {
            doc.complete = false;
            ft.created = None;
        }
        for (value, at) in [
            (&mut doc.name, &mut ft.name),
            (&mut doc.introduction, &mut ft.introduction),
            (&mut doc.notification, &mut ft.notification),
            (&mut doc.face_url, &mut ft.face_url),
            (&mut doc.owner, &mut ft.owner),
        ] {
            if !newer(*at) {
                *value = None;
                *at = None;
            }
        }
        ft.custom.retain(|_, at| *at > t);
        doc.custom.retain(|k, _| ft.custom.contains_key(k));
        ft.attrs.retain(|_, at| *at > t);
        doc.attrs.retain(|k, _| ft.attrs.contains_key(k));
        if !newer(ft.attrs_cleared) {
            ft.attrs_cleared = None;
        }
        ft.members.retain(|_, m| newer(m.presence));
        doc.members.retain(|a, _| ft.members.contains_key(a));
        if doc.members_tracked {
            doc.member_count = doc.members.len() as i64;
        }
        let anything_left = doc.complete
            || doc.name.is_some()
            || doc.introduction.is_some()
            || doc.notification.is_some()
            || doc.face_url.is_some()
            || doc.owner.is_some()
            || !doc.custom.is_empty()
            || !doc.attrs.is_empty()
            || !ft.members.is_empty();
        if !anything_left {
            self.doc = None;
            self.destroyed_at = Some(t);
        }
        Outcome::Applied
    }
}

/// The event types the state follows.
pub fn is_state_type(event_type: &str) -> bool {
    matches!(
        event_type,
        types::GROUP_CREATED
            | types::GROUP_INFO_CHANGED
            | types::MEMBER_JOINED
            | types::MEMBER_EXITED
            | types::OWNER_CHANGED
            | types::MEMBER_CHANGED
            | types::GROUP_ATTR_CHANGED
            | types::GROUP_DESTROYED
    )
}

/// Applies a (non-destroy) event to a live document; whether anything changed.
fn fold_into(doc: &mut GroupState, e: &InEvent, rules: FoldRules) -> bool {
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
        if wins(e.time, at) {
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
    if !wins(t, presence) {
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
    let t = e.time;
    let option = e
        .str_at(&["option_type"])
        .unwrap_or("modify")
        .to_ascii_lowercase();
    let entries = e.string_map(&["attrs"]);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RULES: FoldRules = FoldRules {
        max_members: 3,
        recent_ids: 4,
    };

    /// An event as the relay writes it: envelope fields, then the command's own.
    fn ev(id: &str, kind: &str, time: Option<u64>, data: Value) -> InEvent {
        let mut body = json!({"id": id, "type": format!("tim.group.{kind}"), "schema_version": 1,
            "sdk_app_id": "1400000000", "group_id": "g", "group_type": "Public",
            "received_at": "2026-01-01T00:00:00.000Z"});
        if let Some(t) = time {
            body["event_time_ms"] = json!(t);
        }
        for (k, v) in data.as_object().unwrap() {
            body[k] = v.clone();
        }
        InEvent::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    fn fold(events: &[InEvent]) -> (Group, Vec<Outcome>) {
        let mut g = Group::default();
        let outcomes = events.iter().map(|e| g.apply(e, RULES)).collect();
        (g, outcomes)
    }

    fn doc(g: &Group) -> &GroupState {
        g.doc.as_ref().expect("a live group")
    }

    #[test]
    fn a_created_group_is_complete_and_later_changes_win_whatever_the_arrival_order() {
        let created = ev(
            "a",
            "created",
            Some(10),
            json!({"owner": "o", "name": "first", "members": ["o", "m"], "custom": {"k": "1"}}),
        );
        let renamed = ev(
            "b",
            "info_changed",
            Some(20),
            json!({"changes": {"name": "second", "custom": {"k": "2"}}}),
        );
        for order in [
            [created.clone(), renamed.clone()],
            [renamed.clone(), created.clone()],
        ] {
            let (g, _) = fold(&order);
            let d = doc(&g);
            assert!(d.complete);
            assert_eq!(d.name.as_deref(), Some("second"));
            assert_eq!(d.custom["k"], "2");
            assert_eq!(d.owner.as_deref(), Some("o"));
            assert_eq!(d.member_count, 2);
            assert_eq!(d.field_times.name, Some(20));
            assert_eq!(d.field_times.created, Some(10));
            assert_eq!(d.updated_at, "1970-01-01T00:00:00.020Z");
        }
        let (_, outcomes) = fold(&[
            renamed.clone(),
            ev("c", "info_changed", Some(15), json!({"changes": {"name": "old"}})),
        ]);
        assert_eq!(outcomes[1], Outcome::Stale);
    }

    #[test]
    fn a_group_never_seen_created_is_incomplete() {
        let (g, _) = fold(&[ev(
            "a",
            "info_changed",
            Some(5),
            json!({"changes": {"name": "n"}}),
        )]);
        assert!(!doc(&g).complete);
        assert_eq!(doc(&g).group_id, "g");
    }

    #[test]
    fn a_redelivered_event_changes_nothing_even_after_a_newer_one() {
        let first = ev("a", "member_joined", None, json!({"members": ["x"]}));
        let exit = ev("b", "member_exited", None, json!({"members": ["x"]}));
        let (g, outcomes) = fold(&[first.clone(), exit, first]);
        assert_eq!(outcomes, [Outcome::Applied, Outcome::Applied, Outcome::Duplicate]);
        assert!(doc(&g).members.is_empty());
        // Only the last `recent_ids` ids are kept.
        let mut g = Group::default();
        for i in 0..5 {
            g.apply(
                &ev(
                    &i.to_string(),
                    "info_changed",
                    Some(i),
                    json!({"changes": {"name": "n"}}),
                ),
                RULES,
            );
        }
        assert_eq!(g.recent.0.len(), 4);
        assert!(!g.recent.contains("0"));
        assert!(g.recent.contains("4"));
        assert_eq!(Recent::from_header(&g.recent.to_header()), g.recent);
    }

    #[test]
    fn events_without_time_apply_in_topic_order_and_a_timed_newer_one_still_wins() {
        let (g, _) = fold(&[
            ev(
                "a",
                "info_changed",
                Some(10),
                json!({"changes": {"name": "timed"}}),
            ),
            ev("b", "info_changed", None, json!({"changes": {"name": "untimed"}})),
        ]);
        assert_eq!(doc(&g).name.as_deref(), Some("untimed"));
        assert_eq!(doc(&g).field_times.name, Some(10));
        let mut g = g;
        assert_eq!(
            g.apply(
                &ev(
                    "c",
                    "info_changed",
                    Some(9),
                    json!({"changes": {"name": "older"}})
                ),
                RULES
            ),
            Outcome::Stale
        );
        g.apply(
            &ev(
                "d",
                "info_changed",
                Some(11),
                json!({"changes": {"name": "newer"}}),
            ),
            RULES,
        );
        assert_eq!(doc(&g).name.as_deref(), Some("newer"));
    }

    #[test]
    fn equal_times_let_the_later_event_in_the_topic_win() {
        let (g, _) = fold(&[
            ev("a", "info_changed", Some(10), json!({"changes": {"name": "one"}})),
            ev("b", "info_changed", Some(10), json!({"changes": {"name": "two"}})),
        ]);
        assert_eq!(doc(&g).name.as_deref(), Some("two"));
    }

    #[test]
    fn a_destroyed_group_is_a_tombstone_that_older_events_never_revive() {
        let created = ev("a", "created", Some(10), json!({"name": "n", "members": ["x"]}));
        let destroyed = ev("b", "destroyed", Some(20), json!({}));
        let late = ev(
            "c",
            "info_changed",
            Some(15),
            json!({"changes": {"name": "late"}}),
        );
        let (g, outcomes) = fold(&[created.clone(), destroyed.clone(), late.clone()]);
        assert_eq!(outcomes[2], Outcome::Stale);
        assert!(g.doc.is_none());
        assert_eq!(g.destroyed_at, Some(20));
        // Destroyed before anything else arrived: the older events are stale too.
        let (g, outcomes) = fold(&[destroyed.clone(), late.clone(), created.clone()]);
        assert_eq!(&outcomes[1..], [Outcome::Stale, Outcome::Stale]);
        assert!(g.doc.is_none());
        // A newer created event starts the next life, which remembers the end of the last.
        let recreated = ev("d", "created", Some(30), json!({"name": "again"}));
        let (g, _) = fold(&[created, destroyed, recreated.clone(), late]);
        assert_eq!(doc(&g).name.as_deref(), Some("again"));
        assert_eq!(doc(&g).field_times.destroyed, Some(20));
        assert!(doc(&g).complete);
        assert!(doc(&g).members.is_empty());
    }

    #[test]
    fn a_late_destruction_keeps_what_the_next_life_already_set() {
        let (g, _) = fold(&[
            ev(
                "a",
                "created",
                Some(10),
                json!({"name": "old", "introduction": "i"}),
            ),
            ev("c", "created", Some(30), json!({"name": "new"})),
            ev("b", "destroyed", Some(20), json!({})),
        ]);
        let d = doc(&g);
        assert_eq!(d.name.as_deref(), Some("new"));
        assert_eq!(d.introduction, None);
        assert!(d.complete);
        assert_eq!(d.field_times.destroyed, Some(20));
    }

    #[test]
    fn membership_follows_the_latest_join_or_exit_and_roles_belong_to_one_membership() {
        let join = ev("a", "member_joined", Some(10), json!({"members": ["x", "y"]}));
        let role = ev(
            "b",
            "member_changed",
            Some(12),
            json!({"member": "x", "role": "Admin", "name_card": "X"}),
        );
        let exit = ev("c", "member_exited", Some(14), json!({"members": ["x"]}));
        let rejoin = ev("d", "member_joined", Some(16), json!({"members": ["x"]}));
        let orders = [
            vec![join.clone(), role.clone(), exit.clone(), rejoin.clone()],
            vec![rejoin.clone(), exit.clone(), role.clone(), join.clone()],
            vec![role.clone(), rejoin.clone(), join.clone(), exit.clone()],
        ];
        for order in orders {
            let (g, _) = fold(&order);
            let d = doc(&g);
            assert_eq!(d.members.keys().collect::<Vec<_>>(), ["x", "y"], "{order:?}");
            assert_eq!(
                d.members["x"],
                Member::default(),
                "the old role went with the old membership"
            );
            assert_eq!(d.member_count, 2);
        }
        let (g, _) = fold(&[join, role]);
        assert_eq!(doc(&g).members["x"].role.as_deref(), Some("Admin"));
        assert_eq!(doc(&g).members["x"].name_card.as_deref(), Some("X"));
    }

    #[test]
    fn beyond_the_member_limit_and_in_av_chat_rooms_only_the_count_is_kept() {
        let (g, _) = fold(&[
            ev("a", "member_joined", Some(1), json!({"members": ["a", "b", "c"]})),
            ev("b", "member_joined", Some(2), json!({"members": ["d"]})),
            ev("c", "member_exited", Some(3), json!({"members": ["a"]})),
        ]);
        let d = doc(&g);
        assert!(!d.members_tracked);
        assert!(d.members.is_empty() && d.field_times.members.is_empty());
        assert_eq!(d.member_count, 3);
        assert!(d
            .members_untracked_reason
            .as_deref()
            .unwrap()
            .contains("RELAY_STATE_MAX_MEMBERS"));

        let mut join = ev("a", "member_joined", Some(2), json!({"members": ["a", "b"]}));
        join.group_type = Some("AVChatRoom".into());
        let mut exit = ev("b", "member_exited", Some(1), json!({"members": ["c"]}));
        exit.group_type = Some("AVChatRoom".into());
        let (g, _) = fold(&[join, exit]);
        assert!(!doc(&g).members_tracked);
        assert_eq!(doc(&g).member_count, 1);
    }

    #[test]
    fn attributes_follow_set_modify_delete_and_clear() {
        let set = ev(
            "a",
            "attr_changed",
            Some(10),
            json!({"option_type": "set", "attrs": {"a": "1", "b": "2"}}),
        );
        let modify = ev(
            "b",
            "attr_changed",
            Some(11),
            json!({"option_type": "modify", "attrs": {"b": "3"}}),
        );
        let delete = ev(
            "c",
            "attr_changed",
            Some(12),
            json!({"option_type": "delete", "attrs": {"a": null}}),
        );
        let reset = ev(
            "d",
            "attr_changed",
            Some(13),
            json!({"option_type": "set", "attrs": {"c": "4"}}),
        );
        let (g, _) = fold(&[set.clone(), modify.clone(), delete.clone()]);
        assert_eq!(
            doc(&g).attrs,
            BTreeMap::from([("b".to_string(), "3".to_string())])
        );
        for order in [
            vec![set.clone(), modify.clone(), delete.clone(), reset.clone()],
            vec![reset.clone(), delete.clone(), set.clone(), modify.clone()],
        ] {
            let (g, _) = fold(&order);
            assert_eq!(
                doc(&g).attrs,
                BTreeMap::from([("c".to_string(), "4".to_string())])
            );
        }
        let clear = ev("e", "attr_changed", Some(14), json!({"option_type": "clear"}));
        let (g, _) = fold(&[clear, set, modify]);
        assert!(doc(&g).attrs.is_empty());
    }

    #[test]
    fn other_group_events_are_not_state_and_bad_events_say_why() {
        let mut g = Group::default();
        assert_eq!(
            g.apply(&ev("a", "full", Some(1), json!({})), RULES),
            Outcome::NotState
        );
        assert!(g.doc.is_none());
        assert_eq!(InEvent::parse(b"[]").unwrap_err(), "no id");
        assert!(InEvent::parse(b"{").unwrap_err().starts_with("not JSON"));
        assert_eq!(
            InEvent::parse(br#"{"id":"a","type":"t","group_id":"g","event_time_ms":"x"}"#).unwrap_err(),
            "event_time_ms is not an integer"
        );
    }

    #[test]
    fn the_document_survives_its_json_form() {
        let (g, _) = fold(&[ev(
            "a",
            "created",
            Some(10),
            json!({"name": "n", "members": ["x"], "custom": {"k": "v"}}),
        )]);
        let text = serde_json::to_vec(doc(&g)).unwrap();
        let back: GroupState = serde_json::from_slice(&text).unwrap();
        assert_eq!(&back, doc(&g));
    }
}
