//! The gateway's response vocabulary, at the bottom of the house: the body
//! type every request and response uses, JSON answers, and [`Refusal`] —
//! the one place where a refusal's HTTP status, reason code and body shape
//! are chosen, for the proxy, the decision endpoint, the adapters, the
//! browser snapshot and the admin API alike.
//!
//! Every refusal has one body shape, `{"decision": "deny", "reason",
//! "message", "revision"?}`, and names its reason in the
//! `X-Portcullis-Reason` header too, for clients and gateways (nginx
//! `auth_request`) that only see headers.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use serde::Serialize;

/// Errors carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every request and response the gateway handles.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Reads a whole body up to `max` bytes.
pub async fn read_body<B>(body: B, max: u64) -> Result<Vec<u8>, String>
where
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    // A client's Content-Length is a claim: memory follows what arrives.
    read_into(body, max, 64 * 1024).await
}

/// [`read_body`] for a sender already authenticated (a snapshot push):
/// one buffer of the declared length, so that 14 MB are copied once, not
/// gathered in chunks and copied twice more.
pub async fn read_body_declared<B>(body: B, max: u64) -> Result<Vec<u8>, String>
where
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    read_into(body, max, usize::MAX).await
}

async fn read_into<B>(body: B, max: u64, reserve_at_most: usize) -> Result<Vec<u8>, String>
where
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    use bytes::Buf;
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut body = std::pin::pin!(body);
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    if declared > max {
        return Err("length limit exceeded".into());
    }
    let mut out = Vec::with_capacity(declared.min(reserve_at_most));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.into().to_string())?;
        if let Ok(mut data) = frame.into_data() {
            if out.len().saturating_add(data.remaining()) > max {
                return Err("length limit exceeded".into());
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                out.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok(out)
}

/// A JSON answer from the gateway itself (never cached).
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(full(bytes));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Every refusal names its reason in this header as well as in its body.
pub const REASON_HEADER: &str = "x-portcullis-reason";

/// Why the gateway answers a request itself instead of serving it: the
/// status, a stable reason code, a sentence for people, and the snapshot
/// revision that decided, when one did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    status: StatusCode,
    reason: Cow<'static, str>,
    message: String,
    revision: Option<u64>,
    challenge: Option<String>,
    allow: Option<&'static str>,
    close: bool,
}

#[derive(Serialize)]
struct RefusalBody<'a> {
    decision: &'static str,
    reason: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
}

impl Refusal {
    fn new(
        status: StatusCode,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Refusal {
            status,
            reason: reason.into(),
            message: message.into(),
            revision: None,
            challenge: None,
            allow: None,
            close: false,
        }
    }

    // --- 400: the request cannot be read one way only -------------------

    /// A body or field the gateway cannot read as asked (400
    /// `malformed_request`).
    pub fn malformed_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    /// A request whose framing or target the gateway and the upstream
    /// could read differently (400, and the connection is closed: what
    /// follows on it cannot be trusted to be framed right).
    pub fn ambiguous_request(message: impl Into<String>) -> Self {
        let mut r = Self::malformed_request(message);
        r.close = true;
        r
    }

    /// A path that is refused rather than guessed at (400 `malformed_path`).
    pub fn malformed_path(why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_path",
            format!("malformed path: {why}"),
        )
    }

    /// A host that is not a name or IP literal with a port (400
    /// `malformed_host`).
    pub fn malformed_host(why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_host",
            format!("malformed host: {why}"),
        )
    }

    /// An external gateway's subrequest that does not say what the original
    /// request was (400 `missing_original_request`).
    pub fn missing_original_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "missing_original_request", message)
    }

    /// A method-override header an external gateway would pass on (400
    /// `method_override`).
    pub fn method_override() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "method_override",
            "the request carries a method-override header (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override), which the upstream may honour; it is refused unless server.allow_method_override is set",
        )
    }

    // --- 401: who is asking is not established --------------------------

    /// No usable credentials (401 `unauthenticated`, with a bearer
    /// challenge; `invalid` says whether credentials were sent).
    pub fn unauthenticated(message: impl Into<String>, invalid: bool, realm: &'static str) -> Self {
        let message = message.into();
        let challenge = if invalid {
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                message.replace(['"', '\\'], "'")
            )
        } else {
            format!("Bearer realm=\"{realm}\"")
        };
        let mut r = Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message);
        r.challenge = Some(challenge);
        r
    }

    /// The connection's client certificate no longer identifies it —
    /// revoked since the handshake, or expired (401 with `reason`, and the
    /// connection is closed: a new handshake is the way back).
    pub fn certificate_withdrawn(reason: &'static str, message: impl Into<String>) -> Self {
        let mut r = Self::new(StatusCode::UNAUTHORIZED, reason, message);
        r.close = true;
        r
    }

    // --- 403: decided, and denied ---------------------------------------

    /// The engine's denial (403 with its reason).
    pub fn denied(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason, message)
    }

    /// No route matches: denied by default (403 `no_route`).
    pub fn no_route() -> Self {
        Self::denied(
            "no_route",
            "no route matches this request; requests outside the route table are denied",
        )
    }

    // --- 404, 405, 409, 413, 422: the gateway's own endpoints -----------

    /// An endpoint or file that does not exist (404).
    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason, message)
    }

    /// A method the endpoint does not take (405, with `Allow`).
    pub fn method_not_allowed(allow: &'static str, message: impl Into<String>) -> Self {
        let mut r = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        );
        r.allow = Some(allow);
        r
    }

    /// A body over its limit (413).
    pub fn too_large(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, reason, message)
    }

    /// A snapshot older than the one serving (409).
    pub fn stale(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, reason, message)
    }

    /// A snapshot that cannot be installed (422).
    pub fn invalid_snapshot(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, reason, message)
    }

    /// The admin API without its token, or with pushes disabled (403).
    pub fn admin_forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "pushes_disabled", message)
    }

    // --- 5xx: the gateway cannot decide or forward ----------------------

    /// Nothing can be decided: no snapshot, or no engine instance (503).
    pub fn unavailable(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, reason, message)
    }

    /// No snapshot is loaded yet (503 `no_snapshot`).
    pub fn no_snapshot() -> Self {
        Self::unavailable(
            "no_snapshot",
            "no directory snapshot is loaded yet; every request is denied until one is",
        )
    }

    /// The upstream did not answer in time (504 `timeout`) or at all (502
    /// `unreachable`).
    pub fn upstream(timed_out: bool, message: impl Into<String>) -> Self {
        if timed_out {
            Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message)
        } else {
            Self::new(StatusCode::BAD_GATEWAY, "unreachable", message)
        }
    }

    /// The gateway failed at something of its own (500).
    pub fn internal(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, reason, message)
    }

    // --- use -------------------------------------------------------------

    /// The same refusal, naming the revision that decided.
    pub fn at(mut self, revision: Option<u64>) -> Self {
        self.revision = revision;
        self
    }

    /// The same refusal, with another status where a client can only take
    /// some (nginx `auth_request` turns anything but 401 and 403 into 500).
    pub fn as_status_for_nginx(mut self) -> Self {
        if !matches!(
            self.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            self.status = StatusCode::FORBIDDEN;
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable reason code.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The sentence for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The revision that decided, if any.
    pub fn revision(&self) -> Option<u64> {
        self.revision
    }

    /// The answer: status, JSON body, reason header, and the challenge,
    /// `Allow` or `Connection: close` the refusal calls for.
    pub fn into_response(self) -> Response<Body> {
        let mut r = json_response(
            self.status,
            &RefusalBody {
                decision: "deny",
                reason: &self.reason,
                message: &self.message,
                revision: self.revision,
            },
        );
        let h = r.headers_mut();
        self.name_reason(h);
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.close {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

impl Refusal {
    /// `X-Portcullis-Reason`, and the challenge a 401 carries: on every
    /// refusal, whatever its body.
    fn name_reason(&self, h: &mut http::HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.reason) {
            h.insert(REASON_HEADER, v);
        }
        if let Some(c) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
    }

    /// `grpc-status` and `grpc-message` (`<reason>: <message> (revision
    /// N)`): in a trailers-only answer, or the trailers that end a call.
    pub fn grpc_status_into(&self, h: &mut http::HeaderMap) {
        h.insert(
            "grpc-status",
            HeaderValue::from(u16::from(self.grpc_status())),
        );
        if let Ok(v) = HeaderValue::from_str(&grpc_percent_encode(&self.grpc_message())) {
            h.insert("grpc-message", v);
        }
    }

    /// The gRPC status code this refusal is (`grpc-status`).
    pub fn grpc_status(&self) -> u8 {
        match self.status {
            StatusCode::UNAUTHORIZED => 16, // UNAUTHENTICATED
            StatusCode::FORBIDDEN => 7,     // PERMISSION_DENIED
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => 3, // INVALID_ARGUMENT
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => 12, // UNIMPLEMENTED
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => 8, // RESOURCE_EXHAUSTED
            StatusCode::CONFLICT => 10,                                         // ABORTED
            StatusCode::GATEWAY_TIMEOUT => 4,                                   // DEADLINE_EXCEEDED
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE => 14,    // UNAVAILABLE
            _ => 13,                                                            // INTERNAL
        }
    }

    /// The answer to a gRPC or gRPC-Web client (`rpc`), as
    /// [`Refusal::into_grpc_response`] and [`Refusal::into_grpc_web_response`].
    pub fn into_rpc_response(self, rpc: Rpc) -> Response<Body> {
        match rpc {
            Rpc::Grpc => self.into_grpc_response(),
            Rpc::GrpcWeb { text } => self.into_grpc_web_response(text),
        }
    }

    /// The answer to a gRPC client: a trailers-only response (HTTP 200,
    /// `content-type: application/grpc`, no messages) whose `grpc-status`
    /// and `grpc-message` say what the HTTP status and body would (gRPC
    /// clients read nothing else), with the reason header and challenge
    /// as on any refusal.
    pub fn into_grpc_response(self) -> Response<Body> {
        let mut r = Response::new(empty());
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        self.grpc_status_into(h);
        self.name_reason(h);
        r
    }

    /// The answer to a gRPC-Web client: HTTP 200 whose body is one
    /// trailer frame (gRPC-Web's own encoding of trailers, base64 for
    /// `application/grpc-web-text`) with `grpc-status` and
    /// `grpc-message`. In the body rather than in headers, so that a
    /// browser reads it cross-origin without `Access-Control-Expose-Headers`.
    pub fn into_grpc_web_response(self, text: bool) -> Response<Body> {
        let mut r = Response::new(full(self.grpc_web_trailers(text)));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(if text {
                "application/grpc-web-text+proto"
            } else {
                "application/grpc-web+proto"
            }),
        );
        self.name_reason(h);
        r
    }

    /// The gRPC-Web trailer frame of this refusal (flag `0x80`, a 4-byte
    /// length, then `grpc-status` and `grpc-message` as header lines),
    /// base64-encoded when `text`.
    pub fn grpc_web_trailers(&self, text: bool) -> Bytes {
        let block = format!(
            "grpc-status: {}\r\ngrpc-message: {}\r\n",
            self.grpc_status(),
            grpc_percent_encode(&self.grpc_message())
        );
        let mut frame = Vec::with_capacity(5 + block.len());
        frame.push(0x80);
        frame.extend_from_slice(&u32::try_from(block.len()).unwrap_or(u32::MAX).to_be_bytes());
        frame.extend_from_slice(block.as_bytes());
        if text {
            use base64::Engine as _;
            Bytes::from(base64::engine::general_purpose::STANDARD.encode(&frame))
        } else {
            Bytes::from(frame)
        }
    }

    /// `<reason>: <message> (revision N)`, as `grpc-message` says it.
    fn grpc_message(&self) -> String {
        match self.revision {
            Some(rev) => format!("{}: {} (revision {rev})", self.reason, self.message),
            None => format!("{}: {}", self.reason, self.message),
        }
    }
}

/// `grpc-message`'s encoding (gRPC over HTTP/2, "Responses"): UTF-8,
/// every byte outside printable ASCII, and `%`, percent-encoded.
fn grpc_percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The RPC protocol a request or response speaks, by its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    /// gRPC over HTTP/2 (`application/grpc`, `application/grpc+proto`, …):
    /// status in trailers.
    Grpc,
    /// gRPC-Web (`application/grpc-web`, `+proto`, `+json`, …; `text`:
    /// `application/grpc-web-text`, base64): status in a trailer frame at
    /// the end of the body, over any HTTP version.
    GrpcWeb {
        /// The body is base64 text.
        text: bool,
    },
}

impl Rpc {
    /// The protocol `content-type` names, if it is gRPC or gRPC-Web. Any
    /// case; a suffix (`+proto`) or parameters (`; charset=…`) allowed.
    pub fn of(headers: &http::HeaderMap) -> Option<Rpc> {
        let v = headers.get(header::CONTENT_TYPE)?.as_bytes();
        let v = v.trim_ascii_start();
        let (prefix, rest) = (v.get(..16)?, v.get(16..).unwrap_or_default());
        if !prefix.eq_ignore_ascii_case(b"application/grpc") {
            return None;
        }
        let ends = |r: &[u8]| matches!(r.first(), None | Some(b'+' | b';' | b' '));
        if ends(rest) {
            return Some(Rpc::Grpc);
        }
        for (suffix, text) in [(&b"-web-text"[..], true), (&b"-web"[..], false)] {
            if rest
                .get(..suffix.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(suffix))
                && ends(rest.get(suffix.len()..).unwrap_or_default())
            {
                return Some(Rpc::GrpcWeb { text });
            }
        }
        None
    }
}

/// Whether a request is a gRPC or gRPC-Web call: its refusals are gRPC
/// statuses.
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    Rpc::of(headers).is_some()
}

impl From<Refusal> for Response<Body> {
    fn from(r: Refusal) -> Self {
        r.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_and_grpc_web_by_content_type() {
        let of = |ct: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            Rpc::of(&h)
        };
        assert_eq!(of("application/grpc"), Some(Rpc::Grpc));
        assert_eq!(of("Application/GRPC+proto"), Some(Rpc::Grpc));
        assert_eq!(of("application/grpc; charset=utf-8"), Some(Rpc::Grpc));
        let web = Some(Rpc::GrpcWeb { text: false });
        assert_eq!(of("application/grpc-web"), web);
        assert_eq!(of("application/grpc-web+proto"), web);
        assert_eq!(of("application/GRPC-WEB+json"), web);
        let text = Some(Rpc::GrpcWeb { text: true });
        assert_eq!(of("application/grpc-web-text"), text);
        assert_eq!(of("application/grpc-web-text+proto"), text);
        assert_eq!(of("application/grpcx"), None);
        assert_eq!(of("application/grpc-webx"), None);
        assert_eq!(of("application/json"), None);
        assert_eq!(of("application/grp"), None);
    }

    #[test]
    fn a_grpc_web_refusal_is_a_trailer_frame() {
        let r = Refusal::denied("no_grant", "nope").at(Some(4));
        let frame = r.grpc_web_trailers(false);
        assert_eq!(frame[0], 0x80);
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(len, frame.len() - 5);
        assert_eq!(
            std::str::from_utf8(&frame[5..]).unwrap(),
            "grpc-status: 7\r\ngrpc-message: no_grant: nope (revision 4)\r\n"
        );
        use base64::Engine as _;
        let text = r.grpc_web_trailers(true);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&text)
                .unwrap(),
            frame.to_vec()
        );
    }

    #[test]
    fn one_shape_with_the_reason_in_a_header() {
        let r = Refusal::denied("no_grant", "no")
            .at(Some(3))
            .into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()[REASON_HEADER], "no_grant");
        let r = Refusal::unauthenticated("bad \"token\"", true, "portcullis").into_response();
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"bad 'token'\""
        );
        let r = Refusal::method_not_allowed("POST", "use POST").into_response();
        assert_eq!(r.headers()[header::ALLOW], "POST");
        assert_eq!(
            Refusal::upstream(true, "slow")
                .as_status_for_nginx()
                .status(),
            StatusCode::FORBIDDEN
        );
    }
}
