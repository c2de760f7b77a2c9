//! What `tests/cluster.rs` and `tests/cluster_state.rs` both need of the three-node cluster:
//! one scenario at a time, and `scripts/kafka-cluster.sh`. Included by both with `#[path]`.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Stdio};

/// The repository: `scripts/kafka-cluster.sh` is found from it.
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// One scenario at a time on the cluster, also when the test threads are not limited to one:
/// the lock file `cluster-test.lock` in `dir`, which both test crates use.
pub fn lock_cluster(dir: &Path) -> std::fs::File {
    let path = dir.join("cluster-test.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("lock file");
    if file.try_lock().is_err() {
        eprintln!(
            "another cluster scenario holds {}; waiting for it",
            path.display()
        );
        file.lock().expect("lock the cluster");
    }
    file
}

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
