//! `Group.CallbackAfterCreateGroup`: a group was created; its initial profile and members.

use super::fields::{members, string};
use super::{custom, group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterCreateGroup",
    class: Class::GroupState,
    event_type: super::event_types::GROUP_CREATED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    string(body, "Owner_Account", "owner", &mut data)?;
    super::fields::profile(body, &mut data)?;
    members(body, "MemberList", &mut data)?;
    custom(body, &mut data)?;
    Ok(group_event(group_id, common, data))
}
