//! Tencent's REST answers, sorted into what the reconciler does next: go on, back off, retry,
//! ask for less, treat the group as gone, or stop for a configuration the operator must fix.
//!
//! The codes and their meanings are `../shared/spec/tencent-im-rest.md` §4; the sorting is ours
//! (issue 22, item 5), not Tencent's. A `get_group_info` answer also carries one envelope per
//! group: [`Envelope::from_value`] reads those the same way.

use std::fmt;

use serde::Deserialize;

/// `ActionStatus`, `ErrorCode` and `ErrorInfo`: what every REST answer (and every group inside a
/// `get_group_info` answer) says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `ActionStatus` is `"OK"`; absent in a per-group entry, where only the code speaks.
    pub ok_status: Option<bool>,
    pub code: i64,
    pub info: String,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "ActionStatus")]
    action_status: Option<String>,
    #[serde(rename = "ErrorCode", default)]
    error_code: i64,
    #[serde(rename = "ErrorInfo", default)]
    error_info: String,
}

/// An answer body without a readable envelope.
#[derive(Debug, thiserror::Error)]
#[error("not a Tencent REST answer: {0}")]
pub struct EnvelopeError(String);

impl Envelope {
    /// Reads the envelope of a whole answer body.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let wire: Wire = serde_json::from_slice(body).map_err(|e| EnvelopeError(e.to_string()))?;
        Ok(wire.into())
    }

    /// Reads the envelope of an entry already parsed, such as one group of `GroupInfo[]`.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, EnvelopeError> {
        let wire = Wire::deserialize(value).map_err(|e| EnvelopeError(e.to_string()))?;
        Ok(wire.into())
    }

    /// The class of this answer. A `FAIL` with code 0, or an `OK` with a code that is not 0,
    /// says two things at once: the code is believed when it names an error, and a `FAIL`
    /// without one is [`Class::Unknown`], never success.
    pub fn class(&self) -> Class {
        match (self.ok_status, self.code) {
            (Some(false), 0) => Class::Unknown(Unexpected::FailWithoutCode),
            (_, code) => class_of_code(code),
        }
    }
}

impl From<Wire> for Envelope {
    fn from(wire: Wire) -> Self {
        Self {
            ok_status: wire.action_status.map(|s| s.eq_ignore_ascii_case("OK")),
            code: wire.error_code,
            info: wire.error_info,
        }
    }
}

/// What the reconciler does with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `ErrorCode` 0: use the answer.
    Ok,
    /// Over a rate limit (60007, 60011, 60018, 60019, 10006): raise the budget's backoff, then
    /// try the same call again.
    BackOff,
    /// Transient (10002, 60008, HTTP 5xx, a timeout, a broken connection): try again after a
    /// backoff; one group that keeps failing is counted and left to the next sweep.
    Retry,
    /// The answer would be too big (10018, 10005): ask for fewer groups or fewer fields, down to
    /// one group, then page its members with `get_group_member_info`.
    AskForLess,
    /// The group does not exist, was dismissed (10010) or its ID is invalid (10015): a group
    /// the state holds gets a destroyed event from the reconciler.
    GroupGone,
    /// The operator must fix something: stop the sweep, publish nothing more, and print the
    /// one line of [`ConfigFault`].
    Stop(ConfigFault),
    /// Anything else: see [`Unexpected`].
    Unknown(Unexpected),
}

/// An answer that no class above names. The spec asks, for whatever it could not confirm, for
/// the reading safest for the user, and that is: **never act on it, never stop for it, never
/// press harder because of it.** So an unknown answer is treated as a frequency error and a
/// transient one at once: the budget backs off (it might be a quota code we have not seen),
/// the call is retried a few times, and then the group counts as failed for this sweep. It is
/// never read as "group gone" (no destroyed event from a guess) and never stops the sweep (one
/// group's error must not stop it); a whole sweep of them shows in the failure metric and the
/// "REST calls failing" alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unexpected {
    /// An `ErrorCode` no class names.
    Code(i64),
    /// `ActionStatus: FAIL` with `ErrorCode` 0.
    FailWithoutCode,
    /// An HTTP status that is neither 200 nor 5xx (Tencent answers 200 unless the network
    /// fails, so this is a proxy or a load balancer speaking).
    HttpStatus(u16),
    /// A 200 whose body has no envelope (an HTML error page from something in between).
    Body,
}

impl Class {
    /// Whether the budget's backoff rises: for frequency errors, and for unknown answers.
    pub fn raises_backoff(self) -> bool {
        matches!(self, Class::BackOff | Class::Unknown(_))
    }

    /// Whether the same call is worth making again (after the budget's backoff).
    pub fn is_retried(self) -> bool {
        matches!(self, Class::BackOff | Class::Retry | Class::Unknown(_))
    }
}

/// A configuration or authentication error: the variable to fix and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigFault {
    pub code: i64,
    /// The environment variable the operator should look at first.
    pub variable: &'static str,
    pub reason: &'static str,
}

impl ConfigFault {
    /// A refused UserSig (60004, 60005, 70001) is worth one fresh signature before stopping: a
    /// UserSig expired by clock skew is fixed by it; a wrong key or account is not, and the
    /// second refusal stops the sweep.
    pub fn worth_one_fresh_usersig(self) -> bool {
        matches!(self.code, 60004 | 60005 | 70001)
    }
}

impl fmt::Display for ConfigFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (Tencent error {})",
            self.variable, self.reason, self.code
        )
    }
}

/// The class of an `ErrorCode`.
pub fn class_of_code(code: i64) -> Class {
    let stop = |variable, reason| {
        Class::Stop(ConfigFault {
            code,
            variable,
            reason,
        })
    };
    match code {
        0 => Class::Ok,
        60007 | 60011 | 60018 | 60019 | 10006 => Class::BackOff,
        10002 | 60008 => Class::Retry,
        10018 | 10005 => Class::AskForLess,
        10010 | 10015 => Class::GroupGone,
        60004 | 60005 => stop(
            "TIM_SECRET_KEY",
            "Tencent refused the UserSig or its account: check the key against the IM console \
             (and that TIM_ADMIN_IDENTIFIER is an account of this app)",
        ),
        70001 => stop(
            "TIM_SECRET_KEY",
            "a freshly signed UserSig was refused as expired: a wrong key, or this host's clock",
        ),
        60010 => stop(
            "TIM_ADMIN_IDENTIFIER",
            "the account is not an App admin of this app",
        ),
        60006 => stop("TIM_SDK_APP_ID", "Tencent does not know this SDKAppID"),
        60016 => stop("TIM_SDK_APP_ID", "the app is disabled in the IM console"),
        60021 => stop(
            "TIM_SDK_APP_ID",
            "this host's IP is not allowed to call the app's REST API (the console's IP allow list)",
        ),
        other => Class::Unknown(Unexpected::Code(other)),
    }
}

/// What came back from one REST call, as the HTTP client saw it.
#[derive(Debug, Clone, Copy)]
pub enum Reply<'a> {
    /// An HTTP answer with its status and body.
    Http { status: u16, body: &'a [u8] },
    /// No answer in time (Tencent's own limit is 3 s; the client waits longer).
    Timeout,
    /// The connection failed or broke before an answer.
    Connection,
}

/// The class of one REST call's outcome.
pub fn classify(reply: Reply<'_>) -> Class {
    match reply {
        Reply::Timeout | Reply::Connection => Class::Retry,
        Reply::Http { status, .. } if (500..600).contains(&status) => Class::Retry,
        Reply::Http { status: 429, .. } => Class::BackOff,
        Reply::Http { status: 200, body } => match Envelope::parse(body) {
            Ok(envelope) => envelope.class(),
            Err(_) => Class::Unknown(Unexpected::Body),
        },
        Reply::Http { status, .. } => Class::Unknown(Unexpected::HttpStatus(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: i64) -> Class {
        let body = format!(r#"{{"ActionStatus":"FAIL","ErrorCode":{code},"ErrorInfo":"x"}}"#);
        classify(Reply::Http {
            status: 200,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn an_ok_answer_is_ok() {
        let body = br#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","GroupIdList":[]}"#;
        assert_eq!(classify(Reply::Http { status: 200, body }), Class::Ok);
    }

    #[test]
    fn the_envelope_is_read_with_its_info() {
        let envelope =
            Envelope::parse(br#"{"ActionStatus":"FAIL","ErrorCode":10010,"ErrorInfo":"group dismissed"}"#)
                .unwrap();
        assert_eq!(
            envelope,
            Envelope {
                ok_status: Some(false),
                code: 10010,
                info: "group dismissed".into()
            }
        );
    }

    #[test]
    fn frequency_errors_back_off_and_are_retried() {
        for code in [60007, 60011, 60018, 60019, 10006] {
            assert_eq!(answer(code), Class::BackOff, "{code}");
            assert!(answer(code).raises_backoff() && answer(code).is_retried());
        }
        assert_eq!(
            classify(Reply::Http {
                status: 429,
                body: b""
            }),
            Class::BackOff
        );
    }

    #[test]
    fn transient_errors_timeouts_and_5xx_are_retried_without_raising_the_backoff() {
        let mut classes = vec![answer(10002), answer(60008), classify(Reply::Timeout)];
        classes.push(classify(Reply::Connection));
        for status in [500, 502, 503, 504, 599] {
            classes.push(classify(Reply::Http {
                status,
                body: b"<html>",
            }));
        }
        for class in classes {
            assert_eq!(class, Class::Retry);
            assert!(class.is_retried() && !class.raises_backoff());
        }
    }

    #[test]
    fn too_big_asks_for_less() {
        assert_eq!(answer(10018), Class::AskForLess);
        assert_eq!(answer(10005), Class::AskForLess);
        assert!(
            !Class::AskForLess.is_retried(),
            "the same call would be too big again"
        );
    }

    #[test]
    fn a_dismissed_or_invalid_group_is_gone() {
        assert_eq!(answer(10010), Class::GroupGone);
        assert_eq!(answer(10015), Class::GroupGone);
    }

    #[test]
    fn a_wrong_key_names_tim_secret_key_and_gets_one_fresh_usersig() {
        for code in [60004, 60005, 70001] {
            let Class::Stop(fault) = answer(code) else {
                panic!("{code}")
            };
            assert_eq!(fault.variable, "TIM_SECRET_KEY");
            assert!(fault.worth_one_fresh_usersig());
            let line = fault.to_string();
            assert!(
                line.starts_with("TIM_SECRET_KEY: ") && line.contains(&code.to_string()),
                "{line}"
            );
        }
    }

    #[test]
    fn a_configuration_error_names_its_variable_and_stops_at_once() {
        for (code, variable) in [
            (60010, "TIM_ADMIN_IDENTIFIER"),
            (60006, "TIM_SDK_APP_ID"),
            (60016, "TIM_SDK_APP_ID"),
            (60021, "TIM_SDK_APP_ID"),
        ] {
            let Class::Stop(fault) = answer(code) else {
                panic!("{code}")
            };
            assert_eq!(fault.variable, variable, "{code}");
            assert!(!fault.worth_one_fresh_usersig() && !answer(code).is_retried());
            assert!(!fault.to_string().contains('\n'), "one line");
        }
    }

    #[test]
    fn an_unknown_code_is_never_gone_never_a_stop_and_backs_off() {
        for code in [1, 10004, 60003, 80001, -1] {
            let class = answer(code);
            assert_eq!(class, Class::Unknown(Unexpected::Code(code)));
            assert!(class.raises_backoff() && class.is_retried());
        }
    }

    #[test]
    fn answers_that_contradict_themselves_are_not_success() {
        let fail_ok = br#"{"ActionStatus":"FAIL","ErrorCode":0}"#;
        assert_eq!(
            classify(Reply::Http {
                status: 200,
                body: fail_ok
            }),
            Class::Unknown(Unexpected::FailWithoutCode)
        );
        let ok_fail = br#"{"ActionStatus":"OK","ErrorCode":60007}"#;
        assert_eq!(
            classify(Reply::Http {
                status: 200,
                body: ok_fail
            }),
            Class::BackOff
        );
    }

    #[test]
    fn other_statuses_and_unreadable_bodies_are_unknown() {
        assert_eq!(
            classify(Reply::Http {
                status: 404,
                body: b"{}"
            }),
            Class::Unknown(Unexpected::HttpStatus(404))
        );
        assert_eq!(
            classify(Reply::Http {
                status: 200,
                body: b"<html>bad gateway</html>"
            }),
            Class::Unknown(Unexpected::Body)
        );
    }

    #[test]
    fn each_group_of_a_get_group_info_answer_is_classed_on_its_own() {
        let answer: serde_json::Value = serde_json::from_str(
            r#"{"ActionStatus":"OK","ErrorCode":0,"GroupInfo":[
                {"GroupId":"a","ErrorCode":0,"Name":"A"},
                {"GroupId":"b","ErrorCode":10010,"ErrorInfo":"gone"},
                {"GroupId":"c","ErrorCode":10018}]}"#,
        )
        .unwrap();
        let classes: Vec<Class> = answer["GroupInfo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|group| Envelope::from_value(group).unwrap().class())
            .collect();
        assert_eq!(classes, [Class::Ok, Class::GroupGone, Class::AskForLess]);
        assert_eq!(
            Envelope::parse(answer.to_string().as_bytes()).unwrap().class(),
            Class::Ok
        );
    }

    #[test]
    fn a_missing_code_is_zero_and_a_wrong_type_is_an_error() {
        assert_eq!(
            Envelope::parse(br#"{"ActionStatus":"OK"}"#).unwrap().class(),
            Class::Ok
        );
        assert!(Envelope::parse(br#"{"ErrorCode":"60007"}"#).is_err());
        assert!(Envelope::parse(b"[]").is_err());
    }
}
