//! The librdkafka producers: one replaceable producer per slot, and the broker watch their
//! context keeps (every broker unreachable: callbacks go straight to the spool).

use super::*;

/// librdkafka callbacks: notes when every broker is unreachable, so callbacks can go straight
/// to the spool instead of waiting out the ack timeout each time.
#[derive(Default)]
pub struct BrokerWatch {
    down: AtomicBool,
}

impl BrokerWatch {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    pub fn set_down(&self, down: bool) {
        if self.down.swap(down, Ordering::AcqRel) != down {
            if down {
                log::error!("Kafka is unreachable: callbacks go to the spool until it is back");
            } else {
                log::info!("Kafka is reachable again");
            }
        }
    }
}

/// The producer's context: reports broker reachability to the shared [`BrokerWatch`].
pub struct WatchContext(Arc<BrokerWatch>);

impl ClientContext for WatchContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::AllBrokersDown)) {
            self.0.set_down(true);
        }
        log::warn!("librdkafka: {error}: {reason}");
    }
}

pub(super) type Producer_ = FutureProducer<WatchContext>;

/// One librdkafka producer and the configuration it was made from, replaceable as a whole.
pub(super) struct Slot {
    pub(super) current: RwLock<Arc<Producer_>>,
    pub(super) client: ClientConfig,
    pub(super) watch: Arc<BrokerWatch>,
}

impl Slot {
    pub(super) fn new(client: ClientConfig, watch: &Arc<BrokerWatch>) -> Result<Self, KafkaError> {
        let producer = client.create_with_context(WatchContext(watch.clone()))?;
        Ok(Self {
            current: RwLock::new(Arc::new(producer)),
            client,
            watch: watch.clone(),
        })
    }

    pub(super) fn get(&self) -> Arc<Producer_> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Blocking: dropping the old producer purges what it still holds and joins its thread.
    pub(super) fn recreate(&self) -> Result<(), KafkaError> {
        let fresh: Producer_ = self
            .client
            .create_with_context(WatchContext(self.watch.clone()))?;
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            Arc::new(fresh),
        );
        drop(old);
        Ok(())
    }

    pub(super) fn fatal_error(&self) -> Option<String> {
        self.get()
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code:?}: {reason}"))
    }
}
