//! The gateway end to end: real sockets on 127.0.0.1, the real WebAssembly
//! module, the example directory (`snapshots/examples/acme.json`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_demo::{DEMO_API_KEY, demo_token, example_snapshot};
use portcullis_gateway::server::Running;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::*;

/// Sends `target` exactly as written (no client-side normalization) and
/// returns the status and body.
async fn raw_put(addr: SocketAddr, target: &str, auth: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "PUT {target} HTTP/1.1\r\nHost: app.example\r\nAuthorization: {auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_request_reaches_the_upstream_with_identity_headers() {
    let gw = gateway().await;
    let a = gw.get(TABLE, &[("authorization", &bearer("pat"))]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["path"], TABLE);
    assert_eq!(a.body["x-portcullis-principal"], "user/pat");
    assert_eq!(a.body["x-portcullis-revision"], "1");
    assert_eq!(a.body["x-portcullis-acting-as"], Value::Null);
    assert_eq!(a.body["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_is_403_with_reason_message_and_revision() {
    let gw = gateway().await;
    let pat = bearer("pat");
    let a = send(
        &gw.client,
        Method::PUT,
        &format!("{}{TABLE}", gw.base),
        &[("authorization", &pat)],
        b"new rows".to_vec(),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["decision"], "deny");
    assert_eq!(a.body["reason"], "no_grant");
    assert_eq!(a.body["revision"], 1);
    assert!(
        a.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("user/pat"))
    );
    assert_eq!(a.headers["content-type"], "application/json");

    // A rule no grant can override (seed 000: administrators never act on owners).
    let a = send(
        &gw.client,
        Method::PATCH,
        &format!("{}/users/olivia", gw.base),
        &[("authorization", &bearer("adam"))],
        vec![],
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["reason"], "administrator_over_owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_credentials_are_401_with_a_challenge() {
    let gw = gateway().await;
    let a = gw.get(TABLE, &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.headers["www-authenticate"], "Bearer realm=\"portcullis\"");
    assert_eq!(a.body["reason"], "unauthenticated");

    let mut forged = demo_token("pat").expect("token");
    // Change the signature's last character to a different one (the last
    // character is 'A' in one token out of 16: replacing it by 'A' alone
    // would sometimes leave the token valid).
    let last = forged.pop().expect("a token");
    forged.push(if last == 'A' { 'E' } else { 'A' });
    let a = gw
        .get(TABLE, &[("authorization", &format!("Bearer {forged}"))])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let challenge = a.headers["www-authenticate"].to_str().expect("ascii");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // An API key the snapshot does not know is a credential problem too.
    let a = gw.get(TABLE, &[("x-api-key", "pk_not_a_key")]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.contains_key("www-authenticate"));

    // Both a token and a key: ambiguous.
    let a = gw
        .get(
            TABLE,
            &[
                ("authorization", &bearer("pat")),
                ("x-api-key", DEMO_API_KEY),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_identity_headers_are_stripped_and_api_keys_act_as_their_creator() {
    let gw = gateway().await;
    let a = gw
        .get(
            "/orgs/acme/sso",
            &[
                ("x-api-key", DEMO_API_KEY),
                ("X-Portcullis-Principal", "user/olivia"),
                ("x-portcullis-acting-as", "user/olivia"),
                ("X-PORTCULLIS-REVISION", "999"),
                ("x-forwarded-for", "10.1.2.3"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body["x-portcullis-principal"]
            .as_str()
            .is_some_and(|p| p.starts_with("apikey/")),
        "{}",
        a.body
    );
    assert_eq!(a.body["x-portcullis-acting-as"], "user/sam");
    assert_eq!(a.body["x-portcullis-revision"], "1");
    // The client's chain is kept and the peer appended.
    assert_eq!(a.body["x-forwarded-for"], "10.1.2.3, 127.0.0.1");

    // A header named in Connection is hop-by-hop and must not reach the upstream.
    let a = gw
        .get(
            TABLE,
            &[
                ("authorization", &bearer("pat")),
                ("connection", "keep-alive, x-portcullis-principal"),
                ("x-portcullis-principal", "user/olivia"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["x-portcullis-principal"], "user/pat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_normalization_attacks_are_decided_on_the_normalized_path() {
    let gw = gateway().await;
    let addr = gw.running.proxy_addr;
    // carol may write catalog/finance but not catalog/sales.
    let carol = bearer("carol");
    let (s, b) = raw_put(addr, "/envs/prod/catalogs/finance/tables/ledger", &carol).await;
    assert_eq!(s, 200, "{b}");

    for sneaky in [
        "/envs/prod/catalogs/finance/../sales/tables/orders",
        "/envs/prod/catalogs/finance/%2e%2e/sales/tables/orders",
        "/envs/prod/catalogs/finance/%2E%2E/sales/tables/orders",
        "/envs/prod/catalogs/finance/tables/../../sales/tables/orders",
        "/envs/prod/catalogs/finance/./../sales/tables/orders",
        "//envs//prod/catalogs/sales/tables/orders",
        "/envs/prod/catalogs/%73ales/tables/orders",
    ] {
        let (s, b) = raw_put(addr, sneaky, &carol).await;
        assert_eq!(s, 403, "{sneaky}: {b}");
        assert_eq!(b["reason"], "no_grant", "{sneaky}: decided on {b}");
    }

    // Refused outright: encoded slashes and backslashes, control bytes,
    // invalid encodings, escaping the root.
    for bad in [
        "/envs/prod/catalogs/finance%2F..%2Fsales/tables/orders",
        "/envs/prod/catalogs/finance%2f..%2fsales/tables/orders",
        "/envs/prod/catalogs/finance%5C..%5Csales/tables/orders",
        "/envs/prod/catalogs/finance/tables/%00",
        "/envs/prod/catalogs/finance/tables/%zz",
        "/envs/prod/catalogs/finance/tables/%2",
        "/../envs/prod/catalogs/finance/tables/ledger",
    ] {
        let (s, b) = raw_put(addr, bad, &carol).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert_eq!(b["reason"], "malformed_path", "{bad}");
    }

    // Case matters in literal segments and identifiers: no route, or an
    // unknown resource, never a match on something else.
    let (s, b) = raw_put(addr, "/ENVS/prod/catalogs/finance/tables/ledger", &carol).await;
    assert_eq!((s, b["reason"].as_str()), (403, Some("no_route")));
    let (s, b) = raw_put(addr, "/envs/prod/catalogs/FINANCE/tables/ledger", &carol).await;
    assert_eq!((s, b["reason"].as_str()), (403, Some("unknown_resource")));

    // What is allowed reaches the upstream exactly as authorized.
    let (s, b) = raw_put(
        addr,
        "//envs/./prod//catalogs/finance/tables/x/../ledger",
        &carol,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["path"], "/envs/prod/catalogs/finance/tables/ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_requests_are_denied_by_default() {
    let gw = gateway().await;
    let a = gw
        .get("/admin/everything", &[("authorization", &bearer("sam"))])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["reason"], "no_route");
    // A route's method list is part of the match.
    let a = send(
        &gw.client,
        Method::DELETE,
        &format!("{}/envs/prod", gw.base),
        &[("authorization", &bearer("sam"))],
        vec![],
    )
    .await;
    assert_eq!(a.body["reason"], "no_route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_under_concurrent_load_fails_no_request() {
    let gw = Arc::new(gateway().await);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (gw, stop, done) = (Arc::clone(&gw), Arc::clone(&stop), Arc::clone(&done));
        workers.push(tokio::spawn(async move {
            let pat = bearer("pat");
            let mut last = 0u64;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let a = gw.get(TABLE, &[("authorization", &pat)]).await;
                if a.status != StatusCode::OK {
                    failures.push(format!("{} {}", a.status, a.body));
                    continue;
                }
                let rev: u64 = a.body["x-portcullis-revision"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                // A worker never sees the revision go backwards.
                if rev < last {
                    failures.push(format!("revision went from {last} to {rev}"));
                }
                last = rev;
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    for rev in 2..=12 {
        let a = gw.push(revision(rev), false).await;
        assert_eq!(a.status, StatusCode::OK, "push {rev}: {}", a.body);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let failures = w.await.expect("worker");
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(done.load(Ordering::Relaxed) > 100, "the load ran");
    assert_eq!(gw.running.revision(), Some(12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_snapshot_is_refused_and_the_old_one_keeps_serving() {
    let gw = gateway().await;
    let pat = bearer("pat");
    // Garbage, a truncated snapshot, and a body whose hash does not match.
    let good = revision(2);
    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    for (what, bytes) in [
        ("garbage", b"not a snapshot at all".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("corrupted body", corrupt),
    ] {
        let a = gw.push(bytes, false).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            a.body
        );
        assert_eq!(a.body["revision"], 1, "{what}");
        assert_eq!(gw.running.revision(), Some(1));
        let a = gw.get(TABLE, &[("authorization", &pat)]).await;
        assert_eq!(a.status, StatusCode::OK, "{what}: still serving");
    }
    // Pushing needs the admin token.
    let a = send(
        &gw.client,
        Method::PUT,
        &format!("{}/-/snapshot", gw.admin),
        &[("authorization", "Bearer wrong-token-wrong-token")],
        good,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_snapshot_swap_failures_total{source=\"push\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_rollback_is_refused_unless_forced() {
    let gw = gateway_with(Some(revision(5)), |_, _| {}).await;
    for rev in [4, 5] {
        let a = gw.push(revision(rev), false).await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
        assert_eq!(a.body["reason"], "stale_revision");
    }
    assert_eq!(gw.running.revision(), Some(5));
    let a = gw.push(revision(3), true).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["previous"], 5);
    assert_eq!(gw.running.revision(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_trap_denies_with_503_and_the_instance_is_rebuilt() {
    let gw = gateway_with(Some(revision(1)), |c, _| c.server.workers = Some(1)).await;
    let pat = bearer("pat");
    gw.running.interrupt_next_decisions();
    let a = gw.get(TABLE, &[("authorization", &pat)]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(a.body["decision"], "deny");
    assert_eq!(a.body["reason"], "engine_unavailable");

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = gw.get(TABLE, &[("authorization", &pat)]).await;
        if a.status == StatusCode::OK {
            break;
        }
        assert_eq!(
            a.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "fails closed meanwhile"
        );
        assert!(Instant::now() < deadline, "the instance was not rebuilt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.running.healthy_instances(), 1);
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_engine_traps_total 1"),
        "{metrics}"
    );
}

/// Issue #23, case 5: the engine's deadline measures the module's own
/// work. A worker that waits after its decision's deadline is armed — as
/// one the OS deschedules on a busy machine, or one blocked on a page while
/// a loader maps a new image — sees far more than `decision_timeout_ms` of
/// wall time pass, and its 2 µs check must still be answered (on a deadline
/// counted in wall time it was a 503 `engine_unavailable`, "interrupt").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stalled_mid_decision_is_still_answered() {
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.server.workers = Some(1);
        c.engine.decision_timeout_ms = 50;
    })
    .await;
    let pat = bearer("pat");
    for stall in [120, 400] {
        gw.running
            .stall_next_decisions(Duration::from_millis(stall));
        let started = Instant::now();
        let a = gw.get(TABLE, &[("authorization", &pat)]).await;
        assert_eq!(a.status, StatusCode::OK, "stalled {stall} ms: {}", a.body);
        assert!(started.elapsed() >= Duration::from_millis(stall));
    }
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_engine_traps_total 0"),
        "{metrics}"
    );
    // Past the wall-time backstop the call is cut, whatever its CPU.
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.server.workers = Some(1);
        c.engine.decision_timeout_ms = 20;
        c.engine.decision_wall_limit_ms = 100;
    })
    .await;
    gw.running.stall_next_decisions(Duration::from_millis(300));
    let a = gw.get(TABLE, &[("authorization", &pat)]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(a.body["reason"], "engine_unavailable");
    assert!(
        a.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("wall time")),
        "{}",
        a.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_snapshot_everything_is_denied_and_not_ready() {
    let gw = gateway_with(None, |_, _| {}).await;
    let (s, _) = gw.admin_get("/-/healthz").await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = gw.admin_get("/-/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let a = gw.get(TABLE, &[("authorization", &bearer("pat"))]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.body["reason"], "no_snapshot");

    assert_eq!(gw.push(revision(1), false).await.status, StatusCode::OK);
    let (s, body) = gw.admin_get("/-/readyz").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let a = gw.get(TABLE, &[("authorization", &bearer("pat"))]).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_and_slow_is_504() {
    // A port nobody listens on.
    let closed = TcpListener::bind(local())
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let gw = gateway_with(Some(revision(1)), |c, _| {
        if let Some(u) = c.upstreams.get_mut("app") {
            u.url = format!("http://{closed}");
        }
    })
    .await;
    let a = gw.get(TABLE, &[("authorization", &bearer("pat"))]).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.body);

    let slow = slow_upstream(Duration::from_secs(3)).await;
    let gw = gateway_with(Some(revision(1)), |c, _| {
        if let Some(u) = c.upstreams.get_mut("app") {
            u.url = format!("http://{slow}");
            u.timeout_ms = 200;
        }
    })
    .await;
    let a = gw.get(TABLE, &[("authorization", &bearer("pat"))]).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);
}

/// An upstream that answers 200 after `delay`.
async fn slow_upstream(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind(local()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                        "{\"slow\":true}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served() {
    let gw = gateway().await;
    let h2: TestClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let a = send(
        &h2,
        Method::GET,
        &format!("{}{TABLE}", gw.base),
        &[("authorization", &bearer("pat"))],
        vec![],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["x-portcullis-principal"], "user/pat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_request_heads_are_cut_off() {
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.server.header_read_timeout_ms = 300;
        c.server.max_header_bytes = 8192;
    })
    .await;
    // Slowloris: half a request head, then silence.
    let mut s = TcpStream::connect(gw.running.proxy_addr)
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was not closed");
    assert!(started.elapsed() < Duration::from_secs(3));

    // An idle keep-alive connection is closed after the same timeout.
    let mut s = TcpStream::connect(gw.running.proxy_addr)
        .await
        .expect("connect");
    s.write_all(b"GET /-/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the idle connection was not closed");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 403"));
    assert!(started.elapsed() < Duration::from_secs(3));

    // A head larger than the limit.
    let mut s = TcpStream::connect(gw.running.proxy_addr)
        .await
        .expect("connect");
    let big = "a".repeat(20_000);
    let req = format!("GET {TABLE} HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "oversized head answered: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_before_forwarding() {
    let gw = gateway_with(Some(revision(2)), |c, _| c.server.max_body_bytes = 1024).await;
    let _ = gw
        .push(
            example_snapshot(|v| {
                v["revision"] = json!(3);
                if let Some(g) = v["grants"].as_array_mut() {
                    g.push(
                        json!({"principal": "user/pat", "role": "writer", "on": "catalog/sales"}),
                    );
                }
            })
            .expect("builds"),
            false,
        )
        .await;
    let a = send(
        &gw.client,
        Method::PUT,
        &format!("{}{TABLE}", gw.base),
        &[("authorization", &bearer("pat"))],
        vec![b'x'; 4096],
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    let a = send(
        &gw.client,
        Method::PUT,
        &format!("{}{TABLE}", gw.base),
        &[("authorization", &bearer("pat"))],
        vec![b'x'; 100],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_in_flight_requests() {
    let slow = slow_upstream(Duration::from_millis(600)).await;
    let gw = gateway_with(Some(revision(1)), |c, _| {
        if let Some(u) = c.upstreams.get_mut("app") {
            u.url = format!("http://{slow}");
        }
    })
    .await;
    let url = format!("{}{TABLE}", gw.base);
    let client = gw.client.clone();
    let pat = bearer("pat");
    let in_flight = tokio::spawn(async move {
        send(
            &client,
            Method::GET,
            &url,
            &[("authorization", &pat)],
            vec![],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let addr = gw.running.proxy_addr;
    gw.running.shutdown().await;
    let a = in_flight.await.expect("request task");
    assert_eq!(a.status, StatusCode::OK, "the in-flight request finished");
    assert_eq!(a.body["slow"], true);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

async fn wait_for_revision(running: &Running, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while running.revision() != Some(want) {
        assert!(
            Instant::now() < deadline,
            "revision {want} never arrived (serving {:?})",
            running.revision()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_file_is_reloaded_and_a_bad_write_is_refused() {
    let gw = gateway_with(None, |c, dir| {
        let file = dir.join("directory.snap");
        std::fs::write(&file, revision(1)).expect("write");
        c.snapshot.file = Some(file);
        c.snapshot.watch = true;
    })
    .await;
    assert_eq!(gw.running.revision(), Some(1));
    let file = gw._dir.path().join("directory.snap");
    // Replaced atomically, as deploy tools do.
    let tmp = gw._dir.path().join(".directory.snap.tmp");
    std::fs::write(&tmp, revision(2)).expect("write");
    std::fs::rename(&tmp, &file).expect("rename");
    wait_for_revision(&gw.running, 2).await;
    // Written in place.
    std::fs::write(&file, revision(3)).expect("write");
    wait_for_revision(&gw.running, 3).await;
    // A bad file: refused, revision 3 keeps serving.
    std::fs::write(&file, b"oops").expect("write");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = gw.admin_get("/-/metrics").await;
        if metrics.contains("portcullis_snapshot_swap_failures_total{source=\"file\"}") {
            break;
        }
        assert!(Instant::now() < deadline, "the bad file was not noticed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(gw.running.revision(), Some(3));
    let a = gw.get(TABLE, &[("authorization", &bearer("pat"))]).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_url_is_fetched_with_etags() {
    // A snapshot server with ETags that counts its 304 answers.
    let served = Arc::new(std::sync::Mutex::new(revision(1)));
    let not_modified = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind(local()).await.expect("bind");
    let origin = listener.local_addr().expect("addr");
    {
        let (served, not_modified) = (Arc::clone(&served), Arc::clone(&not_modified));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (served, not_modified) = (Arc::clone(&served), Arc::clone(&not_modified));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let bytes = served.lock().map(|b| b.clone()).unwrap_or_default();
                        // The whole snapshot's hash: two revisions built in the
                        // same second differ only in their revision field.
                        let tag = format!(
                            "\"{}\"",
                            &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))[..16]
                        );
                        let matched = req
                            .headers()
                            .get("if-none-match")
                            .is_some_and(|v| v.as_bytes() == tag.as_bytes());
                        if matched {
                            not_modified.fetch_add(1, Ordering::Relaxed);
                        }
                        async move {
                            let resp = if matched {
                                http::Response::builder()
                                    .status(304)
                                    .body(Full::new(Bytes::new()))
                            } else {
                                http::Response::builder()
                                    .header("etag", tag)
                                    .body(Full::new(Bytes::from(bytes)))
                            };
                            resp.map_err(|e| e.to_string())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    }
    let gw = gateway_with(None, |c, _| {
        c.snapshot.poll_url = Some(format!("http://{origin}/directory.snap"));
        c.snapshot.poll_interval_ms = 50;
    })
    .await;
    wait_for_revision(&gw.running, 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while not_modified.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "no conditional requests seen");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if let Ok(mut b) = served.lock() {
        *b = revision(2);
    }
    wait_for_revision(&gw.running, 2).await;
}

/// Issue #23, case 1: a store that answers the head and part of the body,
/// then never sends the rest (no FIN, no RST), costs one
/// `snapshot.poll_timeout_ms`, not the poller: the next poll brings the
/// snapshot, and the abandoned fetch is counted. (The deadline used to
/// cover the head only: a stalled body froze polling for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stalls_mid_body_costs_one_deadline() {
    let listener = TcpListener::bind(local()).await.expect("bind");
    let origin = listener.local_addr().expect("addr");
    let first = revision(1);
    let second = revision(2);
    let connections = Arc::new(AtomicUsize::new(0));
    {
        let connections = Arc::clone(&connections);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let n = connections.fetch_add(1, Ordering::SeqCst);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let body = if n == 0 { &first } else { &second };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                if n == 0 {
                    // Half the body, then silence on an open socket.
                    let _ = stream.write_all(&body[..body.len() / 2]).await;
                    held.push(stream);
                } else {
                    let _ = stream.write_all(body).await;
                    let _ = stream.shutdown().await;
                }
            }
        });
    }
    let gw = gateway_with(None, |c, _| {
        c.snapshot.poll_url = Some(format!("http://{origin}/directory.snap"));
        c.snapshot.poll_interval_ms = 50;
        c.snapshot.poll_timeout_ms = 500;
    })
    .await;
    wait_for_revision(&gw.running, 2).await;
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_outbound_fetch_timeouts_total{fetch=\"snapshot\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_decision_log_record_every_decision() {
    let gw = gateway_with(Some(revision(1)), |c, dir| {
        c.log.decisions = dir.join("decisions.log").to_string_lossy().into_owned();
        // Shadow mode on the write route: denials are logged but forwarded.
        for r in &mut c.routes {
            if r.name.as_deref() == Some("write-table") {
                r.shadow = true;
            }
        }
    })
    .await;
    let pat = bearer("pat");
    assert_eq!(
        gw.get(TABLE, &[("authorization", &pat)]).await.status,
        StatusCode::OK
    );
    let a = send(
        &gw.client,
        Method::PUT,
        &format!("{}{TABLE}", gw.base),
        &[("authorization", &pat)],
        vec![],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "shadow mode forwards a denial");
    assert_eq!(gw.get(TABLE, &[]).await.status, StatusCode::UNAUTHORIZED);

    let (s, metrics) = gw.admin_get("/-/metrics").await;
    assert_eq!(s, StatusCode::OK);
    for line in [
        "portcullis_requests_total{route=\"read-table\",decision=\"allow\"} 1",
        "portcullis_requests_total{route=\"write-table\",decision=\"shadow_deny\"} 1",
        "portcullis_requests_total{route=\"read-table\",decision=\"unauthenticated\"} 1",
        "portcullis_snapshot_revision 1",
        "portcullis_snapshot_swaps_total{source=\"embedded\",kind=\"full\"} 1",
        "portcullis_decision_seconds_count 3",
        "portcullis_upstream_seconds_count 2",
        "portcullis_snapshot_swap_seconds_count 1",
        "portcullis_snapshot_swap_cpu_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    // The snapshot's bytes as received, and its loaded image's memory.
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert!(value("portcullis_snapshot_received_bytes_total{source=\"embedded\"}") > 1000.0);
    assert!(value("portcullis_snapshot_image_bytes") > 1_000_000.0);

    let log = gw._dir.path().join("decisions.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines: Vec<Value> = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        if lines.len() >= 3 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lines.len(), 3, "{lines:?}");
    let allow = &lines[0];
    for field in [
        "time",
        "principal",
        "acting_as",
        "action",
        "resource",
        "decision",
        "reason",
        "revision",
        "latency_us",
    ] {
        assert!(allow.get(field).is_some(), "{field} missing in {allow}");
    }
    assert_eq!(allow["principal"], "user/pat");
    assert_eq!(allow["action"], "read");
    assert_eq!(allow["resource"], "catalog/sales");
    assert_eq!(allow["decision"], "allow");
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(lines[1]["shadow"], true);
    assert_eq!(lines[2]["reason"], "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_a_snapshot_without_personal_data() {
    let gw = gateway().await;
    let url = format!("{}/-/snapshot/me", gw.base);
    let a = send(&gw.client, Method::GET, &url, &[], vec![]).await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "only for signed-in callers"
    );

    let pat = bearer("pat");
    let resp = gw
        .client
        .request(
            Request::get(&url)
                .header("authorization", &pat)
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()["etag"].clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();

    // It loads in the engine and decides like the full snapshot for pat…
    let engine = policy_wasm::Engine::load(&bytes).expect("a valid snapshot");
    assert_eq!(engine.revision(), 1);
    let full = policy_wasm::Engine::load(&revision(1)).expect("full");
    for (action, resource) in [
        ("read", "catalog/sales"),
        ("write", "catalog/sales"),
        ("user:update", "user/olivia"),
    ] {
        let req = policy_wasm::Request {
            principal: "user/pat",
            action,
            resource,
            context: policy_wasm::Context {
                now: 1_790_000_000,
                bulk: false,
            },
        };
        // Decided alike; olivia is outside pat's view, so unknown there.
        let (v, f) = (engine.check(&req), full.check(&req));
        assert_eq!(v.allowed, f.allowed, "{action} {resource}");
        if v.reason != policy_wasm::Reason::UnknownResource {
            assert_eq!(v, f, "{action} {resource}");
        }
    }
    // …is pat's view: nobody else (pat administers no one), and only its
    // own grants and its groups' (the example has 23)…
    let view = portcullis_snapshots::decode(&bytes).expect("decodes");
    assert!(view.header.is_view());
    let people: Vec<&str> = view
        .body
        .users
        .iter()
        .map(|u| view.body.str(u.username))
        .filter(|u| !u.is_empty())
        .collect();
    assert_eq!(people, ["pat"]);
    assert!(
        view.body.grants.len() <= 3,
        "{} grants",
        view.body.grants.len()
    );
    // …and no email, name or key hash.
    let text = String::from_utf8_lossy(&bytes);
    for secret in [
        "olivia@acme.example",
        "Olivia",
        "+44 20 7946 0001",
        "3f50f96db4bdb3282068d277cf77e98750d393ad80b6e1d4c01e28a30fa286dd",
    ] {
        assert!(!text.contains(secret), "{secret} leaked");
    }

    // Unchanged revision: 304.
    let resp = gw
        .client
        .request(
            Request::get(&url)
                .header("authorization", &pat)
                .header("if-none-match", etag.clone())
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    // A push that leaves pat's view as it was: still 304 (the tag is the
    // view's content, not the revision)…
    let conditional = |etag: http::HeaderValue| {
        let (client, url, pat) = (gw.client.clone(), url.clone(), pat.clone());
        async move {
            client
                .request(
                    Request::get(&url)
                        .header("authorization", &pat)
                        .header("if-none-match", etag)
                        .body(Full::new(Bytes::new()))
                        .expect("request"),
                )
                .await
                .expect("response")
        }
    };
    let other = portcullis_demo::example_snapshot(|v| {
        v["revision"] = serde_json::json!(2);
        v["users"][1]["name"] = serde_json::json!("Someone Else");
    })
    .expect("builds");
    let built = || async {
        let (_, metrics) = gw.admin_get("/-/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("portcullis_browser_views_built_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert_eq!(built().await, Some(1));
    assert_eq!(gw.push(other, false).await.status, StatusCode::OK);
    let resp = conditional(etag.clone()).await;
    assert_eq!(
        resp.status(),
        StatusCode::NOT_MODIFIED,
        "pat's view did not change"
    );
    // …and the view was kept over the swap, not cut again: the same bytes,
    // of the revision it was cut from.
    assert_eq!(
        built().await,
        Some(1),
        "cut again after a push that left it"
    );
    let a = send(
        &gw.client,
        Method::GET,
        &url,
        &[("authorization", &pat)],
        vec![],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["etag"], etag);
    let resp = gw
        .client
        .request(
            Request::get(&url)
                .header("authorization", &pat)
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("response");
    let kept = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(kept, bytes, "the same view");
    // …and one that changes it (a new grant of pat's) sends the new view.
    let granted = portcullis_demo::example_snapshot(|v| {
        v["revision"] = serde_json::json!(3);
        v["grants"]
            .as_array_mut()
            .expect("grants")
            .push(serde_json::json!({"principal": "user/pat", "role": "reader", "on": "org/acme"}));
    })
    .expect("builds");
    assert_eq!(gw.push(granted, false).await.status, StatusCode::OK);
    let resp = conditional(etag.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK, "pat's view changed");
    assert_ne!(resp.headers()["etag"], etag);
    assert_eq!(built().await, Some(2));
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let engine = policy_wasm::Engine::load(&bytes).expect("loads");
    assert_eq!(engine.revision(), 3);
}

/// Issue #13 (the gateway under a crowd): a burst of first requests for
/// browser views builds each view once — requests for the same principal
/// wait for the one build — on a bounded pool, and every caller gets the
/// same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_first_requests_builds_each_view_once() {
    let gw = gateway().await;
    let url = format!("{}/-/snapshot/me", gw.base);
    let fetch = |user: &'static str| {
        let (client, url) = (gw.client.clone(), url.clone());
        tokio::spawn(async move {
            let resp = client
                .request(
                    Request::get(&url)
                        .header("authorization", bearer(user))
                        .body(Full::new(Bytes::new()))
                        .expect("request"),
                )
                .await
                .expect("response");
            let status = resp.status();
            let etag = resp.headers().get("etag").cloned();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (user, status, etag, body)
        })
    };
    let users = ["pat", "carol", "olivia", "dave", "sam"];
    let crowd: Vec<_> = (0..40).map(|i| fetch(users[i % users.len()])).collect();
    let mut seen: std::collections::HashMap<&str, (Option<http::HeaderValue>, Bytes)> =
        Default::default();
    for task in crowd {
        let (user, status, etag, body) = task.await.expect("task");
        assert_eq!(status, StatusCode::OK, "{user}");
        let first = seen
            .entry(user)
            .or_insert_with(|| (etag.clone(), body.clone()));
        assert_eq!(
            (&first.0, &first.1),
            (&etag, &body),
            "{user}: another build"
        );
    }
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    let built = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_browser_views_built_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(built, Some(users.len() as u64), "{metrics}");
}

/// A principal's view pushed as the directory (an easy mistake with
/// `snapshot redact --for`) would deny everyone else: it is refused, and
/// the serving snapshot stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_is_not_accepted_as_the_directory() {
    let gw = gateway().await;
    let full = policy_wasm::Engine::load(&revision(2)).expect("loads");
    let view = full.view("user/pat").expect("cut");
    let a = gw.push(view, true).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["reason"], "view_not_directory", "{}", a.body);
    let (s, body) = gw.admin_get("/-/readyz").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("\"revision\":1"), "{body}");
    let a = gw.get(TABLE, &[("authorization", &bearer("carol"))]).await;
    assert_eq!(a.status, StatusCode::OK, "carol is still served");
}

/// Issue #13: an administrator's view runs to megabytes on a large
/// directory; views of 32 KiB and more are kept gzipped and sent so to
/// clients that accept gzip, plain to the others — the same view either
/// way, under the same tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_views_are_sent_gzipped_to_clients_that_accept_it() {
    use portcullis_snapshots::generate::{GenerateParams, generate};
    use std::io::Read;
    let dir = generate(GenerateParams {
        users: 3_000,
        groups: 60,
        orgs: 6,
        envs: 12,
        catalogs: 150,
        grants: 15_000,
        seed: 11,
    });
    let snapshot = portcullis_snapshots::encode(
        &portcullis_snapshots::source::compile(&dir).expect("valid"),
        1,
        0,
    )
    .expect("encodes");
    let full = policy_wasm::Engine::load(&snapshot).expect("loads");
    // A user who may log in and whose view is large: an administrator.
    let now = 1_790_000_000;
    let user = dir
        .users
        .iter()
        .map(|u| u.username.clone())
        .find(|u| {
            let p = format!("user/{u}");
            full.check(&policy_wasm::Request {
                principal: &p,
                action: "login",
                resource: &p,
                context: policy_wasm::Context { now, bulk: false },
            })
            .allowed
                && full.view(&p).expect("cut").len() >= 64 << 10
        })
        .expect("an administrator who may log in");
    let gw = gateway_with(Some(snapshot), |_, _| {}).await;
    let url = format!("{}/-/snapshot/me", gw.base);
    let get = |encoding: Option<&'static str>| {
        let (client, url, auth) = (gw.client.clone(), url.clone(), bearer(&user));
        async move {
            let mut req = Request::get(&url).header("authorization", auth);
            if let Some(e) = encoding {
                req = req.header("accept-encoding", e);
            }
            let resp = client
                .request(req.body(Full::new(Bytes::new())).expect("request"))
                .await
                .expect("response");
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (status, headers, body)
        }
    };
    let (status, headers, gz) = get(Some("br, gzip;q=0.8")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-encoding"], "gzip");
    assert!(
        headers["vary"]
            .to_str()
            .expect("ascii")
            .contains("Accept-Encoding")
    );
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unpacked)
        .expect("gzip");
    assert!(
        gz.len() * 2 < unpacked.len(),
        "{} of {}",
        gz.len(),
        unpacked.len()
    );
    for refused in [None, Some("gzip;q=0"), Some("identity")] {
        let (status, plain_headers, plain) = get(refused).await;
        assert_eq!(status, StatusCode::OK, "{refused:?}");
        assert!(
            plain_headers.get("content-encoding").is_none(),
            "{refused:?}"
        );
        assert_eq!(plain, unpacked, "{refused:?}: the same view");
        assert_eq!(plain_headers["etag"], headers["etag"], "{refused:?}");
    }
    let view = policy_wasm::Engine::load(&unpacked).expect("a valid view");
    assert!(view.is_view());
    assert!(
        view.people().len() > 1,
        "an administrator's view holds its users"
    );
}

/// The route `GET /events/{catalog}` (read on the catalog) to `upstream`.
fn events_route(upstream: &str) -> portcullis_gateway::config::RouteSpec {
    portcullis_gateway::config::RouteSpec {
        name: Some("events".into()),
        host: None,
        methods: vec!["GET".into()],
        path: "/events/{catalog}".into(),
        upstream: upstream.into(),
        action: "read".into(),
        resource: "catalog/{catalog}".into(),
        shadow: false,
        assertion: false,
    }
}

/// Issue #23, case 2 (other streams): a response still streaming when a
/// swap revokes its access — server-sent events here — is cut, over
/// HTTP/1.1 (the connection closed before the body's end) and HTTP/2 (the
/// stream reset): the client sees an incomplete body, not a complete one,
/// and nothing sent after the swap. A stream opened with an API key the
/// swap removes is cut too; another principal's stream goes on. Before,
/// such streams survived revocation silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_is_cut_when_its_access_is_revoked() {
    let events = portcullis_demo::event_stream_upstream(local())
        .await
        .expect("upstream");
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.upstreams.insert(
            "events".into(),
            portcullis_gateway::config::UpstreamConfig {
                url: format!("http://{events}"),
                ..c.upstreams["app"].clone()
            },
        );
        c.routes.insert(0, events_route("events"));
    })
    .await;
    let h2: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let (pat, dave) = (bearer("pat"), bearer("dave"));
    let mut bodies = Vec::new();
    for (client, header, value) in [
        (&gw.client, "authorization", pat.as_str()),
        (&h2, "authorization", pat.as_str()),
        (&gw.client, "x-api-key", DEMO_API_KEY),
        (&gw.client, "authorization", dave.as_str()),
    ] {
        let req = Request::get(format!("{}/events/sales", gw.base))
            .header(header, value)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = client.request(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK, "{header}");
        let mut body = resp.into_body();
        let first = body.frame().await.expect("a frame").expect("data");
        assert!(first.into_data().is_ok_and(|d| d.starts_with(b"data: ")));
        bodies.push(body);
    }
    let mut dave = bodies.pop().expect("dave");
    // pat deactivated, and sam's API key gone.
    let swap = example_snapshot(|v| {
        v["revision"] = json!(2);
        for u in v["users"].as_array_mut().unwrap() {
            if u["username"] == "pat" {
                u["status"] = json!("deactivated");
            }
        }
        v["api_keys"] = json!([]);
    })
    .expect("builds");
    let pushed = gw.push(swap, false).await;
    assert_eq!(pushed.status, StatusCode::OK, "{}", pushed.body);
    let swapped = Instant::now();
    for (n, mut body) in bodies.into_iter().enumerate() {
        let ended = loop {
            match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
                Err(_) => panic!("stream {n}: still open 10 s after the swap"),
                Ok(Some(Ok(_))) => {
                    // Frames sent before the swap may still be in flight.
                    assert!(
                        swapped.elapsed() < Duration::from_secs(2),
                        "stream {n} goes on"
                    );
                }
                Ok(Some(Err(e))) => break Ok(e),
                Ok(None) => break Err("ended as if complete"),
            }
        };
        assert!(ended.is_ok(), "stream {n}: {ended:?}");
    }
    for _ in 0..3 {
        let frame = tokio::time::timeout(Duration::from_secs(5), dave.frame())
            .await
            .expect("dave's stream goes on");
        assert!(matches!(frame, Some(Ok(_))));
    }
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_responses_revoked_total 3"),
        "{metrics}"
    );
}

/// Issue #23, case 6: a monitor that waits for a revision on
/// `GET /-/snapshot` and then reads the counters finds the swap counted —
/// the counters move before the revision is published, not after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swap_counters_have_counted_a_revision_before_it_is_served() {
    let gw = std::sync::Arc::new(gateway().await);
    let pusher = {
        let gw = std::sync::Arc::clone(&gw);
        tokio::spawn(async move {
            for n in 2..=12 {
                assert_eq!(gw.push(revision(n), false).await.status, StatusCode::OK);
            }
        })
    };
    let swaps = |metrics: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("portcullis_snapshot_swaps_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let mut seen = 0;
    while seen < 12 {
        let (_, info) = gw.admin_get("/-/snapshot").await;
        let revision = serde_json::from_str::<Value>(&info).expect("json")["revision"]
            .as_u64()
            .expect("a revision");
        let (_, metrics) = gw.admin_get("/-/metrics").await;
        // Revision 1 was the first swap; revision n the n-th.
        assert!(
            swaps(&metrics) >= revision,
            "revision {revision} served, counters: {metrics}"
        );
        seen = revision;
    }
    pusher.await.expect("pushes");
}
