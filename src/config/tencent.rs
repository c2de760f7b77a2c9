//! The Tencent app: which callbacks are this app's.

use std::fmt;
use std::time::Duration;

use super::{ConfigError, Env};

/// Which app the callbacks must be for, and how their `Sign` is checked.
#[derive(Clone)]
pub struct Tencent {
    /// `TIM_SDK_APP_ID`: the app's SDKAppID (decimal digits); required.
    pub sdk_app_id: String,
    /// `TIM_CALLBACK_TOKEN`, from the IM console; when set, `Sign`/`RequestTime` are required.
    pub callback_token: Option<String>,
    /// `TIM_SIGN_MAX_SKEW_SECS`: how far `RequestTime` may lie from the relay's clock.
    pub sign_max_skew: Duration,
}

impl Tencent {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let sdk_app_id = env.required("TIM_SDK_APP_ID")?.trim().to_string();
        if sdk_app_id.is_empty() || !sdk_app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::new("TIM_SDK_APP_ID", "must be the decimal SDKAppID"));
        }
        Ok(Self {
            sdk_app_id,
            callback_token: env.get("TIM_CALLBACK_TOKEN").filter(|t| !t.is_empty()),
            sign_max_skew: env.secs("TIM_SIGN_MAX_SKEW_SECS", 60)?,
        })
    }
}

impl fmt::Display for Tencent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = match self.callback_token {
            Some(_) => "set (masked)",
            None => "unset (Sign not checked)",
        };
        write!(
            f,
            "sdk_app_id={} token={token} sign_max_skew={}s",
            self.sdk_app_id,
            self.sign_max_skew.as_secs()
        )
    }
}
