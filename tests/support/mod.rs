//! The harness the end-to-end tests share: one lock per shared resource, the timeline, the relay
//! as a child process, the single-node and three-node brokers, the load of ordered callbacks,
//! and the reading and tallying of topics. Included with `mod support;`; a test crate cannot use
//! another's items, so each one compiles what it needs of this.
// Each test crate uses part of it.
#![allow(dead_code)]

pub mod broker;
pub mod cluster;
pub mod load;
pub mod lock;
pub mod relay;
pub mod state_model;
pub mod tally;
pub mod timeline;

/// The repository: scripts, `target/` and the logs are found from it.
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Polls `f` every `every` until it gives a value, or says what it waited for once `within` has
/// passed.
pub fn wait_for<T>(
    within: std::time::Duration,
    every: std::time::Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("waited {} s for {what}", within.as_secs()));
        }
        std::thread::sleep(every);
    }
}
