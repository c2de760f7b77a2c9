//! The admin listener of a role that runs one loop (`materialize`, `reconcile`): `/healthz`
//! answers 200 while the loop beats ([`Heartbeat::beat`]) and 503 once it has been silent for
//! longer than its [`Says::stall`]; `/readyz` answers 200 once the role says it is ready
//! ([`Heartbeat::set_ready`]) and its loop is alive, and 503 again while the process stops;
//! `/metrics` is the role's own text.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpResponse, HttpServer};
use prometheus::IntGauge;

/// What a role says of its loop in the answers.
pub struct Says {
    /// How long the loop may go without a beat before `/healthz` fails.
    pub stall: Duration,
    /// `/healthz` of a silent loop says "unhealthy: " this " for N s".
    pub silent: &'static str,
    /// `/readyz` before the role is ready says "not ready: " this.
    pub not_ready: &'static str,
}

/// What the loop tells the admin listener.
pub struct Heartbeat {
    /// Milliseconds since 1970 of the loop's last beat.
    last_beat_ms: AtomicU64,
    /// What the role needs before it can serve is there.
    ready: AtomicBool,
    stopping: AtomicBool,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Heartbeat {
    /// A handle that counts as beaten now and is not ready.
    pub fn new() -> Arc<Self> {
        Arc::new(Heartbeat {
            last_beat_ms: AtomicU64::new(now_ms()),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        })
    }

    /// The loop is alive: call it on every turn, and at least every few seconds while waiting.
    pub fn beat(&self) {
        self.last_beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The role is ready (`true`), or not any more (`false`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The process is stopping: `/readyz` answers 503 from now on.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_beat_ms.load(Ordering::Relaxed)))
    }

    /// `/healthz`: whether the loop is alive, and the sentence that says so.
    pub fn live(&self, says: &Says) -> (bool, String) {
        let silent = self.silent_for();
        if silent > says.stall {
            (
                false,
                format!("unhealthy: {} for {} s\n", says.silent, silent.as_secs()),
            )
        } else {
            (true, "ok\n".into())
        }
    }

    /// `/readyz`: whether the role is ready, and the sentence that says why.
    pub fn ready(&self, says: &Says) -> (bool, String) {
        if self.stopping.load(Ordering::Relaxed) {
            return (false, "not ready: shutting down\n".into());
        }
        if !self.ready.load(Ordering::Relaxed) {
            return (false, format!("not ready: {}\n", says.not_ready));
        }
        self.live(says)
    }

    #[cfg(test)]
    pub fn last_beat_at(&self, ms: u64) {
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }
}

/// What the listener serves.
pub struct Listener {
    pub says: &'static Says,
    pub health: Arc<Heartbeat>,
    /// Set to 1 or 0 on every `/readyz`.
    pub ready_gauge: IntGauge,
    /// The text of `/metrics`.
    pub render: Box<dyn Fn() -> String + Send + Sync>,
}

/// The three routes, for [`App::configure`].
pub fn routes(listener: web::Data<Listener>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .app_data(listener)
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(render_metrics));
    }
}

/// Serves the admin endpoints on `listen` until the process ends (one worker, no signal
/// handling: the role's own shutdown stops it).
pub fn server(listen: std::net::SocketAddr, listener: Listener) -> std::io::Result<actix_web::dev::Server> {
    let listener = web::Data::new(listener);
    let server = HttpServer::new(move || App::new().configure(routes(listener.clone())))
        .workers(1)
        .disable_signals()
        .bind(listen)?
        .run();
    Ok(server)
}

fn answer((ok, text): (bool, String)) -> HttpResponse {
    let mut response = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.content_type("text/plain; charset=utf-8").body(text)
}

async fn healthz(listener: web::Data<Listener>) -> HttpResponse {
    answer(listener.health.live(listener.says))
}

async fn readyz(listener: web::Data<Listener>) -> HttpResponse {
    let verdict = listener.health.ready(listener.says);
    listener.ready_gauge.set(i64::from(verdict.0));
    answer(verdict)
}

async fn render_metrics(listener: web::Data<Listener>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body((listener.render)())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAYS: Says = Says {
        stall: Duration::from_secs(60),
        silent: "the fold loop has not turned",
        not_ready: "joining the consumer group",
    };

    #[test]
    fn the_answers_use_the_roles_words() {
        let health = Heartbeat::new();
        assert_eq!(health.live(&SAYS), (true, "ok\n".into()));
        assert_eq!(
            health.ready(&SAYS),
            (false, "not ready: joining the consumer group\n".into())
        );
        health.set_ready(true);
        assert_eq!(health.ready(&SAYS), (true, "ok\n".into()));
        health.last_beat_at(now_ms() - 61_000);
        let stalled = (false, "unhealthy: the fold loop has not turned for 61 s\n".into());
        assert_eq!(health.live(&SAYS), stalled);
        assert_eq!(health.ready(&SAYS), stalled);
        health.beat();
        health.set_stopping();
        assert_eq!(health.ready(&SAYS), (false, "not ready: shutting down\n".into()));
    }
}
