//! A deliberately hostile policy module inside the real gateway (issue #7):
//! it speaks the module ABI but, depending on the principal, loops forever,
//! grows its memory without end, or recurses without a base case. Every such
//! call must be cut off within its budget (epoch deadline, memory limit,
//! stack limit), the request denied with 503, the gateway kept serving
//! everyone else, and the instance rebuilt.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::time::{Duration, Instant};

use policy_wasm::{Context, Engine, Request};
use portcullis_demo::{DemoOptions, demo_config, demo_token, echo_upstream, example_snapshot};
use portcullis_gateway::server::{Running, start_with_module};
use portcullis_host::module::PolicyModule;

/// The answer the hostile module gives everyone else: the real engine's
/// allow decision for pat reading catalog/sales, postcard-encoded.
fn allow_decision() -> Vec<u8> {
    let snapshot = example_snapshot(|_| {}).expect("example");
    let engine = Engine::load(&snapshot).expect("loads");
    let d = engine.check(&Request {
        principal: "user/pat",
        action: "read",
        resource: "catalog/sales",
        context: Context {
            now: 1_790_000_000,
            bulk: false,
        },
    });
    assert!(d.allowed);
    let mut out = Vec::new();
    policy_wasm::wire::encode_into(&d, &mut out).expect("encodes");
    out
}

/// The module, in WebAssembly text. The input buffer is at 64 KiB; the
/// request's first byte is the length of the principal (`user/loop` is 9
/// bytes, `user/memory` 11, `user/recurse` 12).
fn hostile_module() -> Vec<u8> {
    let decision = allow_decision();
    let data: String = decision.iter().map(|b| format!("\\{b:02x}")).collect();
    let len = decision.len();
    let wat = format!(
        r#"(module
  (memory (export "memory") 2)
  (data (i32.const 1024) "{data}")
  (func $recurse (param i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func $hostile (param $len i32) (result i64)
    (local $who i32)
    (local.set $who (i32.load8_u (i32.const 65536)))
    ;; user/loop: spin forever
    (if (i32.eq (local.get $who) (i32.const 9))
      (then (loop $forever (br $forever))))
    ;; user/memory: grow until refused, then trap
    (if (i32.eq (local.get $who) (i32.const 11))
      (then
        (loop $more
          (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        unreachable))
    ;; user/recurse: no base case
    (if (i32.eq (local.get $who) (i32.const 12))
      (then (drop (call $recurse (i32.const 0)))))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const {len})))
  (func (export "pc_input") (param $len i32) (result i32)
    ;; Enough pages for 64 KiB + the input.
    (local $need i32)
    (local.set $need
      (i32.sub
        (i32.add (i32.const 2) (i32.shr_u (i32.add (local.get $len) (i32.const 65535)) (i32.const 16)))
        (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (drop (memory.grow (local.get $need)))))
    (i32.const 65536))
  (func (export "pc_release_input"))
  (func (export "pc_load") (param i32) (result i32) (i32.const 0))
  (func (export "pc_revision") (result i64) (i64.const 1))
  (func (export "pc_result") (result i32) (i32.const 1024))
  (func (export "pc_result_len") (result i32) (i32.const {len}))
  (func (export "pc_check") (param i32) (result i64) (call $hostile (local.get 0)))
  (func (export "pc_explain") (param i32) (result i64) (call $hostile (local.get 0)))
  (func (export "pc_check_batch") (param i32) (result i64) (i64.const -2))
  (func (export "pc_permissions") (param i32) (result i64) (i64.const -2))
  (func (export "pc_list") (param i32) (result i64) (i64.const -2)))"#
    );
    wat::parse_str(wat).expect("valid WebAssembly text")
}

async fn get(client: &reqwest_like::Client, url: &str, user: &str) -> (u16, Duration) {
    let started = Instant::now();
    let token = demo_token(user).expect("token");
    let status = client.get(url, &token).await;
    (status, started.elapsed())
}

/// A minimal HTTP client over hyper-util, enough for this test.
mod reqwest_like {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client as Inner;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    pub struct Client(Inner<HttpConnector, Empty<Bytes>>);

    impl Client {
        pub fn new() -> Self {
            Client(Inner::builder(TokioExecutor::new()).build_http())
        }

        pub async fn get(&self, url: &str, token: &str) -> u16 {
            let req = http::Request::get(url)
                .header("authorization", format!("Bearer {token}"))
                .body(Empty::new())
                .expect("request");
            let resp = self.0.request(req).await.expect("an answer");
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        }
    }
}

async fn wait_until_rebuilt(running: &Running, workers: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while running.healthy_instances() < workers {
        assert!(Instant::now() < deadline, "the instances were not rebuilt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_module_is_cut_off_denied_and_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = "127.0.0.1:0".parse().expect("addr");
    let upstream = echo_upstream(local).await.expect("upstream");
    let mut config = demo_config(&DemoOptions::for_tests(dir.path()), upstream);
    let workers = 2;
    config.server.workers = Some(workers);
    config.engine.decision_timeout_ms = 50;
    config.engine.max_memory_mb = 64;
    let module = PolicyModule::from_bytes(&hostile_module()).expect("compiles");
    let running = start_with_module(
        config,
        Some(example_snapshot(|_| {}).expect("example")),
        module,
    )
    .await
    .expect("the gateway starts with the hostile module");
    let url = format!(
        "http://{}/envs/prod/catalogs/sales/tables/orders",
        running.proxy_addr
    );
    let admin = format!("http://{}/-/metrics", running.admin_addr);
    let client = reqwest_like::Client::new();

    let (status, _) = get(&client, &url, "pat").await;
    assert_eq!(status, 200, "everyone else is served");

    for (n, user) in ["loop", "memory", "recurse"].into_iter().enumerate() {
        let (status, took) = get(&client, &url, user).await;
        eprintln!("{user}: {status} after {took:?}");
        assert_eq!(status, 503, "{user}: denied (fail closed)");
        // The budget is 50 ms of epoch ticks (5 ms each); memory and stack
        // limits trap at once. A second is the bound for a loaded CI box.
        assert!(took < Duration::from_secs(1), "{user}: took {took:?}");
        // Others keep being served while the instance is rebuilt.
        let (status, _) = get(&client, &url, "pat").await;
        assert_eq!(status, 200, "after {user}");
        wait_until_rebuilt(&running, workers).await;
        let metrics = client_text(&admin).await;
        assert!(
            metrics.contains(&format!("portcullis_engine_traps_total {}", n + 1)),
            "{user}: {metrics}"
        );
    }
    running.shutdown().await;
}

async fn client_text(url: &str) -> String {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let resp = client
        .get(url.parse().expect("uri"))
        .await
        .expect("metrics");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}
