//! The `tim-relay` binary: configuration, logging, build, run, flush.

use std::io::Write;

use tim_relay::config::{Config, LogFormat};
use tim_relay::http::Application;

/// mimalloc instead of glibc's malloc: under load glibc's malloc/free (and its consolidation
/// of freed chunks) took about a fifth of the relay's CPU in the HTTP workers; see
/// docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    // Configuration comes first: its one error line is plain text, whatever the log format.
    let config = Config::from_env().unwrap_or_else(|e| exit_with(e));
    init_logging(config.log_format);
    // The summary is logged once everything is checked, so a bad value prints only its one line.
    let summary = config.to_string();
    let app = Application::build(config).unwrap_or_else(|e| exit_with(e));
    log::info!(
        "started tim-relay {} on port {} (admin port {}): {summary}",
        env!("CARGO_PKG_VERSION"),
        app.port(),
        app.admin_port()
    );
    app.run_until_stopped().await
}

/// env_logger to stderr, `RUST_LOG` filter (default `info`); with `RELAY_LOG_FORMAT=json`, one
/// JSON object per line that log shippers can read without a parser of their own.
fn init_logging(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

fn exit_with(err: impl std::fmt::Display) -> ! {
    eprintln!("tim-relay: {err}");
    std::process::exit(2);
}
