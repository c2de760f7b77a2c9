//! The reconciler's admin listener: `/healthz`, `/readyz`, `/metrics`.
//!
//! `/healthz` answers 200 while the sweep loop is alive: the loop calls [`Health::beat`] on
//! every turn, and also while it waits (for the rate budget, which can hold a call for up to
//! a minute after frequency errors, or for the next sweep, up to `RECONCILE_INTERVAL_SECS`),
//! so that only a loop that is stuck goes [`STALL`] without a beat. `/readyz` answers 200
//! once the configuration is read and Kafka reached ([`Health::set_ready`]), and 503 again
//! while the process stops.

use std::sync::Arc;
use std::time::Duration;

#[cfg(test)]
use actix_web::{web, App};

#[cfg(test)]
use crate::ops::loop_admin::now_ms;
use crate::ops::loop_admin::{self, Listener, Says};

use super::metrics::ReconcileMetrics;

/// How long the sweep loop may go without a beat before `/healthz` fails: twice the longest
/// backoff of the rate budget (60 s), so a loop waiting for the budget, beating before and
/// after each wait, stays healthy.
pub const STALL: Duration = Duration::from_secs(120);

const SAYS: Says = Says {
    stall: STALL,
    silent: "the sweep loop has not beaten",
    not_ready: "reading the configuration or reaching Kafka",
};

/// What the sweep loop tells the admin listener.
pub use crate::ops::loop_admin::Heartbeat as Health;

/// Serves the admin endpoints on `listen` until the process ends (one worker, no signal
/// handling: the reconciler's own shutdown stops it).
pub fn server(
    listen: std::net::SocketAddr,
    metrics: Arc<ReconcileMetrics>,
    health: Arc<Health>,
) -> std::io::Result<actix_web::dev::Server> {
    loop_admin::server(listen, listener(metrics, health))
}

fn listener(metrics: Arc<ReconcileMetrics>, health: Arc<Health>) -> Listener {
    Listener {
        says: &SAYS,
        health: health.clone(),
        ready_gauge: metrics.ready.clone(),
        render: Box::new(move || {
            // The gauge follows /readyz even where nothing probes it (docker, a test run).
            metrics.ready.set(i64::from(health.ready(&SAYS).0));
            metrics.render()
        }),
    }
}

#[cfg(test)]
fn app(
    metrics: Arc<ReconcileMetrics>,
    health: Arc<Health>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new().configure(loop_admin::routes(web::Data::new(listener(metrics, health))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;
    use actix_web::test;

    async fn get(metrics: &Arc<ReconcileMetrics>, health: &Arc<Health>, path: &str) -> (StatusCode, String) {
        let service = test::init_service(app(metrics.clone(), health.clone())).await;
        let response = test::call_service(&service, test::TestRequest::get().uri(path).to_request()).await;
        let status = response.status();
        let body = test::read_body(response).await;
        (status, String::from_utf8(body.to_vec()).expect("UTF-8"))
    }

    #[actix_web::test]
    async fn healthz_follows_the_heartbeat() {
        let (metrics, health) = (Arc::new(ReconcileMetrics::new()), Health::new());
        assert_eq!(get(&metrics, &health, "/healthz").await.0, StatusCode::OK);

        health.last_beat_at(now_ms() - STALL.as_millis() as u64 - 5_000);
        let (status, body) = get(&metrics, &health, "/healthz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("has not beaten for 125 s"), "{body}");

        health.beat();
        assert_eq!(get(&metrics, &health, "/healthz").await.0, StatusCode::OK);
    }

    #[actix_web::test]
    async fn healthz_does_not_wait_for_readiness() {
        let (metrics, health) = (Arc::new(ReconcileMetrics::new()), Health::new());
        assert_eq!(get(&metrics, &health, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(&metrics, &health, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[actix_web::test]
    async fn readyz_once_ready_until_stopping() {
        let (metrics, health) = (Arc::new(ReconcileMetrics::new()), Health::new());
        let (status, body) = get(&metrics, &health, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("configuration or reaching Kafka"), "{body}");
        assert_eq!(metrics.ready.get(), 0);

        health.set_ready(true);
        assert_eq!(
            get(&metrics, &health, "/readyz").await,
            (StatusCode::OK, "ok\n".into())
        );
        assert_eq!(metrics.ready.get(), 1);

        // A stuck loop is not ready either.
        health.last_beat_at(now_ms() - STALL.as_millis() as u64 - 1_000);
        assert_eq!(
            get(&metrics, &health, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.beat();

        health.set_ready(false);
        assert_eq!(
            get(&metrics, &health, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.set_ready(true);
        health.set_stopping();
        let (status, body) = get(&metrics, &health, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"), "{body}");
        assert_eq!(metrics.ready.get(), 0);
    }

    #[actix_web::test]
    async fn metrics_are_rendered_with_readiness() {
        let (metrics, health) = (Arc::new(ReconcileMetrics::new()), Health::new());
        health.set_ready(true);
        metrics.sweeps.with_label_values(&["stopped"]).inc();
        let (status, body) = get(&metrics, &health, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("tim_relay_reconcile_sweeps_total{result=\"stopped\"} 1\n"),
            "{body}"
        );
        assert!(body.contains("tim_relay_reconcile_ready 1\n"), "{body}");
    }

    #[actix_web::test]
    async fn unknown_paths_are_404() {
        let (metrics, health) = (Arc::new(ReconcileMetrics::new()), Health::new());
        assert_eq!(
            get(&metrics, &health, "/spool/dead").await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[actix_web::test]
    async fn server_binds_and_answers() {
        let (metrics, health) = (Arc::new(ReconcileMetrics::new()), Health::new());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("an address");
        drop(listener);
        let server = server(addr, metrics, health).expect("bound");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(addr).expect("connect");
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .expect("write");
            let mut text = String::new();
            stream.read_to_string(&mut text).expect("read");
            text
        })
        .await
        .expect("joined");
        handle.stop(false).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
