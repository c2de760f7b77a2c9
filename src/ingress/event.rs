//! The event envelope every command's event shares: identity, the app, the common group
//! fields, when and from where, then the command's own fields, then what the body carried
//! that no command field took (`extra`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ingress::callback::CallbackQuery;

mod members;
pub use members::{Member, Members};

pub const SCHEMA_VERSION: u32 = 1;

/// Namespace of the name-based (v5) event ids; fixed forever so re-deliveries map to one id.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a8e_5b7d_4c3e_9a10_4e2b_7d5f_0c11);

/// The fields most commands share, as a command file read them from the body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Common {
    pub group_id: Option<String>,
    pub group_type: Option<String>,
    pub operator: Option<String>,
    pub event_time_ms: Option<u64>,
}

/// What a command file makes of a body: the record key, the common fields and its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The Kafka key: the group or account the callback is about.
    pub key: String,
    pub common: Common,
    /// The command's own fields, in the order they appear in the event.
    pub data: Members,
}

/// Where a callback came from, for the envelope.
pub struct Origin<'a> {
    pub sdk_app_id: &'a str,
    pub query: &'a CallbackQuery,
    /// The body as received: with `EventTime`, it names the event (see `id`).
    pub raw_body: &'a [u8],
    pub received_at: SystemTime,
}

#[cfg(test)]
impl<'a> Origin<'a> {
    /// A callback of app `1`, received at the epoch: what the commands' unit tests read.
    pub fn for_test(query: &'a CallbackQuery, raw_body: &'a [u8]) -> Self {
        Self {
            sdk_app_id: "1",
            query,
            raw_body,
            received_at: std::time::UNIX_EPOCH,
        }
    }
}

/// A normalized event. Its JSON is the envelope's members in the order below, then the command's
/// own (`data`), then `extra` (see the `Serialize` impl).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub event_type: &'static str,
    pub schema_version: u32,
    pub sdk_app_id: String,
    pub group_id: Option<String>,
    pub group_type: Option<String>,
    pub operator: Option<String>,
    pub event_time_ms: Option<u64>,
    pub received_at: String,
    pub client_ip: Option<String>,
    pub platform: Option<String>,
    pub data: Members,
    /// Absent from the JSON when empty.
    pub extra: Map<String, Value>,
    /// The Kafka record key; not part of the payload.
    pub key: String,
}

/// Written by hand: `data` is a list of members rather than a map, and a derive would need
/// `#[serde(flatten)]`, which routes every event through serde's flattening adapter. This writes
/// the members in the order the derive did, skipping the same absent ones.
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn optional<E: SerializeStruct, T: Serialize>(
            event: &mut E,
            name: &'static str,
            value: &Option<T>,
        ) -> Result<(), E::Error> {
            match value {
                Some(value) => event.serialize_field(name, value),
                None => Ok(()),
            }
        }
        // A hint only: the five members always written, and `data`.
        let mut event = serializer.serialize_struct("Event", 5 + self.data.len())?;
        event.serialize_field("id", &self.id)?;
        event.serialize_field("type", self.event_type)?;
        event.serialize_field("schema_version", &self.schema_version)?;
        event.serialize_field("sdk_app_id", &self.sdk_app_id)?;
        optional(&mut event, "group_id", &self.group_id)?;
        optional(&mut event, "group_type", &self.group_type)?;
        optional(&mut event, "operator", &self.operator)?;
        optional(&mut event, "event_time_ms", &self.event_time_ms)?;
        event.serialize_field("received_at", &self.received_at)?;
        optional(&mut event, "client_ip", &self.client_ip)?;
        optional(&mut event, "platform", &self.platform)?;
        for (name, member) in self.data.iter() {
            event.serialize_field(name, member)?;
        }
        if !self.extra.is_empty() {
            event.serialize_field("extra", &self.extra)?;
        }
        event.end()
    }
}

impl Event {
    /// Wraps a command's fields in the envelope. When the body carries `EventTime`, `id` is the
    /// UUIDv5 of the app ID, a newline and the raw body, so a re-delivery gets the same `id`;
    /// without it two identical bodies cannot be told from a re-delivery, so `id` is random.
    pub fn new(event_type: &'static str, origin: &Origin, parsed: Parsed, extra: Map<String, Value>) -> Self {
        let id = match parsed.common.event_time_ms {
            Some(_) => stable_id(origin.sdk_app_id, &[origin.raw_body]),
            None => Uuid::new_v4().to_string(),
        };
        let Common {
            group_id,
            group_type,
            operator,
            event_time_ms,
        } = parsed.common;
        Event {
            id,
            event_type,
            schema_version: SCHEMA_VERSION,
            sdk_app_id: origin.sdk_app_id.to_string(),
            group_id,
            group_type,
            operator,
            event_time_ms,
            received_at: rfc3339(origin.received_at),
            client_ip: origin.query.client_ip.clone(),
            platform: origin.query.opt_platform.clone(),
            data: parsed.data,
            extra,
            key: parsed.key,
        }
    }

    /// CloudEvents `source`, naming the Tencent IM app.
    pub fn ce_source(&self) -> String {
        format!("/tencent-im/{}", self.sdk_app_id)
    }

    /// CloudEvents `time`: when the change happened if Tencent said so, else when it was received.
    pub fn ce_time(&self) -> String {
        match self.event_time_ms {
            Some(ms) => rfc3339(UNIX_EPOCH + Duration::from_millis(ms)),
            None => self.received_at.clone(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Event always serializes")
    }
}

/// The UUIDv5 of the app ID and `parts`, each after a newline: the same callback bytes always
/// name the same event.
///
/// `Uuid::new_v5` computed the same SHA-1 with a portable implementation, over a copy of the
/// whole body; the `sha1` crate uses the CPU's SHA instructions where there are some (a
/// GroupInfoChanged body hashed in less than half the time), and the parts are hashed where
/// they are.
pub fn stable_id(sdk_app_id: &str, parts: &[&[u8]]) -> String {
    use sha1::{Digest, Sha1};
    let mut sha1 = Sha1::new();
    sha1.update(ID_NAMESPACE.as_bytes());
    sha1.update(sdk_app_id.as_bytes());
    for part in parts {
        sha1.update(b"\n");
        sha1.update(part);
    }
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&sha1.finalize()[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid().to_string()
}

/// RFC 3339 with milliseconds. Every time the relay reads is checked to be before year 10000,
/// which humantime can write; should one slip through, the epoch is written, not a panic.
fn rfc3339(t: SystemTime) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    match write!(out, "{}", humantime::format_rfc3339_millis(t)) {
        Ok(()) => out,
        Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stable_id_is_the_uuid_v5_of_the_app_id_and_the_parts() {
        for (app, parts) in [
            ("1400000000", vec![&b"{\"GroupId\":\"g\",\"EventTime\":1}"[..]]),
            ("1", vec![&b""[..]]),
            ("1", vec![&[0xffu8; 300][..], b"7"]),
            ("", vec![]),
        ] {
            let mut name = app.as_bytes().to_vec();
            for part in &parts {
                name.push(b'\n');
                name.extend_from_slice(part);
            }
            assert_eq!(
                stable_id(app, &parts),
                Uuid::new_v5(&ID_NAMESPACE, &name).to_string()
            );
        }
    }

    #[test]
    fn a_time_humantime_cannot_write_gives_the_epoch_not_a_panic() {
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339(far), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_670_574_414_123)),
            "2022-12-09T08:26:54.123Z"
        );
    }
}
