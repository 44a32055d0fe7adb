//! Slow and idle clients against the real `portcullis demo` process (its
//! own process, so that its 10,000 sockets and ours count against separate
//! descriptor limits): a slowloris head is cut off by the header timeout,
//! 10,000 idle connections are held and then closed, and a real request is
//! served meanwhile (issue #7).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The demo's header read timeout (`--header-read-timeout-ms`; 10 s by
/// default, 2 s here so the test waits little).
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

#[test]
fn slowloris_and_ten_thousand_idle_connections() {
    // The demo in a shell that lifts its descriptor limit to the maximum.
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n \"$(ulimit -Hn)\" && exec {} demo --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --header-read-timeout-ms {}",
            env!("CARGO_BIN_EXE_portcullis"),
            HEADER_TIMEOUT.as_millis()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let mut demo = Server(child);
    let stdout = demo.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut addr, mut token) = (None::<SocketAddr>, None::<String>);
    while addr.is_none() || token.is_none() {
        let line = lines
            .next()
            .expect("the demo prints its address")
            .expect("utf-8");
        if let Some(rest) = line.strip_prefix("Portcullis demo: gateway on http://") {
            addr = rest.split(',').next().and_then(|a| a.parse().ok());
        }
        if let Some(t) = line.strip_prefix("export PAT=") {
            token = Some(t.to_string());
        }
    }
    let (addr, token) = (addr.expect("address"), token.expect("token"));
    // Keep draining the demo's output (its decision log) so it never blocks.
    std::thread::spawn(move || for _ in lines {});
    let request = format!(
        "GET /envs/prod/catalogs/sales/tables/orders HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let served = || {
        let (status, text) = one_request(addr, request.as_bytes());
        assert_eq!(status, 200, "{text}");
    };
    served();

    // Slowloris: one byte of the head every half second.
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.set_read_timeout(Some(HEADER_TIMEOUT * 3))
        .expect("timeout");
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        for b in b"GET /envs/prod HTTP/1.1\r\nHost: a\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if slow.write_all(&[*b]).is_err() || started.elapsed() > HEADER_TIMEOUT * 3 {
                break;
            }
            std::thread::sleep(HEADER_TIMEOUT / 20);
        }
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        started.elapsed()
    });

    // 10,000 idle connections, opened while the slow client trickles.
    let idle: Vec<TcpStream> = (0..10_000)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i} refused: {e}")))
        .collect();
    let opened = Instant::now();
    served();

    let cut_after = trickle.join().expect("slow client");
    assert!(
        cut_after < HEADER_TIMEOUT * 2,
        "the slowloris head was not cut off ({cut_after:?})"
    );

    // The idle ones are closed by the same timeout: each is read until the
    // gateway closes it, within twice the timeout of its opening.
    let deadline = opened + HEADER_TIMEOUT * 2 + Duration::from_secs(1);
    let open = idle
        .into_iter()
        .filter(|c| {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = c.set_read_timeout(Some(left.max(Duration::from_millis(5))));
            let mut b = [0u8; 1];
            matches!(
                (&*c).read(&mut b),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
            )
        })
        .count();
    assert_eq!(open, 0, "idle connections outlived the header timeout");
    served();
}

fn one_request(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}
