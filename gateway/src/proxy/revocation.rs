//! Long-lived exchanges stay bound to the decision that opened them: after
//! every snapshot swap, an open WebSocket (`upgrade.rs`) or gRPC call asks
//! again — same principal, action and resource — and ends when the answer
//! is now no.
//!
//! A gRPC call ends the gRPC way: its response stream stops and its
//! trailers say `PERMISSION_DENIED` with the reason, whatever the
//! upstream was about to send; dropping the upstream's body resets its
//! stream, so the upstream learns the call is over.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::watch;

use crate::checkpoint::{Standing, recheck};
use crate::response::{Body, BoxError, Refusal};
use crate::shared::Shared;

/// Asks whether `standing` still holds on the snapshot serving now,
/// counting the re-check; the refusal when it no longer does.
pub(crate) fn lost_access(shared: &Shared, standing: &Standing, what: &str) -> Option<Refusal> {
    shared.metrics.tunnels().rechecked();
    let refusal = recheck(shared, standing).err()?;
    tracing::info!(
        principal = standing.credential.principal(),
        route = %standing.route,
        reason = refusal.reason(),
        "closing {what}: access revoked"
    );
    Some(refusal)
}

type Changed = Pin<Box<dyn Future<Output = Option<watch::Receiver<u64>>> + Send>>;

fn next_swap(mut swaps: watch::Receiver<u64>) -> Changed {
    Box::pin(async move { swaps.changed().await.ok().map(|()| swaps) })
}

/// A gRPC response body that ends with `PERMISSION_DENIED` when a swap
/// revokes the call's access.
pub(crate) struct Revocable {
    inner: Body,
    shared: Arc<Shared>,
    standing: Standing,
    swap: Option<Changed>,
    ended: bool,
}

impl Revocable {
    /// Wraps the response body of a gRPC call allowed as `standing`.
    pub(crate) fn new(inner: Body, shared: Arc<Shared>, standing: Standing) -> Self {
        let swap = Some(next_swap(shared.swaps.subscribe()));
        Revocable {
            inner,
            shared,
            standing,
            swap,
            ended: false,
        }
    }
}

impl HttpBody for Revocable {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        // Every swap since the last poll is re-checked; the pending one
        // registers this task to be woken by the next.
        while let Some(swap) = this.swap.as_mut() {
            let Poll::Ready(next) = swap.as_mut().poll(cx) else {
                break;
            };
            this.swap = next.map(next_swap);
            if let Some(refusal) = lost_access(&this.shared, &this.standing, "a gRPC call") {
                this.shared.metrics.tunnels().grpc_revoked();
                this.ended = true;
                return Poll::Ready(Some(Ok(Frame::trailers({
                    let mut trailers = HeaderMap::new();
                    refusal.grpc_status_into(&mut trailers);
                    trailers
                }))));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
