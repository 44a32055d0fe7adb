//! The decision log: one JSON object per line, per decision.
//!
//! Lines are handed to a background writer (`tracing-appender`'s
//! non-blocking writer, the tracing ecosystem's answer to exactly this), so
//! a slow disk or a full pipe never holds a request; under overload lines
//! are dropped rather than requests delayed.

use std::io::Write;

use serde::Serialize;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

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
    /// Authentication and decision time, in microseconds.
    pub latency_us: u64,
    /// The route is in shadow mode: a deny was logged and the request forwarded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// The HTTP status the gateway itself answered (absent when forwarded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// Where decision lines go.
pub struct DecisionLog {
    writer: Option<NonBlocking>,
    _guard: Option<WorkerGuard>,
}

impl DecisionLog {
    /// `stdout`, `stderr`, `off`, or a file path (appended).
    pub fn open(target: &str) -> std::io::Result<Self> {
        let builder = || {
            NonBlockingBuilder::default()
                .lossy(true)
                .buffered_lines_limit(64 * 1024)
        };
        let (writer, guard) = match target {
            "off" => {
                return Ok(DecisionLog {
                    writer: None,
                    _guard: None,
                });
            }
            "stdout" => builder().finish(std::io::stdout()),
            "stderr" => builder().finish(std::io::stderr()),
            path => builder().finish(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        Ok(DecisionLog {
            writer: Some(writer),
            _guard: Some(guard),
        })
    }

    /// No log.
    pub fn off() -> Self {
        DecisionLog {
            writer: None,
            _guard: None,
        }
    }

    /// Writes one line (dropped if the writer is behind).
    pub fn write(&self, line: &DecisionLine<'_>) {
        let Some(w) = &self.writer else { return };
        let mut buf = Vec::with_capacity(320);
        if serde_json::to_writer(&mut buf, line).is_ok() {
            buf.push(b'\n');
            let mut w = w.clone();
            // One write per line: the writer queues whole buffers.
            let _ = w.write(&buf);
        }
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.writer.is_some()
    }
}
