//! A connection's verified client certificate, held to the listener's
//! trust as it is now, not as it was at the handshake.
//!
//! Revocation lists and client CAs are consulted by rustls in handshakes
//! only, and the service account a certificate is (`client_principals`)
//! is read once per connection. So a certificate listed by a reloaded CRL,
//! issued by a CA no longer trusted, or past its `notAfter` would keep its
//! identity on open HTTP/1.1 keep-alive and HTTP/2 connections (issue
//! #23). Here the chain is kept and verified again — by the listener's
//! current verifier, the one new handshakes get — whenever the listener's
//! files were reloaded since the last check, and the end of validity is
//! compared on every request. A certificate found wanting stays refused
//! for the rest of its connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rustls_pki_types::CertificateDer;

use super::listener::Tls;

/// Why a connection's certificate no longer identifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withdrawn {
    /// It no longer verifies: a reloaded CRL lists it, or its CA is no
    /// longer trusted.
    Revoked,
    /// Its `notAfter` has passed.
    Expired,
}

impl Withdrawn {
    /// The metric label and reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Withdrawn::Revoked => "revoked",
            Withdrawn::Expired => "expired",
        }
    }
}

/// The client certificate of one connection.
pub struct PeerCertificate {
    /// The service account it is, if `client_principals` maps it.
    pub principal: Option<Arc<str>>,
    chain: Vec<CertificateDer<'static>>,
    /// End of validity (Unix seconds).
    pub not_after: i64,
    /// Serial number, hex, for logs.
    pub serial: String,
    tls: Arc<Tls>,
    /// The listener's trust generation it was last verified against.
    checked: AtomicU64,
    withdrawn: OnceLock<(Withdrawn, String)>,
}

impl std::fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCertificate")
            .field("principal", &self.principal)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl PeerCertificate {
    /// The certificate `chain` (leaf first) a handshake on `tls` verified,
    /// at trust `generation` (read before the handshake began, so a reload
    /// during it is checked again).
    pub fn new(tls: Arc<Tls>, chain: &[CertificateDer<'_>], generation: u64) -> Option<Self> {
        let leaf = chain.first()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf).ok()?;
        let not_after = parsed.validity().not_after.timestamp();
        let serial = parsed.raw_serial_as_string();
        Some(PeerCertificate {
            principal: tls.principal_of(chain),
            chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            not_after,
            serial,
            tls,
            checked: AtomicU64::new(generation),
            withdrawn: OnceLock::new(),
        })
    }

    /// The listener.
    pub fn listener(&self) -> &'static str {
        self.tls.listener
    }

    /// Whether the certificate still identifies its connection at Unix
    /// time `now`: the reason, and a sentence, when it does not. Costs a
    /// comparison and an atomic load unless the listener reloaded.
    pub fn check(&self, now: i64) -> Result<(), (Withdrawn, &str)> {
        if let Some((why, message)) = self.withdrawn.get() {
            return Err((*why, message));
        }
        if now > self.not_after {
            return self.withdraw(
                Withdrawn::Expired,
                format!(
                    "the client certificate (serial {}) expired; reconnect with a valid one",
                    self.serial
                ),
            );
        }
        let generation = self.tls.generation();
        if self.checked.load(Ordering::Acquire) == generation {
            return Ok(());
        }
        match self.tls.verify_client(&self.chain) {
            Ok(()) => {
                self.checked.store(generation, Ordering::Release);
                Ok(())
            }
            Err(e) => self.withdraw(
                Withdrawn::Revoked,
                format!(
                    "the client certificate (serial {}) is no longer accepted: {e}",
                    self.serial
                ),
            ),
        }
    }

    /// Records why the certificate stopped identifying its connection;
    /// the first reason stays.
    fn withdraw(&self, why: Withdrawn, message: String) -> Result<(), (Withdrawn, &str)> {
        let (why, message) = self.withdrawn.get_or_init(|| (why, message));
        Err((*why, message))
    }

    /// Whether [`PeerCertificate::check`] has refused it already.
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn.get().is_some()
    }
}
