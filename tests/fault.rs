//! Fault test of the delivery promise: a callback answered OK reaches the topic, and one group's
//! events appear there in the order the relay answered them OK, through broker outages, relay
//! crashes (SIGKILL), a clean stop (SIGTERM) and a start while the broker is down.
//!
//! The faults are real, so this test runs its own broker (127.0.0.1:19092, data in
//! `target/kafka-fault`, wiped at the start) and the relay binary as a child process. Each
//! scenario has its own topic, spool dir and log (`target/fault-logs/<scenario>.log`, relay
//! stderr interleaved with the harness's timeline), and runs after the previous one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use tokio::runtime::{Handle, Runtime};

mod support;
use support::broker::{create_topic, fault_broker, Broker};
use support::load::{not_ok_reasons, Load, Sent};
use support::relay::{Relay, CALLBACK_QUERY};
use support::tally::{read_topic, tally, Found, Shape};
use support::timeline::Timeline;
use support::{wait_for, REPO};

const BOOTSTRAP: &str = "127.0.0.1:19092";
const PARTITIONS: i32 = 3;
/// The groups of this test's load: `@TGS#fault-<n>`.
const GROUPS: &str = "fault";
const SHAPE: Shape<'static> = Shape {
    prefix: GROUPS,
    relays: &["relay"],
    budget: Duration::from_secs(2),
};

#[test]
fn every_callback_answered_ok_reaches_the_topic_in_answer_order_through_broker_and_relay_faults() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let (_one_at_a_time, broker) = fault_broker("fault");
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let scenarios: [(&str, Faults); 4] = [
        ("broker stopped for 10 s three times", broker_stopped_three_times),
        ("relay killed with SIGKILL twice", relay_killed_twice),
        (
            "relay stopped with SIGTERM and restarted",
            relay_terminated_and_restarted,
        ),
        (
            "relay started while the broker is down",
            relay_started_while_broker_down,
        ),
    ];
    // FAULT_ONLY=<part of a name> runs just the matching scenarios (when chasing one failure).
    let only = std::env::var("FAULT_ONLY").unwrap_or_default();
    for (name, faults) in scenarios.into_iter().filter(|(name, _)| name.contains(&only)) {
        let (line, found) = run_scenario(&rt, &broker, name, faults);
        eprintln!("{line}");
        lines.push(line);
        problems.extend(found.into_iter().map(|p| format!("{name}: {p}")));
    }
    eprintln!("fault test took {:.0} s", started.elapsed().as_secs_f64());
    // cargo hides a passing test's output: the lines also go to a file that scripts/test.sh prints.
    let summary = format!("{REPO}/target/fault-logs/summary.txt");
    let _ = std::fs::write(
        &summary,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    );
    assert!(
        problems.is_empty(),
        "{}\n\nproblems:\n{}",
        lines.join("\n"),
        problems.join("\n")
    );
}

/// What a scenario does to the broker and the relay while the load runs.
type Faults = fn(&mut Scenario, &Broker);

fn broker_stopped_three_times(s: &mut Scenario, broker: &Broker) {
    s.start_relay();
    s.start_load();
    s.pause(4);
    for _ in 0..3 {
        s.note("stopping the broker");
        broker.run("stop");
        s.note("broker stopped");
        s.pause(10);
        broker.run("start");
        s.note("broker started");
        s.pause(3);
    }
}

fn relay_killed_twice(s: &mut Scenario, _: &Broker) {
    s.start_relay();
    s.start_load();
    for _ in 0..2 {
        s.pause(6);
        s.kill_relay();
        s.pause(1);
        s.start_relay();
    }
    s.pause(6);
}

fn relay_terminated_and_restarted(s: &mut Scenario, _: &Broker) {
    s.start_relay();
    s.start_load();
    s.pause(8);
    let exit = s.terminate_relay();
    if exit != Some(0) {
        s.problems
            .push(format!("relay exited with {exit:?} after SIGTERM, not 0"));
    }
    s.pause(1);
    s.start_relay();
    s.pause(8);
}

fn relay_started_while_broker_down(s: &mut Scenario, broker: &Broker) {
    // The topic exists already (created while the broker was up); only the broker is missing.
    broker.run("stop");
    s.note("broker stopped");
    s.start_relay();
    s.start_load();
    s.pause(12);
    broker.run("start");
    s.note("broker started");
    s.pause(8);
}

/// Runs one scenario's faults under load, lets the relay drain its spool, reads the whole topic
/// back and returns the scenario's summary line and what went wrong.
fn run_scenario(rt: &Runtime, broker: &Broker, name: &str, faults: Faults) -> (String, Vec<String>) {
    let mut s = Scenario::new(rt.handle().clone(), name);
    faults(&mut s, broker);
    let sent = s.finish_load();
    s.note("load stopped; waiting for the spool to drain");
    if s.relay.child.is_none() {
        s.start_relay();
    }
    if let Err(left) = s.drain_spool(Duration::from_secs(60)) {
        // Not lost yet, but not forwarded either: the relay's log says why it is stuck.
        let left = left.map_or("an unknown number of".into(), |n| n.to_string());
        s.problems.push(format!(
            "the spool did not drain within 60 s: it still holds {left} events (counted as lost below)"
        ));
    }
    let (retry, within) = (Duration::ZERO, Duration::from_secs(60));
    let records = read_topic(BOOTSTRAP, &s.topic, PARTITIONS, retry, within, &mut s.problems);
    s.note("topic read");
    let t = tally(&sent, &records, &SHAPE);
    let counts = format!(
        "sent {}, answered OK {}, in topic {}, lost {}, duplicates {}, out-of-order {}",
        t.sent, t.ok, t.in_topic, t.lost, t.duplicates, t.out_of_order_one_relay
    );
    s.note(&format!(
        "not answered OK, by reason: {}",
        not_ok_reasons(&sent, SHAPE.relays)
    ));
    let line = format!("{name}: {counts}");
    if t.lost > 0 || t.out_of_order_one_relay > 0 || t.strange > 0 {
        s.problems.extend(t.examples);
    }
    if t.ok * 2 < t.sent {
        s.problems.push(format!(
            "only {} of {} callbacks answered OK: the harness tests little",
            t.ok, t.sent
        ));
    }
    if !s.problems.is_empty() {
        s.problems
            .push(format!("relay log and timeline: {}", s.relay.log.display()));
    }
    (line, std::mem::take(&mut s.problems))
}

/// One scenario: its topic, its relay (spool dir kept across restarts) and the load.
struct Scenario {
    rt: Handle,
    topic: String,
    timeline: Timeline,
    relay: Relay,
    load: Option<Load>,
    problems: Vec<String>,
}

impl Scenario {
    fn new(rt: Handle, name: &str) -> Self {
        let slug: String = name
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        let topic = format!("fault-{slug}-{}", uuid::Uuid::new_v4().simple());
        let new_topic = NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1));
        create_topic(BOOTSTRAP, &new_topic, &AdminOptions::new());
        let logs = PathBuf::from(REPO).join("target/fault-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let log = logs.join(format!("{slug}.log"));
        let timeline = Timeline::new(name, vec![log.clone()]);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let relay = Relay::new("relay", log, rt.clone(), http);
        let s = Scenario {
            rt,
            topic,
            timeline,
            relay,
            load: None,
            problems: Vec::new(),
        };
        s.note(&format!(
            "topic {} ({PARTITIONS} partitions), port {}",
            s.topic, s.relay.port
        ));
        s
    }

    /// Marks the timeline on stderr and in the relay's log, so faults line up with its lines.
    fn note(&self, what: &str) {
        self.timeline.note(what);
    }

    fn pause(&self, secs: u64) {
        std::thread::sleep(Duration::from_secs(secs));
    }

    fn start_relay(&mut self) {
        let mut command = self.relay.command(BOOTSTRAP, &self.topic);
        command
            // KAFKA_PRODUCER_DEBUG=eos,broker,msg etc. reach the relay, to see inside librdkafka.
            .envs(std::env::vars().filter(|(k, _)| k.starts_with("KAFKA_PRODUCER_")))
            .envs(std::env::var_os("KAFKA_PRODUCER_DEBUG").map(|_| ("RUST_LOG", "info,librdkafka=debug")));
        let pid = self.relay.start(command, &self.timeline.name);
        self.note(&format!("relay started (pid {pid})"));
    }

    fn kill_relay(&mut self) {
        let exit = self.relay.kill().expect("relay running");
        self.note(&format!("relay killed with SIGKILL ({exit})"));
    }

    /// SIGTERM, then waits for the relay to exit by itself; returns its exit code.
    fn terminate_relay(&mut self) -> Option<i32> {
        let timeline = &self.timeline;
        self.relay.terminate(|what| timeline.note(what))
    }

    fn start_load(&mut self) {
        let url = self.relay.url(&format!("/callback?{CALLBACK_QUERY}"));
        self.load = Some(Load::start(&self.rt, vec![url], GROUPS, self.timeline.started));
        self.note("load started");
    }

    fn finish_load(&mut self) -> Vec<Sent> {
        let load = self.load.take().expect("load running");
        load.finish(&self.rt)
    }

    /// Polls `/metrics` until the spool is empty: everything answered OK is then in Kafka.
    /// Otherwise returns how many events the spool still holds (None: metrics unreadable).
    fn drain_spool(&self, within: Duration) -> Result<(), Option<u64>> {
        let mut left = None;
        let drained = wait_for(within, Duration::from_millis(500), "the spool", || {
            left = self.relay.metric_sum("tim_relay_spool_events", &[]);
            (left == Some(0.0)).then_some(())
        });
        match drained {
            Ok(()) => {
                self.note("spool drained");
                Ok(())
            }
            Err(_) => Err(left.map(|n| n as u64)),
        }
    }
}

/// The harness checks itself without a broker: a tally that missed loss or reordering would let
/// a broken relay pass.
#[test]
fn the_tally_finds_lost_duplicated_and_reordered_events() {
    let sent = |group, seq, ok: bool| Sent {
        group,
        seq,
        relay: 0,
        at: Duration::ZERO,
        took: Duration::ZERO,
        why: if ok { "" } else { "HTTP 503" }.into(),
    };
    let found = |offset, g, s| Found::marked(GROUPS, offset, g, s);
    let answered = [
        sent(1, 0, true),
        sent(1, 1, false),
        sent(1, 2, true),
        sent(1, 3, true),
        sent(2, 0, true),
    ];
    // g1: s2 lands before s0 (reordered), s0 twice, s1 (not OK) anywhere; s3 and g2-s0 missing.
    let topic = [found(0, 1, 2), found(1, 1, 1), found(2, 1, 0), found(3, 1, 0)];
    let t = tally(&answered, &[topic.into()], &SHAPE);
    assert_eq!((t.sent, t.ok, t.in_topic), (5, 4, 3));
    assert_eq!(
        (t.lost, t.duplicates, t.out_of_order_one_relay, t.strange),
        (2, 1, 1, 0)
    );
}
