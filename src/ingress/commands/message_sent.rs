//! `Group.CallbackAfterSendMsg`: a message was sent in a group. `msg_body` is Tencent's
//! `MsgBody` verbatim.

use super::fields::message;
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterSendMsg",
    class: Class::GroupMessage,
    event_type: super::event_types::MESSAGE_SENT,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    message(body, &mut data)?;
    Ok(group_event(group_id, common, data))
}
