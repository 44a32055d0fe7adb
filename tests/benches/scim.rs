//! SCIM provisioning on the large generated directory (100k users, 500k
//! grants): an identity provider creates N users (default 10,000) through
//! `/scim/v2/{org}/Users` over HTTP/1.1 on keep-alive connections, then
//! deactivates each with Okta's `PATCH active:false` — every request
//! authorized by the engine, committed durably (SQLite, fsync) with its
//! change-log entry, and published to a store as it would be for gateways.
//! Reports the rate and the latency of each kind (p50, p99).
//! `cargo bench -p portcullis-tests --bench scim` (`USERS=…`,
//! `CONNECTIONS=…`); figures in docs/BENCHMARKS.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_directory::config::{DirectoryConfig, PublishConfig};
use portcullis_directory::operation::{Operation, Setting};
use portcullis_directory::service::{Change, Provenance, Service};
use portcullis_directory::storage::Sqlite;
use portcullis_snapshots::generate::{GenerateParams, generate};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |p: f64| v[(((v.len() - 1) as f64) * p).round() as usize];
    format!(
        "p50 {}, p99 {}, max {}",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    )
}

fn write(
    service: &Service,
    actor: &str,
    op: Operation,
) -> portcullis_directory::service::Committed {
    service
        .write(
            actor,
            &Change {
                operations: vec![op],
                bulk: false,
            },
            &Provenance {
                via: "api",
                ..Provenance::default()
            },
        )
        .unwrap()
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn send(
    client: &Http,
    method: Method,
    url: &str,
    token: &str,
    body: serde_json::Value,
) -> (StatusCode, Duration) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
        .unwrap();
    let t = Instant::now();
    let r = client.request(req).await.unwrap();
    let status = r.status();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    let took = t.elapsed();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    (status, took)
}

fn main() {
    let users = env("USERS", 10_000);
    let connections = env("CONNECTIONS", 4);
    let tmp = tempfile::tempdir().unwrap();
    let database = tmp.path().join("d.db");
    let directory = generate(GenerateParams::default());
    let domain = portcullis_directory::requirement::domain(&directory);
    let org = domain.trim_start_matches("org/").to_string();
    println!(
        "directory: {} users, {} grants; provisioning {users} users into {org} over {connections} connections",
        directory.users.len(),
        directory.grants.len()
    );
    let token = {
        let service = Service::open(Box::new(Sqlite::open(&database).unwrap())).unwrap();
        service
            .import(
                &directory,
                "operator",
                false,
                &Provenance {
                    via: "import",
                    ..Provenance::default()
                },
            )
            .unwrap();
        // The owner makes a key and names it as the domain's SCIM token.
        let c = write(
            &service,
            "user/user0",
            Operation::CreateApiKey {
                id: "scim-bench".into(),
                name: None,
                expires_at: None,
            },
        );
        let secret = c.operations[0].secret.clone().unwrap();
        write(
            &service,
            "user/user0",
            Operation::SetSetting {
                name: Setting::Scim,
                value: json!({"organizations": {org.clone(): {"credentials": ["key/scim-bench"]}}})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
        );
        secret
    };
    drop(directory);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = DirectoryConfig {
            max_database_mb: None,
            cors_origins: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database,
            identity: Default::default(),
            max_body_bytes: 1 << 20,
            publish: PublishConfig {
                store_dir: Some(tmp.path().join("store")),
                ..PublishConfig::default()
            },
            tls: None,
        };
        let api = portcullis_directory::server::start(&config).unwrap();
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(portcullis_directory::server::serve(api, listener, stop));
        let base = Arc::new(format!("http://{addr}/scim/v2/{org}/Users"));
        let token = Arc::new(token);
        let client: Http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections)
            .build_http();
        let phase = |name: &'static str| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            async move {
                let t = Instant::now();
                let mut tasks = Vec::new();
                for c in 0..connections {
                    let (client, base, token) = (client.clone(), base.clone(), token.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut took = Vec::new();
                        for i in (c..users).step_by(connections) {
                            let user = format!("scim{i}@bench.example");
                            let (_, d) = if name.starts_with("create") {
                                send(
                                    &client,
                                    Method::POST,
                                    &base,
                                    &token,
                                    json!({
                                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                        "userName": user,
                                        "externalId": format!("00u{i}"),
                                        "name": {"givenName": "Bench", "familyName": format!("User {i}")},
                                        "emails": [{"primary": true, "value": user, "type": "work"}],
                                        "active": true
                                    }),
                                )
                                .await
                            } else {
                                send(
                                    &client,
                                    Method::PATCH,
                                    &format!("{base}/{user}"),
                                    &token,
                                    json!({
                                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                        "Operations": [{"op": "replace", "value": {"active": false}}]
                                    }),
                                )
                                .await
                            };
                            took.push(d);
                        }
                        took
                    }));
                }
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.unwrap());
                }
                let elapsed = t.elapsed();
                println!(
                    "{name}: {} requests in {:.1} s = {:.0}/s; per request {}",
                    all.len(),
                    elapsed.as_secs_f64(),
                    all.len() as f64 / elapsed.as_secs_f64(),
                    percentiles(all)
                );
            }
        };
        phase("create (POST /Users)").await;
        phase("deactivate (PATCH active:false)").await;
        // A probe as Okta makes before each create: an indexed lookup.
        let probe = format!("{}?filter=userName%20eq%20%22scim5%40bench.example%22", base);
        let mut took = Vec::new();
        for _ in 0..200 {
            let req = Request::builder()
                .uri(&probe)
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let t = Instant::now();
            let r = client.request(req).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.into_body().collect().await.unwrap();
            took.push(t.elapsed());
        }
        println!("probe (GET /Users?filter=userName eq …): {}", percentiles(took));
    });
}
