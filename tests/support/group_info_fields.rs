//! The fields of `Group.CallbackAfterGroupInfoChanged` and what each becomes, for the property
//! tests (tests/properties.rs) and the fuzz target (fuzz/fuzz_targets/body_event.rs), which
//! check the same invariants: included by both with `#[path]`.
#![allow(dead_code)]

/// Known string fields and the `changes` member each becomes.
pub const CHANGES: [(&str, &str); 4] = [
    ("Name", "name"),
    ("Introduction", "introduction"),
    ("Notification", "notification"),
    ("FaceUrl", "face_url"),
];
/// Known string fields that become top-level members of the event.
pub const TOP: [(&str, &str); 2] = [("Type", "group_type"), ("Operator_Account", "operator")];
/// Every field the command reads; everything else is kept verbatim in `extra`.
pub const KNOWN: [&str; 10] = [
    "CallbackCommand",
    "GroupId",
    "Type",
    "Operator_Account",
    "Name",
    "Introduction",
    "Notification",
    "FaceUrl",
    "UserDefinedDataList",
    "EventTime",
];
/// The last millisecond of year 9999, the last instant RFC 3339 (and humantime) can write.
pub const LAST_RFC3339_MS: u64 = 253_402_300_799_999;

/// The event `Group.CallbackAfterGroupInfoChanged` makes of `body` with `query`, as the relay
/// would at 1,700,000,000,123 ms.
pub fn event_from(
    body: &[u8],
    query: &str,
    limits: tim_relay::ingress::body::BodyLimits,
) -> Result<tim_relay::ingress::event::Event, tim_relay::ingress::body::BodyError> {
    use std::time::{Duration, UNIX_EPOCH};
    let command =
        tim_relay::ingress::commands::find("Group.CallbackAfterGroupInfoChanged").expect("registered");
    let query = tim_relay::ingress::callback::CallbackQuery::parse(query);
    let origin = tim_relay::ingress::event::Origin {
        sdk_app_id: "1400000000",
        query: &query,
        raw_body: body,
        received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
    };
    command.event(&origin, limits)
}
