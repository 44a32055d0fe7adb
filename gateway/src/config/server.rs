//! `[server]`: the proxy listener, its limits and timeouts.

use std::net::SocketAddr;

use serde::Deserialize;

use super::tls::TlsConfig;

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
    /// How long a request that names a minimum revision
    /// (`X-Portcullis-Min-Revision`: a client reading its own write to the
    /// directory service) waits for this gateway to serve it before the
    /// answer is 503 `revision_not_yet`.
    pub min_revision_wait_ms: u64,
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
            min_revision_wait_ms: 2_000,
        }
    }
}

impl ServerConfig {
    /// Its own problems (its TLS section's are checked with the others').
    pub(super) fn problems(&self, out: &mut Vec<String>) {
        let s = self;
        if s.workers == Some(0) {
            out.push("server.workers: must be at least 1 (or left out: one per core)".into());
        }
        if s.max_header_bytes < 8192 {
            out.push("server.max_header_bytes: must be at least 8192".into());
        }
        for p in &s.upgrades {
            if p.eq_ignore_ascii_case("h2c") || p.to_ascii_lowercase().starts_with("h2c/") {
                out.push("server.upgrades: h2c cannot be allowed: a cleartext HTTP/2 connection to the upstream would carry requests the gateway never authorizes".into());
            } else if p.is_empty() || !p.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                out.push(format!("server.upgrades: {p:?} is not a protocol name (as in an Upgrade header: websocket)"));
            }
        }
        for (name, v) in [
            ("server.header_read_timeout_ms", s.header_read_timeout_ms),
            ("server.upgrade_idle_timeout_ms", s.upgrade_idle_timeout_ms),
        ] {
            if v == 0 {
                out.push(format!("{name}: must be greater than 0"));
            }
        }
        if s.min_revision_wait_ms > 60_000 {
            out.push("server.min_revision_wait_ms: at most 60000 (a request holds its connection while it waits)".into());
        }
        if s.max_connections == 0 {
            out.push("server.max_connections: must be at least 1".into());
        }
    }
}
