//! Prometheus metrics: callbacks by outcome and duration, publish latency, the spool, the
//! process, and the build.

use prometheus::core::Collector;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// The peer watcher's gauges and counter (`RELAY_PEERS`, see `delivery::peers`).
#[derive(Clone)]
pub struct PeerMetrics {
    /// Peers that answered within `GONE_AFTER`.
    pub reachable: IntGauge,
    /// Peers whose older events this relay waits for now.
    pub holding: IntGauge,
    /// Times a peer's head stayed put for `RELAY_PEER_MAX_WAIT_MS` and was no longer waited for.
    pub given_up: IntCounter,
}

/// What the spool's gauges show, read from what the spool keeps in memory (never a database
/// transaction).
#[derive(Debug, Default, Clone)]
pub struct SpoolReading {
    pub events: u64,
    pub bytes: u64,
    pub dead_events: u64,
    pub file_bytes: u64,
    pub max_file_bytes: u64,
    pub disk_full: bool,
    pub oldest_age: Option<Duration>,
    pub kafka_down: bool,
}

pub struct Metrics {
    registry: Registry,
    pub callbacks: IntCounterVec,
    /// `callbacks{outcome="ok"}`, resolved once: every accepted callback counts here.
    ok: IntCounter,
    /// Whole callback, from the handler's start to the answer, by outcome.
    pub callback_seconds: HistogramVec,
    ok_seconds: Histogram,
    pub publish_seconds: Histogram,
    /// Before-callbacks by how they were answered (`decision::OUTCOMES`).
    pub decisions: IntCounterVec,
    /// Fallback answers by why the decision service's answer was not used.
    pub decision_fallbacks: IntCounterVec,
    /// Callbacks of a group another replica owns, by how the hand-over ended (`handover::OUTCOMES`).
    pub handovers: IntCounterVec,
    /// 1 while `/readyz` answers 200.
    pub ready: IntGauge,
    /// `RELAY_SPOOL_MAX_BYTES`: beyond it callbacks are refused.
    pub spool_max_bytes: IntGauge,
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
    peers_reachable: IntGauge,
    peers_holding: IntGauge,
    peer_waits_given_up: IntCounter,
    /// 1 for the (topic, reason) the forwarder is held on, while it is (see `relay::forward`).
    pub forwarding_held: IntGaugeVec,
    /// Rounds of forwarding that ended held, by topic and reason.
    pub forward_holds: IntCounterVec,
    spool_file_bytes: IntGauge,
    spool_file_max_bytes: IntGauge,
    spool_disk_full: IntGauge,
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
        // Up to Tencent's 2 s budget, finer where answers normally are.
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0,
        ];
        let publish_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "tim_relay_publish_duration_seconds",
                "Time from send to the broker's acknowledgement (direct path)",
            )
            .buckets(buckets.clone()),
        )
        .expect("valid metric");
        let callback_seconds = HistogramVec::new(
            HistogramOpts::new(
                "tim_relay_callback_duration_seconds",
                "Whole callback, arrival to answer, by outcome (direct and spool paths alike)",
            )
            .buckets(buckets),
            &["outcome"],
        )
        .expect("valid metric");
        let ready = gauge("tim_relay_ready", "1 while /readyz answers 200");
        let decisions = IntCounterVec::new(
            Opts::new(
                "tim_relay_decisions_total",
                "Before-callbacks answered: allowed_default (no decision URL), forwarded, fallback_allow, fallback_deny",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let decision_fallbacks = IntCounterVec::new(
            Opts::new(
                "tim_relay_decision_fallbacks_total",
                "Fallback answers to before-callbacks, by why the decision service's answer was not used",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let handovers = IntCounterVec::new(
            Opts::new(
                "tim_relay_handovers_total",
                "Callbacks of a group another replica owns: ok (the owner answered), or handled here after \
                 fallback_unreachable, fallback_timeout (RELAY_HANDOVER_TIMEOUT_MS) or fallback_error (a 5xx)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let spool_max_bytes = gauge(
            "tim_relay_spool_max_bytes",
            "The spool's size limit (RELAY_SPOOL_MAX_BYTES); beyond it callbacks are refused",
        );
        let build_info = IntGaugeVec::new(
            Opts::new("tim_relay_build_info", "The relay's version; always 1"),
            &["version"],
        )
        .expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let in_flight = gauge("tim_relay_in_flight_requests", "Callbacks being handled now");
        let forwarding_held = IntGaugeVec::new(
            Opts::new(
                "tim_relay_forwarding_held",
                "1 while Kafka refuses the spool's oldest events for a cause that passes (topic missing, no leader, \
                 not enough replicas, not authorized, ...): the spool keeps them and retries; by topic and reason",
            ),
            &["topic", "reason"],
        )
        .expect("valid metric");
        let forward_holds = IntCounterVec::new(
            Opts::new(
                "tim_relay_forward_holds_total",
                "Forwarding rounds that ended held (the spool sent again after a backoff), by topic and reason",
            ),
            &["topic", "reason"],
        )
        .expect("valid metric");
        let spool_file_bytes = gauge(
            "tim_relay_spool_file_bytes",
            "Size of the spool's file on disk (redb grows it in steps; it stays within RELAY_SPOOL_MAX_FILE_BYTES)",
        );
        let spool_file_max_bytes = gauge(
            "tim_relay_spool_file_max_bytes",
            "RELAY_SPOOL_MAX_FILE_BYTES: the most the spool's file may take on disk",
        );
        let spool_disk_full = gauge(
            "tim_relay_spool_disk_full",
            "1 while the spool's file system has no room for the spool to grow: callbacks that need the spool get 503",
        );
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
        let peers_reachable = gauge(
            "tim_relay_peers_reachable",
            "Other replicas (RELAY_PEERS) that answered within the last second",
        );
        let peers_holding = gauge(
            "tim_relay_peers_holding",
            "Other replicas whose older spooled events this relay's events wait for now",
        );
        let peer_waits_given_up = counter(
            "tim_relay_peer_waits_given_up_total",
            "Times a replica's spool stood still for RELAY_PEER_MAX_WAIT_MS and was no longer waited for",
        );
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(peers_reachable.clone()),
            Box::new(peers_holding.clone()),
            Box::new(peer_waits_given_up.clone()),
            Box::new(callbacks.clone()),
            Box::new(publish_seconds.clone()),
            Box::new(callback_seconds.clone()),
            Box::new(ready.clone()),
            Box::new(decisions.clone()),
            Box::new(decision_fallbacks.clone()),
            Box::new(handovers.clone()),
            Box::new(spool_max_bytes.clone()),
            Box::new(build_info),
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
            Box::new(forwarding_held.clone()),
            Box::new(forward_holds.clone()),
            Box::new(spool_file_bytes.clone()),
            Box::new(spool_file_max_bytes.clone()),
            Box::new(spool_disk_full.clone()),
        ];
        for c in collectors {
            registry.register(c).expect("metric registered once");
        }
        // CPU, resident memory, open file descriptors of this process (Linux).
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics registered once");
        Self {
            registry,
            ok: callbacks.with_label_values(&["ok"]),
            ok_seconds: callback_seconds.with_label_values(&["ok"]),
            callbacks,
            callback_seconds,
            publish_seconds,
            ready,
            decisions,
            decision_fallbacks,
            handovers,
            spool_max_bytes,
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
            peers_reachable,
            peers_holding,
            peer_waits_given_up,
            forwarding_held,
            forward_holds,
            spool_file_bytes,
            spool_file_max_bytes,
            spool_disk_full,
        }
    }

    /// The gauges and counter the peer watcher keeps.
    pub fn peer_metrics(&self) -> PeerMetrics {
        PeerMetrics {
            reachable: self.peers_reachable.clone(),
            holding: self.peers_holding.clone(),
            given_up: self.peer_waits_given_up.clone(),
        }
    }

    /// Sets the spool's gauges from a reading of what the spool keeps in memory; called when
    /// metrics are scraped.
    pub fn observe_spool(&self, spool: &SpoolReading) {
        self.spool_events.set(spool.events as i64);
        self.spool_bytes.set(spool.bytes as i64);
        self.spool_dead.set(spool.dead_events as i64);
        self.spool_file_bytes.set(spool.file_bytes as i64);
        self.spool_file_max_bytes.set(spool.max_file_bytes as i64);
        self.spool_disk_full.set(i64::from(spool.disk_full));
        self.spool_oldest_age
            .set(spool.oldest_age.map_or(0.0, |a| a.as_secs_f64()));
        self.kafka_reachable.set(i64::from(!spool.kafka_down));
    }

    /// Counts a callback answered with `outcome` after `took`.
    pub fn count(&self, outcome: &str, took: Duration) {
        self.callbacks.with_label_values(&[outcome]).inc();
        self.callback_seconds
            .with_label_values(&[outcome])
            .observe(took.as_secs_f64());
    }

    /// `count("ok", took)` without the label lookups (hashing and a lock) on the hot path.
    pub fn count_ok(&self, took: Duration) {
        self.ok.inc();
        self.ok_seconds.observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// The Prometheus text exposition of every metric of `registry`: every role's `/metrics`.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding cannot fail");
    String::from_utf8(out).expect("prometheus text is UTF-8")
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
