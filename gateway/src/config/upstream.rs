//! `[upstreams.<name>]`: where allowed requests go. Connected by
//! `stage::forward`.

use std::path::PathBuf;

use serde::Deserialize;

use super::urls::parse_http_url;

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

impl UpstreamConfig {
    /// Its own problems, for the upstream `name`.
    pub(super) fn problems(&self, name: &str, out: &mut Vec<String>) {
        let u = self;
        if let Err(e) = parse_http_url(&u.url) {
            out.push(format!("upstreams.{name}.url: {e}"));
        }
        if u.timeout_ms == 0 || u.connect_timeout_ms == 0 {
            out.push(format!("upstreams.{name}: timeouts must be greater than 0"));
        }
        let https = u.url.starts_with("https://");
        if !https && (u.ca_file.is_some() || u.server_name.is_some()) {
            out.push(format!(
                "upstreams.{name}: ca_file and server_name are for https:// upstreams"
            ));
        }
        if let Some(n) = &u.server_name
            && rustls_pki_types::ServerName::try_from(n.as_str()).is_err()
        {
            out.push(format!(
                "upstreams.{name}.server_name: {n:?} is not a DNS name or IP address"
            ));
        }
    }
}
