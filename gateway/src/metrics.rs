//! Prometheus metrics (`/-/metrics`), with the `prometheus-client` crate
//! (the Prometheus project's own Rust client, text exposition format).
//!
//! Per-route counters are created once at start-up and indexed by route,
//! so counting a request is an atomic increment, not a map lookup.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How a request ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed and forwarded.
    Allow,
    /// Denied (403).
    Deny,
    /// Denied but forwarded: the route is in shadow mode.
    ShadowDeny,
    /// No or bad credentials (401).
    Unauthenticated,
    /// No decision could be made (503).
    Unavailable,
}

const OUTCOMES: [Outcome; 5] = [
    Outcome::Allow,
    Outcome::Deny,
    Outcome::ShadowDeny,
    Outcome::Unauthenticated,
    Outcome::Unavailable,
];

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::ShadowDeny => "shadow_deny",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Unavailable => "unavailable",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    endpoint: String,
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SwapLabels {
    source: String,
    /// `full` or `delta`.
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TlsReloadLabels {
    listener: String,
    /// `ok` or `refused`.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    listener: String,
    certificate: String,
}

/// The TLS listeners' metrics, handed to the task that reloads their
/// certificates.
#[derive(Clone, Default)]
pub struct TlsMetrics {
    reloads: Family<TlsReloadLabels, Counter>,
    handshake_failures: Family<ListenerLabels, Counter>,
    expiry: Family<CertificateLabels, Gauge>,
    withdrawn: Family<WithdrawnLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WithdrawnLabels {
    listener: String,
    /// `revoked` or `expired`.
    reason: String,
}

impl TlsMetrics {
    /// Counts a connection closed because its client certificate was
    /// revoked (or its CA no longer trusted) or expired since its handshake.
    pub fn withdrawn(&self, listener: &str, reason: &str) {
        self.withdrawn
            .get_or_create(&WithdrawnLabels {
                listener: listener.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a reload of `listener`'s certificates, served or refused.
    pub fn reloaded(&self, listener: &str, ok: bool) {
        self.reloads
            .get_or_create(&TlsReloadLabels {
                listener: listener.to_string(),
                result: if ok { "ok" } else { "refused" }.to_string(),
            })
            .inc();
    }

    /// The certificates `listener` serves now: (file, end of validity).
    pub fn serving(&self, listener: &str, certificates: &[(String, i64)]) {
        self.expiry.clear();
        for (certificate, not_after) in certificates {
            self.expiry
                .get_or_create(&CertificateLabels {
                    listener: listener.to_string(),
                    certificate: certificate.clone(),
                })
                .set(*not_after);
        }
    }

    /// Counts a handshake on `listener` that failed or timed out.
    pub fn handshake_failed(&self, listener: &str) {
        self.handshake_failures
            .get_or_create(&ListenerLabels {
                listener: listener.to_string(),
            })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    /// `ok` or `failed`.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    /// What was fetched: `jwks`, `oidc_discovery`, `snapshot` (a polled
    /// URL that is a snapshot, or the snapshot a manifest names),
    /// `manifest`, `delta`.
    fetch: String,
}

/// Outbound fetches abandoned at their deadline, by what they fetched.
#[derive(Clone, Default)]
pub struct FetchMetrics {
    timeouts: Family<FetchLabels, Counter>,
}

impl FetchMetrics {
    /// Counts a fetch of `what` abandoned at its deadline.
    pub fn timed_out(&self, what: &str) {
        self.timeouts
            .get_or_create(&FetchLabels {
                fetch: what.to_string(),
            })
            .inc();
    }
}

/// The identity provider's key refreshes, handed to the task that fetches
/// them.
#[derive(Clone, Default)]
pub struct JwksMetrics {
    fetches: Family<ResultLabels, Counter>,
    keys: Gauge,
    fetch: FetchMetrics,
}

impl JwksMetrics {
    /// Counts a fetch of the provider's keys; `keys` serve now; a fetch of
    /// `timed_out` (`jwks`, `oidc_discovery`) was abandoned at its deadline.
    pub fn fetched(&self, ok: bool, keys: usize, timed_out: Option<&str>) {
        self.fetches
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "failed" }.to_string(),
            })
            .inc();
        self.keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
        if let Some(what) = timed_out {
            self.fetch.timed_out(what);
        }
    }
}

/// Upgraded connections (WebSockets): open now, and closed by the gateway.
#[derive(Clone, Default)]
pub struct TunnelMetrics {
    open: Gauge,
    opened: Counter,
    revoked: Counter,
    grpc_revoked: Counter,
    responses_revoked: Counter,
    rechecks: Counter,
}

impl TunnelMetrics {
    /// An upgraded connection opened; the guard counts it closed.
    pub fn opened(&self) -> OpenTunnel {
        self.opened.inc();
        self.open.inc();
        OpenTunnel(self.open.clone())
    }

    /// Upgraded connections open now.
    pub fn open_now(&self) -> i64 {
        self.open.get()
    }

    /// One re-check after a swap.
    pub fn rechecked(&self) {
        self.rechecks.inc();
    }

    /// One connection closed because its principal lost access.
    pub fn revoked(&self) {
        self.revoked.inc();
    }

    /// One gRPC or gRPC-Web call ended because its principal lost access.
    pub fn grpc_revoked(&self) {
        self.grpc_revoked.inc();
    }

    /// One other streaming response cut because its principal lost access.
    pub fn response_revoked(&self) {
        self.responses_revoked.inc();
    }
}

/// Counts an upgraded connection as open until dropped.
pub struct OpenTunnel(Gauge);

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What a successful swap took, as the metrics record it.
#[derive(Clone, Copy, Debug)]
pub struct Swapped {
    /// Wall time of the swap.
    pub took: std::time::Duration,
    /// CPU time of the swap.
    pub cpu: std::time::Duration,
}

/// The swap counters, counted by the swapper just before a swap is
/// published: whoever reads the new revision finds it counted.
#[derive(Clone)]
pub struct SwapCounters {
    swaps: Family<SwapLabels, Counter>,
    revision: Gauge,
    deltas_in_place: Counter,
    image_bytes: Gauge,
}

impl SwapCounters {
    /// Counts a swap from `source` to `revision` (a delta or not, applied
    /// in place or not, its image's memory).
    pub fn count(
        &self,
        source: &str,
        revision: u64,
        delta: bool,
        in_place: bool,
        image_bytes: u64,
    ) {
        self.swaps
            .get_or_create(&SwapLabels {
                source: source.to_string(),
                kind: if delta { "delta" } else { "full" }.to_string(),
            })
            .inc();
        if in_place {
            self.deltas_in_place.inc();
        }
        self.image_bytes
            .set(i64::try_from(image_bytes).unwrap_or(i64::MAX));
        self.revision
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    tls: TlsMetrics,
    jwks: JwksMetrics,
    fetch: FetchMetrics,
    tunnels: TunnelMetrics,
    by_route: Vec<[Counter; OUTCOMES.len()]>,
    unrouted: [Counter; 2],
    decision_seconds: Histogram,
    upstream_seconds: Histogram,
    upstream_errors: Family<UpstreamLabels, Counter>,
    revision: Gauge,
    swaps: Family<SwapLabels, Counter>,
    failed_swaps: Family<SourceLabels, Counter>,
    swap_seconds: Histogram,
    swap_cpu_seconds: Histogram,
    deltas_in_place: Counter,
    fetched_bytes: Family<SourceLabels, Counter>,
    image_bytes: Gauge,
    traps: Counter,
    views_built: Counter,
    /// Decision-endpoint checks: [single, batch] × [deny, allow].
    api_checks: [[Counter; 2]; 2],
    /// The pool's trap total already added to `traps`.
    traps_counted: AtomicU64,
}

/// Exponential buckets from 1 µs to about 0.5 s (decisions are sub-µs to µs).
fn decision_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(1e-6, 2.5, 15)
}

/// From 1 ms to about 60 s: a swap is a load of the snapshot, once.
fn swap_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(1e-3, 2.0, 17)
}

/// From 100 µs to about 60 s.
fn upstream_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(1e-4, 2.5, 15)
}

impl Metrics {
    /// Registers every metric; `routes` are the route labels in order.
    pub fn new(routes: &[String]) -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by route and decision",
            requests.clone(),
        );
        let counter = |route: &str, decision: &str| {
            requests
                .get_or_create(&RequestLabels {
                    route: route.to_string(),
                    decision: decision.to_string(),
                })
                .clone()
        };
        let by_route = routes
            .iter()
            .map(|r| OUTCOMES.map(|o| counter(r, o.as_str())))
            .collect();
        let unrouted = [
            counter("(none)", "no_route"),
            counter("(none)", "malformed"),
        ];
        let decision_seconds = Histogram::new(decision_buckets());
        registry.register(
            "decision_seconds",
            "Time to authenticate and decide a request, in seconds",
            decision_seconds.clone(),
        );
        let upstream_seconds = Histogram::new(upstream_buckets());
        registry.register(
            "upstream_seconds",
            "Time until the upstream's response head, in seconds",
            upstream_seconds.clone(),
        );
        let upstream_errors = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by upstream and kind (502 unreachable, 504 timeout)",
            upstream_errors.clone(),
        );
        let revision = Gauge::default();
        registry.register(
            "snapshot_revision",
            "Revision of the snapshot serving (-1 before the first)",
            revision.clone(),
        );
        revision.set(-1);
        let swaps = Family::<SwapLabels, Counter>::default();
        registry.register(
            "snapshot_swaps",
            "Snapshots swapped in, by source and kind (full: a whole snapshot; delta: a delta applied to the one serving)",
            swaps.clone(),
        );
        let failed_swaps = Family::<SourceLabels, Counter>::default();
        registry.register(
            "snapshot_swap_failures",
            "Candidate snapshots refused, by source",
            failed_swaps.clone(),
        );
        let swap_seconds = Histogram::new(swap_buckets());
        registry.register(
            "snapshot_swap_seconds",
            "Time from a candidate's checked header to its swap: one load, every worker's instance, the browser views carried over",
            swap_seconds.clone(),
        );
        let swap_cpu_seconds = Histogram::new(swap_buckets());
        registry.register(
            "snapshot_swap_cpu_seconds",
            "CPU time of the same, whatever the number of workers",
            swap_cpu_seconds.clone(),
        );
        let tls = TlsMetrics::default();
        registry.register(
            "tls_reloads",
            "Reloads of a TLS listener's certificates after their files changed: ok, or refused (the previous ones keep serving)",
            tls.reloads.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out, by listener",
            tls.handshake_failures.clone(),
        );
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When each certificate a TLS listener serves expires (Unix seconds)",
            tls.expiry.clone(),
        );
        let fetch = FetchMetrics::default();
        registry.register(
            "outbound_fetch_timeouts",
            "Outbound fetches (identity provider keys, OIDC discovery, snapshot store) abandoned at their deadline (identity.jwt.jwks_timeout_ms, snapshot.poll_timeout_ms), by what they fetched",
            fetch.timeouts.clone(),
        );
        registry.register(
            "tls_client_certificates_withdrawn",
            "Connections closed because their client certificate was revoked (a reloaded CRL, or its CA no longer trusted) or expired since the handshake, by listener and reason",
            tls.withdrawn.clone(),
        );
        let jwks = JwksMetrics {
            fetch: fetch.clone(),
            ..JwksMetrics::default()
        };
        registry.register(
            "jwks_fetches",
            "Fetches of the identity provider's keys (jwks_url, oidc_issuer): ok, or failed (the last good keys keep serving)",
            jwks.fetches.clone(),
        );
        registry.register(
            "jwks_keys",
            "Keys from the identity provider serving now",
            jwks.keys.clone(),
        );
        let deltas_in_place = Counter::default();
        registry.register(
            "snapshot_deltas_in_place",
            "Swaps applied to the loaded engine in place: deltas, and whole snapshots that differed from the serving one only by what a delta changes in place (the others were loaded in full)",
            deltas_in_place.clone(),
        );
        let fetched_bytes = Family::<SourceLabels, Counter>::default();
        registry.register(
            "snapshot_received_bytes",
            "Bytes of candidate snapshots received, by source (refused ones included)",
            fetched_bytes.clone(),
        );
        let image_bytes = Gauge::default();
        registry.register(
            "snapshot_image_bytes",
            "Memory of the serving snapshot's loaded image, shared by every worker",
            image_bytes.clone(),
        );
        let traps = Counter::default();
        registry.register(
            "engine_traps",
            "Calls into the policy module that trapped or timed out",
            traps.clone(),
        );
        let views_built = Counter::default();
        registry.register(
            "browser_views_built",
            "Browser views (GET /-/snapshot/me) built; a view found in the cache, or awaited while another request built it, is not counted",
            views_built.clone(),
        );
        let checks = Family::<ApiLabels, Counter>::default();
        registry.register(
            "decision_api_checks",
            "Checks answered by /v1/check and /v1/check/batch, by endpoint and decision",
            checks.clone(),
        );
        let api_checks = ["check", "batch"].map(|endpoint| {
            ["deny", "allow"].map(|decision| {
                checks
                    .get_or_create(&ApiLabels {
                        endpoint: endpoint.to_string(),
                        decision: decision.to_string(),
                    })
                    .clone()
            })
        });
        let tunnels = TunnelMetrics::default();
        registry.register(
            "upgraded_connections_open",
            "Upgraded connections (WebSockets) open now",
            tunnels.open.clone(),
        );
        registry.register(
            "upgraded_connections",
            "Upgraded connections (WebSockets) opened",
            tunnels.opened.clone(),
        );
        registry.register(
            "upgraded_connections_rechecked",
            "Decisions re-checked for open exchanges (upgraded connections, gRPC calls, streaming responses) after a snapshot swap, new identity-provider keys or reloaded client-certificate trust",
            tunnels.rechecks.clone(),
        );
        registry.register(
            "grpc_calls_revoked",
            "gRPC and gRPC-Web calls ended because their principal lost access (trailers with PERMISSION_DENIED or UNAUTHENTICATED)",
            tunnels.grpc_revoked.clone(),
        );
        registry.register(
            "responses_revoked",
            "Other responses still streaming (server-sent events, downloads) cut because their principal lost access",
            tunnels.responses_revoked.clone(),
        );
        registry.register(
            "upgraded_connections_revoked",
            "Upgraded connections closed after a swap because their principal lost access (WebSocket close 1008)",
            tunnels.revoked.clone(),
        );
        Metrics {
            tunnels,
            api_checks,
            views_built,
            registry,
            by_route,
            unrouted,
            decision_seconds,
            upstream_seconds,
            upstream_errors,
            revision,
            swaps,
            failed_swaps,
            swap_seconds,
            swap_cpu_seconds,
            deltas_in_place,
            tls,
            jwks,
            fetch,
            fetched_bytes,
            image_bytes,
            traps,
            traps_counted: AtomicU64::new(0),
        }
    }

    /// Counts a routed request.
    pub fn request(&self, route: usize, outcome: Outcome) {
        if let Some(c) = self
            .by_route
            .get(route)
            .and_then(|c| c.get(outcome.index()))
        {
            c.inc();
        }
    }

    /// Counts one answer of the decision endpoint.
    pub fn api_check(&self, batch: bool, allowed: bool) {
        if let Some(c) = self
            .api_checks
            .get(usize::from(batch))
            .and_then(|c| c.get(usize::from(allowed)))
        {
            c.inc();
        }
    }

    /// Counts a request that matched no route.
    pub fn no_route(&self) {
        self.unrouted[0].inc();
    }

    /// The identity provider's key refreshes.
    pub fn jwks(&self) -> JwksMetrics {
        self.jwks.clone()
    }

    /// Outbound fetch deadlines.
    pub fn fetch(&self) -> &FetchMetrics {
        &self.fetch
    }

    /// The upgraded connections' metrics.
    pub fn tunnels(&self) -> TunnelMetrics {
        self.tunnels.clone()
    }

    /// The TLS listeners' metrics.
    pub fn tls(&self) -> TlsMetrics {
        self.tls.clone()
    }

    /// Counts a request with a malformed path.
    pub fn malformed(&self) {
        self.unrouted[1].inc();
    }

    /// Records the time a decision took.
    pub fn decision_time(&self, seconds: f64) {
        self.decision_seconds.observe(seconds);
    }

    /// Records the upstream's time to response head.
    pub fn upstream_time(&self, seconds: f64) {
        self.upstream_seconds.observe(seconds);
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self, upstream: &str, kind: &str) {
        self.upstream_errors
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The counters of swaps, for the swapper to count each one before
    /// it is published.
    pub fn swap_counters(&self) -> SwapCounters {
        SwapCounters {
            swaps: self.swaps.clone(),
            revision: self.revision.clone(),
            deltas_in_place: self.deltas_in_place.clone(),
            image_bytes: self.image_bytes.clone(),
        }
    }

    /// Records what a successful swap took (its counts were taken before
    /// it was published, by [`SwapCounters::count`]).
    pub fn swapped(&self, done: &Swapped) {
        self.swap_seconds.observe(done.took.as_secs_f64());
        self.swap_cpu_seconds.observe(done.cpu.as_secs_f64());
    }

    /// Counts the bytes of a candidate received from `source`.
    pub fn received(&self, source: &str, bytes: usize) {
        self.fetched_bytes
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .inc_by(bytes as u64);
    }

    /// Records a refused candidate.
    pub fn swap_failed(&self, source: &str) {
        self.failed_swaps
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .inc();
    }

    /// Counts a browser view built.
    pub fn view_built(&self) {
        self.views_built.inc();
    }

    /// Brings the trap counter up to `total`.
    pub fn set_traps(&self, total: u64) {
        let seen = self.traps_counted.swap(total, Ordering::Relaxed);
        if total > seen {
            self.traps.inc_by(total - seen);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
