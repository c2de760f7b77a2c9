//! `Group.CallbackAfterMemberFieldChanged`: a member's role or name card changed.

use serde_json::Value;

use super::fields::string;
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterMemberFieldChanged",
    class: Class::GroupState,
    event_type: super::event_types::MEMBER_CHANGED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    let member = body.required("Member_Account")?;
    data.insert("member", Value::String(member));
    string(body, "Role", "role", &mut data)?;
    string(body, "NameCard", "name_card", &mut data)?;
    Ok(group_event(group_id, common, data))
}
