//! The sweep loop with its admin listener: `/healthz`, `/readyz`, `/metrics`, and the metrics
//! told of every REST call, every drift found and every event published.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::admin::{self, Health};
use super::config::ReconcileConfig;
use super::metrics::ReconcileMetrics;
use super::runner::{self, Ended, SweepEvent};
use super::sweep::Observer;

impl Observer for ReconcileMetrics {
    fn progress(&self, listed: u64, read: u64, total: u64) {
        self.sweep_groups_listed.set(listed as i64);
        self.sweep_groups_read.set(read as i64);
        self.sweep_groups_total.set(total as i64);
    }

    fn drift(&self, field: &'static str) {
        self.drift.with_label_values(&[field]).inc();
    }

    fn published(&self, kind: &'static str) {
        self.events.with_label_values(&[kind]).inc();
    }

    fn group_failed(&self) {
        self.group_failures.inc();
    }
}

/// Runs the loop until SIGTERM/SIGINT or a configuration fault.
pub async fn forever(config: ReconcileConfig) -> Ended {
    let metrics = Arc::new(ReconcileMetrics::new());
    metrics.interval.set(config.interval.as_secs() as i64);
    metrics.max_qps.set(i64::from(config.max_qps.get()));
    let health = Health::new();
    let listen = config.state.shared.admin_listen;
    let server = match admin::server(listen, metrics.clone(), health.clone()) {
        Ok(server) => server,
        Err(e) => return Ended::Failed(format!("RELAY_ADMIN_LISTEN {listen}: {e}")),
    };
    actix_web::rt::spawn(server);
    // The loop's runtime is alive: a sweep waits on the budget and the network, never blocks.
    let beating = health.clone();
    actix_web::rt::spawn(async move {
        loop {
            beating.beat();
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let calls = metrics.clone();
    let observe: super::client::CallObserver = Box::new(move |api, result, took| {
        calls.rest_calls.with_label_values(&[api.name(), result]).inc();
        calls
            .rest_seconds
            .with_label_values(&[api.name()])
            .observe(took.as_secs_f64());
    });
    health.set_ready(true);
    metrics.ready.set(1);
    let on = metrics.clone();
    let ended = runner::forever(config, Some(observe), metrics.clone(), move |event| match event {
        SweepEvent::Started => on.sweep_running.set(1),
        SweepEvent::Completed(summary) => {
            on.sweep_running.set(0);
            on.sweeps.with_label_values(&["completed"]).inc();
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            on.last_completed.set(now.as_secs() as i64);
            on.last_duration.set(summary.duration.as_secs_f64());
        }
        SweepEvent::Failed => {
            on.sweep_running.set(0);
            on.sweeps.with_label_values(&["failed"]).inc();
        }
        SweepEvent::Stopped => {
            on.sweep_running.set(0);
            on.sweeps.with_label_values(&["stopped"]).inc();
        }
    })
    .await;
    health.set_ready(false);
    metrics.ready.set(0);
    ended
}
