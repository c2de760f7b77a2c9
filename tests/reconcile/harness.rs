//! What every reconcile test stands on: the broker at `KAFKA_BOOTSTRAP_SERVERS`, fresh topics,
//! `tim-relay materialize` folding them, the Tencent emulator, the relay for callbacks, and
//! `tim-relay reconcile` as a child process.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use serde_json::Value;
use tokio::runtime::Runtime;

use crate::emulator::{diff_world, Config, Emulator, DEFAULT_MAX_TRACKED_MEMBERS};
use crate::support::broker::{bootstrap, create_topic, require_broker, Reader};
use crate::support::relay::{free_port, Relay};
use crate::support::state_model::read_state;
use crate::support::REPO;

pub const PARTITIONS: i32 = 6;
/// The callback token the relay checks and the emulator signs with.
pub const TOKEN: &str = "reconcile-test-callback-token";

/// One test's world: its topics, its materializer, its emulator, its logs.
pub struct Bench {
    pub name: String,
    pub topic: String,
    pub state_topic: String,
    pub emu: Emulator,
    pub rt: Runtime,
    pub http: reqwest::Client,
    pub log_dir: PathBuf,
    materializer: Option<Child>,
}

/// What one `reconcile --once` did.
pub struct Once {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Once {
    /// A figure of the summary line: the number just before `what` (`"snapshots"`,
    /// `"groups seen"`).
    pub fn figure(&self, what: &str) -> u64 {
        let at = self
            .stdout
            .find(&format!(" {what}"))
            .unwrap_or_else(|| panic!("no `{what}` in the summary: {}", self.stdout));
        let before = &self.stdout[..at];
        let digits: String = before.chars().rev().take_while(char::is_ascii_digit).collect();
        digits
            .chars()
            .rev()
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("no figure before `{what}`: {}", self.stdout))
    }

    /// REST calls of `api` in the summary (`get_group_attr=123`).
    pub fn calls(&self, api: &str) -> u64 {
        let key = format!("{api}=");
        self.stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&key))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{key}` in the summary: {}", self.stdout))
    }
}

impl Bench {
    pub fn new(name: &str, config: Config) -> Bench {
        require_broker();
        let topic = format!("__tim_reconcile_{name}_{}", uuid::Uuid::new_v4().simple());
        create_topic(
            &bootstrap(),
            &NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1)),
            &AdminOptions::new(),
        );
        let log_dir = PathBuf::from(REPO).join("target/reconcile-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let mut bench = Bench {
            name: name.into(),
            state_topic: format!("{topic}.state"),
            topic,
            emu: Emulator::start(config),
            rt: Runtime::new().expect("runtime"),
            http: reqwest::Client::new(),
            log_dir,
            materializer: None,
        };
        bench.start_materializer();
        bench
    }

    pub fn log(&self, what: &str) -> std::fs::File {
        let path = self.log_dir.join(format!("{}.{what}.log", self.name));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("log file")
    }

    fn base(&self, command: &mut Command) {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
            .env("KAFKA_TOPIC", &self.topic)
            .env("KAFKA_STATE_TOPIC", &self.state_topic)
            .env("RELAY_STATE_GROUP_ID", format!("{}.group", self.topic))
            .env("RELAY_STATE_INSTANCE_ID", "one")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
    }

    fn start_materializer(&mut self) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tim-relay"));
        self.base(&mut c);
        c.arg("materialize")
            .env("RELAY_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port()))
            .stdout(self.log("materialize"))
            .stderr(self.log("materialize"));
        self.materializer = Some(c.spawn().expect("tim-relay materialize starts"));
    }

    /// `tim-relay reconcile` with the emulator's app, this bench's topics and `env`.
    pub fn reconcile(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tim-relay"));
        self.base(&mut c);
        c.arg("reconcile").args(args);
        c.env("RELAY_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port()));
        c.env("RECONCILE_MAX_QPS", "200");
        for (k, v) in self.emu.env() {
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Runs `reconcile --once` to its end (at most 5 minutes).
    pub fn once(&self, env: &[(&str, &str)]) -> Once {
        let started = Instant::now();
        let child = self
            .reconcile(&["--once"], env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tim-relay reconcile starts");
        let waiter = std::thread::spawn(move || {
            let out = child.wait_with_output().expect("reconcile output");
            (out.status, out.stdout, out.stderr)
        });
        let deadline = started + Duration::from_secs(300);
        while !waiter.is_finished() {
            assert!(
                Instant::now() < deadline,
                "{}: reconcile --once ran over 5 minutes",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, stdout, stderr) = waiter.join().expect("waiter");
        let once = Once {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            took: started.elapsed(),
        };
        use std::io::Write;
        let _ = writeln!(self.log("reconcile"), "{}\n{}", once.stdout, once.stderr);
        once
    }

    /// Runs `reconcile --once` and asserts that it swept: exit 0 and a summary line.
    pub fn sweep(&self, env: &[(&str, &str)]) -> Once {
        let once = self.once(env);
        assert!(
            once.status.success() && once.stdout.contains("sweep done"),
            "{}: reconcile --once failed ({}):\n{}\n{}",
            self.name,
            once.status,
            once.stdout,
            once.stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
        eprintln!("{}: {}", self.name, once.stdout.trim());
        once
    }

    /// The state topic's live documents by `GroupId` (tombstones left out).
    pub fn states(&self) -> HashMap<String, Value> {
        read_state(
            &bootstrap(),
            &self.state_topic,
            PARTITIONS,
            Duration::from_secs(60),
        )
        .last
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
    }

    /// Waits (up to `within`) until every document equals the emulator's group; the remaining
    /// differences otherwise.
    pub fn converged(&self, within: Duration) -> Result<(), Vec<String>> {
        let deadline = Instant::now() + within;
        loop {
            let states = self.states();
            let diffs = self
                .emu
                .with_world(|w| diff_world(w, &states, DEFAULT_MAX_TRACKED_MEMBERS));
            if diffs.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(diffs);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Every event in the events topic.
    pub fn events(&self) -> Vec<Value> {
        let reader = Reader::new(&bootstrap(), &self.topic, &self.name);
        let partitions = reader.partitions();
        let mut out = Vec::new();
        reader
            .read(
                &partitions,
                Duration::from_secs(10),
                Duration::from_secs(60),
                |m| {
                    use rdkafka::message::Message;
                    out.push(
                        serde_json::from_slice(m.payload().expect("a payload")).expect("an event is JSON"),
                    );
                },
            )
            .expect("the events topic is read");
        out
    }

    /// A relay for this bench's topic, checking the callbacks' Sign with [`TOKEN`].
    pub fn relay(&self, label: &str) -> Relay {
        let log = self.log_dir.join(format!("{}.{label}.log", self.name));
        let mut relay = Relay::new(label, log, self.rt.handle().clone(), self.http.clone());
        let mut command = relay.command(&bootstrap(), &self.topic);
        command.env("TIM_CALLBACK_TOKEN", TOKEN);
        relay.start(command, &self.name);
        relay
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(mut child) = self.materializer.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Fails with the first differences, and how many there were.
pub fn assert_converged(bench: &Bench, within: Duration, after: &str) {
    if let Err(diffs) = bench.converged(within) {
        let shown: Vec<&String> = diffs.iter().take(25).collect();
        panic!(
            "{}: after {after}, {} differences between the state and Tencent, e.g.:\n{}",
            bench.name,
            diffs.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}
