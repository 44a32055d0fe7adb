//! `server.max_body_bytes` on a request body that is streamed upstream.
//!
//! A body that declares its length is refused before anything is sent
//! (413). One that does not — HTTP/1.1 chunked, HTTP/2 without
//! `content-length`, every gRPC call — is counted as it streams, and the
//! frame that crosses the limit ends it with an error. That error reaches
//! the gateway from wherever the upstream client noticed it: from the
//! request future (HTTP/1.1, or an HTTP/2 upstream that had not answered
//! yet: the stream is reset, and the error says only that), or from the
//! response body already streaming back (a gRPC bidi stream). So the body
//! also raises a flag the proxy reads in both places, and the client is
//! told what happened — 413, `RESOURCE_EXHAUSTED` for gRPC — rather than
//! a 502 or `UNAVAILABLE`, which gRPC clients retry.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use crate::response::BoxError;

/// Raised when a request body crossed the limit.
#[derive(Clone, Debug, Default)]
pub(crate) struct Exceeded(Arc<AtomicBool>);

impl Exceeded {
    /// Whether the body crossed the limit.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The error a body over the limit ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body exceeds server.max_body_bytes ({max} bytes)")]
pub(crate) struct TooLarge {
    max: u64,
}

/// A request body counted against `max` bytes as it streams.
pub(crate) struct Limited {
    inner: Incoming,
    remaining: u64,
    max: u64,
    exceeded: Exceeded,
}

impl Limited {
    /// `inner`, ended with [`TooLarge`] (and the flag raised) once more
    /// than `max` bytes have come.
    pub(crate) fn new(inner: Incoming, max: u64) -> (Self, Exceeded) {
        let exceeded = Exceeded::default();
        (
            Limited {
                inner,
                remaining: max,
                max,
                exceeded: exceeded.clone(),
            },
            exceeded,
        )
    }
}

impl HttpBody for Limited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.remaining = 0;
                        this.exceeded.0.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(Box::new(TooLarge { max: this.max }))));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // A declared length over the limit was refused before forwarding,
        // so the client's own hint is the one to pass on.
        self.inner.size_hint()
    }
}
