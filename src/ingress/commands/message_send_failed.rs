//! `Group.CallbackSendMsgException`: sending a group message failed. `error_code` and
//! `error_info` are the failure Tencent reports in the request, not an answer code.

use super::fields::{message, string};
use super::{group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackSendMsgException",
    class: Class::GroupMessage,
    event_type: super::event_types::MESSAGE_SEND_FAILED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    message(body, &mut data)?;
    // ErrorCode may be negative: kept as the integer Tencent sent.
    if let Some(code) = body.value("ErrorCode", "an integer", |v| v.is_i64() || v.is_u64())? {
        data.insert("error_code", code);
    }
    string(body, "ErrorInfo", "error_info", &mut data)?;
    Ok(group_event(group_id, common, data))
}
