//! Prometheus metrics: callbacks by outcome, publish latency, requests in flight.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::spool::Spool;

pub struct Metrics {
    registry: Registry,
    pub callbacks: IntCounterVec,
    /// `callbacks{outcome="ok"}`, resolved once: every accepted callback counts here.
    ok: IntCounter,
    pub publish_seconds: Histogram,
    pub in_flight: IntGauge,
    pub spooled: IntCounter,
    pub forwarded: IntCounter,
    pub duplicates: IntCounter,
    pub kafka_reachable: IntGauge,
    pub producer_restarts: IntCounter,
    spool_events: IntGauge,
    spool_bytes: IntGauge,
    spool_dead: IntGauge,
    spool_oldest_age: Gauge,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid metric")
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let callbacks = IntCounterVec::new(
            Opts::new(
                "tim_relay_callbacks_total",
                "Callbacks answered, by outcome (ok or the refusal reason)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let publish_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "tim_relay_publish_duration_seconds",
                "Time from send to the broker's acknowledgement",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0,
            ]),
        )
        .expect("valid metric");
        let in_flight = gauge("tim_relay_in_flight_requests", "Callbacks being handled now");
        let spooled = counter(
            "tim_relay_spooled_total",
            "Events answered OK after going to the spool",
        );
        let forwarded = counter(
            "tim_relay_forwarded_total",
            "Spooled events the broker acknowledged",
        );
        let duplicates = counter(
            "tim_relay_duplicates_total",
            "Events the relay knows it sent to the topic twice (acknowledged after a deadline)",
        );
        let kafka_reachable = gauge(
            "tim_relay_kafka_reachable",
            "1 unless librdkafka reports every broker down",
        );
        let producer_restarts = counter(
            "tim_relay_producer_restarts_total",
            "Times the Kafka producer was replaced after a fatal error or getting stuck",
        );
        let spool_events = gauge("tim_relay_spool_events", "Events waiting in the spool");
        let spool_bytes = gauge("tim_relay_spool_bytes", "Bytes waiting in the spool");
        let spool_dead = gauge(
            "tim_relay_spool_dead_events",
            "Spooled events Kafka refused for good, kept aside",
        );
        let spool_oldest_age = Gauge::new(
            "tim_relay_spool_oldest_age_seconds",
            "Age of the oldest event waiting in the spool (0 when empty)",
        )
        .expect("valid metric");
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(callbacks.clone()),
            Box::new(publish_seconds.clone()),
            Box::new(in_flight.clone()),
            Box::new(spooled.clone()),
            Box::new(forwarded.clone()),
            Box::new(duplicates.clone()),
            Box::new(kafka_reachable.clone()),
            Box::new(producer_restarts.clone()),
            Box::new(spool_events.clone()),
            Box::new(spool_bytes.clone()),
            Box::new(spool_dead.clone()),
            Box::new(spool_oldest_age.clone()),
        ];
        for c in collectors {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            ok: callbacks.with_label_values(&["ok"]),
            callbacks,
            publish_seconds,
            in_flight,
            spooled,
            forwarded,
            duplicates,
            kafka_reachable,
            producer_restarts,
            spool_events,
            spool_bytes,
            spool_dead,
            spool_oldest_age,
        }
    }

    /// Reads the spool's gauges; called when metrics are scraped. Blocking (reads the spool).
    pub fn observe_spool(&self, spool: &Spool, kafka_down: bool) {
        let (events, bytes) = spool.depth();
        self.spool_events.set(events as i64);
        self.spool_bytes.set(bytes as i64);
        self.spool_dead.set(spool.dead_events() as i64);
        self.spool_oldest_age
            .set(spool.oldest_age().map_or(0.0, |a| a.as_secs_f64()));
        self.kafka_reachable.set(i64::from(!kafka_down));
    }

    pub fn count(&self, outcome: &str) {
        self.callbacks.with_label_values(&[outcome]).inc();
    }

    /// `count("ok")` without the label lookup (hashing and a lock) on the hot path.
    pub fn count_ok(&self) {
        self.ok.inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts a request as in flight for as long as it lives.
pub struct InFlight<'a>(&'a IntGauge);

impl<'a> InFlight<'a> {
    pub fn enter(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
