//! Start-up of the relay: the sections of the configuration turned into the running parts
//! (metrics, the producers, the spool, the other replicas, the callback and admin listeners),
//! and the orderly stop. Each part lives in its folder; this file only wires them.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;

use crate::config::{Config, ConfigError};
use crate::delivery::peers::Peers;
use crate::delivery::publish::Publisher;
use crate::delivery::spool::Spool;
use crate::delivery::Relay;
use crate::ingress::http::AppState;
use crate::ops::admin::{self, Readiness};
use crate::ops::metrics::Metrics;
use crate::shutdown::stop_signal;

/// How long shutdown waits for queued events to reach the broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound, not yet running relay: the callback listener and the admin listener.
pub struct Application {
    port: u16,
    admin_port: u16,
    server: Server,
    admin: Server,
    relay: Relay,
    readiness: Arc<Readiness>,
    drain: Duration,
}

impl Application {
    /// Creates the producer and binds the listener (port 0 picks a free port).
    pub fn build(config: Config) -> Result<Self, ConfigError> {
        let listener = TcpListener::bind(config.http.listen).map_err(|e| {
            ConfigError::new("RELAY_LISTEN", format!("cannot bind {}: {e}", config.http.listen))
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let admin_listener = TcpListener::bind(config.shared.admin_listen).map_err(|e| {
            ConfigError::new(
                "RELAY_ADMIN_LISTEN",
                format!("cannot bind {}: {e}", config.shared.admin_listen),
            )
        })?;
        let admin_port = admin_listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let metrics = Arc::new(Metrics::new());
        crate::ingress::decision::register_metrics(&metrics);
        crate::ingress::handover::register_metrics(&metrics);
        metrics.spool_max_bytes.set(config.spool.max_bytes as i64);
        let publisher = Arc::new(Publisher::new(&config, metrics.duplicates.clone())?);
        let spool = Spool::open_bounded(
            &config.spool.dir,
            config.spool.max_bytes,
            config.spool.max_file_bytes,
        )
        .map_err(|e| ConfigError::new("RELAY_SPOOL_DIR", e.to_string()))?;
        let peers = Peers::new(
            config.replicas.peers.clone(),
            config.replicas.max_wait,
            metrics.peer_metrics(),
        );
        let relay = Relay::new(
            publisher,
            spool,
            metrics,
            config.http.limits.max_pending_publishes,
        )
        .with_peers(peers);
        let state = AppState::new(&config, relay.clone());
        let handover = crate::ingress::http::handover_route(state.clone());
        let server = crate::ingress::http::serve(listener, state, &config.http)?;
        let readiness = Readiness::new();
        let admin = admin::server(admin_listener, relay.clone(), readiness.clone(), handover)
            .map_err(|e| ConfigError::new("RELAY_ADMIN_LISTEN", e.to_string()))?;
        Ok(Self {
            port,
            admin_port,
            server,
            admin,
            relay,
            readiness,
            drain: config.spool.shutdown_drain,
        })
    }

    /// The callback listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's port (`/healthz`, `/readyz`, `/metrics`).
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Serves and forwards the spool until SIGTERM or SIGINT (both stop the same way): readiness
    /// turns 503, the callback listener closes and in-flight callbacks finish, the forwarder
    /// keeps forwarding the spool for up to `RELAY_SHUTDOWN_DRAIN_SECS`, then the producer is
    /// flushed. What is still spooled stays on disk for the next start.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let forwarder = tokio::spawn(self.relay.clone().forward(stopped, self.drain));
        let probe = tokio::spawn(self.readiness.clone().probe_forever(self.relay.clone()));
        let peers = self.relay.peers.clone();
        let watch_peers = peers
            .enabled()
            .then(|| tokio::spawn(peers.watch_forever(self.relay.clone())));
        let callbacks = self.server.handle();
        let admin = self.admin.handle();
        let admin_task = tokio::spawn(self.admin);
        let mut served = tokio::spawn(self.server);
        let served = tokio::select! {
            signal = stop_signal() => {
                log::info!(
                    "{signal}: no new callbacks; finishing those in flight, then forwarding the spool for up to {}s",
                    self.drain.as_secs()
                );
                self.readiness.set_stopping();
                // Its groups go to the other replicas on their next poll, its hand-overs back.
                self.relay.peers.set_stopping();
                callbacks.stop(true).await;
                served.await
            }
            result = &mut served => result,
        };
        let _ = stop.send(true);
        // The forwarder returns by itself at the drain deadline; the margin covers its last wait.
        let margin = Duration::from_secs(2);
        if tokio::time::timeout(self.drain + margin, forwarder)
            .await
            .is_err()
        {
            log::error!("forwarder did not stop within {:?}", self.drain + margin);
        }
        let publisher = self.relay.publisher.clone();
        let flushed = tokio::task::spawn_blocking(move || publisher.flush(FLUSH_TIMEOUT)).await;
        let (events, _) = self.relay.spool.depth();
        match flushed {
            Ok(Ok(())) => log::info!("stopped: producer flushed; {events} events stay in the spool"),
            Ok(Err(e)) => log::error!("stopped: producer flush incomplete after {FLUSH_TIMEOUT:?}: {e}"),
            Err(e) => log::error!("stopped: producer flush did not run: {e}"),
        }
        probe.abort();
        if let Some(watch) = watch_peers {
            watch.abort();
        }
        admin.stop(true).await;
        let _ = admin_task.await;
        served.map_err(std::io::Error::other)?
    }
}
