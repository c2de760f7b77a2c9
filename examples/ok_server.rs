//! The HTTP ceiling for `scripts/bench.sh`: an actix-web server that answers the callback POST
//! with the relay's fixed OK body and does nothing else. It still reads the whole body, so the
//! difference between it and the relay is the relay's own work (checks, parsing, the change
//! event, Kafka). Listener, worker count, keep-alive and connection bound follow the relay's
//! variables and defaults, so both servers face the same load in the same shape.
//!
//! `OK_SERVER_DELAY_US` (default 0) makes it wait that long before answering, as the relay
//! waits for Kafka's acknowledgement: what an HTTP exchange costs when answers are not
//! immediate (fewer requests per wake-up, more timers and context switches), without any of
//! the relay's work (`BENCH_WAITING_CEILING_US` in scripts/bench.sh).
//!
//!   RELAY_LISTEN=127.0.0.1:8080 cargo run --release --example ok_server

use std::time::Duration;

use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpResponse, HttpServer};

/// The answer the relay gives once an event is safe (`src/answer.rs`, `OK_BODY`).
const OK_BODY: &str = r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}"#;
/// The relay's default `RELAY_BODY_LIMIT_BYTES`.
const BODY_LIMIT: usize = 1024 * 1024;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("ok_server: {name} is not valid: {v:?}");
            std::process::exit(2)
        }),
        Err(_) => default,
    }
}

async fn callback(payload: web::Payload, delay: web::Data<Duration>) -> HttpResponse {
    match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(_body)) => {
            if !delay.is_zero() {
                tokio::time::sleep(**delay).await;
            }
            HttpResponse::Ok().content_type("application/json").body(OK_BODY)
        }
        _ => HttpResponse::BadRequest().finish(),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen: String = env_or("RELAY_LISTEN", "0.0.0.0:8080".to_string());
    let path: String = env_or("RELAY_CALLBACK_PATH", "/callback".to_string());
    let default_workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers: usize = env_or("RELAY_WORKERS", default_workers).max(1);
    let keep_alive: u64 = env_or("RELAY_KEEP_ALIVE_SECS", 60);
    let max_connections: usize = env_or("RELAY_MAX_CONNECTIONS", 4096);
    let delay = web::Data::new(Duration::from_micros(env_or("OK_SERVER_DELAY_US", 0)));
    eprintln!("ok_server: listening on {listen}, {workers} workers");
    HttpServer::new(move || {
        App::new()
            .app_data(delay.clone())
            .route(&path, web::post().to(callback))
            .route("/healthz", web::get().to(healthz))
    })
    .workers(workers)
    .max_connections(max_connections.div_ceil(workers).max(1))
    .client_request_timeout(Duration::from_secs(5))
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(if keep_alive == 0 {
        KeepAlive::Disabled
    } else {
        KeepAlive::Timeout(Duration::from_secs(keep_alive))
    })
    .shutdown_timeout(5)
    .bind(listen)?
    .run()
    .await
}
