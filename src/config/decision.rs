//! Before-callbacks: where decisions come from, and what to answer without one.

use std::fmt;
use std::time::Duration;

use super::{ConfigError, Env};

/// How before-callbacks are answered.
#[derive(Debug, Clone)]
pub struct Decision {
    /// `RELAY_DECISION_URL`; `None`: every before-callback is answered allow at once.
    pub url: Option<String>,
    /// `RELAY_DECISION_TIMEOUT_MS`: how long the decision service may take.
    pub timeout: Duration,
    /// `RELAY_DECISION_FALLBACK`: the answer when the service fails or is late; true = allow.
    pub fallback_allow: bool,
}

impl Decision {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let url = env.get("RELAY_DECISION_URL").filter(|u| !u.trim().is_empty());
        if let Some(url) = &url {
            check_url(url).map_err(|e| {
                ConfigError::new(
                    "RELAY_DECISION_URL",
                    format!("must be an http:// URL of a decision service beside the relay: {e}"),
                )
            })?;
        }
        let timeout = env.millis("RELAY_DECISION_TIMEOUT_MS", 1500)?;
        if !(1..2000).contains(&timeout.as_millis()) {
            return Err(ConfigError::new(
                "RELAY_DECISION_TIMEOUT_MS",
                "must be between 1 and 1999: Tencent waits 2000 ms for the answer",
            ));
        }
        let fallback_allow = match env
            .string("RELAY_DECISION_FALLBACK", "allow")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "allow" => true,
            "deny" => false,
            _ => {
                return Err(ConfigError::new(
                    "RELAY_DECISION_FALLBACK",
                    "must be `allow` or `deny`",
                ))
            }
        };
        Ok(Self {
            url,
            timeout,
            fallback_allow,
        })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "decision_url={} decision_timeout={}ms decision_fallback={}",
            self.url
                .as_deref()
                .map_or("unset (before-callbacks answered allow)".into(), shown_url),
            self.timeout.as_millis(),
            if self.fallback_allow { "allow" } else { "deny" },
        )
    }
}

/// The decision URL as the relay can use it: http://, a host, no fragment. Errors never repeat
/// the URL: it may carry a password or a key.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if parsed.scheme() != "http" || !parsed.has_host() {
        return Err("not an http:// URL with a host".into());
    }
    if parsed.fragment().is_some() {
        return Err("has a #fragment".into());
    }
    Ok(parsed)
}

/// A URL for the start-up line: scheme, host, port and path; user, password and query masked.
fn shown_url(url: &str) -> String {
    match check_url(url) {
        Ok(u) => format!(
            "{}://{}{}{}{}",
            u.scheme(),
            if u.username().is_empty() && u.password().is_none() {
                ""
            } else {
                "***@"
            },
            u.host_str().unwrap_or_default(),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path().to_string() + if u.query().is_some() { "?***" } else { "" },
        ),
        Err(_) => "(invalid)".into(),
    }
}
