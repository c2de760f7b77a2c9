//! The reconciler's metrics (`tim-relay reconcile`): sweeps, their progress, REST calls by API
//! and result, drift found by field, events published, the process and the build. Served by
//! [`super::admin`] at `/metrics`; `docs/monitoring.md` lists them, `deploy/monitoring/`
//! alerts on them and draws them.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::digest::FIELDS;

/// `sweeps_total{result}`: the sweep listed and read every group (some may have failed, see
/// `group_failures`); Kafka trouble ended it early; a configuration or authentication error
/// (a [`super::rest_error::Class::Stop`]) ended it.
pub const SWEEP_RESULTS: [&str; 3] = ["completed", "failed", "stopped"];

/// `rest_calls_total{api}`: [`super::budget::Api::name`] of each API.
pub const APIS: [&str; 4] = [
    "get_appid_group_list",
    "get_group_info",
    "get_group_member_info",
    "get_group_attr",
];

/// `rest_calls_total{result}`: [`super::client::result_label`] of the answer's class, and
/// `no_attrs` for a `get_group_attr` whose group type has no attributes (10007).
pub const REST_RESULTS: [&str; 8] = [
    "ok",
    "back_off",
    "retry",
    "ask_for_less",
    "group_gone",
    "no_attrs",
    "stop",
    "unknown",
];

/// `drift_total{field}`: `missing` (Tencent has the group, the state does not), `destroyed`
/// (the state has it, Tencent answers 10010/10015), `incomplete` (the state's document is not
/// `complete`), or the field whose hash differs (the rest of [`FIELDS`]).
pub const DRIFT_FIELDS: [&str; FIELDS.len() + 2] = drift_fields();

const fn drift_fields() -> [&'static str; FIELDS.len() + 2] {
    let mut all = ["missing"; FIELDS.len() + 2];
    all[1] = "destroyed";
    let mut i = 0;
    while i < FIELDS.len() {
        all[i + 2] = FIELDS[i];
        i += 1;
    }
    all
}

/// `events_published_total{type}`: `tim.group.snapshot` and the reconciler's destroyed events.
pub const EVENT_TYPES: [&str; 2] = ["snapshot", "destroyed"];

pub struct ReconcileMetrics {
    registry: Registry,
    /// Sweeps ended, by [`SWEEP_RESULTS`].
    pub sweeps: IntCounterVec,
    /// 1 while a sweep runs.
    pub sweep_running: IntGauge,
    /// Groups listed so far by the current sweep (the last one's total between sweeps).
    pub sweep_groups_listed: IntGauge,
    /// Groups read so far by the current sweep (the last one's total between sweeps).
    pub sweep_groups_read: IntGauge,
    /// Tencent's `TotalCount` from the current sweep's first list page.
    pub sweep_groups_total: IntGauge,
    /// Seconds since 1970 when the last sweep completed; the process's start time until then.
    pub last_completed: IntGauge,
    /// How long the last sweep took, whatever its result.
    pub last_duration: Gauge,
    /// `RECONCILE_INTERVAL_SECS`.
    pub interval: IntGauge,
    /// `RECONCILE_MAX_QPS`.
    pub max_qps: IntGauge,
    /// REST calls by API ([`APIS`]) and result ([`REST_RESULTS`]).
    pub rest_calls: IntCounterVec,
    /// REST calls' duration by API, from send to answer (the wait for the budget excluded).
    pub rest_seconds: HistogramVec,
    /// Differences found between Tencent and the state topic, by [`DRIFT_FIELDS`].
    pub drift: IntCounterVec,
    /// Events published to `KAFKA_TOPIC`, by [`EVENT_TYPES`].
    pub events: IntCounterVec,
    /// Groups whose reads failed in a sweep (retries spent), left to the next sweep.
    pub group_failures: IntCounter,
    /// 1 while `/readyz` answers 200.
    pub ready: IntGauge,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl ReconcileMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let rest_seconds = HistogramVec::new(
            HistogramOpts::new(
                "tim_relay_reconcile_rest_call_duration_seconds",
                "One REST call to Tencent, from send to answer (the wait for the rate budget excluded), by API",
            )
            // Tencent answers within 3 s or not at all; the client waits a little longer.
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0]),
            &["api"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "tim_relay_reconcile_build_info",
                "The reconciler's version; always 1",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let m = ReconcileMetrics {
            sweeps: counter_vec(
                "tim_relay_reconcile_sweeps_total",
                "Sweeps ended, by result: completed, failed (ended early by Kafka trouble), \
                 stopped (a configuration or authentication error: fix the variable the log names)",
                &["result"],
            ),
            sweep_running: gauge(
                "tim_relay_reconcile_sweep_running",
                "1 while a sweep runs",
            ),
            sweep_groups_listed: gauge(
                "tim_relay_reconcile_sweep_groups_listed",
                "Groups listed by get_appid_group_list so far in the current sweep (the last sweep's between sweeps)",
            ),
            sweep_groups_read: gauge(
                "tim_relay_reconcile_sweep_groups_read",
                "Groups read and compared so far in the current sweep (the last sweep's between sweeps)",
            ),
            sweep_groups_total: gauge(
                "tim_relay_reconcile_sweep_groups_total",
                "Groups in the app by Tencent's TotalCount, from the current sweep's first list page",
            ),
            last_completed: gauge(
                "tim_relay_reconcile_last_completed_sweep_timestamp_seconds",
                "When the last sweep completed, in seconds since 1970; the process's start time until \
                 the first sweep completes, so that a first sweep that never completes is noticed too",
            ),
            last_duration: Gauge::new(
                "tim_relay_reconcile_last_sweep_duration_seconds",
                "How long the last sweep took, whatever its result",
            )
            .expect("valid metric"),
            interval: gauge(
                "tim_relay_reconcile_interval_seconds",
                "RECONCILE_INTERVAL_SECS: a sweep starts this long after the last one started (at once if it took longer)",
            ),
            max_qps: gauge(
                "tim_relay_reconcile_max_qps",
                "RECONCILE_MAX_QPS: the most REST calls a second, over all APIs",
            ),
            rest_calls: counter_vec(
                "tim_relay_reconcile_rest_calls_total",
                "REST calls to Tencent, by API and result: ok, back_off (rate limited), retry (transient), \
                 ask_for_less (answer too big), group_gone (10010/10015), no_attrs (10007), \
                 stop (configuration or authentication error), unknown",
                &["api", "result"],
            ),
            rest_seconds,
            drift: counter_vec(
                "tim_relay_reconcile_drift_total",
                "Differences between Tencent and the state topic, by field: missing (Tencent has the group, \
                 the state does not), destroyed (the state has it, Tencent does not), incomplete, or the field",
                &["field"],
            ),
            events: counter_vec(
                "tim_relay_reconcile_events_published_total",
                "Events the reconciler published to KAFKA_TOPIC, by type: snapshot, destroyed",
                &["type"],
            ),
            group_failures: counter(
                "tim_relay_reconcile_group_failures_total",
                "Groups whose reads failed in a sweep after their retries, left to the next sweep",
            ),
            ready: gauge("tim_relay_reconcile_ready", "1 while /readyz answers 200"),
            registry,
        };
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(m.sweeps.clone()),
            Box::new(m.sweep_running.clone()),
            Box::new(m.sweep_groups_listed.clone()),
            Box::new(m.sweep_groups_read.clone()),
            Box::new(m.sweep_groups_total.clone()),
            Box::new(m.last_completed.clone()),
            Box::new(m.last_duration.clone()),
            Box::new(m.interval.clone()),
            Box::new(m.max_qps.clone()),
            Box::new(m.rest_calls.clone()),
            Box::new(m.rest_seconds.clone()),
            Box::new(m.drift.clone()),
            Box::new(m.events.clone()),
            Box::new(m.group_failures.clone()),
            Box::new(m.ready.clone()),
            Box::new(build_info),
            // CPU, resident memory, open file descriptors of this process (Linux).
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for c in collectors {
            m.registry.register(c).expect("unique metric");
        }
        // Every label combination from the start, so that dashboards and alerts see zeros
        // rather than no series.
        for result in SWEEP_RESULTS {
            m.sweeps.with_label_values(&[result]);
        }
        for api in APIS {
            for result in REST_RESULTS {
                m.rest_calls.with_label_values(&[api, result]);
            }
            m.rest_seconds.with_label_values(&[api]);
        }
        for field in DRIFT_FIELDS {
            m.drift.with_label_values(&[field]);
        }
        for kind in EVENT_TYPES {
            m.events.with_label_values(&[kind]);
        }
        m.last_completed.set(now_secs());
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        crate::ops::metrics::render(&self.registry)
    }
}

impl Default for ReconcileMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::budget::Api;
    use crate::reconcile::client::result_label;
    use crate::reconcile::rest_error::{class_of_code, Class, Unexpected};

    /// The value of the sample line `series value` in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().expect("a number"))
    }

    #[test]
    fn renders_every_metric() {
        let text = ReconcileMetrics::new().render();
        for name in [
            "tim_relay_reconcile_sweeps_total",
            "tim_relay_reconcile_sweep_running",
            "tim_relay_reconcile_sweep_groups_listed",
            "tim_relay_reconcile_sweep_groups_read",
            "tim_relay_reconcile_sweep_groups_total",
            "tim_relay_reconcile_last_completed_sweep_timestamp_seconds",
            "tim_relay_reconcile_last_sweep_duration_seconds",
            "tim_relay_reconcile_interval_seconds",
            "tim_relay_reconcile_max_qps",
            "tim_relay_reconcile_rest_calls_total",
            "tim_relay_reconcile_rest_call_duration_seconds",
            "tim_relay_reconcile_drift_total",
            "tim_relay_reconcile_events_published_total",
            "tim_relay_reconcile_group_failures_total",
            "tim_relay_reconcile_ready",
            "tim_relay_reconcile_build_info",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing from\n{text}"
            );
        }
    }

    #[test]
    fn every_label_combination_starts_at_zero() {
        let text = ReconcileMetrics::new().render();
        let zero = |series: String| {
            assert_eq!(sample(&text, &series), Some(0.0), "{series} in\n{text}");
        };
        for result in SWEEP_RESULTS {
            zero(format!(
                r#"tim_relay_reconcile_sweeps_total{{result="{result}"}}"#
            ));
        }
        for api in APIS {
            for result in REST_RESULTS {
                zero(format!(
                    r#"tim_relay_reconcile_rest_calls_total{{api="{api}",result="{result}"}}"#
                ));
            }
            zero(format!(
                r#"tim_relay_reconcile_rest_call_duration_seconds_count{{api="{api}"}}"#
            ));
        }
        for field in DRIFT_FIELDS {
            zero(format!(r#"tim_relay_reconcile_drift_total{{field="{field}"}}"#));
        }
        for kind in EVENT_TYPES {
            zero(format!(
                r#"tim_relay_reconcile_events_published_total{{type="{kind}"}}"#
            ));
        }
        for gauge in [
            "tim_relay_reconcile_sweep_running",
            "tim_relay_reconcile_sweep_groups_listed",
            "tim_relay_reconcile_sweep_groups_read",
            "tim_relay_reconcile_sweep_groups_total",
            "tim_relay_reconcile_last_sweep_duration_seconds",
            "tim_relay_reconcile_interval_seconds",
            "tim_relay_reconcile_max_qps",
            "tim_relay_reconcile_group_failures_total",
            "tim_relay_reconcile_ready",
        ] {
            zero(gauge.to_string());
        }
        let version = format!(
            r#"tim_relay_reconcile_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(sample(&text, &version), Some(1.0));
    }

    #[test]
    fn last_completed_starts_at_the_process_start() {
        let before = now_secs();
        let m = ReconcileMetrics::new();
        let after = now_secs();
        let at = m.last_completed.get();
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    }

    #[test]
    fn counts_show_in_the_rendering() {
        let m = ReconcileMetrics::new();
        m.sweeps.with_label_values(&["completed"]).inc();
        m.rest_calls
            .with_label_values(&["get_group_attr", "no_attrs"])
            .inc_by(3);
        m.drift.with_label_values(&["members"]).inc();
        m.interval.set(3600);
        let text = m.render();
        assert_eq!(
            sample(&text, r#"tim_relay_reconcile_sweeps_total{result="completed"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"tim_relay_reconcile_rest_calls_total{api="get_group_attr",result="no_attrs"}"#
            ),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, r#"tim_relay_reconcile_drift_total{field="members"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "tim_relay_reconcile_interval_seconds"),
            Some(3600.0)
        );
    }

    #[test]
    fn labels_match_the_apis_and_classes() {
        for (api, name) in Api::ALL.into_iter().zip(APIS) {
            assert_eq!(api.name(), name);
        }
        for code in [0, 60007, 10002, 10018, 10010, 10007, 60004, 12345] {
            assert!(REST_RESULTS.contains(&result_label(&class_of_code(code), Some(code))));
        }
        assert_eq!(result_label(&Class::Unknown(Unexpected::Body), None), "unknown");
        assert_eq!(result_label(&class_of_code(60010), Some(60010)), "stop");
    }
}
