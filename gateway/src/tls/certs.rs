//! Certificate chains and keys read from PEM files, checked as an
//! operator would want before any client sees them: the key matches the
//! certificate, the certificate is valid now, and the names it serves are
//! read from it.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::config::CertificatePair;

/// A chain and its key, ready to serve, with what its leaf says.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// For rustls.
    pub key: Arc<CertifiedKey>,
    /// The leaf's DNS names (lower case; `*.` wildcards kept as written).
    pub names: Vec<String>,
    /// The leaf's end of validity (Unix seconds).
    pub not_after: i64,
    /// Where it came from, for logs.
    pub origin: String,
}

/// Reads every pair; one error per pair that cannot serve, naming its file.
pub fn load_all(pairs: &[CertificatePair], now: i64) -> Result<Vec<Loaded>, Vec<String>> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for pair in pairs {
        match load(pair, now) {
            Ok(l) => loaded.push(l),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

fn load(pair: &CertificatePair, now: i64) -> Result<Loaded, String> {
    let cert_path = pair.cert.display();
    let chain = read_chain(&pair.cert)?;
    let key = PrivateKeyDer::from_pem_file(&pair.key).map_err(|e| {
        format!(
            "{}: no private key could be read ({e}); expected PEM (PKCS#8, PKCS#1 or SEC1)",
            pair.key.display()
        )
    })?;
    let signer = any_supported_type(&key)
        .map_err(|e| format!("{}: unusable private key: {e}", pair.key.display()))?;
    let certified = CertifiedKey::new(chain.clone(), signer);
    certified.keys_match().map_err(|e| {
        format!(
            "{}: the key does not belong to the certificate {cert_path} ({e})",
            pair.key.display()
        )
    })?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("{cert_path}: no certificate"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("{cert_path}: the certificate does not parse: {e}"))?;
    let validity = parsed.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now < not_before {
        return Err(format!(
            "{cert_path}: the certificate is not valid before {} (now {})",
            rfc3339(not_before),
            rfc3339(now)
        ));
    }
    if now > not_after {
        return Err(format!(
            "{cert_path}: the certificate expired at {}: renew it",
            rfc3339(not_after)
        ));
    }
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        names,
        not_after,
        origin: cert_path.to_string(),
    })
}

/// Reads CA certificates (PEM), for verifying clients.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The certificate revocation lists in a PEM file (at least one).
pub fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM CRLs: {e}", path.display()))?;
    if crls.is_empty() {
        return Err(format!(
            "{}: holds no CRL (-----BEGIN X509 CRL-----)",
            path.display()
        ));
    }
    Ok(crls)
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}
