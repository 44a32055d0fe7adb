//! WebSocket echo throughput through a proxy (issue #15, part 7; run by
//! `scripts/bench-gateway edge`).
//!
//! ```text
//! ws_bench echo ADDR                        a WebSocket echo upstream; prints its port
//! ws_bench load URL CONNS SECONDS [CA_FILE] [AUTHORIZATION]
//!     CONNS connections (ws:// or wss://, trusting CA_FILE), each sending
//!     a 64-byte binary message and waiting for its echo, for SECONDS;
//!     prints messages/s and the round trip's p50 and p99
//! ```
//!
//! tokio-tungstenite on both ends, so the client and the upstream cost
//! the same whichever proxy sits between them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{WebSocketStream, accept_async, client_async};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("echo") => runtime.block_on(echo(&args[1])),
        Some("load") => runtime.block_on(load(
            &args[1],
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            args.get(4).filter(|s| !s.is_empty()).cloned(),
            args.get(5).cloned(),
        )),
        _ => eprintln!(
            "usage: ws_bench echo ADDR | load URL CONNS SECONDS [CA_FILE] [AUTHORIZATION]"
        ),
    }
}

async fn echo(addr: &str) {
    let listener = TcpListener::bind(addr).await.unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(ws) = accept_async(stream).await else {
                return;
            };
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(m)) = rx.next().await {
                if m.is_binary() || m.is_text() {
                    if tx.send(m).await.is_err() {
                        return;
                    }
                } else if m.is_close() {
                    return;
                }
            }
        });
    }
}

async fn load(url: &str, conns: usize, seconds: u64, ca: Option<String>, auth: Option<String>) {
    let tls = url.starts_with("wss://");
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    let connector = ca.map(|path| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&path).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    });
    let start = Arc::new(tokio::sync::Barrier::new(conns + 1));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut request = url.into_client_request().unwrap();
        if let Some(a) = &auth {
            request
                .headers_mut()
                .insert("authorization", a.parse().unwrap());
        }
        let tcp = TcpStream::connect(&authority).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let start = Arc::clone(&start);
        if tls {
            let host = authority.rsplit_once(':').map_or(&*authority, |(h, _)| h);
            let name = ServerName::try_from(host.to_string()).unwrap();
            let stream = connector
                .as_ref()
                .expect("wss:// needs a CA file")
                .connect(name, tcp)
                .await
                .unwrap();
            let (ws, _) = client_async(request, stream).await.unwrap();
            tasks.push(tokio::spawn(session(ws, start, seconds)));
        } else {
            let (ws, _) = client_async(request, tcp).await.unwrap();
            tasks.push(tokio::spawn(session(ws, start, seconds)));
        }
    }
    start.wait().await;
    let mut rtts = Vec::new();
    for t in tasks {
        rtts.extend(t.await.unwrap());
    }
    rtts.sort_unstable();
    let q = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
    println!(
        "messages/s {:.0} p50_us {} p99_us {}",
        rtts.len() as f64 / seconds as f64,
        q(0.5),
        q(0.99)
    );
}

/// Echo round trips until `seconds` have passed; their durations in µs.
async fn session<S>(
    mut ws: WebSocketStream<S>,
    start: Arc<tokio::sync::Barrier>,
    seconds: u64,
) -> Vec<u32>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let payload = vec![7u8; 64];
    start.wait().await;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut rtts = Vec::new();
    while Instant::now() < end {
        let sent = Instant::now();
        ws.send(Message::binary(payload.clone())).await.unwrap();
        match ws.next().await {
            Some(Ok(m)) if m.len() == payload.len() => {}
            other => panic!("no echo: {other:?}"),
        }
        rtts.push(sent.elapsed().as_micros() as u32);
    }
    let _ = ws.close(None).await;
    rtts
}
