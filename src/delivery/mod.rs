//! The delivery promise: a record is acknowledged by Kafka or committed to the spool before the
//! caller hears OK; the forwarder moves spooled records to Kafka in arrival order.

mod forward;
pub mod owner;
pub mod peers;
pub mod publish;
pub mod record;
pub mod spool;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::delivery::publish::{PublishError, Publisher};
use crate::delivery::record::Record;
use crate::delivery::spool::{Spool, SpoolError};
use crate::ops::metrics::Metrics;
use peers::Peers;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Kafka(#[from] PublishError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("too many callbacks are waiting on Kafka")]
    Busy,
}

/// A spool that cannot be written is worth a line each time; a full one is not: the refusal
/// itself is logged (rate-limited) and counted by the HTTP handler, and the spool's gauges and
/// alerts say it is full.
fn log_spool_error(e: &SpoolError) {
    if let SpoolError::Storage(_) = e {
        log::error!("refusing a callback: {e}");
    }
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
    /// The other replicas whose older spooled events this relay's events wait for.
    pub peers: Arc<Peers>,
    /// Bounds the callbacks waiting on Kafka's acknowledgement at once.
    waiting: Arc<Semaphore>,
}

impl Relay {
    pub fn new(publisher: Arc<Publisher>, spool: Spool, metrics: Arc<Metrics>, max_waiting: usize) -> Self {
        let peers = Peers::new(Vec::new(), Duration::ZERO, metrics.peer_metrics());
        Self {
            publisher,
            spool,
            metrics,
            peers,
            waiting: Arc::new(Semaphore::new(max_waiting)),
        }
    }

    /// Waits for these peers' older spooled events (`RELAY_PEERS`, see [`peers`]).
    pub fn with_peers(mut self, peers: Arc<Peers>) -> Self {
        self.peers = peers;
        self
    }

    /// Delivers one record. Straight to Kafka while nothing is spooled, the broker is reachable
    /// and no peer holds older events; otherwise, or when Kafka does not acknowledge in time,
    /// into the spool, behind what is already there, so one group's records keep the order they
    /// were answered in.
    pub async fn deliver(&self, record: &Record) -> Result<Delivered, DeliveryError> {
        if self.spool.is_empty() && !self.publisher.watch().is_down() && self.peers.may_send_now() {
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
        self.spool.append(record).await.inspect_err(log_spool_error)?;
        self.metrics.spooled.inc();
        Ok(Delivered::Spooled)
    }

    /// Delivers all the records of one callback. One record goes by [`Self::deliver`]; several
    /// (a push batch) are committed to the spool in one transaction, so the callback is kept
    /// whole or refused whole, never half published; the forwarder sends them in order.
    pub async fn deliver_all(&self, records: &[Record]) -> Result<Delivered, DeliveryError> {
        if let [one] = records {
            return self.deliver(one).await;
        }
        self.spool
            .append_all(records)
            .await
            .inspect_err(log_spool_error)?;
        self.metrics.spooled.inc_by(records.len() as u64);
        Ok(Delivered::Spooled)
    }
}
