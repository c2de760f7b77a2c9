//! Hand-over: a callback of a group that another replica owns (see `delivery::owner`) goes to
//! that owner's admin listener (`POST /handover?<the same query>`, the same body), which runs
//! the whole pipeline on it, and the owner's answer goes back to Tencent unchanged. Then all of
//! a group's events pass one relay, whose order is proven, whichever replica Tencent reached.
//!
//! The owner never hands a handed-over callback on: it arrives on another route. When the owner
//! cannot be reached, does not answer within `RELAY_HANDOVER_TIMEOUT_MS`, or answers 5xx, this
//! relay handles the callback itself, as without peers, and counts why. If the owner had
//! accepted it after all, the event is in the topic twice, with the same `id` (a UUIDv5 of the
//! body when it carries `EventTime`): a duplicate, never a loss.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::delivery::peers::Peers;
use crate::delivery::record::Record;
use crate::ingress::commands::Class;
use crate::ops::log_limit::{LogLimit, Verdict};
use crate::ops::metrics::Metrics;

/// The owner's route, on its admin listener (not behind the load balancer).
pub const PATH: &str = "/handover";
/// `tim_relay_handovers_total{outcome}`.
pub const OUTCOMES: [&str; 4] = ["ok", "fallback_unreachable", "fallback_timeout", "fallback_error"];
/// Fallback lines per second, at most; the rest are counted in the next line.
const LOG_LINES_PER_SECOND: u32 = 5;

/// The client that hands callbacks to their owners; one keep-alive pool for all workers.
pub struct Handover {
    client: Option<reqwest::Client>,
    log: LogLimit,
}

/// The owner's answer, to be sent to Tencent as it is.
pub struct Relayed {
    status: StatusCode,
    content_type: Option<String>,
    body: web::Bytes,
}

impl Relayed {
    pub fn response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(content_type) = self.content_type {
            response.content_type(content_type);
        }
        response.body(self.body)
    }
}

pub fn register_metrics(metrics: &Metrics) {
    for outcome in OUTCOMES {
        metrics.handovers.with_label_values(&[outcome]);
    }
}

impl Handover {
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // The owner is beside this relay: no HTTP_PROXY detour; a redirect is a wrong answer.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .build()
            .inspect_err(|e| log::error!("cannot build the hand-over client, callbacks stay here: {e}"))
            .ok();
        Self {
            client,
            log: LogLimit::new(LOG_LINES_PER_SECOND),
        }
    }

    /// The owner's answer when the callback's events are of one group that another replica
    /// owns and that owner answered; `None`: this relay handles the callback itself.
    pub async fn to_owner(
        &self,
        peers: &Peers,
        (class, records): (Class, &[Record]),
        req: &HttpRequest,
        body: &web::Bytes,
        metrics: &Metrics,
    ) -> Option<Relayed> {
        let [record] = records else { return None };
        if !matches!(class, Class::GroupState | Class::GroupMessage) {
            return None;
        }
        let owner = peers.owner_of(&record.key)?;
        let client = self.client.as_ref()?;
        let (outcome, relayed) = match send(client, owner, req, body.clone()).await {
            Ok(relayed) if !relayed.status.is_server_error() => ("ok", Some(relayed)),
            Ok(relayed) => self.fallback(owner, "fallback_error", &format!("HTTP {}", relayed.status)),
            Err(e) if e.is_timeout() => self.fallback(owner, "fallback_timeout", &e.to_string()),
            Err(e) if e.is_connect() => self.fallback(owner, "fallback_unreachable", &e.to_string()),
            Err(e) => self.fallback(owner, "fallback_error", &e.to_string()),
        };
        metrics.handovers.with_label_values(&[outcome]).inc();
        relayed
    }

    fn fallback(
        &self,
        owner: SocketAddr,
        outcome: &'static str,
        why: &str,
    ) -> (&'static str, Option<Relayed>) {
        if let Verdict::Log { suppressed } = self.log.check(Instant::now()) {
            log::warn!(
                "hand-over to the group's owner {owner} failed ({outcome}: {why}); handling the callback here{}",
                match suppressed {
                    0 => String::new(),
                    n => format!(" ({n} more not logged)"),
                }
            );
        }
        (outcome, None)
    }
}

async fn send(
    client: &reqwest::Client,
    owner: SocketAddr,
    req: &HttpRequest,
    body: web::Bytes,
) -> Result<Relayed, reqwest::Error> {
    let mut request = client
        .post(format!("http://{owner}{PATH}?{}", req.query_string()))
        .body(body);
    if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
        request = request.header("content-type", content_type.as_bytes());
    }
    let response = request.send().await?;
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = response.bytes().await?;
    Ok(Relayed {
        status,
        content_type,
        body,
    })
}
