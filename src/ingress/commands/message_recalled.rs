//! `Group.CallbackAfterRecallMsg`: messages were recalled; `msg_seqs` lists their MsgSeq.

use serde_json::Value;

use super::fields::string;
use super::{group, group_event, Class, Command};
use crate::ingress::body::{checked_uint, Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterRecallMsg",
    class: Class::GroupMessage,
    event_type: super::event_types::MESSAGE_RECALLED,
    read,
};

const SHAPE: &str = r#"an array of {"MsgSeq":integer}"#;

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    if let Some(entries) = body.list("MsgSeqList", SHAPE)? {
        let mut seqs = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Object(mut entry) = entry else {
                return Err(BodyError::BadShape("MsgSeqList", SHAPE));
            };
            let seq = entry
                .shift_remove("MsgSeq")
                .ok_or(BodyError::BadShape("MsgSeqList", SHAPE))?;
            seqs.push(Value::from(checked_uint(seq, "MsgSeqList.MsgSeq")?));
        }
        data.insert("msg_seqs", Value::Array(seqs));
    }
    string(body, "TopicId", "topic_id", &mut data)?;
    Ok(group_event(group_id, common, data))
}
