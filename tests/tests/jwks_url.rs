//! Keys from the identity provider (issue #15, part 5): a local HTTPS
//! provider with a test CA, found by OIDC discovery (`oidc_issuer` →
//! `/.well-known/openid-configuration` → `jwks_uri`). Its keys are fetched
//! at start; when it rotates them mid-test, a token signed with the new key
//! is accepted after one refresh (triggered by the unknown `kid`), the old
//! key stops working; a flood of unknown `kid`s fetches at most once per
//! `jwks_min_refresh_s`; an unreachable provider keeps the last good keys
//! (counted); a gateway that cannot fetch them at start does not start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::ca::https_listener;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_demo::{DemoOptions, demo_config, echo_upstream, example_snapshot};
use portcullis_gateway::server::{Running, start};
use portcullis_snapshots::signature::{SigningKey, generate, private_pem};
use serde_json::{Value, json};

const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";

/// A provider over HTTPS: discovery at the well-known path, its key set at
/// `/keys` (what `keys` holds), 503 for everything while `down`.
struct Provider {
    ca: String,
    addr: SocketAddr,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    /// `/keys` is accepted and never answered (the connection stays open).
    hung: Arc<AtomicBool>,
}

fn jwk(kid: &str, key: &SigningKey) -> Value {
    json!({
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
        "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
    })
}

async fn provider() -> Provider {
    let (ca, acceptor, listener) = https_listener(&["localhost"]).await;
    let addr = listener.local_addr().unwrap();
    let p = Provider {
        ca,
        addr,
        keys: Arc::new(Mutex::new(json!({"keys": []}))),
        fetches: Arc::new(AtomicUsize::new(0)),
        down: Arc::new(AtomicBool::new(false)),
        hung: Arc::new(AtomicBool::new(false)),
    };
    let (keys, fetches, down, hung) = (
        Arc::clone(&p.keys),
        Arc::clone(&p.fetches),
        Arc::clone(&p.down),
        Arc::clone(&p.hung),
    );
    let issuer_url = format!("https://localhost:{}", addr.port());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, keys, fetches, down, hung, issuer_url) = (
                acceptor.clone(),
                Arc::clone(&keys),
                Arc::clone(&fetches),
                Arc::clone(&down),
                Arc::clone(&hung),
                issuer_url.clone(),
            );
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let hang = req.uri().path() == "/keys" && hung.load(Ordering::SeqCst);
                    let body = if down.load(Ordering::SeqCst) {
                        None
                    } else {
                        match req.uri().path() {
                            "/.well-known/openid-configuration" => Some(json!({
                                "issuer": issuer_url,
                                "jwks_uri": format!("{issuer_url}/keys"),
                            })),
                            "/keys" => {
                                fetches.fetch_add(1, Ordering::SeqCst);
                                Some(keys.lock().unwrap().clone())
                            }
                            _ => None,
                        }
                    };
                    let resp = match body {
                        Some(v) => http::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(v.to_string()))),
                        None => http::Response::builder()
                            .status(503)
                            .body(Full::new(Bytes::new())),
                    };
                    async move {
                        if hang {
                            std::future::pending::<()>().await;
                        }
                        resp.map_err(|e| e.to_string())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    p
}

fn token(issuer: &str, kid: &str, key: &SigningKey, user: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        &json!({"sub": user, "iss": issuer, "aud": "portcullis-demo", "iat": now, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_ed_pem(private_pem(key).unwrap().as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn gateway(p: &Provider, dir: &std::path::Path) -> Result<Running, String> {
    gateway_with(p, dir, |_| {}).await
}

async fn gateway_with(
    p: &Provider,
    dir: &std::path::Path,
    change: impl FnOnce(&mut portcullis_gateway::config::JwtConfig),
) -> Result<Running, String> {
    let upstream = echo_upstream("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut config = demo_config(&DemoOptions::for_tests(dir), upstream);
    let ca = dir.join("idp-ca.pem");
    std::fs::write(&ca, &p.ca).unwrap();
    let jwt = config.identity.jwt.as_mut().unwrap();
    jwt.issuers = Vec::new();
    jwt.oidc_issuer = Some(format!("https://localhost:{}", p.addr.port()));
    jwt.jwks_ca_file = Some(ca);
    jwt.jwks_min_refresh_s = 1;
    change(jwt);
    let snapshot = example_snapshot(|v| v["revision"] = json!(1)).unwrap();
    start(config, Some(snapshot))
        .await
        .map_err(|e| e.to_string())
}

async fn status(gw: &Running, bearer: &str) -> u16 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::get(format!("http://{}{TABLE}", gw.proxy_addr))
        .header("authorization", format!("Bearer {bearer}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    code
}

async fn metrics(gw: &Running) -> String {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::get(format!("http://{}/-/metrics", gw.admin_addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

/// Polls until `bearer` gets `want` (a refresh runs in the background).
async fn eventually(gw: &Running, bearer: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = status(gw, bearer).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {got}, not {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_provider_through_a_rotation() {
    let p = provider().await;
    let issuer = format!("https://localhost:{}", p.addr.port());
    let (old, new) = (generate().unwrap(), generate().unwrap());
    *p.keys.lock().unwrap() = json!({"keys": [jwk("old", &old)]});
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&p, dir.path()).await.expect("starts");
    assert_eq!(
        p.fetches.load(Ordering::SeqCst),
        1,
        "fetched once, at start"
    );
    let with_old = token(&issuer, "old", &old, "pat");
    assert_eq!(status(&gw, &with_old).await, 200);
    // Another issuer's token, signed with the same key: refused.
    assert_eq!(
        status(&gw, &token("https://evil.example", "old", &old, "pat")).await,
        401
    );

    // The provider rotates: the new key is fetched when a token names it.
    *p.keys.lock().unwrap() = json!({"keys": [jwk("new", &new)]});
    let with_new = token(&issuer, "new", &new, "pat");
    eventually(&gw, &with_new, 200).await;
    assert_eq!(
        status(&gw, &with_old).await,
        401,
        "the retired key no longer verifies"
    );

    // A flood of tokens with unknown kids: at most one fetch a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = p.fetches.load(Ordering::SeqCst);
    let started = Instant::now();
    for i in 0..200 {
        let forged = token(&issuer, &format!("forged-{i}"), &old, "pat");
        assert_eq!(status(&gw, &forged).await, 401);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seconds = started.elapsed().as_secs() + 2;
    let fetched = p.fetches.load(Ordering::SeqCst) - before;
    assert!(
        fetched as u64 <= seconds,
        "{fetched} fetches in about {seconds} s of forged kids"
    );

    // The provider goes down: a refresh fails, the last good keys serve.
    p.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = status(&gw, &token(&issuer, "unknown", &new, "pat")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(&gw)
        .await
        .contains("portcullis_jwks_fetches_total{result=\"failed\"}")
    {
        assert!(
            Instant::now() < deadline,
            "the failed refresh was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(&gw, &with_new).await, 200);
    assert!(metrics(&gw).await.contains("portcullis_jwks_keys 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keys_at_start_is_no_start() {
    let p = provider().await;
    p.down.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let err = gateway(&p, dir.path()).await.err().expect("refused");
    assert!(err.contains("identity provider keys"), "{err}");
    assert!(err.contains("503"), "{err}");
}

/// Issue #23, case 1: a key refresh that the provider accepts and never
/// answers is abandoned at `jwks_timeout_ms`, and the next refresh goes on:
/// the key the provider withdrew stops verifying and its new key is taken,
/// instead of rotation freezing until the process restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_refresh_does_not_freeze_rotation() {
    let p = provider().await;
    let issuer = format!("https://localhost:{}", p.addr.port());
    let (leaked, new) = (generate().unwrap(), generate().unwrap());
    *p.keys.lock().unwrap() = json!({"keys": [jwk("leaked", &leaked)]});
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with(&p, dir.path(), |jwt| jwt.jwks_timeout_ms = 700)
        .await
        .expect("starts");
    let with_leaked = token(&issuer, "leaked", &leaked, "pat");
    assert_eq!(status(&gw, &with_leaked).await, 200);

    // The next refresh hangs (an unknown kid wakes it).
    p.hung.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let with_new = token(&issuer, "new", &new, "pat");
    assert_eq!(status(&gw, &with_new).await, 401);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The provider withdraws the leaked key and answers again.
    *p.keys.lock().unwrap() = json!({"keys": [jwk("new", &new)]});
    p.hung.store(false, Ordering::SeqCst);
    eventually(&gw, &with_new, 200).await;
    assert_eq!(
        status(&gw, &with_leaked).await,
        401,
        "the withdrawn key no longer verifies"
    );
    let m = metrics(&gw).await;
    assert!(
        m.contains("portcullis_outbound_fetch_timeouts_total{fetch=\"jwks\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_jwks_fetches_total{result=\"failed\"} 1"),
        "{m}"
    );
}

/// An exchange opened with a token outlives neither its grant nor its
/// key: when the provider withdraws the key that signed the token (the
/// answer to a leaked signing key), a stream opened with it is cut at the
/// refresh that brings the new key set, while the token's own expiry
/// would not have ended it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_ends_when_its_tokens_key_is_withdrawn() {
    let p = provider().await;
    let issuer = format!("https://localhost:{}", p.addr.port());
    let (leaked, new) = (generate().unwrap(), generate().unwrap());
    *p.keys.lock().unwrap() = json!({"keys": [jwk("leaked", &leaked)]});
    let dir = tempfile::tempdir().unwrap();
    let events = portcullis_demo::event_stream_upstream("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let upstream = echo_upstream("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut config = demo_config(&DemoOptions::for_tests(dir.path()), upstream);
    let ca = dir.path().join("idp-ca.pem");
    std::fs::write(&ca, &p.ca).unwrap();
    let jwt = config.identity.jwt.as_mut().unwrap();
    jwt.issuers = Vec::new();
    jwt.oidc_issuer = Some(issuer.clone());
    jwt.jwks_ca_file = Some(ca);
    jwt.jwks_min_refresh_s = 1;
    let mut app = config.upstreams["app"].clone();
    app.url = format!("http://{events}");
    config.upstreams.insert("events".into(), app);
    config.routes.insert(
        0,
        portcullis_gateway::config::RouteSpec {
            name: Some("events".into()),
            host: None,
            methods: vec!["GET".into()],
            path: "/events/{catalog}".into(),
            upstream: "events".into(),
            action: "read".into(),
            resource: "catalog/{catalog}".into(),
            shadow: false,
            assertion: false,
        },
    );
    let snapshot = example_snapshot(|v| v["revision"] = json!(1)).unwrap();
    let gw = start(config, Some(snapshot)).await.unwrap();

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::get(format!("http://{}/events/sales", gw.proxy_addr))
        .header(
            "authorization",
            format!("Bearer {}", token(&issuer, "leaked", &leaked, "pat")),
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.into_body();
    assert!(stream.frame().await.unwrap().is_ok());

    // The provider withdraws the key; a token with the new one brings the
    // new set in.
    *p.keys.lock().unwrap() = json!({"keys": [jwk("new", &new)]});
    tokio::time::sleep(Duration::from_millis(1100)).await;
    eventually(&gw, &token(&issuer, "new", &new, "pat"), 200).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.frame()).await {
            Ok(Some(Ok(_))) => assert!(Instant::now() < deadline, "the stream goes on"),
            Ok(Some(Err(_))) => break,
            Ok(None) => panic!("the stream ended as if complete"),
            Err(_) => panic!("the stream is still open"),
        }
    }
    assert!(
        metrics(&gw)
            .await
            .contains("portcullis_responses_revoked_total 1")
    );
}
