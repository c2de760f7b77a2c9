//! `Group.CallbackAfterGroupDestroyed`: the group was dismissed (members: not sent for
//! Community groups).

use super::fields::{members, profile, string};
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterGroupDestroyed",
    class: Class::GroupState,
    event_type: super::event_types::GROUP_DESTROYED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    string(body, "Owner_Account", "owner", &mut data)?;
    profile(body, &mut data)?;
    members(body, "MemberList", &mut data)?;
    Ok(group_event(group_id, common, data))
}
