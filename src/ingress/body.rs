//! The one body reader: a callback's JSON object read once, then taken field by field by the
//! command that owns it, with bounds and errors that name the field and are the same for every
//! command. What no command takes is kept, verbatim, for the event's `extra`.

mod fields;

use serde_json::{Map, Value};

use fields::Fields;

/// Why a body was refused; the text is the reason given to the caller. Errors name the field,
/// so a new command needs no new error (nor a new ErrorCode).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("CallbackCommand in the body differs from the query's")]
    CommandMismatch,
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("field {0} must be a string")]
    NotAString(&'static str),
    #[error("{0} must be milliseconds since 1970 (before year 10000), as an integer or a string of digits")]
    BadTime(&'static str),
    #[error("{0} must be {1}")]
    BadShape(&'static str, &'static str),
    #[error("{0} has more than {1} entries")]
    TooManyEntries(&'static str, usize),
    #[error("field {0} is longer than {1} bytes")]
    TooLong(&'static str, usize),
}

/// Bounds that keep the memory one callback can cost small, whatever it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Most entries accepted in a list of the body (`UserDefinedDataList`, ...).
    pub max_custom_fields: usize,
    /// Longest accepted string of a known field (GroupId, Name, a custom Key or Value, ...).
    pub max_field_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        // Tencent's own limits are far lower (a group name is 30 bytes, 16 custom fields by
        // default); these leave room for growth while bounding what a stranger can make us hold.
        Self {
            max_custom_fields: 64,
            max_field_bytes: 16 * 1024,
        }
    }
}

/// The last millisecond of year 9999: later times have no RFC 3339 form (`ce_time`).
pub const MAX_EVENT_TIME_MS: u64 = 253_402_300_799_999;

/// A callback body: a JSON object whose fields are taken out as they are checked. It borrows
/// the names of its fields from the raw body.
#[derive(Debug)]
pub struct Body<'a> {
    fields: Fields<'a>,
    limits: BodyLimits,
}

impl<'a> Body<'a> {
    /// Reads `raw` as one JSON object (field order and number precision kept; a field given
    /// twice counts with its last value, in the place of its first; nesting beyond 128 levels
    /// is refused as bad JSON). It accepts and refuses exactly what reading the body into a
    /// `serde_json::Value` does, with the same error.
    pub fn parse(raw: &'a [u8], limits: BodyLimits) -> Result<Self, BodyError> {
        let fields = match raw.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            Some(b'{') => Fields::read(raw)?,
            // Never a callback: read whole only to tell bad JSON from a non-object.
            _ => Fields::reference(raw)?,
        };
        Ok(Self { fields, limits })
    }

    pub fn limits(&self) -> &BodyLimits {
        &self.limits
    }

    /// Takes a field's value as sent, if present.
    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.fields.take(field)
    }

    /// Looks at a field without taking it.
    pub fn peek(&self, field: &str) -> Option<&Value> {
        self.fields.peek(field)
    }

    /// An optional string field, bounded by `max_field_bytes`.
    pub fn string(&mut self, field: &'static str) -> Result<Option<String>, BodyError> {
        let max = self.limits.max_field_bytes;
        self.take(field)
            .map(|v| checked_string(v, field, max))
            .transpose()
    }

    /// A string field that must be present and not empty.
    pub fn required(&mut self, field: &'static str) -> Result<String, BodyError> {
        match self.string(field)? {
            None => Err(BodyError::Missing(field)),
            Some(s) if s.is_empty() => Err(BodyError::Empty(field)),
            Some(s) => Ok(s),
        }
    }

    /// An optional time in milliseconds since 1970, sent as a number or a string of digits.
    pub fn time_ms(&mut self, field: &'static str) -> Result<Option<u64>, BodyError> {
        self.take(field).map(|v| checked_time(v, field)).transpose()
    }

    /// An optional list, at most `max_custom_fields` entries; `shape` says what it must be.
    pub fn list(
        &mut self,
        field: &'static str,
        shape: &'static str,
    ) -> Result<Option<Vec<Value>>, BodyError> {
        let max = self.limits.max_custom_fields;
        match self.take(field) {
            None => Ok(None),
            Some(Value::Array(items)) if items.len() > max => Err(BodyError::TooManyEntries(field, max)),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(BodyError::BadShape(field, shape)),
        }
    }

    /// An optional non-negative integer, sent as a number or a string of digits.
    pub fn uint(&mut self, field: &'static str) -> Result<Option<u64>, BodyError> {
        self.take(field).map(|v| checked_uint(v, field)).transpose()
    }

    /// An optional value of any JSON type, kept verbatim; `shape` checks it is what it must be.
    pub fn value(
        &mut self,
        field: &'static str,
        shape: &'static str,
        fits: fn(&Value) -> bool,
    ) -> Result<Option<Value>, BodyError> {
        match self.take(field) {
            Some(v) if !fits(&v) => Err(BodyError::BadShape(field, shape)),
            other => Ok(other),
        }
    }

    /// The fields no command took, verbatim and in their order.
    pub fn rest(self) -> Map<String, Value> {
        self.fields.rest()
    }
}

/// A string of at most `max` bytes; `field` names it in the error.
pub fn checked_string(value: Value, field: &'static str, max: usize) -> Result<String, BodyError> {
    match value {
        Value::String(s) if s.len() > max => Err(BodyError::TooLong(field, max)),
        Value::String(s) => Ok(s),
        _ => Err(BodyError::NotAString(field)),
    }
}

/// A non-negative integer, as a JSON integer or a string of digits.
pub fn checked_uint(value: Value, field: &'static str) -> Result<u64, BodyError> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
    .ok_or(BodyError::BadShape(field, "a non-negative integer"))
}

/// Milliseconds since 1970 up to year 9999, as a JSON integer or a string of digits.
pub fn checked_time(value: Value, field: &'static str) -> Result<u64, BodyError> {
    let ms = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    };
    ms.filter(|ms| *ms <= MAX_EVENT_TIME_MS)
        .ok_or(BodyError::BadTime(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(raw: &str) -> Result<Body<'_>, BodyError> {
        Body::parse(raw.as_bytes(), BodyLimits::default())
    }

    #[test]
    fn what_is_not_an_object_is_refused_with_the_reason() {
        assert!(matches!(body("{"), Err(BodyError::NotJson(_))));
        assert_eq!(body("[1]").unwrap_err(), BodyError::NotAnObject);
        assert_eq!(body("\"x\"").unwrap_err(), BodyError::NotAnObject);
        let deep = format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200));
        assert!(matches!(body(&deep), Err(BodyError::NotJson(_))));
    }

    #[test]
    fn the_reader_accepts_refuses_and_keeps_what_a_serde_json_value_does() {
        let wide = |n: usize, distinct: usize| {
            let fields: Vec<String> = (0..n).map(|i| format!("\"f{}\":{i}", i % distinct)).collect();
            format!("{{{}}}", fields.join(","))
        };
        let deep = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        for raw in [
            "{}".to_string(),
            " \n{\"a\":1}\t".into(),
            r#"{"a":1,"b":{"c":[1,2]},"a":3,"c":null}"#.into(),
            r#"{"Group\u0049d":"g","x":"\u00e9","GroupId":"h"}"#.into(),
            r#"{"a":1E400,"b":-0,"c":123456789012345678901234567890}"#.into(),
            r#"{"$serde_json::private::Number":"12"}"#.into(),
            r#"{"$serde_json::private::Number":"x"}"#.into(),
            r#"{"$serde_json::private::Numbe\u0072":"12"}"#.into(),
            r#"{"a":1,"$serde_json::private::Number":"12"}"#.into(),
            r#"{"a":1,}"#.into(),
            r#"{"a":1} x"#.into(),
            r#"{"a" 1}"#.into(),
            r#"{"a":1"#.into(),
            r#"{1:1}"#.into(),
            "[1]".into(),
            "".into(),
            "  ".into(),
            wide(31, 31),
            wide(40, 40),
            wide(80, 35),
            deep(127),
            deep(128),
        ] {
            let reference = match serde_json::from_str::<Value>(&raw) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err(BodyError::NotAnObject),
                Err(e) => Err(BodyError::NotJson(e.to_string())),
            };
            let text = |fields: Result<Map<String, Value>, BodyError>| {
                fields.map(|m| serde_json::to_string(&m).unwrap())
            };
            assert_eq!(text(body(&raw).map(Body::rest)), text(reference), "{raw}");
        }
        let invalid_utf8 = b"{\"a\":\"\xff\"}";
        assert!(matches!(
            Body::parse(invalid_utf8, BodyLimits::default()),
            Err(BodyError::NotJson(_))
        ));
    }

    #[test]
    fn a_field_is_found_by_its_name_however_it_is_written_and_taken_once() {
        for raw in [
            r#"{"Group\u0049d":"g","Type":"t"}"#.to_string(),
            // Past 32 fields the body is kept in a map.
            format!(
                "{{{},\"GroupId\":\"g\",\"Type\":\"t\"}}",
                (0..40)
                    .map(|i| format!("\"f{i}\":{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ] {
            let mut b = body(&raw).unwrap();
            assert_eq!(b.peek("GroupId"), Some(&Value::from("g")));
            assert_eq!(b.take("GroupId"), Some(Value::from("g")));
            assert_eq!(b.take("GroupId"), None);
            assert_eq!(b.peek("GroupId"), None);
            let rest = b.rest();
            assert_eq!(rest.keys().next_back().map(String::as_str), Some("Type"));
            assert!(!rest.contains_key("GroupId"));
        }
    }

    #[test]
    fn fields_are_checked_and_named_in_the_error() {
        let mut b = body(r#"{"A":"x","B":1,"C":"","T":"1670574414123","U":-1}"#).unwrap();
        assert_eq!(b.string("A"), Ok(Some("x".into())));
        assert_eq!(b.string("B"), Err(BodyError::NotAString("B")));
        assert_eq!(b.required("C"), Err(BodyError::Empty("C")));
        assert_eq!(b.required("D"), Err(BodyError::Missing("D")));
        assert_eq!(b.time_ms("T"), Ok(Some(1_670_574_414_123)));
        assert_eq!(b.time_ms("U"), Err(BodyError::BadTime("U")));
        assert!(b.rest().is_empty());
    }

    #[test]
    fn bounds_apply_to_strings_and_lists() {
        let limits = BodyLimits {
            max_custom_fields: 2,
            max_field_bytes: 3,
        };
        let mut b = Body::parse(br#"{"S":"abcd","L":[1,2,3],"M":{}}"#, limits).unwrap();
        assert_eq!(b.string("S"), Err(BodyError::TooLong("S", 3)));
        assert_eq!(b.list("L", "a list"), Err(BodyError::TooManyEntries("L", 2)));
        assert_eq!(b.list("M", "a list"), Err(BodyError::BadShape("M", "a list")));
    }

    #[test]
    fn the_rest_keeps_order_precision_and_the_last_of_a_repeated_field() {
        let b = body(r#"{"Z":1,"Big":123456789012345678901234567890,"A":"x","Z":2}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&b.rest()).unwrap(),
            r#"{"Z":2,"Big":123456789012345678901234567890,"A":"x"}"#
        );
    }
}
