//! `Group.CallbackAfterTopicDestroyed`: topics of a Community group were dismissed.

use serde_json::Value;

use super::{group, group_event, Class, Command};
use crate::ingress::body::{checked_string, Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterTopicDestroyed",
    class: Class::GroupState,
    event_type: super::event_types::TOPIC_DESTROYED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    let max = body.limits().max_field_bytes;
    if let Some(ids) = body.list("TopicIdList", "an array of strings")? {
        let ids = ids
            .into_iter()
            .map(|id| checked_string(id, "TopicIdList", max).map(Value::String))
            .collect::<Result<Vec<_>, _>>()?;
        data.insert("topic_ids", Value::Array(ids));
    }
    Ok(group_event(group_id, common, data))
}
