//! One record at a time to a real broker, each sent only once the last was acknowledged: the
//! Kafka half of a callback at one connection, without HTTP. It separates what the broker's
//! acknowledgement costs from what handing that acknowledgement back to a waiting task costs.
//!
//!   cargo run --release --example produce_rtt [BOOTSTRAP (127.0.0.1:9092)] [TOPIC] [RECORDS (3000)]
//!
//! The topic must exist. Every way uses the direct producer's settings (acks=all, idempotent,
//! `linger.ms=0`, one request in flight) and records of the relay's size (485 B), and reports the
//! median and p99 wall time from send to acknowledgement, plus the process's CPU per record (all
//! its threads):
//!
//! - `relay`: what the relay does. rust-rdkafka's `FutureProducer`, awaited in a current-thread
//!   tokio runtime: librdkafka's broker thread hands the delivery report to the producer's
//!   polling thread, which wakes the runtime's thread.
//! - `poll-blocking`: a `BaseProducer` polled (blocking) by the sending thread itself: the broker
//!   thread wakes the thread that waits, one hand-over fewer.
//! - `poll-spinning`: the same, polling without blocking until the report is there: no thread
//!   sleeps, so no wake-up at all on the way back. It burns a core; a floor, not a design.
//!
//! The gap between `relay` and `poll-spinning` is what thread hand-overs cost on this machine;
//! `poll-spinning` itself is the broker's round trip, which no relay can beat.

use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};

#[path = "support/cpu_time.rs"]
mod cpu_time;

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("max.in.flight.requests.per.connection", "1");
    c
}

/// This process's CPU time (every thread, librdkafka's included), in seconds.
fn cpu_seconds() -> f64 {
    cpu_time::used(cpu_time::PROCESS).as_secs_f64()
}

fn report(way: &str, mut took: Vec<Duration>, cpu: f64) {
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{way:>14}: median {:6.0} µs, p99 {:6.0} µs, CPU {:5.0} µs per record ({} records)",
        at(0.5),
        at(0.99),
        cpu * 1e6 / took.len() as f64,
        took.len()
    );
}

/// Times each record from send to acknowledgement, after the first `WARM_UP`, and the process's
/// CPU over the timed ones.
struct Meter {
    took: Vec<Duration>,
    cpu_start: f64,
}

/// Records sent before timing starts: they open the connection and warm it up.
const WARM_UP: usize = 100;

impl Meter {
    fn new(records: usize) -> Self {
        Self {
            took: Vec::with_capacity(records),
            cpu_start: 0.0,
        }
    }

    /// Call before sending record `i`; returns its start.
    fn begin(&mut self, i: usize) -> Instant {
        if i == WARM_UP {
            self.cpu_start = cpu_seconds();
        }
        Instant::now()
    }

    /// Call once record `i`, begun at `start`, is acknowledged.
    fn end(&mut self, i: usize, start: Instant) {
        if i >= WARM_UP {
            self.took.push(start.elapsed());
        }
    }

    fn finish(self) -> (Vec<Duration>, f64) {
        (self.took, cpu_seconds() - self.cpu_start)
    }
}

/// A `BaseProducer` whose delivery reports the sending thread takes off librdkafka's main queue
/// itself, blocking (`spin` false) or not. rust-rdkafka's own `poll` keeps polling until its
/// timeout has passed even once a report has come, so the queue is polled through librdkafka.
fn base(bootstrap: &str, topic: &str, payload: &[u8], records: usize, spin: bool) -> (Vec<Duration>, f64) {
    let producer: BaseProducer = config(bootstrap).create().expect("producer");
    // SAFETY: the main queue of a live client; destroyed below, before the producer.
    let queue = unsafe { rdsys::rd_kafka_queue_get_main(producer.client().native_ptr()) };
    let mut meter = Meter::new(records);
    for i in 0..records + WARM_UP {
        let key = format!("@TGS#{}", i % 10_000);
        let start = meter.begin(i);
        producer
            .send(BaseRecord::<_, _, ()>::to(topic).key(&key).payload(payload))
            .map_err(|(e, _)| e)
            .expect("send");
        loop {
            // SAFETY: polling a valid queue; every event returned is destroyed once.
            let delivered = unsafe {
                let event = rdsys::rd_kafka_queue_poll(queue, if spin { 0 } else { 1000 });
                if event.is_null() {
                    continue;
                }
                let kind = rdsys::rd_kafka_event_type(event);
                if kind == rdsys::RD_KAFKA_EVENT_DR {
                    assert_eq!(
                        rdsys::rd_kafka_event_error(event),
                        rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
                        "delivery failed"
                    );
                }
                rdsys::rd_kafka_event_destroy(event);
                kind == rdsys::RD_KAFKA_EVENT_DR
            };
            if delivered {
                break;
            }
        }
        meter.end(i, start);
    }
    let measured = meter.finish();
    // SAFETY: the queue handle from rd_kafka_queue_get_main, released once.
    unsafe { rdsys::rd_kafka_queue_destroy(queue) };
    measured
}

fn future(bootstrap: &str, topic: &str, payload: &[u8], records: usize) -> (Vec<Duration>, f64) {
    let producer: FutureProducer = config(bootstrap).create().expect("producer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut meter = Meter::new(records);
        for i in 0..records + WARM_UP {
            let key = format!("@TGS#{}", i % 10_000);
            let start = meter.begin(i);
            let delivery = producer
                .send_result(FutureRecord::to(topic).key(&key).payload(payload))
                .map_err(|(e, _)| e)
                .expect("send");
            delivery
                .await
                .expect("canceled")
                .map_err(|(e, _)| e)
                .expect("delivery failed");
            meter.end(i, start);
        }
        let measured = meter.finish();
        producer.flush(Duration::from_secs(5)).expect("flush");
        measured
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bootstrap = args.get(1).map_or("127.0.0.1:9092", String::as_str);
    let topic = args.get(2).map_or("tim.group.events", String::as_str);
    let records: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(3000);
    let payload = vec![b'x'; 485];
    // Alternating, twice each, so a change in the machine's load shows as a spread.
    for round in 1..=2 {
        println!("round {round}");
        let (took, cpu) = future(bootstrap, topic, &payload, records);
        report("relay", took, cpu);
        let (took, cpu) = base(bootstrap, topic, &payload, records, false);
        report("poll-blocking", took, cpu);
        let (took, cpu) = base(bootstrap, topic, &payload, records, true);
        report("poll-spinning", took, cpu);
    }
}
