//! `gateway.toml`: the gateway's configuration, parsed strictly (unknown
//! keys are errors) and checked as a whole before anything starts, so a bad
//! configuration is one clear error at start-up rather than a surprise
//! under load. The reference is `docs/gateway.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::stage::identity::IdentityConfig;
use crate::stage::route_table::RouteSpec;

/// Why the configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The configuration parses but is not usable; every problem is listed.
    #[error("{}: invalid configuration:\n  - {}", .path.display(), .problems.join("\n  - "))]
    Invalid {
        /// The file (or `(built in)`).
        path: PathBuf,
        /// Every problem, with the key it is about.
        problems: Vec<String>,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listeners, limits and timeouts.
    #[serde(default)]
    pub server: ServerConfig,
    /// The admin listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Where snapshots come from.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Limits of the WebAssembly engine.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Credentials.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Upstreams by name.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// The route table; first match wins, no match is denied.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Logs.
    #[serde(default)]
    pub log: LogConfig,
    /// The decision endpoint for other gateways and services.
    #[serde(default)]
    pub decision: DecisionConfig,
    /// `[assertion]`: the keys that sign `X-Portcullis-Assertion` for
    /// routes with `assertion = true`.
    #[serde(default)]
    pub assertion: Option<AssertionConfig>,
}

/// `[assertion]`: identity the upstream can verify (`docs/gateway.md`,
/// "Signed identity").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    /// `iss` of every assertion.
    #[serde(default = "default_assertion_issuer")]
    pub issuer: String,
    /// Lifetime of an assertion, in seconds (`exp` − `iat`).
    #[serde(default = "default_assertion_ttl")]
    pub ttl_s: u64,
    /// Ed25519 keys, by `kid`. The first with a `private_key` signs; every
    /// one is published at `/.well-known/jwks.json` on the admin listener,
    /// so that assertions signed by a key being retired still verify.
    pub keys: Vec<AssertionKey>,
}

fn default_assertion_issuer() -> String {
    "portcullis".into()
}

fn default_assertion_ttl() -> u64 {
    60
}

/// One assertion key: a private key (PKCS#8 PEM, `portcullis snapshot
/// keygen` writes one) that can sign, or a public key (SPKI PEM) that is
/// only published.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionKey {
    /// The key's `kid`.
    pub kid: String,
    /// A private key: this one can sign.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// A public key: published only.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
}

/// `[server]`: the public listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the proxy listener.
    pub listen: SocketAddr,
    /// Worker threads, each with its own engine instance (default: one per core).
    pub workers: Option<usize>,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Largest request body forwarded, in bytes.
    pub max_body_bytes: u64,
    /// Time allowed to receive a request's head (slow clients are cut off).
    pub header_read_timeout_ms: u64,
    /// Most concurrent client connections; further ones wait in the backlog.
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// On SIGTERM, time given to in-flight requests to finish.
    pub shutdown_grace_ms: u64,
    /// Accept `;` path parameters (matrix parameters). Off: a path with a
    /// `;` is refused (400), because servlet containers cut segments at
    /// it and resolve `..;` as `..`. Dot segments with parameters are
    /// refused either way.
    pub allow_path_parameters: bool,
    /// Forward `X-HTTP-Method-Override`, `X-HTTP-Method` and
    /// `X-Method-Override`, authorizing the method they name. Off: the
    /// three headers are stripped, so an upstream that honours them
    /// cannot be sent a method the route table never saw.
    pub allow_method_override: bool,
    /// `[server.tls]`: terminate TLS on the proxy listener.
    pub tls: Option<TlsConfig>,
    /// Protocols a client may switch to with `Upgrade` (HTTP/1.1) after
    /// its upgrade request was authorized like any other (default
    /// `["websocket"]`; `[]` refuses every upgrade). `h2c` is never
    /// allowed: a cleartext HTTP/2 connection to the upstream would carry
    /// requests the gateway never sees.
    pub upgrades: Vec<String>,
    /// How long a revoked WebSocket may take to reach a frame boundary
    /// before its connection is cut without a close frame.
    pub revoke_grace_ms: u64,
    /// An upgraded connection on which nothing passed either way for this
    /// long is closed (WebSocket close 1001), as Envoy's one-hour idle
    /// timeout does; pings count as traffic.
    pub upgrade_idle_timeout_ms: u64,
}

/// `[server.tls]`, `[admin.tls]`, `[decision.tls]`: TLS on a listener
/// (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`; `docs/gateway.md`, "TLS").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chains and their keys (PEM). A client's SNI picks the
    /// one whose certificate names it (DNS names, wildcards one label
    /// deep); the first serves clients that send no name or another one.
    /// Reloaded when the files change; a bad new pair is refused and the
    /// old ones keep serving.
    pub certificates: Vec<CertificatePair>,
    /// CA certificates (PEM) that client certificates must chain to: asks
    /// every client for one (mTLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: certificate revocation lists (PEM, `-----BEGIN
    /// X509 CRL-----`) of the client CAs; a client certificate one of them
    /// lists is refused in the handshake. Reloaded when the file changes.
    /// Certificates of a CA with no CRL in the file are not checked for
    /// revocation.
    #[serde(default)]
    pub client_crl: Option<PathBuf>,
    /// With `client_ca`: `required` (the default; a client without a
    /// valid certificate is refused in the handshake) or `optional`.
    #[serde(default)]
    pub client_certificates: ClientCertificates,
    /// Time allowed for a handshake.
    #[serde(default = "default_handshake_ms")]
    pub handshake_timeout_ms: u64,
    /// The proxy listener only, with `client_ca`: which client
    /// certificates are which service accounts — a URI SAN (a SPIFFE ID,
    /// `spiffe://…`) or a DNS SAN → `service/<id>`. A request with no
    /// bearer token or API key on such a connection is that service
    /// account; a certificate the map does not name identifies nobody.
    #[serde(default)]
    pub client_principals: BTreeMap<String, String>,
}

fn default_handshake_ms() -> u64 {
    10_000
}

/// One certificate chain and its private key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePair {
    /// The chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Whether a TLS listener with `client_ca` requires client certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertificates {
    /// A client without a valid certificate is refused.
    #[default]
    Required,
    /// A client may present none; one it presents must be valid.
    Optional,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            header_read_timeout_ms: 10_000,
            max_connections: 10_000,
            max_concurrent_streams: 256,
            shutdown_grace_ms: 30_000,
            allow_path_parameters: false,
            allow_method_override: false,
            tls: None,
            upgrades: vec!["websocket".to_string()],
            revoke_grace_ms: 5_000,
            upgrade_idle_timeout_ms: 3_600_000,
        }
    }
}

/// `[admin]`: health, readiness, metrics and snapshot pushes, on a listener
/// of their own so they are never exposed with the proxy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener.
    pub listen: SocketAddr,
    /// Bearer token required by `PUT /-/snapshot`.
    pub token: Option<String>,
    /// File holding that token (instead of `token`).
    pub token_file: Option<PathBuf>,
    /// `[admin.tls]`: TLS on the admin listener.
    pub tls: Option<TlsConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
            token_file: None,
            tls: None,
        }
    }
}

/// `[decision]`: the decision endpoint — `POST /v1/check`,
/// `POST /v1/check/batch` and the nginx `auth_request`, Traefik ForwardAuth
/// and Envoy ext_authz adapters — on a listener of its own, under a path
/// prefix of the proxy listener, or both. Off unless one is given.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionConfig {
    /// Its own listener (every worker accepts on it).
    pub listen: Option<SocketAddr>,
    /// Mounted on the proxy listener under this prefix, e.g. `/-/authz`.
    pub path_prefix: Option<String>,
    /// Bearer token required by `/v1/check` and `/v1/check/batch` (the
    /// adapters carry the end user's own credentials instead).
    pub token: Option<String>,
    /// File holding that token (instead of `token`).
    pub token_file: Option<PathBuf>,
    /// Most checks in one `/v1/check/batch` request.
    pub max_batch: usize,
    /// `[decision.tls]`: TLS on the decision listener.
    pub tls: Option<TlsConfig>,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            listen: None,
            path_prefix: None,
            token: None,
            token_file: None,
            max_batch: 1000,
            tls: None,
        }
    }
}

/// `[snapshot]`: the sources of snapshots. Pushes to the admin listener
/// are always possible; a file and a URL are optional.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// A snapshot file loaded at start-up.
    pub file: Option<PathBuf>,
    /// Reload the file whenever it changes.
    pub watch: bool,
    /// An `http://` or `https://` URL polled with `If-None-Match`: a
    /// snapshot, or a store's manifest (`latest.json`, `snapshot publish`).
    pub poll_url: Option<String>,
    /// CA certificates (PEM) to trust for an `https://` store instead of
    /// the system's (a private CA).
    pub poll_ca_file: Option<PathBuf>,
    /// Headers sent with every request to the store (a private bucket's
    /// credentials, e.g. `Authorization`). Never logged.
    pub poll_headers: std::collections::BTreeMap<String, String>,
    /// Polling period.
    pub poll_interval_ms: u64,
    /// Time one fetch from the store may take as a whole — connecting,
    /// TLS, headers and the whole body — before it is abandoned (logged,
    /// counted, retried next period). Large enough for the largest
    /// snapshot over the slowest link the store is reached by.
    pub poll_timeout_ms: u64,
    /// Largest snapshot accepted from any source, in bytes.
    pub max_bytes: u64,
    /// Public keys (SPKI PEM files, `portcullis snapshot keygen`) whose
    /// signatures are accepted. A snapshot signed by any other key is
    /// refused from every source.
    pub trusted_keys: Vec<PathBuf>,
    /// Refuse unsigned snapshots from every source (needs `trusted_keys`).
    pub require_signature: bool,
    /// Where the revision last accepted is kept across restarts, so that an
    /// older snapshot — validly signed or not — cannot roll the gateway back
    /// (only a forced push can).
    pub state_file: Option<PathBuf>,
    /// Private key (PKCS#8 PEM) that signs the per-principal snapshots of
    /// `GET /-/snapshot/me`, for browsers that verify them
    /// (`PolicyEngine.loadAsync(bytes, [public key])`).
    pub browser_signing_key: Option<PathBuf>,
    /// Memory for principals' views (`GET /-/snapshot/me`), in MiB: views
    /// kept between requests and over pushes that do not change them.
    /// Each view counts its size plus 4 KiB, so this bounds their number
    /// too (256 MiB: 65,536 views at most).
    pub browser_view_cache_mb: u64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            file: None,
            watch: true,
            poll_url: None,
            poll_ca_file: None,
            poll_headers: Default::default(),
            poll_interval_ms: 10_000,
            poll_timeout_ms: 60_000,
            max_bytes: 256 * 1024 * 1024,
            trusted_keys: Vec::new(),
            require_signature: false,
            state_file: None,
            browser_signing_key: None,
            browser_view_cache_mb: 256,
        }
    }
}

/// `[engine]`: limits of each WebAssembly instance.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Largest linear memory of one instance, in MiB.
    pub max_memory_mb: usize,
    /// The module's own work a decision may take before it is interrupted
    /// (→ 503): looked at after this much wall time, then counted on the
    /// worker thread's CPU clock, so a worker the machine descheduled is
    /// not cut for waiting.
    pub decision_timeout_ms: u64,
    /// Wall time after which a decision is cut whatever its CPU (a
    /// backstop; at least `decision_timeout_ms`).
    pub decision_wall_limit_ms: u64,
    /// The module's own work loading a snapshot or applying a delta may
    /// take (as for decisions: CPU time once this much wall time passed).
    pub load_timeout_ms: u64,
    /// Wall time after which a load is cut whatever its CPU.
    pub load_wall_limit_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_memory_mb: 1024,
            decision_timeout_ms: 50,
            decision_wall_limit_ms: 2_000,
            load_timeout_ms: 30_000,
            load_wall_limit_ms: 300_000,
        }
    }
}

/// `[upstreams.<name>]`: where allowed requests go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL, `http://host:port` or `https://host:port` (a path prefix
    /// is allowed).
    pub url: String,
    /// `http1` (the default) or `http2`: HTTP/2 by ALPN over `https://`,
    /// by prior knowledge (h2c) over `http://`. gRPC needs `http2`;
    /// WebSockets need `http1`.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// `https://` only: the CA certificates (PEM) the upstream's
    /// certificate must chain to; the system's roots without it. The
    /// certificate is always verified.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `https://` only: the name sent in SNI and verified in the
    /// upstream's certificate, when it is not the URL's host (an upstream
    /// reached by IP address).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Time to connect.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time until the upstream's response head arrives (→ 504).
    #[serde(default = "default_upstream_timeout")]
    pub timeout_ms: u64,
    /// Idle connections kept per upstream host.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle: usize,
    /// Forward the client's `Authorization` header (the API-key header is
    /// never forwarded: the upstream gets the principal instead).
    #[serde(default = "yes")]
    pub forward_authorization: bool,
}

/// The HTTP version spoken to an upstream.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1, pooled keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 only (gRPC).
    Http2,
}

fn default_connect_timeout() -> u64 {
    2_000
}
fn default_upstream_timeout() -> u64 {
    30_000
}
fn default_pool_max_idle() -> usize {
    256
}
fn yes() -> bool {
    true
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Where the decision log goes: `stdout`, `stderr`, `off`, or a file path
    /// (appended). One JSON object per line.
    pub decisions: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            decisions: "stdout".into(),
        }
    }
}

/// Milliseconds as a duration.
pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl GatewayConfig {
    /// Reads and parses a configuration file, paths in it made relative
    /// to it. Checking it is `CompiledConfig::compile`'s job, which lists
    /// every problem of the settings and of the files they name at once.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Parses TOML text (no checks beyond the schema).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Relative paths in the file are relative to the file.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut self.snapshot.file {
            fix(p);
        }
        if let Some(p) = &mut self.admin.token_file {
            fix(p);
        }
        if let Some(p) = &mut self.decision.token_file {
            fix(p);
        }
        if let Some(jwt) = &mut self.identity.jwt {
            if let Some(p) = &mut jwt.jwks_file {
                fix(p);
            }
            for k in &mut jwt.keys {
                if let Some(p) = &mut k.pem_file {
                    fix(p);
                }
            }
        }
        let d = &mut self.log.decisions;
        if !matches!(d.as_str(), "stdout" | "stderr" | "off") && Path::new(d).is_relative() {
            *d = base.join(&*d).to_string_lossy().into_owned();
        }
    }

    /// Checks the settings themselves and lists every problem. Files they
    /// name are read, and routes and keys built, once, by
    /// `CompiledConfig::compile`, which reports its problems with these.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (name, tls) in [
            ("server.tls", &self.server.tls),
            ("admin.tls", &self.admin.tls),
            ("decision.tls", &self.decision.tls),
        ] {
            if let Some(t) = tls {
                if t.certificates.is_empty() {
                    problems.push(format!(
                        "{name}.certificates: name at least one certificate and key"
                    ));
                }
                if t.handshake_timeout_ms == 0 {
                    problems.push(format!(
                        "{name}.handshake_timeout_ms: must be greater than 0"
                    ));
                }
                if t.client_certificates == ClientCertificates::Optional && t.client_ca.is_none() {
                    problems.push(format!("{name}.client_certificates: needs client_ca (the CAs client certificates must chain to)"));
                }
                if t.client_crl.is_some() && t.client_ca.is_none() {
                    problems.push(format!("{name}.client_crl: needs client_ca (revocation lists are checked for client certificates)"));
                }
                if !t.client_principals.is_empty() {
                    if name != "server.tls" {
                        problems.push(format!("{name}.client_principals: only the proxy listener ([server.tls]) maps client certificates to principals"));
                    }
                    if t.client_ca.is_none() {
                        problems.push(format!("{name}.client_principals: needs client_ca (only verified certificates are mapped)"));
                    }
                    for (san, principal) in &t.client_principals {
                        let id = principal.strip_prefix("service/").unwrap_or("");
                        if id.is_empty() || id.contains('/') {
                            problems.push(format!("{name}.client_principals.{san:?}: {principal:?} is not a service account (`service/<id>`)"));
                        }
                        if san.is_empty() {
                            problems.push(format!("{name}.client_principals: an empty SAN"));
                        }
                    }
                }
            }
        }
        match &self.assertion {
            Some(a) => {
                if !(1..=3600).contains(&a.ttl_s) {
                    problems.push("assertion.ttl_s: between 1 and 3600 seconds (an assertion is for one request)".into());
                }
                if !a.keys.iter().any(|k| k.private_key.is_some()) {
                    problems.push(
                        "assertion.keys: at least one needs a private_key to sign with".into(),
                    );
                }
                let mut kids = std::collections::BTreeSet::new();
                for k in &a.keys {
                    if k.kid.is_empty() || !kids.insert(k.kid.as_str()) {
                        problems.push(format!(
                            "assertion.keys: kid {:?} is empty or used twice",
                            k.kid
                        ));
                    }
                    if k.private_key.is_some() == k.public_key.is_some() {
                        problems.push(format!(
                            "assertion.keys.{}: give a private_key or a public_key (one of them)",
                            k.kid
                        ));
                    }
                }
            }
            None => {
                for r in self.routes.iter().filter(|r| r.assertion) {
                    problems.push(format!(
                        "routes: {} has assertion = true, but there is no [assertion] section with a key to sign with",
                        r.label()
                    ));
                }
            }
        }
        if self.decision.tls.is_some() && self.decision.listen.is_none() {
            problems.push("decision.tls: needs decision.listen (the decision endpoint on the proxy listener uses server.tls)".into());
        }
        let s = &self.server;
        if s.workers == Some(0) {
            problems.push("server.workers: must be at least 1 (or left out: one per core)".into());
        }
        if s.max_header_bytes < 8192 {
            problems.push("server.max_header_bytes: must be at least 8192".into());
        }
        for p in &s.upgrades {
            if p.eq_ignore_ascii_case("h2c") || p.to_ascii_lowercase().starts_with("h2c/") {
                problems.push("server.upgrades: h2c cannot be allowed: a cleartext HTTP/2 connection to the upstream would carry requests the gateway never authorizes".into());
            } else if p.is_empty() || !p.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                problems.push(format!("server.upgrades: {p:?} is not a protocol name (as in an Upgrade header: websocket)"));
            }
        }
        for (name, v) in [
            ("server.header_read_timeout_ms", s.header_read_timeout_ms),
            ("server.upgrade_idle_timeout_ms", s.upgrade_idle_timeout_ms),
            (
                "engine.decision_timeout_ms",
                self.engine.decision_timeout_ms,
            ),
            ("engine.load_timeout_ms", self.engine.load_timeout_ms),
            ("snapshot.poll_interval_ms", self.snapshot.poll_interval_ms),
            ("snapshot.poll_timeout_ms", self.snapshot.poll_timeout_ms),
        ] {
            if v == 0 {
                problems.push(format!("{name}: must be greater than 0"));
            }
        }
        let e = &self.engine;
        for (wall, cpu, limit) in [
            (
                "engine.decision_wall_limit_ms",
                "decision_timeout_ms",
                (e.decision_wall_limit_ms, e.decision_timeout_ms),
            ),
            (
                "engine.load_wall_limit_ms",
                "load_timeout_ms",
                (e.load_wall_limit_ms, e.load_timeout_ms),
            ),
        ] {
            if limit.0 < limit.1 {
                problems.push(format!(
                    "{wall}: must be at least engine.{cpu} ({} ms): it bounds the wall time of a call that has not used its CPU budget",
                    limit.1
                ));
            }
        }
        if s.max_connections == 0 {
            problems.push("server.max_connections: must be at least 1".into());
        }
        if s.listen == self.admin.listen && s.listen.port() != 0 {
            problems.push(format!(
                "admin.listen: {} is also server.listen; the admin listener needs its own address",
                s.listen
            ));
        }
        if self.engine.max_memory_mb < 16 {
            problems.push("engine.max_memory_mb: must be at least 16".into());
        }
        check_token(
            "admin",
            "it guards snapshot pushes",
            &self.admin.token,
            &self.admin.token_file,
            &mut problems,
        );
        let d = &self.decision;
        check_token(
            "decision",
            "it guards the decision endpoint",
            &d.token,
            &d.token_file,
            &mut problems,
        );
        if let Some(prefix) = &d.path_prefix
            && (!prefix.starts_with('/')
                || prefix.ends_with('/')
                || prefix.contains(['?', '#', '%']))
        {
            problems.push(format!(
                "decision.path_prefix: {prefix:?} must start with `/`, not end with one, and hold no `?`, `#` or `%` (e.g. \"/-/authz\")"
            ));
        }
        if let Some(listen) = d.listen
            && listen.port() != 0
            && (listen == s.listen || listen == self.admin.listen)
        {
            problems.push(format!(
                "decision.listen: {listen} is already the proxy or admin listener; use a path_prefix to share the proxy listener"
            ));
        }
        if d.max_batch == 0 {
            problems.push("decision.max_batch: must be at least 1".into());
        }
        let snap = &self.snapshot;
        if snap.require_signature && snap.trusted_keys.is_empty() {
            problems.push(
                "snapshot.require_signature: list the public keys to trust in snapshot.trusted_keys".into(),
            );
        }
        if let Some(state) = &snap.state_file
            && let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            problems.push(format!(
                "snapshot.state_file {}: the directory {} does not exist",
                state.display(),
                dir.display()
            ));
        }
        if let Some(url) = &self.snapshot.poll_url
            && let Err(e) = parse_store_url(url)
        {
            problems.push(format!("snapshot.poll_url: {e}"));
        }
        let https = self
            .snapshot
            .poll_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        if self.snapshot.poll_ca_file.is_some() && !https {
            problems.push(
                "snapshot.poll_ca_file: trusted only for an https:// snapshot.poll_url".into(),
            );
        }
        if !self.snapshot.poll_headers.is_empty() && self.snapshot.poll_url.is_none() {
            problems.push("snapshot.poll_headers: set snapshot.poll_url too".into());
        }
        if self.snapshot.file.is_none()
            && self.snapshot.poll_url.is_none()
            && self.admin.token.is_none()
            && self.admin.token_file.is_none()
        {
            problems.push(
                "snapshot: no source: set snapshot.file, snapshot.poll_url, or admin.token to accept pushes"
                    .into(),
            );
        }
        for (name, u) in &self.upstreams {
            if let Err(e) = parse_http_url(&u.url) {
                problems.push(format!("upstreams.{name}.url: {e}"));
            }
            if u.timeout_ms == 0 || u.connect_timeout_ms == 0 {
                problems.push(format!("upstreams.{name}: timeouts must be greater than 0"));
            }
            let https = u.url.starts_with("https://");
            if !https && (u.ca_file.is_some() || u.server_name.is_some()) {
                problems.push(format!(
                    "upstreams.{name}: ca_file and server_name are for https:// upstreams"
                ));
            }
            if let Some(n) = &u.server_name
                && rustls_pki_types::ServerName::try_from(n.as_str()).is_err()
            {
                problems.push(format!(
                    "upstreams.{name}.server_name: {n:?} is not a DNS name or IP address"
                ));
            }
        }
        if self.routes.is_empty() {
            problems.push(
                "routes: none configured: every request would be denied; add [[routes]]".into(),
            );
        }
        for (i, r) in self.routes.iter().enumerate() {
            if !self.upstreams.contains_key(&r.upstream) {
                problems.push(format!(
                    "routes[{i}] ({}): upstream {:?} is not defined under [upstreams]",
                    r.path, r.upstream
                ));
            }
            if policy_wasm::action::Action::parse(&r.action).is_none() {
                problems.push(format!(
                    "routes[{i}] ({}): unknown action {:?} (see policy-wasm/README.md)",
                    r.path, r.action
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Worker threads: `server.workers`, or one per core. Each has its own
    /// engine instance of every snapshot.
    pub fn worker_count(&self) -> usize {
        self.server.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
    }

    /// The admin and decision tokens, each read once (from its file when
    /// configured there). An unreadable or short token file is an error:
    /// an endpoint whose token could not be read must not start open.
    pub fn read_tokens(&self) -> Result<Tokens, String> {
        Ok(Tokens {
            admin: read_token("admin", &self.admin.token, &self.admin.token_file)?,
            decision: read_token("decision", &self.decision.token, &self.decision.token_file)?,
        })
    }
}

/// Reads a key file with `parse`, naming the file in any error.
fn read_key<K, E: std::fmt::Display>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<K, E>,
) -> Result<K, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads an assertion key's public key (SPKI PEM).
pub fn read_public_key(
    path: &Path,
) -> Result<portcullis_snapshots::signature::VerifyingKey, String> {
    read_key(path, portcullis_snapshots::signature::read_public)
}

/// Reads one of `snapshot.trusted_keys`.
pub fn read_trusted_key(
    path: &Path,
) -> Result<portcullis_snapshots::signature::VerifyingKey, String> {
    read_key(path, portcullis_snapshots::signature::read_public)
}

/// Reads `snapshot.browser_signing_key`.
pub fn read_signing_key(
    path: &Path,
) -> Result<portcullis_snapshots::signature::SigningKey, String> {
    read_key(path, portcullis_snapshots::signature::read_private)
}

impl GatewayConfig {
    /// The public keys of `snapshot.trusted_keys` (checked by `validate`).
    pub fn trusted_keys(
        &self,
    ) -> Result<Vec<portcullis_snapshots::signature::VerifyingKey>, String> {
        self.snapshot
            .trusted_keys
            .iter()
            .map(|p| read_trusted_key(p))
            .collect()
    }
}

/// The bearer tokens guarding the admin API and the decision endpoint.
#[derive(Clone, Default)]
pub struct Tokens {
    /// `admin.token`: pushes are refused without one.
    pub admin: Option<String>,
    /// `decision.token`: the decision endpoint is open without one.
    pub decision: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("admin", &self.admin.as_ref().map(|_| "…"))
            .field("decision", &self.decision.as_ref().map(|_| "…"))
            .finish()
    }
}

fn read_token(
    section: &str,
    token: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<String>, String> {
    match (token, file) {
        (Some(t), _) => Ok(Some(t.clone())),
        (None, Some(p)) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("{section}.token_file {}: cannot read: {e}", p.display()))?;
            let t = t.trim();
            if t.len() < 16 {
                return Err(format!(
                    "{section}.token_file {}: the token must have at least 16 characters",
                    p.display()
                ));
            }
            Ok(Some(t.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// A section's `token` / `token_file` pair: at most one, 16 characters or more.
fn check_token(
    section: &str,
    why: &str,
    token: &Option<String>,
    file: &Option<PathBuf>,
    problems: &mut Vec<String>,
) {
    match (token, file) {
        (Some(_), Some(_)) => {
            problems.push(format!("{section}: give `token` or `token_file`, not both"))
        }
        (Some(t), None) if t.len() < 16 => problems.push(format!(
            "{section}.token: use at least 16 characters ({why})"
        )),
        _ => {}
    }
}

/// Checks that a URL is `http://authority[/path]` and returns it as a URI.
/// A store URL: `http://` or `https://`, with a host.
pub fn parse_store_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        Some("http" | "https") => Err(format!("{url:?}: no host")),
        Some(other) => Err(format!(
            "{url:?}: scheme {other:?} is not supported; use https:// or http://"
        )),
        None => Err(format!(
            "{url:?}: give a full URL such as https://store.example/portcullis/latest.json"
        )),
    }
}

pub fn parse_http_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "{url:?}: scheme {other:?} is not supported; use http:// or https://"
            ));
        }
        None => {
            return Err(format!(
                "{url:?}: give a full URL such as http://127.0.0.1:3000"
            ));
        }
    }
    if uri.authority().is_none() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(uri)
}
