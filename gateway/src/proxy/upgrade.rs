//! WebSocket (and other `Upgrade`) passthrough, authorized at the upgrade
//! request like any other request and bound to that decision afterwards.
//!
//! ```text
//! GET + Connection: upgrade + Upgrade: websocket
//!   → checkpoint (route → identity → decision) → upstream answers 101
//!   → tunnel: bytes copied both ways, frame boundaries followed
//!   → after every swap: the same principal, action and resource asked again;
//!     denied → close frame 1008 with the reason to both ends, connection closed
//! ```
//!
//! Only HTTP/1.1 upgrades to a protocol in `server.upgrades` pass; `h2c`
//! never does (a cleartext HTTP/2 connection to the upstream would carry
//! requests the gateway never sees). Any other `Upgrade` header is
//! removed, and the request forwarded as a plain one.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::checkpoint::Standing;
use crate::proxy::frames::{FrameBoundaries, close_frame};
use crate::proxy::revocation::lost_access;
use crate::shared::{Shared, unix_now};

/// WebSocket close code for a policy violation (RFC 6455 §7.4.1).
const POLICY_VIOLATION: u16 = 1008;
/// WebSocket close code for an endpoint going away.
const GOING_AWAY: u16 = 1001;

/// The protocol an HTTP/1.1 request asks to switch to, when it is one the
/// gateway passes: `Connection` names `upgrade`, and `Upgrade` names one
/// protocol of `allowed` (by name, any version: `websocket`, `foo/2`).
pub(crate) fn requested<'h>(
    version: http::Version,
    headers: &'h HeaderMap,
    allowed: &[String],
) -> Option<&'h HeaderValue> {
    if version != http::Version::HTTP_11 {
        return None;
    }
    // Most requests carry no Upgrade: that is the one lookup they pay.
    let mut upgrades = headers.get_all(header::UPGRADE).iter();
    let (Some(value), None) = (upgrades.next(), upgrades.next()) else {
        return None;
    };
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = value.to_str().ok()?.trim();
    let name = protocol.split('/').next().unwrap_or_default();
    let one = !protocol.contains(',') && !protocol.is_empty();
    (connection_upgrade
        && one
        && !name.eq_ignore_ascii_case("h2c")
        && allowed.iter().any(|a| a.eq_ignore_ascii_case(name)))
    .then_some(value)
}

/// Why a tunnel ends early: the close code and reason sent both ways.
#[derive(Clone, Debug)]
struct Close {
    code: u16,
    reason: String,
}

/// A client connection's slot under `server.max_connections`, held by
/// the connection and by the tunnel it becomes: an upgraded connection
/// counts until it closes.
#[derive(Clone)]
pub(crate) struct ConnectionSlot {
    _held: Arc<tokio::sync::OwnedSemaphorePermit>,
}

impl ConnectionSlot {
    /// The slot `permit` holds.
    pub(crate) fn new(permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        ConnectionSlot {
            _held: Arc::new(permit),
        }
    }
}

/// Everything a tunnel needs once both sides have switched protocols.
pub(crate) struct Tunnel {
    pub shared: Arc<Shared>,
    pub standing: Standing,
    pub websocket: bool,
    pub client: OnUpgrade,
    pub upstream: OnUpgrade,
    pub slot: Option<ConnectionSlot>,
}

impl Tunnel {
    /// Copies bytes both ways until either side closes, re-checking the
    /// standing after every swap.
    pub(crate) async fn run(self) {
        let Tunnel {
            shared,
            standing,
            websocket,
            client,
            upstream,
            slot: _slot,
        } = self;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "an upgrade did not complete");
                return;
            }
        };
        let metrics = shared.metrics.tunnels();
        let _open = metrics.opened();
        // Capped at a year: an Instant plus more would overflow.
        let year = 365 * 24 * 3600 * 1000;
        let server = &shared.config().server;
        let grace = Duration::from_millis(server.revoke_grace_ms.min(year));
        let idle = Duration::from_millis(server.upgrade_idle_timeout_ms.min(year));
        let activity = Activity::default();
        let (closing, close_rx) = watch::channel(None::<Close>);
        let (client_read, client_write) = tokio::io::split(TokioIo::<Upgraded>::new(client));
        let (upstream_read, upstream_write) = tokio::io::split(TokioIo::<Upgraded>::new(upstream));
        let down = pump(
            upstream_read,
            client_write,
            Direction {
                websocket,
                mask: None,
                grace,
                activity: &activity,
            },
            close_rx.clone(),
        );
        let up = pump(
            client_read,
            upstream_write,
            Direction {
                websocket,
                mask: Some(mask_key()),
                grace,
                activity: &activity,
            },
            close_rx,
        );
        let mut swaps = shared.swaps.subscribe();
        let mut stopping = shared.stopping.subscribe();
        let supervise = async {
            loop {
                // A client certificate's end of validity is a re-check too.
                let expiry = standing.certificate.as_ref().map(|c| {
                    let left = c.not_after.saturating_add(1).saturating_sub(unix_now());
                    tokio::time::Instant::now()
                        + Duration::from_secs(u64::try_from(left).unwrap_or(0).min(year / 1000))
                });
                tokio::select! {
                    () = sleep_until(expiry) => {}
                    changed = swaps.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                    () = tokio::time::sleep_until(activity.last() + idle) => {
                        if activity.last().elapsed() >= idle {
                            let _ = closing.send(Some(Close {
                                code: GOING_AWAY,
                                reason: format!("no traffic for {} ms", idle.as_millis()),
                            }));
                            break;
                        }
                        continue;
                    }
                    changed = stopping.wait_for(|s| *s) => {
                        if changed.is_ok() {
                            let _ = closing.send(Some(Close {
                                code: GOING_AWAY,
                                reason: "the gateway is shutting down".into(),
                            }));
                        }
                        break;
                    }
                }
                // A swap, new keys or trust, or the certificate's end.
                if let Some(refusal) = lost_access(&shared, &standing, "an upgraded connection") {
                    metrics.revoked();
                    let _ = closing.send(Some(Close {
                        code: POLICY_VIOLATION,
                        reason: format!("{}: {}", refusal.reason(), refusal.message()),
                    }));
                    break;
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = async { tokio::join!(down, up) } => {}
            _ = supervise => {}
        }
    }
}

/// A masking key for a frame the gateway sends the upstream as a client:
/// unpredictable (RFC 6455 §5.3), from the standard library's randomly
/// keyed hasher.
fn mask_key() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    let bytes = h.finish().to_le_bytes();
    [bytes[0], bytes[1], bytes[2], bytes[3]]
}

/// When anything last passed through a tunnel, either way.
struct Activity {
    started: tokio::time::Instant,
    /// Milliseconds from `started`.
    last_ms: std::sync::atomic::AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            started: tokio::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.started
            + Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// How one direction of a tunnel is copied.
struct Direction<'a> {
    /// Follow WebSocket frames (and close with a close frame).
    websocket: bool,
    /// Mask the close frame (towards the upstream: the gateway is its client).
    mask: Option<[u8; 4]>,
    /// How long a close may wait for the frame in progress.
    grace: Duration,
    activity: &'a Activity,
}

/// Copies `from` to `to` until `from` ends; when a close is asked for,
/// finishes the frame in progress (within the grace period), sends the
/// close frame and shuts `to` down.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    direction: Direction<'_>,
    mut close: watch::Receiver<Option<Close>>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Direction {
        websocket,
        mask,
        grace,
        activity,
    } = direction;
    let mut frames = FrameBoundaries::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut asked: Option<Close> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut watching = true;
    loop {
        if let Some(c) = &asked
            && (!websocket || frames.at_boundary())
        {
            if websocket {
                let _ = to.write_all(&close_frame(c.code, &c.reason, mask)).await;
            }
            let _ = to.flush().await;
            let _ = to.shutdown().await;
            return;
        }
        let read = tokio::select! {
            changed = close.changed(), if watching && asked.is_none() => {
                match changed {
                    Ok(()) => {
                        asked = close.borrow_and_update().clone();
                        deadline = asked.is_some().then(|| tokio::time::Instant::now() + grace);
                    }
                    // The supervisor is gone: copy on.
                    Err(_) => watching = false,
                }
                continue;
            }
            _ = sleep_until(deadline) => {
                // Mid-frame for too long: cut without a close frame.
                let _ = to.shutdown().await;
                return;
            }
            read = from.read(&mut buf) => read,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        activity.touch();
        let bytes = buf.get(..n).unwrap_or_default();
        // Once closing, only the rest of the frame in progress goes on.
        let bytes = if asked.is_some() && websocket {
            bytes
                .get(..frames.until_boundary(bytes))
                .unwrap_or_default()
        } else {
            if websocket {
                frames.feed(bytes);
            }
            bytes
        };
        // Flushed at once: a TLS stream holds written records until then.
        if to.write_all(bytes).await.is_err() || to.flush().await.is_err() {
            return;
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(connection: &str, upgrade: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_str(connection).unwrap(),
        );
        for u in upgrade {
            h.append(header::UPGRADE, HeaderValue::from_str(u).unwrap());
        }
        h
    }

    #[test]
    fn only_one_allowed_protocol_on_http_1_1_with_connection_upgrade() {
        let allowed = vec!["websocket".to_string(), "h2c".to_string()];
        let v11 = http::Version::HTTP_11;
        let asked = |c: &str, u: &[&str]| {
            requested(v11, &headers(c, u), &allowed).map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            asked("Upgrade", &["websocket"]).as_deref(),
            Some("websocket")
        );
        assert_eq!(
            asked("keep-alive, UPGRADE", &["WebSocket"]).as_deref(),
            Some("WebSocket")
        );
        // h2c never, even when listed (configuration refuses it too).
        assert_eq!(asked("Upgrade, HTTP2-Settings", &["h2c"]), None);
        assert_eq!(asked("Upgrade", &["H2C/1"]), None);
        // A list, two headers, no Connection: upgrade, another protocol.
        assert_eq!(asked("Upgrade", &["websocket, h2c"]), None);
        assert_eq!(asked("Upgrade", &["websocket", "websocket"]), None);
        assert_eq!(asked("keep-alive", &["websocket"]), None);
        assert_eq!(asked("Upgrade", &["foo"]), None);
        assert_eq!(
            requested(
                http::Version::HTTP_10,
                &headers("Upgrade", &["websocket"]),
                &allowed
            ),
            None
        );
        assert_eq!(
            requested(
                http::Version::HTTP_2,
                &headers("Upgrade", &["websocket"]),
                &allowed
            ),
            None
        );
    }
}
