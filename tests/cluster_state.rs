//! The group-state fold (`tim-relay materialize`) against the three-node cluster
//! (`scripts/kafka-cluster.sh`: replication factor 3, `min.insync.replicas=2`, a transaction
//! log of 6 partitions) while the broker that coordinates its transactions is killed (kill -9),
//! as issue 13 asks: the compacted state must still equal the model.
//!
//! A producer writes random group histories (`tests/state.rs`'s model: out of order, with
//! repeats; ~400 events a second) in the background, spread over `CLUSTER_FAULTS_SECS` (default
//! 60; `scripts/test.sh` runs it with 20). Once the materializer is ready, `kafka-cluster.sh
//! txn-coordinator` names the node that coordinates its transactional id (the harness's own
//! reckoning, the leader of the id's partition of `__transaction_state`, must agree); the load
//! starts, and 5 s after the first committed transaction that node gets `kill-node`. It stays
//! down 10 s, then `start-node`, and leadership (so the coordinator) moves back to it within
//! ~10 s. The producer goes on throughout. Once every event is folded, the state topic, read
//! `read_committed`, must hold exactly the model's groups.
//!
//! The names of the topic and group are picked so that the killed node also coordinates the
//! consumer group (`CLUSTER_STATE_GROUP_COORDINATOR=same`, the default; `other` keeps the
//! group's coordinator elsewhere, `any` leaves it to chance): the harder case, where the offsets
//! sent with each transaction lose their coordinator too.
//!
//! The tally line (also in `target/cluster-logs/summary.txt`) says how long the fold went
//! without a commit, when the coordinator moved, and whether the materializer was restarted; the
//! materializer's log, with the harness's timeline in it, is
//! `target/cluster-logs/txn-coordinator-killed-under-the-fold-materializer.log`.
//!
//! How the materializer may end (`src/materialize.rs`): a failed transaction that is not fatal
//! is aborted and its events are read again, in process. An error librdkafka makes fatal stops
//! it with exit 1 and "materialize stopped: fatal Kafka error ...": its producer fenced (here:
//! the new coordinator aborted a transaction that outlived the 10 s `transaction.timeout.ms`
//! while the coordinator moved), a transaction the coordinator refuses (INVALID_TXN_STATE), or
//! its consumer fenced (FENCED_INSTANCE_ID on rejoining the group, after the group's coordinator
//! died); a StatefulSet then restarts the pod. The harness plays the StatefulSet: it restarts
//! the materializer 1 s after it exits, with the same instance id (the restart fences its former
//! self and aborts what it left open), and probes `/healthz` as the liveness probe of
//! `deploy/state-statefulset.yaml` does (every 10 s, three failures: SIGTERM, SIGKILL after 30
//! s, restart). Those ends are reported in the tally and accepted; any other (a panic, a signal,
//! exit 1 for another reason, such as giving up on an abort) fails the test. So does a state
//! that differs from the model, no commit after the kill, or, when the materializer ran as one
//! process throughout, event counts that do not add up to the events produced.
//!
//! Ignored by `cargo test` (it needs the cluster); `bash scripts/cluster-faults.sh` runs it after
//! the relay's scenarios. By hand, with a cluster running: `cargo test --test cluster_state --
//! --ignored --nocapture` with the cluster's `KAFKA_CLUSTER_*` variables, which reach
//! `kafka-cluster.sh`. `CLUSTER_LOGS_DIR` moves the logs, the summary and the lock (default
//! `target/cluster-logs`, shared with `tests/cluster.rs`: one scenario at a time per dir).
//! `STATE_TEST_SEED=<n>` replays a history, as in `tests/state.rs`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde_json::Value;
use tim_relay::state::materialize::StateError;

mod support;
use support::broker::{admin, block_on, create_topic};
use support::cluster::{cluster, cluster_ready, Metadata};
use support::lock::lock_file;
use support::relay::{binary, free_port};
use support::state_model::{delivery, histories, Histories, Rng, StateRead, Truth};
use support::timeline::{append_line, Timeline};
use support::REPO;

const NAME: &str = "transaction coordinator killed under the fold (kill -9)";
const SLUG: &str = "txn-coordinator-killed-under-the-fold";
const PARTITIONS: i32 = 6;
/// Groups in the history per second of load: about eight events each with the repeats, so ~400
/// events a second (24,000 in all with the default 60 s).
const GROUPS_A_SECOND: usize = 50;
/// `transaction.state.log.num.partitions` and `offsets.topic.num.partitions` of the cluster.
const TXN_LOG_PARTITIONS: i32 = 6;
const TXN_LOG: &str = "__transaction_state";
const OFFSETS_LOG: &str = "__consumer_offsets";
/// The materializer's instance id (a StatefulSet pod's name).
const INSTANCE: &str = "state-0";
/// Folding before the kill, and after the node is back.
const STEADY: Duration = Duration::from_secs(5);
/// How long the coordinator's node stays down.
const DOWN: Duration = Duration::from_secs(10);
/// How often the harness samples the materializer's metrics and the coordinator's partition.
const SAMPLE: Duration = Duration::from_millis(200);
/// How long a metadata look-up may take.
const LOOKUP: Duration = Duration::from_secs(3);
/// The liveness probe's period (`deploy/state-statefulset.yaml`).
const LIVENESS_PERIOD: Duration = Duration::from_secs(10);

#[test]
#[ignore = "needs the three-node cluster: bash scripts/cluster-faults.sh"]
fn transaction_coordinator_killed_under_the_fold() {
    let mut s = Scenario::on_a_warm_cluster();
    let controller = s.create_the_events_topic();
    let (plan, records) = Plan::for_the_load();
    let fold = s.start_the_fold();
    let coordinator = s.find_the_coordinator(&controller);
    let load = s.start_the_load(&fold, &plan, records);
    let coordinator = s.fold_steadily(&load, coordinator);
    let killed = s.kill_the_coordinator(coordinator);
    let back = s.bring_it_back(&fold, &killed);
    let produced = s.finish_the_load(load);
    let end = s.stop_the_fold_once_caught_up(fold);
    let folded = s.compare_the_state_topic_with_the_model(&plan);
    let line = s.report(&plan, &killed, back, &produced, &end, &folded);
    s.judge(&line, &plan, &killed, &produced, &end, &folded);
}

/// What the steps share: the logs and the timeline, the cluster, the names (picked by where
/// their coordinators sit), and the problems found so far, asserted together at the end.
struct Scenario {
    logs: PathBuf,
    /// The materializer's log, with the harness's timeline in it.
    log: PathBuf,
    timeline: Timeline,
    bootstrap: String,
    meta: Metadata,
    topic: String,
    state_topic: String,
    group: String,
    transactional_id: String,
    /// The partition of the transaction log whose leader coordinates the transactional id.
    txn_partition: i32,
    /// The partition of the offsets topic whose leader coordinates the consumer group.
    offsets_partition: i32,
    problems: Vec<String>,
    _one_at_a_time: File,
}

/// The load: random group histories (the model), for `CLUSTER_FAULTS_SECS` of load.
struct Plan {
    secs: u64,
    groups: usize,
    repeats: usize,
    histories: Histories,
}

/// The coordinator's node as it was killed, the group's coordinator then, and when.
struct Killed {
    node: i32,
    group_coordinator: i32,
    at: Duration,
}

/// What the fold left once it had folded every event and was stopped.
struct End {
    caught_up: Duration,
    /// What `txn-coordinator` said then.
    coordinator: String,
    life: Option<Life>,
    run: Run,
}

/// The state topic as read back, and the groups whose state differs from the model.
struct Folded {
    state: StateRead,
    wrong: Vec<String>,
}

impl Plan {
    /// ~400 events a second, whatever the load's length (scripts/test.sh bounds it to 20 s):
    /// the histories, and the records that deliver them (out of order, with repeats).
    fn for_the_load() -> (Plan, Vec<(String, Vec<u8>)>) {
        let secs = std::env::var("CLUSTER_FAULTS_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60u64);
        let groups = (GROUPS_A_SECOND * secs as usize).max(500);
        let mut rng = Rng::seeded();
        let histories = histories(&mut rng, groups, "cs");
        let (records, repeats) = delivery(&mut rng, &histories);
        let plan = Plan {
            secs,
            groups,
            repeats,
            histories,
        };
        (plan, records)
    }
}

impl Scenario {
    /// The cluster ready, its transaction log and offsets topic warmed up, one scenario at a
    /// time per logs dir, and the names picked.
    fn on_a_warm_cluster() -> Scenario {
        let logs = logs_dir();
        let one_at_a_time = lock_file(&logs.join("cluster-test.lock"), "a cluster scenario");
        let log = logs.join(format!("{SLUG}-materializer.log"));
        let timeline = Timeline::new(NAME, vec![log.clone()]);
        let bootstrap = cluster_ready();
        let meta = Metadata::new(&bootstrap);
        warm_up(&bootstrap, &meta, &timeline);
        let topic = topic_by_its_coordinators(&meta);
        let state_topic = format!("{topic}.state");
        let group = format!("{topic}.group");
        let transactional_id = format!("{group}-{INSTANCE}");
        let txn_partition = coordinator_partition(&transactional_id, TXN_LOG_PARTITIONS);
        let offsets_partition = coordinator_partition(&group, TXN_LOG_PARTITIONS);
        Scenario {
            logs,
            log,
            timeline,
            bootstrap,
            meta,
            topic,
            state_topic,
            group,
            transactional_id,
            txn_partition,
            offsets_partition,
            problems: Vec::new(),
            _one_at_a_time: one_at_a_time,
        }
    }

    /// The events topic, in sync. Returns the active controller, asked for the record.
    fn create_the_events_topic(&self) -> String {
        let Scenario {
            ref timeline,
            ref bootstrap,
            ref topic,
            ref transactional_id,
            txn_partition,
            ..
        } = *self;
        create_events_topic(bootstrap, topic);
        timeline.note(&format!(
            "events {topic} ({PARTITIONS} partitions, replication factor 3, min.insync.replicas 2) on \
             {bootstrap}; transactional id {transactional_id} (partition {txn_partition} of {TXN_LOG})"
        ));
        self.meta.wait_in_sync(&[topic], timeline);
        // A JVM tool, seconds on a busy machine: asked before the load, for the record (a killed
        // active controller delays every move by an election).
        cluster(timeline, &["controller"])
    }

    /// The materializer first: it creates the state topic, gets its producer id (on a fresh
    /// cluster that creates the transaction log) and joins its group; the load starts once it is
    /// ready, so the fault falls on a fold that runs at its pace.
    fn start_the_fold(&mut self) -> Fold {
        let fold = Fold::start(
            &self.bootstrap,
            &self.topic,
            &self.group,
            self.txn_partition,
            self.timeline.clone(),
        );
        if !fold.wait_ready(Duration::from_secs(120)) {
            panic!(
                "{NAME}: the materializer was not ready within 120 s; see {}",
                self.log.display()
            );
        }
        self.timeline.note("the materializer is ready");
        check_state_topic(&self.bootstrap, &self.state_topic, &mut self.problems);
        self.meta
            .wait_in_sync(&[&self.topic, &self.state_topic, TXN_LOG], &self.timeline);
        fold
    }

    /// The node to kill, as the coordinator itself says (the materializer's producer has its id,
    /// so the coordinator knows it; a JVM tool, seconds, asked before the load starts); the
    /// harness's own reckoning, the leader of the transactional id's partition of the
    /// transaction log, must agree.
    fn find_the_coordinator(&mut self, controller: &str) -> i32 {
        let coordinator: i32 = self
            .txn_coordinator()
            .parse()
            .expect("txn-coordinator prints a node id");
        let Scenario {
            ref timeline,
            ref meta,
            ref topic,
            ref state_topic,
            txn_partition,
            offsets_partition,
            ref mut problems,
            ..
        } = *self;
        let by_partition = meta.leader(TXN_LOG, txn_partition);
        if by_partition != coordinator {
            problems.push(format!(
                "txn-coordinator says node {coordinator}, but partition {txn_partition} of {TXN_LOG} \
                 is led by node {by_partition}"
            ));
        }
        let group_coordinator = meta.leader(OFFSETS_LOG, offsets_partition);
        timeline.note(&format!(
            "node {coordinator} coordinates the transactions; the consumer group's coordinator is \
             node {group_coordinator}, the active controller node {controller}; it leads events \
             partitions {:?} and state partitions {:?}",
            meta.partitions_led_by(topic, coordinator, LOOKUP),
            meta.partitions_led_by(state_topic, coordinator, LOOKUP)
        ));
        coordinator
    }

    /// The background producer, and the fold's first committed transaction under its load.
    fn start_the_load(&self, fold: &Fold, plan: &Plan, records: Vec<(String, Vec<u8>)>) -> Load {
        let Plan {
            secs,
            groups,
            repeats,
            ..
        } = *plan;
        self.timeline.note(&format!(
            "{} events of {groups} groups ({repeats} repeats), spread over {secs} s",
            records.len()
        ));
        let load = Load::start(
            &self.bootstrap,
            &self.topic,
            records,
            Duration::from_secs(secs),
            &self.timeline,
        );
        if !fold.wait(Duration::from_secs(60), |s| s.committed() > 0) {
            panic!(
                "{NAME}: no fold transaction committed within 60 s; see {}",
                self.log.display()
            );
        }
        self.timeline.note("the first fold transaction committed");
        load
    }

    /// Killed while it folds: a few seconds of commits first, as a baseline. Returns the node to
    /// kill: the coordinator, wherever it is now.
    fn fold_steadily(&mut self, load: &Load, coordinator: i32) -> i32 {
        let mut coordinator = coordinator;
        std::thread::sleep(STEADY);
        if self.meta.leader(TXN_LOG, self.txn_partition) != coordinator {
            // A preferred-leader election (auto.leader.rebalance) moved it meanwhile.
            coordinator = self
                .txn_coordinator()
                .parse()
                .expect("txn-coordinator prints a node id");
            self.timeline.note(&format!(
                "the coordinator moved before the kill: now node {coordinator}"
            ));
        }
        if load.done() {
            self.problems.push(
                "the producer had written every event before the kill: raise CLUSTER_FAULTS_SECS".into(),
            );
        }
        coordinator
    }

    /// kill -9 on the coordinator's node; the load goes on, and the node stays down `DOWN`.
    fn kill_the_coordinator(&self, node: i32) -> Killed {
        let group_coordinator = self.meta.leader(OFFSETS_LOG, self.offsets_partition);
        cluster(&self.timeline, &["kill-node", &node.to_string()]);
        let killed = self.timeline.started.elapsed();
        let new_coordinator = self.txn_coordinator();
        self.timeline.note(&format!(
            "the transactions' new coordinator is node {new_coordinator}"
        ));
        std::thread::sleep((killed + DOWN).saturating_sub(self.timeline.started.elapsed()));
        Killed {
            node,
            group_coordinator,
            at: killed,
        }
    }

    /// `start-node`, and its replicas back in sync. Returns when it was started.
    fn bring_it_back(&self, fold: &Fold, killed: &Killed) -> Duration {
        cluster(&self.timeline, &["start-node", &killed.node.to_string()]);
        let back = self.timeline.started.elapsed();
        self.meta
            .wait_in_sync(&[&self.topic, &self.state_topic, TXN_LOG], &self.timeline);
        // Leadership returns to the preferred replicas within ~10 s (auto.leader.rebalance): the
        // coordinator moves once more, a graceful move.
        let txn_partition = self.txn_partition;
        let preferred = self.meta.preferred(TXN_LOG, txn_partition);
        if !fold.wait(Duration::from_secs(30), |s| {
            s.leaders
                .last()
                .is_some_and(|&(at, l)| at > back && l == preferred)
        }) {
            self.timeline.note(&format!(
                "partition {txn_partition} of {TXN_LOG} is not back on its preferred node {preferred} after 30 s"
            ));
        }
        back
    }

    /// The last seconds of load with the node back, and every event acknowledged.
    fn finish_the_load(&self, load: Load) -> Produced {
        std::thread::sleep(STEADY);
        let produced = load.finish(&self.timeline);
        if produced.failed > 0 {
            // Not the fold's fault, but the model would not describe the topic.
            panic!(
                "{NAME}: {} of {} events were not acknowledged by the cluster (first: {})",
                produced.failed,
                produced.sent,
                produced.first_error.unwrap_or_default()
            );
        }
        produced
    }

    /// Waits until every event is folded, then stops the materializer (SIGTERM).
    fn stop_the_fold_once_caught_up(&self, fold: Fold) -> End {
        let caught_up = wait_caught_up(
            &self.bootstrap,
            &self.topic,
            &self.group,
            Duration::from_secs(240),
            &self.timeline,
        );
        let coordinator = self.txn_coordinator();
        let life = fold.life();
        let run = fold.stop(&self.timeline);
        End {
            caught_up,
            coordinator,
            life,
            run,
        }
    }

    /// The state topic, read `read_committed`, against the model.
    fn compare_the_state_topic_with_the_model(&self, plan: &Plan) -> Folded {
        let state = read_state(&self.bootstrap, &self.state_topic);
        let wrong = compare(&state.last, &plan.histories);
        Folded { state, wrong }
    }

    /// The tally line and the timeline's last notes; the line also goes to `summary.txt`.
    fn report(
        &self,
        plan: &Plan,
        killed: &Killed,
        back: Duration,
        produced: &Produced,
        end: &End,
        folded: &Folded,
    ) -> String {
        let Plan { groups, repeats, .. } = *plan;
        let Killed {
            node: coordinator,
            group_coordinator,
            at: killed,
        } = *killed;
        let (caught_up, coordinator_at_end, life) = (end.caught_up, &end.coordinator, &end.life);
        let (state, wrong) = (&folded.state, &folded.wrong);
        let started = self.timeline.started;
        let s = &end.run.state;
        let first_commit = s.commits.first().copied().unwrap_or_default();
        let stall = longest_gap(&s.commits, first_commit, caught_up);
        let stall_back = longest_gap(&s.commits, back, caught_up);
        let typical = median_gap(&s.commits, first_commit, killed);
        let first_after_kill = first_commit_after(&s.commits, killed);
        let moved = s
            .leaders
            .iter()
            .find(|&&(at, l)| at > killed && l >= 0 && l != coordinator)
            .copied();
        let returned = s
            .leaders
            .iter()
            .find(|&&(at, l)| at > back && l == coordinator)
            .copied();
        let after = |at: Option<(Duration, i32)>, from: Duration, what: &str| match at {
            Some((at, node)) => format!(
                "to node {node} {:.1} s after {what}{}",
                (at - from).as_secs_f64(),
                if at < produced.last_sent {
                    ""
                } else {
                    " (the load had ended)"
                }
            ),
            None => format!("no move seen after {what}"),
        };
        let tombstones = state.last.values().filter(|v| v.is_none()).count();
        let line = format!(
            "{NAME}: events produced {} ({groups} groups, {repeats} repeats), state records read {} \
             ({} groups: {} live, {tombstones} tombstones), mismatches {}; coordinator node \
             {coordinator} ({} the group's) killed at {:.1} s, moved {}, back {}; fold stalled \
             {:.1} s at most (first commit {} after the kill; after start-node at most {:.1} s; \
             typically {:.1} s between commits); transactions committed {} (mean {:.2} s), aborted \
             {}; materializer restarts {}; took {:.0} s",
            produced.sent,
            state.records,
            state.last.len(),
            state.last.len() - tombstones,
            wrong.len(),
            if group_coordinator == coordinator {
                "also"
            } else {
                "not"
            },
            killed.as_secs_f64(),
            after(moved, killed, "the kill"),
            after(returned, back, "start-node"),
            stall.as_secs_f64(),
            first_after_kill.map_or("never".into(), |at| format!(
                "{:.1} s",
                (at - killed).as_secs_f64()
            )),
            stall_back.as_secs_f64(),
            typical.as_secs_f64(),
            s.committed(),
            life.as_ref().map_or(f64::NAN, Life::mean_transaction),
            s.aborted(),
            restarts(&s.exits),
            started.elapsed().as_secs_f64()
        );
        self.timeline.note(&line);
        self.timeline.note(&format!(
            "the coordinator's partition, leader by time (s): {}; txn-coordinator at the end: node \
             {coordinator_at_end}; commits seen at (s): {}",
            s.leaders
                .iter()
                .map(|(at, l)| format!("{:.1}: {l}", at.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            s.commits
                .iter()
                .map(|at| format!("{:.1}", at.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        eprintln!("{line}");
        append_line(&self.logs.join("summary.txt"), &line);
        line
    }

    /// Every problem found, asserted at once, with the tally line.
    fn judge(
        &mut self,
        line: &str,
        plan: &Plan,
        killed: &Killed,
        produced: &Produced,
        end: &End,
        folded: &Folded,
    ) {
        let (wrong, life, run) = (&folded.wrong, &end.life, &end.run);
        let s = &run.state;
        let problems = &mut self.problems;
        if !wrong.is_empty() {
            problems.push(format!(
                "{} of {} groups differ from the model; first ones:\n{}",
                wrong.len(),
                plan.histories.truth.len(),
                wrong.iter().take(3).cloned().collect::<Vec<_>>().join("\n")
            ));
        }
        for exit in s.exits.iter().filter(|e| !e.planned) {
            problems.push(format!(
                "the materializer ended at {:.1} s, not as designed: {}",
                exit.at.as_secs_f64(),
                exit.how
            ));
        }
        match &run.last_exit {
            Some(status) if status.success() => {}
            other => problems.push(format!(
                "the materializer did not stop cleanly on SIGTERM: {other:?}"
            )),
        }
        if first_commit_after(&s.commits, killed.at).is_none() {
            problems.push("no fold transaction committed after the kill".into());
        }
        if s.exits.is_empty() {
            // One life: each event produced was folded once, and counted by what the fold did
            // with it; an event folded twice (a batch committed twice) or skipped would show here.
            match life {
                Some(l) if l.events() == produced.sent as u64 && l.invalid == 0 => {}
                other => problems.push(format!(
                    "the fold's event outcomes do not add up to the {} events produced: {other:?}",
                    produced.sent
                )),
            }
        }
        if !problems.is_empty() {
            problems.push(format!(
                "the materializer's log, with the timeline: {}",
                self.log.display()
            ));
        }
        assert!(
            problems.is_empty(),
            "{line}\n\nproblems:\n{}",
            problems.join("\n")
        );
    }

    /// What `kafka-cluster.sh txn-coordinator` says of the transactional id (a JVM tool: seconds).
    fn txn_coordinator(&self) -> String {
        cluster(&self.timeline, &["txn-coordinator", &self.transactional_id])
    }
}

/// A topic name whose group and transactional id have their coordinators where
/// `CLUSTER_STATE_GROUP_COORDINATOR` asks. The names decide the coordinators: the transactional
/// id's partition of the transaction log, and the group's of the offsets topic. By default both
/// sit on the node that is killed (by chance one run in three, with three nodes), the harder
/// case: the consumer group's coordinator moves too.
fn topic_by_its_coordinators(meta: &Metadata) -> String {
    let together = match std::env::var("CLUSTER_STATE_GROUP_COORDINATOR").as_deref() {
        Ok("other") => Some(false),
        Ok("any") => None,
        Ok("same") | Err(_) => Some(true),
        Ok(other) => panic!("CLUSTER_STATE_GROUP_COORDINATOR must be same, other or any, not {other}"),
    };
    let (txn_leaders, group_leaders) = (meta.leaders(TXN_LOG), meta.leaders(OFFSETS_LOG));
    (0..1000)
        .map(|_| format!("cluster-state-{}", uuid::Uuid::new_v4().simple()))
        .find(|topic| {
            let group = format!("{topic}.group");
            let t = txn_leaders
                [coordinator_partition(&format!("{group}-{INSTANCE}"), TXN_LOG_PARTITIONS) as usize];
            let g = group_leaders[coordinator_partition(&group, TXN_LOG_PARTITIONS) as usize];
            together.is_none_or(|same| (t == g) == same)
        })
        .expect("names for either case")
}

/// When the first commit after `at` was seen, if one was.
fn first_commit_after(commits: &[Duration], at: Duration) -> Option<Duration> {
    commits.iter().find(|&&c| c > at).copied()
}

/// The harness's pure reckoning, checked without a cluster.
#[test]
fn the_coordinator_partition_is_kafkas_and_the_stall_is_the_longest_gap() {
    // Kafka's partitionFor: Utils.abs(id.hashCode()) % partitions, with Java's String.hashCode
    // (values from Java 17 and Kafka 4.4's Utils.abs).
    assert_eq!(java_string_hash("hello"), 99_162_322);
    assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(coordinator_partition("polygenelubricants", 6), 0);
    assert_eq!(coordinator_partition("hello", 6), 4);
    assert_eq!(coordinator_partition("tim-relay-state-state-0", 6), 3);
    assert_eq!(
        coordinator_partition("cluster-state-0123456789abcdef.group-state-0", 6),
        5
    );
    let s = |secs: f64| Duration::from_secs_f64(secs);
    let commits = [s(1.0), s(1.2), s(5.0), s(5.1), s(9.5), s(9.6), s(30.0)];
    // From 4 s to 10 s: 5.1 -> 9.5 is the longest; the window's edges count up to a commit.
    assert_eq!(longest_gap(&commits, s(4.0), s(10.0)), s(9.5) - s(5.1));
    // The 9.6 -> 30 gap starts after the load ended at 20 s: only 9.6 -> 20 counts.
    assert_eq!(longest_gap(&commits, s(4.0), s(20.0)), s(20.0) - s(9.6));
    // No commit at all in the window: all of it.
    assert_eq!(longest_gap(&commits, s(10.0), s(12.0)), s(2.0));
    // An exit by design: on an error librdkafka makes fatal (exit 1). Giving up on an abort
    // is not one, nor is a panic.
    let fenced = KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::FencedInstanceId);
    let log = format!(
        "[2026-11-26T17:25:13Z INFO  actix_server::worker] shutting down idle worker\n\
         [2026-11-26T17:25:13Z ERROR tim_relay] materialize stopped: {}\n",
        StateError::Fatal(fenced)
    );
    let said = last_words(&log);
    assert!(said.starts_with("fatal Kafka error"), "{said}");
    assert!(fatal_by_design(Some(1), &said));
    assert!(!fatal_by_design(Some(101), &said));
    let gave_up = StateError::Kafka(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut));
    let gave_up = format!("materialize stopped: {gave_up}");
    assert!(!fatal_by_design(Some(1), &last_words(&gave_up)), "{gave_up}");
    assert_eq!(last_words("no such line\n"), "");
    // Gaps 0.2, 3.8, 0.1, 4.4, 0.1 up to 10 s: the median is 0.2 s.
    assert_eq!(median_gap(&commits, s(0.0), s(10.0)), s(1.2) - s(1.0));
    assert_eq!(median_gap(&commits, s(20.0), s(40.0)), Duration::ZERO);
}

/// Java's `String.hashCode`, which Kafka uses to pick a coordinator's partition.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The partition of `__transaction_state` (or `__consumer_offsets`) whose leader coordinates
/// transactional id (or group) `id`: Kafka's `Utils.abs(id.hashCode()) % partitions`.
fn coordinator_partition(id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

/// The longest time within `from..to` without a commit (commit times sorted).
fn longest_gap(commits: &[Duration], from: Duration, to: Duration) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for &at in commits.iter().filter(|&&at| at > from && at < to) {
        longest = longest.max(at - last);
        last = at;
    }
    longest.max(to.saturating_sub(last))
}

/// The median time between consecutive commits within `from..=to` (zero with fewer than two).
fn median_gap(commits: &[Duration], from: Duration, to: Duration) -> Duration {
    let within: Vec<Duration> = commits
        .iter()
        .copied()
        .filter(|&at| at >= from && at <= to)
        .collect();
    let mut gaps: Vec<Duration> = within.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    gaps.get(gaps.len() / 2).copied().unwrap_or_default()
}

fn logs_dir() -> PathBuf {
    let dir = std::env::var_os("CLUSTER_LOGS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(REPO).join("target/cluster-logs"));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// On a fresh cluster the transaction log and the offsets topic are created when a client first
/// asks for a coordinator, and their first coordinators need seconds to load. A transactional
/// producer and a consumer group of the harness's own get that done, so the names can be chosen
/// by where their coordinators are, and the materializer starts as on a cluster in use.
fn warm_up(bootstrap: &str, meta: &Metadata, timeline: &Timeline) {
    let t0 = Instant::now();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", "cluster-state-warm-up")
        .create()
        .expect("warm-up producer");
    producer
        .init_transactions(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{NAME}: no transaction coordinator within 60 s: {e}"));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "cluster-state-warm-up")
        .create()
        .expect("warm-up consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition(TXN_LOG, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumer
        .committed_offsets(list.clone(), Duration::from_secs(10))
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{NAME}: no group coordinator within 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    meta.wait_in_sync(&[TXN_LOG, OFFSETS_LOG], timeline);
    timeline.note(&format!(
        "transaction log and offsets topic ready ({:.1} s)",
        t0.elapsed().as_secs_f64()
    ));
}

fn create_events_topic(bootstrap: &str, topic: &str) {
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    create_topic(bootstrap, &new, &AdminOptions::new());
}

/// The state topic as the materializer created it (`KAFKA_STATE_REPLICATION_FACTOR=3`; its
/// `min.insync.replicas` is the cluster's default, 2): compacted, one partition per event
/// partition, three replicas.
fn check_state_topic(bootstrap: &str, state_topic: &str, problems: &mut Vec<String>) {
    let admin = admin(bootstrap);
    let described = block_on(admin.describe_configs(
        [&ResourceSpecifier::Topic(state_topic)],
        &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
    ));
    let config = |name: &str| -> Option<String> {
        described
            .as_ref()
            .ok()?
            .first()?
            .as_ref()
            .ok()?
            .get(name)?
            .value
            .clone()
    };
    let seen = (config("cleanup.policy"), config("min.insync.replicas"));
    if seen != (Some("compact".into()), Some("2".into())) {
        problems.push(format!(
            "the state topic has cleanup.policy, min.insync.replicas = {seen:?}, not compact, 2"
        ));
    }
    let meta = Metadata::new(bootstrap);
    match meta.partitions(state_topic, LOOKUP) {
        Ok(p) if p.len() == PARTITIONS as usize && p.iter().all(|p| p.replicas.len() == 3) => {}
        other => problems.push(format!(
            "the state topic is not {PARTITIONS} partitions of 3 replicas: {other:?}"
        )),
    }
}

/// The look-ups this test makes, from fresh metadata each time.
impl Metadata {
    /// The leader of each partition of `topic`, by partition (-1: none).
    fn leaders(&self, topic: &str) -> Vec<i32> {
        let mut p = self.partitions(topic, LOOKUP).unwrap_or_default();
        p.sort_by_key(|p| p.id);
        p.into_iter().map(|p| p.leader).collect()
    }

    /// The leader of `topic`/`partition` (-1: none, or no answer).
    fn leader(&self, topic: &str, partition: i32) -> i32 {
        self.partitions(topic, LOOKUP)
            .ok()
            .and_then(|p| p.into_iter().find(|p| p.id == partition))
            .map_or(-1, |p| p.leader)
    }

    /// The preferred replica (first of the replica list) of `topic`/`partition`.
    fn preferred(&self, topic: &str, partition: i32) -> i32 {
        self.partitions(topic, LOOKUP)
            .ok()
            .and_then(|p| p.into_iter().find(|p| p.id == partition))
            .and_then(|p| p.replicas.first().copied())
            .unwrap_or(-1)
    }

    /// Waits until every partition of `topics` has a leader and all three replicas in sync.
    fn wait_in_sync(&self, topics: &[&str], timeline: &Timeline) {
        let t0 = Instant::now();
        let mut last = String::new();
        while t0.elapsed() < Duration::from_secs(120) {
            let lagging: Vec<String> = topics
                .iter()
                .filter_map(|t| match self.partitions(t, LOOKUP) {
                    Ok(p) if !p.is_empty() && p.iter().all(|p| p.leader >= 0 && p.isr == 3) => None,
                    Ok(p) => Some(format!("{t}: {p:?}")),
                    Err(e) => Some(format!("{t}: {e}")),
                })
                .collect();
            if lagging.is_empty() {
                timeline.note(&format!(
                    "all replicas of {} in sync after {:.1} s",
                    topics.join(", "),
                    t0.elapsed().as_secs_f64()
                ));
                return;
            }
            last = lagging.join("; ");
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("{NAME}: replicas not all in sync within 120 s: {last}");
    }
}

/// Counts the records the cluster refused.
#[derive(Default)]
struct Acks {
    failed: std::sync::atomic::AtomicUsize,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.first_error
                .lock()
                .unwrap()
                .get_or_insert_with(|| e.to_string());
        }
    }
}

/// What the producer did.
struct Produced {
    sent: usize,
    failed: usize,
    first_error: Option<String>,
    /// When it handed over its last record, on the timeline.
    last_sent: Duration,
}

/// The background producer: the records in order, spread evenly over `over`, each retried by
/// the (idempotent) producer until acknowledged by two replicas, for up to 5 minutes.
struct Load {
    thread: std::thread::JoinHandle<Produced>,
    done: Arc<AtomicBool>,
}

impl Load {
    fn start(
        bootstrap: &str,
        topic: &str,
        records: Vec<(String, Vec<u8>)>,
        over: Duration,
        timeline: &Timeline,
    ) -> Load {
        let producer: BaseProducer<Acks> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "300000")
            .create_with_context(Acks::default())
            .expect("producer");
        let topic = topic.to_string();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let timeline = timeline.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let total = records.len();
            let mut next = 0;
            while next < total {
                let due = ((t0.elapsed().as_secs_f64() / over.as_secs_f64()) * total as f64).ceil() as usize;
                while next < due.min(total) {
                    let (key, payload) = &records[next];
                    let mut record = BaseRecord::to(&topic)
                        .key(key.as_str())
                        .payload(payload.as_slice());
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((_, r)) => {
                                producer.poll(Duration::from_millis(5));
                                record = r;
                            }
                        }
                    }
                    next += 1;
                }
                producer.poll(Duration::from_millis(50));
            }
            let last_sent = timeline.started.elapsed();
            timeline.note(&format!("the producer handed over its last event ({total})"));
            flag.store(true, Ordering::Relaxed);
            let flushed = producer.flush(Duration::from_secs(300));
            let acks = producer.context();
            let mut failed = acks.failed.load(Ordering::Relaxed);
            let mut first_error = acks.first_error.lock().unwrap().clone();
            if let Err(e) = flushed {
                failed = failed.max(1);
                first_error.get_or_insert_with(|| format!("flush: {e}"));
            }
            Produced {
                sent: total,
                failed,
                first_error,
                last_sent,
            }
        });
        Load { thread, done }
    }

    /// Every record handed over to the producer (not necessarily acknowledged yet).
    fn done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    fn finish(self, timeline: &Timeline) -> Produced {
        let produced = self.thread.join().expect("producer thread");
        timeline.note(&format!(
            "the producer is done: {} events, {} not acknowledged",
            produced.sent, produced.failed
        ));
        produced
    }
}

/// What the harness saw of the materializer, sampled every `SAMPLE`.
#[derive(Default, Clone)]
struct Seen {
    /// When each newly seen commit was seen (one entry per sample in which the count rose).
    commits: Vec<Duration>,
    /// Committed and aborted transactions of earlier lives (restarts), and of this one.
    committed_before: u64,
    aborted_before: u64,
    committed_now: u64,
    aborted_now: u64,
    /// Ends of the materializer other than the final SIGTERM.
    exits: Vec<Exit>,
    /// The leader of the coordinator's partition of the transaction log, when it changed.
    leaders: Vec<(Duration, i32)>,
}

impl Seen {
    fn committed(&self) -> u64 {
        self.committed_before + self.committed_now
    }

    fn aborted(&self) -> u64 {
        self.aborted_before + self.aborted_now
    }
}

/// An end of the materializer before the harness stopped it.
#[derive(Clone, Debug)]
struct Exit {
    at: Duration,
    how: String,
    /// One of the two ends production plans for: exit 1 on a fatal transactional error, or a
    /// restart by the liveness probe.
    planned: bool,
}

/// "0", or "1 (at 36.5 s: exit 1: ...)".
fn restarts(exits: &[Exit]) -> String {
    match exits.is_empty() {
        true => "0".into(),
        false => format!(
            "{} ({})",
            exits.len(),
            exits
                .iter()
                .map(|e| format!("at {:.1} s: {}", e.at.as_secs_f64(), e.how))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// What the last `materialize stopped:` line of a log says (the error it stopped on).
fn last_words(log: &str) -> String {
    log.lines()
        .rev()
        .find_map(|l| l.split_once("materialize stopped:"))
        .map_or(String::new(), |(_, e)| e.trim().chars().take(240).collect())
}

/// Whether the materializer ended as designed: exit 1 on an error librdkafka makes fatal
/// (`StateError::Fatal`: its producer fenced, for instance because the new coordinator aborted
/// a transaction that outlived its 10 s `transaction.timeout.ms`, or its consumer fenced:
/// FENCED_INSTANCE_ID). `said`: its [`last_words`].
fn fatal_by_design(code: Option<i32>, said: &str) -> bool {
    let fatal = StateError::Fatal(KafkaError::Canceled).to_string();
    let prefix = fatal.split(": ").next().unwrap_or_default();
    code == Some(1) && said.starts_with(prefix)
}

/// The materializer's counters at the end of its (last) life.
#[derive(Debug, Default)]
struct Life {
    applied: u64,
    duplicate: u64,
    stale: u64,
    not_state: u64,
    invalid: u64,
    transaction_seconds: f64,
    transactions: u64,
}

impl Life {
    fn events(&self) -> u64 {
        self.applied + self.duplicate + self.stale + self.not_state + self.invalid
    }

    fn mean_transaction(&self) -> f64 {
        self.transaction_seconds / self.transactions.max(1) as f64
    }
}

/// One life of the materializer: its process, its admin address, where its output starts in
/// the log, and its liveness probe.
struct Pod {
    child: Child,
    admin: String,
    log_from: u64,
    failed_probes: u32,
    next_probe: Instant,
}

impl Pod {
    /// What its last `materialize stopped:` line says, if it wrote one.
    fn last_words(&self, log: &std::path::Path) -> String {
        let text = std::fs::read(log).unwrap_or_default();
        last_words(&String::from_utf8_lossy(
            text.get(self.log_from as usize..).unwrap_or_default(),
        ))
    }

    /// Kubernetes' liveness probe of `deploy/state-statefulset.yaml`: `/healthz` every 10 s
    /// (3 s to answer); three failures in a row restart the container: SIGTERM, then SIGKILL
    /// after the 30 s grace period. Returns how it ended, if the probe ended it.
    fn probe(&mut self, timeline: &Timeline) -> Option<String> {
        if Instant::now() < self.next_probe {
            return None;
        }
        self.next_probe = Instant::now() + LIVENESS_PERIOD;
        let answer = http_get(&self.admin, "/healthz").unwrap_or_else(|| "no answer".into());
        if is_200(&answer) {
            self.failed_probes = 0;
            return None;
        }
        self.failed_probes += 1;
        let said = answer.lines().last().unwrap_or_default().to_string();
        timeline.note(&format!(
            "liveness probe failed ({} of 3): {said}",
            self.failed_probes
        ));
        if self.failed_probes < 3 {
            return None;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().expect("materializer status");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Some(format!(
            "restarted by the liveness probe ({said}): {}",
            describe(status)
        ))
    }
}

fn is_200(answer: &str) -> bool {
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}

/// The materializer, supervised as a StatefulSet would (restarted when it exits, and when its
/// liveness probe fails), with two samplers: its metrics and process, and the leader of its
/// coordinator's partition.
struct Fold {
    state: Arc<Mutex<Seen>>,
    child: Arc<Mutex<Option<Pod>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What the run left: the samples, and how the last life ended.
struct Run {
    state: Seen,
    last_exit: Option<ExitStatus>,
}

fn spawn_materializer(bootstrap: &str, topic: &str, group: &str, timeline: &Timeline) -> Pod {
    let admin = format!("127.0.0.1:{}", free_port());
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&timeline.logs[0])
        .expect("log file");
    let log_from = log.metadata().map_or(0, |m| m.len());
    let child = binary()
        .arg("materialize")
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_TOPIC", topic)
        .env("KAFKA_STATE_TOPIC", format!("{topic}.state"))
        .env("KAFKA_STATE_REPLICATION_FACTOR", "3")
        .env("RELAY_STATE_GROUP_ID", group)
        .env("RELAY_STATE_INSTANCE_ID", INSTANCE)
        .env("RELAY_ADMIN_LISTEN", &admin)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("tim-relay materialize starts");
    timeline.note(&format!(
        "materializer started (pid {}, admin {admin})",
        child.id()
    ));
    Pod {
        child,
        admin,
        log_from,
        failed_probes: 0,
        // Like a startup probe: the first check comes once it had time to start.
        next_probe: Instant::now() + Duration::from_secs(60),
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(1), _) => "exit 1".into(),
        (Some(101), _) => "exit 101: a panic".into(),
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("{status}"),
    }
}

impl Fold {
    fn start(bootstrap: &str, topic: &str, group: &str, txn_partition: i32, timeline: Timeline) -> Fold {
        let state = Arc::new(Mutex::new(Seen::default()));
        let child = Arc::new(Mutex::new(Some(spawn_materializer(
            bootstrap, topic, group, &timeline,
        ))));
        let stop = Arc::new(AtomicBool::new(false));
        let supervisor = {
            let (state, child, stop, timeline) =
                (state.clone(), child.clone(), stop.clone(), timeline.clone());
            let (bootstrap, topic, group) = (bootstrap.to_string(), topic.to_string(), group.to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut slot = child.lock().unwrap();
                    let Some(pod) = slot.as_mut() else {
                        break;
                    };
                    let ended = match pod.child.try_wait() {
                        Ok(Some(status)) => {
                            let said = pod.last_words(&timeline.logs[0]);
                            Some((
                                format!("{}: {said}", describe(status)),
                                fatal_by_design(status.code(), &said),
                            ))
                        }
                        _ => pod.probe(&timeline).map(|how| (how, true)),
                    };
                    if let Some((how, planned)) = ended {
                        let at = timeline.started.elapsed();
                        timeline.note(&format!("the materializer ended ({how}); restarting it in 1 s"));
                        {
                            let mut s = state.lock().unwrap();
                            s.exits.push(Exit { at, how, planned });
                            s.committed_before += std::mem::take(&mut s.committed_now);
                            s.aborted_before += std::mem::take(&mut s.aborted_now);
                        }
                        std::thread::sleep(Duration::from_secs(1));
                        *slot = Some(spawn_materializer(&bootstrap, &topic, &group, &timeline));
                        continue;
                    }
                    let admin = pod.admin.clone();
                    drop(slot);
                    if let Some(text) = http_get(&admin, "/metrics") {
                        let committed =
                            metric(&text, "tim_relay_state_transactions_total{outcome=\"committed\"}");
                        let aborted =
                            metric(&text, "tim_relay_state_transactions_total{outcome=\"aborted\"}");
                        let mut s = state.lock().unwrap();
                        if let Some(c) = committed.filter(|&c| c > s.committed_now) {
                            s.committed_now = c;
                            s.commits.push(timeline.started.elapsed());
                        }
                        if let Some(a) = aborted {
                            s.aborted_now = a;
                        }
                    }
                    std::thread::sleep(SAMPLE);
                }
            })
        };
        let sampler = {
            let (state, stop, timeline) = (state.clone(), stop.clone(), timeline.clone());
            let meta = Metadata::new(bootstrap);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let leader = meta.leader(TXN_LOG, txn_partition);
                    let mut s = state.lock().unwrap();
                    if s.leaders.last().map(|&(_, l)| l) != Some(leader) {
                        s.leaders.push((timeline.started.elapsed(), leader));
                        drop(s);
                        timeline.note(&format!(
                            "partition {txn_partition} of {TXN_LOG} (the coordinator): leader {leader}"
                        ));
                    } else {
                        drop(s);
                    }
                    std::thread::sleep(SAMPLE);
                }
            })
        };
        Fold {
            state,
            child,
            stop,
            threads: vec![supervisor, sampler],
        }
    }

    /// Waits up to `within` until `until` holds for what was seen.
    fn wait(&self, within: Duration, until: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if until(&self.state.lock().unwrap()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// `/readyz` answers 200 (joined the group, partitions rebuilt) within `within`.
    fn wait_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let admin = self.child.lock().unwrap().as_ref().map(|p| p.admin.clone());
            if admin
                .and_then(|a| http_get(&a, "/readyz"))
                .is_some_and(|r| is_200(&r))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// The current life's counters.
    fn life(&self) -> Option<Life> {
        let admin = self.child.lock().unwrap().as_ref()?.admin.clone();
        let text = http_get(&admin, "/metrics")?;
        let n = |o: &str| metric(&text, &format!("tim_relay_state_events_total{{outcome=\"{o}\"}}"));
        let seconds = text
            .lines()
            .find(|l| l.starts_with("tim_relay_state_transaction_duration_seconds_sum "))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())?;
        Some(Life {
            applied: n("applied")?,
            duplicate: n("duplicate")?,
            stale: n("stale")?,
            not_state: n("not_state")?,
            invalid: n("invalid")?,
            transaction_seconds: seconds,
            transactions: metric(&text, "tim_relay_state_transaction_duration_seconds_count ")?,
        })
    }

    /// Stops the samplers, then the materializer (SIGTERM, as Kubernetes does), and waits for it.
    fn stop(mut self, timeline: &Timeline) -> Run {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut last_exit = None;
        if let Some(Pod { mut child, .. }) = self.child.lock().unwrap().take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last_exit = Some(status);
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if last_exit.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            timeline.note(&format!("the materializer stopped on SIGTERM: {last_exit:?}"));
        }
        let state = self.state.lock().unwrap().clone();
        Run { state, last_exit }
    }
}

impl Drop for Fold {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(Pod { mut child, .. }) = self.child.lock().map(|mut c| c.take()).ok().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn metric(text: &str, line_start: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn http_get(address: &str, path: &str) -> Option<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// Waits until the consumer group's committed offsets reach the end of every partition; when
/// that was seen, on the timeline.
fn wait_caught_up(
    bootstrap: &str,
    topic: &str,
    group: &str,
    within: Duration,
    timeline: &Timeline,
) -> Duration {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let mut list = TopicPartitionList::new();
        let mut ends = Vec::new();
        for p in 0..PARTITIONS {
            list.add_partition(topic, p);
            ends.push(
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .map_or(i64::MAX, |w| w.1),
            );
        }
        let behind: i64 = match consumer.committed_offsets(list, Duration::from_secs(10)) {
            Ok(c) => c
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => ends[e.partition() as usize].saturating_sub(o),
                    _ => ends[e.partition() as usize],
                })
                .fold(0i64, i64::saturating_add),
            Err(_) => i64::MAX,
        };
        if behind == 0 {
            timeline.note(&format!(
                "every event folded ({:.1} s after the load ended)",
                t0.elapsed().as_secs_f64()
            ));
            return timeline.started.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "{NAME}: the materializer did not fold every event within {within:?}: {behind} behind"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn read_state(bootstrap: &str, state: &str) -> StateRead {
    support::state_model::read_state(bootstrap, state, PARTITIONS, Duration::from_secs(120))
}

/// The groups whose folded state differs from the model, each with both versions.
fn compare(state: &HashMap<String, Option<Value>>, histories: &Histories) -> Vec<String> {
    let mut wrong = Vec::new();
    for (group_id, truth) in &histories.truth {
        let folded = state.get(group_id).cloned().flatten().map(|d| Truth::of(&d));
        if &folded != truth {
            wrong.push(format!("{group_id}:\n  folded {folded:?}\n  truth  {truth:?}"));
        }
    }
    wrong.sort();
    wrong
}
