//! One sweep: list every group of the app, read each from Tencent, compare it with the state
//! topic, and publish what differs (docs/reconcile.md, "The sweep").

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::budget::Api;
use super::client::{CallError, Client};
use super::config::ReconcileConfig;
use super::digest::{self, Digest, Known1};
use super::publish::Publisher;
use super::read::{now_ms, Read, Reader, BATCH, SKEW_MARGIN_MS};
use super::rest_error::ConfigFault;
use super::tencent::{self, TencentGroup};

/// Batches read at once: enough to keep the budget busy while calls take their time.
const CONCURRENT_BATCHES: usize = 8;
/// Groups per `get_appid_group_list` page: Tencent's most.
const LIST_LIMIT: u64 = 10_000;
/// Tries of one list page (each itself the client's tries) before the sweep gives up.
const LIST_TRIES: u32 = 5;

/// Told of a sweep's progress; the loop passes the metrics, `--once` nothing.
pub trait Observer: Send + Sync {
    fn progress(&self, _listed: u64, _read: u64, _total: u64) {}
    fn drift(&self, _field: &'static str) {}
    fn published(&self, _kind: &'static str) {}
    fn group_failed(&self) {}
}

/// Observes nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Why a sweep did not complete.
#[derive(Debug)]
pub enum SweepError {
    /// A configuration or authentication error: fix the variable it names.
    Stop(ConfigFault),
    /// The list could not be read, or Kafka failed: the next sweep tries again.
    Failed(String),
}

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepError::Stop(fault) => write!(f, "{fault}"),
            SweepError::Failed(why) => write!(f, "the sweep failed: {why}"),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub groups_seen: u64,
    pub snapshots: u64,
    pub destroyed: u64,
    pub failed: u64,
    pub drift: BTreeMap<&'static str, u64>,
    pub calls: Vec<(Api, u64)>,
    pub duration: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.calls.iter().map(|(_, n)| n).sum();
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|(a, n)| format!("{}={n}", a.name()))
            .collect();
        let drift: Vec<String> = self.drift.iter().map(|(k, n)| format!("{k}={n}")).collect();
        write!(
            f,
            "sweep done in {:.1} s: {} groups seen, {} snapshots and {} destroyed events published, \
             {} failed (left to the next sweep); REST calls {} ({total}, {:.3} per group); drift {}",
            self.duration.as_secs_f64(),
            self.groups_seen,
            self.snapshots,
            self.destroyed,
            self.failed,
            calls.join(" "),
            total as f64 / self.groups_seen.max(1) as f64,
            if drift.is_empty() {
                "none".to_string()
            } else {
                drift.join(" ")
            },
        )
    }
}

/// What the batches of one sweep share.
struct Shared {
    config: Arc<ReconcileConfig>,
    client: Arc<Client>,
    publisher: Arc<Publisher>,
    observer: Arc<dyn Observer>,
    no_attrs: Mutex<HashSet<String>>,
    custom_keys: Mutex<BTreeSet<String>>,
    seen: AtomicU64,
    snapshots: AtomicU64,
    destroyed: AtomicU64,
    failed: AtomicU64,
    drift: Mutex<BTreeMap<&'static str, u64>>,
    stop: Arc<AtomicBool>,
}

/// Runs one sweep.
pub async fn sweep(
    config: Arc<ReconcileConfig>,
    client: Arc<Client>,
    publisher: Arc<Publisher>,
    observer: Arc<dyn Observer>,
    stop: Arc<AtomicBool>,
) -> Result<Summary, SweepError> {
    let started = Instant::now();
    let calls_before = client.calls();
    // The first page first: a wrong key stops the sweep before anything is read or published.
    let mut page = list_page(&client, 0).await?;
    let state = config.state.clone();
    let mut known = tokio::task::spawn_blocking(move || digest::load(&state))
        .await
        .map_err(|e| SweepError::Failed(format!("reading the state topic: {e}")))?
        .map_err(|e| SweepError::Failed(format!("reading the state topic: {e}")))?;
    log::info!(
        "sweep started: {} groups at Tencent, {} in the state topic",
        page.total,
        known.groups.len()
    );
    let shared = Arc::new(Shared {
        config,
        client: client.clone(),
        publisher,
        observer,
        no_attrs: Mutex::default(),
        custom_keys: Mutex::new(std::mem::take(&mut known.custom_keys)),
        seen: AtomicU64::new(0),
        snapshots: AtomicU64::new(0),
        destroyed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        drift: Mutex::default(),
        stop,
    });
    let mut tasks: JoinSet<Result<(), SweepError>> = JoinSet::new();
    let mut listed = 0u64;
    loop {
        listed += page.ids.len() as u64;
        let ids = std::mem::take(&mut page.ids);
        for chunk in ids.chunks(BATCH) {
            let batch: Vec<(String, Option<Known1>)> = chunk
                .iter()
                .map(|id| (id.clone(), known.groups.remove(id)))
                .collect();
            spawn_batch(&mut tasks, &shared, batch).await?;
            shared
                .observer
                .progress(listed, shared.seen.load(Ordering::Relaxed), page.total);
        }
        if page.next == 0 || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        page = list_page(&client, page.next).await?;
    }
    // Groups the state holds and the list did not show: destroyed (a lost callback), or
    // created after the list passed them.
    let unlisted: Vec<(String, Option<Known1>)> = known.groups.drain().map(|(id, k)| (id, Some(k))).collect();
    drop(known);
    for chunk in unlisted.chunks(BATCH) {
        spawn_batch(&mut tasks, &shared, chunk.to_vec()).await?;
    }
    while let Some(done) = tasks.join_next().await {
        joined(done)?;
    }
    shared
        .observer
        .progress(listed, shared.seen.load(Ordering::Relaxed), listed);
    let after = client.calls();
    let drift = shared.drift.lock().expect("drift lock").clone();
    Ok(Summary {
        groups_seen: shared.seen.load(Ordering::Relaxed),
        snapshots: shared.snapshots.load(Ordering::Relaxed),
        destroyed: shared.destroyed.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        drift,
        calls: after
            .iter()
            .zip(calls_before.iter())
            .map(|((a, n), (_, m))| (*a, n - m))
            .collect(),
        duration: started.elapsed(),
    })
}

/// Starts a batch once fewer than [`CONCURRENT_BATCHES`] run; a stop from a finished one ends
/// the sweep, and the batches still running are dropped (aborted) with the set.
async fn spawn_batch(
    tasks: &mut JoinSet<Result<(), SweepError>>,
    shared: &Arc<Shared>,
    batch: Vec<(String, Option<Known1>)>,
) -> Result<(), SweepError> {
    while tasks.len() >= CONCURRENT_BATCHES {
        if let Some(done) = tasks.join_next().await {
            joined(done)?;
        }
    }
    let shared = shared.clone();
    tasks.spawn(async move { shared.batch(batch).await });
    Ok(())
}

fn joined(done: Result<Result<(), SweepError>, tokio::task::JoinError>) -> Result<(), SweepError> {
    done.map_err(|e| SweepError::Failed(format!("a batch panicked: {e}")))?
}

struct Page {
    ids: Vec<String>,
    total: u64,
    next: u64,
}

async fn list_page(client: &Client, next: u64) -> Result<Page, SweepError> {
    let body = json!({ "Limit": LIST_LIMIT, "Next": next });
    let mut tries = 0;
    let answer = loop {
        tries += 1;
        match client.call(Api::GetAppidGroupList, &body).await {
            Ok(answer) => break answer,
            Err(CallError::Stop(fault)) => return Err(SweepError::Stop(fault)),
            Err(e) if tries >= LIST_TRIES => {
                return Err(SweepError::Failed(format!("get_appid_group_list: {e}")))
            }
            Err(e) => {
                log::warn!("get_appid_group_list failed ({e}); trying again in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let ids = answer
        .get("GroupIdList")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|g| g.get("GroupId").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Page {
        ids,
        total: answer.get("TotalCount").and_then(Value::as_u64).unwrap_or(0),
        next: answer.get("Next").and_then(Value::as_u64).unwrap_or(0),
    })
}

impl Shared {
    async fn batch(&self, batch: Vec<(String, Option<Known1>)>) -> Result<(), SweepError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        let reader = Reader {
            client: &self.client,
            rules: self.config.state.rules,
            no_attrs: &self.no_attrs,
            custom_keys: &self.custom_keys,
        };
        let reads = reader.read(&ids).await.map_err(SweepError::Stop)?;
        for ((id, read), (_, known)) in reads.into_iter().zip(batch) {
            self.settle(&id, read, known).await?;
        }
        Ok(())
    }

    /// Compares one group with its document and publishes what differs.
    async fn settle(&self, id: &str, read: Read, known: Option<Known1>) -> Result<(), SweepError> {
        let sdk_app_id = self.config.sdk_app_id;
        let received_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let topic = &self.config.state.shared.topic;
        match read {
            Read::Failed(why) => {
                log::warn!("group {id:?} left to the next sweep: {why}");
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.observer.group_failed();
            }
            Read::Gone => {
                if let Some(known) = known {
                    let s = now_ms().saturating_sub(SKEW_MARGIN_MS);
                    let event =
                        tencent::destroyed(sdk_app_id, id, known.group_type.as_deref(), s, &received_at);
                    self.count_drift(&["destroyed"]);
                    self.send(&event, topic, "destroyed", &self.destroyed).await?;
                }
            }
            Read::Group(group) => {
                self.seen.fetch_add(1, Ordering::Relaxed);
                let rules = self.config.state.rules;
                let snapshot = group.snapshot(sdk_app_id, &received_at, rules);
                let Some(truth) = TencentGroup::as_document(&snapshot, rules) else {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                };
                let differs = match &known {
                    None => vec!["missing"],
                    Some(k) => k.digest.differences(&Digest::of(&truth)),
                };
                if !differs.is_empty() {
                    self.count_drift(&differs);
                    self.send(&snapshot, topic, "snapshot", &self.snapshots).await?;
                }
            }
        }
        Ok(())
    }

    fn count_drift(&self, fields: &[&'static str]) {
        let mut drift = self.drift.lock().expect("drift lock");
        for f in fields {
            *drift.entry(f).or_default() += 1;
            self.observer.drift(f);
        }
    }

    async fn send(
        &self,
        event: &Value,
        topic: &str,
        kind: &'static str,
        count: &AtomicU64,
    ) -> Result<(), SweepError> {
        match self.publisher.publish(&tencent::record(event, topic)).await {
            Ok(()) => {
                count.fetch_add(1, Ordering::Relaxed);
                self.observer.published(kind);
                Ok(())
            }
            Err(why) if self.stop.load(Ordering::Relaxed) => Err(SweepError::Failed(why)),
            Err(why) => {
                log::warn!("group {:?} left to the next sweep: {why}", event.get("group_id"));
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.observer.group_failed();
                Ok(())
            }
        }
    }
}
