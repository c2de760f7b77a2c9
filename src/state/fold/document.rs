//! The state document of one group ([`GroupState`]) and when each of its fields last changed
//! ([`FieldTimes`]), with the changes of membership every event type shares.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{after, wins, STATE_SCHEMA_VERSION};

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
    /// A snapshot gave the whole set of custom fields at this time: a change of a custom field
    /// at or before it no longer applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_listed: Option<u64>,
    /// All attributes were cleared (or set anew) at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs_cleared: Option<u64>,
    /// Per attribute; an attribute listed here but absent from `attrs` was deleted then.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, u64>,
    /// The `member_num` of the last snapshot, while members are not tracked: joins and exits
    /// at or before it are already counted in `member_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<u64>,
    /// A snapshot listed every member at this time: a join, exit or member change at or before
    /// it no longer applies (the list already holds its outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_listed: Option<u64>,
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

impl GroupState {
    pub(super) fn new(group_id: &str) -> Self {
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

    pub(super) fn untrack(&mut self, reason: String) {
        if self.members_tracked {
            self.member_count = self.members.len() as i64;
        }
        self.members_tracked = false;
        self.members_untracked_reason = Some(reason);
        self.members.clear();
        self.field_times.members.clear();
        self.field_times.members_listed = None;
    }

    /// A member joins (`present`) or leaves at `time`; whether that changed anything.
    pub(super) fn presence(&mut self, account: &str, present: bool, time: Option<u64>) -> bool {
        if self.listed_after(time) {
            return false;
        }
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

    /// Whether a membership change at `time` is at or before a snapshot's complete member list.
    pub(super) fn listed_after(&self, time: Option<u64>) -> bool {
        matches!((time, self.field_times.members_listed), (Some(t), Some(l)) if t <= l)
    }

    /// Keeps the departed members' times (they stop older joins from bringing them back) to
    /// at most `max` entries, dropping the oldest.
    pub(super) fn prune_departed(&mut self, max: usize) {
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
