//! The REST client: one call to Tencent's REST API made within the rules. Every call waits for
//! the rate budget, carries a fresh-enough UserSig and a new `random`, and its answer is sorted
//! by [`rest_error::classify`]: frequency errors raise the budget's backoff and are tried again,
//! transient ones are tried again after a pause, a refused UserSig is signed afresh once, and
//! what remains comes back to the sweep as a [`CallError`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::budget::{Api, BackoffPolicy, Budget};
use super::config::ReconcileConfig;
use super::rest_error::{classify, Class, ConfigFault, Envelope, Reply};
use super::usersig::UserSigCache;

/// How long one call may take: Tencent's own limit is 3 s, so a client waits longer.
const CALL_TIMEOUT: Duration = Duration::from_secs(6);
/// Tries of one call before the sweep hears that it failed (frequency and transient errors).
const ATTEMPTS: u32 = 4;
/// `TLS.expire` of the admin's UserSig: a day; the cache signs afresh after half of it.
const USERSIG_LIFETIME_SECS: u64 = 86_400;
/// The budget's window: Tencent's second and a twentieth, for the clocks (Tencent's second
/// is not ours exactly). Calls are counted by when they completed (`Budget::complete`), so
/// a call that left late or travelled slowly is still counted where Tencent counts it.
const SEND_WINDOW: Duration = Duration::from_millis(1050);
/// Tencent's "this group type has no attributes" (`get_group_attr`).
pub const NO_ATTRS: i64 = 10007;

/// Why a call gave no answer to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The operator must fix a variable: the sweep stops.
    Stop(ConfigFault),
    /// 10010 or 10015 for the whole call (one group's call).
    Gone(i64),
    /// 10018 or 10005: ask for fewer groups or fields.
    TooBig(i64),
    /// 10007 from `get_group_attr`.
    NoAttrs,
    /// Still failing after every try (the last reason): the groups of this call are counted as
    /// failed for this sweep.
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Stop(fault) => write!(f, "{fault}"),
            CallError::Gone(code) => write!(f, "group gone (Tencent error {code})"),
            CallError::TooBig(code) => write!(f, "answer too big (Tencent error {code})"),
            CallError::NoAttrs => write!(f, "the group type has no attributes (Tencent error 10007)"),
            CallError::Failed(why) => write!(f, "gave up after {ATTEMPTS} tries: {why}"),
        }
    }
}

/// Told of every call: its API, the label of its result (see [`result_label`]) and how long
/// it took. The runner passes the metrics here.
pub type CallObserver = Box<dyn Fn(Api, &'static str, Duration) + Send + Sync>;

/// The label of a call's result in metrics: `ok`, `back_off`, `retry`, `ask_for_less`,
/// `group_gone`, `no_attrs`, `stop` or `unknown`.
pub fn result_label(class: &Class, code: Option<i64>) -> &'static str {
    match class {
        _ if code == Some(NO_ATTRS) => "no_attrs",
        Class::Ok => "ok",
        Class::BackOff => "back_off",
        Class::Retry => "retry",
        Class::AskForLess => "ask_for_less",
        Class::GroupGone => "group_gone",
        Class::Stop(_) => "stop",
        Class::Unknown(_) => "unknown",
    }
}

pub struct Client {
    http: reqwest::Client,
    /// `{base}/v4/`.
    base: String,
    /// `sdkappid=…&identifier=…&contenttype=json`, URL-encoded.
    fixed_query: String,
    usersig: Mutex<UserSigCache>,
    budget: Mutex<Budget>,
    epoch: Instant,
    calls: [AtomicU64; 4],
    observer: Option<CallObserver>,
}

impl Client {
    pub fn new(config: &ReconcileConfig, observer: Option<CallObserver>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("tim-relay/", env!("CARGO_PKG_VERSION"), " reconcile"))
            .build()?;
        let fixed_query = form_urlencoded::Serializer::new(String::new())
            .append_pair("sdkappid", &config.sdk_app_id.to_string())
            .append_pair("identifier", &config.admin_identifier)
            .append_pair("contenttype", "json")
            .finish();
        Ok(Self {
            http,
            base: format!("{}/v4/", config.base_url),
            fixed_query,
            usersig: Mutex::new(UserSigCache::new(
                config.secret_key.clone(),
                config.admin_identifier.clone(),
                config.sdk_app_id,
                USERSIG_LIFETIME_SECS,
            )),
            budget: Mutex::new(
                Budget::new(config.max_qps, BackoffPolicy::default()).with_window(SEND_WINDOW),
            ),
            epoch: Instant::now(),
            calls: Default::default(),
            observer,
        })
    }

    /// Calls made so far (every try counts), by API, in [`Api::ALL`]'s order.
    pub fn calls(&self) -> [(Api, u64); 4] {
        Api::ALL.map(|api| (api, self.calls[api as usize].load(Ordering::Relaxed)))
    }

    /// Makes one call and returns its answer, after the tries its errors allow.
    pub async fn call(&self, api: Api, body: &Value) -> Result<Value, CallError> {
        let payload = serde_json::to_vec(body).expect("a JSON value serializes");
        let mut resigned = false;
        let mut last = String::new();
        let mut tries = 0;
        while tries < ATTEMPTS {
            tries += 1;
            self.wait_for_budget(api).await;
            let started = Instant::now();
            let flying = InFlight { client: self, api };
            let (class, code, value) = self.send(api, &payload).await;
            drop(flying);
            self.calls[api as usize].fetch_add(1, Ordering::Relaxed);
            if let Some(observe) = &self.observer {
                observe(api, result_label(&class, code), started.elapsed());
            }
            if code == Some(NO_ATTRS) && api == Api::GetGroupAttr {
                return Err(CallError::NoAttrs);
            }
            if class.raises_backoff() {
                let now = self.epoch.elapsed();
                self.budget.lock().expect("budget lock").on_frequency_error(now);
            }
            match class {
                Class::Ok => {
                    self.budget.lock().expect("budget lock").on_success();
                    return Ok(value.unwrap_or(Value::Null));
                }
                Class::GroupGone => return Err(CallError::Gone(code.unwrap_or_default())),
                Class::AskForLess => return Err(CallError::TooBig(code.unwrap_or_default())),
                Class::Stop(fault) if fault.worth_one_fresh_usersig() && !resigned => {
                    // A UserSig refused for its age (clock skew) is fixed by a fresh one; a
                    // wrong key is not, and the second refusal stops.
                    resigned = true;
                    tries -= 1;
                    self.usersig.lock().expect("usersig lock").invalidate();
                    last = fault.to_string();
                }
                Class::Stop(fault) => return Err(CallError::Stop(fault)),
                Class::Retry => {
                    last = describe(&class, code);
                    // Transient: a pause that grows with each try (0.5 s, 1 s, 2 s).
                    tokio::time::sleep(Duration::from_millis(250 << tries.min(4))).await;
                }
                Class::BackOff | Class::Unknown(_) => last = describe(&class, code),
            }
        }
        Err(CallError::Failed(last))
    }

    /// Waits until the budget lets a call of `api` start, and takes its place.
    async fn wait_for_budget(&self, api: Api) {
        loop {
            let now = self.epoch.elapsed();
            let wait = match self.budget.lock().expect("budget lock").try_acquire(api, now) {
                Ok(()) => return,
                Err(at) => at.saturating_sub(now),
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// One HTTP request: the class of its outcome, the code Tencent gave, and the answer.
    async fn send(&self, api: Api, payload: &[u8]) -> (Class, Option<i64>, Option<Value>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let usersig = self.usersig.lock().expect("usersig lock").get(now).to_string();
        let random = (uuid::Uuid::new_v4().as_u128() as u32).to_string();
        let query = form_urlencoded::Serializer::new(self.fixed_query.clone())
            .append_pair("usersig", &usersig)
            .append_pair("random", &random)
            .finish();
        let url = format!("{}{}?{query}", self.base, api.path());
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.to_vec());
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return (classify(Reply::Timeout), None, None),
            Err(_) => return (classify(Reply::Connection), None, None),
        };
        let status = response.status().as_u16();
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return (classify(Reply::Timeout), None, None),
            Err(_) => return (classify(Reply::Connection), None, None),
        };
        let class = classify(Reply::Http { status, body: &body });
        let code = (status == 200)
            .then(|| Envelope::parse(&body).ok().map(|e| e.code))
            .flatten();
        let value = matches!(class, Class::Ok)
            .then(|| serde_json::from_slice(&body).ok())
            .flatten();
        if matches!(class, Class::Ok) && value.is_none() {
            return (
                classify(Reply::Http {
                    status: 200,
                    body: b"",
                }),
                code,
                None,
            );
        }
        (class, code, value)
    }
}

/// A call let through by the budget and not yet answered: it completes when dropped, also
/// when the sweep is dropped mid-call (a stop, a failed sweep), so the loop's next sweep
/// never finds places held by calls that will not come back.
struct InFlight<'a> {
    client: &'a Client,
    api: Api,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let now = self.client.epoch.elapsed();
        if let Ok(mut budget) = self.client.budget.lock() {
            budget.complete(self.api, now);
        }
    }
}

fn describe(class: &Class, code: Option<i64>) -> String {
    match code {
        Some(code) => format!("{class:?}, Tencent error {code}"),
        None => format!("{class:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::rest_error::class_of_code;

    #[test]
    fn result_labels_cover_every_class() {
        let label = |code: i64| result_label(&class_of_code(code), Some(code));
        assert_eq!(label(0), "ok");
        assert_eq!(label(60007), "back_off");
        assert_eq!(label(10002), "retry");
        assert_eq!(label(10018), "ask_for_less");
        assert_eq!(label(10010), "group_gone");
        assert_eq!(label(10007), "no_attrs");
        assert_eq!(label(60004), "stop");
        assert_eq!(label(12345), "unknown");
    }
}
