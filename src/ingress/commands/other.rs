//! Every after/notify callback without an event of its own (State, Profile, Sns, Follow, the
//! C2C after-callbacks, OfficialAccount, Alert, Bot, the Group callbacks outside the state and
//! message tables, and any command the relay does not know): one `tim.webhook` event with the
//! command and the body verbatim, on `KAFKA_OTHER_TOPIC`, keyed by its natural subject.
//!
//! The key, by family (README, "Every command"):
//! - State: `Info.To_Account` (required);
//! - Profile, C2C, Bot: `From_Account` (required);
//! - Sns: the first `PairList` entry's `From_Account` (required);
//! - Alert: the REST API `Command` the alert is about, else the callback command;
//! - anything else: the first of `GroupId`, `GroupID`, `From_Account`, `To_Account`,
//!   `Operator_Account` that is a non-empty string, else the callback command.

use serde_json::{Map, Value};

use crate::ingress::body::{checked_time, Body, BodyError, BodyLimits};
use crate::ingress::event::{Common, Event, Members, Origin, Parsed};

pub const EVENT_TYPE: &str = super::event_types::WEBHOOK;

/// Command families, by the part of the command before its first dot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    State,
    Profile,
    Sns,
    C2C,
    Bot,
    Alert,
    Other,
}

impl Family {
    pub fn of(command: &str) -> Self {
        match command.split_once('.').map_or(command, |(family, _)| family) {
            "State" => Family::State,
            "Profile" => Family::Profile,
            "Sns" => Family::Sns,
            "C2C" => Family::C2C,
            "Bot" => Family::Bot,
            "Alert" => Family::Alert,
            _ => Family::Other,
        }
    }
}

/// The `tim.webhook` event of one callback.
pub fn event(command: &str, family: Family, origin: &Origin, limits: BodyLimits) -> Result<Event, BodyError> {
    let body = Body::parse(origin.raw_body, limits)?;
    super::check_command(command, body.peek("CallbackCommand"))?;
    let fields = body.rest();
    let key = key(command, family, &fields, limits.max_field_bytes)?;
    let parsed = webhook(command, key, fields, |t| checked_time(t, "EventTime").ok());
    Ok(Event::new(EVENT_TYPE, origin, parsed, Map::new()))
}

/// `{"command", "body"}` with the common fields Tencent's body carries, read without refusing
/// anything: the body is kept whole, so nothing is lost when a field is not what we expect.
pub(crate) fn webhook(
    command: &str,
    key: String,
    body: Map<String, Value>,
    time_ms: impl Fn(Value) -> Option<u64>,
) -> Parsed {
    let text = |field: &str| match body.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let common = Common {
        group_id: text("GroupId").or_else(|| text("GroupID")),
        group_type: text("Type"),
        operator: text("Operator_Account"),
        event_time_ms: body.get("EventTime").cloned().and_then(time_ms),
    };
    let mut data = Members::new();
    data.insert("command", Value::String(command.into()));
    data.insert("body", Value::Object(body));
    Parsed { key, common, data }
}

/// The first of `fields` that is a non-empty string of at most `max` bytes: a subject.
pub(crate) fn first_subject(body: &Map<String, Value>, fields: &[&str], max: usize) -> Option<String> {
    fields.iter().find_map(|f| match body.get(*f) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= max => Some(s.clone()),
        _ => None,
    })
}

fn key(command: &str, family: Family, body: &Map<String, Value>, max: usize) -> Result<String, BodyError> {
    let required = |field: &'static str, v: Option<&Value>| match v {
        None => Err(BodyError::Missing(field)),
        Some(Value::String(s)) if s.is_empty() => Err(BodyError::Empty(field)),
        Some(Value::String(s)) if s.len() > max => Err(BodyError::TooLong(field, max)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(BodyError::NotAString(field)),
    };
    match family {
        Family::State => required(
            "Info.To_Account",
            body.get("Info").and_then(|i| i.get("To_Account")),
        ),
        Family::Profile | Family::C2C | Family::Bot => required("From_Account", body.get("From_Account")),
        Family::Sns => required(
            "PairList.From_Account",
            body.get("PairList")
                .and_then(|l| l.get(0))
                .and_then(|p| p.get("From_Account")),
        ),
        Family::Alert => Ok(first_subject(body, &["Command"], max).unwrap_or_else(|| command.to_string())),
        Family::Other => Ok(first_subject(
            body,
            &[
                "GroupId",
                "GroupID",
                "From_Account",
                "To_Account",
                "Operator_Account",
            ],
            max,
        )
        .unwrap_or_else(|| command.to_string())),
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::ingress::callback::CallbackQuery;

    fn run(command: &str, body: &str) -> Result<Event, BodyError> {
        let query = CallbackQuery::default();
        let origin = Origin::for_test(&query, body.as_bytes());
        event(command, Family::of(command), &origin, BodyLimits::default())
    }

    #[test]
    fn each_family_is_keyed_by_its_subject_and_the_body_is_kept_whole() {
        for (command, body, key) in [
            (
                "State.StateChange",
                r#"{"Info":{"Action":"Login","To_Account":"u1"}}"#,
                "u1",
            ),
            (
                "C2C.CallbackAfterSendMsg",
                r#"{"From_Account":"a","To_Account":"b"}"#,
                "a",
            ),
            (
                "Sns.CallbackFriendAdd",
                r#"{"PairList":[{"From_Account":"x","To_Account":"y"}]}"#,
                "x",
            ),
            (
                "Alert.RequestOverLimit",
                r#"{"ServiceName":"s","Command":"v4/x","Request":80}"#,
                "v4/x",
            ),
            (
                "Group.CallbackOnDailyGroupQuotaAlarm",
                r#"{"QuotaUsed":7,"Quota":10}"#,
                "Group.CallbackOnDailyGroupQuotaAlarm",
            ),
            ("Brand.New", r#"{"To_Account":"t"}"#, "t"),
        ] {
            let e = run(command, body).unwrap();
            assert_eq!(e.key, key, "{command}");
            assert_eq!(e.event_type, "tim.webhook");
            assert_eq!(e.data["command"], command);
            let want: Value = serde_json::from_str(body).unwrap();
            assert_eq!(e.data["body"], want);
        }
    }

    #[test]
    fn a_known_family_without_its_subject_is_refused() {
        assert_eq!(
            run("C2C.CallbackAfterSendMsg", r#"{"To_Account":"b"}"#).unwrap_err(),
            BodyError::Missing("From_Account")
        );
        assert_eq!(
            run("State.StateChange", r#"{"Info":{"To_Account":""}}"#).unwrap_err(),
            BodyError::Empty("Info.To_Account")
        );
        assert_eq!(
            run(
                "State.StateChange",
                r#"{"CallbackCommand":"C2C.X","Info":{"To_Account":"u"}}"#
            )
            .unwrap_err(),
            BodyError::CommandMismatch
        );
    }
}
