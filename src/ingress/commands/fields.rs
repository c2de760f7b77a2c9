//! Field readers that several command files share: member lists, profile changes, messages.

use serde_json::Value;

use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::Members;

const MEMBERS_SHAPE: &str = r#"an array of {"Member_Account":string}"#;

/// A member list (`MemberList`, `NewMemberList`, ...) as `members`: the accounts, in order.
/// Entries that carry more than `Member_Account` keep the whole list in `extra` as well, so
/// nothing is dropped.
pub fn members(body: &mut Body, field: &'static str, data: &mut Members) -> Result<(), BodyError> {
    let max = body.limits().max_field_bytes;
    let entries = match body.peek(field) {
        None => return Ok(()),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(BodyError::BadShape(field, MEMBERS_SHAPE)),
    };
    let mut accounts = Vec::with_capacity(entries.len());
    let mut plain = true;
    for entry in entries {
        let Some(Value::String(account)) = entry.get("Member_Account") else {
            return Err(BodyError::BadShape(field, MEMBERS_SHAPE));
        };
        if account.len() > max {
            return Err(BodyError::TooLong(field, max));
        }
        plain &= entry.as_object().is_some_and(|e| e.len() == 1);
        accounts.push(Value::String(account.clone()));
    }
    if plain {
        body.take(field);
    }
    data.insert("members", Value::Array(accounts));
    Ok(())
}

/// Name, Introduction, Notification, FaceUrl: only those present, an empty string kept.
pub fn profile(body: &mut Body, data: &mut Members) -> Result<(), BodyError> {
    for (field, member) in [
        ("Name", "name"),
        ("Introduction", "introduction"),
        ("Notification", "notification"),
        ("FaceUrl", "face_url"),
    ] {
        if let Some(value) = body.string(field)? {
            data.insert(member, Value::String(value));
        }
    }
    Ok(())
}

/// An optional string field under a new name.
pub fn string(
    body: &mut Body,
    field: &'static str,
    member: &'static str,
    data: &mut Members,
) -> Result<(), BodyError> {
    if let Some(v) = body.string(field)? {
        data.insert(member, Value::String(v));
    }
    Ok(())
}

/// An optional integer field under a new name.
pub fn uint(
    body: &mut Body,
    field: &'static str,
    member: &'static str,
    data: &mut Members,
) -> Result<(), BodyError> {
    if let Some(v) = body.uint(field)? {
        data.insert(member, Value::from(v));
    }
    Ok(())
}

/// An optional list kept verbatim under a new name; it must be an array.
pub fn array(
    body: &mut Body,
    field: &'static str,
    member: &'static str,
    shape: &'static str,
    data: &mut Members,
) -> Result<(), BodyError> {
    if let Some(v) = body.value(field, shape, Value::is_array)? {
        data.insert(member, v);
    }
    Ok(())
}

/// What a group message callback carries (AfterSendMsg, SendMsgException).
pub fn message(body: &mut Body, data: &mut Members) -> Result<(), BodyError> {
    string(body, "From_Account", "from", data)?;
    uint(body, "MsgSeq", "msg_seq", data)?;
    uint(body, "Random", "random", data)?;
    uint(body, "MsgTime", "msg_time", data)?;
    uint(body, "OnlineOnlyFlag", "online_only_flag", data)?;
    string(body, "MsgId", "msg_id", data)?;
    string(body, "TopicId", "topic_id", data)?;
    array(body, "MsgBody", "msg_body", "an array of message elements", data)?;
    string(body, "CloudCustomData", "cloud_custom_data", data)
}
