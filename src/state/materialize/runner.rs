//! The fold loop: polls the event topic, follows rebalances (a partition's state is rebuilt
//! before its events are folded), batches events, and measures the lag.

use super::*;

/// What happened in a rebalance, recorded by the consumer's callbacks for the loop.
#[derive(Default)]
pub(super) struct RebalanceLog {
    pub(super) revoked: Vec<i32>,
    /// The revoked partitions were lost (this member was dropped from the group): another
    /// instance may have folded their events since.
    pub(super) lost: bool,
    pub(super) assigned: Vec<i32>,
    pub(super) changed: bool,
}

pub(super) struct StateContext {
    pub(super) log: Mutex<RebalanceLog>,
}

impl ClientContext for StateContext {}

impl ConsumerContext for StateContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let mut log = self.log.lock().expect("rebalance log");
            log.revoked.extend(list.elements().iter().map(|e| e.partition()));
            log.lost |= consumer.assignment_lost();
            log.changed = true;
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut log = self.log.lock().expect("rebalance log");
        match rebalance {
            Rebalance::Assign(list) => {
                log.assigned.extend(list.elements().iter().map(|e| e.partition()));
                log.changed = true;
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => log::warn!("rebalance failed: {e}"),
        }
    }
}

/// The fold loop, until `stop` is set. Runs on its own thread.
pub struct Materializer {
    pub(super) config: StateConfig,
    pub(super) consumer: BaseConsumer<StateContext>,
    pub(super) producer: BaseProducer,
    pub(super) partitions: Partitions,
    /// Partitions revoked in a rebalance whose assignment has not come yet.
    pub(super) parked: Partitions,
    pub(super) metrics: Arc<StateMetrics>,
    pub(super) health: Arc<Health>,
    pub(super) stop: Arc<AtomicBool>,
}

impl Materializer {
    pub fn new(
        config: StateConfig,
        metrics: Arc<StateMetrics>,
        health: Arc<Health>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, StateError> {
        let consumer: BaseConsumer<StateContext> = client(&config)
            .set("group.id", &config.group_id)
            .set("group.instance.id", &config.instance_id)
            .set("session.timeout.ms", "10000")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            .create_with_context(StateContext {
                log: Mutex::new(RebalanceLog::default()),
            })?;
        let producer: BaseProducer = client(&config)
            .set("transactional.id", config.transactional_id())
            .set(
                "transaction.timeout.ms",
                TRANSACTION_TIMEOUT.as_millis().to_string(),
            )
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "zstd")
            .create()?;
        // Fences an earlier run of this instance and aborts the transaction it left open.
        producer.init_transactions(CALL_TIMEOUT)?;
        consumer.subscribe(&[&config.shared.topic])?;
        Ok(Materializer {
            config,
            consumer,
            producer,
            partitions: HashMap::new(),
            parked: HashMap::new(),
            metrics,
            health,
            stop,
        })
    }

    pub fn run(mut self) -> Result<(), StateError> {
        let stop = self.stop.clone();
        let mut batch: Vec<Pending> = Vec::new();
        let mut batch_started = Instant::now();
        let mut lag_at = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            self.health.beat();
            let message = match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => Some(Pending {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().map(<[u8]>::to_vec),
                }),
                // A fatal consumer error: this consumer reads nothing more, ever (seen after the
                // group coordinator's node died: FENCED_INSTANCE_ID on rejoining). Polling on
                // would leave a live, ready instance that folds nothing; stopping lets a restart
                // take its place, as for a fatal transactional error.
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(StateError::Fatal(e)),
                Some(Err(e)) => {
                    log::warn!("reading {}: {e}", self.config.shared.topic);
                    None
                }
                None => None,
            };
            if self.rebalanced()? {
                // What was read before the rebalance is read again from the committed offsets
                // of the new assignment; a message this poll returned came after it.
                batch.clear();
            }
            if let Some(pending) = message {
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                batch.push(pending);
            }
            let full = batch.len() >= self.config.batch_events;
            if !batch.is_empty() && (full || batch_started.elapsed() >= self.config.batch_wait) {
                self.fold_batch(std::mem::take(&mut batch))?;
            }
            if lag_at.elapsed() >= LAG_EVERY {
                self.measure_lag();
                lag_at = Instant::now();
            }
        }
        if !batch.is_empty() {
            self.fold_batch(batch)?;
        }
        self.health.set_stopping();
        // Dropping the consumer closes it without leaving the group: with static membership,
        // a restart within the session timeout takes its partitions back without a rebalance.
        Ok(())
    }

    /// Applies what the consumer's rebalance callbacks recorded. Revoked partitions are set
    /// aside; if the same rebalance hands them back (the eager protocol revokes everything
    /// first), their groups are kept, as nobody else held them in between. Other assigned
    /// partitions are rebuilt from the state topic. Whether anything changed.
    pub(super) fn rebalanced(&mut self) -> Result<bool, StateError> {
        let log = std::mem::take(&mut *self.consumer.context().log.lock().expect("rebalance log"));
        if !log.changed {
            return Ok(false);
        }
        for p in &log.revoked {
            if let Some(groups) = self.partitions.remove(p) {
                if !log.lost {
                    self.parked.insert(*p, groups);
                }
            }
        }
        self.health.set_ready(false);
        self.metrics.ready.set(0);
        if log.assigned.is_empty() {
            // The assignment follows in a later poll.
            self.update_groups();
            return Ok(true);
        }
        let mut parked = std::mem::take(&mut self.parked);
        let mut missing = Vec::new();
        for p in log.assigned {
            if self.partitions.contains_key(&p) {
                continue;
            }
            match parked.remove(&p) {
                Some(groups) => {
                    self.partitions.insert(p, groups);
                }
                None => missing.push(p),
            }
        }
        if !missing.is_empty() {
            self.rebuild(&missing)?;
        }
        let held = self.consumer.assignment()?.count();
        self.metrics.partitions.set(held as i64);
        self.update_groups();
        self.health.set_ready(true);
        self.metrics.ready.set(1);
        log::info!(
            "rebalanced: {held} partitions of {} assigned, {} rebuilt ({} groups held)",
            self.config.shared.topic,
            missing.len(),
            self.metrics.groups.get()
        );
        Ok(true)
    }

    pub(super) fn update_groups(&self) {
        let groups: usize = self.partitions.values().map(HashMap::len).sum();
        self.metrics.groups.set(groups as i64);
    }

    /// Events not folded yet in the assigned partitions.
    pub(super) fn measure_lag(&self) {
        let Ok(position) = self.consumer.position() else {
            return;
        };
        let mut lag = 0i64;
        for element in position.elements() {
            let Ok((_, high)) = self.consumer.fetch_watermarks(
                &self.config.shared.topic,
                element.partition(),
                Duration::from_secs(1),
            ) else {
                continue;
            };
            let at = match element.offset() {
                Offset::Offset(o) => o,
                _ => continue,
            };
            lag += (high - at).max(0);
        }
        self.metrics.lag.set(lag);
    }
}
