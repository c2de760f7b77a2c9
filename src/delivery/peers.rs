//! Order across replicas (`RELAY_PEERS`): a relay does not let an event reach Kafka before an
//! older event that another replica still holds in its spool.
//!
//! Tencent posts every callback of an app to one address, and a load balancer cannot route by
//! GroupId, which travels in the body: consecutive callbacks of one group reach different
//! replicas. While Kafka takes records, each callback is in the topic before it is answered, so
//! the next one cannot overtake it. When Kafka falters, a replica answers from its spool, and
//! without this module its spool later raced the other replicas' spools and direct sends.
//!
//! Each relay serves the answer time of the oldest event in its spool on its admin listener
//! (`GET /spool/head`) and polls its peers' every [`POLL`]. The earliest head among the peers
//! it waits for is the *hold*: an event answered at `t` goes to Kafka (directly or from the
//! spool) only when `t < hold + slack`, that is once every peer has forwarded what it answered
//! more than the slack before `t`. Events answered closer together than that may still cross.
//! The slack is [`SLACK`], or [`SLACK_SHARE`] of the hold's age if that is more: after a long
//! outage the replicas forward in step by at least that much answer time per round, so an
//! hour's backlog takes minutes, not another hour, at the price of coarser order within it.
//!
//! A peer is not waited for when it has not answered for [`GONE_AFTER`] (it crashed or is
//! stopping: what it spooled is forwarded when it starts again, and may then land behind newer
//! events), nor when its head has not moved for `RELAY_PEER_MAX_WAIT_MS` while this relay could
//! have sent and had nothing in flight (the peer cannot reach Kafka: waiting longer would stall
//! every replica for one sick one). A relay with records of its own in flight does not count:
//! both may wait on the same partition's new leader.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::owner::{Member, Members};
use super::Relay;
use crate::delivery::spool::now_ms;
use crate::ops::metrics::PeerMetrics;

/// How often each peer is asked for its spool's head.
pub const POLL: Duration = Duration::from_millis(10);
/// Events of one group answered by different replicas at least this far apart reach the topic in
/// the order they were answered. Also the clock difference between replicas that is tolerated.
pub const SLACK: Duration = Duration::from_millis(250);
/// The slack grows to this share (1/40) of the hold's age: 750 ms for events that waited 30 s.
pub const SLACK_SHARE: u64 = 40;
/// A peer that has not answered for this long is not waited for.
pub const GONE_AFTER: Duration = Duration::from_secs(1);
/// How often `RELAY_PEERS` is resolved again (a headless Service's addresses follow its pods);
/// between, the addresses found last are asked.
const RESOLVE_EVERY: Duration = Duration::from_secs(2);
/// How long one poll may take.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(250);

/// What `GET /spool/head` answers.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    /// Random per process: a relay finds itself among the addresses `RELAY_PEERS` resolves to.
    pub instance: String,
    /// When the oldest event still in the spool was answered (ms since the epoch); `None`: empty.
    pub oldest_ms: Option<u64>,
    /// The relay is shutting down: it owns no group any more (absent from older relays: false).
    #[serde(default)]
    pub stopping: bool,
}

/// What this relay knows of one peer.
struct View {
    instance: String,
    stopping: bool,
    oldest_ms: Option<u64>,
    answered: Instant,
    /// How long its head has stayed where it is while this relay could reach Kafka.
    stuck_for: Duration,
    /// Logged once per stall.
    given_up: bool,
}

/// The peers this relay waits for, and the hold the request path and the forwarder read.
pub struct Peers {
    instance: String,
    targets: Vec<String>,
    max_wait: Duration,
    /// The hold in ms since the epoch; 0: none.
    hold_ms: AtomicU64,
    /// Woken when the hold moves, so a held forwarder sends at once.
    moved: Notify,
    /// Set by the forwarder: it has nothing in flight, and a peer's hold is all that keeps it
    /// from sending. Only then does a peer's standing spool count as the peer's fault: with a
    /// record of its own in flight this relay may be stuck on the same partition leader.
    blocked: AtomicBool,
    /// The replicas that own groups now (this one among them), for [`Peers::owner_of`].
    members: RwLock<Members>,
    /// Set when this relay starts to shut down; its peers then take over its groups.
    stopping: AtomicBool,
    pub metrics: PeerMetrics,
}

impl Peers {
    /// `targets`: `host:port` of the peers' admin listeners; none: order is not coordinated.
    pub fn new(targets: Vec<String>, max_wait: Duration, metrics: PeerMetrics) -> Arc<Self> {
        let instance = uuid::Uuid::new_v4().to_string();
        Arc::new(Self {
            members: RwLock::new(Members::new(vec![Member::new(instance.clone(), None)])),
            stopping: AtomicBool::new(false),
            instance,
            targets,
            max_wait,
            hold_ms: AtomicU64::new(0),
            moved: Notify::new(),
            blocked: AtomicBool::new(false),
            metrics,
        })
    }

    pub fn enabled(&self) -> bool {
        !self.targets.is_empty()
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// From now on this relay owns no group: its peers see it stopping on their next poll.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The admin listener of the replica that owns `group`, when that is not this relay (see
    /// [`super::owner`]). Without peers, or while this relay stops, it is always this relay.
    pub fn owner_of(&self, group: &str) -> Option<SocketAddr> {
        if !self.enabled() || self.is_stopping() {
            return None;
        }
        let members = self.members.read().unwrap_or_else(|e| e.into_inner());
        members.owner(group).and_then(|m| m.addr)
    }

    /// How many replicas own groups now, this one included.
    pub fn members(&self) -> usize {
        self.members.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The earliest head among the peers waited for (ms since the epoch), if any.
    pub fn hold(&self) -> Option<u64> {
        match self.hold_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// Whether an event answered at `at_ms` may go to Kafka now.
    pub fn may_send(&self, at_ms: u64) -> bool {
        self.may_send_at(at_ms, now_ms())
    }

    fn may_send_at(&self, at_ms: u64, now_ms: u64) -> bool {
        self.hold().is_none_or(|hold| {
            let slack = (SLACK.as_millis() as u64).max(now_ms.saturating_sub(hold) / SLACK_SHARE);
            at_ms < hold + slack
        })
    }

    /// The forwarder says whether only a peer's hold keeps it from sending (see `blocked`).
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::Release);
    }

    /// Resolves when the hold moves (never, without peers).
    pub async fn moved(&self) {
        self.moved.notified().await
    }

    /// Whether an event answered now may go straight to Kafka.
    pub fn may_send_now(&self) -> bool {
        self.hold().is_none() || self.may_send(now_ms())
    }

    /// Asks every peer for its head every [`POLL`] until the process ends.
    pub async fn watch_forever(self: Arc<Self>, relay: Relay) {
        let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
            Ok(client) => client,
            Err(e) => return log::error!("cannot poll the peers (RELAY_PEERS): {e}"),
        };
        let mut views = Views::default();
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let mut resolved: Option<Instant> = None;
        let mut last = Instant::now();
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let elapsed = last.elapsed();
            last = Instant::now();
            if resolved.is_none_or(|at| at.elapsed() >= RESOLVE_EVERY) {
                addrs.clear();
                for target in &self.targets {
                    match tokio::net::lookup_host(target.as_str()).await {
                        Ok(found) => addrs.extend(found),
                        Err(e) => log::debug!("peer {target}: cannot resolve: {e}"),
                    }
                }
                resolved = Some(Instant::now());
            }
            let asked: Vec<_> = addrs
                .iter()
                .map(|&addr| (addr, tokio::spawn(ask(client.clone(), addr))))
                .collect();
            // A peer's spool standing still counts against it only while Kafka takes records
            // here and this relay has nothing of its own in flight that could be stuck the same way.
            let can_send = !relay.publisher.watch().is_down()
                && (relay.spool.is_empty() || self.blocked.load(Ordering::Acquire));
            for (addr, answer) in asked {
                if let Ok(Some(head)) = answer.await {
                    if head.instance != self.instance {
                        views.observe(addr, head, Instant::now(), elapsed, can_send);
                    }
                }
            }
            let verdict = views.verdict(Instant::now(), self.max_wait);
            for addr in &verdict.given_up {
                self.metrics.given_up.inc();
                log::warn!(
                    "peer {addr}: its spool has not moved for {:?} while Kafka takes records here; \
                     no longer waiting for it (its events may land behind newer ones)",
                    self.max_wait
                );
            }
            let hold = verdict.hold.unwrap_or(0);
            if self.hold_ms.swap(hold, Ordering::AcqRel) != hold {
                self.moved.notify_waiters();
            }
            self.set_members(verdict.members);
            self.metrics.reachable.set(verdict.reachable);
            self.metrics.holding.set(verdict.holding);
        }
    }
}

impl Peers {
    /// The peers that answered lately and are not stopping, and this relay.
    fn set_members(&self, mut peers: Vec<Member>) {
        peers.push(Member::new(self.instance.clone(), None));
        let members = Members::new(peers);
        let mut current = self.members.write().unwrap_or_else(|e| e.into_inner());
        if *current != members {
            log::info!(
                "replicas owning groups: {} (was {}); ownership of groups moves with them",
                members.len(),
                current.len()
            );
            *current = members;
        }
    }
}

/// What this relay knows of its peers, by address.
#[derive(Default)]
struct Views(HashMap<SocketAddr, View>);

/// What the views say now.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    hold: Option<u64>,
    reachable: i64,
    holding: i64,
    /// Peers no longer waited for since this verdict.
    given_up: Vec<SocketAddr>,
    /// Peers that answered lately and are not stopping: they own groups.
    members: Vec<Member>,
}

impl Views {
    /// A peer's answer. `elapsed`: time since the previous poll; `can_send`: whether Kafka takes
    /// this relay's records (a peer's head standing still counts only then).
    fn observe(&mut self, addr: SocketAddr, head: Head, now: Instant, elapsed: Duration, can_send: bool) {
        let oldest_ms = head.oldest_ms;
        let view = self.0.entry(addr).or_insert(View {
            instance: String::new(),
            stopping: false,
            oldest_ms,
            answered: now,
            stuck_for: Duration::ZERO,
            given_up: false,
        });
        if oldest_ms != view.oldest_ms || oldest_ms.is_none() {
            if view.given_up {
                log::info!("peer {addr}: its spool moves again; waiting for its older events again");
            }
            view.stuck_for = Duration::ZERO;
            view.given_up = false;
        } else if can_send {
            view.stuck_for += elapsed;
        }
        view.oldest_ms = oldest_ms;
        view.answered = now;
        view.instance = head.instance;
        view.stopping = head.stopping;
    }

    fn verdict(&mut self, now: Instant, max_wait: Duration) -> Verdict {
        // Addresses of pods long gone are forgotten.
        self.0
            .retain(|_, v| now.duration_since(v.answered) < GONE_AFTER * 60);
        let mut verdict = Verdict {
            hold: None,
            reachable: 0,
            holding: 0,
            given_up: Vec::new(),
            members: Vec::new(),
        };
        for (addr, view) in self.0.iter_mut() {
            if now.duration_since(view.answered) >= GONE_AFTER {
                continue;
            }
            verdict.reachable += 1;
            if !view.stopping {
                verdict
                    .members
                    .push(Member::new(view.instance.clone(), Some(*addr)));
            }
            let Some(oldest) = view.oldest_ms else { continue };
            if view.stuck_for >= max_wait {
                if !view.given_up {
                    view.given_up = true;
                    verdict.given_up.push(*addr);
                }
                continue;
            }
            verdict.holding += 1;
            verdict.hold = Some(verdict.hold.map_or(oldest, |h| h.min(oldest)));
        }
        verdict
    }
}

async fn ask(client: reqwest::Client, addr: SocketAddr) -> Option<Head> {
    let response = client
        .get(format!("http://{addr}/spool/head"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    serde_json::from_slice(&response.bytes().await.ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{IntCounter, IntGauge};

    fn peers() -> Arc<Peers> {
        Peers::new(
            vec!["127.0.0.1:1".into()],
            Duration::from_secs(5),
            PeerMetrics {
                reachable: IntGauge::new("r", "r").unwrap(),
                holding: IntGauge::new("h", "h").unwrap(),
                given_up: IntCounter::new("g", "g").unwrap(),
            },
        )
    }

    #[test]
    fn without_a_hold_everything_may_go() {
        let p = peers();
        assert!(p.may_send(0));
        assert!(p.may_send(u64::MAX / 2));
    }

    fn head(oldest_ms: Option<u64>) -> Head {
        Head {
            instance: "peer".into(),
            oldest_ms,
            stopping: false,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_hold_is_the_oldest_head_among_peers_that_answered_lately() {
        let t0 = Instant::now();
        let mut views = Views::default();
        let tick = Duration::from_millis(25);
        views.observe(addr(1), head(Some(5_000)), t0, tick, true);
        views.observe(addr(2), head(Some(4_000)), t0, tick, true);
        views.observe(addr(3), head(None), t0, tick, true);
        let v = views.verdict(t0, Duration::from_secs(5));
        assert_eq!((v.hold, v.reachable, v.holding), (Some(4_000), 3, 2));
        // Peer 2 stops answering: after GONE_AFTER it no longer holds anyone back.
        let later = t0 + GONE_AFTER;
        views.observe(addr(1), head(Some(5_100)), later, tick, true);
        views.observe(addr(3), head(Some(6_000)), later, tick, true);
        let v = views.verdict(later, Duration::from_secs(5));
        assert_eq!((v.hold, v.reachable, v.holding), (Some(5_100), 2, 2));
    }

    #[test]
    fn the_members_are_the_peers_that_answered_lately_and_are_not_stopping() {
        let t0 = Instant::now();
        let mut views = Views::default();
        let tick = Duration::from_millis(10);
        let named = |instance: &str, stopping| Head {
            instance: instance.into(),
            oldest_ms: None,
            stopping,
        };
        views.observe(addr(1), named("one", false), t0, tick, true);
        views.observe(addr(2), named("two", true), t0, tick, true);
        views.observe(addr(3), named("three", false), t0, tick, true);
        let later = t0 + GONE_AFTER;
        views.observe(addr(1), named("one", false), later, tick, true);
        views.observe(addr(2), named("two", true), later, tick, true);
        let v = views.verdict(later, Duration::from_secs(5));
        assert_eq!(v.members, vec![Member::new("one".into(), Some(addr(1)))]);
        assert_eq!(v.reachable, 2, "a stopping peer is still waited for");
    }

    #[test]
    fn a_peer_whose_spool_stands_still_while_kafka_takes_records_here_is_given_up_once() {
        let max_wait = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut views = Views::default();
        let tick = Duration::from_millis(250);
        let mut now = t0;
        views.observe(addr(1), head(Some(5_000)), now, tick, true);
        // Kafka down here too: standing still is expected, it is waited for however long.
        for _ in 0..20 {
            now += tick;
            views.observe(addr(1), head(Some(5_000)), now, tick, false);
            assert_eq!(views.verdict(now, max_wait).hold, Some(5_000));
        }
        // Kafka back here, the peer's head does not move: 1 s later it is given up, once.
        let mut given_up = Vec::new();
        for _ in 0..8 {
            now += tick;
            views.observe(addr(1), head(Some(5_000)), now, tick, true);
            let v = views.verdict(now, max_wait);
            given_up.extend(v.given_up);
            assert_eq!(v.reachable, 1);
        }
        assert_eq!(given_up, vec![addr(1)]);
        assert_eq!(views.verdict(now, max_wait).hold, None);
        // Its head moves: waited for again.
        now += tick;
        views.observe(addr(1), head(Some(5_300)), now, tick, true);
        assert_eq!(views.verdict(now, max_wait).hold, Some(5_300));
    }

    #[test]
    fn an_event_waits_for_peers_events_answered_more_than_the_slack_before_it() {
        let p = peers();
        p.hold_ms.store(10_000, Ordering::Release);
        let now = 10_500;
        assert!(p.may_send_at(9_000, now), "older than the peer's oldest");
        assert!(p.may_send_at(10_249, now), "within the slack");
        assert!(
            !p.may_send_at(10_250, now),
            "answered after the peer's oldest by the slack"
        );
        assert!(!p.may_send_at(20_000, now));
    }

    #[test]
    fn the_slack_grows_with_the_age_of_the_hold() {
        let p = peers();
        p.hold_ms.store(10_000, Ordering::Release);
        // Held for 30 s: 750 ms.
        assert!(p.may_send_at(10_749, 40_000));
        assert!(!p.may_send_at(10_750, 40_000));
        // Held for an hour: 90 s.
        assert!(p.may_send_at(99_999, 3_610_000));
        assert!(!p.may_send_at(100_000, 3_610_000));
    }
}
