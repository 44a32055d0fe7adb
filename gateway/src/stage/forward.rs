//! Forwarding allowed requests upstream over pooled keep-alive
//! connections (hyper-util's client; `https://` upstreams through rustls
//! with their certificate verified; HTTP/1.1, or HTTP/2 for gRPC), with
//! the identity headers the upstream may trust and without the ones it
//! must not.
//!
//! Every client header that could pass for one the gateway sets
//! (`X-Portcullis-*`, `X-Forwarded-*`, `Forwarded`, also spelt with `_`) is
//! removed before ours are set, hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it
//! names, plus the classic list) are dropped both ways, and the upstream
//! receives exactly the normalized path that was authorized.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thiserror::Error;

use crate::config::{UpstreamConfig, UpstreamProtocol, ms, parse_http_url};
use crate::response::Body;
use crate::store::client_tls;

/// The pooled HTTP/1.1 client, shared by upstreams and the snapshot poller.
pub type HttpClient = Client<HttpConnector, Body>;

/// A pooled client with the given timeouts.
pub fn http_client(connect_timeout: Duration, max_idle: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(max_idle)
        .build(connector)
}

/// Why a request could not be forwarded.
#[derive(Debug, Error)]
pub enum ForwardError {
    /// The route names an upstream that does not exist (caught by config
    /// validation; kept as a fail-closed answer).
    #[error("unknown upstream {0:?}")]
    UnknownUpstream(String),
    /// Connecting or talking to the upstream failed (→ 502).
    #[error("upstream {upstream} unreachable: {message}")]
    Unreachable {
        /// The upstream's name.
        upstream: String,
        /// What failed.
        message: String,
    },
    /// No response head within the upstream's timeout (→ 504).
    #[error("upstream {upstream} timed out after {after:?}")]
    Timeout {
        /// The upstream's name.
        upstream: String,
        /// The timeout.
        after: Duration,
    },
}

impl ForwardError {
    /// Whether the upstream was reached but did not answer in time (504,
    /// where anything else is a 502).
    pub fn timed_out(&self) -> bool {
        matches!(self, ForwardError::Timeout { .. })
    }

    /// The metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            ForwardError::Timeout { .. } => "timeout",
            _ => "unreachable",
        }
    }
}

/// The client of one upstream: `http://` or `https://`.
type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

/// One upstream as configured, its URL parsed and its TLS settings read
/// (once, at compilation).
#[derive(Clone)]
pub struct UpstreamSpec {
    /// Trust for `https://` (for `http://`, an unused one trusting nobody).
    tls: rustls::ClientConfig,
    /// The name to send in SNI and verify, when not the URL's host.
    server_name: Option<rustls_pki_types::ServerName<'static>>,
    protocol: UpstreamProtocol,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    host_header: HeaderValue,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    pool_max_idle: usize,
    forward_authorization: bool,
}

impl std::fmt::Debug for UpstreamSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSpec")
            .field("scheme", &self.scheme)
            .field("authority", &self.authority)
            .field("protocol", &self.protocol)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl UpstreamSpec {
    /// A pooled client for this upstream, for one worker.
    fn client(&self) -> UpstreamClient {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.enforce_http(false);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(self.pool_max_idle);
        if self.protocol == UpstreamProtocol::Http2 {
            builder
                .http2_only(true)
                .http2_keep_alive_interval(Some(Duration::from_secs(30)))
                .http2_keep_alive_while_idle(true);
        }
        let wants = HttpsConnectorBuilder::new().with_tls_config(self.tls.clone());
        let wants = if self.scheme == http::uri::Scheme::HTTPS {
            wants.https_only()
        } else {
            wants.https_or_http()
        };
        let wants = match &self.server_name {
            Some(n) => wants.with_server_name_resolver(FixedServerNameResolver::new(n.clone())),
            None => wants,
        };
        let connector = match self.protocol {
            UpstreamProtocol::Http1 => wants.enable_http1().wrap_connector(http),
            UpstreamProtocol::Http2 => wants.enable_http2().wrap_connector(http),
        };
        builder.build(connector)
    }

    /// Whether requests go out as HTTP/2.
    pub fn http2(&self) -> bool {
        self.protocol == UpstreamProtocol::Http2
    }
}

/// The TLS configuration of an `http://` upstream, which never reaches
/// the connector's TLS half: trusts nobody.
fn unused_tls() -> Result<rustls::ClientConfig, String> {
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    )
}

/// Every configured upstream, parsed.
#[derive(Clone, Debug, Default)]
pub struct UpstreamSpecs {
    by_name: HashMap<String, UpstreamSpec>,
}

impl UpstreamSpecs {
    /// Parses every upstream's URL; the error names the upstream.
    pub fn parse(
        config: &std::collections::BTreeMap<String, UpstreamConfig>,
    ) -> Result<Self, String> {
        let mut by_name = HashMap::new();
        for (name, u) in config {
            let uri = parse_http_url(&u.url).map_err(|e| format!("upstreams.{name}.url: {e}"))?;
            let parts = uri.into_parts();
            let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
                return Err(format!("upstreams.{name}.url: no scheme or host"));
            };
            let prefix = parts
                .path_and_query
                .map(|p| p.path().trim_end_matches('/').to_string())
                .unwrap_or_default();
            let host_header = HeaderValue::from_str(authority.as_str())
                .map_err(|e| format!("upstreams.{name}.url: {e}"))?;
            let tls = if scheme == http::uri::Scheme::HTTPS {
                client_tls(u.ca_file.as_deref(), &format!("upstreams.{name}.ca_file"))?
            } else {
                unused_tls()?
            };
            let server_name = u
                .server_name
                .as_deref()
                .map(|n| {
                    rustls_pki_types::ServerName::try_from(n.to_string())
                        .map_err(|e| format!("upstreams.{name}.server_name: {n:?}: {e}"))
                })
                .transpose()?;
            by_name.insert(
                name.clone(),
                UpstreamSpec {
                    tls,
                    server_name,
                    protocol: u.protocol,
                    scheme,
                    authority,
                    host_header,
                    prefix,
                    timeout: ms(u.timeout_ms),
                    connect_timeout: ms(u.connect_timeout_ms),
                    pool_max_idle: u.pool_max_idle,
                    forward_authorization: u.forward_authorization,
                },
            );
        }
        Ok(UpstreamSpecs { by_name })
    }
}

struct Upstream {
    spec: UpstreamSpec,
    client: UpstreamClient,
}

/// Who the gateway vouches for, sent upstream.
pub struct Vouch<'a> {
    /// `X-Portcullis-Principal`: the authenticated principal (for an API
    /// key, `apikey/<sha256 of the key>`).
    pub principal: &'a str,
    /// `X-Portcullis-Acting-As`: for an API key, the user it acted as.
    pub acting_as: Option<&'a str>,
    /// `X-Portcullis-Revision`.
    pub revision: u64,
    /// The TCP peer, appended to `X-Forwarded-For`.
    pub peer: SocketAddr,
    /// The normalized, authorized path.
    pub path: &'a str,
    /// The host the client asked for (`crate::stage::host::request_host`), sent
    /// as `X-Forwarded-Host`.
    pub host: Option<&'a str>,
    /// The API-key header, never forwarded.
    pub api_key_header: &'a HeaderName,
    /// Forward the method-override headers (`server.allow_method_override`).
    pub keep_method_override: bool,
    /// Whether the client came over TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    /// `X-Portcullis-Assertion`, on routes that send one.
    pub assertion: Option<&'a str>,
    /// The protocol of an authorized `Upgrade` request (`websocket`),
    /// asked of the upstream in turn; `None` for every other request.
    pub upgrade: Option<&'a HeaderValue>,
}

/// Every configured upstream with its connection pool.
pub struct Upstreams {
    by_name: HashMap<String, Upstream>,
}

/// The identity headers the gateway writes (the proxy onto forwarded
/// requests, the adapters onto their answers).
pub const PRINCIPAL: &str = "x-portcullis-principal";
/// See [`PRINCIPAL`].
pub const ACTING_AS: &str = "x-portcullis-acting-as";
/// See [`PRINCIPAL`].
pub const REVISION: &str = "x-portcullis-revision";

impl Upstreams {
    /// A connection pool per upstream, for one worker.
    pub fn connect(specs: &UpstreamSpecs) -> Self {
        let by_name = specs
            .by_name
            .iter()
            .map(|(name, spec)| {
                (
                    name.clone(),
                    Upstream {
                        client: spec.client(),
                        spec: spec.clone(),
                    },
                )
            })
            .collect();
        Upstreams { by_name }
    }

    /// Sends the request to the named upstream and returns its response
    /// (headers cleaned, body streamed).
    pub async fn forward(
        &self,
        name: &str,
        mut parts: http::request::Parts,
        body: Body,
        vouch: Vouch<'_>,
    ) -> Result<Response<Incoming>, ForwardError> {
        let entry = self
            .by_name
            .get(name)
            .ok_or_else(|| ForwardError::UnknownUpstream(name.to_string()))?;
        let (up, client) = (&entry.spec, &entry.client);
        let unreachable = |message: String| ForwardError::Unreachable {
            upstream: name.to_string(),
            message,
        };
        let mut target = String::with_capacity(up.prefix.len() + vouch.path.len() + 32);
        target.push_str(&up.prefix);
        target.push_str(vouch.path);
        if let Some(q) = parts.uri.query() {
            target.push('?');
            target.push_str(q);
        }
        let uri = Uri::builder()
            .scheme(up.scheme.clone())
            .authority(up.authority.clone())
            .path_and_query(target)
            .build()
            .map_err(|e| unreachable(format!("cannot build the upstream URI: {e}")))?;

        if vouch.upgrade.is_some() && up.http2() {
            return Err(unreachable(
                "the upstream is configured for HTTP/2 (protocol = \"http2\"); an Upgrade needs an http1 upstream".into(),
            ));
        }
        let headers = &mut parts.headers;
        // `TE: trailers` says the client takes trailers: gRPC servers
        // refuse requests without it. Every other TE value is hop-by-hop.
        let trailers = headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
        strip_hop_by_hop(headers);
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        if let Some(protocol) = vouch.upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol.clone());
        }
        strip_client_identity(headers, vouch.api_key_header, vouch.keep_method_override);
        headers.remove(vouch.api_key_header);
        if !up.forward_authorization {
            headers.remove(header::AUTHORIZATION);
        }
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) if !prior.trim().is_empty() => format!("{prior}, {}", vouch.peer.ip()),
            _ => vouch.peer.ip().to_string(),
        };
        set(headers, "x-forwarded-for", &forwarded_for);
        set(
            headers,
            "x-forwarded-proto",
            if vouch.tls { "https" } else { "http" },
        );
        // Without a host of the client's (HTTP/1.0), no X-Forwarded-Host at
        // all: the client's own was removed above.
        if let Some(h) = vouch.host {
            set(headers, "x-forwarded-host", h);
        }
        set(headers, PRINCIPAL, vouch.principal);
        if let Some(a) = vouch.acting_as {
            set(headers, ACTING_AS, a);
        }
        set(headers, REVISION, &vouch.revision.to_string());
        if let Some(a) = vouch.assertion {
            set(headers, "x-portcullis-assertion", a);
        }
        // Over HTTP/2 the URI's authority is the host (`:authority`).
        let version = if up.http2() {
            headers.remove(header::HOST);
            Version::HTTP_2
        } else {
            headers.insert(header::HOST, up.host_header.clone());
            Version::HTTP_11
        };

        let mut req = Request::from_parts(parts, body);
        *req.uri_mut() = uri;
        *req.version_mut() = version;

        let response = match tokio::time::timeout(up.timeout, client.request(req)).await {
            Err(_) => {
                return Err(ForwardError::Timeout {
                    upstream: name.to_string(),
                    after: up.timeout,
                });
            }
            Ok(Err(e)) => return Err(unreachable(error_chain(&e))),
            Ok(Ok(r)) => r,
        };
        let (mut parts, body) = response.into_parts();
        let switched = parts.status == http::StatusCode::SWITCHING_PROTOCOLS;
        if switched {
            // Only to the protocol asked for, and only when one was.
            match vouch.upgrade {
                Some(asked) if switched_to(&parts.headers, asked) => {
                    strip_hop_by_hop(&mut parts.headers);
                    parts
                        .headers
                        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                    parts.headers.insert(header::UPGRADE, asked.clone());
                }
                _ => {
                    return Err(unreachable(
                        "the upstream switched protocols to one the client did not ask for".into(),
                    ));
                }
            }
        } else {
            strip_hop_by_hop(&mut parts.headers);
        }
        Ok(Response::from_parts(parts, body))
    }
}

/// Whether an upstream's `101` names the protocol asked for (by name,
/// case-insensitively), and only that one.
pub fn switched_to(response: &HeaderMap, asked: &HeaderValue) -> bool {
    let name = |v: &HeaderValue| {
        v.to_str().ok().map(|s| {
            s.trim()
                .split('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        })
    };
    let mut answered = response.get_all(header::UPGRADE).iter();
    matches!(
        (answered.next(), answered.next()),
        (Some(v), None) if name(v).is_some() && name(v) == name(asked)
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    // Values that cannot be header values (never ours: principals and
    // hosts are ASCII) are dropped rather than forwarded mangled.
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(HeaderName::from_static(name), v);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// Removes `Connection`, every header it names, and the hop-by-hop
/// headers of RFC 9110 §7.6.1 (and their pre-standard cousins).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// The headers that ask an upstream to treat a request as another method.
pub const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The method a request's method-override headers name (any of
/// [`METHOD_OVERRIDES`], also with `_` for `-`), if it carries any; an
/// error when they are unreadable or disagree.
pub fn method_override(headers: &HeaderMap) -> Result<Option<http::Method>, &'static str> {
    let mut named: Option<http::Method> = None;
    for (k, v) in headers {
        if !METHOD_OVERRIDES.contains(&as_cgi_reads(k.as_str()).as_ref()) {
            continue;
        }
        let m = v
            .to_str()
            .ok()
            .map(str::trim)
            .and_then(|m| http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .ok_or("a method-override header that names no method")?;
        match &named {
            Some(prior) if *prior != m => return Err("method-override headers that disagree"),
            _ => named = Some(m),
        }
    }
    Ok(named)
}

/// A header name as CGI, WSGI, PHP and Rack servers read it: they turn
/// `-` into `_` (`HTTP_X_PORTCULLIS_PRINCIPAL`), so `X_Portcullis_Principal`
/// and `X-Portcullis-Principal` are one header to them. Names are already
/// lower case.
fn as_cgi_reads(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains('_') {
        std::borrow::Cow::Owned(name.replace('_', "-"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Removes every client header that could pass for one the gateway sets:
/// `X-Portcullis-*`, `X-Forwarded-*` (but a well-formed
/// `X-Forwarded-For`, which is appended to) and `Forwarded`, in any case
/// and with `_` for `-`; look-alikes of `X-Forwarded-For` and of the
/// API-key header; and, unless `keep_method_override`, the method-override
/// headers.
pub fn strip_client_identity(
    headers: &mut HeaderMap,
    api_key_header: &HeaderName,
    keep_method_override: bool,
) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let raw = k.as_str();
            let n = as_cgi_reads(raw);
            n.starts_with("x-portcullis-")
                || (n.starts_with("x-forwarded-") && raw != "x-forwarded-for")
                || n == "forwarded"
                || (n == api_key_header.as_str() && raw != n)
                || (!keep_method_override && METHOD_OVERRIDES.contains(&n.as_ref()))
        })
        .cloned()
        .collect();
    for k in doomed {
        headers.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn client_identity_headers_go_in_any_case() {
        let mut h = HeaderMap::new();
        h.insert(
            "X-Portcullis-Principal",
            HeaderValue::from_static("user/alice"),
        );
        h.append(
            "x-PORTCULLIS-acting-as",
            HeaderValue::from_static("user/alice"),
        );
        h.insert("x-portcullis-anything", HeaderValue::from_static("1"));
        h.insert("x-portcullisx", HeaderValue::from_static("kept"));
        strip_client_identity(&mut h, &HeaderName::from_static("x-api-key"), false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-portcullisx"));
    }
}
