//! A consumer that applies each change once: it drops re-deliveries by the event `id`.
//!
//! The relay delivers at least once. A duplicate can appear when Kafka acknowledges a record
//! after the relay stopped waiting (it was spooled and is sent again), or when the relay is
//! killed between the broker's acknowledgement and removing the record from its spool. A
//! duplicate always carries the same `id`, and arrives after the first copy, so remembering
//! recent ids is enough.
//!
//!   cargo run --example dedupe_consumer -- 127.0.0.1:9092 tim.group-changes

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};

/// Remembers the last `capacity` ids seen.
struct RecentIds {
    seen: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// True the first time an id is offered.
    fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "tim.group-changes".into());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "tim-relay-dedupe-example")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    // Enough for any realistic re-delivery window; a production consumer would keep the ids
    // next to the state it updates (e.g. a unique column) instead.
    let mut recent = RecentIds::new(100_000);
    loop {
        let Some(message) = consumer.poll(Duration::from_secs(1)) else {
            continue;
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                eprintln!("consume error: {e}");
                continue;
            }
        };
        let Some(Ok(event)) = message.payload().map(serde_json::from_slice::<serde_json::Value>) else {
            eprintln!("skipping a record that is not a JSON change event");
            continue;
        };
        let id = event["id"].as_str().unwrap_or_default();
        if recent.first_time(id) {
            println!(
                "apply {} to group {}: {}",
                id, event["group_id"], event["changes"]
            );
        } else {
            println!("drop duplicate {id}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_dropped_and_old_ids_are_forgotten() {
        let mut recent = RecentIds::new(2);
        assert!(recent.first_time("a"));
        assert!(!recent.first_time("a"));
        assert!(recent.first_time("b"));
        assert!(recent.first_time("c"));
        assert!(recent.first_time("a"), "a fell out of the window of 2");
    }
}
