//! `tim-relay reconcile`'s configuration, from the environment like every role's. It reads the
//! materializer's variables (so both agree on the topics and on `RELAY_STATE_MAX_MEMBERS`)
//! and its own: the App admin, the key, Tencent's address, the rate budget and the interval.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::config::{ConfigError, Env};
use crate::reconcile::usersig::SecretKey;
use crate::state::materialize::config::StateConfig;

/// Tencent's REST API in China; the README lists the other regions' domains.
pub const DEFAULT_BASE_URL: &str = "https://console.tim.qq.com";
/// Default `RECONCILE_MAX_QPS`: a quarter of an API's 200/s, which the app's own backend
/// shares (docs/reconcile.md, "Cost per sweep").
pub const DEFAULT_MAX_QPS: u32 = 50;
/// Default `RECONCILE_INTERVAL_SECS` (docs/reconcile.md).
pub const DEFAULT_INTERVAL_SECS: u64 = 3600;

#[derive(Clone)]
pub struct ReconcileConfig {
    /// The state topic, the events' topic, the Kafka clients' properties, the fold's limits,
    /// the admin listener and the log format, as the materializer reads them.
    pub state: StateConfig,
    /// `TIM_SDK_APP_ID`.
    pub sdk_app_id: u64,
    /// `TIM_ADMIN_IDENTIFIER`: an App admin account of the app.
    pub admin_identifier: String,
    /// `TIM_SECRET_KEY`: masked in `Debug` and `Display`.
    pub secret_key: SecretKey,
    /// `TIM_REST_BASE_URL`, without a trailing `/`.
    pub base_url: String,
    /// `RECONCILE_MAX_QPS`: REST calls per second, all APIs together.
    pub max_qps: NonZeroU32,
    /// `RECONCILE_INTERVAL_SECS`: between the starts of two sweeps.
    pub interval: Duration,
}

impl ReconcileConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        Self::read(&Env::new(vars))
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let sdk_app_id = env.required("TIM_SDK_APP_ID")?;
        let sdk_app_id: u64 = sdk_app_id
            .trim()
            .parse()
            .ok()
            .filter(|_| sdk_app_id.trim().bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| ConfigError::new("TIM_SDK_APP_ID", "must be the decimal SDKAppID"))?;
        let admin_identifier = env.required("TIM_ADMIN_IDENTIFIER")?.trim().to_string();
        if admin_identifier.is_empty() {
            return Err(ConfigError::new(
                "TIM_ADMIN_IDENTIFIER",
                "must name an App admin account of the app (IM console, App admin)",
            ));
        }
        let key = env.required("TIM_SECRET_KEY")?.trim().to_string();
        if key.is_empty() {
            return Err(ConfigError::new(
                "TIM_SECRET_KEY",
                "must be the app's key from the IM console (Basic configuration)",
            ));
        }
        let base_url = env.string("TIM_REST_BASE_URL", DEFAULT_BASE_URL);
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        let scheme_ok = base_url.starts_with("https://") || base_url.starts_with("http://");
        if !scheme_ok || base_url.contains(['?', '#', ' ']) || base_url.len() <= "https://".len() {
            return Err(ConfigError::new(
                "TIM_REST_BASE_URL",
                "must be a URL like https://console.tim.qq.com (no path, query or spaces)",
            ));
        }
        let max_qps = env.positive("RECONCILE_MAX_QPS", u64::from(DEFAULT_MAX_QPS))?;
        if max_qps > 200 {
            return Err(ConfigError::new(
                "RECONCILE_MAX_QPS",
                "must be between 1 and 200: each API's limit is 200 calls/s, shared with the app's own backend",
            ));
        }
        let interval = env.secs("RECONCILE_INTERVAL_SECS", DEFAULT_INTERVAL_SECS)?;
        if interval.is_zero() {
            return Err(ConfigError::new(
                "RECONCILE_INTERVAL_SECS",
                "must be at least 1 (the time between the starts of two sweeps)",
            ));
        }
        let state = StateConfig::read(env)?;
        Ok(Self {
            state,
            sdk_app_id,
            admin_identifier,
            secret_key: SecretKey::new(key),
            base_url,
            max_qps: NonZeroU32::new(max_qps as u32).expect("checked positive"),
            interval,
        })
    }
}

impl fmt::Display for ReconcileConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sdk_app_id={} admin={} key=set (masked) rest={} max_qps={} interval={}s \
             state {} -> events {} (max members {}), Kafka {}",
            self.sdk_app_id,
            self.admin_identifier,
            self.base_url,
            self.max_qps,
            self.interval.as_secs(),
            self.state.state_topic,
            self.state.shared.topic,
            self.state.rules.max_members,
            self.state.shared.bootstrap_servers
        )
    }
}

impl fmt::Debug for ReconcileConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReconcileConfig({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all = vec![
            ("TIM_SDK_APP_ID", "1400000000"),
            ("TIM_ADMIN_IDENTIFIER", "administrator"),
            ("TIM_SECRET_KEY", "s3cr3t-key-value"),
        ];
        all.retain(|(k, _)| !list.iter().any(|(l, _)| l == k));
        all.extend_from_slice(list);
        all.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_the_key_masked() {
        let c = ReconcileConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.max_qps.get(), 50);
        assert_eq!(c.interval, Duration::from_secs(3600));
        assert_eq!(c.state.state_topic, "tim.group-state");
        for shown in [c.to_string(), format!("{c:?}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("masked"), "{shown}");
        }
        let c = ReconcileConfig::from_vars(vars(&[(
            "TIM_REST_BASE_URL",
            "https://adminapisgp.im.qcloud.com/",
        )]))
        .unwrap();
        assert_eq!(c.base_url, "https://adminapisgp.im.qcloud.com");
    }

    #[test]
    fn a_missing_or_bad_value_names_its_variable() {
        for (list, var) in [
            (vec![("TIM_SECRET_KEY", "")], "TIM_SECRET_KEY"),
            (vec![("TIM_ADMIN_IDENTIFIER", " ")], "TIM_ADMIN_IDENTIFIER"),
            (vec![("TIM_SDK_APP_ID", "14x")], "TIM_SDK_APP_ID"),
            (
                vec![("TIM_REST_BASE_URL", "console.tim.qq.com")],
                "TIM_REST_BASE_URL",
            ),
            (vec![("TIM_REST_BASE_URL", "https://x?y=1")], "TIM_REST_BASE_URL"),
            (vec![("RECONCILE_MAX_QPS", "0")], "RECONCILE_MAX_QPS"),
            (vec![("RECONCILE_MAX_QPS", "201")], "RECONCILE_MAX_QPS"),
            (vec![("RECONCILE_MAX_QPS", "fast")], "RECONCILE_MAX_QPS"),
            (vec![("RECONCILE_INTERVAL_SECS", "0")], "RECONCILE_INTERVAL_SECS"),
            (vec![("KAFKA_STATE_TOPIC", "a b")], "KAFKA_STATE_TOPIC"),
        ] {
            let err = ReconcileConfig::from_vars(vars(&list)).unwrap_err();
            assert_eq!(err.var, var, "{list:?}: {err}");
        }
        let only = |name: &str| -> Vec<(String, String)> {
            vars(&[]).into_iter().filter(|(k, _)| k != name).collect()
        };
        for var in ["TIM_SDK_APP_ID", "TIM_ADMIN_IDENTIFIER", "TIM_SECRET_KEY"] {
            assert_eq!(ReconcileConfig::from_vars(only(var)).unwrap_err().var, var);
        }
    }
}
