//! What `tests/cluster.rs` and `tests/cluster_state.rs` both need of the three-node cluster:
//! `scripts/kafka-cluster.sh`, a cluster that runs, its commands on the timeline, and fresh
//! metadata (leaders, replicas in sync).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::timeline::Timeline;
use super::REPO;

/// `bash scripts/kafka-cluster.sh ARGS...`: its stdout, or its stderr when it fails. The
/// `KAFKA_CLUSTER_*` variables of this process reach it, so it finds the cluster that
/// `scripts/cluster-faults.sh` started.
pub fn cluster_script(args: &[&str]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(format!("{REPO}/scripts/kafka-cluster.sh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run bash scripts/kafka-cluster.sh: {e}"))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        false => Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// The cluster's bootstrap list, once all three nodes run: a cluster that is not running at all
/// was not started for us (say how to run the tests); one with nodes down (an earlier scenario
/// failed half-way) is brought back with `start`.
pub fn cluster_ready() -> String {
    let status = Command::new("bash")
        .arg(format!("{REPO}/scripts/kafka-cluster.sh"))
        .arg("status")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .and_then(|s| s.code());
    match status {
        Some(0) => {}
        Some(3) => panic!(
            "the three-node cluster is not running. Run these tests with \
             `bash scripts/cluster-faults.sh` (it starts and stops the cluster)."
        ),
        _ => {
            if let Err(e) = cluster_script(&["start"]) {
                panic!("kafka-cluster.sh start failed:\n{e}");
            }
        }
    }
    cluster_script(&["bootstrap"]).expect("kafka-cluster.sh bootstrap")
}

/// A lifecycle or look-up command of `kafka-cluster.sh`, on the timeline; a failure panics
/// (the scenario cannot go on as designed).
pub fn cluster(timeline: &Timeline, args: &[&str]) -> String {
    let t0 = Instant::now();
    match cluster_script(args) {
        Ok(out) => {
            timeline.note(&format!(
                "kafka-cluster.sh {} ({:.1} s){}",
                args.join(" "),
                t0.elapsed().as_secs_f64(),
                if out.is_empty() {
                    String::new()
                } else {
                    format!(": {out}")
                }
            ));
            out
        }
        Err(e) => panic!(
            "{}: kafka-cluster.sh {} failed:\n{e}",
            timeline.name,
            args.join(" ")
        ),
    }
}

/// One partition in the metadata.
#[derive(Debug)]
pub struct Partition {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: usize,
}

/// Metadata look-ups, from fresh metadata each time.
pub struct Metadata(BaseConsumer);

impl Metadata {
    pub fn new(bootstrap: &str) -> Self {
        Metadata(
            ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("allow.auto.create.topics", "false")
                .create()
                .expect("metadata client"),
        )
    }

    pub fn partitions(&self, topic: &str, within: Duration) -> Result<Vec<Partition>, String> {
        let metadata = self
            .0
            .fetch_metadata(Some(topic), within)
            .map_err(|e| e.to_string())?;
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or("topic not in the metadata")?;
        if let Some(e) = t.error() {
            return Err(format!("topic error {e:?}"));
        }
        Ok(t.partitions()
            .iter()
            .map(|p| Partition {
                id: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().len(),
            })
            .collect())
    }

    /// The partitions of `topic` that `node` leads.
    pub fn partitions_led_by(&self, topic: &str, node: i32, within: Duration) -> Vec<i32> {
        self.partitions(topic, within)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.leader == node)
            .map(|p| p.id)
            .collect()
    }
}
