//! Why a record did not reach its topic, and the one line between a refusal about the record
//! (it may be set aside) and every other failure (it is kept and sent again): docs/delivery.md.

use super::*;

/// Why an event did not reach the topic.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Kafka did not acknowledge within {0} ms")]
    Timeout(u128),
    #[error("Kafka producer queue is full")]
    QueueFull,
    #[error("Kafka refused the event: {0}")]
    Rejected(KafkaError),
}

impl PublishError {
    /// Whether the refusal is about the record itself, so that sending it again can never
    /// succeed: larger than the topic accepts, or a record the broker calls invalid. Only such a
    /// record may be set aside (the spool's dead table). Every other failure depends on the
    /// broker, the cluster or its configuration (down, slow, busy, a topic not created yet or
    /// being re-created, no leader, not enough replicas, not authorized), and passes: the record
    /// is kept and sent again. The two classes, with every code, are in docs/delivery.md.
    pub fn is_about_the_record(&self) -> bool {
        match self {
            PublishError::Timeout(_) | PublishError::QueueFull => false,
            PublishError::Rejected(e) => e.rdkafka_error_code().is_some_and(is_about_the_record),
        }
    }

    /// Whether trying the same record again later can succeed: everything not about the record.
    pub fn is_retryable(&self) -> bool {
        !self.is_about_the_record()
    }

    /// A short name for the cause, for logs and the `reason` label of the forwarding metrics:
    /// librdkafka's code name (`UnknownTopic`, `NotEnoughReplicas`, ...), or `Timeout`,
    /// `QueueFull`.
    pub fn reason(&self) -> String {
        match self {
            PublishError::Timeout(_) => "Timeout".into(),
            PublishError::QueueFull => "QueueFull".into(),
            PublishError::Rejected(e) => match e.rdkafka_error_code() {
                Some(code) => format!("{code:?}"),
                None if matches!(e, KafkaError::Canceled) => "Canceled".into(),
                None => "Other".into(),
            },
        }
    }
}

/// The codes by which the broker or librdkafka refuses a record for what it is. Everything else
/// (unknown topic or partition, leader or replicas missing, authorization, a topic being
/// created, policy, storage, timeouts) is about the cluster and is retried.
pub(super) fn is_about_the_record(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        // Broker: larger than the topic's max.message.bytes (or librdkafka's message.max.bytes).
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            // Broker: CORRUPT_MESSAGE (the record fails its CRC) and INVALID_RECORD (the broker's
            // own validation, e.g. a compacted topic and a record without key).
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            // librdkafka: the record could not be encoded.
            | RDKafkaErrorCode::BadMessage
    )
}

/// What librdkafka reported for one record.
pub(super) fn delivery_result<Canceled>(
    result: Result<OwnedDeliveryResult, Canceled>,
) -> Result<(), PublishError> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut), _))) => {
            Err(PublishError::Timeout(0))
        }
        Ok(Err((e, _))) => Err(PublishError::Rejected(e)),
        Err(_canceled) => Err(PublishError::Rejected(KafkaError::Canceled)),
    }
}
