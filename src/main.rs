//! The `tim-relay` binary: logging, configuration, build, run, flush.

use tim_relay::config::Config;
use tim_relay::http::Application;

/// mimalloc instead of glibc's malloc: under load glibc's malloc/free (and its consolidation
/// of freed chunks) took about a fifth of the relay's CPU in the HTTP workers; see README,
/// Performance.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = Config::from_env().unwrap_or_else(|e| exit_with(e));
    // The summary is logged once everything is checked, so a bad value prints only its one line.
    let summary = config.to_string();
    let app = Application::build(config).unwrap_or_else(|e| exit_with(e));
    log::info!(
        "started tim-relay {} on port {}: {summary}",
        env!("CARGO_PKG_VERSION"),
        app.port()
    );
    app.run_until_stopped().await
}

fn exit_with(err: impl std::fmt::Display) -> ! {
    eprintln!("tim-relay: {err}");
    std::process::exit(2);
}
