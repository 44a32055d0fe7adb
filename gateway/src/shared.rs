//! What every connection of every listener shares: the compiled
//! configuration, the snapshot swapper, metrics and the decision log. It
//! sits below every stage that uses it; nothing here knows about
//! listeners.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{Method, StatusCode};

use portcullis_snapshots::Candidate;

use crate::compiled::CompiledConfig;
use crate::decision_log::{DecisionLine, DecisionLog};
use crate::metrics::Metrics;
use crate::static_site::StaticSite;
use portcullis_host::module::HostError;
use portcullis_host::swap::{Installed, Source, SwapError, Swapper};
use portcullis_host::view_builder::ViewBuilder;

/// State shared by every connection.
pub(crate) struct Shared {
    /// The configuration, compiled.
    pub(crate) compiled: CompiledConfig,
    /// The serving snapshot and the candidates' way in.
    pub(crate) swapper: Arc<Swapper>,
    pub(crate) metrics: Metrics,
    log: DecisionLog,
    /// Files served without authentication on the proxy listener.
    pub(crate) site: Option<StaticSite>,
    /// The threads that build browser views (`GET /-/snapshot/me`): half
    /// the workers' worth, so a crowd of first requests neither fills
    /// memory nor takes every core from the proxy.
    pub(crate) view_builds: ViewBuilder,
    /// Moves whenever what decided an open exchange may have changed — a
    /// snapshot installed, the identity provider's keys refreshed, the
    /// proxy listener's client-certificate trust reloaded: long-lived
    /// exchanges (upgrades, gRPC calls, streaming responses) re-check
    /// their standing when it does. Waited on by those that are idle.
    pub(crate) swaps: tokio::sync::watch::Sender<u64>,
    /// The same count, read without a lock by responses that check it as
    /// their frames pass (moved before `swaps` is told).
    rechecks: std::sync::atomic::AtomicU64,
    /// Set when the gateway shuts down: upgraded connections close (1001).
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(
        compiled: CompiledConfig,
        swapper: Arc<Swapper>,
        metrics: Metrics,
        log: DecisionLog,
        site: Option<StaticSite>,
        view_builds: ViewBuilder,
    ) -> Self {
        Shared {
            compiled,
            swapper,
            metrics,
            log,
            site,
            view_builds,
            swaps: tokio::sync::watch::Sender::new(0),
            rechecks: std::sync::atomic::AtomicU64::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Tells every open exchange to re-check its standing.
    pub(crate) fn recheck_all(&self) {
        self.rechecks
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.swaps.send_modify(|n| *n += 1);
    }

    /// How many times exchanges were told to re-check: read before a
    /// decision, compared later.
    pub(crate) fn recheck_count(&self) -> u64 {
        self.rechecks.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The settings as configured.
    pub(crate) fn config(&self) -> &crate::config::GatewayConfig {
        &self.compiled.config
    }

    /// Installs a candidate — a snapshot, or a delta to the one serving —
    /// off the async workers, counting and logging
    /// the outcome. The serving snapshot is untouched on error.
    pub(crate) async fn install(
        self: &Arc<Self>,
        candidate: Candidate,
        source: Source,
        force: bool,
    ) -> Result<Installed, SwapError> {
        self.metrics
            .received(source.as_str(), candidate.bytes().len());
        let swapper = Arc::clone(&self.swapper);
        // On a thread of its own, below the workers' priority: a swap
        // under load takes longer rather than taking the workers' CPU.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("portcullis-swap".into())
            .spawn(move || {
                portcullis_host::priority::lower(
                    portcullis_host::priority::SWAP_NICENESS,
                    "the snapshot loader",
                );
                let _ = tx.send(swapper.install(candidate, source, force));
            });
        let result = match spawned {
            Ok(_) => rx.await.unwrap_or_else(|e| {
                Err(SwapError::Load(HostError::Trap(format!(
                    "loader failed: {e}"
                ))))
            }),
            Err(e) => Err(SwapError::Load(HostError::Instantiate(format!(
                "cannot start the loader thread: {e}"
            )))),
        };
        if result.is_ok() {
            self.recheck_all();
        }
        match &result {
            Ok(done) => self.metrics.swapped(&crate::metrics::Swapped {
                took: done.took,
                cpu: done.cpu,
            }),
            Err(e) => {
                self.metrics.swap_failed(source.as_str());
                tracing::warn!(source = source.as_str(), error = %e, "candidate snapshot refused; the current one keeps serving");
            }
        }
        result
    }

    /// Records one decision: its latency in the metrics, a line in the log.
    pub(crate) fn log_decision(&self, l: Logged<'_>) {
        let latency = l.started.elapsed();
        self.metrics.decision_time(latency.as_secs_f64());
        if !self.log.enabled() {
            return;
        }
        let time = rfc3339_now();
        self.log.write(&DecisionLine {
            time: &time,
            principal: l.principal,
            acting_as: l.acting_as,
            method: l.method.as_str(),
            path: l.path,
            route: l.route,
            action: l.action,
            resource: l.resource,
            decision: if l.allowed { "allow" } else { "deny" },
            reason: l.reason,
            revision: l.revision,
            delta: l.delta,
            latency_us: latency.as_micros() as u64,
            shadow: l.shadow,
            status: l.status.map(|s| s.as_u16()),
        });
    }
}

/// The gateway's clock, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What the decision log records of one request.
#[derive(Clone, Copy)]
pub(crate) struct Logged<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    pub(crate) route: Option<&'a str>,
    pub(crate) action: Option<&'a str>,
    pub(crate) resource: Option<&'a str>,
    pub(crate) principal: Option<&'a str>,
    pub(crate) acting_as: Option<&'a str>,
    pub(crate) allowed: bool,
    pub(crate) reason: &'a str,
    pub(crate) revision: Option<u64>,
    /// The revision came as a delta.
    pub(crate) delta: bool,
    pub(crate) started: Instant,
    pub(crate) shadow: bool,
    pub(crate) status: Option<StatusCode>,
}
