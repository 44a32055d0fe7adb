//! The gateway: the proxy and admin listeners (and the decision endpoint's,
//! when configured) served by
//! hyper-util's HTTP/1.1 + h2c connection builder, and the request path
//! that composes the stages:
//!
//! ```text
//! route (method, host, normalized path) → identity → decision (WASM, current generation)
//!     → 400 / 403 no route / 401 / 403 deny / 503 engine unavailable
//!     → forward (identity headers, X-Forwarded-*) → 502 / 504 / the upstream's answer
//! ```
//!
//! Every stage fails closed. Slow clients are cut off by the header read
//! timeout, heads and bodies are size-limited, connections are capped, and
//! shutdown stops accepting and then drains in-flight requests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use thiserror::Error;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::{GatewayConfig, ms};
use crate::decision_log::{DecisionLine, DecisionLog};
use crate::forward::{Body, Upstreams, Vouch, full};
use crate::identity::{Identity, Unauthenticated};
use crate::metrics::Metrics;
use crate::module::{HostError, InstanceLimits, PolicyModule};
use crate::route_table::{PathRules, RouteTable};
use crate::swap::{EnginePool, Installed, Source, SwapError, Swapper, TICK};

/// Why the gateway could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using it?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The policy module could not be compiled.
    #[error(transparent)]
    Module(#[from] HostError),
    /// The initial snapshot was refused.
    #[error("initial snapshot {origin}: {source}")]
    Snapshot {
        /// Where it came from.
        origin: String,
        /// Why it was refused.
        source: SwapError,
    },
    /// A token file named by the configuration could not be read.
    #[error("{0}")]
    Secret(String),
    /// Anything else at start-up (decision log file, threads, identity).
    #[error("{0}")]
    Other(String),
}

/// Files served as they are under a path prefix on the proxy listener,
/// without authentication (the demo's page and the browser package).
#[derive(Default)]
pub struct StaticSite {
    prefix: String,
    files: std::collections::HashMap<String, (&'static str, bytes::Bytes)>,
}

impl StaticSite {
    /// An empty site under `prefix` (e.g. `/-/demo/`).
    pub fn new(prefix: &str) -> Self {
        StaticSite {
            prefix: prefix.to_string(),
            files: Default::default(),
        }
    }

    /// Adds a file at `prefix` + `name` (`""` for the prefix itself).
    pub fn add(&mut self, name: &str, content_type: &'static str, body: impl Into<bytes::Bytes>) {
        self.files.insert(
            format!("{}{name}", self.prefix),
            (content_type, body.into()),
        );
    }

    fn serve(&self, method: &Method, path: &str) -> Option<Response<Body>> {
        if !path.starts_with(&self.prefix) {
            return None;
        }
        let Some((content_type, body)) = self.files.get(path) else {
            return Some(refuse(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such file",
                None,
            ));
        };
        if method != Method::GET && method != Method::HEAD {
            return Some(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET",
                None,
            ));
        }
        let mut r = Response::new(full(body.clone()));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Some(r)
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    site: Option<StaticSite>,
    pub(crate) config: GatewayConfig,
    pub(crate) routes: RouteTable,
    identity: Identity,
    pub(crate) swapper: Arc<Swapper>,
    pub(crate) metrics: Metrics,
    log: DecisionLog,
    pub(crate) admin_token: Option<String>,
    pub(crate) decision_token: Option<String>,
    /// Signs the snapshots of `GET /-/snapshot/me`.
    pub(crate) browser_signer: Option<portcullis_snapshots::signature::SigningKey>,
}

impl Shared {
    /// The credential verifier.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Installs a candidate off the async workers, counting and logging
    /// the outcome. The serving snapshot is untouched on error.
    pub(crate) async fn install(
        self: &Arc<Self>,
        bytes: Vec<u8>,
        source: Source,
        force: bool,
    ) -> Result<Installed, SwapError> {
        let swapper = Arc::clone(&self.swapper);
        let result = tokio::task::spawn_blocking(move || swapper.install(bytes, source, force))
            .await
            .unwrap_or_else(|e| {
                Err(SwapError::Load(HostError::Trap(format!(
                    "loader failed: {e}"
                ))))
            });
        match &result {
            Ok(done) => self.metrics.swapped(source.as_str(), done.revision),
            Err(e) => {
                self.metrics.swap_failed(source.as_str());
                tracing::warn!(source = source.as_str(), error = %e, "candidate snapshot refused; the current one keeps serving");
            }
        }
        result
    }
}

/// A running gateway.
pub struct Running {
    /// Where the proxy listens.
    pub proxy_addr: SocketAddr,
    /// Where the admin API listens.
    pub admin_addr: SocketAddr,
    /// Where the decision endpoint's own listener is, if configured.
    pub decision_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shards: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The revision serving, if any.
    pub fn revision(&self) -> Option<u64> {
        self.shared.swapper.current().map(|g| g.revision)
    }

    /// Installs a snapshot as if pushed.
    pub async fn install(&self, bytes: Vec<u8>, force: bool) -> Result<Installed, SwapError> {
        self.shared.install(bytes, Source::Push, force).await
    }

    /// Fault injection for tests: the next decision on every instance of
    /// the serving snapshot traps inside the module.
    pub fn interrupt_next_decisions(&self) {
        if let Some(g) = self.shared.swapper.current() {
            g.interrupt_next_calls();
        }
    }

    /// Instances of the serving snapshot that are ready (not being rebuilt).
    pub fn healthy_instances(&self) -> usize {
        self.shared
            .swapper
            .current()
            .map_or(0, |g| g.healthy_instances())
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period), and returns when every listener is done.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let shards = self.shards;
        let _ = tokio::task::spawn_blocking(move || {
            for s in shards {
                let _ = s.join();
            }
        })
        .await;
    }

    /// Waits for SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        self.shutdown().await;
        tracing::info!("stopped");
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Number of engine instances per snapshot: one per worker thread.
pub fn worker_count(config: &GatewayConfig) -> usize {
    config.server.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// Starts the gateway on the current tokio runtime: compiles the module,
/// loads the initial snapshot (the configured file, or `initial`), binds
/// both listeners and starts the snapshot sources.
pub async fn start(config: GatewayConfig, initial: Option<Vec<u8>>) -> Result<Running, StartError> {
    start_with_site(config, initial, None).await
}

/// [`start`], also serving `site`'s files on the proxy listener.
pub async fn start_with_site(
    config: GatewayConfig,
    initial: Option<Vec<u8>>,
    site: Option<StaticSite>,
) -> Result<Running, StartError> {
    start_full(config, initial, site, None).await
}

/// [`start`] with another policy module than the embedded one: for tests
/// that prove a misbehaving module is contained (a hostile module).
pub async fn start_with_module(
    config: GatewayConfig,
    initial: Option<Vec<u8>>,
    module: PolicyModule,
) -> Result<Running, StartError> {
    start_full(config, initial, None, Some(module)).await
}

async fn start_full(
    config: GatewayConfig,
    initial: Option<Vec<u8>>,
    site: Option<StaticSite>,
    module: Option<PolicyModule>,
) -> Result<Running, StartError> {
    config
        .validate()
        .map_err(|problems| crate::config::ConfigError::Invalid {
            path: "(configuration)".into(),
            problems,
        })?;
    // Read once: the values the server runs on, or no start at all.
    let tokens = config.read_tokens().map_err(StartError::Secret)?;
    if let Some(prefix) = &config.decision.path_prefix
        && tokens.decision.is_none()
        && !config.server.listen.ip().is_loopback()
    {
        tracing::warn!(
            %prefix,
            "the decision endpoint is on the proxy listener without decision.token: anyone who reaches the proxy can ask what any principal may do"
        );
    }
    let module = match module {
        Some(m) => m,
        None => tokio::task::spawn_blocking(PolicyModule::new)
            .await
            .map_err(|e| StartError::Other(format!("module compilation failed: {e}")))??,
    };
    let ticks = |d: u64| (ms(d).as_micros() / TICK.as_micros()).max(1) as u64;
    let limits = InstanceLimits {
        max_memory: config.engine.max_memory_mb << 20,
        call_ticks: ticks(config.engine.decision_timeout_ms),
        load_ticks: ticks(config.engine.load_timeout_ms),
    };
    let pool = EnginePool::new(module, limits, worker_count(&config))
        .map_err(|e| StartError::Other(format!("cannot start the epoch clock: {e}")))?;
    let trusted = config.trusted_keys().map_err(StartError::Other)?;
    let mut swapper = Swapper::new(pool, config.snapshot.max_bytes)
        .trusting(trusted, config.snapshot.require_signature);
    if let Some(path) = &config.snapshot.state_file {
        swapper = swapper
            .remembering(crate::revision_state::RevisionState::new(path))
            .map_err(StartError::Other)?;
    }
    let swapper = Arc::new(swapper);
    let routes = RouteTable::new(config.routes.clone())
        .map_err(|e| StartError::Other(format!("routes: {e}")))?
        .with_path_rules(PathRules {
            allow_path_parameters: config.server.allow_path_parameters,
        });
    let labels: Vec<String> = routes.specs().map(|r| r.label()).collect();
    let identity = Identity::new(config.identity.clone())
        .map_err(|e| StartError::Other(format!("identity: {e}")))?;
    // Checked here once; each worker builds its own pools from it.
    Upstreams::new(&config.upstreams).map_err(StartError::Other)?;
    let log = DecisionLog::open(&config.log.decisions).map_err(|e| {
        StartError::Other(format!(
            "log.decisions {:?}: cannot open: {e}",
            config.log.decisions
        ))
    })?;
    let shared = Arc::new(Shared {
        site,
        admin_token: tokens.admin,
        decision_token: tokens.decision,
        browser_signer: match &config.snapshot.browser_signing_key {
            Some(path) => Some(crate::config::read_signing_key(path).map_err(StartError::Other)?),
            None => None,
        },
        routes,
        identity,
        swapper,
        metrics: Metrics::new(&labels),
        log,
        config,
    });

    // The initial snapshot: refused → start-up error (nothing would serve).
    let initial = match (initial, &shared.config.snapshot.file) {
        (Some(bytes), _) => Some((bytes, Source::Embedded, "(embedded)".to_string())),
        (None, Some(path)) => {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| StartError::Snapshot {
                    origin: path.display().to_string(),
                    source: SwapError::Load(HostError::Load(format!("cannot read: {e}"))),
                })?;
            Some((bytes, Source::File, path.display().to_string()))
        }
        (None, None) => None,
    };
    if let Some((bytes, source, origin)) = initial {
        shared
            .install(bytes, source, false)
            .await
            .map_err(|source| StartError::Snapshot { origin, source })?;
    }

    let listen = shared.config.server.listen;
    let first = reuseport_socket(listen).map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let proxy_addr = first
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    let admin_listen = shared.config.admin.listen;
    let admin = TcpListener::bind(admin_listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: admin_listen,
            source,
        })?;
    let admin_addr = admin
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;

    // The decision listener, like the proxy's, is shared by every worker.
    let mut first_decision = match shared.config.decision.listen {
        Some(addr) => {
            Some(reuseport_socket(addr).map_err(|source| StartError::Bind { addr, source })?)
        }
        None => None,
    };
    let decision_addr = match &first_decision {
        Some(s) => Some(
            s.local_addr()
                .map_err(|e| StartError::Other(e.to_string()))?,
        ),
        None => None,
    };

    let (stop, stopped) = watch::channel(false);
    let workers = worker_count(&shared.config);
    let mut shards = Vec::with_capacity(workers);
    let mut first = Some(first);
    for index in 0..workers {
        let socket = worker_socket(&mut first, proxy_addr)?;
        let decision = match decision_addr {
            Some(addr) => Some(worker_socket(&mut first_decision, addr)?),
            None => None,
        };
        let (ready, is_ready) = tokio::sync::oneshot::channel();
        let shard = spawn_shard(
            index,
            socket,
            decision,
            Arc::clone(&shared),
            stopped.clone(),
            ready,
        )
        .map_err(|e| StartError::Other(format!("cannot start worker {index}: {e}")))?;
        shards.push(shard);
        match is_ready.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StartError::Other(format!("worker {index}: {e}"))),
            Err(_) => {
                return Err(StartError::Other(format!(
                    "worker {index} stopped at start-up"
                )));
            }
        }
    }
    let tasks = vec![tokio::spawn(serve(
        admin,
        Arc::clone(&shared),
        Listener::Admin,
        stopped.clone(),
    ))];
    crate::sources::spawn(&shared, stopped);
    tracing::info!(%proxy_addr, %admin_addr, ?decision_addr, workers, revision = ?shared.swapper.current().map(|g| g.revision), "gateway listening");
    Ok(Running {
        proxy_addr,
        admin_addr,
        decision_addr,
        shared,
        stop,
        tasks,
        shards,
    })
}

/// A worker's socket on `addr`: the one bound first (to learn the port of
/// `:0`), then new ones on the same port.
fn worker_socket(first: &mut Option<TcpSocket>, addr: SocketAddr) -> Result<TcpSocket, StartError> {
    match first.take() {
        Some(s) => Ok(s),
        None => reuseport_socket(addr).map_err(|source| StartError::Bind { addr, source }),
    }
}

/// A proxy socket that several workers can listen on at once
/// (`SO_REUSEPORT`: the kernel spreads connections over them).
fn reuseport_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// One proxy worker: an OS thread with a single-threaded runtime, its own
/// listener on the shared port, its own upstream connection pools, and
/// its own engine instance slot. A request is parsed, decided and
/// forwarded on one thread, with no cross-thread wake-ups.
fn spawn_shard(
    index: usize,
    socket: TcpSocket,
    decision: Option<TcpSocket>,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("portcullis-worker-{index}"))
        .spawn(move || {
            crate::swap::set_worker_index(index);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready.send(Err(format!("runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let upstreams = match Upstreams::new(&shared.config.upstreams) {
                    Ok(u) => Arc::new(u),
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let listener = match socket.listen(4096) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready.send(Err(format!("listen: {e}")));
                        return;
                    }
                };
                let decision = match decision.map(|s| s.listen(4096)).transpose() {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready.send(Err(format!("listen (decision): {e}")));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                let proxy = serve(
                    listener,
                    Arc::clone(&shared),
                    Listener::Proxy(upstreams),
                    stopped.clone(),
                );
                match decision {
                    Some(d) => {
                        tokio::join!(proxy, serve(d, shared, Listener::Decision, stopped));
                    }
                    None => proxy.await,
                }
            });
        })
}

#[derive(Clone)]
enum Listener {
    Proxy(Arc<Upstreams>),
    Admin,
    Decision,
}

fn builder(config: &GatewayConfig) -> auto::Builder<TokioExecutor> {
    let s = &config.server;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(ms(s.header_read_timeout_ms))
        .max_buf_size(s.max_header_bytes)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(s.max_concurrent_streams)
        .max_header_list_size(u32::try_from(s.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    kind: Listener,
    mut stopped: watch::Receiver<bool>,
) {
    let builder = builder(&shared.config);
    let header_timeout = ms(shared.config.server.header_read_timeout_ms);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(shared.config.server.max_connections));
    loop {
        let permit = tokio::select! {
            _ = stopped.changed() => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let kind = kind.clone();
        let service = service_fn(move |req| {
            let shared = Arc::clone(&shared);
            let kind = kind.clone();
            async move {
                Ok::<_, Infallible>(match kind {
                    Listener::Proxy(upstreams) => handle(shared, &upstreams, peer, req).await,
                    Listener::Admin => crate::admin::handle(shared, req).await,
                    Listener::Decision => {
                        let path = req.uri().path().to_string();
                        crate::decision_api::handle(shared, req, &path).await
                    }
                })
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper's header read timeout only starts once the protocol is
            // known, and telling HTTP/1 from HTTP/2 waits for the first
            // bytes: a client that connects and sends nothing must be cut
            // off here, or idle sockets pile up until the connection cap.
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let _ = watcher.watch(conn).await;
            drop(permit);
        });
    }
    drop(listener);
    let grace = ms(shared.config.server.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "grace period over; closing the remaining connections"
        );
    }
}

/// A JSON answer from the gateway itself.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(full(bytes));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Serialize)]
struct Refusal<'a> {
    decision: &'static str,
    reason: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
}

/// Every refusal names its reason in this header as well as in its body,
/// for clients and gateways (nginx `auth_request`) that only see headers.
pub const REASON_HEADER: &str = "x-portcullis-reason";

pub(crate) fn refuse(
    status: StatusCode,
    reason: &str,
    message: &str,
    revision: Option<u64>,
) -> Response<Body> {
    let mut r = json_response(
        status,
        &Refusal {
            decision: "deny",
            reason,
            message,
            revision,
        },
    );
    if let Ok(v) = HeaderValue::from_str(reason) {
        r.headers_mut().insert(REASON_HEADER, v);
    }
    r
}

pub(crate) fn unauthenticated(e: &Unauthenticated, revision: Option<u64>) -> Response<Body> {
    let mut r = refuse(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        &e.to_string(),
        revision,
    );
    let challenge = match e {
        Unauthenticated::Missing => "Bearer realm=\"portcullis\"".to_string(),
        _ => format!(
            "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"{}\"",
            e.to_string().replace(['"', '\\'], "'")
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

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
    pub(crate) started: Instant,
    pub(crate) shadow: bool,
    pub(crate) status: Option<StatusCode>,
}

impl Shared {
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
            latency_us: latency.as_micros() as u64,
            shadow: l.shadow,
            status: l.status.map(|s| s.as_u16()),
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    upstreams: &Upstreams,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    if let Some(why) = framing_problem(&req) {
        shared.metrics.malformed();
        let mut r = refuse(StatusCode::BAD_REQUEST, "malformed_request", why, None);
        // The rest of this connection cannot be trusted to be framed right.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    if let Some(prefix) = &shared.config.decision.path_prefix
        && let Some(rel) = req.uri().path().strip_prefix(prefix.as_str())
        && rel.starts_with('/')
    {
        let rel = rel.to_string();
        return crate::decision_api::handle(shared, req, &rel).await;
    }
    let (parts, body) = req.into_parts();
    if parts.uri.path() == crate::browser::SNAPSHOT_ME {
        return crate::browser::snapshot_me(&shared, &parts).await;
    }
    if let Some(r) = shared
        .site
        .as_ref()
        .and_then(|site| site.serve(&parts.method, parts.uri.path()))
    {
        return r;
    }
    let host = match crate::host::request_host(&parts) {
        Ok(h) => h,
        Err(why) => {
            shared.metrics.malformed();
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed_host",
                &format!("malformed host: {why}"),
                None,
            );
        }
    };
    // With overrides allowed, the method the upstream will act on is the
    // one authorized; without, the headers are stripped before forwarding.
    let method = match crate::forward::method_override(&parts.headers) {
        Ok(Some(m)) if shared.config.server.allow_method_override => m,
        Ok(_) => parts.method.clone(),
        Err(why) if shared.config.server.allow_method_override => {
            return refuse(StatusCode::BAD_REQUEST, "malformed_request", why, None);
        }
        Err(_) => parts.method.clone(),
    };
    let passed = match crate::checkpoint::check(
        &shared,
        &method,
        host.as_deref(),
        parts.uri.path(),
        &parts.headers,
        started,
    ) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let (route, resolved, verdict) = (passed.resolved.route, &passed.resolved, &passed.verdict);
    let principal = passed.credential.principal();

    // Forward.
    let max_body = shared.config.server.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &format!("request bodies are limited to {max_body} bytes"),
            Some(verdict.revision),
        );
    }
    let body: Body =
        Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX)).boxed_unsync();
    let upstream_started = Instant::now();
    let forwarded = upstreams
        .forward(
            &route.upstream,
            parts,
            body,
            Vouch {
                principal,
                acting_as: verdict.acting_as.as_deref(),
                revision: verdict.revision,
                peer,
                path: &resolved.path,
                host: host.as_deref(),
                api_key_header: shared.identity.api_key_header(),
                keep_method_override: shared.config.server.allow_method_override,
            },
        )
        .await;
    shared
        .metrics
        .upstream_time(upstream_started.elapsed().as_secs_f64());
    match forwarded {
        Ok(r) => r,
        Err(e) => {
            shared.metrics.upstream_error(&route.upstream, e.kind());
            tracing::warn!(upstream = %route.upstream, error = %e, "forwarding failed");
            refuse(e.status(), e.kind(), &e.to_string(), Some(verdict.revision))
        }
    }
}

/// Requests whose framing or target a gateway must not guess about: the
/// proxy and the upstream could read them differently (request smuggling,
/// host confusion).
fn framing_problem(req: &hyper::Request<Incoming>) -> Option<&'static str> {
    let http1 = req.version() < http::Version::HTTP_2;
    if http1 && req.uri().authority().is_some() {
        return Some(
            "absolute-form request targets are for forward proxies; send the path (origin-form)",
        );
    }
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Some("more than one Host header");
    }
    if hosts == 0 && req.version() == http::Version::HTTP_11 {
        return Some("HTTP/1.1 requests must carry a Host header");
    }
    // Body framing is hyper's: it refuses differing Content-Lengths, reads a
    // request with both Content-Length and Transfer-Encoding by the chunked
    // framing alone and closes its connection (gateway/tests/hostile.rs).
    None
}

/// Reads a whole body up to `max` bytes.
pub(crate) async fn read_body(body: Incoming, max: u64) -> Result<Vec<u8>, String> {
    match Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX))
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes().to_vec()),
        Err(e) => Err(e.to_string()),
    }
}
