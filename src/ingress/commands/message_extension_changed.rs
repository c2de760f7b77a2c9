//! `Group.CallbackAfterGroupMsgExtension`: a message's extensions were set, deleted or
//! cleared (`operate_type` 1, 2, 3); `extensions` is Tencent's `ExtensionList` verbatim.

use super::fields::{array, uint};
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterGroupMsgExtension",
    class: Class::GroupMessage,
    event_type: super::event_types::MESSAGE_EXTENSION_CHANGED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    uint(body, "MsgSeq", "msg_seq", &mut data)?;
    uint(body, "OperateType", "operate_type", &mut data)?;
    array(
        body,
        "ExtensionList",
        "extensions",
        "an array of extensions",
        &mut data,
    )?;
    uint(body, "Seq", "seq", &mut data)?;
    Ok(group_event(group_id, common, data))
}
