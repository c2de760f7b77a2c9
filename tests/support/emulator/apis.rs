//! The four REST APIs over a [`World`], as `../shared/spec/tencent-im-rest.md` §3 describes
//! them: each takes the request body and answers Tencent's JSON (envelope included).

use serde_json::{json, Map, Value};

use super::world::{Group, GroupType, Member, Role, World};

/// Most groups per `get_group_info`; most ids per list page; most members per page.
pub const MAX_INFO_GROUPS: usize = 50;
pub const MAX_LIST_LIMIT: u64 = 10_000;
pub const MAX_MEMBER_LIMIT: u64 = 200;
/// `Limit` of `get_group_member_info` when the request has none (the recommended page).
pub const DEFAULT_MEMBER_LIMIT: u64 = 100;
/// The Community `Next` cursor is this plus the member's join order: above 2^53, as Tencent's
/// can be, so a client that reads it as a float breaks here.
pub const COMMUNITY_CURSOR_BASE: u64 = 1 << 60;

/// A base field's value in a group.
type BaseValue = fn(&Group) -> Value;

/// Every base field of `get_group_info`, in answer order, with its value.
pub const BASE_FIELDS: [(&str, BaseValue); 15] = [
    ("Type", |g| json!(g.group_type.as_str())),
    ("Name", |g| json!(g.name)),
    ("Introduction", |g| json!(g.introduction)),
    ("Notification", |g| json!(g.notification)),
    ("FaceUrl", |g| json!(g.face_url)),
    ("Owner_Account", |g| json!(g.owner)),
    ("CreateTime", |g| json!(g.create_time)),
    ("InfoSeq", |g| json!(g.info_seq)),
    ("LastInfoTime", |g| json!(g.last_info_time)),
    ("LastMsgTime", |g| json!(g.last_msg_time)),
    ("NextMsgSeq", |g| json!(g.next_msg_seq)),
    ("MemberNum", |g| json!(g.member_num())),
    ("MaxMemberNum", |g| json!(g.max_member_num)),
    ("ApplyJoinOption", |g| json!(g.apply_join_option)),
    ("ShutUpAllMember", |g| {
        json!(if g.shut_up_all_member { "On" } else { "Off" })
    }),
];

/// Every member field, in answer order (`AppMemberDefinedData` aside).
pub const MEMBER_FIELDS: [&str; 8] = [
    "Member_Account",
    "Role",
    "JoinTime",
    "MsgSeq",
    "MsgFlag",
    "LastSendMsgTime",
    "ShutUpUntil",
    "NameCard",
];

/// Tencent's answer: `ActionStatus`, `ErrorCode`, `ErrorInfo`, then `rest`.
pub fn answer(code: i64, info: &str, rest: Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "ActionStatus".into(),
        json!(if code == 0 { "OK" } else { "FAIL" }),
    );
    out.insert("ErrorCode".into(), json!(code));
    out.insert("ErrorInfo".into(), json!(info));
    if let Value::Object(rest) = rest {
        out.extend(rest);
    }
    Value::Object(out)
}

pub fn fail(code: i64, info: &str) -> Value {
    answer(code, info, json!({}))
}

/// A GroupId Tencent refuses outright (10015): empty, over 48 bytes, or with a character that
/// is not printable ASCII (spaces included). The rule is the emulator's; the spec names the
/// code only.
pub fn invalid_group_id(id: &str) -> bool {
    id.is_empty() || id.len() > 48 || !id.bytes().all(|b| b.is_ascii_graphic())
}

/// A group id's error before any lookup: 10015 invalid, 10010 missing, else the group.
fn find<'a>(world: &'a World, id: &str) -> Result<&'a Group, (i64, &'static str)> {
    if invalid_group_id(id) {
        return Err((10015, "invalid group id"));
    }
    world
        .group(id)
        .ok_or((10010, "group does not exist or was dismissed"))
}

/// The group a one-group API's `GroupId` names, or the answer that refuses it: 10015 or 10010
/// first, then the injected fault.
fn requested<'a>(world: &'a World, body: &Value, fault: Option<i64>) -> Result<&'a Group, Value> {
    let id = body.get("GroupId").and_then(Value::as_str).unwrap_or("");
    let g = find(world, id).map_err(|(code, info)| fail(code, info))?;
    match fault {
        Some(code) => Err(fail(code, "injected error")),
        None => Ok(g),
    }
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    Some(
        v?.as_array()?
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
    )
}

/// `get_appid_group_list`: `Limit` (1 to 10000, default 10000), `Next` (0 first), `GroupType`.
/// A `Limit` out of range or an unknown `GroupType` answers 10004 rather than being clamped.
pub fn get_appid_group_list(world: &World, body: &Value) -> Value {
    let limit = match body.get("Limit") {
        None => MAX_LIST_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
            _ => return fail(10004, "Limit must be 1 to 10000"),
        },
    };
    let Some(next) = body.get("Next").map_or(Some(0), Value::as_u64) else {
        return fail(10004, "Next must be an unsigned integer");
    };
    let filter = match body.get("GroupType") {
        None => None,
        Some(t) => match t.as_str().and_then(GroupType::parse) {
            Some(t) => Some(t),
            None => return fail(10004, "unknown GroupType"),
        },
    };
    let (ids, next) = world.page(next, limit as usize, filter);
    let list: Vec<Value> = ids.into_iter().map(|id| json!({ "GroupId": id })).collect();
    answer(
        0,
        "",
        json!({ "TotalCount": world.count(filter), "GroupIdList": list, "Next": next }),
    )
}

/// A member's fields; `fields` None: every field and `AppMemberDefinedData`.
pub fn member_json(m: &Member, fields: Option<&[String]>, app_data: bool) -> Value {
    let all = fields.is_none();
    let wanted = |f: &str| all || f == "Member_Account" || fields.is_some_and(|l| l.iter().any(|x| x == f));
    let mut out = Map::new();
    for f in MEMBER_FIELDS.iter().filter(|f| wanted(f)) {
        let v = match *f {
            "Member_Account" => json!(m.account),
            "Role" => json!(m.role.as_str()),
            "JoinTime" => json!(m.join_time),
            "MsgSeq" => json!(m.seq()),
            "MsgFlag" => json!("AcceptAndNotify"),
            "NameCard" => json!(m.name_card),
            _ => json!(0),
        };
        out.insert(f.to_string(), v);
    }
    if all || app_data {
        out.insert("AppMemberDefinedData".into(), json!([]));
    }
    Value::Object(out)
}

/// The `ResponseFilter` of `get_group_info`, read as the spec's "reading taken here".
struct Filter {
    base: Option<Vec<String>>,
    members: Option<Vec<String>>,
    app_data: Option<Vec<String>>,
    member_app_data: bool,
}

impl Filter {
    fn read(body: &Value) -> Option<Filter> {
        let f = body.get("ResponseFilter")?;
        Some(Filter {
            base: Some(strings(f.get("GroupBaseInfoFilter")).unwrap_or_default()),
            members: strings(f.get("MemberInfoFilter")),
            app_data: Some(strings(f.get("AppDefinedDataFilter_Group")).unwrap_or_default()),
            member_app_data: f.get("AppDefinedDataFilter_GroupMember").is_some(),
        })
    }
}

/// One group of a `get_group_info` answer. Without a filter: every base field, every custom
/// field and (not for AVChatRoom) the whole member list with every member field. With one:
/// the base fields `GroupBaseInfoFilter` names, the custom keys `AppDefinedDataFilter_Group`
/// names, and `MemberList` only when `MemberInfoFilter` is given (`Member_Account` always).
fn group_json(g: &Group, filter: Option<&Filter>) -> Value {
    let mut out = Map::new();
    out.insert("GroupId".into(), json!(g.group_id));
    out.insert("ErrorCode".into(), json!(0));
    out.insert("ErrorInfo".into(), json!(""));
    let base = filter.and_then(|f| f.base.as_deref());
    for (f, value) in BASE_FIELDS {
        if base.is_some_and(|b| !b.iter().any(|x| x == f)) {
            continue;
        }
        out.insert(f.into(), value(g));
    }
    let keys = filter.and_then(|f| f.app_data.as_deref());
    let custom: Vec<Value> = g
        .custom
        .iter()
        .filter(|(k, _)| keys.is_none_or(|ks| ks.iter().any(|x| x == *k)))
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    if filter.is_none() || keys.is_some_and(|k| !k.is_empty()) {
        out.insert("AppDefinedData".into(), Value::Array(custom));
    }
    let members_asked = filter.is_none_or(|f| f.members.is_some());
    if members_asked && g.group_type.has_member_list() {
        let fields = filter.and_then(|f| f.members.as_deref());
        let app = filter.is_some_and(|f| f.member_app_data);
        let list: Vec<Value> = g.members().iter().map(|m| member_json(m, fields, app)).collect();
        out.insert("MemberList".into(), Value::Array(list));
    }
    Value::Object(out)
}

/// `get_group_info`: up to 50 ids, each answered with its own `ErrorCode` (10010 unknown or
/// destroyed, 10015 invalid, or `fault(id)` when a test injected one).
///
/// 1 MB (`max_bytes`): a group whose entry alone is larger answers a per-group 10018 (the
/// others are answered); when the entries together are larger, though each fits, the whole
/// call answers 10018 (`ActionStatus` FAIL, no `GroupInfo`): ask for fewer groups.
pub fn get_group_info(
    world: &World,
    body: &Value,
    max_bytes: usize,
    fault: &mut dyn FnMut(&str) -> Option<i64>,
) -> Value {
    let Some(ids) = body.get("GroupIdList").and_then(Value::as_array) else {
        return fail(10004, "GroupIdList is required");
    };
    if ids.is_empty() || ids.len() > MAX_INFO_GROUPS {
        return fail(10004, "GroupIdList must hold 1 to 50 group ids");
    }
    let filter = Filter::read(body);
    let mut entries = Vec::with_capacity(ids.len());
    let mut total = 0;
    for id in ids {
        let id = id.as_str().unwrap_or("");
        let entry = match (find(world, id), fault(id)) {
            (Err((code, info)), _) => group_error(id, code, info),
            (Ok(_), Some(code)) => group_error(id, code, "injected error"),
            (Ok(g), None) => {
                let entry = group_json(g, filter.as_ref());
                if json_len(&entry) > max_bytes {
                    group_error(id, 10018, "the answer would exceed 1 MB")
                } else {
                    entry
                }
            }
        };
        total += json_len(&entry) + 1;
        entries.push(entry);
    }
    if total + 100 > max_bytes {
        return fail(
            10018,
            "the answer would exceed 1 MB: ask for fewer groups or fields",
        );
    }
    answer(0, "", json!({ "GroupInfo": entries }))
}

fn group_error(id: &str, code: i64, info: &str) -> Value {
    json!({ "GroupId": id, "ErrorCode": code, "ErrorInfo": info })
}

pub fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

/// `get_group_member_info`: `Offset` paging, `Next` (a string) for Community groups; `Limit`
/// 1 to 200 (100 when absent). AVChatRoom answers 10007: the API is not for it. An `Offset`
/// on a Community group, or a `Next` on another type, answers 10004 (the wrong paging).
pub fn get_group_member_info(world: &World, body: &Value, fault: Option<i64>) -> Value {
    let g = match requested(world, body, fault) {
        Ok(g) => g,
        Err(refused) => return refused,
    };
    if !g.group_type.has_member_list() {
        return fail(10007, "get_group_member_info is not for AVChatRoom groups");
    }
    let limit = match body.get("Limit") {
        None => DEFAULT_MEMBER_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_MEMBER_LIMIT).contains(&n) => n,
            _ => return fail(10004, "Limit must be 1 to 200"),
        },
    } as usize;
    let roles: Option<Vec<Role>> =
        strings(body.get("MemberRoleFilter")).map(|r| r.iter().filter_map(|s| Role::parse(s)).collect());
    let fields = strings(body.get("MemberInfoFilter"));
    let app = body.get("AppDefinedDataFilter_GroupMember").is_some();
    let selected = g
        .members()
        .iter()
        .filter(|m| roles.as_ref().is_none_or(|r| r.contains(&m.role)));
    let community = g.group_type == GroupType::Community;
    let offset = body.get("Offset").map(|v| v.as_u64());
    let next = body.get("Next").map(|v| v.as_str());
    let (page, cursor): (Vec<&Member>, Option<String>) = if community {
        if offset.is_some_and(|o| o != Some(0)) {
            return fail(10004, "Community groups page with Next, not Offset");
        }
        let after = match next.flatten() {
            None | Some("") => 0,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if n >= COMMUNITY_CURSOR_BASE => n - COMMUNITY_CURSOR_BASE,
                _ => return fail(10004, "Next is not a cursor this API gave"),
            },
        };
        let mut rest = selected.filter(|m| m.seq() > after);
        let page: Vec<&Member> = rest.by_ref().take(limit).collect();
        let more = rest.next().is_some();
        let cursor = match page.last() {
            Some(last) if more => (COMMUNITY_CURSOR_BASE + last.seq()).to_string(),
            _ => String::new(),
        };
        (page, Some(cursor))
    } else {
        if next.is_some_and(|n| n != Some("")) {
            return fail(10004, "only Community groups page with Next");
        }
        let Some(offset) = offset.unwrap_or(Some(0)) else {
            return fail(10004, "Offset must be an unsigned integer");
        };
        (selected.skip(offset as usize).take(limit).collect(), None)
    };
    let list: Vec<Value> = page
        .into_iter()
        .map(|m| member_json(m, fields.as_deref(), app))
        .collect();
    let mut rest = json!({ "MemberNum": g.member_num(), "MemberList": list });
    if let Some(cursor) = cursor {
        rest["Next"] = json!(cursor);
    }
    answer(0, "", rest)
}

/// `get_group_attr`: `GroupAttrAry` with lower-case `key`/`value`; 10007 for a type without
/// attributes ([`World::types_without_attrs`]).
pub fn get_group_attr(world: &World, body: &Value, fault: Option<i64>) -> Value {
    let g = match requested(world, body, fault) {
        Ok(g) => g,
        Err(refused) => return refused,
    };
    if !world.has_attrs(g.group_type) {
        return fail(10007, "this group type has no attributes");
    }
    let attrs: Vec<Value> = g
        .attrs
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    answer(0, "", json!({ "GroupAttrAry": attrs }))
}
