//! Random changes to a [`World`], and the callbacks Tencent sends for each
//! (`../shared/spec/tencent-im-webhooks.md` §2; the shapes of `tests/fixtures/commands/`).
//!
//! Only what the spec documents is sent. What Tencent sends no callback for is still applied to
//! the world, and is exactly the drift `tim-relay reconcile` repairs: a group's introduction,
//! notification, face URL and member roles at creation (the create callback carries only the
//! name, owner, member accounts and custom fields), the owner as a member (the create
//! callback's `MemberList`, as in Tencent's sample, lists the other members), custom field
//! changes (unless [`World::custom_in_info_callback`]).

use serde_json::{json, Map, Value};

use super::generate::{account, ACCOUNTS};
use super::rng::Rng;
use super::world::{unix_secs, Group, GroupType, Role, World, MAX_ATTRS};

/// A callback body, as Tencent posts it.
pub type Callback = Value;

/// The changes [`World::random_operation`] draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    InfoChanged,
    /// Sends a callback only when [`World::custom_in_info_callback`].
    CustomChanged,
    Join,
    Exit,
    OwnerChanged,
    MemberFieldChanged,
    AttrChanged,
    Destroy,
}

impl Operation {
    /// With their weights in a random draw.
    pub const WEIGHTED: [(Operation, u64); 9] = [
        (Operation::Create, 10),
        (Operation::InfoChanged, 20),
        (Operation::CustomChanged, 8),
        (Operation::Join, 20),
        (Operation::Exit, 12),
        (Operation::OwnerChanged, 5),
        (Operation::MemberFieldChanged, 12),
        (Operation::AttrChanged, 10),
        (Operation::Destroy, 3),
    ];

    pub fn random(rng: &mut Rng) -> Operation {
        let total: u64 = Self::WEIGHTED.iter().map(|(_, w)| w).sum();
        let mut n = rng.below(total);
        for (op, w) in Self::WEIGHTED {
            if n < w {
                return op;
            }
            n -= w;
        }
        Operation::Create
    }
}

impl World {
    /// Applies one random change to a random group (or creates one) and returns the callbacks
    /// Tencent would send for it (none for a change Tencent sends nothing for).
    pub fn random_operation(&mut self, rng: &mut Rng) -> Vec<Callback> {
        for _ in 0..20 {
            if let Some(callbacks) = self.operate(Operation::random(rng), rng) {
                return callbacks;
            }
        }
        self.operate(Operation::Create, rng)
            .expect("a group can always be created")
    }

    /// Applies `op` to a random group it fits; None when no group fits it this time.
    pub fn operate(&mut self, op: Operation, rng: &mut Rng) -> Option<Vec<Callback>> {
        if op == Operation::Create {
            return Some(vec![self.create(rng)]);
        }
        if self.is_empty() {
            return None;
        }
        let id = self
            .nth_group(rng.below(self.len() as u64) as usize)?
            .group_id
            .clone();
        let custom_callback = self.custom_in_info_callback;
        let custom_keys = self.custom_keys.clone();
        let has_attrs = self.has_attrs(self.group(&id)?.group_type);
        let time = self.event_time_ms();
        let g = self.group_mut(&id)?;
        let operator = if rng.chance(0.3) {
            "administrator".to_string()
        } else {
            g.owner.clone()
        };
        let mut fields = Map::new();
        let command = match op {
            Operation::Create => unreachable!("handled above"),
            Operation::InfoChanged => {
                fields.insert("Operator_Account".into(), json!(operator));
                info_changed(g, rng, &mut fields);
                "Group.CallbackAfterGroupInfoChanged"
            }
            Operation::CustomChanged => {
                if custom_keys.is_empty() {
                    return None;
                }
                let key = rng.pick(&custom_keys).clone();
                let value = if rng.chance(0.2) {
                    String::new()
                } else {
                    rng.word()
                };
                match value.is_empty() {
                    true => g.custom.remove(&key),
                    false => g.custom.insert(key.clone(), value.clone()),
                };
                g.info_seq += 1;
                if !custom_callback {
                    return Some(Vec::new());
                }
                fields.insert("Operator_Account".into(), json!(operator));
                fields.insert(
                    "UserDefinedDataList".into(),
                    json!([{ "Key": key, "Value": value }]),
                );
                "Group.CallbackAfterGroupInfoChanged"
            }
            Operation::Join => {
                let n = rng.between(1, 3);
                let joined: Vec<String> = (0..n)
                    .map(|_| account(rng.below(ACCOUNTS)))
                    .filter(|a| g.add_member(a, Role::Member, "", unix_secs()))
                    .collect();
                if joined.is_empty() {
                    return None;
                }
                let join_type = if joined.len() == 1 && rng.chance(0.5) {
                    "Apply"
                } else {
                    "Invited"
                };
                let operator = if join_type == "Apply" {
                    joined[0].clone()
                } else {
                    operator
                };
                fields.insert("JoinType".into(), json!(join_type));
                fields.insert("Operator_Account".into(), json!(operator));
                fields.insert("NewMemberList".into(), accounts(&joined));
                "Group.CallbackAfterNewMemberJoin"
            }
            Operation::Exit => {
                let others: Vec<String> = non_owners(g);
                if others.is_empty() {
                    return None;
                }
                let quit = rng.chance(0.5);
                let n = if quit {
                    1
                } else {
                    rng.between(1, 2.min(others.len() as u64))
                };
                let mut left = Vec::new();
                for _ in 0..n {
                    let a = rng.pick(&others).clone();
                    if g.remove_member(&a) {
                        left.push(a);
                    }
                }
                let operator = if quit { left[0].clone() } else { operator };
                fields.insert("ExitType".into(), json!(if quit { "Quit" } else { "Kicked" }));
                fields.insert("Operator_Account".into(), json!(operator));
                fields.insert("ExitMemberList".into(), accounts(&left));
                "Group.CallbackAfterMemberExit"
            }
            Operation::OwnerChanged => {
                let others = non_owners(g);
                if others.is_empty() || g.group_type == GroupType::AVChatRoom {
                    return None;
                }
                let new = rng.pick(&others).clone();
                let old = g.owner.clone();
                g.set_owner(&new);
                fields.insert("Operator_Account".into(), json!(old));
                fields.insert("OldOwner_Account".into(), json!(old));
                fields.insert("NewOwner_Account".into(), json!(new));
                "Group.CallbackAfterChangeGroupOwner"
            }
            Operation::MemberFieldChanged => {
                let others = non_owners(g);
                if others.is_empty() || !g.group_type.has_member_list() {
                    return None;
                }
                let who = rng.pick(&others).clone();
                let m = g.member_mut(&who)?;
                if rng.chance(0.5) {
                    m.role = if m.role == Role::Admin {
                        Role::Member
                    } else {
                        Role::Admin
                    };
                } else {
                    m.name_card = if rng.chance(0.2) {
                        String::new()
                    } else {
                        rng.word()
                    };
                }
                fields.insert("Operator_Account".into(), json!(operator));
                fields.insert("Member_Account".into(), json!(who));
                fields.insert("Role".into(), json!(m.role.as_str()));
                fields.insert("NameCard".into(), json!(m.name_card));
                "Group.CallbackAfterMemberFieldChanged"
            }
            Operation::AttrChanged => {
                if !has_attrs {
                    return None;
                }
                fields.insert("Operator_Account".into(), json!(operator));
                attr_changed(g, rng, &mut fields);
                "Group.CallbackAfterGroupAttrChanged"
            }
            Operation::Destroy => {
                let g = self.remove(&id)?;
                fields.insert("Owner_Account".into(), json!(g.owner));
                fields.insert("Name".into(), json!(g.name));
                if g.group_type != GroupType::Community {
                    fields.insert("MemberList".into(), accounts(&non_owners(&g)));
                }
                return Some(vec![callback(
                    "Group.CallbackAfterGroupDestroyed",
                    &g,
                    fields,
                    time,
                    rng,
                )]);
            }
        };
        let g = self.group(&id)?;
        Some(vec![callback(command, g, fields, time, rng)])
    }

    /// A new group, with what its create callback leaves out set too (introduction,
    /// notification, face URL, admins among the first members).
    fn create(&mut self, rng: &mut Rng) -> Callback {
        let t = *rng.pick(&GroupType::ALL);
        let members = rng.between(1, 8) as usize;
        let mut g = self.random_group(rng, t, members);
        g.create_time = unix_secs();
        g.attrs.clear();
        let created = g.create_time;
        for account in non_owners(&g) {
            if let Some(m) = g.member_mut(&account) {
                m.name_card.clear();
                m.join_time = created;
            }
        }
        let time = self.event_time_ms();
        let mut fields = Map::new();
        fields.insert("Operator_Account".into(), json!(g.owner));
        fields.insert("Owner_Account".into(), json!(g.owner));
        fields.insert("Name".into(), json!(g.name));
        fields.insert("MemberList".into(), accounts(&non_owners(&g)));
        if !g.custom.is_empty() {
            let list: Vec<Value> = g
                .custom
                .iter()
                .map(|(k, v)| json!({ "Key": k, "Value": v }))
                .collect();
            fields.insert("UserDefinedDataList".into(), Value::Array(list));
        }
        let body = callback("Group.CallbackAfterCreateGroup", &g, fields, time, rng);
        self.insert(g);
        body
    }
}

/// Changes one to four of Name, Introduction, Notification, FaceUrl; lists only those.
fn info_changed(g: &mut Group, rng: &mut Rng, fields: &mut Map<String, Value>) {
    let mut changed = false;
    while !changed {
        for (i, name) in ["Name", "Introduction", "Notification", "FaceUrl"]
            .into_iter()
            .enumerate()
        {
            if !rng.chance(0.4) {
                continue;
            }
            let value = match i {
                0 => format!("{} {}", rng.word(), rng.word()),
                3 if rng.chance(0.8) => format!("https://faces.example/{}.png", rng.word()),
                _ if rng.chance(0.15) => String::new(),
                _ => format!("{} {}", rng.word(), rng.word()),
            };
            let slot = match i {
                0 => &mut g.name,
                1 => &mut g.introduction,
                2 => &mut g.notification,
                _ => &mut g.face_url,
            };
            *slot = value.clone();
            fields.insert(name.into(), json!(value));
            changed = true;
        }
    }
    g.info_seq += 1;
    g.last_info_time = unix_secs();
}

/// `set` (all anew), `modify` (some set), `delete` (some removed) or `clear`, as `OptionType`.
fn attr_changed(g: &mut Group, rng: &mut Rng, fields: &mut Map<String, Value>) {
    let keys: Vec<String> = g.attrs.keys().cloned().collect();
    let option = match rng.below(10) {
        0..=2 => "set",
        3..=6 if keys.len() < MAX_ATTRS => "modify",
        7..=8 if !keys.is_empty() => "delete",
        _ => "clear",
    };
    let mut listed = Vec::new();
    match option {
        "set" | "modify" => {
            if option == "set" {
                g.attrs.clear();
            }
            for _ in 0..rng.between(1, 3) {
                let key = if option == "modify" && !keys.is_empty() && rng.chance(0.5) {
                    rng.pick(&keys).clone()
                } else {
                    format!("attr_{}", rng.word())
                };
                if g.attrs.len() < MAX_ATTRS || g.attrs.contains_key(&key) {
                    let value = rng.word();
                    g.attrs.insert(key.clone(), value.clone());
                    listed.push(json!({ "key": key, "value": value }));
                }
            }
        }
        "delete" => {
            let key = rng.pick(&keys).clone();
            g.attrs.remove(&key);
            listed.push(json!({ "key": key }));
        }
        _ => g.attrs.clear(),
    }
    fields.insert("OptionType".into(), json!(option));
    fields.insert("GroupAttr".into(), Value::Array(listed));
}

fn non_owners(g: &Group) -> Vec<String> {
    g.members()
        .iter()
        .filter(|m| m.account != g.owner)
        .map(|m| m.account.clone())
        .collect()
}

fn accounts(list: &[String]) -> Value {
    Value::Array(list.iter().map(|a| json!({ "Member_Account": a })).collect())
}

/// `CallbackCommand`, `GroupId`, `Type`, `fields`, then `EventTime` in ms: a string or a
/// number at random, as Tencent's pages show both.
fn callback(command: &str, g: &Group, fields: Map<String, Value>, time: u64, rng: &mut Rng) -> Callback {
    let mut body = Map::new();
    body.insert("CallbackCommand".into(), json!(command));
    body.insert("GroupId".into(), json!(g.group_id));
    body.insert("Type".into(), json!(g.group_type.as_str()));
    body.extend(fields);
    let time = if rng.chance(0.5) {
        json!(time.to_string())
    } else {
        json!(time)
    };
    body.insert("EventTime".into(), time);
    Value::Object(body)
}
