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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomField {
    pub key: String,
    pub value: String,
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
    #[error("EventTime must be a non-negative integer or a string of digits")]
    BadEventTime,
    #[error("UserDefinedDataList must be an array of {{\"Key\":string,\"Value\":string}}")]
    BadCustomList,
}

impl GroupInfoChanged {
    /// Parses the raw body.
    pub fn from_slice(body: &[u8]) -> Result<Self, BodyError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
        match value {
            Value::Object(map) => Self::from_map(map),
            _ => Err(BodyError::NotAnObject),
        }
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, BodyError> {
        let group_id = take_string(&mut map, "GroupId")?.ok_or(BodyError::MissingGroupId)?;
        if group_id.is_empty() {
            return Err(BodyError::EmptyGroupId);
        }
        Ok(GroupInfoChanged {
            callback_command: take_string(&mut map, "CallbackCommand")?,
            group_id,
            group_type: take_string(&mut map, "Type")?,
            operator: take_string(&mut map, "Operator_Account")?,
            name: take_string(&mut map, "Name")?,
            introduction: take_string(&mut map, "Introduction")?,
            notification: take_string(&mut map, "Notification")?,
            face_url: take_string(&mut map, "FaceUrl")?,
            custom: take_custom(&mut map)?,
            event_time_ms: take_event_time(&mut map)?,
            extra: map,
        })
    }
}

fn take_string(map: &mut Map<String, Value>, field: &'static str) -> Result<Option<String>, BodyError> {
    match map.shift_remove(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(BodyError::NotAString(field)),
    }
}

fn take_event_time(map: &mut Map<String, Value>) -> Result<Option<u64>, BodyError> {
    match map.shift_remove("EventTime") {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(BodyError::BadEventTime),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| BodyError::BadEventTime)
        }
        Some(_) => Err(BodyError::BadEventTime),
    }
}

fn take_custom(map: &mut Map<String, Value>) -> Result<Option<Vec<CustomField>>, BodyError> {
    let Some(list) = map.shift_remove("UserDefinedDataList") else {
        return Ok(None);
    };
    let Value::Array(items) = list else {
        return Err(BodyError::BadCustomList);
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(mut entry) => match (entry.remove("Key"), entry.remove("Value")) {
                (Some(Value::String(key)), Some(Value::String(value))) => Ok(CustomField { key, value }),
                _ => Err(BodyError::BadCustomList),
            },
            _ => Err(BodyError::BadCustomList),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
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
    fn unknown_fields_are_kept_verbatim() {
        let b = GroupInfoChanged::from_slice(br#"{"GroupId":"g","ShutUpAllMember":"On","N":{"a":[1,2]}}"#)
            .unwrap();
        assert_eq!(b.extra["ShutUpAllMember"], "On");
        assert_eq!(b.extra["N"], serde_json::json!({"a":[1,2]}));
    }
}
