//! Background work below the proxy workers' priority: the threads that
//! cut browser views and the thread that loads a new snapshot. Under load
//! the workers keep the CPU and the background work takes longer; on an
//! idle machine nothing changes.

/// How far below the workers a snapshot loads (nice value). Measured in
/// docs/BENCHMARKS-HISTORY.md ("One load per swap").
pub const SWAP_NICENESS: i32 = 5;

/// Lowers the calling thread's priority by `niceness` (Linux nice values:
/// each step is about 1.25× less CPU under contention). Unprivileged, it
/// cannot be raised again: call it on a thread of its own. A failure only
/// means the work competes with the workers as an equal.
pub fn lower(niceness: i32, what: &str) {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), niceness) {
            tracing::warn!(error = %e, "cannot lower the priority of {what}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (niceness, what);
}
