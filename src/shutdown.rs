//! Shutdown signals, for every role of the binary.

/// Resolves with the signal's name at SIGTERM or SIGINT.
pub async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            log::error!("cannot listen for SIGTERM/SIGINT; stop the relay with SIGKILL");
            std::future::pending().await
        }
    }
}
