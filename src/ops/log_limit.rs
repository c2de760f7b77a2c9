//! Bounds how many refusal lines reach the log, so a stranger hammering the relay with bad
//! requests cannot flood it; what is held back is counted and reported once a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LogLimit {
    per_second: u32,
    window: Mutex<Window>,
}

struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

/// What to do with one more line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` lines were held back in the window that just ended.
    Log {
        suppressed: u64,
    },
    Suppress,
}

impl LogLimit {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window: Mutex::new(Window {
                started: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    pub fn check(&self, now: Instant) -> Verdict {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let mut suppressed = 0;
        if now.duration_since(w.started) >= Duration::from_secs(1) {
            suppressed = std::mem::take(&mut w.suppressed);
            w.started = now;
            w.logged = 0;
        }
        if w.logged < self.per_second {
            w.logged += 1;
            Verdict::Log { suppressed }
        } else {
            w.suppressed += 1;
            Verdict::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_beyond_the_rate_are_held_back_and_counted_in_the_next_window() {
        let limit = LogLimit::new(2);
        let t0 = Instant::now();
        assert_eq!(limit.check(t0), Verdict::Log { suppressed: 0 });
        assert_eq!(limit.check(t0), Verdict::Log { suppressed: 0 });
        assert_eq!(limit.check(t0), Verdict::Suppress);
        assert_eq!(limit.check(t0), Verdict::Suppress);
        assert_eq!(
            limit.check(t0 + Duration::from_millis(1001)),
            Verdict::Log { suppressed: 2 }
        );
    }
}
