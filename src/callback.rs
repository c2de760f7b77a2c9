//! Wire types: what Tencent sends (query parameters and JSON body), read strictly and nothing more.

use serde_json::{Map, Value};

/// The only command this relay accepts.
pub const COMMAND: &str = "Group.CallbackAfterGroupInfoChanged";

/// The query parameters Tencent appends to the callback URL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallbackQuery {
    pub sdk_app_id: Option<String>,
    pub callback_command: Option<String>,
    pub client_ip: Option<String>,
    pub opt_platform: Option<String>,
    pub sign: Option<String>,
    pub request_time: Option<String>,
}

impl CallbackQuery {
    /// Parses a raw query string. A parameter given twice with different values is kept as
    /// an ambiguous empty value so that the check on it fails instead of picking one.
    pub fn parse(query: &str) -> Self {
        let mut q = CallbackQuery::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "SdkAppid" => &mut q.sdk_app_id,
                "CallbackCommand" => &mut q.callback_command,
                "ClientIP" => &mut q.client_ip,
                "OptPlatform" => &mut q.opt_platform,
                "Sign" => &mut q.sign,
                "RequestTime" => &mut q.request_time,
                _ => continue,
            };
            match slot {
                None => *slot = Some(value.into_owned()),
                Some(prev) if *prev != value => *prev = String::new(),
                Some(_) => {}
            }
        }
        q
    }
}

/// `UserDefinedDataList` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomField {
    pub key: String,
    pub value: String,
    /// Members besides `Key` and `Value`, verbatim: nothing Tencent sends is dropped.
    pub extra: Map<String, Value>,
}

/// The body of `Group.CallbackAfterGroupInfoChanged`, fields typed, unknown ones kept aside.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfoChanged {
    pub callback_command: Option<String>,
    pub group_id: String,
    pub group_type: Option<String>,
    pub operator: Option<String>,
    pub name: Option<String>,
    pub introduction: Option<String>,
    pub notification: Option<String>,
    pub face_url: Option<String>,
    pub custom: Option<Vec<CustomField>>,
    pub event_time_ms: Option<u64>,
    /// Top-level fields this version does not know, verbatim.
    pub extra: Map<String, Value>,
}

/// Why a body was refused; the text is the reason given to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("GroupId is missing")]
    MissingGroupId,
    #[error("GroupId is empty")]
    EmptyGroupId,
    #[error("field {0} must be a string")]
    NotAString(&'static str),
    #[error(
        "EventTime must be milliseconds since 1970 (before year 10000), as an integer or a string of digits"
    )]
    BadEventTime,
    #[error("UserDefinedDataList must be an array of {{\"Key\":string,\"Value\":string}}")]
    BadCustomList,
    #[error("UserDefinedDataList has more than {0} entries")]
    TooManyCustomFields(usize),
    #[error("field {0} is longer than {1} bytes")]
    FieldTooLong(&'static str, usize),
}

/// Bounds that keep the memory one callback can cost small, whatever it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Most `UserDefinedDataList` entries accepted.
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

impl GroupInfoChanged {
    /// Parses the raw body with the default bounds.
    pub fn from_slice(body: &[u8]) -> Result<Self, BodyError> {
        Self::from_slice_bounded(body, &BodyLimits::default())
    }

    /// Parses the raw body, refusing lists and strings beyond `limits`.
    ///
    /// Reads the object in one pass, field by field, without building a JSON tree of the whole
    /// body: only the values of unknown fields (kept in `extra`) become `serde_json::Value`s.
    /// It accepts and refuses exactly what [`Self::from_slice_via_value`] does, with the same
    /// error; the property tests and the `body_event` fuzz target check that.
    pub fn from_slice_bounded(body: &[u8], limits: &BodyLimits) -> Result<Self, BodyError> {
        let first = body.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first != Some(&b'{') {
            // Never a valid callback: read it whole only to tell bad JSON from a non-object.
            return match serde_json::from_slice::<Value>(body) {
                Ok(_) => Err(BodyError::NotAnObject),
                Err(e) => Err(BodyError::NotJson(e.to_string())),
            };
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let fields = serde::Deserializer::deserialize_map(&mut de, read::BodyVisitor { limits })
            .and_then(|fields| de.end().map(|()| fields))
            .map_err(|e| BodyError::NotJson(e.to_string()))?;
        fields.check(limits)
    }

    /// The straightforward reading: the whole body as a `serde_json::Value`, then field by
    /// field. Kept as the reference the one-pass reader is tested against.
    #[doc(hidden)]
    pub fn from_slice_via_value(body: &[u8], limits: &BodyLimits) -> Result<Self, BodyError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
        match value {
            Value::Object(map) => Self::from_map(map, limits),
            _ => Err(BodyError::NotAnObject),
        }
    }

    fn from_map(mut map: Map<String, Value>, limits: &BodyLimits) -> Result<Self, BodyError> {
        let mut string = |field| take_string(&mut map, field, limits.max_field_bytes);
        let group_id = string("GroupId")?.ok_or(BodyError::MissingGroupId)?;
        if group_id.is_empty() {
            return Err(BodyError::EmptyGroupId);
        }
        Ok(GroupInfoChanged {
            callback_command: string("CallbackCommand")?,
            group_id,
            group_type: string("Type")?,
            operator: string("Operator_Account")?,
            name: string("Name")?,
            introduction: string("Introduction")?,
            notification: string("Notification")?,
            face_url: string("FaceUrl")?,
            custom: take_custom(&mut map, limits)?,
            event_time_ms: take_event_time(&mut map)?,
            extra: map,
        })
    }
}

fn take_string(
    map: &mut Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, BodyError> {
    map.shift_remove(field)
        .map(|v| checked_string(v, field, max))
        .transpose()
}

fn checked_string(value: Value, field: &'static str, max: usize) -> Result<String, BodyError> {
    match value {
        Value::String(s) if s.len() > max => Err(BodyError::FieldTooLong(field, max)),
        Value::String(s) => Ok(s),
        _ => Err(BodyError::NotAString(field)),
    }
}

/// The last millisecond of year 9999: later times have no RFC 3339 form (`ce_time`).
pub const MAX_EVENT_TIME_MS: u64 = 253_402_300_799_999;

fn take_event_time(map: &mut Map<String, Value>) -> Result<Option<u64>, BodyError> {
    map.shift_remove("EventTime").map(checked_event_time).transpose()
}

fn checked_event_time(value: Value) -> Result<u64, BodyError> {
    let ms = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    };
    ms.filter(|ms| *ms <= MAX_EVENT_TIME_MS)
        .ok_or(BodyError::BadEventTime)
}

fn take_custom(
    map: &mut Map<String, Value>,
    limits: &BodyLimits,
) -> Result<Option<Vec<CustomField>>, BodyError> {
    let Some(list) = map.shift_remove("UserDefinedDataList") else {
        return Ok(None);
    };
    let Value::Array(items) = list else {
        return Err(BodyError::BadCustomList);
    };
    if items.len() > limits.max_custom_fields {
        return Err(BodyError::TooManyCustomFields(limits.max_custom_fields));
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(mut entry) => {
                let (key, value) = (entry.shift_remove("Key"), entry.shift_remove("Value"));
                checked_custom(key, value, entry, limits.max_field_bytes)
            }
            _ => Err(BodyError::BadCustomList),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// One `UserDefinedDataList` entry from its `Key` and `Value` members and any others.
fn checked_custom(
    key: Option<Value>,
    value: Option<Value>,
    extra: Map<String, Value>,
    max: usize,
) -> Result<CustomField, BodyError> {
    match (key, value) {
        (Some(Value::String(key)), Some(Value::String(value))) => {
            if key.len() > max {
                Err(BodyError::FieldTooLong("UserDefinedDataList.Key", max))
            } else if value.len() > max {
                Err(BodyError::FieldTooLong("UserDefinedDataList.Value", max))
            } else {
                Ok(CustomField { key, value, extra })
            }
        }
        _ => Err(BodyError::BadCustomList),
    }
}

/// The one-pass body reader behind [`GroupInfoChanged::from_slice_bounded`]. It keeps the
/// reference reading's rules: a field given twice counts with its last value (like a JSON
/// object read into a map), and the checks run afterwards in the same order, so the first
/// error reported is the same. Values it does not keep are still read as `Value`s, never
/// skipped with `IgnoredAny`, which does not check the UTF-8 of the strings it skips (the
/// `body_event` fuzz target found that difference).
mod read {
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    use super::GroupInfoChanged;
    use super::{checked_custom, checked_event_time, checked_string, BodyError, BodyLimits, CustomField};

    /// The top-level fields this version knows, in the order their checks run.
    const STRINGS: [&str; 8] = [
        "GroupId",
        "CallbackCommand",
        "Type",
        "Operator_Account",
        "Name",
        "Introduction",
        "Notification",
        "FaceUrl",
    ];

    /// What the object held, before any check.
    #[derive(Default)]
    pub struct Fields {
        strings: [Option<Value>; STRINGS.len()],
        custom: Option<Result<Vec<CustomField>, BodyError>>,
        event_time: Option<Value>,
        extra: Map<String, Value>,
    }

    impl Fields {
        pub fn check(self, limits: &BodyLimits) -> Result<GroupInfoChanged, BodyError> {
            let [group_id, command, group_type, operator, name, introduction, notification, face_url] =
                self.strings;
            let max = limits.max_field_bytes;
            let string =
                |i: usize, v: Option<Value>| v.map(|v| checked_string(v, STRINGS[i], max)).transpose();
            let group_id = string(0, group_id)?.ok_or(BodyError::MissingGroupId)?;
            if group_id.is_empty() {
                return Err(BodyError::EmptyGroupId);
            }
            Ok(GroupInfoChanged {
                callback_command: string(1, command)?,
                group_id,
                group_type: string(2, group_type)?,
                operator: string(3, operator)?,
                name: string(4, name)?,
                introduction: string(5, introduction)?,
                notification: string(6, notification)?,
                face_url: string(7, face_url)?,
                custom: self.custom.transpose()?,
                event_time_ms: self.event_time.map(checked_event_time).transpose()?,
                extra: self.extra,
            })
        }
    }

    enum Key {
        String(usize),
        Custom,
        EventTime,
        Other(String),
    }

    impl Key {
        fn new(name: &str) -> Self {
            match name {
                "UserDefinedDataList" => Key::Custom,
                "EventTime" => Key::EventTime,
                _ => match STRINGS.iter().position(|s| *s == name) {
                    Some(i) => Key::String(i),
                    None => Key::Other(name.to_owned()),
                },
            }
        }
    }

    /// An object key, classified by the function without copying it (`.0` names what is
    /// expected, for serde's messages).
    struct NameSeed<F>(&'static str, F);

    impl<'de, T, F: FnOnce(&str) -> T> DeserializeSeed<'de> for NameSeed<F> {
        type Value = T;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<T, F: FnOnce(&str) -> T> Visitor<'_> for NameSeed<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E>(self, name: &str) -> Result<T, E> {
            Ok((self.1)(name))
        }
    }

    pub struct BodyVisitor<'a> {
        pub limits: &'a BodyLimits,
    }

    impl<'de> Visitor<'de> for BodyVisitor<'_> {
        type Value = Fields;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
            let mut fields = Fields::default();
            while let Some(key) = map.next_key_seed(NameSeed("a field name", Key::new))? {
                match key {
                    Key::String(i) => fields.strings[i] = Some(map.next_value()?),
                    Key::EventTime => fields.event_time = Some(map.next_value()?),
                    Key::Custom => fields.custom = Some(map.next_value_seed(ListSeed(self.limits))?),
                    Key::Other(name) => {
                        fields.extra.insert(name, map.next_value()?);
                    }
                }
            }
            Ok(fields)
        }
    }

    /// `UserDefinedDataList`: read entry by entry; a wrong shape is an error of the list,
    /// not of the JSON, so the rest of the body is still read.
    struct ListSeed<'a>(&'a BodyLimits);

    impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
        type Value = Result<Vec<CustomField>, BodyError>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for ListSeed<'_> {
        type Value = Result<Vec<CustomField>, BodyError>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("UserDefinedDataList")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let BodyLimits {
                max_custom_fields,
                max_field_bytes,
            } = *self.0;
            let (mut list, mut count, mut first_error) = (Vec::new(), 0usize, None);
            while let Some(entry) = seq.next_element_seed(EntrySeed)? {
                count += 1;
                // Past the bound nothing more is kept: the list is refused whatever follows.
                if count > max_custom_fields || first_error.is_some() {
                    continue;
                }
                match entry.and_then(|(key, value, extra)| checked_custom(key, value, extra, max_field_bytes))
                {
                    Ok(field) => list.push(field),
                    Err(e) => first_error = Some(e),
                }
            }
            Ok(if count > max_custom_fields {
                Err(BodyError::TooManyCustomFields(max_custom_fields))
            } else {
                first_error.map_or(Ok(list), Err)
            })
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<Value, Value>()?.is_some() {}
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Err(BodyError::BadCustomList))
        }
    }

    enum Member {
        Key,
        Value,
        Other(String),
    }

    impl Member {
        fn new(name: &str) -> Self {
            match name {
                "Key" => Member::Key,
                "Value" => Member::Value,
                _ => Member::Other(name.to_owned()),
            }
        }
    }

    /// One list entry: its `Key` and `Value` members (the last of each, if repeated) and the
    /// others, or an error when it is not an object.
    struct EntrySeed;

    type Entry = Result<(Option<Value>, Option<Value>, Map<String, Value>), BodyError>;

    impl<'de> DeserializeSeed<'de> for EntrySeed {
        type Value = Entry;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for EntrySeed {
        type Value = Entry;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a UserDefinedDataList entry")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
            let (mut key, mut value, mut extra) = (None, None, Map::new());
            while let Some(member) = map.next_key_seed(NameSeed("a member name", Member::new))? {
                match member {
                    Member::Key => key = Some(map.next_value()?),
                    Member::Value => value = Some(map.next_value()?),
                    Member::Other(name) => {
                        extra.insert(name, map.next_value()?);
                    }
                }
            }
            Ok(Ok((key, value, extra)))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
            while seq.next_element::<Value>()?.is_some() {}
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Entry, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Entry, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Entry, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Entry, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_str<E>(self, _: &str) -> Result<Entry, E> {
            Ok(Err(BodyError::BadCustomList))
        }
        fn visit_unit<E>(self) -> Result<Entry, E> {
            Ok(Err(BodyError::BadCustomList))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_with_tencents_exact_names() {
        let q = CallbackQuery::parse(
            "SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterGroupInfoChanged&contenttype=json\
             &ClientIP=10.0.0.1&OptPlatform=RESTAPI&Sign=ab&RequestTime=1669872112",
        );
        assert_eq!(q.sdk_app_id.as_deref(), Some("1400000000"));
        assert_eq!(q.callback_command.as_deref(), Some(COMMAND));
        assert_eq!(q.client_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(q.opt_platform.as_deref(), Some("RESTAPI"));
        assert_eq!(q.sign.as_deref(), Some("ab"));
        assert_eq!(q.request_time.as_deref(), Some("1669872112"));
    }

    #[test]
    fn a_parameter_repeated_with_another_value_becomes_ambiguous() {
        let q = CallbackQuery::parse("SdkAppid=1&SdkAppid=2");
        assert_eq!(q.sdk_app_id.as_deref(), Some(""));
        let q = CallbackQuery::parse("SdkAppid=1&SdkAppid=1");
        assert_eq!(q.sdk_app_id.as_deref(), Some("1"));
    }

    #[test]
    fn the_full_seed_body_is_read() {
        let body = br#"{"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"@TGS#2J4SZEAEL",
            "Type":"Public","Operator_Account":"leckie","Name":"NewGroupName","Introduction":"NewIntroduction",
            "Notification":"NewNotification","FaceUrl":"NewFaceUrl",
            "UserDefinedDataList":[{"Key":"UserDefinedKey1","Value":"UserDefinedValue1"}]}"#;
        let b = GroupInfoChanged::from_slice(body).unwrap();
        assert_eq!(b.group_id, "@TGS#2J4SZEAEL");
        assert_eq!(b.face_url.as_deref(), Some("NewFaceUrl"));
        assert_eq!(b.custom.unwrap()[0].value, "UserDefinedValue1");
        assert!(b.extra.is_empty());
    }

    #[test]
    fn event_time_is_accepted_as_number_and_as_string() {
        for body in [
            &br#"{"GroupId":"g","EventTime":1670574414123}"#[..],
            br#"{"GroupId":"g","EventTime":"1670574414123"}"#,
        ] {
            assert_eq!(
                GroupInfoChanged::from_slice(body).unwrap().event_time_ms,
                Some(1670574414123)
            );
        }
        for bad in [
            &br#"{"GroupId":"g","EventTime":-1}"#[..],
            br#"{"GroupId":"g","EventTime":"12a"}"#,
            br#"{"GroupId":"g","EventTime":1.5}"#,
        ] {
            assert_eq!(
                GroupInfoChanged::from_slice(bad).unwrap_err(),
                BodyError::BadEventTime
            );
        }
    }

    #[test]
    fn wrong_shapes_are_refused_with_the_field_named() {
        let cases: [(&[u8], BodyError); 7] = [
            (b"nope", BodyError::NotJson(String::new())),
            (b"[1]", BodyError::NotAnObject),
            (br#"{"Name":"x"}"#, BodyError::MissingGroupId),
            (br#"{"GroupId":""}"#, BodyError::EmptyGroupId),
            (br#"{"GroupId":7}"#, BodyError::NotAString("GroupId")),
            (br#"{"GroupId":"g","Name":null}"#, BodyError::NotAString("Name")),
            (
                br#"{"GroupId":"g","UserDefinedDataList":[{"Key":"k","Value":1}]}"#,
                BodyError::BadCustomList,
            ),
        ];
        for (body, want) in cases {
            let got = GroupInfoChanged::from_slice(body).unwrap_err();
            match want {
                BodyError::NotJson(_) => assert!(matches!(got, BodyError::NotJson(_))),
                want => assert_eq!(got, want),
            }
        }
    }

    #[test]
    fn lists_and_strings_beyond_the_bounds_are_refused() {
        let limits = BodyLimits {
            max_custom_fields: 2,
            max_field_bytes: 4,
        };
        let three = br#"{"GroupId":"g","UserDefinedDataList":[{"Key":"a","Value":"1"},{"Key":"b","Value":"2"},{"Key":"c","Value":"3"}]}"#;
        assert_eq!(
            GroupInfoChanged::from_slice_bounded(three, &limits),
            Err(BodyError::TooManyCustomFields(2))
        );
        let long = br#"{"GroupId":"g","Name":"12345"}"#;
        assert_eq!(
            GroupInfoChanged::from_slice_bounded(long, &limits),
            Err(BodyError::FieldTooLong("Name", 4))
        );
        let long_value = br#"{"GroupId":"g","UserDefinedDataList":[{"Key":"a","Value":"12345"}]}"#;
        assert!(matches!(
            GroupInfoChanged::from_slice_bounded(long_value, &limits),
            Err(BodyError::FieldTooLong("UserDefinedDataList.Value", 4))
        ));
        // The bound counts bytes: four bytes of UTF-8 pass, five do not.
        assert!(GroupInfoChanged::from_slice_bounded("{\"GroupId\":\"🙂\"}".as_bytes(), &limits).is_ok());
        assert!(GroupInfoChanged::from_slice_bounded("{\"GroupId\":\"🙂a\"}".as_bytes(), &limits).is_err());
    }

    #[test]
    fn invalid_utf8_is_refused_even_where_the_value_is_not_kept() {
        // An entry member other than Key and Value, and a list that is not a list.
        for body in [
            &b"{\"GroupId\":\"g\",\"UserDefinedDataList\":[{\"Key\":\"k\",\"Value\":\"v\",\"Note\":\"\xff\"}]}"[..],
            b"{\"GroupId\":\"g\",\"UserDefinedDataList\":{\"Key\":\"\xff\"}}",
            b"[\"\xff\"]",
        ] {
            assert!(matches!(
                GroupInfoChanged::from_slice(body),
                Err(BodyError::NotJson(_))
            ));
        }
    }

    #[test]
    fn unknown_fields_are_kept_verbatim() {
        let b = GroupInfoChanged::from_slice(br#"{"GroupId":"g","ShutUpAllMember":"On","N":{"a":[1,2]}}"#)
            .unwrap();
        assert_eq!(b.extra["ShutUpAllMember"], "On");
        assert_eq!(b.extra["N"], serde_json::json!({"a":[1,2]}));
    }
}
