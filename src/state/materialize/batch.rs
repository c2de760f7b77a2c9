//! One batch of events, folded and written with the consumer offsets in one Kafka transaction
//! (exactly once); a transaction that fails is aborted.

use super::*;

/// One event read, not folded yet.
pub(super) struct Pending {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: Option<String>,
    pub(super) payload: Option<Vec<u8>>,
}

impl Materializer {
    /// Folds one batch and writes its result in one transaction. On a failed transaction the
    /// batch's changes are dropped and its partitions are read again from where it began.
    pub(super) fn fold_batch(&mut self, batch: Vec<Pending>) -> Result<(), StateError> {
        let started = Instant::now();
        let mut missing: Vec<i32> = batch.iter().map(|p| p.partition).collect();
        missing.sort_unstable();
        missing.dedup();
        missing.retain(|p| !self.partitions.contains_key(p));
        if !missing.is_empty() {
            self.rebuild(&missing)?;
        }
        // The groups this batch read, and whether it changed them (their order of change).
        let mut touched: HashMap<(i32, String), (Group, bool)> = HashMap::new();
        let mut order: Vec<(i32, String)> = Vec::new();
        let mut counts: HashMap<&'static str, u64> = HashMap::new();
        let mut first: HashMap<i32, i64> = HashMap::new();
        let mut next: HashMap<i32, i64> = HashMap::new();
        for pending in &batch {
            first.entry(pending.partition).or_insert(pending.offset);
            next.insert(pending.partition, pending.offset + 1);
            let parsed = match pending.payload.as_deref() {
                Some(payload) => InEvent::parse(payload),
                None => Err("no value".to_string()),
            };
            let event = match parsed {
                Ok(event) => event,
                Err(reason) => {
                    log::warn!(
                        "skipped the record at {}/{}@{} (key {:?}): {reason}",
                        self.config.shared.topic,
                        pending.partition,
                        pending.offset,
                        pending.key
                    );
                    *counts.entry("invalid").or_default() += 1;
                    continue;
                }
            };
            let slot = (pending.partition, event.group_id.clone());
            let group = match touched.get_mut(&slot) {
                Some(group) => group,
                None => {
                    let group = match self
                        .partitions
                        .get(&pending.partition)
                        .and_then(|m| m.get(&event.group_id))
                    {
                        Some(stored) => stored
                            .to_group()
                            .map_err(|e| StateError::Corrupt(format!("{}: {e}", event.group_id)))?,
                        None => Group::default(),
                    };
                    touched.entry(slot.clone()).or_insert((group, false))
                }
            };
            let (group, dirty) = group;
            let outcome = group.apply(&event, self.config.rules);
            *counts.entry(outcome.label()).or_default() += 1;
            if outcome == Outcome::Applied && !*dirty {
                *dirty = true;
                order.push(slot);
            }
        }
        let stored: HashMap<(i32, String), Stored> = touched
            .into_iter()
            .map(|(slot, (group, _))| (slot, Stored::from_group(&group)))
            .collect();
        let result = self.commit(&stored, &order, &next);
        match result {
            Ok(tombstones) => {
                for ((partition, group_id), group) in stored {
                    self.partitions
                        .entry(partition)
                        .or_default()
                        .insert(group_id, group);
                }
                for (label, n) in counts {
                    self.metrics.events.with_label_values(&[label]).inc_by(n);
                }
                self.metrics.transactions.with_label_values(&["committed"]).inc();
                self.metrics.state_records.inc_by(order.len() as u64);
                self.metrics.tombstones.inc_by(tombstones);
                self.metrics
                    .transaction_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.update_groups();
                Ok(())
            }
            Err(e) => {
                let fatal = matches!(&e, KafkaError::Transaction(t) if t.is_fatal());
                if fatal {
                    return Err(StateError::Fatal(e));
                }
                log::warn!("a fold transaction failed and is aborted; its events are read again: {e}");
                self.metrics.transactions.with_label_values(&["aborted"]).inc();
                let mut tries = 0;
                while let Err(abort) = abort_transaction(&self.producer, CALL_TIMEOUT) {
                    tries += 1;
                    let fatal = matches!(&abort, KafkaError::Transaction(t) if t.is_fatal());
                    if fatal {
                        return Err(StateError::Fatal(abort));
                    }
                    if tries == 5 {
                        // A restart fences this producer and the broker aborts the transaction.
                        return Err(abort.into());
                    }
                    log::warn!("aborting the fold transaction failed, retrying: {abort}");
                    std::thread::sleep(Duration::from_secs(1));
                }
                for (partition, offset) in first {
                    if let Err(e) = self.consumer.seek(
                        &self.config.shared.topic,
                        partition,
                        Offset::Offset(offset),
                        CALL_TIMEOUT,
                    ) {
                        log::warn!("cannot rewind partition {partition}: {e}; it is rebuilt");
                        self.partitions.remove(&partition);
                        self.rebuild(&[partition])?;
                    }
                }
                Ok(())
            }
        }
    }

    /// One transaction: the changed documents, then the offsets after the batch. Returns the
    /// number of tombstones written.
    pub(super) fn commit(
        &self,
        stored: &HashMap<(i32, String), Stored>,
        order: &[(i32, String)],
        next: &HashMap<i32, i64>,
    ) -> Result<u64, KafkaError> {
        self.producer.begin_transaction()?;
        let mut tombstones = 0;
        for slot in order {
            let group = &stored[slot];
            let (partition, group_id) = slot;
            let payload = group.doc.as_deref();
            let mut headers = OwnedHeaders::new().insert(Header {
                key: RECENT_HEADER,
                value: Some(&Recent(group.recent.to_vec()).to_header()),
            });
            if payload.is_none() {
                tombstones += 1;
                if let Some(at) = group.destroyed_at {
                    headers = headers.insert(Header {
                        key: DESTROYED_HEADER,
                        value: Some(&at.to_string()),
                    });
                }
            }
            let mut record = BaseRecord::<str, [u8]>::to(&self.config.state_topic)
                .key(group_id.as_str())
                .partition(*partition)
                .headers(headers);
            if let Some(payload) = payload {
                record = record.payload(payload);
            }
            let mut record = record;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                        self.producer.poll(Duration::from_millis(10));
                        record = r;
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in next {
            offsets.add_partition_offset(&self.config.shared.topic, *partition, Offset::Offset(*offset))?;
        }
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or(KafkaError::Global(rdkafka::types::RDKafkaErrorCode::State))?;
        self.producer
            .send_offsets_to_transaction(&offsets, &metadata, CALL_TIMEOUT)?;
        self.producer.commit_transaction(CALL_TIMEOUT)?;
        Ok(tombstones)
    }
}

/// Aborts the producer's open transaction. librdkafka's abort purges what is still queued, then
/// waits until every message of the transaction is accounted for, delivery reports included. A
/// `BaseProducer` serves those only when polled: its `commit_transaction` does so (through
/// `flush`), its `abort_transaction` does not, so it timed out whenever the transaction had sent
/// a record. A thread polls the producer while the abort runs.
pub(super) fn abort_transaction(producer: &BaseProducer, timeout: Duration) -> Result<(), KafkaError> {
    let aborting = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while aborting.load(Ordering::Relaxed) {
                producer.poll(Duration::from_millis(50));
            }
        });
        let result = producer.abort_transaction(timeout);
        aborting.store(false, Ordering::Relaxed);
        result
    })
}
