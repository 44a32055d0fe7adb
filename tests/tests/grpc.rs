//! gRPC through the gateway and upstreams over HTTPS and HTTP/2 (issue
//! #15, part 2), with a real client and server (Python `grpcio`): routes
//! match `/package.Service/Method`; unary calls and streams in both
//! directions pass with their trailers; refusals are gRPC statuses
//! (`PERMISSION_DENIED`, `UNAUTHENTICATED`) with the reason in
//! `grpc-message`; the upstream's own errors pass untouched. The same
//! server over TLS is reached by the name its certificate carries
//! (`server_name`), trusting only the upstream's `ca_file`; another CA is
//! refused (`UNAVAILABLE`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::ca::{Ca, write};
use common::*;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use portcullis_gateway::config::RouteSpec;
use portcullis_gateway::config::{UpstreamConfig, UpstreamProtocol};
use serde_json::Value;

fn script(name: &str) -> String {
    format!("{}/python/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A running upstream, killed when dropped.
struct Upstream(Child, u16);

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn upstream(tls: Option<(&PathBuf, &PathBuf)>) -> Upstream {
    python_upstream("grpc_upstream.py", tls)
}

fn python_upstream(name: &str, tls: Option<(&PathBuf, &PathBuf)>) -> Upstream {
    let mut c = Command::new("python3");
    c.arg(script(name));
    if let Some((cert, key)) = tls {
        c.args([cert, key]);
    }
    let mut child = c.stdout(Stdio::piped()).spawn().expect("python3 runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
    Upstream(child, port)
}

fn grpc_upstream(
    url: String,
    ca_file: Option<PathBuf>,
    server_name: Option<&str>,
) -> UpstreamConfig {
    UpstreamConfig {
        url,
        protocol: UpstreamProtocol::Http2,
        ca_file,
        server_name: server_name.map(str::to_string),
        connect_timeout_ms: 2_000,
        timeout_ms: 10_000,
        pool_max_idle: 8,
        forward_authorization: false,
    }
}

fn route(host: Option<&str>, upstream: &str) -> RouteSpec {
    RouteSpec {
        name: Some(format!("grpc-{upstream}")),
        host: host.map(str::to_string),
        methods: vec!["POST".into()],
        path: "/demo.Live/{method}".into(),
        upstream: upstream.into(),
        action: "read".into(),
        resource: "catalog/sales".into(),
        shadow: false,
        assertion: false,
    }
}

fn client(gw: &Gw, authority: &str, extra: &[&str]) -> Value {
    client_trusting(gw, authority, extra, None)
}

/// [`client`], over TLS to the gateway when `ca` is given.
fn client_trusting(gw: &Gw, authority: &str, extra: &[&str], ca: Option<&PathBuf>) -> Value {
    let mut command = Command::new("python3");
    if let Some(ca) = ca {
        command.env("GRPC_CA", ca);
    }
    let out = command
        .arg(script("grpc_client.py"))
        .args([
            gw.running.proxy_addr.to_string(),
            authority.to_string(),
            bearer("pat"),
            bearer("gus"),
        ])
        .args(extra)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_streams_trailers_and_statuses_over_h2c_and_tls_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Upstream CA");
    let (cert, key) = ca.issue(&["grpc.test"], false);
    let cert = write(dir.path(), "grpc.pem", &cert);
    let key = write(dir.path(), "grpc.key", &key);
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let other_ca = write(dir.path(), "other.pem", &Ca::new("Another CA").pem);

    let plain = upstream(None);
    let secure = upstream(Some((&cert, &key)));
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.upstreams.insert(
            "plain".into(),
            grpc_upstream(format!("http://127.0.0.1:{}", plain.1), None, None),
        );
        c.upstreams.insert(
            "secure".into(),
            grpc_upstream(
                format!("https://127.0.0.1:{}", secure.1),
                Some(ca_file.clone()),
                Some("grpc.test"),
            ),
        );
        c.upstreams.insert(
            "untrusted".into(),
            grpc_upstream(
                format!("https://127.0.0.1:{}", secure.1),
                Some(other_ca.clone()),
                Some("grpc.test"),
            ),
        );
        c.routes.insert(0, route(Some("tls.test"), "secure"));
        c.routes
            .insert(1, route(Some("untrusted.test"), "untrusted"));
        c.routes.insert(2, route(None, "plain"));
    })
    .await;

    for authority in ["plain.test", "tls.test"] {
        let r = client(&gw, authority, &[]);
        // Unary, with the principal the gateway vouches for and the
        // upstream's trailer; the client's token is not forwarded.
        assert_eq!(r["get"]["principal"], "user/pat", "{authority}: {r}");
        assert_eq!(r["get"]["authorization"], Value::Null, "{r}");
        assert_eq!(r["get"]["message"], "hello");
        assert_eq!(r["trailers"]["x-upstream-trailer"], "yes", "{r}");
        // Both directions streaming, interleaved.
        assert_eq!(r["chat"], serde_json::json!(["ONE", "TWO", "THREE"]), "{r}");
        // The upstream's own status and trailers pass untouched.
        assert_eq!(r["fail"]["code"], "NOT_FOUND", "{r}");
        assert_eq!(r["fail"]["details"], "no such thing");
        assert_eq!(r["fail"]["trailer"], "yes");
        // The gateway's refusals are gRPC statuses with the reason.
        assert_eq!(r["denied"]["code"], "PERMISSION_DENIED", "{r}");
        assert!(
            r["denied"]["details"]
                .as_str()
                .unwrap()
                .starts_with("no_grant: "),
            "{r}"
        );
        assert_eq!(r["denied"]["reason"], "no_grant", "{r}");
        assert_eq!(r["anonymous"]["code"], "UNAUTHENTICATED", "{r}");
        assert_eq!(r["unrouted"]["code"], "PERMISSION_DENIED", "{r}");
        assert!(
            r["unrouted"]["details"]
                .as_str()
                .unwrap()
                .starts_with("no_route: "),
            "{r}"
        );
    }

    // Verification is on: a certificate from another CA is refused.
    let r = client(&gw, "untrusted.test", &["get"]);
    assert_eq!(r["code"], "UNAVAILABLE", "{r}");
}

#[tokio::test]
async fn https_upstreams_are_verified_by_the_name_they_are_reached_by() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Upstream CA");
    let (cert, key) = ca.issue(&["localhost", "api.internal"], false);
    let cert = write(dir.path(), "up.pem", &cert);
    let key = write(dir.path(), "up.key", &key);
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let up = python_upstream("https_upstream.py", Some((&cert, &key)));
    let https = |url: String, server_name: Option<&str>| UpstreamConfig {
        protocol: UpstreamProtocol::Http1,
        ..grpc_upstream(url, Some(ca_file.clone()), server_name)
    };
    let table = |host: &str, upstream: &str| RouteSpec {
        host: Some(host.into()),
        methods: vec!["GET".into()],
        path: "/envs/{env}/catalogs/{catalog}/tables/*".into(),
        resource: "catalog/{catalog}".into(),
        ..route(None, upstream)
    };
    let gw = gateway_with(Some(revision(1)), |c, _| {
        // By the URL's host; by an overriding name; by an IP address the
        // certificate does not carry.
        c.upstreams.insert(
            "by-host".into(),
            https(format!("https://localhost:{}", up.1), None),
        );
        c.upstreams.insert(
            "by-name".into(),
            https(format!("https://127.0.0.1:{}", up.1), Some("api.internal")),
        );
        c.upstreams.insert(
            "by-ip".into(),
            https(format!("https://127.0.0.1:{}", up.1), None),
        );
        c.routes.insert(0, table("host.test", "by-host"));
        c.routes.insert(1, table("name.test", "by-name"));
        c.routes.insert(2, table("ip.test", "by-ip"));
    })
    .await;
    let token = bearer("pat");
    for (host, sni) in [("host.test", "localhost"), ("name.test", "api.internal")] {
        let a = gw
            .get(
                "/envs/prod/catalogs/sales/tables/orders",
                &[("host", host), ("authorization", &token)],
            )
            .await;
        assert_eq!(a.status, 200, "{host}: {}", a.body);
        assert_eq!(a.body["sni"], sni);
        assert_eq!(a.body["principal"], "user/pat");
        assert_eq!(a.body["path"], "/envs/prod/catalogs/sales/tables/orders");
    }
    let a = gw
        .get(
            "/envs/prod/catalogs/sales/tables/orders",
            &[("host", "ip.test"), ("authorization", &token)],
        )
        .await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(a.body["reason"], "unreachable", "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_at_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca_file) = common::ca::listener_tls(dir.path(), &["edge.test"]);
    let plain = upstream(None);
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.server.tls = Some(tls);
        c.upstreams.insert(
            "plain".into(),
            grpc_upstream(format!("http://127.0.0.1:{}", plain.1), None, None),
        );
        c.routes.insert(0, route(None, "plain"));
    })
    .await;
    let r = client_trusting(&gw, "edge.test", &[], Some(&ca_file));
    assert_eq!(r["get"]["principal"], "user/pat", "{r}");
    assert_eq!(r["trailers"]["x-upstream-trailer"], "yes", "{r}");
    assert_eq!(r["chat"], serde_json::json!(["ONE", "TWO", "THREE"]), "{r}");
    assert_eq!(r["denied"]["code"], "PERMISSION_DENIED", "{r}");
    assert_eq!(r["anonymous"]["code"], "UNAUTHENTICATED", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_that_revokes_access_ends_open_grpc_streams_with_permission_denied() {
    use std::io::{BufRead, Write};
    let plain = upstream(None);
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.upstreams.insert(
            "plain".into(),
            grpc_upstream(format!("http://127.0.0.1:{}", plain.1), None, None),
        );
        c.routes.insert(0, route(None, "plain"));
    })
    .await;
    let mut client = Command::new("python3")
        .args([
            "-c",
            r#"
import json, queue, sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
def chat(token):
    outbox = queue.Queue()
    def requests():
        while (m := outbox.get()) is not None:
            yield m
    replies = channel.stream_stream("/demo.Live/Chat")(requests(), metadata=[("authorization", token)], timeout=30)
    return outbox, replies
def next_reply(outbox, replies, message):
    outbox.put(message)
    try:
        return {"reply": next(replies).decode()}
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details()}
losing, keeping = chat(sys.argv[2]), chat(sys.argv[3])
print(json.dumps([next_reply(*losing, b"before"), next_reply(*keeping, b"before")]), flush=True)
sys.stdin.readline()
print(json.dumps([next_reply(*losing, b"after"), next_reply(*keeping, b"after")]), flush=True)
"#,
            &gw.running.proxy_addr.to_string(),
            &bearer("pat"),
            &bearer("dave"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(client.stdout.take().unwrap()).lines();
    let mut line = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let before = line();
    assert_eq!(
        before,
        serde_json::json!([{"reply": "BEFORE"}, {"reply": "BEFORE"}])
    );
    let pushed = gw.push(pat_deactivated(), false).await;
    assert_eq!(pushed.status, 200);
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"swapped\n")
        .unwrap();
    let after = line();
    assert_eq!(after[0]["code"], "PERMISSION_DENIED", "{after}");
    assert!(
        after[0]["details"]
            .as_str()
            .unwrap()
            .starts_with("account_deactivated: "),
        "{after}"
    );
    assert_eq!(after[1]["reply"], "AFTER", "{after}");
    assert!(client.wait().unwrap().success());
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_grpc_calls_revoked_total 1"),
        "{metrics}"
    );
}

/// Issue #23, case 4: a gRPC request body over `server.max_body_bytes`
/// that declares no length — as gRPC clients send them — is
/// `RESOURCE_EXHAUSTED` (8), which clients do not retry, whether the
/// upstream has answered yet (a unary call) or is streaming back (a bidi
/// call crossing the limit mid-stream); it was `UNAVAILABLE` (14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_grpc_body_is_resource_exhausted_without_a_length() {
    let plain = upstream(None);
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.server.max_body_bytes = 64 * 1024;
        c.upstreams.insert(
            "plain".into(),
            grpc_upstream(format!("http://127.0.0.1:{}", plain.1), None, None),
        );
        c.routes.insert(0, route(None, "plain"));
    })
    .await;
    let out = Command::new("python3")
        .args([
            "-c",
            r#"
import json, queue, sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
token = [("authorization", sys.argv[2])]
result = {}
try:
    channel.unary_unary("/demo.Live/Get")(b"x" * 200_000, metadata=token, timeout=10)
    result["unary"] = {"code": "OK"}
except grpc.RpcError as e:
    result["unary"] = {"code": e.code().name, "details": e.details()}
outbox = queue.Queue()
def requests():
    while (m := outbox.get()) is not None:
        yield m
replies = channel.stream_stream("/demo.Live/Chat")(requests(), metadata=token, timeout=10)
got = []
try:
    for i in range(8):
        outbox.put(b"y" * 20_000)
        got.append(len(next(replies)))
    result["bidi"] = {"code": "OK"}
except grpc.RpcError as e:
    result["bidi"] = {"code": e.code().name, "details": e.details()}
outbox.put(None)
result["replies"] = len(got)
print(json.dumps(result))
"#,
            &gw.running.proxy_addr.to_string(),
            &bearer("pat"),
        ])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(r["unary"]["code"], "RESOURCE_EXHAUSTED", "{r}");
    assert!(
        r["unary"]["details"]
            .as_str()
            .unwrap()
            .starts_with("body_too_large: "),
        "{r}"
    );
    assert_eq!(r["bidi"]["code"], "RESOURCE_EXHAUSTED", "{r}");
    // Three 20 kB messages fit in 64 KiB; the fourth crosses it.
    assert_eq!(r["replies"], 3, "{r}");
}

/// A gRPC-Web call read frame by frame as it arrives (the Python client
/// reads whole bodies): `Ok(message)`, or `Err(trailers)` for the trailer
/// frame.
struct WebCall {
    body: hyper::body::Incoming,
    text: bool,
    /// Base64 characters not yet decoded (text).
    chars: Vec<u8>,
    /// Decoded bytes not yet framed.
    bytes: Vec<u8>,
}

impl WebCall {
    async fn open(gw: &Gw, method: &str, token: &str, text: bool) -> (u16, WebCall) {
        use base64::Engine as _;
        use http_body_util::Full;
        let content_type = if text {
            "application/grpc-web-text"
        } else {
            "application/grpc-web+proto"
        };
        let frame = vec![0u8, 0, 0, 0, 0];
        let body = if text {
            base64::engine::general_purpose::STANDARD
                .encode(&frame)
                .into_bytes()
        } else {
            frame
        };
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<bytes::Bytes>>();
        let req = http::Request::post(format!(
            "http://{}/demo.Live/{method}",
            gw.running.proxy_addr
        ))
        .header("content-type", content_type)
        .header("accept", content_type)
        .header("x-grpc-web", "1")
        .header("authorization", token)
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        (
            status,
            WebCall {
                body: resp.into_body(),
                text,
                chars: Vec::new(),
                bytes: Vec::new(),
            },
        )
    }

    /// The next message or the trailers; `None` when the body ends
    /// without more.
    async fn next(&mut self) -> Option<Result<Vec<u8>, String>> {
        use base64::Engine as _;
        use http_body_util::BodyExt;
        loop {
            if self.bytes.len() >= 5 {
                let len = u32::from_be_bytes(self.bytes[1..5].try_into().unwrap()) as usize;
                if self.bytes.len() >= 5 + len {
                    let frame: Vec<u8> = self.bytes.drain(..5 + len).collect();
                    let payload = frame[5..].to_vec();
                    return Some(if frame[0] & 0x80 != 0 {
                        Err(String::from_utf8(payload).unwrap())
                    } else {
                        Ok(payload)
                    });
                }
            }
            let frame = tokio::time::timeout(std::time::Duration::from_secs(20), self.body.frame())
                .await
                .expect("the call went quiet")?
                .ok()?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if self.text {
                // Each group of four decoded alone: servers flush padded
                // base64 a message at a time.
                self.chars.extend_from_slice(&data);
                let whole = self.chars.len() / 4 * 4;
                for group in self.chars[..whole].chunks(4) {
                    self.bytes.extend(
                        base64::engine::general_purpose::STANDARD
                            .decode(group)
                            .unwrap(),
                    );
                }
                self.chars.drain(..whole);
            } else {
                self.bytes.extend_from_slice(&data);
            }
        }
    }

    /// Reads until the trailers; the messages before them.
    async fn until_trailers(&mut self) -> (usize, String) {
        let mut messages = 0;
        loop {
            match self.next().await {
                Some(Ok(_)) => messages += 1,
                Some(Err(trailers)) => return (messages, trailers),
                None => panic!("the body ended without trailers after {messages} messages"),
            }
        }
    }
}

/// Waits until the route has allowed `n` requests (the gateway's metric).
async fn allowed(gw: &Gw, route: &str, n: usize) {
    let line = format!("portcullis_requests_total{{route=\"{route}\",decision=\"allow\"}} {n}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, metrics) = gw.admin_get("/-/metrics").await;
        if metrics.contains(&line) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never {line}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Issue #23, case 2: gRPC-Web is gRPC to the gateway. Its refusals are
/// gRPC statuses in gRPC-Web's trailer frame (read by a real gRPC-Web
/// client, Python's sonora), and an open gRPC-Web stream — binary or
/// base64 text, against a real gRPC-Web server (sonora) — is re-decided
/// after a swap and ended at a message boundary with `PERMISSION_DENIED`,
/// while another principal's stream goes on. Before, the client's choice of
/// `application/grpc-web` made a streaming call outlive revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_calls_are_refused_and_revoked_like_grpc_calls() {
    let web = python_upstream("grpc_web_upstream.py", None);
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.upstreams.insert(
            "web".into(),
            UpstreamConfig {
                protocol: UpstreamProtocol::Http1,
                ..grpc_upstream(format!("http://127.0.0.1:{}", web.1), None, None)
            },
        );
        c.routes.insert(0, route(None, "web"));
    })
    .await;
    let addr = gw.running.proxy_addr.to_string();
    let sonora = |script: &str, args: &[&str]| {
        Command::new("python3")
            .args(["-c", script, &addr])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs")
    };
    const CLIENT: &str = r#"
import json, sys, grpc, sonora.client
channel = sonora.client.insecure_web_channel("http://" + sys.argv[1])
raw = lambda b: b
def call(method, token, stream=False):
    metadata = [("authorization", token)] if token else []
    try:
        if stream:
            got = sum(1 for _ in channel.unary_stream(method, raw, raw)(b"", metadata=metadata, timeout=60))
            return {"code": "OK", "messages": got}
        return {"code": "OK", "reply": json.loads(channel.unary_unary(method, raw, raw)(b"hello", metadata=metadata, timeout=10))}
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details()}
"#;
    let unary = format!(
        "{CLIENT}\nprint(json.dumps({{'get': call('/demo.Live/Get', sys.argv[2]), 'denied': call('/demo.Live/Get', sys.argv[3]), 'anonymous': call('/demo.Live/Get', None)}}))"
    );
    let out = sonora(&unary, &[&bearer("pat"), &bearer("gus")])
        .wait_with_output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["get"]["reply"]["principal"], "user/pat", "{r}");
    assert_eq!(r["denied"]["code"], "PERMISSION_DENIED", "{r}");
    assert!(
        r["denied"]["details"]
            .as_str()
            .unwrap()
            .starts_with("no_grant: "),
        "{r}"
    );
    assert_eq!(r["anonymous"]["code"], "UNAUTHENTICATED", "{r}");

    // Open streams: pat's (binary, text, and sonora's), dave's.
    let streaming = format!(
        "{CLIENT}\nprint(json.dumps(call('/demo.Live/Watch', sys.argv[2], stream=True)), flush=True)"
    );
    let pat_sonora = sonora(&streaming, &[&bearer("pat")]);
    let (s1, mut pat) = WebCall::open(&gw, "Watch", &bearer("pat"), false).await;
    let (s2, mut pat_text) = WebCall::open(&gw, "Watch", &bearer("pat"), true).await;
    let (s3, mut dave) = WebCall::open(&gw, "Watch", &bearer("dave"), false).await;
    assert_eq!((s1, s2, s3), (200, 200, 200));
    for call in [&mut pat, &mut pat_text, &mut dave] {
        assert_eq!(call.next().await, Some(Ok(b"tick 0".to_vec())));
    }
    // One unary call, four streams: all allowed and open.
    allowed(&gw, "grpc-web", 5).await;

    let pushed = gw.push(pat_deactivated(), false).await;
    assert_eq!(pushed.status, 200);
    for call in [&mut pat, &mut pat_text] {
        let (_, trailers) = call.until_trailers().await;
        assert!(trailers.contains("grpc-status: 7\r\n"), "{trailers}");
        assert!(
            trailers.contains("grpc-message: account_deactivated: "),
            "{trailers}"
        );
        assert_eq!(call.next().await, None, "nothing after the trailers");
    }
    let out = pat_sonora.wait_with_output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["code"], "PERMISSION_DENIED", "{r}");
    assert!(
        r["details"]
            .as_str()
            .unwrap()
            .starts_with("account_deactivated: "),
        "{r}"
    );
    // dave's stream goes on.
    for _ in 0..3 {
        assert!(matches!(dave.next().await, Some(Ok(_))));
    }
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_grpc_calls_revoked_total 3"),
        "{metrics}"
    );
}
