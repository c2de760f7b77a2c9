//! A service that keeps every group's current state in memory, from the state topic that
//! `tim-relay materialize` writes (the document is described by
//! `docs/state/group-state.schema.json`).
//!
//!   cargo run --example state_follow
//!   KAFKA_BOOTSTRAP_SERVERS=kafka:9092 KAFKA_STATE_TOPIC=tim.group-state cargo run --example state_follow
//!
//! Environment: `KAFKA_BOOTSTRAP_SERVERS` (default `127.0.0.1:9092`) and `KAFKA_STATE_TOPIC`
//! (default `tim.group-state`), as for the materializer.
//!
//! The state topic is compacted: it keeps at least the last record of every group, keyed by
//! GroupId. The value is the group's document (JSON), or null (a tombstone) once the group was
//! destroyed. Reading the whole topic from the beginning therefore gives the current state of
//! every group, and the records after that are the changes, one document per changed group.
//!
//! 1. Bootstrap: read every partition from the beginning to its current end, keeping the
//!    latest document of each group (a tombstone removes it). The end is known when each
//!    partition reports end-of-partition (`enable.partition.eof`).
//! 2. Follow: keep polling; each record replaces (or removes) one group's document.
//!
//! The materializer writes in Kafka transactions, so read with `isolation.level=read_committed`:
//! records of a transaction still open, or aborted, are never seen, and the end a partition
//! reports is the last committed record (a batch being written shows up once it commits).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

type GroupId = String;

fn main() {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = std::env::var("KAFKA_STATE_TOPIC").unwrap_or_else(|_| "tim.group-state".into());

    // A consumer that never commits offsets, its partitions assigned explicitly from
    // Offset::Beginning (no subscribe, no rebalancing: every instance reads every partition):
    // every start reads the whole topic again, which is what rebuilds the in-memory map. The
    // group.id is only there because librdkafka's assign wants one; nothing is stored under
    // it. Subscribing and committing offsets would instead make the next start resume after
    // the last commit, with an empty map and only the later changes: every other group lost.
    //
    // A service that keeps its own copy durable (a database, say) can do the opposite: store
    // the offset of each partition together with the documents (in the same database
    // transaction), and on start assign the partitions from those offsets rather than from
    // the beginning. It must then catch up within the topic's delete.retention.ms (7 days as
    // the materializer creates it): older tombstones are compacted away, and a group
    // destroyed meanwhile would stay in its copy forever. When in doubt, bootstrap again.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "tim-relay-state-follow-example")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("a Kafka consumer");

    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap_or_else(|e| fail(&format!("cannot reach Kafka at {bootstrap}: {e}")));
    let partitions = tim_relay::state::materialize::show::partition_ids(&metadata);
    if partitions.is_empty() {
        fail(&format!(
            "the state topic {topic} does not exist (is `tim-relay materialize` running?)"
        ));
    }
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        assignment
            .add_partition_offset(&topic, *p, Offset::Beginning)
            .expect("a partition offset");
    }
    consumer.assign(&assignment).expect("assign the partitions");

    // 1. Bootstrap: until every partition has reported its end once.
    let mut groups: HashMap<GroupId, Value> = HashMap::new();
    let mut open = partitions;
    while !open.is_empty() {
        match consumer.poll(Duration::from_secs(1)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => open.retain(|q| *q != p),
            Some(Err(e)) => eprintln!("consume error: {e}"),
            Some(Ok(record)) => {
                apply(&mut groups, &record);
            }
        }
    }
    println!("bootstrapped {} groups", groups.len());

    // 2. Follow: every later record is a change. End-of-partition is reported again each
    //    time a partition is caught up; it means nothing here.
    loop {
        match consumer.poll(Duration::from_secs(1)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => eprintln!("consume error: {e}"),
            Some(Ok(record)) => {
                if let Some((group_id, doc)) = apply(&mut groups, &record) {
                    match doc {
                        Some(doc) => println!(
                            "{group_id} name={} member_count={}",
                            doc.get("name").and_then(Value::as_str).unwrap_or("-"),
                            doc["member_count"]
                        ),
                        None => println!("{group_id} destroyed"),
                    }
                }
            }
        }
    }
}

/// Applies one record of the state topic to the map: the key is the GroupId, the value the
/// group's document, or none (a tombstone) for a destroyed group. Returns the group and its
/// document now (`None`: destroyed), or nothing for a record that is not a state record.
fn apply<'a, M: Message>(
    groups: &'a mut HashMap<GroupId, Value>,
    record: &M,
) -> Option<(GroupId, Option<&'a Value>)> {
    let Some(key) = record.key() else {
        eprintln!("skipping a record without key at offset {}", record.offset());
        return None;
    };
    let group_id = String::from_utf8_lossy(key).into_owned();
    match record.payload() {
        None => {
            groups.remove(&group_id);
            Some((group_id, None))
        }
        Some(payload) => match serde_json::from_slice::<Value>(payload) {
            Ok(doc) if doc["schema_version"] == 1 => {
                groups.insert(group_id.clone(), doc);
                let doc = groups.get(&group_id);
                Some((group_id, doc))
            }
            // A document version this reader does not know: better to stop than to guess.
            Ok(doc) => fail(&format!(
                "{group_id}: schema_version {} (this reader knows 1)",
                doc["schema_version"]
            )),
            Err(e) => {
                eprintln!("skipping {group_id}: not a JSON document: {e}");
                None
            }
        },
    }
}

fn fail(message: &str) -> ! {
    eprintln!("state_follow: {message}");
    std::process::exit(1)
}
