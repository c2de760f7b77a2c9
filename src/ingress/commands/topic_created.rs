//! `Group.CallbackAfterCreateTopic`: a topic was created in a Community group.

use serde_json::Value;

use super::fields::{profile, string};
use super::{custom, group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterCreateTopic",
    class: Class::GroupState,
    event_type: super::event_types::TOPIC_CREATED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    let topic = body.required("TopicId")?;
    data.insert("topic_id", Value::String(topic));
    string(body, "Owner_Account", "owner", &mut data)?;
    profile(body, &mut data)?;
    custom(body, &mut data)?;
    Ok(group_event(group_id, common, data))
}
