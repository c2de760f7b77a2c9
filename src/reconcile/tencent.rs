//! One group as Tencent's REST API gave it ([`TencentGroup`]), and the events the reconciler
//! publishes: `tim.group.snapshot` and the reconciler's `tim.group.destroyed`
//! (`docs/events/`, `docs/reconcile.md`).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::delivery::record::{CloudEvent, Record};
use crate::ingress::commands::event_types as types;
use crate::state::fold::{FoldRules, Group, GroupState, InEvent};

/// The type Tencent gives no member list for.
pub const AV_CHAT_ROOM: &str = "AVChatRoom";
/// The type whose members page with `Next` instead of `Offset`.
pub const COMMUNITY: &str = "Community";
/// The value of `source` in every event the reconciler publishes.
pub const SOURCE: &str = "reconciler";

/// A listed member: account, role, name card.
pub type Listed = (String, Option<String>, Option<String>);

/// One group as read, stamped with `s` (`snapshot_at_ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct TencentGroup {
    pub group_id: String,
    pub group_type: String,
    pub name: Option<String>,
    pub introduction: Option<String>,
    pub notification: Option<String>,
    pub face_url: Option<String>,
    pub owner: Option<String>,
    /// `AppDefinedData`; None when they could not be read whole.
    pub custom: Option<BTreeMap<String, String>>,
    /// `get_group_attr`; None when not read (a type without attributes gives an empty map).
    pub attrs: Option<BTreeMap<String, String>>,
    /// Members, None when not read (AVChatRoom, beyond `RELAY_STATE_MAX_MEMBERS`).
    pub members: Option<Vec<Listed>>,
    /// Whether `members` is every member (one answer, or a stable paged read).
    pub members_complete: bool,
    pub member_num: u64,
    pub s: u64,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A `MemberList` entry.
pub fn member(v: &Value) -> Option<Listed> {
    Some((text(v, "Member_Account")?, text(v, "Role"), text(v, "NameCard")))
}

impl TencentGroup {
    /// Reads one `GroupInfo[]` entry with `ErrorCode` 0. `members` is left to the caller when
    /// the entry has no `MemberList`; `custom_read` says whether `AppDefinedData` is the whole
    /// set (an answer without a `ResponseFilter`).
    pub fn from_info(info: &Value, s: u64, custom_read: bool) -> Option<Self> {
        let group_id = text(info, "GroupId")?;
        let group_type = text(info, "Type")?;
        let custom = custom_read.then(|| {
            info.get("AppDefinedData")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|kv| Some((text(kv, "Key")?, text(kv, "Value")?)))
                        .collect()
                })
                .unwrap_or_default()
        });
        let members: Option<Vec<Listed>> = info
            .get("MemberList")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(member).collect());
        let member_num = info
            .get("MemberNum")
            .and_then(Value::as_u64)
            .or_else(|| members.as_ref().map(|m| m.len() as u64))
            .unwrap_or(0);
        let members_complete = members.as_ref().is_some_and(|m| m.len() as u64 == member_num);
        Some(Self {
            group_id,
            name: text(info, "Name"),
            introduction: text(info, "Introduction"),
            notification: text(info, "Notification"),
            face_url: text(info, "FaceUrl"),
            owner: text(info, "Owner_Account"),
            custom,
            attrs: None,
            members: members.filter(|_| group_type != AV_CHAT_ROOM),
            members_complete,
            member_num,
            s,
            group_type,
        })
    }

    /// Whether the state keeps this group's members one by one (with `rules` as the
    /// materializer's): then they must be read whole.
    pub fn members_wanted(&self, rules: FoldRules) -> bool {
        self.group_type != AV_CHAT_ROOM && self.member_num <= rules.max_members as u64
    }

    /// The `tim.group.snapshot` event's JSON (`docs/events/tim.group.snapshot.schema.json`).
    pub fn snapshot(&self, sdk_app_id: u64, received_at: &str, rules: FoldRules) -> Value {
        let mut e = Map::new();
        e.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
        e.insert("type".into(), json!(types::GROUP_SNAPSHOT));
        e.insert("schema_version".into(), json!(1));
        e.insert("sdk_app_id".into(), json!(sdk_app_id.to_string()));
        e.insert("received_at".into(), json!(received_at));
        e.insert("group_id".into(), json!(self.group_id));
        e.insert("group_type".into(), json!(self.group_type));
        e.insert("source".into(), json!(SOURCE));
        e.insert("snapshot_at_ms".into(), json!(self.s));
        for (key, value) in [
            ("name", &self.name),
            ("introduction", &self.introduction),
            ("notification", &self.notification),
            ("face_url", &self.face_url),
            ("owner", &self.owner),
        ] {
            if let Some(v) = value {
                e.insert(key.into(), json!(v));
            }
        }
        if let Some(custom) = &self.custom {
            e.insert("custom".into(), json!(custom));
        }
        if let Some(attrs) = &self.attrs {
            e.insert("attrs".into(), json!(attrs));
        }
        if let (Some(members), true) = (&self.members, self.members_wanted(rules)) {
            let list: Vec<Value> = members
                .iter()
                .map(|(account, role, name_card)| {
                    let mut m = Map::new();
                    m.insert("account".into(), json!(account));
                    if let Some(r) = role {
                        m.insert("role".into(), json!(r));
                    }
                    if let Some(c) = name_card {
                        m.insert("name_card".into(), json!(c));
                    }
                    Value::Object(m)
                })
                .collect();
            e.insert("members".into(), Value::Array(list));
            e.insert("members_complete".into(), json!(self.members_complete));
        }
        e.insert("member_num".into(), json!(self.member_num));
        Value::Object(e)
    }

    /// The document the fold makes of this snapshot alone: what the state must hold once it
    /// agrees with Tencent.
    pub fn as_document(snapshot: &Value, rules: FoldRules) -> Option<GroupState> {
        let bytes = serde_json::to_vec(snapshot).ok()?;
        let event = InEvent::parse(&bytes).ok()?;
        let mut group = Group::default();
        group.apply(&event, rules);
        group.doc
    }
}

/// The reconciler's `tim.group.destroyed`: Tencent answered 10010 or 10015 for a group the state
/// holds. Stamped `event_time_ms` = `s`, like a snapshot's values.
pub fn destroyed(
    sdk_app_id: u64,
    group_id: &str,
    group_type: Option<&str>,
    s: u64,
    received_at: &str,
) -> Value {
    let mut e = Map::new();
    e.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
    e.insert("type".into(), json!(types::GROUP_DESTROYED));
    e.insert("schema_version".into(), json!(1));
    e.insert("sdk_app_id".into(), json!(sdk_app_id.to_string()));
    e.insert("group_id".into(), json!(group_id));
    if let Some(t) = group_type {
        e.insert("group_type".into(), json!(t));
    }
    e.insert("event_time_ms".into(), json!(s));
    e.insert("received_at".into(), json!(received_at));
    e.insert("source".into(), json!(SOURCE));
    Value::Object(e)
}

/// The Kafka record of an event the reconciler publishes, with the CloudEvents headers the
/// relay's records carry; `ce_source` ends in `/reconciler`.
pub fn record(event: &Value, topic: &str) -> Record {
    let field = |k: &str| {
        event
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let time_ms = event
        .get("snapshot_at_ms")
        .or_else(|| event.get("event_time_ms"))
        .and_then(Value::as_u64)
        .unwrap_or_default();
    let ce = CloudEvent {
        id: field("id"),
        event_type: field("type"),
        source: format!("/tencent-im/{}/{SOURCE}", field("sdk_app_id")),
        time: humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(time_ms)).to_string(),
    };
    let payload = serde_json::to_vec(event).expect("a JSON value serializes");
    Record::cloud_event(topic, field("group_id"), payload, ce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> Value {
        json!({
            "ErrorCode": 0, "GroupId": "@TGS#1", "Type": "Public", "Name": "n", "Introduction": "",
            "Notification": "hello", "FaceUrl": "", "Owner_Account": "ann", "MemberNum": 2,
            "AppDefinedData": [{"Key": "level", "Value": "3"}],
            "MemberList": [
                {"Member_Account": "ann", "Role": "Owner", "NameCard": ""},
                {"Member_Account": "bob", "Role": "Member", "NameCard": "Bobby"}
            ]
        })
    }

    #[test]
    fn a_snapshot_folds_into_tencents_group_and_meets_its_schema() {
        let mut g = TencentGroup::from_info(&info(), 1_700_000_000_000, true).unwrap();
        assert!(g.members_complete);
        g.attrs = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
        let rules = FoldRules::default();
        let event = g.snapshot(1400000000, "2026-12-08T00:00:00.000Z", rules);
        let doc = TencentGroup::as_document(&event, rules).unwrap();
        assert!(doc.complete);
        assert_eq!(doc.member_count, 2);
        assert_eq!(doc.members["bob"].name_card.as_deref(), Some("Bobby"));
        assert_eq!(doc.members["ann"].role.as_deref(), Some("Owner"));
        assert_eq!(doc.custom["level"], "3");
        assert_eq!(doc.notification.as_deref(), Some("hello"));
        let r = record(&event, "tim.group-changes");
        assert_eq!(r.key, "@TGS#1");
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "ce_source" && v.ends_with("/reconciler")));
    }

    #[test]
    fn a_group_beyond_the_member_limit_keeps_its_count_only() {
        let mut info = info();
        info["MemberNum"] = json!(5000);
        info.as_object_mut().unwrap().remove("MemberList");
        let mut g = TencentGroup::from_info(&info, 1, true).unwrap();
        g.attrs = Some(BTreeMap::new());
        let rules = FoldRules::default();
        assert!(!g.members_wanted(rules));
        let doc = TencentGroup::as_document(&g.snapshot(1, "t", rules), rules).unwrap();
        assert!(!doc.members_tracked);
        assert_eq!(doc.member_count, 5000);
        assert!(doc.complete);
    }

    #[test]
    fn an_av_chat_room_has_its_member_num() {
        let mut info = info();
        info["Type"] = json!("AVChatRoom");
        info["MemberNum"] = json!(321);
        let mut g = TencentGroup::from_info(&info, 1, true).unwrap();
        g.attrs = Some(BTreeMap::new());
        assert!(g.members.is_none());
        let rules = FoldRules::default();
        let doc = TencentGroup::as_document(&g.snapshot(1, "t", rules), rules).unwrap();
        assert_eq!(doc.member_count, 321);
        assert!(doc.complete && !doc.members_tracked);
    }
}
