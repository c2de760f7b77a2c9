//! The spool: where events wait that Kafka has not acknowledged, and its two bounds.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Env};
use crate::delivery::spool::{default_max_file_bytes, MIN_FILE_BYTES};

/// The spool's place, its bounds, and how long it is drained at a stop.
#[derive(Debug, Clone)]
pub struct Spool {
    /// `RELAY_SPOOL_DIR`: keep it on a persistent volume.
    pub dir: PathBuf,
    /// `RELAY_SPOOL_MAX_BYTES`: the events it holds; beyond it callbacks are refused.
    pub max_bytes: u64,
    /// `RELAY_SPOOL_MAX_FILE_BYTES`: the spool's file never grows past it.
    pub max_file_bytes: u64,
    /// `RELAY_SHUTDOWN_DRAIN_SECS`: after SIGTERM/SIGINT, how long the spool is still forwarded.
    pub shutdown_drain: Duration,
}

impl Spool {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let dir = env.string("RELAY_SPOOL_DIR", "spool");
        if dir.trim().is_empty() {
            return Err(ConfigError::new("RELAY_SPOOL_DIR", "must not be empty"));
        }
        let max_bytes = env.number("RELAY_SPOOL_MAX_BYTES", 1u64 << 30)?;
        if max_bytes < 1 << 20 {
            return Err(ConfigError::new(
                "RELAY_SPOOL_MAX_BYTES",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        let max_file_bytes = env.number("RELAY_SPOOL_MAX_FILE_BYTES", default_max_file_bytes(max_bytes))?;
        if max_file_bytes < MIN_FILE_BYTES {
            return Err(ConfigError::new(
                "RELAY_SPOOL_MAX_FILE_BYTES",
                format!("must be at least {MIN_FILE_BYTES} (8 MiB)"),
            ));
        }
        Ok(Self {
            dir: dir.into(),
            max_bytes,
            max_file_bytes,
            shutdown_drain: env.secs("RELAY_SHUTDOWN_DRAIN_SECS", 20)?,
        })
    }
}

impl fmt::Display for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spool={} spool_max={}B spool_max_file={}B shutdown_drain={}s",
            self.dir.display(),
            self.max_bytes,
            self.max_file_bytes,
            self.shutdown_drain.as_secs()
        )
    }
}
