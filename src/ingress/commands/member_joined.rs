//! `Group.CallbackAfterNewMemberJoin`: members joined (`join_type` Apply or Invited).

use super::fields::{members, string};
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterNewMemberJoin",
    class: Class::GroupState,
    event_type: super::event_types::MEMBER_JOINED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    string(body, "JoinType", "join_type", &mut data)?;
    members(body, "NewMemberList", &mut data)?;
    Ok(group_event(group_id, common, data))
}
