//! A Tencent Cloud IM emulator for the tests: the four group REST APIs `tim-relay reconcile`
//! reads (`../shared/spec/tencent-im-rest.md` §1, §3, §4), over a world of groups a test fills
//! and changes, with the callbacks Tencent would send for each change. `docs/emulator.md`
//! lists what it emulates and each choice made where the spec is unconfirmed.
//!
//! Standalone (it does not use `tests/support/mod.rs`); include it with
//! `#[path = "support/emulator/mod.rs"] mod emulator;` from a test crate or a bench.
//!
//! ```ignore
//! let emu = Emulator::start(Config::default());
//! emu.with_world(|w| w.populate(&mut Rng::new(7), &Population::default()));
//! // TIM_REST_BASE_URL=emu.base_url(), TIM_SDK_APP_ID, TIM_ADMIN_IDENTIFIER, TIM_SECRET_KEY: emu.env()
//! ```
// Each including crate uses part of it.
#![allow(dead_code, unused_imports)]

pub mod apis;
pub mod callbacks;
pub mod expect;
pub mod generate;
pub mod log;
pub mod operations;
pub mod rng;
pub mod server;
pub mod world;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use tim_relay::reconcile::budget::Api;
use tim_relay::reconcile::usersig::{sign, Claims, SecretKey};

pub use callbacks::{callback_sign, callback_url, sign_and_post};
pub use expect::{diff_state, diff_world, expected_state, DEFAULT_MAX_TRACKED_MEMBERS};
pub use generate::{member_count, Population};
pub use log::{Call, CallLog, Outcome};
pub use operations::{Callback, Operation};
pub use rng::Rng;
pub use server::Times;
pub use world::{unix_secs, Group, GroupType, Member, Role, World};

/// How the emulated app is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub sdk_app_id: u64,
    /// The App admins; the first is [`Emulator::admin_identifier`].
    pub admins: Vec<String>,
    pub secret_key: String,
    /// Seeds the injected transient failures.
    pub seed: u64,
    /// `get_group_attr`'s limit per second (unconfirmed in the spec): 200, every API's default.
    pub attr_rate_limit: u32,
    /// The most an answer may hold (`get_group_info`'s 10018): 1 MB.
    pub max_answer_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sdk_app_id: 1_400_000_000,
            admins: vec!["administrator".into()],
            secret_key: "emulator-secret-key-0123456789abcdef".into(),
            seed: 1,
            attr_rate_limit: 200,
            max_answer_bytes: 1 << 20,
        }
    }
}

/// A running emulator: an actix-web server on its own thread, on `127.0.0.1` and a free port.
/// Stopped when dropped.
pub struct Emulator {
    pub sdk_app_id: u64,
    pub admin_identifier: String,
    pub secret_key: SecretKey,
    /// The key as text (`SecretKey` masks itself), for `TIM_SECRET_KEY`.
    pub secret_key_text: String,
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl Emulator {
    /// Starts the server with an empty world; returns once it listens.
    pub fn start(config: Config) -> Emulator {
        let admin_identifier = config.admins.first().cloned().expect("at least one App admin");
        let shared = Arc::new(server::Shared {
            sdk_app_id: config.sdk_app_id,
            key: SecretKey::new(config.secret_key.clone()),
            admins: config.admins.iter().cloned().collect::<BTreeSet<_>>(),
            world: Mutex::new(World::new()),
            knobs: Mutex::new(server::Knobs::new(
                config.seed,
                config.attr_rate_limit,
                config.max_answer_bytes,
            )),
            log: Mutex::new(CallLog::default()),
        });
        let (tx, rx) = mpsc::channel();
        let data = web::Data::new(shared.clone());
        std::thread::Builder::new()
            .name("tencent-emulator".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(4 << 20))
                            .default_service(web::to(server::handle))
                    })
                    .workers(4)
                    .disable_signals()
                    .bind(("127.0.0.1", 0))
                    .expect("bind 127.0.0.1:0");
                    let addr = server.addrs()[0];
                    let server = server.run();
                    tx.send((addr, server.handle())).expect("the starter waits");
                    server.await
                })
            })
            .expect("spawn the emulator thread");
        let (addr, handle) = rx.recv().expect("the emulator started");
        Emulator {
            sdk_app_id: config.sdk_app_id,
            admin_identifier,
            secret_key: SecretKey::new(config.secret_key.clone()),
            secret_key_text: config.secret_key,
            addr,
            shared,
            handle,
        }
    }

    /// `http://127.0.0.1:PORT`: the client's `TIM_REST_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment a reconciler needs to call this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TIM_REST_BASE_URL".into(), self.base_url()),
            ("TIM_SDK_APP_ID".into(), self.sdk_app_id.to_string()),
            ("TIM_ADMIN_IDENTIFIER".into(), self.admin_identifier.clone()),
            ("TIM_SECRET_KEY".into(), self.secret_key_text.clone()),
        ]
    }

    /// Reads or changes the world under its lock (do not call the emulator from inside `f`).
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.shared.world.lock().unwrap())
    }

    /// A UserSig for `identifier`, made now and valid for `expire_secs`.
    pub fn usersig_for(&self, identifier: &str, expire_secs: u64) -> String {
        let claims = Claims {
            identifier: identifier.into(),
            sdk_app_id: self.sdk_app_id,
            time: unix_secs(),
            expire: expire_secs,
        };
        sign(&self.secret_key, &claims)
    }

    /// The App admin's UserSig, valid for a day.
    pub fn usersig(&self) -> String {
        self.usersig_for(&self.admin_identifier, 86_400)
    }

    /// The full URL of a call to `api` as the admin, with a fresh `random`.
    pub fn url(&self, api: Api, usersig: &str, random: u32) -> String {
        format!(
            "{}/v4/{}?sdkappid={}&identifier={}&usersig={usersig}&random={random}&contenttype=json",
            self.base_url(),
            api.path(),
            self.sdk_app_id,
            self.admin_identifier
        )
    }

    /// Calls `api` with `body` as the admin would: the HTTP status and the answer (a JSON
    /// string value when it is not JSON).
    pub async fn call(
        &self,
        http: &reqwest::Client,
        api: Api,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let random = rand_u32();
        let response = http
            .post(self.url(api, &self.usersig(), random))
            .body(body.to_string())
            .send()
            .await
            .expect("the emulator answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("an answer body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    fn knobs<R>(&self, f: impl FnOnce(&mut server::Knobs) -> R) -> R {
        f(&mut self.shared.knobs.lock().unwrap())
    }

    /// Every call waits this long before it is answered.
    pub fn set_latency(&self, latency: Duration) {
        self.knobs(|k| k.latency = latency);
    }

    /// While on, every call answers HTTP 502.
    pub fn set_outage(&self, on: bool) {
        self.knobs(|k| k.outage = on);
    }

    /// Each call (past the checks and the rate limit) fails with probability `p`: 10002,
    /// 60008, HTTP 502 or HTTP 503, drawn from the seeded generator.
    pub fn set_transient_failure_rate(&self, p: f64) {
        self.knobs(|k| k.transient_rate = p);
    }

    /// `group_id` answers `code` on every group API (`get_group_info`: its own entry; the
    /// others: the whole call) `times` times.
    pub fn inject_group_error(&self, group_id: &str, code: i64, times: Times) {
        self.knobs(|k| k.inject(None, group_id, code, times));
    }

    /// The same, on `api` only.
    pub fn inject_group_error_on(&self, api: Api, group_id: &str, code: i64, times: Times) {
        self.knobs(|k| k.inject(Some(api), group_id, code, times));
    }

    pub fn clear_group_errors(&self) {
        self.knobs(|k| k.clear_faults());
    }

    /// `api`'s limit, in calls admitted per second.
    pub fn set_rate_limit(&self, api: Api, per_second: u32) {
        self.knobs(|k| k.limiter.set_limit(api, per_second));
    }

    pub fn rate_limit(&self, api: Api) -> u32 {
        self.knobs(|k| k.limiter.limit(api))
    }

    /// The size above which `get_group_info` answers 10018.
    pub fn set_max_answer_bytes(&self, bytes: usize) {
        self.knobs(|k| k.max_answer_bytes = bytes);
    }

    /// A copy of the call log.
    pub fn calls(&self) -> CallLog {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn clear_calls(&self) {
        self.shared.log.lock().unwrap().calls.clear();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Sends the stop at once; the returned future only waits for it.
        drop(self.handle.stop(false));
    }
}

/// A `random` for a request: 32 bits from the clock and a counter, new per call.
pub fn rand_u32() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    nanos ^ COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed)
}
