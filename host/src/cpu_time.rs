//! CPU time, for what a swap costs (`portcullis_swap_cpu_seconds`) and
//! for the swap benchmark: a swap runs on one thread, so that thread's
//! CPU time is the swap's, whatever the wall clock did meanwhile.

use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

/// CPU time the calling thread has used.
pub fn thread() -> Duration {
    since_start(ClockId::ThreadCPUTime)
}

/// CPU time the whole process has used.
pub fn process() -> Duration {
    since_start(ClockId::ProcessCPUTime)
}

fn since_start(clock: ClockId) -> Duration {
    let t = clock_gettime(clock);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}
