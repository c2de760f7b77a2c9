//! The Kafka record built from a change event: key, value and CloudEvents headers, ready to
//! send directly or to keep in the spool.

use crate::ingress::event::Event;

/// The CloudEvents attributes of a record besides its subject (the key).
pub struct CloudEvent {
    pub id: String,
    pub event_type: String,
    pub source: String,
    /// RFC 3339.
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The topic it goes to; empty: `KAFKA_TOPIC` (entries spooled before topics were kept).
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn from_event(event: &Event, topic: &str) -> Self {
        let ce = CloudEvent {
            id: event.id.clone(),
            event_type: event.event_type.to_string(),
            source: event.ce_source(),
            time: event.ce_time(),
        };
        Self::cloud_event(topic, event.key.clone(), event.to_json(), ce)
    }

    /// A JSON event keyed by `key` (its `ce_subject` too), with the CloudEvents headers every
    /// event the binary publishes carries: callbacks' and the reconciler's.
    pub fn cloud_event(topic: &str, key: String, payload: Vec<u8>, ce: CloudEvent) -> Self {
        let headers = [
            ("ce_specversion", "1.0".to_string()),
            ("ce_id", ce.id),
            ("ce_type", ce.event_type),
            ("ce_source", ce.source),
            ("ce_subject", key.clone()),
            ("ce_time", ce.time),
            ("content-type", "application/json".to_string()),
        ];
        Record {
            topic: topic.to_string(),
            key,
            payload,
            headers: headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// Length-prefixed binary form used by the spool (the spool adds its own checksum).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        put(out, self.key.as_bytes());
        out.extend_from_slice(&(self.headers.len() as u32).to_le_bytes());
        for (k, v) in &self.headers {
            put(out, k.as_bytes());
            put(out, v.as_bytes());
        }
        put(out, &self.payload);
    }

    pub fn decode(mut input: &[u8]) -> Option<Self> {
        let key = String::from_utf8(take(&mut input)?.to_vec()).ok()?;
        let count = u32::from_le_bytes(input.get(..4)?.try_into().ok()?) as usize;
        input = &input[4..];
        let mut headers = Vec::with_capacity(count.min(16));
        for _ in 0..count {
            let k = String::from_utf8(take(&mut input)?.to_vec()).ok()?;
            let v = String::from_utf8(take(&mut input)?.to_vec()).ok()?;
            headers.push((k, v));
        }
        let payload = take(&mut input)?.to_vec();
        input.is_empty().then_some(Record {
            topic: String::new(),
            key,
            payload,
            headers,
        })
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(input.get(..4)?.try_into().ok()?) as usize;
    let bytes = input.get(4..4 + len)?;
    *input = &input[4 + len..];
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_its_binary_form() {
        let r = Record {
            topic: String::new(),
            key: "群🙂".into(),
            payload: b"{\"a\":1}".to_vec(),
            headers: vec![
                ("ce_id".into(), "x".into()),
                ("content-type".into(), "application/json".into()),
            ],
        };
        let mut bytes = Vec::new();
        r.encode_into(&mut bytes);
        assert_eq!(Record::decode(&bytes), Some(r));
        assert_eq!(Record::decode(&bytes[..bytes.len() - 1]), None);
    }
}
