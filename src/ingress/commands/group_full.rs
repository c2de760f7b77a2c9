//! `Group.CallbackAfterGroupFull`: the group became full, or a join failed because it is.

use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterGroupFull",
    class: Class::GroupState,
    event_type: super::event_types::GROUP_FULL,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    Ok(group_event(group_id, common, Members::new()))
}
