//! Push-plugin callbacks (`Push.OfflinePush`, `Push.AllMemberPush`): a batch `{"Events":[...]}`
//! of 1 to 100 events with no top-level command; each event repeats it. Each becomes one
//! `tim.webhook` event on `KAFKA_OTHER_TOPIC`, keyed by `To_Account`, else `GroupID`, else
//! `From_Account`. Their `EventTime` is in seconds; `event_time_ms` is it times 1000.

use serde_json::Value;

use super::other::{first_subject, webhook, EVENT_TYPE};
use crate::ingress::body::{checked_uint, Body, BodyError, BodyLimits, MAX_EVENT_TIME_MS};
use crate::ingress::event::{stable_id, Event, Origin};

/// Tencent sends at most 100 events per push callback.
pub const MAX_EVENTS: usize = 100;
const SHAPE: &str = "an array of 1 to 100 event objects";

pub fn is_push(command: &str) -> bool {
    command.starts_with("Push.")
}

/// The batch's events, in order; refused whole if any event is refused.
pub fn events(command: &str, origin: &Origin, limits: BodyLimits) -> Result<Vec<Event>, BodyError> {
    let mut body = Body::parse(origin.raw_body, limits)?;
    super::check_command(command, body.peek("CallbackCommand"))?;
    body.take("CallbackCommand");
    let Some(Value::Array(entries)) = body.take("Events") else {
        return Err(BodyError::BadShape("Events", SHAPE));
    };
    if entries.is_empty() {
        return Err(BodyError::BadShape("Events", SHAPE));
    }
    if entries.len() > MAX_EVENTS {
        return Err(BodyError::TooManyEntries("Events", MAX_EVENTS));
    }
    // Anything else at the top level travels with every event.
    let rest = body.rest();
    let max = limits.max_field_bytes;
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let Value::Object(entry) = entry else {
                return Err(BodyError::BadShape("Events", SHAPE));
            };
            super::check_command(command, entry.get("CallbackCommand"))?;
            let key = first_subject(&entry, &["To_Account", "GroupID", "From_Account"], max)
                .ok_or(BodyError::Missing("Events.To_Account"))?;
            // Seconds; a time past year 9999 has no RFC 3339 form (`ce_time`) and is left out.
            let seconds = |t: Value| {
                checked_uint(t, "Events.EventTime")
                    .ok()
                    .and_then(|s| s.checked_mul(1000))
                    .filter(|ms| *ms <= MAX_EVENT_TIME_MS)
            };
            let parsed = webhook(command, key, entry, seconds);
            let mut event = Event::new(EVENT_TYPE, origin, parsed, rest.clone());
            // One body, many events: each is named by the body and its place in it.
            event.id = stable_id(
                origin.sdk_app_id,
                &[origin.raw_body, index.to_string().as_bytes()],
            );
            Ok(event)
        })
        .collect()
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::delivery::record::Record;
    use crate::ingress::callback::CallbackQuery;

    fn run(body: &str) -> Result<Vec<Event>, BodyError> {
        let query = CallbackQuery::default();
        let origin = Origin::for_test(&query, body.as_bytes());
        events("Push.OfflinePush", &origin, BodyLimits::default())
    }

    #[test]
    fn an_event_time_past_year_9999_is_left_out_not_a_panic() {
        let events = run(r#"{"Events":[{"To_Account":"a","EventTime":300000000000}]}"#).unwrap();
        assert_eq!(events[0].event_time_ms, None);
        let record = Record::from_event(&events[0], "t");
        assert!(record.headers.iter().any(|(k, _)| k == "ce_time"));
    }

    #[test]
    fn a_batch_is_one_to_a_hundred_events_each_with_a_subject() {
        assert!(run(r#"{"Events":[]}"#).is_err());
        assert!(run(r#"{"Events":{}}"#).is_err());
        let many = format!(
            r#"{{"Events":[{}]}}"#,
            vec![r#"{"To_Account":"a"}"#; 101].join(",")
        );
        assert_eq!(run(&many).unwrap_err(), BodyError::TooManyEntries("Events", 100));
        assert_eq!(
            run(r#"{"Events":[{"To_Account":"a"},{"Other":1}]}"#).unwrap_err(),
            BodyError::Missing("Events.To_Account")
        );
        assert_eq!(
            run(r#"{"Events":[{"GroupID":"g","EventTime":2}]}"#).unwrap()[0].event_time_ms,
            Some(2000)
        );
    }
}
