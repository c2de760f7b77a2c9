//! HTTP: the callback route, health, readiness and metrics, and the `Application` that binds them.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::dev::Server;
use actix_web::http::{header, KeepAlive, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::auth::Authenticator;
use crate::callback::{BodyLimits, CallbackQuery, GroupInfoChanged, COMMAND};
use crate::config::{AccessRules, Config, ConfigError};
use crate::error::{fail_response, RelayError, OK_BODY};
use crate::event::ChangeEvent;
use crate::log_limit::{LogLimit, Verdict};
use crate::metrics::{InFlight, Metrics};
use crate::publish::Publisher;
use crate::record::Record;
use crate::relay::{Delivered, Relay};
use crate::spool::Spool;

/// How long `/readyz` waits for the broker's metadata answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// Refusal `warn` lines per second, at most; the rest are counted in the next line.
const REFUSAL_LOG_LINES_PER_SECOND: u32 = 20;
/// How long shutdown waits for queued events to reach the broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AppState {
    pub auth: Authenticator,
    pub relay: Relay,
    pub access: AccessRules,
    pub body_limit: usize,
    pub body_timeout: Duration,
    pub body_limits: BodyLimits,
    pub sdk_app_id: String,
    pub refusal_log: LogLimit,
}

/// A bound, not yet running relay.
pub struct Application {
    port: u16,
    server: Server,
    relay: Relay,
}

impl Application {
    /// Creates the producer and binds the listener (port 0 picks a free port).
    pub fn build(config: Config) -> Result<Self, ConfigError> {
        let listener = TcpListener::bind(config.listen)
            .map_err(|e| ConfigError::new("RELAY_LISTEN", format!("cannot bind {}: {e}", config.listen)))?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let metrics = Arc::new(Metrics::new());
        let publisher = Arc::new(Publisher::new(&config, metrics.duplicates.clone())?);
        let spool = Spool::open(&config.spool_dir, config.spool_max_bytes)
            .map_err(|e| ConfigError::new("RELAY_SPOOL_DIR", e.to_string()))?;
        let relay = Relay::new(publisher, spool, metrics, config.limits.max_pending_publishes);
        let state = web::Data::new(AppState {
            auth: Authenticator::new(
                config.sdk_app_id.clone(),
                config.callback_token.clone(),
                config.sign_max_skew,
            ),
            relay: relay.clone(),
            access: config.access.clone(),
            body_limit: config.body_limit_bytes,
            body_timeout: config.limits.body_timeout,
            body_limits: config.limits.body,
            sdk_app_id: config.sdk_app_id.clone(),
            refusal_log: LogLimit::new(REFUSAL_LOG_LINES_PER_SECOND),
        });
        let path = config.callback_path.clone();
        let limits = &config.limits;
        let workers = config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route(&path, web::post().to(callback))
                .route(&path, web::route().to(method_not_allowed))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_text))
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
        .shutdown_timeout(5);
        let server = match &config.tls {
            Some(paths) => server.listen_rustls_0_23(listener, crate::tls::server_config(paths)?),
            None => server.listen(listener),
        }
        .map_err(|e| ConfigError::new("RELAY_LISTEN", e.to_string()))?
        .run();
        Ok(Self { port, server, relay })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves and forwards the spool until SIGTERM/SIGINT, lets in-flight callbacks finish,
    /// stops the forwarder after its current round, then flushes the producer. What is still
    /// spooled stays on disk for the next start.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let forwarder = tokio::spawn(self.relay.clone().forward(stopped, Duration::from_secs(20)));
        let served = self.server.await;
        let _ = stop.send(true);
        if tokio::time::timeout(FLUSH_TIMEOUT, forwarder).await.is_err() {
            log::error!("forwarder did not stop within {FLUSH_TIMEOUT:?}");
        }
        served?;
        let publisher = self.relay.publisher;
        let flushed = tokio::task::spawn_blocking(move || publisher.flush(FLUSH_TIMEOUT)).await;
        match flushed {
            Ok(Ok(())) => log::info!("stopped: producer flushed"),
            Ok(Err(e)) => log::error!("stopped: producer flush incomplete after {FLUSH_TIMEOUT:?}: {e}"),
            Err(e) => log::error!("stopped: producer flush did not run: {e}"),
        }
        Ok(())
    }
}

async fn callback(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.relay.metrics;
    let _in_flight = InFlight::enter(&metrics.in_flight);
    match handle_callback(&req, payload, &state).await {
        Ok(()) => {
            metrics.count_ok();
            HttpResponse::Ok().content_type("application/json").body(OK_BODY)
        }
        Err(err) => {
            metrics.count(err.outcome());
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

/// The checks in the documented order, then one publish; nothing is sent unless all pass.
async fn handle_callback(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(), RelayError> {
    let received_at = SystemTime::now();
    let client = state
        .access
        .client_ip(req.peer_addr().map(|a| a.ip()), req.headers());
    if !state.access.permits(client) {
        return Err(RelayError::AddressNotAllowed);
    }
    let query = CallbackQuery::parse(req.query_string());
    state.auth.check_app_id(&query)?;
    state.auth.check_sign(&query, received_at)?;
    if query.callback_command.as_deref() != Some(COMMAND) {
        return Err(RelayError::WrongCommand { expected: COMMAND });
    }
    let body = tokio::time::timeout(state.body_timeout, read_body(req, payload, state.body_limit))
        .await
        .map_err(|_| RelayError::BodyTimeout)??;
    let parsed = GroupInfoChanged::from_slice_bounded(&body, &state.body_limits)?;
    if parsed.callback_command.as_deref().is_some_and(|c| c != COMMAND) {
        return Err(RelayError::WrongCommand { expected: COMMAND });
    }
    let event = ChangeEvent::new(&state.sdk_app_id, &query, parsed, &body, received_at);
    match state.relay.deliver(&Record::from_event(&event)).await? {
        Delivered::Acknowledged(took) => {
            state.relay.metrics.publish_seconds.observe(took.as_secs_f64());
            log::debug!("published event {} for group {:?}", event.id, event.group_id);
        }
        Delivered::Spooled => log::debug!("spooled event {} for group {:?}", event.id, event.group_id),
    }
    Ok(())
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

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Ready while an OK answer can be kept: Kafka answers for the topic, or the spool has room.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let publisher = state.relay.publisher.clone();
    let kafka = web::block(move || publisher.check_ready(READY_TIMEOUT))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let spool = &state.relay.spool;
    let (events, _) = spool.depth();
    let (ready, text) = match kafka {
        Ok(()) => (true, format!("ready: Kafka answers for the topic; {events} events spooled\n")),
        Err(reason) if spool.has_room() => (
            true,
            format!("ready (spooling): Kafka unreachable: {reason}; callbacks are kept in the spool ({events} events)\n"),
        ),
        Err(reason) => (false, format!("not ready: Kafka unreachable: {reason}; the spool is full\n")),
    };
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.content_type("text/plain").body(text)
}

async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    let relay = state.relay.clone();
    let text = web::block(move || {
        relay
            .metrics
            .observe_spool(&relay.spool, relay.publisher.watch().is_down());
        relay.metrics.render()
    })
    .await
    .unwrap_or_else(|e| format!("# metrics unavailable: {e}\n"));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
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
