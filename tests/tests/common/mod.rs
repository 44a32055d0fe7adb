//! The harness the gateway's end-to-end tests share: a gateway on
//! 127.0.0.1 with the demo configuration in front of the echo upstream, and
//! a client.
#![allow(dead_code)] // each test file uses a different part of it

pub mod ca;
pub mod directory;
pub mod files;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_demo::{
    DEMO_ADMIN_TOKEN, DemoOptions, demo_config, demo_token, echo_upstream, example_snapshot,
};
use portcullis_gateway::config::GatewayConfig;
use portcullis_gateway::server::{Running, start};
use serde_json::{Value, json};

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn revision(n: u64) -> Vec<u8> {
    example_snapshot(|v| v["revision"] = json!(n)).expect("example builds")
}

/// Revision 2 of the example: pat is deactivated.
pub fn pat_deactivated() -> Vec<u8> {
    portcullis_demo::example_snapshot(|v| {
        v["revision"] = json!(2);
        for u in v["users"].as_array_mut().unwrap() {
            if u["username"] == "pat" {
                u["status"] = json!("deactivated");
            }
        }
    })
    .unwrap()
}

pub struct Gw {
    pub running: Running,
    pub client: TestClient,
    pub base: String,
    pub admin: String,
    pub _dir: tempfile::TempDir,
}

/// The demo configuration on 127.0.0.1 (any free ports) in front of a new
/// echo upstream, its files in `dir`, no decision log.
pub async fn demo_gateway_config(dir: &std::path::Path) -> GatewayConfig {
    let upstream = echo_upstream(local()).await.expect("upstream");
    demo_config(&DemoOptions::for_tests(dir), upstream)
}

pub async fn gateway_with(
    initial: Option<Vec<u8>>,
    tweak: impl FnOnce(&mut GatewayConfig, &std::path::Path),
) -> Gw {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = demo_gateway_config(dir.path()).await;
    tweak(&mut config, dir.path());
    let running = start(config, initial).await.expect("gateway starts");
    Gw {
        base: format!("http://{}", running.proxy_addr),
        admin: format!("http://{}", running.admin_addr),
        running,
        client: Client::builder(TokioExecutor::new()).build_http(),
        _dir: dir,
    }
}

pub async fn gateway() -> Gw {
    gateway_with(Some(revision(1)), |_, _| {}).await
}

pub fn bearer(user: &str) -> String {
    format!("Bearer {}", demo_token(user).expect("token"))
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub async fn send(
    client: &TestClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

impl Gw {
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        send(
            &self.client,
            Method::GET,
            &format!("{}{path}", self.base),
            headers,
            vec![],
        )
        .await
    }

    pub async fn push(&self, bytes: Vec<u8>, force: bool) -> Answer {
        let q = if force { "?force=true" } else { "" };
        let token = format!("Bearer {DEMO_ADMIN_TOKEN}");
        send(
            &self.client,
            Method::PUT,
            &format!("{}/-/snapshot{q}", self.admin),
            &[("authorization", &token)],
            bytes,
        )
        .await
    }

    pub async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.admin).parse().expect("uri"))
            .await
            .expect("admin answers");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}
