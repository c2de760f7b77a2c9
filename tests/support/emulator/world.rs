//! What Tencent holds: the app's groups, each with its profile, custom fields, attributes and
//! members. Read and changed by tests under the emulator's lock (`Emulator::with_world`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

/// Tencent's group types, named as the REST API and the callbacks name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupType {
    Public,
    /// `Private`, called Work in the console.
    Private,
    /// `ChatRoom`, called Meeting in the console.
    ChatRoom,
    /// No member list in the API: only `MemberNum`.
    AVChatRoom,
    /// Pages its members with a `Next` string.
    Community,
}

impl GroupType {
    pub const ALL: [GroupType; 5] = [
        GroupType::Public,
        GroupType::Private,
        GroupType::ChatRoom,
        GroupType::AVChatRoom,
        GroupType::Community,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Public => "Public",
            GroupType::Private => "Private",
            GroupType::ChatRoom => "ChatRoom",
            GroupType::AVChatRoom => "AVChatRoom",
            GroupType::Community => "Community",
        }
    }

    /// The API's name, or the console's (`Work`, `Meeting`).
    pub fn parse(s: &str) -> Option<GroupType> {
        match s {
            "Work" => Some(GroupType::Private),
            "Meeting" => Some(GroupType::ChatRoom),
            _ => GroupType::ALL.into_iter().find(|t| t.as_str() == s),
        }
    }

    /// Whether the API gives its member list (every type but AVChatRoom).
    pub fn has_member_list(self) -> bool {
        self != GroupType::AVChatRoom
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Admin => "Admin",
            Role::Member => "Member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Owner, Role::Admin, Role::Member]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub account: String,
    pub role: Role,
    /// `""` when the member has none.
    pub name_card: String,
    /// Unix seconds.
    pub join_time: u64,
    /// Join order within the group: the Community `Next` cursor is made of it.
    seq: u64,
}

impl Member {
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// One group. Members are kept in join order (the owner first); use the methods to change
/// them, so the order and the cursors stay right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub group_id: String,
    pub group_type: GroupType,
    pub name: String,
    pub introduction: String,
    pub notification: String,
    pub face_url: String,
    pub owner: String,
    /// Unix seconds.
    pub create_time: u64,
    pub last_info_time: u64,
    pub last_msg_time: u64,
    pub next_msg_seq: u64,
    pub info_seq: u64,
    pub max_member_num: u64,
    pub apply_join_option: String,
    pub shut_up_all_member: bool,
    /// `AppDefinedData`: the app's custom group fields, key -> value.
    pub custom: BTreeMap<String, String>,
    /// Group attributes (`get_group_attr`), at most 16.
    pub attrs: BTreeMap<String, String>,
    members: Vec<Member>,
    next_member_seq: u64,
    /// Position in `get_appid_group_list` (creation order); set by [`World::insert`].
    seq: u64,
}

/// Most attributes a group holds (spec §3).
pub const MAX_ATTRS: usize = 16;

impl Group {
    /// A group whose only member is its owner.
    pub fn new(group_id: impl Into<String>, group_type: GroupType, owner: impl Into<String>) -> Group {
        let owner = owner.into();
        let now = unix_secs();
        let mut group = Group {
            group_id: group_id.into(),
            group_type,
            name: String::new(),
            introduction: String::new(),
            notification: String::new(),
            face_url: String::new(),
            owner: owner.clone(),
            create_time: now,
            last_info_time: now,
            last_msg_time: 0,
            next_msg_seq: 1,
            info_seq: 1,
            max_member_num: if group_type == GroupType::AVChatRoom {
                0
            } else {
                2000
            },
            apply_join_option: "FreeAccess".into(),
            shut_up_all_member: false,
            custom: BTreeMap::new(),
            attrs: BTreeMap::new(),
            members: Vec::new(),
            next_member_seq: 1,
            seq: 0,
        };
        group.add_member(&owner, Role::Owner, "", now);
        group
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, account: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.account == account)
    }

    /// To change a member's role or name card (use [`Group::set_owner`] for the owner).
    pub fn member_mut(&mut self, account: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.account == account)
    }

    /// `MemberNum`.
    pub fn member_num(&self) -> usize {
        self.members.len()
    }

    /// Adds a member at the end of the join order; false when already a member.
    pub fn add_member(&mut self, account: &str, role: Role, name_card: &str, join_time: u64) -> bool {
        if self.member(account).is_some() {
            return false;
        }
        self.members.push(Member {
            account: account.to_string(),
            role,
            name_card: name_card.to_string(),
            join_time,
            seq: self.next_member_seq,
        });
        self.next_member_seq += 1;
        true
    }

    /// Removes a member (never the owner: change the owner first); false when not removed.
    pub fn remove_member(&mut self, account: &str) -> bool {
        if account == self.owner {
            return false;
        }
        let before = self.members.len();
        self.members.retain(|m| m.account != account);
        before != self.members.len()
    }

    /// Makes `account` (a member, else it joins) the owner; the old owner becomes a Member.
    pub fn set_owner(&mut self, account: &str) {
        let old = std::mem::replace(&mut self.owner, account.to_string());
        if let Some(m) = self.member_mut(&old) {
            m.role = Role::Member;
        }
        if self.member(account).is_none() {
            self.add_member(account, Role::Owner, "", unix_secs());
        }
        if let Some(m) = self.member_mut(account) {
            m.role = Role::Owner;
        }
    }
}

/// The app's groups, in `get_appid_group_list` order (creation order).
#[derive(Debug, Clone)]
pub struct World {
    groups: BTreeMap<String, Group>,
    order: BTreeMap<u64, String>,
    next_seq: u64,
    next_group_no: u64,
    last_event_ms: u64,
    /// The app's custom group field keys (`AppDefinedData`): a small fixed set per app.
    pub custom_keys: Vec<String>,
    /// Group types whose groups answer 10007 ("this group type has no attributes") from
    /// `get_group_attr`. **Default: none.** The spec names the code but not the types it
    /// applies to, so every type has attributes unless a test says otherwise.
    pub types_without_attrs: BTreeSet<GroupType>,
    /// Whether a custom field change sends `Group.CallbackAfterGroupInfoChanged` with
    /// `UserDefinedDataList`. **Default: false**: the current pages list only Name,
    /// Introduction, Notification and FaceUrl (older pages named custom fields), so a custom
    /// field change is drift that only the REST API shows.
    pub custom_in_info_callback: bool,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    /// No groups; custom keys `level` and `topic_tag`.
    pub fn new() -> World {
        World {
            groups: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 1,
            next_group_no: 1,
            last_event_ms: 0,
            custom_keys: vec!["level".into(), "topic_tag".into()],
            types_without_attrs: BTreeSet::new(),
            custom_in_info_callback: false,
        }
    }

    pub fn set_types_without_attrs(&mut self, types: impl IntoIterator<Item = GroupType>) {
        self.types_without_attrs = types.into_iter().collect();
    }

    /// Whether groups of `t` have attributes (`get_group_attr` answers them).
    pub fn has_attrs(&self, t: GroupType) -> bool {
        !self.types_without_attrs.contains(&t)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn group_mut(&mut self, id: &str) -> Option<&mut Group> {
        self.groups.get_mut(id)
    }

    /// Every group, in list order.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.order.values().map(|id| &self.groups[id])
    }

    pub fn group_ids(&self) -> Vec<String> {
        self.order.values().cloned().collect()
    }

    /// The `i`-th group in list order.
    pub fn nth_group(&self, i: usize) -> Option<&Group> {
        self.order.values().nth(i).map(|id| &self.groups[id])
    }

    /// Adds a group at the end of the list (a group with the same id is replaced: a re-creation).
    pub fn insert(&mut self, mut group: Group) -> Option<Group> {
        let old = self.remove(&group.group_id);
        group.seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(group.seq, group.group_id.clone());
        self.groups.insert(group.group_id.clone(), group);
        old
    }

    /// Destroys a group.
    pub fn remove(&mut self, id: &str) -> Option<Group> {
        let group = self.groups.remove(id)?;
        self.order.remove(&group.seq);
        Some(group)
    }

    /// A fresh GroupId in Tencent's form: `@TGS#` and letters/digits; Community groups' ids
    /// start with `@TGS#_`, as Tencent requires of them.
    pub fn new_group_id(&mut self, t: GroupType) -> String {
        let n = self.next_group_no;
        self.next_group_no += 1;
        let prefix = if t == GroupType::Community {
            "@TGS#_"
        } else {
            "@TGS#"
        };
        format!("{prefix}2EMU{n:07}")
    }

    /// A callback's `EventTime`: now in ms, and always later than the one before.
    pub fn event_time_ms(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        self.last_event_ms = now.max(self.last_event_ms + 1);
        self.last_event_ms
    }

    /// Up to `limit` ids after cursor `next` (0: from the start), of `filter`'s type when set,
    /// and the cursor of the next page (0: the list is done).
    pub fn page(&self, next: u64, limit: usize, filter: Option<GroupType>) -> (Vec<String>, u64) {
        let mut ids = Vec::new();
        let mut rest = self
            .order
            .range(next.saturating_add(1)..)
            .filter(|(_, id)| filter.is_none_or(|t| self.groups[*id].group_type == t));
        for (seq, id) in rest.by_ref() {
            ids.push(id.clone());
            if ids.len() == limit {
                let more = rest.next().is_some();
                return (ids, if more { *seq } else { 0 });
            }
        }
        (ids, 0)
    }

    /// How many groups (of `filter`'s type when set): `TotalCount`.
    pub fn count(&self, filter: Option<GroupType>) -> usize {
        match filter {
            None => self.groups.len(),
            Some(t) => self.groups.values().filter(|g| g.group_type == t).count(),
        }
    }
}

/// Now, in Unix seconds.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
