//! Prometheus metrics: callbacks by outcome, publish latency, requests in flight.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub callbacks: IntCounterVec,
    pub publish_seconds: Histogram,
    pub in_flight: IntGauge,
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
        let in_flight = IntGauge::new("tim_relay_in_flight_requests", "Callbacks being handled now")
            .expect("valid metric");
        for m in [
            Box::new(callbacks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(publish_seconds.clone()),
            Box::new(in_flight.clone()),
        ] {
            registry.register(m).expect("metric registered once");
        }
        Self {
            registry,
            callbacks,
            publish_seconds,
            in_flight,
        }
    }

    pub fn count(&self, outcome: &str) {
        self.callbacks.with_label_values(&[outcome]).inc();
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
