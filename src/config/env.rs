//! The environment as the configuration reads it: one variable at a time, each read naming its
//! variable in any error, and every name asked for remembered (the README's tables are checked
//! against them, see `tests.rs`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;

/// The variables the configuration is read from.
pub struct Env {
    vars: BTreeMap<String, String>,
    asked: RefCell<BTreeSet<String>>,
}

impl Env {
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            vars: vars.into_iter().collect(),
            asked: RefCell::default(),
        }
    }

    /// Every variable read so far (prefixes end in `*`).
    pub fn asked(&self) -> BTreeSet<String> {
        self.asked.borrow().clone()
    }

    /// The value as set, empty included; `None` when unset.
    pub fn get(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().insert(name.to_string());
        self.vars.get(name).cloned()
    }

    /// The value, or `default` when unset.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    /// The value, or an error naming the variable when unset.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// The value parsed as a `T` (`what` says what it should look like), or `default` when unset.
    pub fn parse<T: FromStr>(&self, name: &str, default: T, what: &str) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(name, format!("`{v}` is not {what}"))),
        }
    }

    /// A whole number, or `default` when unset.
    pub fn number<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        self.parse(name, default, "a whole number")
    }

    /// A whole number that is not 0.
    pub fn positive(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        match self.number(name, default)? {
            0 => Err(ConfigError::new(name, "must be greater than 0")),
            v => Ok(v),
        }
    }

    /// Milliseconds, or `default_ms` when unset.
    pub fn millis(&self, name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.number(name, default_ms).map(Duration::from_millis)
    }

    /// Seconds, or `default_secs` when unset.
    pub fn secs(&self, name: &str, default_secs: u64) -> Result<Duration, ConfigError> {
        self.number(name, default_secs).map(Duration::from_secs)
    }

    /// Every variable starting with `prefix`, as librdkafka properties: the rest of the name in
    /// lower case, `_` become `.` (`KAFKA_PRODUCER_SECURITY_PROTOCOL` → `security.protocol`).
    pub fn properties(&self, prefix: &str) -> BTreeMap<String, String> {
        self.asked.borrow_mut().insert(format!("{prefix}*"));
        self.vars
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(prefix)?;
                Some((name.to_ascii_lowercase().replace('_', "."), v.clone()))
            })
            .collect()
    }
}

/// The variable a librdkafka property came from.
pub fn property_var(prefix: &str, property: &str) -> String {
    format!("{prefix}{}", property.replace('.', "_").to_ascii_uppercase())
}
