//! The relay binary as a child process: its ports (kept across restarts, so a load keeps one
//! address), its spool dir, its log, its start until `/healthz` answers, and its ends (SIGKILL,
//! SIGTERM). Also what reads its `/metrics`.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

pub const BIN: &str = env!("CARGO_BIN_EXE_tim-relay");
pub const APP_ID: &str = "1400000000";
/// The callback every load sends: a group's info changed.
pub const CALLBACK_QUERY: &str = "SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterGroupInfoChanged\
    &contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with an empty environment but `PATH`.
pub fn binary() -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

/// `kill -<signal> <pid>`; fails the test when it cannot be sent.
pub fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} failed");
}

/// Waits up to `within` for the process to exit by itself (None: it still runs).
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(exit) = child.try_wait().expect("process status") {
            return Some(exit);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One relay under test; killed and reaped when dropped, also on panic.
pub struct Relay {
    /// "relay", or "relay A": how messages name it.
    pub label: String,
    pub port: u16,
    pub admin_port: u16,
    pub spool_dir: PathBuf,
    _spool: tempfile::TempDir,
    pub log: PathBuf,
    pub child: Option<Child>,
    rt: Handle,
    http: reqwest::Client,
}

impl Relay {
    /// Picks its ports and spool dir; `http` asks its admin listener.
    pub fn new(label: &str, log: PathBuf, rt: Handle, http: reqwest::Client) -> Relay {
        let spool = tempfile::tempdir().expect("spool dir");
        Relay {
            label: label.into(),
            port: free_port(),
            admin_port: free_port(),
            spool_dir: spool.path().to_path_buf(),
            _spool: spool,
            log,
            child: None,
            rt,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The relay's admin listener: `/healthz`, `/readyz`, `/metrics`, `/spool/dead`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// The relay's environment (also its subcommands'): app id, listeners, Kafka, spool, log.
    pub fn command(&self, bootstrap: &str, topic: &str) -> Command {
        let mut c = binary();
        c.env("TIM_SDK_APP_ID", APP_ID)
            .env("RELAY_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("RELAY_ADMIN_LISTEN", format!("127.0.0.1:{}", self.admin_port))
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .env("KAFKA_TOPIC", topic)
            .env("RELAY_SPOOL_DIR", &self.spool_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        c
    }

    /// Runs `command` with its output in the log and waits up to 30 s for `/healthz`; returns
    /// the pid. `scenario` names the run in a failure.
    pub fn start(&mut self, mut command: Command, scenario: &str) -> u32 {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = command
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("relay binary starts");
        let pid = child.id();
        // Owned at once, so any panic below still kills and reaps it.
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.answers("/healthz") {
                return pid;
            }
            if let Some(exit) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("relay status"))
            {
                panic!(
                    "{scenario}: {} exited at start ({exit}); see {}",
                    self.label,
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{scenario}: {} not healthy after 30 s; see {}",
                    self.label,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the admin listener answers `path` with 200.
    pub fn answers(&self, path: &str) -> bool {
        let answer = self
            .rt
            .block_on(async { self.http.get(self.admin_url(path)).send().await });
        answer.is_ok_and(|r| r.status() == 200)
    }

    /// Whether the process has ended (or was never started).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("relay status").is_some(),
            None => true,
        }
    }

    /// SIGKILL; how it ended (None: it was not running).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// SIGTERM, then up to 30 s for the relay to exit by itself (its own bounds: 5 s for
    /// in-flight callbacks, 10 s for the forwarder, 10 s for the flush); killed after that.
    /// Its exit code (None: it did not exit by itself, or was not running).
    pub fn terminate(&mut self, note: impl Fn(&str)) -> Option<i32> {
        let mut child = self.child.take()?;
        note("sending SIGTERM to the relay");
        signal(&child, "TERM");
        if let Some(exit) = wait_exit(&mut child, Duration::from_secs(30)) {
            note(&format!("relay exited after SIGTERM ({exit})"));
            return exit.code();
        }
        note("relay still running 30 s after SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The text of `/metrics` (None: unreadable).
    pub fn metrics(&self) -> Option<String> {
        self.admin_text("/metrics")
    }

    /// The text the admin listener answers for `path` (None: unreadable).
    pub fn admin_text(&self, path: &str) -> Option<String> {
        self.rt.block_on(async {
            let r = self.http.get(self.admin_url(path)).send().await.ok()?;
            r.text().await.ok()
        })
    }

    /// Every series of `name` whose labels include `labels`, with its value.
    pub fn metric_values(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(String, f64)> {
        self.metrics()
            .map(|t| series(&t, name, labels))
            .unwrap_or_default()
    }

    /// The sum of the matching series; None when there is none (or /metrics is unreadable).
    pub fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let values = self.metric_values(name, labels);
        (!values.is_empty()).then(|| values.iter().map(|(_, v)| v).sum())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Prometheus text format, read just enough: `name{labels} value` lines.
pub fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (n, set) = match key.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (key, ""),
            };
            if n != name {
                return None;
            }
            let has = |(k, v): &(&str, &str)| set.split(',').any(|p| p == format!("{k}=\"{v}\""));
            if !labels.iter().all(has) {
                return None;
            }
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}
