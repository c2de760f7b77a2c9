//! A scenario's clock: each step on stderr and in the logs of the processes under test, so the
//! harness's steps line up with their lines.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone)]
pub struct Timeline {
    pub name: String,
    pub started: Instant,
    pub logs: Vec<PathBuf>,
}

impl Timeline {
    /// Starts the clock; `logs` get the notes (earlier runs' logs are removed).
    pub fn new(name: &str, logs: Vec<PathBuf>) -> Timeline {
        for log in &logs {
            let _ = std::fs::remove_file(log);
        }
        Timeline {
            name: name.into(),
            started: Instant::now(),
            logs,
        }
    }

    /// How long the scenario has run.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn note(&self, what: &str) {
        let at = self.started.elapsed().as_secs_f64();
        eprintln!("[{at:6.1}s] {}: {what}", self.name);
        let now = humantime::format_rfc3339_millis(SystemTime::now());
        for log in &self.logs {
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(f, "[{now} HARNESS +{at:.1}s] {what}");
            }
        }
    }
}

/// Appends `line` to `path` (a run's summary file), ignoring failure.
pub fn append_line(path: &std::path::Path, line: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}
