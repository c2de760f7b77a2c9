//! `Group.CallbackAfterReadReceipt`: read receipts of group messages; `receipts` is Tencent's
//! `GroupMsgReceiptList` verbatim.

use super::fields::array;
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterReadReceipt",
    class: Class::GroupMessage,
    event_type: super::event_types::READ_RECEIPT,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    array(
        body,
        "GroupMsgReceiptList",
        "receipts",
        "an array of receipts",
        &mut data,
    )?;
    Ok(group_event(group_id, common, data))
}
