//! `portcullis demo --tls`: a certificate authority made on the spot and a
//! certificate it signs for 127.0.0.1 and localhost, so that the demo can
//! be tried over HTTPS without any PKI (`curl --cacert <dir>/ca.pem`).

use std::path::{Path, PathBuf};

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use portcullis_gateway::config::{CertificatePair, ClientCertificates, TlsConfig};
use portcullis_gateway::response::Body;
use portcullis_gateway::store::https_connector;

/// The demo's CA (to trust) and the TLS settings of its proxy listener.
pub struct DemoTls {
    /// The CA certificate clients trust (`curl --cacert`).
    pub ca: PathBuf,
    /// `[server.tls]` with the certificate for 127.0.0.1 and localhost.
    pub config: TlsConfig,
}

/// Makes the CA and the server certificate in `dir`.
pub fn make(dir: &Path) -> Result<DemoTls, String> {
    let fail = |e: rcgen::Error| format!("cannot make the demo's certificates: {e}");
    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        DnType::CommonName,
        "Portcullis demo CA (not for production)",
    );
    let ca_cert = ca_params.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().map_err(fail)?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(fail)?;
    let cert = params.signed_by(&key, &issuer).map_err(fail)?;
    let write = |name: &str, text: String| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    };
    let ca = write("ca.pem", ca_cert.pem())?;
    let pair = CertificatePair {
        cert: write("gateway.pem", cert.pem())?,
        key: write("gateway.key", key.serialize_pem())?,
    };
    Ok(DemoTls {
        ca,
        config: TlsConfig {
            certificates: vec![pair],
            client_ca: None,
            client_crl: None,
            client_certificates: ClientCertificates::Required,
            handshake_timeout_ms: 10_000,
            client_principals: Default::default(),
        },
    })
}

/// A client of the walkthrough: plain HTTP, and HTTPS trusting only `ca`.
pub type WalkClient = Client<HttpsConnector<HttpConnector>, Body>;

/// [`WalkClient`] trusting `ca` (PEM) for HTTPS, nothing without one.
pub fn walk_client(ca: Option<&Path>) -> Result<WalkClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca {
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Client::builder(TokioExecutor::new()).build(https_connector(tls)))
}
