//! Posting a callback as Tencent does (`../shared/spec/tencent-im-callbacks.md`): the query
//! parameters with their exact case, and with a token `Sign = lowercase_hex(SHA-256(token +
//! RequestTime))`, plain concatenation. Kept here (not taken from the relay) so that the
//! emulator stands alone and a test compares it with the relay's own check.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `lowercase_hex(SHA-256(token + request_time))`.
pub fn callback_sign(token: &str, request_time: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(token.as_bytes());
    hasher.update(request_time.as_bytes());
    hex::encode(hasher.finalize())
}

/// The URL Tencent posts `command` to: `callback_url` (the console's URL, e.g.
/// `http://127.0.0.1:8080/callback`) with `SdkAppid`, `CallbackCommand`, `contenttype=json`,
/// `ClientIP`, `OptPlatform=RESTAPI`, and `Sign`/`RequestTime` when there is a token.
pub fn callback_url(
    callback_url: &str,
    sdk_app_id: u64,
    command: &str,
    token: Option<&str>,
    request_time: u64,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("SdkAppid", &sdk_app_id.to_string())
        .append_pair("CallbackCommand", command)
        .append_pair("contenttype", "json")
        .append_pair("ClientIP", "127.0.0.1")
        .append_pair("OptPlatform", "RESTAPI");
    if let Some(token) = token {
        let time = request_time.to_string();
        query
            .append_pair("Sign", &callback_sign(token, &time))
            .append_pair("RequestTime", &time);
    }
    let separator = if callback_url.contains('?') { '&' } else { '?' };
    format!("{callback_url}{separator}{}", query.finish())
}

/// Posts `body` (its `CallbackCommand` names the command) to `callback_url`, signed now with
/// `token` when given. Returns the HTTP status and the answer (a JSON string value when the
/// answer is not JSON).
pub async fn sign_and_post(
    http: &reqwest::Client,
    callback_url_base: &str,
    sdk_app_id: u64,
    token: Option<&str>,
    body: &Value,
) -> reqwest::Result<(u16, Value)> {
    let command = body
        .get("CallbackCommand")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let url = callback_url(callback_url_base, sdk_app_id, command, token, now);
    let response = http.post(url).body(body.to_string()).send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, answer))
}
