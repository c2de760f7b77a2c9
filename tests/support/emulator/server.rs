//! The HTTP side: `POST /v4/{service}/{command}?sdkappid=&identifier=&usersig=&random=&contenttype=json`,
//! its checks in order, the rate limit, the injected faults, the call log.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;
use tim_relay::reconcile::budget::Api;
use tim_relay::reconcile::usersig::{verify, SecretKey, VerifyError};

use super::apis::{self, fail};
use super::log::{Call, CallLog, Limiter, Outcome};
use super::rng::Rng;
use super::world::{unix_secs, World};

/// How many times an injected group error is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    Once,
    N(u32),
    Always,
}

#[derive(Debug, Clone)]
struct GroupFault {
    api: Option<Api>,
    code: i64,
    left: Option<u32>,
}

/// Everything a test can change while the emulator runs.
#[derive(Debug)]
pub struct Knobs {
    pub latency: Duration,
    pub outage: bool,
    pub transient_rate: f64,
    pub max_answer_bytes: usize,
    pub limiter: Limiter,
    rng: Rng,
    group_faults: HashMap<String, Vec<GroupFault>>,
}

impl Knobs {
    pub fn new(seed: u64, attr_limit: u32, max_answer_bytes: usize) -> Knobs {
        Knobs {
            latency: Duration::ZERO,
            outage: false,
            transient_rate: 0.0,
            max_answer_bytes,
            limiter: Limiter::new(attr_limit),
            rng: Rng::new(seed),
            group_faults: HashMap::new(),
        }
    }

    /// `group_id` answers `code` (on `api`, or on every group API) `times` times.
    pub fn inject(&mut self, api: Option<Api>, group_id: &str, code: i64, times: Times) {
        let left = match times {
            Times::Once => Some(1),
            Times::N(n) => Some(n),
            Times::Always => None,
        };
        self.group_faults
            .entry(group_id.to_string())
            .or_default()
            .push(GroupFault { api, code, left });
    }

    pub fn clear_faults(&mut self) {
        self.group_faults.clear();
    }

    /// The injected code `group_id` answers on `api` now, if any (one use consumed).
    fn fault(&mut self, api: Api, group_id: &str) -> Option<i64> {
        let faults = self.group_faults.get_mut(group_id)?;
        let i = faults
            .iter()
            .position(|f| f.api.is_none_or(|a| a == api) && f.left != Some(0))?;
        let fault = &mut faults[i];
        if let Some(left) = &mut fault.left {
            *left -= 1;
        }
        Some(fault.code)
    }

    /// A transient failure drawn at `transient_rate`: 10002, 60008, HTTP 502 or HTTP 503.
    fn transient(&mut self) -> Option<Outcome> {
        if !self.rng.chance(self.transient_rate) {
            return None;
        }
        let all = [
            Outcome::Code(10002),
            Outcome::Code(60008),
            Outcome::Http(502),
            Outcome::Http(503),
        ];
        Some(*self.rng.pick(&all))
    }
}

/// What the server threads share with the test.
pub struct Shared {
    pub sdk_app_id: u64,
    pub key: SecretKey,
    pub admins: BTreeSet<String>,
    pub world: Mutex<World>,
    pub knobs: Mutex<Knobs>,
    pub log: Mutex<CallLog>,
}

fn api_of(path: &str) -> Option<Api> {
    Api::ALL.into_iter().find(|a| a.path() == path)
}

/// The one handler: every method, every path.
pub async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let at = Instant::now();
    let path = req.path().strip_prefix("/v4/").unwrap_or(req.path()).to_string();
    let api = api_of(&path);
    let query: HashMap<String, String> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let random = query.get("random").and_then(|r| r.parse::<u32>().ok());
    let (latency, outage) = {
        let k = shared.knobs.lock().unwrap();
        (k.latency, k.outage)
    };
    if !latency.is_zero() {
        actix_web::rt::time::sleep(latency).await;
    }
    let answer = if outage {
        Err(Outcome::Http(502))
    } else {
        answer(&shared, req.method(), api, &query, &body)
    };
    let (outcome, response) = match answer {
        Ok(value) => {
            let code = value.get("ErrorCode").and_then(Value::as_i64).unwrap_or(0);
            let response = HttpResponse::Ok()
                .content_type("application/json")
                .body(value.to_string());
            (Outcome::Code(code), response)
        }
        Err(Outcome::Http(status)) => {
            let status = actix_web::http::StatusCode::from_u16(status).expect("a valid status");
            (
                Outcome::Http(status.as_u16()),
                HttpResponse::build(status).body("<html>Bad Gateway</html>"),
            )
        }
        Err(Outcome::Code(code)) => unreachable!("codes are answered as JSON, not {code}"),
    };
    shared.log.lock().unwrap().calls.push(Call {
        api,
        path,
        at,
        outcome,
        random,
    });
    response
}

/// The checks, in order, then the API. `Err` is an answer without a JSON body (HTTP 5xx).
fn answer(
    shared: &Shared,
    method: &Method,
    api: Option<Api>,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Value, Outcome> {
    if method != Method::POST {
        return Ok(fail(60002, "HTTP parse error: only POST is served"));
    }
    let Some(api) = api else {
        return Ok(fail(60009, "request resource error: no such service or command"));
    };
    if let Err(refusal) = check_query(shared, query) {
        return Ok(refusal);
    }
    let mut knobs = shared.knobs.lock().unwrap();
    if !knobs.limiter.admit(api, Instant::now()) {
        return Ok(fail(60007, "REST API call rate over the limit"));
    }
    match knobs.transient() {
        Some(Outcome::Code(code)) => return Ok(fail(code, "injected transient failure")),
        Some(http) => return Err(http),
        None => {}
    }
    if body.is_empty() {
        return Ok(fail(
            60003,
            "the body is empty: send {} when there is nothing to say",
        ));
    }
    let Ok(body @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else {
        return Ok(fail(60003, "HTTP request JSON parse error"));
    };
    let world = shared.world.lock().unwrap();
    let group_id = body.get("GroupId").and_then(Value::as_str).unwrap_or("");
    Ok(match api {
        Api::GetAppidGroupList => apis::get_appid_group_list(&world, &body),
        Api::GetGroupInfo => {
            let max = knobs.max_answer_bytes;
            apis::get_group_info(&world, &body, max, &mut |id| knobs.fault(api, id))
        }
        Api::GetGroupMemberInfo => {
            let fault = knobs.fault(api, group_id);
            apis::get_group_member_info(&world, &body, fault)
        }
        Api::GetGroupAttr => {
            let fault = knobs.fault(api, group_id);
            apis::get_group_attr(&world, &body, fault)
        }
    })
}

/// The query's checks: the app (60012 missing, 60006 not this app), `identifier` and `usersig`
/// (60004 missing or not verifying, 70001 expired, 60010 not an App admin), `random` and
/// `contenttype` (60002).
fn check_query(shared: &Shared, query: &HashMap<String, String>) -> Result<(), Value> {
    let Some(app) = query.get("sdkappid") else {
        return Err(fail(60012, "sdkappid is required"));
    };
    if *app != shared.sdk_app_id.to_string() {
        return Err(fail(60006, "invalid SDKAppID"));
    }
    let (Some(identifier), Some(usersig)) = (query.get("identifier"), query.get("usersig")) else {
        return Err(fail(60004, "identifier and usersig are required"));
    };
    match verify(&shared.key, usersig, unix_secs()) {
        Err(VerifyError::Expired { .. }) => return Err(fail(70001, "UserSig expired")),
        Err(e) => return Err(fail(60004, &format!("UserSig does not verify: {e}"))),
        Ok(claims) if claims.identifier != *identifier || claims.sdk_app_id != shared.sdk_app_id => {
            return Err(fail(60004, "UserSig is not for this identifier and app"));
        }
        Ok(_) => {}
    }
    if !shared.admins.contains(identifier) {
        return Err(fail(60010, "the request needs an App admin"));
    }
    if query.get("random").and_then(|r| r.parse::<u32>().ok()).is_none() {
        return Err(fail(60002, "random must be a 32-bit unsigned integer"));
    }
    if query.get("contenttype").map(String::as_str) != Some("json") {
        return Err(fail(60002, "contenttype must be json"));
    }
    Ok(())
}
