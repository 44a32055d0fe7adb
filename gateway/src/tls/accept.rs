//! A connection's TLS handshake and its client certificate's lifetime: the
//! part of serving a TLS listener that every server of the project shares
//! (the gateway's listeners, the directory service).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;

use super::listener::Tls;
use super::peer::{PeerCertificate, Withdrawn};
use super::stream::MaybeTls;
use crate::metrics::TlsMetrics;

/// Now, in Unix seconds (what certificate validity is checked against).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Completes the TLS handshake on `stream` within the listener's timeout:
/// the session, and the client's verified certificate when it presented
/// one. `None` when the handshake failed or timed out, or when a resumed
/// session brings back a certificate that expired or was revoked since
/// (counted and logged; the connection is dropped).
pub async fn handshake(
    tls: &Arc<Tls>,
    stream: TcpStream,
    peer: SocketAddr,
    metrics: &TlsMetrics,
) -> Option<(MaybeTls, Option<Arc<PeerCertificate>>)> {
    // Read before the handshake: a reload during it is checked again at
    // the first request.
    let generation = tls.generation();
    let accepted = tls.acceptor().accept(stream);
    match tokio::time::timeout(tls.handshake_timeout, accepted).await {
        Ok(Ok(s)) => {
            let cert = s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| PeerCertificate::new(Arc::clone(tls), c, generation));
            if let Some(cert) = &cert {
                // A resumed TLS session brings back its client certificate
                // unverified: one that expired (or was revoked) since is
                // refused here, before anything is served.
                if let Err((why, message)) = cert.check(unix_now()) {
                    metrics.withdrawn(tls.listener, why.as_str());
                    tracing::warn!(
                        listener = tls.listener,
                        %peer,
                        serial = %cert.serial,
                        reason = why.as_str(),
                        %message,
                        "closing a connection at its handshake: its client certificate no longer identifies it (a resumed session)"
                    );
                    return None;
                }
            }
            Some((MaybeTls::Tls(Box::new(s)), cert.map(Arc::new)))
        }
        Ok(Err(e)) => {
            metrics.handshake_failed(tls.listener);
            tracing::debug!(listener = tls.listener, %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.handshake_failed(tls.listener);
            tracing::debug!(listener = tls.listener, %peer, "TLS handshake timed out");
            None
        }
    }
}

/// Resolves when `cert` no longer identifies its connection: checked
/// after every reload of its listener's trust and when its validity ends.
pub async fn withdrawn(
    cert: &PeerCertificate,
    mut reloads: watch::Receiver<u64>,
) -> (Withdrawn, String) {
    let mut reloads_open = true;
    loop {
        if let Err((why, message)) = cert.check(unix_now()) {
            return (why, message.to_string());
        }
        let left = cert.not_after.saturating_add(1).saturating_sub(unix_now());
        // At most a day at a time: a clock that jumps is read again.
        let wait = Duration::from_secs(u64::try_from(left).unwrap_or(0).clamp(1, 86_400));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = reloads.changed(), if reloads_open => reloads_open = changed.is_ok(),
        }
    }
}

/// [`withdrawn`], counted and logged: what a server selects against its
/// connection, which it drops when this resolves.
pub async fn until_withdrawn(
    tls: &Tls,
    cert: &PeerCertificate,
    peer: SocketAddr,
    metrics: &TlsMetrics,
) {
    let (why, message) = withdrawn(cert, tls.reloads()).await;
    metrics.withdrawn(tls.listener, why.as_str());
    tracing::warn!(
        listener = tls.listener,
        %peer,
        serial = %cert.serial,
        principal = cert.principal.as_deref(),
        reason = why.as_str(),
        %message,
        "closing a connection: its client certificate no longer identifies it"
    );
}

/// A 401 for a connection whose client certificate no longer identifies
/// it (revoked by a reloaded CRL or trust, or expired): the connection is
/// closed after it.
pub fn certificate_withdrawn(why: Withdrawn, message: &str) -> crate::response::Refusal {
    crate::response::Refusal::certificate_withdrawn(
        match why {
            Withdrawn::Revoked => "certificate_revoked",
            Withdrawn::Expired => "certificate_expired",
        },
        message,
    )
}
