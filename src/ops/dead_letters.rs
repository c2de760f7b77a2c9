//! `tim-relay dead list` and `tim-relay dead replay`: the spool's dead table for an operator,
//! on the same claim as the relay. With no relay running on `RELAY_SPOOL_DIR`, the spool is
//! opened here; while a relay holds it, the same request goes to that relay's admin listener
//! (`RELAY_ADMIN_LISTEN`, `GET /spool/dead` and `POST /spool/dead/replay`), so either way the
//! answer is one JSON document and nothing else in the spool moves.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::config::Config;
use crate::delivery::spool::{Spool, SpoolError};

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    Replay,
}

/// Runs `action` and returns the JSON to print, or the one line that says why not.
pub fn run(config: &Config, action: Action) -> Result<String, String> {
    match Spool::open_bounded(
        &config.spool.dir,
        config.spool.max_bytes,
        config.spool.max_file_bytes,
    ) {
        Ok(spool) => offline(&spool, &config.shared.topic, action),
        Err(SpoolError::InUse(_)) => through_the_relay(config.shared.admin_listen, action),
        Err(e) => Err(format!("RELAY_SPOOL_DIR: {e}")),
    }
}

/// No relay runs on the spool: read or change it here. A replay leaves the events in the spool
/// for the relay's next start to forward.
fn offline(spool: &Spool, default_topic: &str, action: Action) -> Result<String, String> {
    let json = match action {
        Action::List => {
            let mut summary = spool.dead_summary().map_err(|e| e.to_string())?;
            summary.name_default_topic(default_topic);
            serde_json::to_string_pretty(&summary)
        }
        Action::Replay => serde_json::to_string_pretty(&spool.replay_dead().map_err(|e| e.to_string())?),
    };
    json.map_err(|e| e.to_string())
}

/// A relay holds the spool: ask it, on its admin listener.
fn through_the_relay(admin: SocketAddr, action: Action) -> Result<String, String> {
    // A listener on every address is reached on this host.
    let host = match admin.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let url = match action {
        Action::List => format!("http://{}/spool/dead", SocketAddr::new(host, admin.port())),
        Action::Replay => format!("http://{}/spool/dead/replay", SocketAddr::new(host, admin.port())),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let request = match action {
            Action::List => client.get(&url),
            Action::Replay => client.post(&url),
        };
        let answer = request.send().await.map_err(|e| {
            format!("the spool is held by a running relay, and its admin listener ({url}, RELAY_ADMIN_LISTEN) did not answer: {e}")
        })?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{url} answered {status}: {}", body.trim()));
        }
        let value: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{url}: {e}"))?;
        serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
    })
}
