//! The call log (every request the emulator received, with its API, arrival time and result)
//! and the rate limiter (per API, per app, a sliding one-second window).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tim_relay::reconcile::budget::Api;

/// What a call was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// HTTP 200 with this `ErrorCode` (0: OK; for `get_group_info`, the top-level code).
    Code(i64),
    /// An HTTP status other than 200 (injected 502/503, an outage).
    Http(u16),
}

impl Outcome {
    pub const OK: Outcome = Outcome::Code(0);
    /// Refused by the rate limit.
    pub const RATE_LIMITED: Outcome = Outcome::Code(60007);
}

/// One request.
#[derive(Debug, Clone)]
pub struct Call {
    /// None for a path that is none of the four APIs.
    pub api: Option<Api>,
    /// The path after `/v4/`.
    pub path: String,
    /// When it arrived (before any injected latency).
    pub at: Instant,
    pub outcome: Outcome,
    /// The `random` query parameter, when it was a 32-bit unsigned integer.
    pub random: Option<u32>,
}

/// Every call so far, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    pub calls: Vec<Call>,
}

impl CallLog {
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls to `api`.
    pub fn of(&self, api: Api) -> Vec<&Call> {
        self.calls.iter().filter(|c| c.api == Some(api)).collect()
    }

    /// How many calls each API received.
    pub fn by_api(&self) -> HashMap<Api, usize> {
        let mut counts = HashMap::new();
        for c in &self.calls {
            if let Some(api) = c.api {
                *counts.entry(api).or_default() += 1;
            }
        }
        counts
    }

    /// How many calls got each outcome (over all APIs).
    pub fn by_outcome(&self) -> BTreeMap<Outcome, usize> {
        let mut counts = BTreeMap::new();
        for c in &self.calls {
            *counts.entry(c.outcome).or_default() += 1;
        }
        counts
    }

    /// How many calls (to `api`, when given) got `outcome`.
    pub fn count(&self, api: Option<Api>, outcome: Outcome) -> usize {
        self.calls
            .iter()
            .filter(|c| api.is_none_or(|a| c.api == Some(a)) && c.outcome == outcome)
            .count()
    }

    /// The most calls, whatever their outcome, that arrived within any window of length
    /// `window`, however placed (`(t - window, t]`).
    pub fn max_calls_in_any_window(&self, window: Duration) -> usize {
        max_in_window(self.calls.iter().map(|c| c.at), window)
    }

    /// The same, for the calls to `api`.
    pub fn max_calls_in_any_window_for(&self, api: Api, window: Duration) -> usize {
        max_in_window(
            self.calls.iter().filter(|c| c.api == Some(api)).map(|c| c.at),
            window,
        )
    }
}

fn max_in_window(times: impl Iterator<Item = Instant>, window: Duration) -> usize {
    let mut times: Vec<Instant> = times.collect();
    times.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Tencent's limit per API: calls admitted in any one second.
#[derive(Debug)]
pub struct Limiter {
    limits: HashMap<Api, u32>,
    admitted: HashMap<Api, VecDeque<Instant>>,
}

impl Limiter {
    /// Each API at its limit: `get_appid_group_list` 1/s, the others 200/s; `get_group_attr`
    /// at `attr_limit` (its limit is unconfirmed; 200 is the spec's default for every API).
    pub fn new(attr_limit: u32) -> Limiter {
        let mut limits = HashMap::new();
        for api in Api::ALL {
            limits.insert(api, api.limit_per_second());
        }
        limits.insert(Api::GetGroupAttr, attr_limit);
        Limiter {
            limits,
            admitted: HashMap::new(),
        }
    }

    pub fn set_limit(&mut self, api: Api, per_second: u32) {
        self.limits.insert(api, per_second);
    }

    pub fn limit(&self, api: Api) -> u32 {
        self.limits[&api]
    }

    /// Whether a call to `api` arriving at `now` is within the limit: fewer than the limit
    /// were admitted in `(now - 1 s, now]`. Only admitted calls count against the limit, so a
    /// client that keeps calling while refused is let through again one second after its last
    /// admitted call.
    pub fn admit(&mut self, api: Api, now: Instant) -> bool {
        let limit = self.limits[&api] as usize;
        let window = self.admitted.entry(api).or_default();
        while window
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= limit {
            return false;
        }
        window.push_back(now);
        true
    }
}
