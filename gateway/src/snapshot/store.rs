//! The client a gateway polls its snapshot store with: `http://` or
//! `https://` (rustls; the system's roots, or only the CAs of
//! `snapshot.poll_ca_file`), with `snapshot.poll_headers` on every request
//! (a private bucket's credentials). Built once, when the configuration is
//! compiled, so a bad CA file stops the start rather than the first poll.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::response::{Body, empty};

/// An HTTP(S) client for the store, and the headers it sends.
#[derive(Clone)]
pub struct StoreClient {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    headers: HeaderMap,
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
    /// without one, sending `headers` with every request.
    pub fn new(ca_file: Option<&Path>, headers: &BTreeMap<String, String>) -> Result<Self, String> {
        let tls = client_tls(ca_file, "snapshot.poll_ca_file")?;
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
        })
    }

    /// GETs `uri` (with `If-None-Match: etag` when given).
    pub async fn get(
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
