//! A hold: Kafka refuses the spool's oldest record for a cause that passes (a topic not created
//! yet, no leader, not enough replicas, not authorized). The forwarder keeps it and everything
//! behind it, and sends them again after a backoff, for as long as it takes; one log line when a
//! hold starts or changes cause, one when it ends, and the metrics say which topic and why.

use super::*;

/// The first and the longest pause before the spool is sent again after Kafka refused a record
/// for a cause that passes (a topic not created yet, no leader, not enough replicas, ...).
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Kafka refuses the spool's oldest record for a cause that passes: the forwarder keeps it and
/// everything behind it, and sends them again after a backoff, for as long as it takes.
pub(super) struct Hold {
    pub(super) topic: String,
    pub(super) reason: String,
    pub(super) since: Instant,
}

impl Forwarder<'_> {
    /// Kafka refused a record of `topic` for a cause that passes: the spool is sent again from
    /// its oldest record after a backoff. One log line when the hold starts or changes cause.
    pub(super) fn hold_on(&mut self, topic: &str, e: &PublishError) {
        let reason = e.reason();
        let metrics = &self.relay.metrics;
        if self
            .hold
            .as_ref()
            .is_none_or(|h| h.topic != topic || h.reason != reason)
        {
            if let Some(old) = self.hold.take() {
                metrics
                    .forwarding_held
                    .with_label_values(&[&old.topic, &old.reason])
                    .set(0);
            }
            log::warn!(
                "forwarding held: Kafka refuses topic {topic} for now ({e}); the spool keeps every \
                 event and sends them again, in order, with backoff"
            );
            metrics
                .forwarding_held
                .with_label_values(&[topic, &reason])
                .set(1);
            self.hold = Some(Hold {
                topic: topic.to_string(),
                reason: reason.clone(),
                since: Instant::now(),
            });
        }
        metrics.forward_holds.with_label_values(&[topic, &reason]).inc();
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// A record was delivered: a hold, if any, is over.
    pub(super) fn resume(&mut self) {
        self.backoff = BACKOFF_MIN;
        if let Some(hold) = self.hold.take() {
            self.relay
                .metrics
                .forwarding_held
                .with_label_values(&[&hold.topic, &hold.reason])
                .set(0);
            log::info!(
                "forwarding resumed: topic {} takes records again after {:.1} s held ({})",
                hold.topic,
                hold.since.elapsed().as_secs_f64(),
                hold.reason
            );
        }
    }
}
