//! Threads of its own for building browser views. A view of a large
//! directory takes hundreds of megabytes while it is built; on the tokio
//! blocking pool each build could land on another thread, and the
//! allocator keeps a heap per thread, so a crowd of first requests grew
//! the gateway by a build's peak for every thread it touched. A fixed set
//! of builder threads keeps that to one build's peak per thread, and the
//! number of threads is the number of builds at once.
//!
//! They also run below the proxy workers' priority (nice +[`NICENESS`] on
//! Linux): a crowd of first requests right after a push is served from
//! what the workers leave, so the proxy keeps its throughput and the crowd
//! takes a little longer.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// How far below the workers builders run (Linux nice values: each step is
/// about 1.25× less CPU under contention; at +10 a builder gets about a
/// tenth of a busy worker's share). Measured in docs/BENCHMARKS-HISTORY.md: +5 kept
/// 0.66× of the proxy's throughput during a crowd, +15 0.91×.
pub const NICENESS: i32 = 10;

/// A fixed pool of threads that build browser views, one job at a time each.
pub struct ViewBuilder {
    jobs: mpsc::Sender<Job>,
}

impl ViewBuilder {
    /// `threads` builder threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("portcullis-views-{i}"))
                .spawn(move || {
                    super::priority::lower(NICENESS, "a view builder");
                    loop {
                        // The lock is held only to take the next job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(ViewBuilder { jobs: tx })
    }

    /// Runs `build` on a builder thread and waits for its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        build: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(build());
        });
        self.jobs
            .send(job)
            .map_err(|_| "the view builders stopped".to_string())?;
        rx.await
            .map_err(|_| "a view builder stopped during the build".to_string())?
    }
}
