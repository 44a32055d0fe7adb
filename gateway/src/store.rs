//! The client a gateway fetches what it does not hold itself with: the
//! snapshot store (`snapshot.poll_url`, its manifest and deltas) and the
//! identity provider's keys (`stage/jwks.rs`). `http://` or `https://`
//! (rustls; the system's roots, or only the CAs configured), with
//! `snapshot.poll_headers` on every request (a private bucket's
//! credentials). Built once, when the configuration is compiled, so a bad
//! CA file stops the start rather than the first poll.
//!
//! Every fetch is bounded as a whole — connect, TLS, headers and body —
//! by the client's deadline ([`StoreClient::fetch`]), and connections
//! carry TCP keepalive: a server or a middlebox that accepts a request and
//! never answers (a black-holed path sends no FIN and no RST) costs one
//! deadline, never the loop that fetches (issue #23).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::response::{Body, empty};

/// An HTTP(S) client for the store, the headers it sends, and the time a
/// whole fetch may take.
#[derive(Clone)]
pub struct StoreClient {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    headers: HeaderMap,
    deadline: Duration,
}

/// An answer read whole: its status, `ETag`, and body (empty unless the
/// status is a success).
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The `ETag`, if any.
    pub etag: Option<HeaderValue>,
    /// The body of a 2xx answer.
    pub body: Bytes,
}

/// Why a fetch brought no answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The exchange did not complete within the deadline: the server or
    /// the path to it may be hung. Nothing waits for it any longer.
    #[error(
        "{url}: no complete answer within {} ms (connect, headers and body); the server or the path to it may be hung",
        after.as_millis()
    )]
    TimedOut {
        /// The URL, as it may be logged.
        url: String,
        /// The deadline.
        after: Duration,
    },
    /// Connecting, TLS, or reading the head failed.
    #[error("{0}")]
    Failed(String),
    /// The body broke off, or was larger than allowed.
    #[error("{0}")]
    Body(String),
}

impl FetchError {
    /// Whether the deadline ran out.
    pub fn timed_out(&self) -> bool {
        matches!(self, FetchError::TimedOut { .. })
    }
}

impl std::fmt::Debug for StoreClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values may be credentials: names only.
        f.debug_struct("StoreClient")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A connector for `http://` and `https://` URLs, HTTP/1.1 and HTTP/2,
/// TLS by `tls`.
pub fn https_connector(tls: rustls::ClientConfig) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    // A peer that vanishes without a FIN (a dead host, a black-holed
    // path) is noticed on a pooled connection instead of being waited on.
    http.set_keepalive(Some(Duration::from_secs(30)));
    http.enforce_http(false);
    HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}

/// A TLS client configuration (ring; TLS 1.2 and 1.3) trusting the CAs in
/// `ca_file` (PEM) or, without one, the system's roots. `setting` names
/// the configuration key in errors.
pub fn client_tls(ca_file: Option<&Path>, setting: &str) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    Ok(match ca_file {
        Some(path) => {
            let unreadable =
                |e: &dyn std::fmt::Display| format!("{setting} {}: {e}", path.display());
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
                roots
                    .add(cert.map_err(|e| unreadable(&e))?)
                    .map_err(|e| unreadable(&e))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "{setting} {}: no certificate in it (PEM, -----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .with_native_roots()
            .map_err(|e| format!("cannot read the system's CA certificates: {e}"))?
            .with_no_client_auth(),
    })
}

impl StoreClient {
    /// A client trusting the CAs in `ca_file` (PEM), or the system's roots
    /// without one, sending `headers` with every request; each fetch
    /// within `deadline`. `setting` names the CA file's key in errors.
    pub fn new(
        ca_file: Option<&Path>,
        setting: &str,
        headers: &BTreeMap<String, String>,
        deadline: Duration,
    ) -> Result<Self, String> {
        let tls = client_tls(ca_file, setting)?;
        let connector = https_connector(tls);
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let n = HeaderName::try_from(name.as_str())
                .map_err(|e| format!("snapshot.poll_headers: {name:?}: {e}"))?;
            let mut v = HeaderValue::try_from(value.as_str())
                .map_err(|e| format!("snapshot.poll_headers: {name:?}: {e}"))?;
            v.set_sensitive(true);
            map.insert(n, v);
        }
        Ok(StoreClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            headers: map,
            deadline,
        })
    }

    /// The time a whole fetch may take.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// GETs `uri` (with `If-None-Match: etag` when given) and reads a 2xx
    /// answer's body, at most `max_bytes`: all of it — connecting, the
    /// TLS handshake, the head and the body — within the deadline.
    pub async fn fetch(
        &self,
        uri: &http::Uri,
        etag: Option<&HeaderValue>,
        max_bytes: usize,
    ) -> Result<Answer, FetchError> {
        let exchange = async {
            let resp = self.get(uri, etag).await.map_err(FetchError::Failed)?;
            let status = resp.status();
            let etag = resp.headers().get(http::header::ETAG).cloned();
            let body = if status.is_success() {
                Limited::new(resp.into_body(), max_bytes)
                    .collect()
                    .await
                    .map_err(|e| {
                        FetchError::Body(format!("{}: download failed: {e}", loggable(uri)))
                    })?
                    .to_bytes()
            } else {
                Bytes::new()
            };
            Ok(Answer { status, etag, body })
        };
        tokio::time::timeout(self.deadline, exchange)
            .await
            .map_err(|_| FetchError::TimedOut {
                url: loggable(uri),
                after: self.deadline,
            })?
    }

    /// GETs `uri` (with `If-None-Match: etag` when given): the head only,
    /// without a deadline of its own — callers bound the whole exchange
    /// ([`StoreClient::fetch`]).
    async fn get(
        &self,
        uri: &http::Uri,
        etag: Option<&HeaderValue>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let mut req = Request::get(uri.clone());
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        if let Some(tag) = etag {
            req = req.header(http::header::IF_NONE_MATCH, tag);
        }
        let req = req.body(empty()).map_err(|e| e.to_string())?;
        self.client
            .request(req)
            .await
            .map_err(|e| format!("{}: {e:#}: {}", loggable(uri), source_chain(&e)))
    }
}

/// `uri` as it may be logged: without its query, which for a presigned
/// S3 or GCS URL is a credential.
pub fn loggable(uri: &http::Uri) -> String {
    let shown = format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    );
    if uri.query().is_some() {
        format!("{shown}?…")
    } else {
        shown
    }
}

/// The causes of an error, for a log line that says why a TLS handshake
/// failed (hyper's own message is only "client error (Connect)").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push(c.to_string());
        cur = c.source();
    }
    out.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presigned_urls_signature_is_not_logged() {
        let uri: http::Uri =
            "https://bucket.s3.amazonaws.com/p/latest.json?X-Amz-Signature=abc&X-Amz-Credential=k"
                .parse()
                .unwrap_or_default();
        let shown = loggable(&uri);
        assert_eq!(shown, "https://bucket.s3.amazonaws.com/p/latest.json?…");
    }
}
