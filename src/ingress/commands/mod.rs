//! The registry of callback commands. Supporting a command means one file in this directory
//! (its wire fields, its checks, its mapping to the event), its `mod` line and one line in
//! [`REGISTRY`], and its event type in [`event_types`]; the README's "Adding a command" lists
//! the rest (fixture, schema, README row), which `tests/api/commands.rs` demands. The HTTP
//! handler only asks [`route`] where a command goes and hands it the body.
//!
//! Commands the registry does not name are routed by family: before-callbacks wait for a
//! decision ([`before`]), push batches become one event per entry ([`push`]), and every other
//! after/notify callback, known or not, is published verbatim as `tim.webhook` ([`other`]).

use serde_json::{Map, Value};

use crate::ingress::body::{checked_string, Body, BodyError, BodyLimits};
use crate::ingress::event::{Common, Event, Members, Origin, Parsed};

pub mod before;
pub mod event_types;
mod fields;
pub mod other;
pub mod push;

mod group_attr_changed;
mod group_created;
mod group_destroyed;
mod group_full;
mod group_info_changed;
mod member_changed;
mod member_exited;
mod member_joined;
mod member_state_changed;
mod message_extension_changed;
mod message_recalled;
mod message_send_failed;
mod message_sent;
mod owner_changed;
mod read_receipt;
mod topic_created;
mod topic_destroyed;
mod topic_info_changed;

/// Which topic a command's events go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// The life of a group: `KAFKA_TOPIC`, keyed by GroupId, one topic so that one group's
    /// events keep their order across types.
    GroupState,
    /// Messages in groups: `KAFKA_MESSAGES_TOPIC`, keyed by GroupId.
    GroupMessage,
    /// Every other after/notify callback, verbatim: `KAFKA_OTHER_TOPIC`.
    Other,
}

/// One callback command with an event of its own.
pub struct Command {
    /// `CallbackCommand` as Tencent sends it.
    pub name: &'static str,
    pub class: Class,
    /// The event's `type` and CloudEvents `ce_type`: one of [`event_types`].
    pub event_type: &'static str,
    /// Takes the command's fields out of the body; what it leaves becomes `extra`.
    pub read: fn(&mut Body) -> Result<Parsed, BodyError>,
}

/// Every command with an event of its own.
pub const REGISTRY: &[Command] = &[
    group_created::COMMAND,
    group_info_changed::COMMAND,
    member_joined::COMMAND,
    member_exited::COMMAND,
    owner_changed::COMMAND,
    member_changed::COMMAND,
    group_attr_changed::COMMAND,
    group_full::COMMAND,
    group_destroyed::COMMAND,
    topic_created::COMMAND,
    topic_info_changed::COMMAND,
    topic_destroyed::COMMAND,
    member_state_changed::COMMAND,
    message_sent::COMMAND,
    message_recalled::COMMAND,
    read_receipt::COMMAND,
    message_extension_changed::COMMAND,
    message_send_failed::COMMAND,
];

/// Where a callback goes.
#[derive(Clone, Copy)]
pub enum Route {
    /// A command with its own event.
    Event(&'static Command),
    /// A before-callback: Tencent waits for allow or deny; nothing is published.
    Decision(&'static before::Before),
    /// A push batch, `{"Events":[...]}`: one `tim.webhook` event per entry.
    Push,
    /// Any other after/notify callback: one `tim.webhook` event, keyed by the family's rule.
    Webhook(other::Family),
}

/// Where a callback with this `CallbackCommand` goes. Every name has a route: Tencent sends
/// commands nobody switched on (`Alert.RequestOverLimit`), and new ones appear.
pub fn route(name: &str) -> Route {
    if let Some(command) = REGISTRY.iter().find(|c| c.name == name) {
        return Route::Event(command);
    }
    if let Some(before) = before::find(name) {
        return Route::Decision(before);
    }
    if push::is_push(name) {
        return Route::Push;
    }
    Route::Webhook(other::Family::of(name))
}

/// What a checked callback asks of the relay.
pub enum Dispatched {
    /// Publish these events, in order, to the topic of `class`.
    Publish(Vec<Event>, Class),
    /// A before-callback whose body passed its checks: answer with a decision.
    Decide,
}

/// Reads a callback's body by its command's route: the one entry point from HTTP. Nothing is
/// published unless this succeeds for the whole body.
pub fn dispatch(name: &str, origin: &Origin, limits: BodyLimits) -> Result<Dispatched, BodyError> {
    Ok(match route(name) {
        Route::Event(command) => Dispatched::Publish(vec![command.event(origin, limits)?], command.class),
        Route::Decision(before) => {
            before.check(name, origin.raw_body, limits)?;
            Dispatched::Decide
        }
        Route::Push => Dispatched::Publish(push::events(name, origin, limits)?, Class::Other),
        Route::Webhook(family) => {
            Dispatched::Publish(vec![other::event(name, family, origin, limits)?], Class::Other)
        }
    })
}

/// The command of that name in the registry, if it has an event of its own.
pub fn find(name: &str) -> Option<&'static Command> {
    REGISTRY.iter().find(|c| c.name == name)
}

/// Reads the body and checks that its `CallbackCommand`, when present, is the query's.
pub fn body_for<'a>(name: &str, raw: &'a [u8], limits: BodyLimits) -> Result<Body<'a>, BodyError> {
    let mut body = Body::parse(raw, limits)?;
    check_command(name, body.peek("CallbackCommand"))?;
    body.take("CallbackCommand");
    Ok(body)
}

/// A body's `CallbackCommand` must be a string equal to the query's; absent is fine.
pub(crate) fn check_command(name: &str, in_body: Option<&Value>) -> Result<(), BodyError> {
    match in_body {
        None => Ok(()),
        Some(Value::String(c)) if c == name => Ok(()),
        Some(Value::String(_)) => Err(BodyError::CommandMismatch),
        Some(_) => Err(BodyError::NotAString("CallbackCommand")),
    }
}

impl Command {
    /// Reads a raw body into this command's event. Nothing is published unless this succeeds.
    pub fn event(&self, origin: &Origin, limits: BodyLimits) -> Result<Event, BodyError> {
        let mut body = body_for(self.name, origin.raw_body, limits)?;
        let parsed = (self.read)(&mut body)?;
        Ok(Event::new(self.event_type, origin, parsed, body.rest()))
    }
}

/// The fields every group callback shares: `GroupId` (required, not empty), `Type`,
/// `Operator_Account` and `EventTime`.
pub(crate) fn group(body: &mut Body) -> Result<(String, Common), BodyError> {
    let group_id = body.required("GroupId")?;
    let common = Common {
        group_id: Some(group_id.clone()),
        group_type: body.string("Type")?,
        operator: body.string("Operator_Account")?,
        event_time_ms: body.time_ms("EventTime")?,
    };
    Ok((group_id, common))
}

/// A group event: keyed by its GroupId, with the command's own fields.
pub(crate) fn group_event(group_id: String, common: Common, data: Members) -> Parsed {
    Parsed {
        key: group_id,
        common,
        data,
    }
}

/// `UserDefinedDataList` shape, for its error message.
pub(crate) const CUSTOM_SHAPE: &str = r#"an array of {"Key":string,"Value":string}"#;

/// `UserDefinedDataList` into `custom` (Key -> Value; a repeated Key keeps its last Value)
/// and, when entries carry other members, `custom_members` (by Key).
pub(crate) fn custom(body: &mut Body, data: &mut Members) -> Result<(), BodyError> {
    const FIELD: &str = "UserDefinedDataList";
    let max = body.limits().max_field_bytes;
    let Some(entries) = body.list(FIELD, CUSTOM_SHAPE)? else {
        return Ok(());
    };
    let (mut custom, mut members) = (Map::new(), Map::new());
    for entry in entries {
        let Value::Object(entry) = entry else {
            return Err(BodyError::BadShape(FIELD, CUSTOM_SHAPE));
        };
        // Walked, not looked up: the usual entry has only Key and Value, and is never hashed.
        let (mut key, mut value, mut others) = (None, None, Map::new());
        for (name, member) in entry {
            match name.as_str() {
                "Key" => key = Some(member),
                "Value" => value = Some(member),
                _ => {
                    others.insert(name, member);
                }
            }
        }
        let (Some(key @ Value::String(_)), Some(value @ Value::String(_))) = (key, value) else {
            return Err(BodyError::BadShape(FIELD, CUSTOM_SHAPE));
        };
        let key = checked_string(key, "UserDefinedDataList.Key", max)?;
        let value = checked_string(value, "UserDefinedDataList.Value", max)?;
        if others.is_empty() {
            members.shift_remove(&key);
        } else {
            members.insert(key.clone(), Value::Object(others));
        }
        custom.insert(key, Value::String(value));
    }
    data.insert("custom", Value::Object(custom));
    if !members.is_empty() {
        data.insert("custom_members", Value::Object(members));
    }
    Ok(())
}
