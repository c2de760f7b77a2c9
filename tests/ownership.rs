//! Ownership with hand-over (issue 23): two relays with `RELAY_PEERS`, and senders that send
//! consecutive callbacks of one group through different relays milliseconds apart (each after
//! the previous answer), as a round-robin balancer does when Tencent sends a group's callbacks
//! in a burst. Each group has one owning relay; the other hands its callbacks over, so a
//! group's events pass one relay and keep the order they were answered in.
//!
//! Like `tests/fault.rs` it runs a broker of its own on 127.0.0.1:19092 (data in
//! `target/kafka-fault`, wiped; the same lock, so the two wait for each other) and the relay
//! binary as child processes. Scenarios: Kafka healthy; the broker stopped for 8 s under load.
//! Each prints a tally line (also in `target/ownership-logs/summary.txt`) with the answer
//! latency of callbacks sent to a group's owner and to the other relay (the hand-over's cost).
//! `OWNERSHIP_SECS` (default 20) is how long each scenario's load runs; `OWNERSHIP_ONLY=<part
//! of a name>` runs just the matching scenarios.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use tokio::runtime::Runtime;

mod support;
use support::broker::{create_topic, fault_broker, Broker};
use support::load::{group_id, Load, Pace, Sent};
use support::relay::{Relay, CALLBACK_QUERY};
use support::tally::{read_topic, tally, Shape};
use support::timeline::{append_line, Timeline};
use support::{wait_for, REPO};
use tim_relay::delivery::owner::{Member, Members};

const BOOTSTRAP: &str = "127.0.0.1:19092";
const PARTITIONS: i32 = 3;
const GROUPS: &str = "own";
const RELAYS: [&str; 2] = ["A", "B"];
const SHAPE: Shape<'static> = Shape {
    prefix: GROUPS,
    relays: &RELAYS,
    budget: Duration::from_secs(2),
};
const HEALTHY: &str = "kafka healthy";
/// Four consecutive callbacks of a group back to back, alternating relays, then the next group.
const PACE: Pace = Pace {
    burst: 4,
    pause: Duration::from_millis(300),
};

#[test]
fn a_groups_callbacks_sent_through_both_relays_within_milliseconds_keep_their_order() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_one_at_a_time, broker) = fault_broker("ownership");
    let scenarios: [(&str, Faults); 2] = [
        (HEALTHY, |_, _| {}),
        ("broker stopped for 8 s", |s, broker| {
            s.timeline.note("stopping the broker");
            broker.run("stop");
            s.timeline.note("broker stopped");
            std::thread::sleep(Duration::from_secs(8));
            broker.run("start");
            s.timeline.note("broker started");
        }),
    ];
    let only = std::env::var("OWNERSHIP_ONLY").unwrap_or_default();
    let mut problems = Vec::new();
    for (name, faults) in scenarios.into_iter().filter(|(name, _)| name.contains(&only)) {
        problems.extend(
            run(&rt, &broker, name, faults)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
    }
    assert!(problems.is_empty(), "problems:\n{}", problems.join("\n"));
}

/// What a scenario does to the broker while the load runs.
type Faults = fn(&Scenario, &Broker);

struct Scenario {
    topic: String,
    timeline: Timeline,
    relays: Vec<Relay>,
}

/// Starts both relays, runs the load around `faults`, drains the spools, reads the topic and
/// returns what went wrong.
fn run(rt: &Runtime, broker: &Broker, name: &str, faults: Faults) -> Vec<String> {
    let s = Scenario::start(rt, name);
    let instances = s.instances();
    let cpu_before = s.sum("process_cpu_seconds_total");
    let urls = s
        .relays
        .iter()
        .map(|r| r.url(&format!("/callback?{CALLBACK_QUERY}")))
        .collect();
    let load = Load::paced(rt.handle(), urls, GROUPS, s.timeline.started, PACE);
    s.timeline.note("load started");
    let secs = std::env::var("OWNERSHIP_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20u64);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    faults(&s, broker);
    std::thread::sleep(
        Duration::from_secs(secs)
            .saturating_sub(t0.elapsed())
            .max(Duration::from_secs(5)),
    );
    let sent = load.finish(rt.handle());
    let cpu = s.sum("process_cpu_seconds_total") - cpu_before;
    s.timeline.note("load stopped; waiting for both spools to drain");
    let mut problems = Vec::new();
    let drained = wait_for(
        Duration::from_secs(60),
        Duration::from_millis(500),
        "the spools",
        || (s.sum("tim_relay_spool_events") == 0.0).then_some(()),
    );
    problems.extend(drained.err());
    let records = read_topic(
        BOOTSTRAP,
        &s.topic,
        PARTITIONS,
        Duration::ZERO,
        Duration::from_secs(60),
        &mut problems,
    );
    let t = tally(&sent, &records, &SHAPE);
    let handovers = |outcome| s.sum_labelled("tim_relay_handovers_total", outcome);
    let (ok, fallbacks) = (
        handovers("ok"),
        ["fallback_unreachable", "fallback_timeout", "fallback_error"].map(handovers),
    );
    let (owner, other) = latencies(&sent, &instances);
    let line = format!(
        "{name}: sent {}, answered OK {}, lost {}, duplicates {}, out of order across relays {} \
         (within one relay {}); hand-overs ok {ok}, fallback unreachable/timeout/error {fallbacks:?}; \
         answer p50/p99/max to the owner {owner}, to the other relay {other}; \
         CPU {:.0} µs per callback (both relays); spooled {}",
        t.sent,
        t.ok,
        t.lost,
        t.duplicates,
        t.out_of_order_across,
        t.out_of_order_one_relay,
        cpu * 1e6 / t.sent.max(1) as f64,
        s.sum("tim_relay_spooled_total"),
    );
    s.timeline.note(&line);
    eprintln!("{line}");
    append_line(
        &PathBuf::from(REPO).join("target/ownership-logs/summary.txt"),
        &line,
    );
    // With the broker down, a hand-over that timed out is handled by both relays: see
    // docs/cluster.md#ownership for what may cross then; only loss is asserted.
    let across = if name == HEALTHY { t.out_of_order_across } else { 0 };
    if t.lost > 0 || across > 0 || t.strange > 0 {
        problems.extend(t.examples.iter().cloned());
        problems.push(format!(
            "lost {}, out of order across relays {}",
            t.lost, t.out_of_order_across
        ));
    }
    if ok == 0.0 {
        problems.push("no callback was handed over".into());
    }
    if t.ok * 2 < t.sent {
        problems.push(format!("only {} of {} answered OK", t.ok, t.sent));
    }
    problems
}

impl Scenario {
    /// A topic of its own and both relays, each listing both admin addresses in `RELAY_PEERS`
    /// (a relay skips itself), started and seeing each other.
    fn start(rt: &Runtime, name: &str) -> Scenario {
        let slug: String = name
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        let topic = format!("own-{slug}-{}", uuid::Uuid::new_v4().simple());
        create_topic(
            BOOTSTRAP,
            &NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1)),
            &AdminOptions::new(),
        );
        let logs = PathBuf::from(REPO).join("target/ownership-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let mut relays: Vec<Relay> = RELAYS
            .iter()
            .map(|r| {
                Relay::new(
                    &format!("relay {r}"),
                    logs.join(format!("{slug}-{r}.log")),
                    rt.handle().clone(),
                    http.clone(),
                )
            })
            .collect();
        let timeline = Timeline::new(name, relays.iter().map(|r| r.log.clone()).collect());
        let peers: Vec<String> = relays
            .iter()
            .map(|r| format!("127.0.0.1:{}", r.admin_port))
            .collect();
        for relay in &mut relays {
            let mut command = relay.command(BOOTSTRAP, &topic);
            command.env("RELAY_PEERS", peers.join(","));
            relay.start(command, name);
        }
        let s = Scenario {
            topic,
            timeline,
            relays,
        };
        let seen = wait_for(
            Duration::from_secs(30),
            Duration::from_millis(100),
            "the relays to see each other",
            || {
                (s.sum("tim_relay_peers_reachable") == 2.0 && s.relays.iter().all(|r| r.answers("/readyz")))
                    .then_some(())
            },
        );
        seen.unwrap_or_else(|e| panic!("{name}: {e}"));
        s.timeline.note("both relays ready, each sees the other");
        s
    }

    /// Each relay's instance id (what the owner is computed from), in relay order.
    fn instances(&self) -> Vec<String> {
        let instance = |r: &Relay| {
            let head: serde_json::Value = r
                .admin_text("/spool/head")
                .and_then(|t| serde_json::from_str(&t).ok())
                .expect("/spool/head answers");
            head["instance"].as_str().expect("an instance id").to_string()
        };
        self.relays.iter().map(instance).collect()
    }

    fn sum(&self, name: &str) -> f64 {
        self.relays
            .iter()
            .map(|r| r.metric_sum(name, &[]).unwrap_or(f64::NAN))
            .sum()
    }

    fn sum_labelled(&self, name: &str, outcome: &str) -> f64 {
        let labels = [("outcome", outcome)];
        self.relays
            .iter()
            .map(|r| r.metric_sum(name, &labels).unwrap_or(f64::NAN))
            .sum()
    }
}

/// p50/p99/max of the OK answers sent to each group's owner, and to the other relay.
fn latencies(sent: &[Sent], instances: &[String]) -> (String, String) {
    let members = Members::new(instances.iter().map(|id| Member::new(id.clone(), None)).collect());
    let (mut owner, mut other) = (Vec::new(), Vec::new());
    for s in sent.iter().filter(|s| s.ok()) {
        let id = &members.owner(&group_id(GROUPS, s.group)).expect("two members").id;
        match *id == instances[s.relay] {
            true => owner.push(s.took),
            false => other.push(s.took),
        }
    }
    (quantiles(owner), quantiles(other))
}

fn quantiles(mut took: Vec<Duration>) -> String {
    took.sort();
    let at = |q: f64| {
        let i = ((took.len() as f64 - 1.0) * q).round() as usize;
        took.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    format!(
        "{:.1}/{:.1}/{:.1} ms (of {})",
        at(0.5),
        at(0.99),
        at(1.0),
        took.len()
    )
}
