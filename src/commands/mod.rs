//! The registry of callback commands. Supporting a command means one file in this directory
//! (its wire fields, its checks, its mapping to the event) and one line in [`REGISTRY`]; the
//! HTTP handler only looks the command up here and hands it the body.

use serde_json::Value;

use crate::body::{Body, BodyError, BodyLimits};
use crate::event::{Event, Origin, Parsed};

mod group_info_changed;

/// Which topic a command's events go to, or whether Tencent waits for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The life of a group: `KAFKA_TOPIC`, keyed by GroupId.
    GroupState,
}

/// One callback command.
pub struct Command {
    /// `CallbackCommand` as Tencent sends it.
    pub name: &'static str,
    pub class: Class,
    /// The event's `type` and CloudEvents `ce_type`.
    pub event_type: &'static str,
    /// Takes the command's fields out of the body; what it leaves becomes `extra`.
    pub read: fn(&mut Body) -> Result<Parsed, BodyError>,
}

/// Every command the relay knows.
pub const REGISTRY: &[Command] = &[group_info_changed::COMMAND];

/// The command of that name, if the relay knows it.
pub fn find(name: &str) -> Option<&'static Command> {
    REGISTRY.iter().find(|c| c.name == name)
}

impl Command {
    /// Reads a raw body into this command's event. Nothing is published unless this succeeds.
    pub fn event(&self, origin: &Origin, limits: BodyLimits) -> Result<Event, BodyError> {
        let mut body = Body::parse(origin.raw_body, limits)?;
        // The body names its command too; one that disagrees with the query is not trusted.
        match body.take("CallbackCommand") {
            None => {}
            Some(Value::String(c)) if c == self.name => {}
            Some(Value::String(_)) => return Err(BodyError::CommandMismatch),
            Some(_) => return Err(BodyError::NotAString("CallbackCommand")),
        }
        let parsed = (self.read)(&mut body)?;
        Ok(Event::new(self.event_type, origin, parsed, body.rest()))
    }
}
