//! Request framing as it was on the wire, for what hyper does not tell.
//!
//! A request with both `Content-Length` and `Transfer-Encoding` is the
//! classic smuggling shape: RFC 9112 §6.1 lets a server read it by its
//! chunked framing, but says such a message ought to be treated as an error,
//! and a proxy that forwards it invites an upstream to read it the other
//! way. hyper reads it by the chunked framing and removes the
//! `Content-Length` before the handler sees the request, so the handler
//! cannot tell. [`Framed`] wraps a connection's reads, follows the HTTP/1
//! framing of every request on it (heads, `Content-Length` bodies, chunked
//! bodies with their trailers) without changing a byte, and records which
//! requests carried both headers; the handler asks [`FramingLog`] about
//! the request it is answering, in order, and refuses it (400, connection
//! closed).
//!
//! It only observes: if the bytes stop looking like HTTP/1 (an HTTP/2
//! preface, an upgrade, a head hyper will refuse anyway), it stops
//! following them.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The least a follower accepts in one head or chunk line. Heads are
/// followed up to the server's own limit (`server.max_header_bytes`, what
/// hyper accepts) when that is larger: a longer one is refused by hyper,
/// which closes the connection, so only then may the follower stop.
pub const MIN_LINE_LIMIT: usize = 64 * 1024;

/// What one connection's reader saw, shared with its request handler.
#[derive(Clone, Default)]
pub struct FramingLog {
    inner: Arc<Mutex<LogState>>,
}

#[derive(Default)]
struct LogState {
    /// Numbers (from 0) of the requests that carried both framing headers.
    ambiguous: BTreeSet<u64>,
    /// Requests the handler has asked about.
    answered: u64,
}

impl FramingLog {
    /// A fresh log for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the next request the handler answers (HTTP/1 requests are
    /// answered in order) carried both `Content-Length` and
    /// `Transfer-Encoding`.
    pub fn next_request_is_ambiguous(&self) -> bool {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let n = s.answered;
        s.answered += 1;
        s.ambiguous.remove(&n)
    }

    fn record(&self, request: u64) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.ambiguous.insert(request);
    }
}

/// Where the reader is in the byte stream.
#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Collecting a request head (up to the blank line).
    Head,
    /// Skipping a body of this many more bytes.
    Body(u64),
    /// A chunk-size line.
    ChunkSize,
    /// Skipping chunk data of this many more bytes, then its CRLF.
    ChunkData(u64),
    /// The CRLF after chunk data (bytes of it still to come).
    ChunkEnd(u8),
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    /// Not following any more.
    Off,
}

/// Follows HTTP/1 request framing over the bytes read.
pub struct Follower {
    state: State,
    line: Vec<u8>,
    requests: u64,
    log: FramingLog,
    max_line: usize,
}

impl Follower {
    /// A follower at the start of a connection, recording into `log`,
    /// following heads of up to `max_head` bytes (at least
    /// [`MIN_LINE_LIMIT`]).
    pub fn new(log: FramingLog, max_head: usize) -> Self {
        Follower {
            max_line: max_head.max(MIN_LINE_LIMIT),
            state: State::Head,
            line: Vec::new(),
            requests: 0,
            log,
        }
    }

    /// Follows `bytes`, the next ones read from the connection.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Off => return,
                State::Head => {
                    // Empty lines before a request line are skipped, as
                    // hyper's parser skips them (RFC 9112 §2.2).
                    if self.line.is_empty() {
                        let skip = bytes
                            .iter()
                            .position(|&b| b != b'\r' && b != b'\n')
                            .unwrap_or(bytes.len());
                        bytes = bytes.get(skip..).unwrap_or_default();
                        if bytes.is_empty() {
                            return;
                        }
                    }
                    // The common case: a whole head in this read, nothing
                    // carried over — read it where it is, without a copy.
                    if self.line.is_empty()
                        && let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n")
                    {
                        let (head, rest) = bytes.split_at(end + 4);
                        self.state = self.head_done(head);
                        bytes = rest;
                        continue;
                    }
                    // Bytes up to and including the head's end, if here.
                    let before = self.line.len();
                    self.line.extend_from_slice(bytes);
                    let start = before.saturating_sub(3);
                    let end = self
                        .line
                        .get(start..)
                        .and_then(|tail| tail.windows(4).position(|w| w == b"\r\n\r\n"))
                        .map(|i| start + i + 4);
                    match end {
                        Some(end) => {
                            let used = end - before;
                            self.line.truncate(end);
                            // The buffer keeps its capacity for the next head.
                            let mut head = std::mem::take(&mut self.line);
                            self.state = self.head_done(&head);
                            head.clear();
                            self.line = head;
                            bytes = bytes.get(used..).unwrap_or_default();
                        }
                        None => {
                            if self.line.len() > self.max_line {
                                self.state = State::Off;
                            }
                            return;
                        }
                    }
                }
                State::Body(n) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = bytes.get(take as usize..).unwrap_or_default();
                    self.state = if take == n {
                        State::Head
                    } else {
                        State::Body(n - take)
                    };
                }
                State::ChunkData(n) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = bytes.get(take as usize..).unwrap_or_default();
                    self.state = if take == n {
                        State::ChunkEnd(2)
                    } else {
                        State::ChunkData(n - take)
                    };
                }
                State::ChunkEnd(left) => {
                    let take = usize::from(left).min(bytes.len());
                    bytes = bytes.get(take..).unwrap_or_default();
                    // `take` is at most 2.
                    let left = left.saturating_sub(take as u8);
                    self.state = if left == 0 {
                        State::ChunkSize
                    } else {
                        State::ChunkEnd(left)
                    };
                }
                State::ChunkSize | State::Trailers => {
                    let Some(lf) = bytes.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(bytes);
                        if self.line.len() > self.max_line {
                            self.state = State::Off;
                        }
                        return;
                    };
                    self.line
                        .extend_from_slice(bytes.get(..lf).unwrap_or_default());
                    bytes = bytes.get(lf + 1..).unwrap_or_default();
                    let mut taken = std::mem::take(&mut self.line);
                    let line = taken.strip_suffix(b"\r").unwrap_or(&taken);
                    self.state = if self.state == State::Trailers {
                        if line.is_empty() {
                            State::Head
                        } else {
                            State::Trailers
                        }
                    } else {
                        chunk_size(line).map_or(State::Off, |n| {
                            if n == 0 {
                                State::Trailers
                            } else {
                                State::ChunkData(n)
                            }
                        })
                    };
                    taken.clear();
                    self.line = taken;
                }
            }
        }
    }

    /// Reads a complete head and says what follows it. Only the three
    /// fields that frame a request are looked at, by name, line by line:
    /// this runs on every request, and hyper parses the head in full.
    fn head_done(&mut self, head: &[u8]) -> State {
        if head.starts_with(b"PRI * HTTP/2.0") {
            return State::Off;
        }
        // Empty lines before a request line are allowed (RFC 9112 §2.2).
        let mut head = head;
        while let Some(rest) = head.strip_prefix(b"\r\n") {
            head = rest;
        }
        let mut lines = head.split(|&b| b == b'\n');
        let request_line = lines.next().unwrap_or_default();
        if !request_line.windows(5).any(|w| w == b"HTTP/") {
            // Not a request line: hyper refuses it and closes the connection.
            return State::Off;
        }
        let number = self.requests;
        self.requests += 1;
        let mut length: Option<u64> = None;
        let mut chunked_last: Option<bool> = None;
        // The gateway never switches protocols (it answers no 101), so an
        // `Upgrade` request is followed by more HTTP/1 on the connection;
        // only CONNECT (refused, and its connection closed) ends it.
        let connect = request_line.starts_with(b"CONNECT ");
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                // Folded or broken: hyper refuses it.
                return State::Off;
            };
            let (name, value) = line.split_at(colon);
            let value = value.get(1..).unwrap_or_default().trim_ascii();
            match name.first().map(u8::to_ascii_lowercase) {
                Some(b'c') if name.eq_ignore_ascii_case(b"content-length") => {
                    // Digits only, as hyper reads it; a repeated field must
                    // agree (hyper refuses anything else, and closes).
                    let n = std::str::from_utf8(value)
                        .ok()
                        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse::<u64>().ok());
                    match n {
                        Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                        _ => return State::Off,
                    }
                }
                Some(b't') if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                    // The last coding of the last field decides (RFC 9112 §6.1).
                    let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
                    chunked_last = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                }
                _ => {}
            }
        }
        if length.is_some() && chunked_last.is_some() {
            self.log.record(number);
        }
        if connect {
            return State::Off;
        }
        match (chunked_last, length) {
            (Some(true), _) => State::ChunkSize,
            (Some(false), _) => State::Off,
            (None, Some(0)) | (None, None) => State::Head,
            (None, Some(n)) => State::Body(n),
        }
    }
}

/// A chunk-size line's size (hex, before any `;` extension).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let text = std::str::from_utf8(digits).ok()?;
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// A connection whose reads are followed by a framing reader.
pub struct Framed<S> {
    inner: S,
    follower: Follower,
}

impl<S> Framed<S> {
    /// Wraps `inner`, recording into `log`; `max_head` is the server's
    /// limit on a request head.
    pub fn new(inner: S, log: FramingLog, max_head: usize) -> Self {
        Framed {
            inner,
            follower: Follower::new(log, max_head),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Framed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll
            && let Some(new) = buf.filled().get(before..)
        {
            this.follower.feed(new);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Framed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes: the numbers of the
    /// requests flagged, and how many requests were followed.
    fn numbers(wire: &[u8], step: usize) -> (Vec<u64>, u64) {
        let log = FramingLog::new();
        let mut f = Follower::new(log.clone(), 0);
        for piece in wire.chunks(step) {
            f.feed(piece);
        }
        let flagged = (0..f.requests)
            .filter(|_| log.next_request_is_ambiguous())
            .collect();
        (flagged, f.requests)
    }

    #[test]
    fn pipelined_requests_are_followed_through_every_kind_of_body() {
        let wire = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\
POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 25\r\n\r\nGET /fakes HTTP/1.1\r\n\r\n\r\n\
POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\nContent-Length: 1\r\n\r\nxxxxx\r\n0\r\nX-Trailer: 1\r\n\r\n\
PUT /d HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
GET /e HTTP/1.1\r\nHost: a\r\n\r\n";
        for step in [1, 2, 3, 7, 64, wire.len()] {
            let (flagged, requests) = numbers(wire, step);
            assert_eq!(requests, 5, "step {step}");
            // Only the fourth request carried both headers: the
            // look-alikes inside bodies were skipped as bodies.
            assert_eq!(flagged, [3], "step {step}");
        }
    }

    #[test]
    fn the_flag_belongs_to_the_request_that_carried_it() {
        let wire = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\
POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n";
        let log = FramingLog::new();
        let mut f = Follower::new(log.clone(), 0);
        f.feed(wire);
        assert!(!log.next_request_is_ambiguous(), "request 0");
        assert!(log.next_request_is_ambiguous(), "request 1");
        assert!(!log.next_request_is_ambiguous(), "nothing after");
    }

    #[test]
    fn what_hyper_tolerates_does_not_stop_the_follower() {
        // Empty lines before a request, a repeated equal Content-Length and
        // an Upgrade the gateway never honours: hyper reads on, so must this.
        let wire = b"\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n\
POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok\r\n\
PUT /c HTTP/1.1\r\nHost: a\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        for step in [1, 5, wire.len()] {
            assert_eq!(numbers(wire, step), (vec![2], 3), "step {step}");
        }
    }

    #[test]
    fn http2_and_garbage_stop_the_follower() {
        let log = FramingLog::new();
        let mut f = Follower::new(log.clone(), 0);
        f.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(f.state, State::Off);
        let mut f = Follower::new(log, 0);
        f.feed(b"\x00\x01 nonsense\r\n\r\n");
        assert_eq!(f.state, State::Off);
    }
}
