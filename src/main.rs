//! The `tim-relay` binary: the relay (no arguments), `materialize`, `reconcile [--once]`,
//! `state GROUP_ID` and `dead list|replay`.

use std::io::Write;

use tim_relay::config::{Config, LogFormat};
use tim_relay::startup::Application;
use tim_relay::state::materialize::config::StateConfig;
use tim_relay::state::materialize::show::{self, Found};

/// mimalloc instead of glibc's malloc: under load glibc's malloc/free (and its consolidation
/// of freed chunks) took about a fifth of the relay's CPU in the HTTP workers; see
/// docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: tim-relay                    relay Tencent IM callbacks to Kafka
       tim-relay materialize        fold the group events into the compacted state topic
       tim-relay reconcile          repair the state from Tencent's REST API, a sweep every interval
       tim-relay reconcile --once   one sweep, then a summary line
       tim-relay state GROUP_ID     print one group's current state
       tim-relay dead list          count the spool's dead table by topic and reason (JSON)
       tim-relay dead replay        send the dead table again, after everything waiting
Configuration comes from environment variables; see the README.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => {
            if let Err(e) = relay() {
                exit_with(e)
            }
        }
        ["materialize"] => materialize(),
        ["reconcile"] => reconcile(false),
        ["reconcile", "--once"] => reconcile(true),
        ["state", group_id] => show_state(group_id),
        ["dead", "list"] => dead(tim_relay::ops::dead_letters::Action::List),
        ["dead", "replay"] => dead(tim_relay::ops::dead_letters::Action::Replay),
        // A closed pipe (`tim-relay help | head -1`) is not an error worth a panic.
        ["help" | "--help" | "-h"] => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

#[actix_web::main]
async fn relay() -> std::io::Result<()> {
    // Configuration comes first: its one error line is plain text, whatever the log format.
    let config = Config::from_env().unwrap_or_else(|e| exit_with(e));
    init_logging(config.shared.log_format);
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

/// `tim-relay materialize`: runs until SIGTERM/SIGINT; exits 1 when the fold cannot go on.
fn materialize() {
    let config = StateConfig::from_env().unwrap_or_else(|e| exit_with(e));
    init_logging(config.shared.log_format);
    log::info!(
        "started tim-relay {} materialize (admin {}): {config}",
        env!("CARGO_PKG_VERSION"),
        config.shared.admin_listen
    );
    if let Err(e) = tim_relay::state::materialize::run(config) {
        log::error!("materialize stopped: {e}");
        std::process::exit(1);
    }
}

/// `tim-relay reconcile [--once]`: exit 0 when done (or stopped by a signal), 3 for a
/// configuration or authentication error Tencent answered, 1 for a failed `--once` sweep.
fn reconcile(once: bool) {
    use tim_relay::reconcile::config::ReconcileConfig;
    use tim_relay::reconcile::runner::Ended;
    let config = ReconcileConfig::from_env().unwrap_or_else(|e| exit_with(e));
    init_logging(config.state.shared.log_format);
    log::info!(
        "started tim-relay {} reconcile{}: {config}",
        env!("CARGO_PKG_VERSION"),
        if once { " --once" } else { "" }
    );
    let system = actix_web::rt::System::new();
    let ended = system.block_on(tim_relay::reconcile::run(config, once));
    match ended {
        Ended::Done => {}
        Ended::Stop(line) => {
            eprintln!("tim-relay: {line}");
            std::process::exit(3);
        }
        Ended::Failed(why) => {
            eprintln!("tim-relay: reconcile: {why}");
            std::process::exit(1);
        }
    }
}

/// `tim-relay state GROUP_ID`: the document on stdout; exit 1 when the group has none.
fn show_state(group_id: &str) {
    let config = StateConfig::from_env().unwrap_or_else(|e| exit_with(e));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match show::find(&config, group_id) {
        Ok(Found::Live(doc)) => {
            let value: serde_json::Value = serde_json::from_slice(&doc).unwrap_or_else(|e| exit_with(e));
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_else(|e| exit_with(e))
            );
        }
        Ok(Found::Destroyed(at)) => {
            let when = at.map_or("at an unknown time".to_string(), |ms| {
                format!("at event_time_ms {ms}")
            });
            eprintln!("tim-relay: group {group_id} was destroyed {when}");
            std::process::exit(1);
        }
        Ok(Found::Missing) => {
            eprintln!(
                "tim-relay: no state for group {group_id} in {}",
                config.state_topic
            );
            std::process::exit(1);
        }
        Err(e) => exit_with(e),
    }
}

/// `tim-relay dead list|replay`: one JSON document on stdout; exit 1 when it cannot be done.
fn dead(action: tim_relay::ops::dead_letters::Action) {
    let config = Config::from_env().unwrap_or_else(|e| exit_with(e));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match tim_relay::ops::dead_letters::run(&config, action) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("tim-relay: {e}");
            std::process::exit(1);
        }
    }
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
