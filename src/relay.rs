//! The delivery promise: a record is acknowledged by Kafka or committed to the spool before the
//! caller hears OK; the forwarder moves spooled records to Kafka in arrival order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use crate::metrics::Metrics;
use crate::publish::{PublishError, Publisher};
use crate::record::Record;
use crate::spool::{Spool, SpoolError};

/// How many spooled records the forwarder sends per round.
const FORWARD_BATCH: usize = 500;
/// Pause after a failed forwarding round, doubled up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// After forwarding has failed this long, check whether Kafka is really down or the producer
/// is stuck (seen after a broker restart: librdkafka drops every broker it knew and keeps
/// failing); a stuck producer is replaced.
const STUCK_AFTER: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Kafka(#[from] PublishError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("too many callbacks are waiting on Kafka")]
    Busy,
}

/// Where an accepted record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Acknowledged(Duration),
    Spooled,
}

#[derive(Clone)]
pub struct Relay {
    pub publisher: Arc<Publisher>,
    pub spool: Spool,
    pub metrics: Arc<Metrics>,
    /// Bounds the callbacks waiting on Kafka's acknowledgement at once.
    waiting: Arc<Semaphore>,
}

impl Relay {
    pub fn new(publisher: Arc<Publisher>, spool: Spool, metrics: Arc<Metrics>, max_waiting: usize) -> Self {
        Self {
            publisher,
            spool,
            metrics,
            waiting: Arc::new(Semaphore::new(max_waiting)),
        }
    }

    /// Delivers one record. Straight to Kafka while nothing is spooled and the broker is
    /// reachable; otherwise, or when Kafka does not acknowledge in time, into the spool, behind
    /// what is already there, so one group's records keep the order they were answered in.
    pub async fn deliver(&self, record: &Record) -> Result<Delivered, DeliveryError> {
        if self.spool.is_empty() && !self.publisher.watch().is_down() {
            // A queue of waiters that grows without bound only makes every answer late.
            let _permit = self.waiting.try_acquire().map_err(|_| DeliveryError::Busy)?;
            match self.publisher.publish(record).await {
                Ok(took) => return Ok(Delivered::Acknowledged(took)),
                Err(e) if e.is_retryable() => {
                    if matches!(e, PublishError::Timeout(_)) {
                        self.publisher.watch().set_down(true);
                    }
                    log::warn!("Kafka did not take the record ({e}); spooling it");
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.spool.append(record).await.inspect_err(|e| match e {
            SpoolError::Full { .. } => log::error!("refusing a callback: {e}; Kafka is not taking records"),
            SpoolError::Storage(_) => log::error!("refusing a callback: {e}"),
        })?;
        self.metrics.spooled.inc();
        Ok(Delivered::Spooled)
    }

    /// Forwards spooled records until `stop` turns true. Returns after the round in progress.
    pub async fn forward(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = MIN_BACKOFF;
        let mut failing_since: Option<Instant> = None;
        while !*stop.borrow() {
            let spool = self.spool.clone();
            let batch = match tokio::task::spawn_blocking(move || spool.oldest(FORWARD_BATCH)).await {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    log::error!("forwarder cannot read the spool: {e}");
                    Vec::new()
                }
                Err(e) => {
                    log::error!("forwarder read task failed: {e}");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.spool.appended() => {}
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            let ok = self.forward_batch(batch).await;
            if ok {
                backoff = MIN_BACKOFF;
                failing_since = None;
            } else {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= STUCK_AFTER && self.replace_stuck_producer().await {
                    failing_since = None;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Replaces the producer when it failed fatally, or when a fresh client reaches the topic
    /// while the producer still cannot. Returns whether it was replaced.
    async fn replace_stuck_producer(&self) -> bool {
        let publisher = self.publisher.clone();
        let reason = tokio::task::spawn_blocking(move || match publisher.fatal_error() {
            Some(fatal) => Some(format!("fatal producer error ({fatal})")),
            None if publisher.probe(Duration::from_secs(5)) => {
                Some("Kafka answers a fresh client but not the producer".to_string())
            }
            None => None,
        })
        .await
        .ok()
        .flatten();
        let Some(reason) = reason else { return false };
        match self.publisher.recreate() {
            Ok(()) => {
                log::error!("Kafka producer replaced: {reason}");
                self.metrics.producer_restarts.inc();
                true
            }
            Err(e) => {
                log::error!("Kafka producer could not be replaced ({reason}): {e}");
                false
            }
        }
    }

    /// Sends a batch in order and settles the longest delivered prefix. Returns false when a
    /// record could not be delivered for now.
    async fn forward_batch(&self, batch: Vec<crate::spool::Spooled>) -> bool {
        let mut sent = Vec::with_capacity(batch.len());
        for item in &batch {
            match self.publisher.send(&item.record) {
                Ok(pending) => sent.push((item.seq, Ok(pending))),
                Err(e) => {
                    sent.push((item.seq, Err(e)));
                    break;
                }
            }
        }
        let (mut delivered, mut refused, mut all_ok) = (Vec::new(), Vec::new(), true);
        for (seq, pending) in sent {
            let result = match pending {
                Ok(pending) => self.publisher.wait(pending).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) if all_ok => delivered.push(seq),
                // Delivered after a gap: it stays spooled and is sent again in order, so the
                // topic will hold it twice.
                Ok(()) => self.metrics.duplicates.inc(),
                Err(e) if e.is_retryable() => {
                    if all_ok {
                        log::warn!("forwarding paused: {e}");
                    }
                    all_ok = false;
                }
                Err(e) if all_ok => {
                    log::error!(
                        "Kafka refused a spooled record for good ({e}); moved to the spool's dead table"
                    );
                    refused.push(seq);
                }
                Err(_) => {}
            }
        }
        if !all_ok {
            self.publisher.watch().set_down(true);
        }
        let count = delivered.len() as u64;
        let spool = self.spool.clone();
        match tokio::task::spawn_blocking(move || spool.settle(&delivered, &refused)).await {
            Ok(Ok(())) => self.metrics.forwarded.inc_by(count),
            Ok(Err(e)) => log::error!("forwarder cannot update the spool: {e}"),
            Err(e) => log::error!("forwarder settle task failed: {e}"),
        }
        all_ok
    }
}
