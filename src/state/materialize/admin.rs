//! The materializer's metrics and its admin listener: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::ops::loop_admin::{self, Listener, Says};

/// What the admin listener says of the fold loop: it may go 60 s without a turn before
/// `/healthz` fails, and is ready once it has joined the group and every assigned partition is
/// rebuilt.
const SAYS: Says = Says {
    stall: Duration::from_secs(60),
    silent: "the fold loop has not turned",
    not_ready: "joining the consumer group or rebuilding assigned partitions",
};

/// What the fold loop tells the admin listener.
pub use crate::ops::loop_admin::Heartbeat as Health;

pub struct StateMetrics {
    registry: Registry,
    /// Events read, by what the fold did with them.
    pub events: IntCounterVec,
    pub transactions: IntCounterVec,
    pub transaction_seconds: Histogram,
    pub state_records: IntCounter,
    pub tombstones: IntCounter,
    /// Events in the assigned partitions not folded yet.
    pub lag: IntGauge,
    pub groups: IntGauge,
    pub partitions: IntGauge,
    pub rebuild_seconds: Histogram,
    pub rebuilt_groups: IntCounter,
    pub ready: IntGauge,
}

impl StateMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let events = IntCounterVec::new(
            Opts::new(
                "tim_relay_state_events_total",
                "Group state events read, by outcome: applied, duplicate, stale, not_state, invalid",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let transactions = IntCounterVec::new(
            Opts::new(
                "tim_relay_state_transactions_total",
                "Fold transactions, by outcome: committed or aborted",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("valid metric")
        };
        let transaction_seconds = histogram(
            "tim_relay_state_transaction_duration_seconds",
            "One fold transaction, from begin to commit",
            &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        );
        let rebuild_seconds = histogram(
            "tim_relay_state_rebuild_duration_seconds",
            "Rebuilding the state of newly assigned partitions from the state topic",
            &[0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0],
        );
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let m = StateMetrics {
            events,
            transactions,
            transaction_seconds,
            state_records: counter(
                "tim_relay_state_records_total",
                "Group documents written to the state topic (tombstones included)",
            ),
            tombstones: counter(
                "tim_relay_state_tombstones_total",
                "Tombstones written for destroyed groups",
            ),
            lag: gauge(
                "tim_relay_state_lag_events",
                "Events in this instance's partitions of the event topic not folded yet",
            ),
            groups: gauge(
                "tim_relay_state_groups",
                "Groups this instance holds, destroyed ones included",
            ),
            partitions: gauge(
                "tim_relay_state_partitions",
                "Partitions of the event topic assigned to this instance",
            ),
            rebuild_seconds,
            rebuilt_groups: counter(
                "tim_relay_state_rebuilt_groups_total",
                "Groups read back from the state topic when partitions were assigned",
            ),
            ready: gauge("tim_relay_state_ready", "1 while /readyz answers 200"),
            registry,
        };
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(m.events.clone()),
            Box::new(m.transactions.clone()),
            Box::new(m.transaction_seconds.clone()),
            Box::new(m.state_records.clone()),
            Box::new(m.tombstones.clone()),
            Box::new(m.lag.clone()),
            Box::new(m.groups.clone()),
            Box::new(m.partitions.clone()),
            Box::new(m.rebuild_seconds.clone()),
            Box::new(m.rebuilt_groups.clone()),
            Box::new(m.ready.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for c in collectors {
            m.registry.register(c).expect("unique metric");
        }
        for outcome in ["applied", "duplicate", "stale", "not_state", "invalid"] {
            m.events.with_label_values(&[outcome]);
        }
        for outcome in ["committed", "aborted"] {
            m.transactions.with_label_values(&[outcome]);
        }
        m
    }

    fn render(&self) -> String {
        crate::ops::metrics::render(&self.registry)
    }
}

impl Default for StateMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves the admin endpoints until the process ends.
pub fn serve(
    listen: std::net::SocketAddr,
    health: Arc<Health>,
    metrics: Arc<StateMetrics>,
) -> std::io::Result<actix_web::dev::Server> {
    let listener = Listener {
        says: &SAYS,
        health,
        ready_gauge: metrics.ready.clone(),
        render: Box::new(move || metrics.render()),
    };
    loop_admin::server(listen, listener)
}
