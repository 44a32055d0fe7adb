//! An HTTPS snapshot store (issue #14): a local server whose certificate is
//! issued by a test CA. The gateway polls it with the CA configured
//! (`snapshot.poll_ca_file`) and the store's credential header
//! (`snapshot.poll_headers`); without the CA — the system's roots do not
//! know it — or without the header, nothing is loaded.
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
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis_demo::{DemoOptions, demo_config, echo_upstream, example_snapshot};
use portcullis_gateway::server::{Running, start};
use serde_json::json;

const KEY: &str = "store-key-4711";

/// A test CA (PEM) and a TLS server for 127.0.0.1 and localhost signed by
/// it, serving a snapshot at `/directory.snap` to requests that carry
/// `x-store-key`; counts the requests it refused.
async fn https_store() -> (String, SocketAddr, Arc<AtomicUsize>) {
    let (ca, acceptor, listener) = https_listener(&["localhost", "127.0.0.1"]).await;
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let snapshot = example_snapshot(|v| v["revision"] = json!(7)).unwrap();
    let counter = Arc::clone(&refused);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, snapshot, counter) =
                (acceptor.clone(), snapshot.clone(), Arc::clone(&counter));
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    counter.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let allowed = req.headers().get("x-store-key").is_some_and(|v| v == KEY);
                    if !allowed {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    let resp = if allowed && req.uri().path() == "/directory.snap" {
                        http::Response::builder().body(Full::new(Bytes::from(snapshot.clone())))
                    } else {
                        http::Response::builder()
                            .status(403)
                            .body(Full::new(Bytes::new()))
                    };
                    async move { resp.map_err(|e| e.to_string()) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (ca, addr, refused)
}

async fn gateway(
    url: String,
    ca: Option<std::path::PathBuf>,
    header: bool,
) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = echo_upstream("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut config = demo_config(&DemoOptions::for_tests(dir.path()), upstream);
    config.snapshot.poll_url = Some(url);
    config.snapshot.poll_interval_ms = 50;
    config.snapshot.poll_ca_file = ca;
    if header {
        config
            .snapshot
            .poll_headers
            .insert("x-store-key".into(), KEY.into());
    }
    (start(config, None).await.expect("gateway starts"), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_store_is_polled_with_its_ca_and_headers() {
    let (ca, addr, refused) = https_store().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("store-ca.pem");
    std::fs::write(&ca_file, ca).unwrap();

    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/directory.snap", addr.port());
        let (gw, _dir) = gateway(url, Some(ca_file.clone()), true).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while gw.revision() != Some(7) {
            assert!(
                Instant::now() < deadline,
                "{host}: never loaded from the HTTPS store"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // The system's roots do not know the test CA: the handshake fails and
    // nothing is loaded.
    let before = refused.load(Ordering::Relaxed);
    let url = format!("https://127.0.0.1:{}/directory.snap", addr.port());
    let (gw, _dir) = gateway(url.clone(), None, true).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while refused.load(Ordering::Relaxed) < before + 2 {
        assert!(Instant::now() < deadline, "no handshake refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.revision(), None);

    // The right CA without the store's credential: 403, nothing loaded.
    let before = refused.load(Ordering::Relaxed);
    let (gw, _dir) = gateway(url, Some(ca_file.clone()), false).await;
    while refused.load(Ordering::Relaxed) < before + 2 {
        assert!(Instant::now() < deadline, "no request refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.revision(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_ca_file_or_scheme_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let upstream = echo_upstream("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for (url, ca, want) in [
        (
            "https://127.0.0.1:1/latest.json",
            Some(not_pem.clone()),
            "no certificate",
        ),
        (
            "https://127.0.0.1:1/latest.json",
            Some(dir.path().join("missing.pem")),
            "missing.pem",
        ),
        (
            "http://127.0.0.1:1/latest.json",
            Some(not_pem.clone()),
            "https://",
        ),
        ("ftp://127.0.0.1/latest.json", None, "not supported"),
    ] {
        let mut config = demo_config(&DemoOptions::for_tests(dir.path()), upstream);
        config.snapshot.poll_url = Some(url.into());
        config.snapshot.poll_ca_file = ca;
        let err = match start(config, None).await {
            Ok(_) => panic!("{url}: started"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{url}: {err}");
    }
}
