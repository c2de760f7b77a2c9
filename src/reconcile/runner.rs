//! `tim-relay reconcile [--once]`: one sweep and a summary, or a sweep every
//! `RECONCILE_INTERVAL_SECS` until SIGTERM/SIGINT.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::client::{CallObserver, Client};
use super::config::ReconcileConfig;
use super::publish::Publisher;
use super::sweep::{self, Observer, Quiet, Summary, SweepError};

/// How `reconcile` ended, for its exit code.
#[derive(Debug)]
pub enum Ended {
    /// `--once` swept, or the loop was told to stop: exit 0.
    Done,
    /// A configuration or authentication error (the line names the variable): exit 3.
    Stop(String),
    /// Kafka or the REST API failed the one sweep of `--once`, or a set-up step failed: exit 1.
    Failed(String),
}

/// One sweep: its summary, or why it could not be done.
pub async fn once(config: ReconcileConfig) -> Ended {
    let stop = Arc::new(AtomicBool::new(false));
    let (client, publisher) = match parts(&config, None, &stop) {
        Ok(parts) => parts,
        Err(e) => return Ended::Failed(e),
    };
    let config = Arc::new(config);
    let sweep = sweep::sweep(config, client, publisher, Arc::new(Quiet), stop.clone());
    tokio::select! {
        result = sweep => match result {
            Ok(summary) => {
                println!("tim-relay reconcile: {summary}");
                Ended::Done
            }
            Err(SweepError::Stop(fault)) => Ended::Stop(fault.to_string()),
            Err(e) => Ended::Failed(e.to_string()),
        },
        signal = crate::shutdown::stop_signal() => {
            stop.store(true, Ordering::Relaxed);
            Ended::Failed(format!("{signal} before the sweep was done"))
        }
    }
}

/// The REST client (telling `observe` of each call) and the producer.
fn parts(
    config: &ReconcileConfig,
    observe: Option<CallObserver>,
    stop: &Arc<AtomicBool>,
) -> Result<(Arc<Client>, Arc<Publisher>), String> {
    let client = Client::new(config, observe).map_err(|e| format!("the REST client: {e}"))?;
    let publisher = Publisher::new(config, stop.clone()).map_err(|e| format!("the Kafka producer: {e}"))?;
    Ok((Arc::new(client), Arc::new(publisher)))
}

/// Sweeps every `interval` (from start to start; a longer sweep is followed at once by the
/// next) until SIGTERM/SIGINT, telling `observer` and `beat` as it goes.
pub async fn forever(
    config: ReconcileConfig,
    observe: Option<CallObserver>,
    observer: Arc<dyn Observer>,
    mut on_sweep: impl FnMut(SweepEvent<'_>),
) -> Ended {
    let stop = Arc::new(AtomicBool::new(false));
    let (client, publisher) = match parts(&config, observe, &stop) {
        Ok(parts) => parts,
        Err(e) => return Ended::Failed(e),
    };
    let config = Arc::new(config);
    let interval = config.interval;
    let signal = crate::shutdown::stop_signal();
    tokio::pin!(signal);
    loop {
        let started = Instant::now();
        on_sweep(SweepEvent::Started);
        let sweep = sweep::sweep(
            config.clone(),
            client.clone(),
            publisher.clone(),
            observer.clone(),
            stop.clone(),
        );
        let result = tokio::select! {
            r = sweep => r,
            s = &mut signal => {
                stop.store(true, Ordering::Relaxed);
                log::info!("{s}: the sweep stops where it is; the next start sweeps again");
                return Ended::Done;
            }
        };
        match result {
            Ok(summary) => {
                log::info!("{summary}");
                on_sweep(SweepEvent::Completed(&summary));
            }
            Err(SweepError::Stop(fault)) => {
                on_sweep(SweepEvent::Stopped);
                return Ended::Stop(fault.to_string());
            }
            Err(e) => {
                log::error!("{e}; the next sweep starts at its time");
                on_sweep(SweepEvent::Failed);
            }
        }
        let wait = interval.saturating_sub(started.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            s = &mut signal => {
                log::info!("{s}: stopping between sweeps");
                return Ended::Done;
            }
        }
    }
}

/// What the loop tells its caller about each sweep.
pub enum SweepEvent<'a> {
    Started,
    Completed(&'a Summary),
    Failed,
    Stopped,
}
