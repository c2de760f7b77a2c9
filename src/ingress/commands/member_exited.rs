//! `Group.CallbackAfterMemberExit`: members left (`exit_type` Quit) or were removed (Kicked).

use super::fields::{members, string};
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterMemberExit",
    class: Class::GroupState,
    event_type: super::event_types::MEMBER_EXITED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    string(body, "ExitType", "exit_type", &mut data)?;
    members(body, "ExitMemberList", &mut data)?;
    Ok(group_event(group_id, common, data))
}
