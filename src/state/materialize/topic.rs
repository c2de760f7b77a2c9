//! Setting up the state topic: compacted, as many partitions as the event topic.

use super::*;

/// Creates the state topic (compacted, as many partitions as the event topic) when it is
/// missing; refuses one that is not compacted or has fewer partitions.
pub fn ensure_state_topic(config: &StateConfig) -> Result<i32, StateError> {
    let probe: BaseConsumer = client(config).create()?;
    let timeout = Duration::from_secs(10);
    let partitions_of = |topic: &str| -> Result<Option<i32>, StateError> {
        let metadata = probe.fetch_metadata(Some(topic), timeout)?;
        let Some(t) = metadata.topics().first() else {
            return Ok(None);
        };
        match t.error() {
            None => Ok(Some(t.partitions().len() as i32)),
            Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(None),
            Some(e) => Err(StateError::Setup(format!("topic {topic}: {e:?}"))),
        }
    };
    let events = partitions_of(&config.shared.topic)?.ok_or_else(|| {
        StateError::Setup(format!(
            "the event topic {} (KAFKA_TOPIC) does not exist: start the relay first, or create it",
            config.shared.topic
        ))
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StateError::Setup(e.to_string()))?;
    let admin: AdminClient<DefaultClientContext> = client(config).create()?;
    let options = AdminOptions::new().request_timeout(Some(timeout));
    if partitions_of(&config.state_topic)?.is_none() {
        let topic = NewTopic::new(
            &config.state_topic,
            events,
            TopicReplication::Fixed(config.replication_factor),
        )
        .set("cleanup.policy", "compact")
        .set("delete.retention.ms", TOMBSTONE_RETENTION_MS);
        let results = runtime.block_on(admin.create_topics([&topic], &options))?;
        for result in results {
            match result {
                Ok(_) => log::info!(
                    "created the state topic {} (compacted, {events} partitions)",
                    config.state_topic
                ),
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(StateError::Setup(format!("cannot create {topic}: {code}")))
                }
            }
        }
    }
    // A topic created a moment ago may not be known yet to the broker that answers (on a cluster
    // of several): its configuration and partitions are asked for again, for up to 10 s, before
    // they are judged.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (policy, state) = loop {
        let described = runtime
            .block_on(admin.describe_configs([&ResourceSpecifier::Topic(&config.state_topic)], &options));
        let policy = described
            .as_ref()
            .ok()
            .and_then(|d| d.first()?.as_ref().ok()?.get("cleanup.policy")?.value.clone());
        let state = partitions_of(&config.state_topic)?.unwrap_or(0);
        if (policy.is_some() && state > 0) || Instant::now() >= deadline {
            described?;
            break (policy, state);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    if policy.as_deref() != Some("compact") {
        return Err(StateError::Setup(format!(
            "the state topic {} (KAFKA_STATE_TOPIC) has cleanup.policy={}; it must be `compact` \
             alone, or new services could not bootstrap from it",
            config.state_topic,
            policy.unwrap_or_else(|| "unknown".into())
        )));
    }
    if state < events {
        return Err(StateError::Setup(format!(
            "the state topic {} has {state} partitions, fewer than the {events} of {}: partition p \
             of the state holds the groups of partition p of the events",
            config.state_topic, config.shared.topic
        )));
    }
    Ok(events)
}
