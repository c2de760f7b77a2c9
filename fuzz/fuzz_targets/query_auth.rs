//! Arbitrary bytes as the callback's query string: `CallbackQuery::parse`, `check_app_id` and
//! `check_sign` never panic, and what they decide is what the query says.
//!
//! Each input is used twice: as the raw query (lossy UTF-8, as a server would hand it over),
//! and split on `\n` into values for the six known parameters, properly encoded, so the
//! fuzzer reaches every slot with any text without having to learn the parameter names.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tim_relay::ingress::auth::{sign_for, AuthError, Authenticator};
use tim_relay::ingress::callback::CallbackQuery;

const APP_ID: &str = "1400000000";
const TOKEN: &str = "xxxxyyyy";
/// Tencent's test vector's RequestTime plus 30 s: its Sign is valid at this instant.
const NOW_SECS: u64 = 1_669_872_112 + 30;
const MAX_SKEW_SECS: u64 = 60;
const NAMES: [&str; 6] = [
    "SdkAppid",
    "CallbackCommand",
    "ClientIP",
    "OptPlatform",
    "Sign",
    "RequestTime",
];

fuzz_target!(|data: &[u8]| {
    let auth = Authenticator::new(
        APP_ID.into(),
        Some(TOKEN.into()),
        Duration::from_secs(MAX_SKEW_SECS),
    );
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);

    let raw = String::from_utf8_lossy(data);
    let parsed = CallbackQuery::parse(&raw);
    check_parse_against_spec(&raw, &parsed);
    check(&auth, &parsed, now);

    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (name, value) in NAMES.iter().zip(raw.split('\n')) {
        ser.append_pair(name, value);
    }
    let structured = CallbackQuery::parse(&ser.finish());
    for (name, value) in NAMES.iter().zip(raw.split('\n')) {
        assert_eq!(
            slot(&structured, name),
            Some(value),
            "{name} did not survive encoding"
        );
    }
    check(&auth, &structured, now);
});

fn slot<'a>(q: &'a CallbackQuery, name: &str) -> Option<&'a str> {
    match name {
        "SdkAppid" => q.sdk_app_id.as_deref(),
        "CallbackCommand" => q.callback_command.as_deref(),
        "ClientIP" => q.client_ip.as_deref(),
        "OptPlatform" => q.opt_platform.as_deref(),
        "Sign" => q.sign.as_deref(),
        "RequestTime" => q.request_time.as_deref(),
        _ => unreachable!(),
    }
}

/// A parameter given once (or always with the same value) keeps that value; given with
/// different values it becomes the empty string; absent it stays `None`.
fn check_parse_against_spec(raw: &str, parsed: &CallbackQuery) {
    for name in NAMES {
        let values: Vec<String> = form_urlencoded::parse(raw.as_bytes())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect();
        let expected = match values.split_first() {
            None => None,
            Some((first, rest)) if rest.iter().all(|v| v == first) => Some(first.as_str()),
            Some(_) => Some(""),
        };
        assert_eq!(slot(parsed, name), expected, "{name} in {raw:?}");
    }
    // Re-encoding what was parsed and parsing again gives the same query.
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for name in NAMES {
        if let Some(v) = slot(parsed, name) {
            ser.append_pair(name, v);
        }
    }
    assert_eq!(&CallbackQuery::parse(&ser.finish()), parsed);
}

fn check(auth: &Authenticator, q: &CallbackQuery, now: SystemTime) {
    let app = auth.check_app_id(q);
    let expected = match q.sdk_app_id.as_deref() {
        None => Err(AuthError::MissingAppId),
        Some(APP_ID) => Ok(()),
        Some(_) => Err(AuthError::WrongAppId),
    };
    assert_eq!(app, expected);

    let signed = auth.check_sign(q, now);
    match &signed {
        Ok(()) => {
            // Only a genuinely signed, fresh query passes.
            let time = q.request_time.as_deref().expect("passed without RequestTime");
            let secs: u64 = time
                .parse()
                .expect("passed with a RequestTime that is not a number");
            assert!(
                secs.abs_diff(NOW_SECS) <= MAX_SKEW_SECS,
                "passed with a stale RequestTime"
            );
            let sign = q.sign.as_deref().expect("passed without Sign");
            assert_eq!(sign.to_ascii_lowercase(), sign_for(TOKEN, time));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if q.sign.is_none() || q.request_time.is_none() {
        assert_eq!(signed, Err(AuthError::MissingSign));
    }

    // The right Sign for whatever RequestTime was sent passes exactly when that time is a
    // number of seconds within the skew, in lower or upper case; one changed digit never does.
    let Some(time) = q.request_time.as_deref() else {
        return;
    };
    let expected = match time.parse::<u64>() {
        Err(_) => Err(AuthError::BadRequestTime),
        Ok(secs) if secs.abs_diff(NOW_SECS) > MAX_SKEW_SECS => Err(AuthError::StaleRequestTime),
        Ok(_) => Ok(()),
    };
    let good = sign_for(TOKEN, time);
    let mut resigned = q.clone();
    for sign in [good.clone(), good.to_ascii_uppercase()] {
        resigned.sign = Some(sign);
        assert_eq!(auth.check_sign(&resigned, now), expected);
    }
    let mut bad = good.into_bytes();
    bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
    resigned.sign = Some(String::from_utf8(bad).unwrap());
    let want_bad = expected.and(Err(AuthError::WrongSign));
    assert_eq!(auth.check_sign(&resigned, now), want_bad);
}
