//! The other replicas (`RELAY_PEERS`): whose older spooled events go to Kafka first, and how
//! long a callback of a group another replica owns may wait for that owner's answer.

use std::fmt;
use std::time::Duration;

use super::{ConfigError, Env};

/// The other replicas' admin listeners, and how long one may hold this relay back.
#[derive(Debug, Clone)]
pub struct Replicas {
    /// `RELAY_PEERS`: `host:port` of the other replicas' admin listeners; empty: no waiting.
    pub peers: Vec<String>,
    /// `RELAY_PEER_MAX_WAIT_MS`: how long a peer's spool may stand still, while Kafka takes this
    /// relay's records, before it is no longer waited for.
    pub max_wait: Duration,
    /// `RELAY_HANDOVER_TIMEOUT_MS`: how long a callback of a group another replica owns waits
    /// for that owner's answer before this relay handles it itself.
    pub handover_timeout: Duration,
}

/// Tencent waits 2 s; what a hand-over that timed out leaves must still cover the ack timeout
/// of the relay's own attempt and a spool commit.
const BUDGET_MS: u128 = 1900;

impl Replicas {
    /// `ack_timeout`: `RELAY_ACK_TIMEOUT_MS`, which a hand-over that timed out is followed by.
    pub fn read(env: &Env, ack_timeout: Duration) -> Result<Self, ConfigError> {
        let handover_timeout = Duration::from_millis(env.positive("RELAY_HANDOVER_TIMEOUT_MS", 300)?);
        if handover_timeout.as_millis() + ack_timeout.as_millis() > BUDGET_MS {
            return Err(ConfigError::new(
                "RELAY_HANDOVER_TIMEOUT_MS",
                format!(
                    "with RELAY_ACK_TIMEOUT_MS ({} ms) must leave 100 ms of Tencent's 2000 ms: at most {} ms",
                    ack_timeout.as_millis(),
                    BUDGET_MS.saturating_sub(ack_timeout.as_millis()),
                ),
            ));
        }
        Ok(Self {
            peers: peer_list(env.get("RELAY_PEERS").as_deref())?,
            max_wait: Duration::from_millis(env.positive("RELAY_PEER_MAX_WAIT_MS", 10_000)?),
            handover_timeout,
        })
    }
}

impl fmt::Display for Replicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peers = if self.peers.is_empty() {
            "none".to_string()
        } else {
            self.peers.join(",")
        };
        write!(
            f,
            "peers={peers} peer_max_wait={}ms handover_timeout={}ms",
            self.max_wait.as_millis(),
            self.handover_timeout.as_millis()
        )
    }
}

/// `RELAY_PEERS`: comma-separated `host:port`, each with a port number.
fn peer_list(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(s.to_string())
            }
            _ => Err(ConfigError::new(
                "RELAY_PEERS",
                format!("`{s}` is not host:port, like tim-relay-headless:9090"),
            )),
        })
        .collect()
}
