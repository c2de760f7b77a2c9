//! `Group.CallbackAfterGroupAttrChanged`: group attributes were set, modified, cleared or
//! deleted (`option_type`); `attrs` holds the attributes the callback lists, key -> value.

use serde_json::{Map, Value};

use super::fields::string;
use super::{group, group_event, Class, Command};
use crate::ingress::body::{checked_string, Body, BodyError};
use crate::ingress::event::{Members, Parsed};

pub const COMMAND: Command = Command {
    name: "Group.CallbackAfterGroupAttrChanged",
    class: Class::GroupState,
    event_type: super::event_types::GROUP_ATTR_CHANGED,
    read,
};

const SHAPE: &str = r#"an array of {"key":string,"value":string}"#;

fn read(body: &mut Body) -> Result<Parsed, BodyError> {
    let (group_id, common) = group(body)?;
    let mut data = Members::new();
    string(body, "OptionType", "option_type", &mut data)?;
    let max = body.limits().max_field_bytes;
    if let Some(entries) = body.list("GroupAttr", SHAPE)? {
        let mut attrs = Map::new();
        for entry in entries {
            let Value::Object(mut entry) = entry else {
                return Err(BodyError::BadShape("GroupAttr", SHAPE));
            };
            let key = entry
                .shift_remove("key")
                .ok_or(BodyError::BadShape("GroupAttr", SHAPE))?;
            let key = checked_string(key, "GroupAttr.key", max)?;
            // A deleted attribute may come without a value.
            let value = match entry.shift_remove("value") {
                Some(v) => Value::String(checked_string(v, "GroupAttr.value", max)?),
                None => Value::Null,
            };
            attrs.insert(key, value);
        }
        data.insert("attrs", Value::Object(attrs));
    }
    Ok(group_event(group_id, common, data))
}
