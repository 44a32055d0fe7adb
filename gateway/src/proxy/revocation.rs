//! Long-lived exchanges stay bound to the decision that opened them.
//! Whenever what decided may have changed — a snapshot swap, new keys
//! from the identity provider, reloaded client-certificate trust — every
//! open exchange asks again (same principal, action and resource; its
//! token and certificate checked again) and ends when the answer is now
//! no. WebSockets and other upgrades are in `upgrade.rs`; every response
//! still streaming when the question changes is bound here ([`Bound`]),
//! and ends its protocol's way:
//!
//! - **gRPC** (`application/grpc`): the response stops and its trailers
//!   say `PERMISSION_DENIED` (or `UNAUTHENTICATED`) with the reason,
//!   whatever the upstream was about to send;
//! - **gRPC-Web** (`application/grpc-web`, `-web-text`): at the next
//!   message boundary, a trailer frame says the same, in gRPC-Web's own
//!   encoding (base64 for `-text`) — the client can no more choose to
//!   outlive revocation by picking its content type than by anything else;
//! - **anything else** (server-sent events, chunked or long downloads):
//!   the response is cut — an HTTP/1.1 connection closed before the body's
//!   end, an HTTP/2 stream reset — so the client sees an incomplete body,
//!   never a complete-looking one.
//!
//! Dropping the upstream's body resets its stream or closes its
//! connection, so the upstream learns the exchange is over. Each ending is
//! counted (`portcullis_grpc_calls_revoked_total`,
//! `portcullis_responses_revoked_total`) and logged.
//!
//! Cost to a response that finishes while nothing changes: an atomic load
//! per frame. A response that waits on its upstream subscribes to the
//! re-check signal once, so an idle stream is cut when access goes, not
//! when its next byte comes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::sync::watch;

use crate::checkpoint::{Standing, recheck};
use crate::proxy::grpc_web::MessageBoundaries;
use crate::proxy::limit::Exceeded;
use crate::response::{BoxError, Refusal, Rpc};
use crate::shared::Shared;

/// Asks whether `standing` still holds on the snapshot serving now,
/// counting the re-check; the refusal when it no longer does.
pub(crate) fn lost_access(shared: &Shared, standing: &Standing, what: &str) -> Option<Refusal> {
    shared.metrics.tunnels().rechecked();
    let refusal = recheck(shared, standing).err()?;
    tracing::info!(
        principal = standing.credential.principal(),
        route = standing.route,
        resource = %standing.resource,
        reason = refusal.reason(),
        "ending {what}: access revoked"
    );
    Some(refusal)
}

type Changed = Pin<Box<dyn Future<Output = Option<watch::Receiver<u64>>> + Send>>;

fn next_swap(mut swaps: watch::Receiver<u64>) -> Changed {
    Box::pin(async move { swaps.changed().await.ok().map(|()| swaps) })
}

/// The error a cut response ends with (hyper aborts the body: the client
/// sees it incomplete).
#[derive(Debug, thiserror::Error)]
#[error("the response was cut: {0}")]
struct Cut(String);

/// How a bound response ends when its access is revoked.
enum Ending {
    /// gRPC: trailers.
    Grpc,
    /// gRPC-Web: a trailer frame at a message boundary.
    GrpcWeb {
        text: bool,
        messages: MessageBoundaries,
    },
    /// Anything else: cut.
    Plain,
}

/// A gRPC-Web call waiting for its message boundary to end.
struct Closing {
    trailer: Bytes,
    /// Past it, the call is cut without trailers.
    grace: Pin<Box<tokio::time::Sleep>>,
}

/// A response body bound to the decision that let its request through.
pub(crate) struct Bound {
    inner: Incoming,
    shared: Arc<Shared>,
    standing: Standing,
    ending: Ending,
    /// The request body's limit, when it had a body: crossing it mid-call
    /// ends a gRPC call with `RESOURCE_EXHAUSTED`.
    exceeded: Option<Exceeded>,
    /// The re-check count this response was decided at, or last checked.
    seen: u64,
    /// Subscribed once the response waits on its upstream.
    swaps: Option<Changed>,
    watching: bool,
    /// gRPC-Web: revoked, finishing the message in progress.
    closing: Option<Closing>,
    /// gRPC-Web: a trailer frame to send next, then end.
    trailer_next: Option<Bytes>,
    ended: bool,
}

impl Bound {
    /// Binds the body of a response whose content type is `rpc`'s (or
    /// neither) to `standing`, decided at re-check count `seen`.
    pub(crate) fn new(
        inner: Incoming,
        rpc: Option<Rpc>,
        shared: Arc<Shared>,
        standing: Standing,
        seen: u64,
        exceeded: Option<Exceeded>,
    ) -> Self {
        // By what the upstream answers: a gRPC-Web server may answer text
        // to a binary request (`Accept`).
        let ending = match rpc {
            Some(Rpc::Grpc) => Ending::Grpc,
            Some(Rpc::GrpcWeb { text }) => Ending::GrpcWeb {
                text,
                messages: MessageBoundaries::new(text),
            },
            None => Ending::Plain,
        };
        Bound {
            inner,
            shared,
            standing,
            ending,
            exceeded,
            seen,
            swaps: None,
            watching: true,
            closing: None,
            trailer_next: None,
            ended: false,
        }
    }

    fn end(&mut self) {
        self.ended = true;
        self.closing = None;
        self.swaps = None;
    }

    /// Access is revoked (`refusal`): the frame to end with, now, or
    /// `None` when a gRPC-Web call must first finish its message.
    fn revoke(&mut self, refusal: &Refusal) -> Option<Result<Frame<Bytes>, BoxError>> {
        match &self.ending {
            Ending::Grpc => {
                self.shared.metrics.tunnels().grpc_revoked();
                self.end();
                let mut trailers = HeaderMap::new();
                refusal.grpc_status_into(&mut trailers);
                Some(Ok(Frame::trailers(trailers)))
            }
            Ending::GrpcWeb { text, messages } => {
                self.shared.metrics.tunnels().grpc_revoked();
                let trailer = refusal.grpc_web_trailers(*text);
                if messages.at_boundary() {
                    self.end();
                    return Some(Ok(Frame::data(trailer)));
                }
                let grace = Duration::from_millis(
                    self.shared
                        .config()
                        .server
                        .revoke_grace_ms
                        .min(365 * 24 * 3600 * 1000),
                );
                self.closing = Some(Closing {
                    trailer,
                    grace: Box::pin(tokio::time::sleep(grace)),
                });
                None
            }
            Ending::Plain => {
                self.shared.metrics.tunnels().response_revoked();
                self.end();
                Some(Err(Box::new(Cut(format!(
                    "{}: {}",
                    refusal.reason(),
                    refusal.message()
                )))))
            }
        }
    }

    /// The request body crossed `server.max_body_bytes` mid-call: the
    /// frame a gRPC or gRPC-Web call ends with (`RESOURCE_EXHAUSTED`).
    fn too_large(&mut self) -> Option<Frame<Bytes>> {
        let refusal = Refusal::too_large(
            "body_too_large",
            format!(
                "request bodies are limited to {} bytes",
                self.shared.config().server.max_body_bytes
            ),
        );
        let frame = match &self.ending {
            Ending::Grpc => {
                let mut trailers = HeaderMap::new();
                refusal.grpc_status_into(&mut trailers);
                Frame::trailers(trailers)
            }
            Ending::GrpcWeb { text, messages } if messages.at_boundary() => {
                Frame::data(refusal.grpc_web_trailers(*text))
            }
            _ => return None,
        };
        self.end();
        Some(frame)
    }
}

impl HttpBody for Bound {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(trailer) = this.trailer_next.take() {
                this.end();
                return Poll::Ready(Some(Ok(Frame::data(trailer))));
            }
            // Asked again whenever the re-check count moved since the
            // decision (or the last check).
            if this.closing.is_none() {
                let count = this.shared.recheck_count();
                if count != this.seen {
                    this.seen = count;
                    if let Some(refusal) = lost_access(&this.shared, &this.standing, "a response")
                        && let Some(frame) = this.revoke(&refusal)
                    {
                        return Poll::Ready(Some(frame));
                    }
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ending::GrpcWeb { messages, .. } = &mut this.ending else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    let data = match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    let Some(closing) = this.closing.take() else {
                        messages.feed(&data);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    };
                    // Revoked: the rest of the message in progress, then
                    // the trailer frame; what follows it is not sent.
                    let n = messages.until_boundary(&data);
                    if messages.at_boundary() {
                        this.trailer_next = Some(closing.trailer);
                        return Poll::Ready(Some(Ok(Frame::data(data.slice(..n)))));
                    }
                    this.closing = Some(closing);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => {
                    if this.exceeded.as_ref().is_some_and(Exceeded::is_set)
                        && let Some(frame) = this.too_large()
                    {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    this.end();
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Poll::Ready(None) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
            if let Some(closing) = this.closing.as_mut()
                && closing.grace.as_mut().poll(cx).is_ready()
            {
                this.end();
                return Poll::Ready(Some(Err(Box::new(Cut(
                    "access revoked, and the message in progress did not end within server.revoke_grace_ms".into(),
                )))));
            }
            if !this.watching || this.closing.is_some() {
                return Poll::Pending;
            }
            let Some(swaps) = this.swaps.as_mut() else {
                // Waiting on the upstream: hear of re-checks from now on,
                // and look once more at the count (one may have come
                // between the decision and now).
                this.swaps = Some(next_swap(this.shared.swaps.subscribe()));
                continue;
            };
            match swaps.as_mut().poll(cx) {
                Poll::Ready(Some(next)) => this.swaps = Some(next_swap(next)),
                Poll::Ready(None) => {
                    this.swaps = None;
                    this.watching = false;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || (self.trailer_next.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
