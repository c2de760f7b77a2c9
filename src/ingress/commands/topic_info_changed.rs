//! `Group.CallbackAfterTopicInfoChanged`: a topic's profile changed. `TopicId` is not in
//! Tencent's documented sample, so it is optional; `changes` is as for group profiles.

use super::fields::{profile, string};
use super::{custom, group, group_event, Class, Command};
use crate::ingress::body::{Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterTopicInfoChanged",
    class: Class::GroupState,
    event_type: super::event_types::TOPIC_INFO_CHANGED,
    read,
};

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    string(body, "TopicId", "topic_id", &mut data)?;
    let mut changes = Members::new();
    profile(body, &mut changes)?;
    custom(body, &mut changes)?;
    data.insert("changes", changes);
    Ok(group_event(group_id, common, data))
}
