//! The decision log: one JSON object per line, per decision.
//!
//! Lines are handed to a background writer, so a slow disk or a full pipe
//! never holds a request; under overload lines are dropped (and counted in
//! a warning) rather than requests delayed.

use std::io::Write;

use serde::Serialize;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// One decision, as logged.
#[derive(Debug, Serialize)]
pub struct DecisionLine<'a> {
    /// RFC 3339 time of the decision.
    pub time: &'a str,
    /// The principal (`user/…`, `apikey/<sha256>`, …), if authenticated.
    pub principal: Option<&'a str>,
    /// The user an API key acted as.
    pub acting_as: Option<&'a str>,
    /// The HTTP method.
    pub method: &'a str,
    /// The normalized path.
    pub path: &'a str,
    /// The route's name.
    pub route: Option<&'a str>,
    /// The action checked.
    pub action: Option<&'a str>,
    /// The resource checked.
    pub resource: Option<&'a str>,
    /// `allow` or `deny`.
    pub decision: &'a str,
    /// The engine's reason code, or the gateway's (`unauthenticated`, `no_route`, …).
    pub reason: &'a str,
    /// The snapshot revision decided on.
    pub revision: Option<u64>,
    /// That revision came as a delta to the one before it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
    /// Authentication and decision time, in microseconds.
    pub latency_us: u64,
    /// The route is in shadow mode: a deny was logged and the request forwarded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// The HTTP status the gateway itself answered (absent when forwarded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// Lines waiting for the writer thread, and how many were dropped.
struct Pending {
    buf: Vec<u8>,
    dropped: u64,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// Most bytes queued before lines are dropped (the writer is behind).
const MAX_PENDING: usize = 16 << 20;
/// How often the writer thread writes what has queued.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// Where decision lines go.
///
/// Requests append their line to a shared buffer under a short lock; a
/// writer thread takes the whole buffer every 20 ms and writes it in one
/// call. (A channel that wakes a writer per line — `tracing-appender`'s
/// design, tried first — cost a fifth of the gateway's throughput in
/// `scripts/bench-gateway`.) If the writer falls 16 MiB behind, lines are
/// dropped and counted rather than requests slowed.
pub struct DecisionLog {
    shared: Option<Arc<Shared>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl DecisionLog {
    /// `stdout`, `stderr`, `off`, or a file path (appended).
    pub fn open(target: &str) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            "off" => return Ok(DecisionLog::off()),
            "stdout" => Box::new(std::io::stdout()),
            "stderr" => Box::new(std::io::stderr()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(64 * 1024),
                dropped: 0,
                closed: false,
            }),
            wake: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("portcullis-decision-log".into())
            .spawn(move || write_loop(&theirs, out))?;
        Ok(DecisionLog {
            shared: Some(shared),
            writer: Some(writer),
        })
    }

    /// No log.
    pub fn off() -> Self {
        DecisionLog {
            shared: None,
            writer: None,
        }
    }

    /// Queues one line (dropped if the writer is far behind).
    pub fn write(&self, line: &DecisionLine<'_>) {
        let Some(shared) = &self.shared else { return };
        let mut one = Vec::with_capacity(320);
        if serde_json::to_writer(&mut one, line).is_err() {
            return;
        }
        one.push(b'\n');
        let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.buf.len() + one.len() > MAX_PENDING {
            p.dropped += 1;
        } else {
            p.buf.extend_from_slice(&one);
        }
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.shared.is_some()
    }
}

fn write_loop(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut spare = Vec::with_capacity(64 * 1024);
    loop {
        let (closed, dropped) = {
            let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            // Let lines gather for one period (a close cuts it short): one
            // write per period, not one per line.
            if !p.closed {
                p = shared
                    .wake
                    .wait_timeout(p, FLUSH_EVERY)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            std::mem::swap(&mut p.buf, &mut spare);
            (p.closed, std::mem::take(&mut p.dropped))
        };
        if dropped > 0 {
            tracing::warn!(dropped, "decision log behind: lines dropped");
        }
        if !spare.is_empty() {
            if let Err(e) = out.write_all(&spare).and_then(|()| out.flush()) {
                tracing::error!(error = %e, "cannot write the decision log");
            }
            spare.clear();
        }
        if closed {
            return;
        }
    }
}

impl Drop for DecisionLog {
    /// Writes what is queued before the gateway exits.
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .closed = true;
            shared.wake.notify_all();
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
