//! `[server.tls]`, `[admin.tls]`, `[decision.tls]`: TLS on a listener.
//! Loaded and watched by `tls`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

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

impl TlsConfig {
    /// Its own problems, for the listener configured at `name`
    /// (`server.tls`, …).
    pub(super) fn problems(&self, name: &str, out: &mut Vec<String>) {
        let t = self;
        if t.certificates.is_empty() {
            out.push(format!(
                "{name}.certificates: name at least one certificate and key"
            ));
        }
        if t.handshake_timeout_ms == 0 {
            out.push(format!(
                "{name}.handshake_timeout_ms: must be greater than 0"
            ));
        }
        if t.client_certificates == ClientCertificates::Optional && t.client_ca.is_none() {
            out.push(format!("{name}.client_certificates: needs client_ca (the CAs client certificates must chain to)"));
        }
        if t.client_crl.is_some() && t.client_ca.is_none() {
            out.push(format!("{name}.client_crl: needs client_ca (revocation lists are checked for client certificates)"));
        }
        if !t.client_principals.is_empty() {
            if name != "server.tls" {
                out.push(format!("{name}.client_principals: only the proxy listener ([server.tls]) maps client certificates to principals"));
            }
            if t.client_ca.is_none() {
                out.push(format!("{name}.client_principals: needs client_ca (only verified certificates are mapped)"));
            }
            for (san, principal) in &t.client_principals {
                let id = principal.strip_prefix("service/").unwrap_or("");
                if id.is_empty() || id.contains('/') {
                    out.push(format!("{name}.client_principals.{san:?}: {principal:?} is not a service account (`service/<id>`)"));
                }
                if san.is_empty() {
                    out.push(format!("{name}.client_principals: an empty SAN"));
                }
            }
        }
    }
}
