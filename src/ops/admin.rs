//! The operators' listener (`RELAY_ADMIN_LISTEN`): liveness, readiness and metrics, kept off the
//! callback listener, and the readiness state they read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use tokio::sync::watch;

use crate::delivery::Relay;

/// How often the broker is asked for the topic's metadata in the background.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long one metadata request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/readyz` waits for the first probe of a relay that just started.
const FIRST_PROBE_WAIT: Duration = Duration::from_secs(3);

/// What the relay knows about its own readiness. Refreshed in the background, so `/readyz`
/// answers from memory instead of asking the broker on every call.
pub struct Readiness {
    /// The last metadata probe: `None` before the first one answered.
    kafka: watch::Sender<Option<Result<(), String>>>,
    stopping: AtomicBool,
}

impl Readiness {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            kafka: watch::channel(None).0,
            stopping: AtomicBool::new(false),
        })
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending callbacks.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Asks the broker for the topic's metadata every few seconds until the process ends.
    pub async fn probe_forever(self: Arc<Self>, relay: Relay) {
        loop {
            let publisher = relay.publisher.clone();
            let result = tokio::task::spawn_blocking(move || publisher.check_ready(PROBE_TIMEOUT))
                .await
                .unwrap_or_else(|e| Err(format!("readiness probe failed: {e}")));
            // The gauge is set before `/readyz` callers waiting for a first answer are woken.
            let (ready, _) = self.verdict_with(Some(&result), &relay);
            relay.metrics.ready.set(i64::from(ready));
            self.kafka.send_replace(Some(result));
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Whether an OK answer can be kept now, and the sentence that says why.
    fn verdict(&self, relay: &Relay) -> (bool, String) {
        self.verdict_with(self.kafka.borrow().as_ref(), relay)
    }

    fn verdict_with(&self, kafka: Option<&Result<(), String>>, relay: &Relay) -> (bool, String) {
        let (events, _) = relay.spool.depth();
        if self.stopping.load(Ordering::Acquire) {
            return (
                false,
                format!("not ready: shutting down, forwarding the spool ({events} events)\n"),
            );
        }
        let kafka = match kafka {
            None => return (false, "not ready: starting, Kafka has not answered yet\n".into()),
            Some(Ok(())) if relay.publisher.watch().is_down() => {
                Err("the producer reports every broker down".to_string())
            }
            Some(result) => result.clone(),
        };
        match kafka {
            Ok(()) => (
                true,
                format!("ready: Kafka answers for the topic; {events} events spooled\n"),
            ),
            Err(reason) if relay.spool.has_room() => (
                true,
                format!(
                    "ready (spooling): Kafka unreachable: {reason}; callbacks are kept in the spool ({events} events)\n"
                ),
            ),
            Err(reason) => (
                false,
                format!("not ready: Kafka unreachable: {reason}; the spool is full\n"),
            ),
        }
    }
}

struct AdminState {
    relay: Relay,
    readiness: Arc<Readiness>,
}

/// The admin server on its own listener, one worker; `routes` adds the hand-over route (the
/// only one on a callback's path, and only for the callbacks other replicas hand over).
pub fn server(
    listener: std::net::TcpListener,
    relay: Relay,
    readiness: Arc<Readiness>,
    routes: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(AdminState { relay, readiness });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(routes.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics_text))
            .route("/spool/head", web::get().to(spool_head))
            .route("/spool/dead", web::get().to(dead_list))
            .route("/spool/dead/replay", web::post().to(dead_replay))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Ready while an OK answer can be kept: Kafka answers for the topic, or the spool has room.
async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    let mut first = state.readiness.kafka.subscribe();
    // A relay that just started has not heard from Kafka yet; wait briefly rather than flap.
    let _ = tokio::time::timeout(FIRST_PROBE_WAIT, first.wait_for(Option::is_some)).await;
    let (ready, text) = state.readiness.verdict(&state.relay);
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.content_type("text/plain").body(text)
}

/// For the other replicas (`RELAY_PEERS`): when the oldest event in this relay's spool was
/// answered, so that theirs do not reach Kafka before it.
async fn spool_head(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok().json(crate::delivery::peers::Head {
        instance: state.relay.peers.instance().to_string(),
        oldest_ms: state.relay.spool.oldest_ms(),
        stopping: state.relay.peers.is_stopping(),
    })
}

/// The dead table, counted by topic and reason (`tim-relay dead list` asks here while the relay
/// runs).
async fn dead_list(state: web::Data<AdminState>) -> HttpResponse {
    let relay = state.relay.clone();
    match web::block(move || {
        relay.spool.dead_summary().map(|mut summary| {
            summary.name_default_topic(relay.publisher.default_topic());
            summary
        })
    })
    .await
    {
        Ok(Ok(summary)) => HttpResponse::Ok().json(summary),
        Ok(Err(e)) => HttpResponse::InternalServerError().body(format!("{e}\n")),
        Err(e) => HttpResponse::InternalServerError().body(format!("{e}\n")),
    }
}

/// Moves the dead table back to the end of the spool for the forwarder to send, once the cause
/// is fixed (`tim-relay dead replay`). POST only; the admin listener is not for the public.
async fn dead_replay(state: web::Data<AdminState>) -> HttpResponse {
    let relay = state.relay.clone();
    match web::block(move || relay.spool.replay_dead()).await {
        Ok(Ok(done)) => HttpResponse::Ok().json(done),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable().body(format!("{e}\n")),
        Err(e) => HttpResponse::InternalServerError().body(format!("{e}\n")),
    }
}

async fn metrics_text(state: web::Data<AdminState>) -> HttpResponse {
    let relay = state.relay.clone();
    let text = web::block(move || {
        relay
            .metrics
            .observe_spool(&relay.spool.reading(relay.publisher.watch().is_down()));
        relay.metrics.render()
    })
    .await
    .unwrap_or_else(|e| format!("# metrics unavailable: {e}\n"));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}
