//! `Group.CallbackAfterChangeGroupOwner`: the group's owner changed.

use serde_json::Value;

use super::fields::string;
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterChangeGroupOwner",
    class: Class::GroupState,
    event_type: super::event_types::OWNER_CHANGED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    string(body, "OldOwner_Account", "old_owner", &mut data)?;
    // Without the new owner the event says nothing.
    let new_owner = body.required("NewOwner_Account")?;
    data.insert("new_owner", Value::String(new_owner));
    Ok(group_event(group_id, common, data))
}
