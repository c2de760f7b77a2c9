//! `Group.CallbackOnMemberStateChange`: AVChatRoom members went online or offline (`state`,
//! from `EventType`) and why (`cause`, from `EventCause`).

use super::fields::{members, string};
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackOnMemberStateChange",
    class: Class::GroupState,
    event_type: super::event_types::MEMBER_STATE_CHANGED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    string(body, "EventType", "state", &mut data)?;
    string(body, "EventCause", "cause", &mut data)?;
    members(body, "MemberList", &mut data)?;
    Ok(group_event(group_id, common, data))
}
