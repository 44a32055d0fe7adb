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

use portcullis_gateway::config::{UpstreamConfig, UpstreamProtocol};
use portcullis_gateway::stage::route_table::RouteSpec;
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
