//! The forwarder: moves spooled records to Kafka in spool order through the forwarding
//! producer, removes each from the spool once the broker took it, and drains the spool on stop.
//! Why one group's records cannot land out of order: docs/delivery.md.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{peers, Relay};
use hold::{Hold, BACKOFF_MIN};

mod hold;
use crate::delivery::publish::{Pending, PublishError};
use crate::delivery::spool::Spooled;

/// Most records handed to the forwarding producer and not yet removed from the spool.
const WINDOW: usize = 500;
/// The longest single wait; between waits the forwarder reacts to stop, the drain deadline and
/// a stuck producer.
const ROUND: Duration = Duration::from_secs(1);
/// After this long without a result while the spool holds records, check whether Kafka is really
/// down or the producer is stuck (seen after a broker restart: librdkafka drops every broker it
/// knew and keeps failing); a stuck producer is replaced. Checked again every `RECHECK`.
const STUCK_AFTER: Duration = Duration::from_secs(15);
const RECHECK: Duration = Duration::from_secs(5);

/// A spooled record handed to the forwarding producer (or refused by it at once).
struct Sent {
    seq: u64,
    /// Where it goes, for the log and the metrics of a refusal.
    topic: String,
    /// Sent with nothing else in the window, so in a produce batch of its own: a refusal of
    /// its batch is a refusal of this record.
    alone: bool,
    outcome: Result<Pending, PublishError>,
}

struct Forwarder<'a> {
    relay: &'a Relay,
    /// Sent and not yet removed from the spool, in spool order. The producer owns every
    /// `Pending` here: none of these records is sent again while it is in the window.
    window: VecDeque<Sent>,
    /// The last spool entry in the window; `None`: start from the oldest.
    last_sent: Option<u64>,
    /// A record failed for now: nothing more is sent until the window is empty, then the spool is
    /// sent again from its oldest entry.
    resend: bool,
    /// When a record last got a result, or the spool was last seen empty.
    progress: Instant,
    /// When the window's first record became first.
    head_since: Instant,
    next_check: Instant,
    /// Set at the stop: the forwarder returns when the spool is empty or this has passed.
    deadline: Option<Instant>,
    /// The last fill stopped at a record a peer's older events hold back (`RELAY_PEERS`).
    held: bool,
    /// Kafka refuses the oldest record for now (see [`Hold`]).
    hold: Option<Hold>,
    /// Nothing is sent again before this (after a hold); doubles up to `BACKOFF_MAX`.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Records still to send one at a time: Kafka refused a batch for what is in it (too
    /// large), which may be one record of many; sent alone, only that one is refused again.
    alone: usize,
}

impl Relay {
    /// Forwards spooled records until `stop` turns true, then keeps forwarding until the spool is
    /// empty or `drain` has passed since the stop. What is left stays in the spool.
    pub async fn forward(self, mut stop: watch::Receiver<bool>, drain: Duration) {
        let mut f = Forwarder::new(&self);
        loop {
            // A dropped sender is a stop too.
            if f.deadline.is_none() && (*stop.borrow() || stop.has_changed().is_err()) {
                f.deadline = Some(Instant::now() + drain);
            }
            if let Some(deadline) = f.deadline {
                if self.spool.is_empty() {
                    log::info!("drained the spool");
                    return;
                }
                if Instant::now() >= deadline {
                    f.abandon().await;
                    let (events, _) = self.spool.depth();
                    log::warn!("{events} events stay in the spool for the next start");
                    return;
                }
            }
            f.step(&mut stop).await;
        }
    }
}

impl<'a> Forwarder<'a> {
    fn new(relay: &'a Relay) -> Self {
        let now = Instant::now();
        Self {
            relay,
            window: VecDeque::new(),
            last_sent: None,
            resend: false,
            progress: now,
            head_since: now,
            next_check: now,
            deadline: None,
            held: false,
            hold: None,
            retry_at: None,
            backoff: BACKOFF_MIN,
            alone: 0,
        }
    }

    /// One bounded piece of work: send what fits, then wait for results up to `ROUND`, or until
    /// a stop or the drain deadline.
    async fn step(&mut self, stop: &mut watch::Receiver<bool>) {
        if self.window.is_empty() {
            // Everything still spooled is unsent. (The spool numbers entries from 0 again once
            // it was empty, so `last_sent` must not outlive the window.)
            self.resend = false;
            self.last_sent = None;
            self.head_since = Instant::now();
            if let Some(at) = self.retry_at.filter(|at| Instant::now() < *at) {
                // After a hold: the spool is sent again once the backoff has passed.
                let until = self.deadline.map_or(at, |deadline| deadline.min(at));
                let stopping = self.deadline.is_some();
                tokio::select! {
                    _ = stop.changed(), if !stopping => {}
                    _ = tokio::time::sleep_until(until.into()) => {}
                }
                return;
            }
            self.retry_at = None;
        }
        if !self.resend && self.window.len() <= WINDOW / 2 {
            self.fill().await;
        }
        if self.relay.spool.is_empty() {
            self.progress = Instant::now();
        }
        self.check_producer().await;
        self.relay.peers.set_blocked(self.held && self.window.is_empty());
        let until = self.wait_until();
        let stopping = self.deadline.is_some();
        let Some(head) = self.window.front_mut() else {
            let held = self.held;
            tokio::select! {
                _ = self.relay.spool.appended() => {}
                _ = self.relay.peers.moved(), if held => {}
                _ = stop.changed(), if !stopping => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
            return;
        };
        let outcome = match &mut head.outcome {
            Ok(pending) => match tokio::select! {
                outcome = pending.outcome() => Some(outcome),
                _ = stop.changed(), if !stopping => None,
                _ = tokio::time::sleep_until(until.into()) => None,
            } {
                Some(outcome) => outcome,
                None => {
                    if self.head_since.elapsed() >= self.relay.publisher.ack_timeout() {
                        self.relay.publisher.watch().set_down(true);
                    }
                    return;
                }
            },
            Err(_) => Ok(()),
        };
        self.settle_ready(outcome).await;
    }

    /// The end of one wait: `ROUND` from now (a peer's poll interval while a peer holds records
    /// back), or the drain deadline if that comes first.
    fn wait_until(&self) -> Instant {
        let round = Instant::now() + if self.held { peers::POLL } else { ROUND };
        self.deadline.map_or(round, |deadline| deadline.min(round))
    }

    /// Hands the oldest spooled records not yet sent in this session to the producer, in order,
    /// until the window is full or the producer's queue is.
    async fn fill(&mut self) {
        let spool = self.relay.spool.clone();
        let batch = match tokio::task::spawn_blocking(move || spool.oldest(WINDOW)).await {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => return log::error!("forwarder cannot read the spool: {e}"),
            Err(e) => return log::error!("forwarder read task failed: {e}"),
        };
        let after = self.last_sent;
        self.held = false;
        let unsent = batch
            .into_iter()
            .filter(|s: &Spooled| after.is_none_or(|last| s.seq > last));
        // While Kafka refuses the oldest record for now, only it is sent (a probe): records of
        // other topics behind it would be delivered, kept and sent again on every retry.
        // After a refused batch, records go one at a time until the one refused alone is found.
        let window = if self.hold.is_some() || self.alone > 0 {
            1
        } else {
            WINDOW
        };
        for item in unsent {
            if self.window.len() >= window {
                break;
            }
            if !self.relay.peers.may_send(item.spooled_at_ms) {
                // A peer still holds events answered before this one; they go first.
                self.held = true;
                break;
            }
            let outcome = self.relay.publisher.send_forwarded(&item.record);
            let topic = self.relay.publisher.topic_of(&item.record).to_string();
            if let Some(e) = outcome.as_ref().err().filter(|e| e.is_retryable()) {
                // Nothing after it is sent, so it is sent next, still in order; a refusal other
                // than a full queue (which empties by itself) waits out a backoff.
                if !matches!(e, PublishError::QueueFull) {
                    self.hold_on(&topic, e);
                }
                break;
            }
            self.window.push_back(Sent {
                seq: item.seq,
                topic,
                alone: window == 1,
                outcome,
            });
            self.last_sent = Some(item.seq);
        }
    }

    /// Takes the first record's outcome and every further one already known, in order, and
    /// updates the spool in one commit.
    async fn settle_ready(&mut self, first: Result<(), PublishError>) {
        let (mut delivered, mut refused) = (Vec::new(), Vec::new());
        let mut next = Some(first);
        while let Some(outcome) = next.take() {
            let Some(sent) = self.window.pop_front() else {
                break;
            };
            // A record librdkafka refuses before sending is refused alone.
            let (outcome, alone) = match sent.outcome {
                Err(refused_at_send) => (Err(refused_at_send), true),
                Ok(_) => (outcome, sent.alone),
            };
            match outcome {
                Ok(()) if !self.resend => {
                    self.relay.publisher.watch().set_down(false);
                    delivered.push(sent.seq);
                    self.alone = self.alone.saturating_sub(1);
                    if self.hold.is_some() {
                        self.resume();
                    }
                }
                // It stays spooled and is sent again behind the record that failed.
                Ok(()) => self.relay.metrics.duplicates.inc(),
                Err(e) if e.is_retryable() => {
                    if !self.resend {
                        self.hold_on(&sent.topic, &e);
                        self.resend = true;
                    }
                }
                Err(e) if !self.resend && !alone => {
                    // The broker judges a whole batch (max.message.bytes is per batch): the
                    // record may be refused for a neighbour. Resent one at a time, only the
                    // record refused alone is set aside.
                    log::warn!(
                        "Kafka refused a record batch of topic {} ({e}); sending the spool one record \
                         at a time to set aside only a record that is refused alone",
                        sent.topic
                    );
                    self.alone = WINDOW;
                    self.resend = true;
                }
                Err(e) if !self.resend => {
                    self.alone = 0;
                    log::error!(
                        "Kafka refused a spooled record of topic {} for what it is ({e}); moved to the \
                         spool's dead table (list it with `tim-relay dead list`, send it again with \
                         `tim-relay dead replay` once the cause is fixed)",
                        sent.topic
                    );
                    refused.push((sent.seq, e.reason()));
                }
                Err(_) => {}
            }
            next = match self.window.front_mut().map(|s| &mut s.outcome) {
                Some(Ok(pending)) => tokio::time::timeout(Duration::ZERO, pending.outcome()).await.ok(),
                Some(Err(_)) => Some(Ok(())),
                None => None,
            };
        }
        self.progress = Instant::now();
        self.head_since = self.progress;
        if delivered.is_empty() && refused.is_empty() {
            return;
        }
        let count = delivered.len() as u64;
        let spool = self.relay.spool.clone();
        match tokio::task::spawn_blocking(move || spool.settle(&delivered, &refused)).await {
            Ok(Ok(())) => self.relay.metrics.forwarded.inc_by(count),
            Ok(Err(e)) => {
                log::error!("forwarder cannot update the spool: {e}");
                self.resend = true;
            }
            Err(e) => {
                log::error!("forwarder settle task failed: {e}");
                self.resend = true;
            }
        }
    }

    /// Replaces the producers when one failed fatally, or when the spool has not moved for
    /// `STUCK_AFTER` and a fresh client reaches the topic while the producer still cannot.
    async fn check_producer(&mut self) {
        if Instant::now() < self.next_check {
            return;
        }
        let fatal = self.relay.publisher.fatal_error();
        if fatal.is_none() && self.progress.elapsed() < STUCK_AFTER {
            return;
        }
        self.next_check = Instant::now() + RECHECK;
        let publisher = self.relay.publisher.clone();
        let check = tokio::task::spawn_blocking(move || {
            let reason = match fatal {
                Some(fatal) => format!("fatal producer error ({fatal})"),
                None if publisher.probe(Duration::from_secs(5)) => {
                    "Kafka answers a fresh client but not the producer".to_string()
                }
                None => return None,
            };
            Some(
                publisher
                    .recreate()
                    .map(|()| reason.clone())
                    .map_err(|e| (reason, e)),
            )
        });
        // The probe may take seconds; the drain deadline does not wait for it.
        let replaced = match self.deadline {
            Some(deadline) => tokio::select! {
                done = check => done.ok().flatten(),
                _ = tokio::time::sleep_until(deadline.into()) => None,
            },
            None => check.await.ok().flatten(),
        };
        match replaced {
            Some(Ok(reason)) => {
                log::error!("Kafka producer replaced: {reason}");
                self.relay.metrics.producer_restarts.inc();
                // What the old producer held failed with it; the spool sends it again.
                self.progress = Instant::now();
            }
            Some(Err((reason, e))) => log::error!("Kafka producer could not be replaced ({reason}): {e}"),
            None => {}
        }
    }

    /// At the drain deadline: the producer drops what it still holds; the spool keeps it.
    async fn abandon(&mut self) {
        if self.window.is_empty() {
            return;
        }
        let publisher = self.relay.publisher.clone();
        let _ = tokio::task::spawn_blocking(move || publisher.abandon_forwarded()).await;
        self.window.clear();
        self.last_sent = None;
    }
}
