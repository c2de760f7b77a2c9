//! An event of the group state topic as the fold reads it ([`InEvent`]).

use serde_json::Value;

use crate::ingress::commands::event_types as types;

/// An event as the fold reads it from the group state topic.
#[derive(Debug, Clone, PartialEq)]
pub struct InEvent {
    pub id: String,
    pub event_type: String,
    pub group_id: String,
    pub group_type: Option<String>,
    pub time: Option<u64>,
    pub received_at: String,
    pub body: Value,
}

impl InEvent {
    /// Reads an event of the group state topic; the reason when it is not one.
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let body: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
        let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_string);
        let id = text("id").ok_or("no id")?;
        let event_type = text("type").ok_or("no type")?;
        let group_id = text("group_id").filter(|g| !g.is_empty()).ok_or("no group_id")?;
        let time = if event_type == types::GROUP_SNAPSHOT {
            // A snapshot is nothing without its stamp: the time its values were true at.
            let at = body.get("snapshot_at_ms").and_then(Value::as_u64);
            Some(at.ok_or("a snapshot without an integer snapshot_at_ms")?)
        } else {
            match body.get("event_time_ms") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or("event_time_ms is not an integer")?),
            }
        };
        Ok(InEvent {
            id,
            event_type,
            group_id,
            group_type: text("group_type"),
            time,
            received_at: text("received_at").unwrap_or_default(),
            body,
        })
    }

    pub(super) fn str_at(&self, path: &[&str]) -> Option<&str> {
        let mut v = &self.body;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str()
    }

    pub(super) fn accounts(&self, field: &str) -> Vec<String> {
        self.body
            .get(field)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    }

    pub(super) fn string_map(&self, path: &[&str]) -> Vec<(String, Option<String>)> {
        let mut v = &self.body;
        for p in path {
            match v.get(p) {
                Some(next) => v = next,
                None => return Vec::new(),
            }
        }
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                    .collect()
            })
            .unwrap_or_default()
    }
}
