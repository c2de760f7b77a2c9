//! The steady stream of ordered callbacks of the fault and cluster tests: each worker owns a
//! slice of the groups and sends each group's next callback only after the previous one was
//! answered (or failed), so per group "the order the relay answered OK" is well defined. With
//! several relays, a group's callbacks go round robin between them, as a load balancer in front
//! of replicas does to Tencent's callbacks. A [`Pace`] with a burst sends several consecutive
//! callbacks of one group back to back (each after the previous answer, milliseconds apart), as
//! Tencent does when a bot or a batch acts on a group.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

pub const GROUPS: usize = 300;
pub const WORKERS: usize = 32;
/// Each worker's pause after a callback: 32 workers stay below ~300 callbacks/s, which leaves
/// this 2-core machine room for the brokers and the relays.
pub const PAUSE: Duration = Duration::from_millis(100);

/// The group id of group `g` of a test whose groups are named `prefix`.
pub fn group_id(prefix: &str, g: usize) -> String {
    format!("@TGS#{prefix}-{g}")
}

/// How a worker spaces its callbacks: `burst` consecutive callbacks of one group back to back
/// (round robin over the relays), then `pause` before the next group's.
#[derive(Clone, Copy)]
pub struct Pace {
    pub burst: u64,
    pub pause: Duration,
}

impl Default for Pace {
    /// One callback of a group at a time: a group's consecutive callbacks are a whole round of
    /// the worker's groups apart (about a second).
    fn default() -> Self {
        Pace {
            burst: 1,
            pause: PAUSE,
        }
    }
}

/// One callback attempt: which relay it went to, when, how long the answer took, and why it
/// was not answered HTTP 200 with ActionStatus OK (empty if it was).
pub struct Sent {
    pub group: usize,
    pub seq: u64,
    pub relay: usize,
    /// When it was sent, on the scenario's timeline (as in its notes).
    pub at: Duration,
    pub took: Duration,
    pub why: String,
}

impl Sent {
    pub fn ok(&self) -> bool {
        self.why.is_empty()
    }
}

/// How many callbacks were not answered OK, by reason (and relay, when there are several):
/// for the log, to tell faults apart.
pub fn not_ok_reasons(sent: &[Sent], relays: &[&str]) -> String {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for s in sent.iter().filter(|s| !s.ok()) {
        let key = match relays.len() > 1 {
            true => format!("relay {}: {}", relays[s.relay], s.why),
            false => s.why.clone(),
        };
        *reasons.entry(key).or_default() += 1;
    }
    format!("{reasons:?}")
}

/// The workers; stopped when dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Sent>>>,
}

impl Load {
    /// `urls`: one per relay. `start`: the timeline's start, for [`Sent::at`].
    pub fn start(rt: &Handle, urls: Vec<String>, prefix: &'static str, start: Instant) -> Load {
        Self::paced(rt, urls, prefix, start, Pace::default())
    }

    /// As [`Load::start`], spaced by `pace`.
    pub fn paced(rt: &Handle, urls: Vec<String>, prefix: &'static str, start: Instant, pace: Pace) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        // Longer than Tencent's 2 s, so a slow answer is measured rather than cut off.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("HTTP client");
        let workers = (0..WORKERS)
            .map(|w| {
                let groups: Vec<usize> = (w..GROUPS).step_by(WORKERS).collect();
                let stagger = pace.pause * w as u32 / WORKERS as u32;
                let worker = Worker {
                    pace,
                    client: client.clone(),
                    urls: urls.clone(),
                    prefix,
                    stop: stop.clone(),
                    start,
                };
                rt.spawn(worker.run(groups, stagger))
            })
            .collect();
        Load { stop, workers }
    }

    /// Stops the workers and returns every attempt they made.
    pub fn finish(mut self, rt: &Handle) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        let workers = std::mem::take(&mut self.workers);
        let results = rt.block_on(futures_util::future::join_all(workers));
        results
            .into_iter()
            .flat_map(|r| r.expect("load worker"))
            .collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Worker {
    pace: Pace,
    client: reqwest::Client,
    urls: Vec<String>,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    start: Instant,
}

impl Worker {
    async fn run(self, groups: Vec<usize>, stagger: Duration) -> Vec<Sent> {
        tokio::time::sleep(stagger).await;
        let mut sent = Vec::new();
        for round in 0.. {
            for &group in &groups {
                for seq in round * self.pace.burst..(round + 1) * self.pace.burst {
                    if self.stop.load(Ordering::Relaxed) {
                        return sent;
                    }
                    sent.push(self.send(group, seq).await);
                }
                tokio::time::sleep(self.pace.pause).await;
            }
        }
        sent
    }

    async fn send(&self, group: usize, seq: u64) -> Sent {
        // Round robin per group: consecutive callbacks of a group reach different relays.
        let relay = (group + seq as usize) % self.urls.len();
        let body = format!(
            r#"{{"GroupId":"{}","Name":"g{group}-s{seq}"}}"#,
            group_id(self.prefix, group)
        );
        let t0 = Instant::now();
        let at = t0 - self.start;
        let why = match self.client.post(&self.urls[relay]).body(body).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let answer: Value = r.json().await.unwrap_or_default();
                match status == 200 && answer["ActionStatus"] == "OK" {
                    true => String::new(),
                    false => format!("HTTP {status} ErrorCode {}", answer["ErrorCode"]),
                }
            }
            Err(e) if e.is_timeout() => "timeout".into(),
            Err(e) if e.is_connect() => "connection refused".into(),
            Err(_) => "connection error".into(),
        };
        Sent {
            group,
            seq,
            relay,
            at,
            took: t0.elapsed(),
            why,
        }
    }
}
