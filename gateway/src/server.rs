//! Listeners and start-up, at the top of the house: compiles the
//! configuration and the policy module, loads the first snapshot, and
//! serves the proxy (`crate::proxy`), decision (`crate::decision`) and
//! admin (`crate::admin`) listeners with hyper-util's HTTP/1.1 + h2c
//! connection builder, one single-threaded runtime per worker.
//!
//! Every stage fails closed. Slow clients are cut off by the header read
//! timeout, heads and bodies are size-limited, connections are capped, and
//! shutdown stops accepting and then drains in-flight requests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use thiserror::Error;
use tokio::net::{TcpListener, TcpSocket};

use crate::tls::MaybeTls;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::compiled::{CompileError, CompiledConfig};
use crate::config::{GatewayConfig, ms};
use crate::decision_log::DecisionLog;
use crate::framing::{Framed, FramingLog};
use crate::metrics::Metrics;
use crate::response::Refusal;
use crate::shared::Shared;
use crate::stage::forward::Upstreams;
use crate::static_site::StaticSite;
use crate::tls::PeerCertificate;
use portcullis_host::deadline::Budget;
use portcullis_host::module::{HostError, InstanceLimits, PolicyModule};
use portcullis_host::swap::{EnginePool, Installed, Source, SwapError, Swapper};
use portcullis_host::view_builder::ViewBuilder;
use portcullis_snapshots::Candidate;

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
    /// A file the configuration names could not be read or used.
    #[error("{0}")]
    Unreadable(String),
    /// Anything else at start-up (decision log file, threads, identity).
    #[error("{0}")]
    Other(String),
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
        self.shared
            .install(Candidate::of(bytes), Source::Push, force)
            .await
    }

    /// Fault injection for tests: the next decision on every instance of
    /// the serving snapshot traps inside the module.
    #[cfg(feature = "testing")]
    pub fn interrupt_next_decisions(&self) {
        if let Some(g) = self.shared.swapper.current() {
            g.interrupt_next_calls();
        }
    }

    /// Fault injection for tests: the next decision on every instance of
    /// the serving snapshot waits `stall` once its deadline is armed, as a
    /// worker the machine descheduled would.
    #[cfg(feature = "testing")]
    pub fn stall_next_decisions(&self, stall: Duration) {
        if let Some(g) = self.shared.swapper.current() {
            g.stall_next_calls(stall);
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
        self.shared.stopping.send_replace(true);
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

/// Waits for SIGTERM or Ctrl-C: what every long-running command stops on.
pub async fn wait_for_signal() {
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

/// Starts the gateway on the current tokio runtime: compiles the
/// configuration and the module, loads the initial snapshot (the
/// configured file, or `initial`), binds the listeners and starts the
/// snapshot sources.
pub async fn start(config: GatewayConfig, initial: Option<Vec<u8>>) -> Result<Running, StartError> {
    start_with_site(config, initial, None).await
}

/// [`start`], also serving `site`'s files on the proxy listener.
pub async fn start_with_site(
    config: GatewayConfig,
    initial: Option<Vec<u8>>,
    site: Option<StaticSite>,
) -> Result<Running, StartError> {
    start_compiled(CompiledConfig::compile(config)?, initial, site).await
}

/// [`start`] with a configuration compiled already (`portcullis serve`
/// compiles it first to name its file in errors).
pub async fn start_compiled(
    compiled: CompiledConfig,
    initial: Option<Vec<u8>>,
    site: Option<StaticSite>,
) -> Result<Running, StartError> {
    let module = tokio::task::spawn_blocking(PolicyModule::new)
        .await
        .map_err(|e| StartError::Other(format!("module compilation failed: {e}")))??;
    start_full(compiled, initial, site, module).await
}

/// [`start`] with another policy module than the embedded one: for tests
/// that prove a misbehaving module is contained (a hostile module).
#[cfg(feature = "testing")]
pub async fn start_with_module(
    config: GatewayConfig,
    initial: Option<Vec<u8>>,
    module: PolicyModule,
) -> Result<Running, StartError> {
    start_full(CompiledConfig::compile(config)?, initial, None, module).await
}

impl From<CompileError> for StartError {
    fn from(e: CompileError) -> Self {
        match e {
            CompileError::Invalid(e) => StartError::Config(e),
            CompileError::Unreadable(e) => StartError::Unreadable(e),
        }
    }
}

async fn start_full(
    compiled: CompiledConfig,
    initial: Option<Vec<u8>>,
    site: Option<StaticSite>,
    module: PolicyModule,
) -> Result<Running, StartError> {
    let config = &compiled.config;
    if let Some(prefix) = &config.decision.path_prefix
        && compiled.tokens.decision.is_none()
        && !config.server.listen.ip().is_loopback()
    {
        tracing::warn!(
            %prefix,
            "the decision endpoint is on the proxy listener without decision.token: anyone who reaches the proxy can ask what any principal may do"
        );
    }
    let engine = &config.engine;
    let limits = InstanceLimits {
        max_memory: engine.max_memory_mb << 20,
        call: Budget::new(
            ms(engine.decision_timeout_ms),
            ms(engine.decision_wall_limit_ms),
        ),
        load: Budget::new(ms(engine.load_timeout_ms), ms(engine.load_wall_limit_ms)),
    };
    let pool = EnginePool::new(module, limits, config.worker_count())
        .map_err(|e| StartError::Other(format!("cannot start the epoch clock: {e}")))?;
    let labels: Vec<String> = compiled.routes.specs().map(|r| r.label()).collect();
    let metrics = Metrics::new(&labels);
    let counters = metrics.swap_counters();
    let mut swapper = Swapper::new(pool, config.snapshot.max_bytes)
        .announcing(move |p, source| {
            counters.count(
                source.as_str(),
                p.revision,
                p.delta,
                p.in_place,
                p.image_bytes,
            )
        })
        .trusting(
            compiled.trusted_keys.clone(),
            config.snapshot.require_signature,
        )
        .caching_views(
            config
                .snapshot
                .browser_view_cache_mb
                .saturating_mul(1 << 20),
        );
    if let Some(path) = &config.snapshot.state_file {
        swapper = swapper
            .remembering(portcullis_host::revision_state::RevisionState::new(path))
            .map_err(StartError::Other)?;
    }
    let log = DecisionLog::open(&config.log.decisions).map_err(|e| {
        StartError::Other(format!(
            "log.decisions {:?}: cannot open: {e}",
            config.log.decisions
        ))
    })?;
    let view_builds = ViewBuilder::new((config.worker_count() / 2).max(1))
        .map_err(|e| StartError::Other(format!("cannot start the view builders: {e}")))?;
    let shared = Arc::new(Shared::new(
        compiled,
        Arc::new(swapper),
        metrics,
        log,
        site,
        view_builds,
    ));

    // The identity provider's keys: fetched now, or no start.
    if let Some(remote) = shared.compiled.identity.remote_keys() {
        let n = remote.fetch().await.map_err(|e| {
            shared.metrics.jwks().fetched(false, 0, e.timed_out);
            StartError::Other(format!("identity provider keys: {e}"))
        })?;
        shared.metrics.jwks().fetched(true, n, None);
        tracing::info!(from = %remote.origin(), keys = n, "identity provider keys fetched");
    }

    // The initial snapshot: refused → start-up error (nothing would serve).
    let initial = match (initial, &shared.config().snapshot.file) {
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
            .install(Candidate::of(bytes), source, false)
            .await
            .map_err(|source| StartError::Snapshot { origin, source })?;
    }

    let listen = shared.config().server.listen;
    let first = reuseport_socket(listen).map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let proxy_addr = first
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    let admin_listen = shared.config().admin.listen;
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
    let mut first_decision = match shared.config().decision.listen {
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
    let workers = shared.config().worker_count();
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
    for tls in [
        &shared.compiled.tls.proxy,
        &shared.compiled.tls.admin,
        &shared.compiled.tls.decision,
    ]
    .into_iter()
    .flatten()
    {
        crate::tls::watch(Arc::clone(tls), shared.metrics.tls(), stopped.clone());
    }
    // New client-certificate trust on the proxy listener: open exchanges
    // check their connection's certificate again (its connection is
    // closed by the task serving it; upgraded ones need telling).
    if let Some(tls) = &shared.compiled.tls.proxy {
        let (mut reloads, shared, mut stopped) =
            (tls.reloads(), Arc::clone(&shared), stopped.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    changed = reloads.changed() => if changed.is_err() { return },
                }
                shared.recheck_all();
            }
        });
    }
    if let Some(remote) = shared.compiled.identity.remote_keys() {
        let for_keys = Arc::clone(&shared);
        tokio::spawn(Arc::clone(remote).run(
            move |r| {
                for_keys.metrics.jwks().fetched(r.ok, r.keys, r.timed_out);
                // Open exchanges verify their tokens against the new keys.
                if r.ok {
                    for_keys.recheck_all();
                }
            },
            stopped.clone(),
        ));
    }
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
            portcullis_host::swap::set_worker_index(index);
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
                let upstreams = Arc::new(Upstreams::connect(&shared.compiled.upstreams));
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
    let builder = builder(shared.config());
    let tls = match &kind {
        Listener::Proxy(_) => shared.compiled.tls.proxy.clone(),
        Listener::Admin => shared.compiled.tls.admin.clone(),
        Listener::Decision => shared.compiled.tls.decision.clone(),
    };
    let tls_metrics = shared.metrics.tls();
    let header_timeout = ms(shared.config().server.header_read_timeout_ms);
    let max_head = shared.config().server.max_header_bytes;
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(shared.config().server.max_connections));
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
        let slot = crate::proxy::upgrade::ConnectionSlot::new(permit);
        let shared = Arc::clone(&shared);
        let kind = kind.clone();
        let framing = FramingLog::new();
        let seen = framing.clone();
        // The client's verified certificate (TLS listeners with
        // client_ca), known once the handshake is done.
        let certified: Arc<std::sync::OnceLock<Arc<PeerCertificate>>> = Arc::default();
        let certificate = Arc::clone(&certified);
        let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let shared = Arc::clone(&shared);
            let kind = kind.clone();
            // A certificate revoked or expired since the handshake no
            // longer speaks for its connection: refused, and closed.
            let withdrawn =
                certificate
                    .get()
                    .and_then(|cert| match cert.check(crate::shared::unix_now()) {
                        Ok(()) => {
                            req.extensions_mut()
                                .insert(crate::tls::ClientCertificate(Arc::clone(cert)));
                            None
                        }
                        Err((why, message)) => {
                            Some(crate::checkpoint::certificate_withdrawn(why, message))
                        }
                    });
            // A connection that may become a tunnel keeps its slot until
            // the tunnel closes.
            if req.headers().contains_key(http::header::UPGRADE) {
                req.extensions_mut().insert(slot.clone());
            }
            // HTTP/1 requests reach the service in the order they were
            // sent, so the n-th one asks about the n-th head on the wire.
            let ambiguous =
                req.version() < http::Version::HTTP_2 && seen.next_request_is_ambiguous();
            let rpc = crate::response::Rpc::of(req.headers());
            async move {
                if let Some(refusal) = withdrawn {
                    return Ok::<_, Infallible>(crate::proxy::answer(refusal, rpc));
                }
                if ambiguous {
                    shared.metrics.malformed();
                    return Ok::<_, Infallible>(
                        Refusal::ambiguous_request(
                            "Content-Length together with Transfer-Encoding (RFC 9112 §6.1): send one",
                        )
                        .into_response(),
                    );
                }
                Ok::<_, Infallible>(match kind {
                    Listener::Proxy(upstreams) => {
                        crate::proxy::handle(shared, &upstreams, peer, req).await
                    }
                    Listener::Admin => crate::admin::handle(shared, req).await,
                    Listener::Decision => {
                        let path = req.uri().path().to_string();
                        crate::decision::handle(shared, req, &path).await
                    }
                })
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let tls_metrics = tls_metrics.clone();
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
            let stream = match &tls {
                None => MaybeTls::Plain(stream),
                Some(tls) => match crate::tls::handshake(tls, stream, peer, &tls_metrics).await {
                    Some((s, cert)) => {
                        if let Some(cert) = cert {
                            let _ = certified.set(cert);
                        }
                        s
                    }
                    None => return,
                },
            };
            let conn = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(Framed::new(stream, framing, max_head)),
                    service,
                )
                .into_owned();
            let served = watcher.watch(conn);
            match (certified.get(), &tls) {
                (Some(cert), Some(tls)) => {
                    // When the listener's trust is reloaded or the
                    // certificate's validity ends, the connection's
                    // requests and streams end with it (dropping the
                    // connection closes it); new handshakes decide anew.
                    tokio::select! {
                        _ = served => {}
                        () = crate::tls::until_withdrawn(tls, cert, peer, &tls_metrics) => {}
                    }
                }
                _ => {
                    let _ = served.await;
                }
            }
        });
    }
    drop(listener);
    let grace = ms(shared.config().server.shutdown_grace_ms);
    // Upgraded connections are told to close (1001) when the gateway
    // stops; they run on the workers' runtimes, so wait for them too.
    let tunnels = shared.metrics.tunnels();
    let drained = async {
        graceful.shutdown().await;
        while tunnels.open_now() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            ?grace,
            "grace period over; closing the remaining connections"
        );
    }
}
