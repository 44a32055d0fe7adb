//! What the gateway's process-level tests share: running the `portcullis`
//! binary, free ports, one-shot HTTP requests, building snapshots.
#![allow(dead_code)] // each test file uses a different part of it

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

pub fn portcullis(args: &[&str]) -> Output {
    bin().args(args).output().expect("run portcullis")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-serve-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// One HTTP/1.1 request over a fresh connection; (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    http_with_body(addr, method, path, headers, "")
}

/// [`http`] with a body.
pub fn http_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

pub fn build(example_edit: &str, out: &Path, revision: u64) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots/examples/acme.json");
    let o = portcullis(&[
        "snapshot",
        "build",
        src.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
        "--revision",
        &revision.to_string(),
    ]);
    assert!(o.status.success(), "{example_edit}: {}", text(&o.stderr));
}

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `portcullis serve --config <config>`, stopped on drop.
pub fn serve(config: &Path, stderr: Stdio) -> Server {
    let child = bin()
        .args(["serve", "--config", config.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start portcullis serve");
    Server(child)
}

/// The Debian package `package`'s binary at `path`, installed when missing
/// (CI runs as root).
pub fn debian_binary(path: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if !path.exists() {
        let installed = Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        assert!(
            path.exists(),
            "{package} is missing and could not be installed ({installed:?}); run `apt-get install -y {package}`"
        );
    }
    path
}

/// An empty work directory for one test.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = workdir(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// The demo gateway with its decision endpoint on a listener of its own
/// (as the proxies in front of it are configured), in front of a new echo
/// application: the gateway, the application's address, and the runtime
/// they run on.
pub fn decision_gateway(
    dir: &Path,
) -> (
    portcullis_gateway::server::Running,
    SocketAddr,
    tokio::runtime::Runtime,
) {
    use portcullis_demo::{DemoOptions, demo_config, echo_upstream, example_snapshot};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let local: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let (running, app) = runtime.block_on(async {
        let app = echo_upstream(local).await.expect("upstream");
        let mut config = demo_config(&DemoOptions::for_tests(dir), app);
        config.decision.listen = Some(local);
        config.decision.path_prefix = None;
        let snapshot = example_snapshot(|_| {}).expect("example");
        let running = portcullis_gateway::server::start(config, Some(snapshot))
            .await
            .expect("gateway starts");
        (running, app)
    });
    (running, app, runtime)
}
