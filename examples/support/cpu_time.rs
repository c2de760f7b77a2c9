//! CPU time from Linux's clocks, for the examples that measure cost in process
//! (`#[path = "support/cpu_time.rs"] mod cpu_time;`).

use std::time::Duration;

/// `CLOCK_PROCESS_CPUTIME_ID`: every thread of this process.
#[allow(dead_code)]
pub const PROCESS: i32 = 2;
/// `CLOCK_THREAD_CPUTIME_ID`: the calling thread only.
#[allow(dead_code)]
pub const THREAD: i32 = 3;

/// CPU time used so far on `clock` (`PROCESS` or `THREAD`).
pub fn used(clock: i32) -> Duration {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
    let rc = unsafe { clock_gettime(clock, &mut t) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(t.sec as u64, t.nsec as u32)
}
