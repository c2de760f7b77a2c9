//! HTTP: the callback route, and the hand-over route another replica sends a group's callbacks
//! to (served on the admin listener, see [`crate::ingress::handover`]).

use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime};

use actix_web::dev::Server;
use actix_web::http::{header, KeepAlive, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::answer::{fail_response, OK_BODY};
use crate::config::{AccessRules, Config, ConfigError, Http};
use crate::delivery::record::Record;
use crate::delivery::{Delivered, Relay};
use crate::ingress::auth::Authenticator;
use crate::ingress::body::BodyLimits;
use crate::ingress::callback::CallbackQuery;
use crate::ingress::commands::{self, Class, Dispatched};
use crate::ingress::decision::{Decider, Decision};
use crate::ingress::error::RelayError;
use crate::ingress::event::Origin;
use crate::ingress::handover::{Handover, Relayed};
use crate::ops::log_limit::{LogLimit, Verdict};
use crate::ops::metrics::InFlight;

/// Refusal `warn` lines per second, at most; the rest are counted in the next line.
const REFUSAL_LOG_LINES_PER_SECOND: u32 = 20;
/// How long in-flight callbacks may take to finish once the relay stops (each waits at most
/// the ack timeout, under 2 s).
const IN_FLIGHT_GRACE_SECS: u64 = 3;

pub struct AppState {
    pub auth: Authenticator,
    pub relay: Relay,
    pub access: AccessRules,
    pub body_limit: usize,
    pub body_timeout: Duration,
    pub body_limits: BodyLimits,
    pub sdk_app_id: String,
    pub refusal_log: LogLimit,
    pub topics: Topics,
    /// Answers before-callbacks; one keep-alive pool to the decision service for all workers.
    pub decider: Decider,
    /// Hands callbacks of groups other replicas own to their owners (`RELAY_PEERS`).
    pub handover: Handover,
}

impl AppState {
    /// What every callback handler reads, from the configuration and the delivery side.
    pub fn new(config: &Config, relay: Relay) -> web::Data<Self> {
        web::Data::new(AppState {
            auth: Authenticator::new(
                config.tencent.sdk_app_id.clone(),
                config.tencent.callback_token.clone(),
                config.tencent.sign_max_skew,
            ),
            relay,
            access: config.http.access.clone(),
            body_limit: config.http.body_limit_bytes,
            body_timeout: config.http.limits.body_timeout,
            body_limits: config.http.limits.body,
            sdk_app_id: config.tencent.sdk_app_id.clone(),
            refusal_log: LogLimit::new(REFUSAL_LOG_LINES_PER_SECOND),
            decider: Decider::new(&config.decision),
            handover: Handover::new(config.replicas.handover_timeout),
            topics: Topics {
                state: config.shared.topic.clone(),
                messages: config.kafka.messages_topic.clone(),
                other: config.kafka.other_topic.clone(),
            },
        })
    }
}

/// The topic of each class of events; empty when that class is switched off.
pub struct Topics {
    pub state: String,
    pub messages: String,
    pub other: String,
}

impl Topics {
    pub fn of(&self, class: Class) -> &str {
        match class {
            Class::GroupState => &self.state,
            Class::GroupMessage => &self.messages,
            Class::Other => &self.other,
        }
    }
}

/// The callback listener's server, bound to `listener` (HTTPS with `RELAY_TLS_*`), with the
/// bounds of `http`; not running yet.
pub fn serve(listener: TcpListener, state: web::Data<AppState>, http: &Http) -> Result<Server, ConfigError> {
    let path = http.callback_path.clone();
    let limits = &http.limits;
    let workers = http
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route(&path, web::post().to(callback))
            .route(&path, web::route().to(method_not_allowed))
            .default_service(web::to(not_found))
    })
    .workers(workers)
    // actix counts connections per worker; the setting is for the whole relay.
    .max_connections(limits.max_connections.div_ceil(workers).max(1))
    .client_request_timeout(limits.header_timeout)
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(if limits.keep_alive.is_zero() {
        KeepAlive::Disabled
    } else {
        KeepAlive::Timeout(limits.keep_alive)
    })
    // In-flight callbacks wait at most the ack timeout; this bound only guards against a stuck one.
    .shutdown_timeout(IN_FLIGHT_GRACE_SECS)
    // SIGINT would make actix stop at once; the relay handles both signals itself.
    .disable_signals();
    let server = match &http.tls {
        Some(paths) => server.listen_rustls_0_23(listener, crate::ingress::tls::server_config(paths)?),
        None => server.listen(listener),
    }
    .map_err(|e| ConfigError::new("RELAY_LISTEN", e.to_string()))?
    .run();
    Ok(server)
}

/// How a callback that passed every check was answered.
enum Answered {
    /// Its events are acknowledged by Kafka or spooled.
    Ok,
    /// Its class is switched off (an empty topic variable): answered OK, nothing published.
    Ignored,
    /// A before-callback: Tencent gets this decision; nothing is published.
    Decided(Decision),
    /// Its group's owner handled it: Tencent gets the owner's answer.
    Relayed(Relayed),
}

/// Where a callback came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Tencent (through the load balancer): checked from the start, and handed over to its
    /// group's owner when that is another replica.
    Tencent,
    /// Another replica that checked the caller's address: handled here, never handed on.
    Handover,
}

async fn callback(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    answer(req, payload, state, Via::Tencent).await
}

/// The admin listener's route for the callbacks other replicas hand over: this relay owns
/// their group. Refused (503, the sender then handles it itself) once this relay stops.
pub fn handover_route(
    state: web::Data<AppState>,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg| {
        cfg.app_data(state.clone())
            .route(crate::ingress::handover::PATH, web::post().to(handed_over));
    }
}

async fn handed_over(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    if state.relay.peers.is_stopping() {
        return fail_response(
            StatusCode::SERVICE_UNAVAILABLE,
            5038,
            "stopping: not taking hand-overs",
        );
    }
    // The sender may stop waiting (RELAY_HANDOVER_TIMEOUT_MS) and handle the callback itself;
    // this relay still finishes it (actix drops a handler whose caller left), so the group's
    // events keep passing here in order and the sender's copy is only a duplicate.
    let owned = actix_web::rt::spawn(answer(req, payload, state, Via::Handover));
    owned.await.unwrap_or_else(|_| {
        fail_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            5001,
            "the hand-over task failed",
        )
    })
}

async fn answer(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    via: Via,
) -> HttpResponse {
    let started = Instant::now();
    let metrics = &state.relay.metrics;
    let _in_flight = InFlight::enter(&metrics.in_flight);
    let json = |body: web::Bytes| HttpResponse::Ok().content_type("application/json").body(body);
    match handle_callback(&req, payload, &state, via).await {
        Ok(Answered::Ok) => {
            metrics.count_ok(started.elapsed());
            json(web::Bytes::from_static(OK_BODY.as_bytes()))
        }
        Ok(Answered::Ignored) => {
            metrics.count("ignored", started.elapsed());
            json(web::Bytes::from_static(OK_BODY.as_bytes()))
        }
        Ok(Answered::Decided(decision)) => {
            metrics.count("decided", started.elapsed());
            decision.count(metrics);
            json(decision.body)
        }
        Ok(Answered::Relayed(relayed)) => {
            metrics.count("handed_over", started.elapsed());
            relayed.response()
        }
        Err(err) => {
            metrics.count(err.outcome(), started.elapsed());
            // Every refusal is counted in /metrics; only the log lines are rate-limited.
            if let Verdict::Log { suppressed } = state.refusal_log.check(Instant::now()) {
                let peer = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
                log::warn!(
                    "callback refused: code={} peer={peer} reason={:?}{}",
                    err.code(),
                    err.to_string(),
                    if suppressed > 0 {
                        format!(" ({suppressed} more refusals not logged)")
                    } else {
                        String::new()
                    }
                );
            }
            actix_web::ResponseError::error_response(&err)
        }
    }
}

/// The checks in the documented order, then the command's route; nothing is published
/// unless every check passed and every event of the callback was built.
async fn handle_callback(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    via: Via,
) -> Result<Answered, RelayError> {
    let received_at = SystemTime::now();
    let client = state
        .access
        .client_ip(req.peer_addr().map(|a| a.ip()), req.headers());
    if via == Via::Tencent && !state.access.permits(client) {
        return Err(RelayError::AddressNotAllowed);
    }
    let query = CallbackQuery::parse(req.query_string());
    state.auth.check_app_id(&query)?;
    state.auth.check_sign(&query, received_at)?;
    let name = match query.callback_command.as_deref() {
        Some(name) if !name.is_empty() => name,
        _ => return Err(RelayError::MissingCommand),
    };
    let body = tokio::time::timeout(state.body_timeout, read_body(req, payload, state.body_limit))
        .await
        .map_err(|_| RelayError::BodyTimeout)??;
    let origin = Origin {
        sdk_app_id: &state.sdk_app_id,
        query: &query,
        raw_body: &body,
        received_at,
    };
    let (events, class) = match commands::dispatch(name, &origin, state.body_limits)? {
        Dispatched::Publish(events, class) => (events, class),
        Dispatched::Decide => {
            let decision = state.decider.decide(req.query_string(), body.clone()).await;
            return Ok(Answered::Decided(decision));
        }
    };
    let topic = state.topics.of(class);
    if topic.is_empty() {
        return Ok(Answered::Ignored);
    }
    let records: Vec<Record> = events.iter().map(|e| Record::from_event(e, topic)).collect();
    if via == Via::Tencent {
        let metrics = &state.relay.metrics;
        let owner = state
            .handover
            .to_owner(&state.relay.peers, (class, &records), req, &body, metrics);
        if let Some(relayed) = owner.await {
            return Ok(Answered::Relayed(relayed));
        }
    }
    match state.relay.deliver_all(&records).await? {
        Delivered::Acknowledged(took) => {
            state.relay.metrics.publish_seconds.observe(took.as_secs_f64());
            log::debug!("published {} event(s) of {name:?}", records.len());
        }
        Delivered::Spooled => log::debug!("spooled {} event(s) of {name:?}", records.len()),
    }
    Ok(Answered::Ok)
}

async fn read_body(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<web::Bytes, RelayError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(RelayError::BodyTooLarge { limit });
    }
    match payload.to_bytes_limited(limit).await {
        Err(_) => Err(RelayError::BodyTooLarge { limit }),
        Ok(Err(e)) => Err(RelayError::BodyUnreadable(e.to_string())),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

async fn method_not_allowed() -> HttpResponse {
    fail_response(
        StatusCode::METHOD_NOT_ALLOWED,
        4051,
        "callbacks are POST requests",
    )
}

async fn not_found() -> HttpResponse {
    fail_response(StatusCode::NOT_FOUND, 4041, "no such path")
}
