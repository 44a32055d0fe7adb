//! Change to enforced, on the large generated directory: from the moment
//! the directory service answers a write to the moment a gateway serves
//! the revision that holds it (decisions are pure functions of the
//! revision: serving it is deciding by it). Two gateways side by side in
//! one run: one the service pushes to, one polling the store the service
//! publishes into (every 100 ms). Urgent writes (deactivations) and
//! ordinary ones (reactivations, coalesced for 250 ms) alternate.
//! A timing harness (percentiles need every sample):
//! `cargo bench -p portcullis-tests --bench enforced`; figures in
//! docs/BENCHMARKS.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

#[path = "../tests/common/files.rs"]
#[allow(
    dead_code,
    reason = "the tests' store server; the bench counts no bytes"
)]
mod files;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis_demo::{DEMO_ADMIN_TOKEN, DemoOptions, demo_config, echo_upstream};
use portcullis_directory::operation::Operation;
use portcullis_directory::publish::{Destinations, Publisher};
use portcullis_directory::push::PushTarget;
use portcullis_directory::service::{Change, Provenance, Service};
use portcullis_directory::storage::Sqlite;
use portcullis_snapshots::generate::{GenerateParams, generate};

pub fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |p: f64| v[(((v.len() - 1) as f64) * p).round() as usize];
    format!(
        "p50 {}, p99 {} (n = {})",
        ms(at(0.5)),
        ms(at(0.99)),
        v.len()
    )
}

/// One operation, written as the directory's owner (`user0`).
fn as_owner(service: &Service, op: Operation) -> portcullis_directory::service::Committed {
    service
        .write(
            "user/user0",
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

fn main() {
    let writes: usize = std::env::var("WRITES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let directory = generate(GenerateParams::default());
    let ordinary = portcullis_snapshots::generate::ordinary_users(&directory);
    let service = std::sync::Arc::new(
        Service::open(Box::new(Sqlite::open(&tmp.path().join("d.db")).unwrap())).unwrap(),
    );
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
    drop(directory);
    // The snapshot the import made (a compiled revision: its body is whole).
    let initial = {
        let head = service.head().unwrap();
        let portcullis_directory::service::Step::Full(body) = &head.step else {
            panic!("an import compiles its revision");
        };
        portcullis_snapshots::encode(body, head.revision, head.created_at).unwrap()
    };
    let store = tmp.path().join("store");
    std::fs::create_dir_all(&store).unwrap();

    let (pushed, polled) = rt.block_on(async {
        let upstream = echo_upstream(local()).await.unwrap();
        let files = files::FileServer::start(store.clone()).await;
        let start = |dir: std::path::PathBuf, poll: Option<String>| {
            let initial = initial.clone();
            async move {
                std::fs::create_dir_all(&dir).unwrap();
                let mut c = demo_config(&DemoOptions::for_tests(&dir), upstream);
                if let Some(url) = poll {
                    c.snapshot.poll_url = Some(url);
                    c.snapshot.poll_interval_ms = 100;
                }
                portcullis_gateway::server::start(c, Some(initial))
                    .await
                    .unwrap()
            }
        };
        let pushed = start(tmp.path().join("gw-pushed"), None).await;
        let polled = start(
            tmp.path().join("gw-polled"),
            Some(format!("http://{}/latest.json", files.origin)),
        )
        .await;
        std::mem::forget(files);
        (pushed, polled)
    });
    let publisher = Publisher::start(Destinations {
        store_dir: Some(store),
        gateways: vec![PushTarget {
            admin_url: format!("http://{}", pushed.admin_addr),
            token: DEMO_ADMIN_TOKEN.into(),
        }],
        key: None,
        window: Duration::from_millis(250),
        keep: 10,
        full_every: 10,
        push_timeout: Duration::from_secs(30),
        gate: None,
    });
    service.listen(publisher).unwrap();

    // From now until each gateway serves `revision` (or later).
    let enforced = |revision: u64| {
        let answered = Instant::now();
        let (mut p, mut q) = (None, None);
        loop {
            if p.is_none() && pushed.revision().is_some_and(|r| r >= revision) {
                p = Some(answered.elapsed());
            }
            if q.is_none() && polled.revision().is_some_and(|r| r >= revision) {
                q = Some(answered.elapsed());
            }
            if let (Some(p), Some(q)) = (p, q) {
                return (p, q);
            }
            assert!(
                answered.elapsed() < Duration::from_secs(120),
                "revision {revision} never arrived"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let mut urgent = (Vec::new(), Vec::new());
    let mut plain = (Vec::new(), Vec::new());
    for i in 0..writes {
        let username = ordinary[i / 2].clone();
        let is_urgent = i % 2 == 0;
        let op = if is_urgent {
            Operation::DeactivateUser { username }
        } else {
            Operation::ReactivateUser { username }
        };
        let c = as_owner(&service, op);
        let (p, q) = enforced(c.revision);
        let into = if is_urgent { &mut urgent } else { &mut plain };
        into.0.push(p);
        into.1.push(q);
    }
    // A new user is a new string: gateways load the revision whole, so the
    // publisher sends the whole snapshot (no delta computed).
    let mut invited = (Vec::new(), Vec::new());
    for i in 0..3 {
        let user = serde_json::from_value(serde_json::json!({
            "username": format!("newcomer{i}"),
            "email": format!("newcomer{i}@example.com"),
            "organization": "domain",
        }))
        .unwrap();
        let c = service
            .write(
                "user/user0",
                &Change {
                    operations: vec![Operation::InviteUser { user }],
                    bulk: false,
                },
                &Provenance {
                    via: "api",
                    ..Provenance::default()
                },
            )
            .unwrap();
        let (p, q) = enforced(c.revision);
        invited.0.push(p);
        invited.1.push(q);
    }
    // A SCIM deactivation (Okta's PATCH active:false), as an identity
    // provider sends it: from the SCIM answer to each gateway serving it.
    let key = as_owner(
        &service,
        Operation::CreateApiKey {
            id: "scim-enforced".into(),
            name: None,
            expires_at: None,
        },
    );
    let secret = key.operations[0].secret.clone().unwrap();
    let principal = format!("apikey/{}", {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(secret.as_bytes()))
    });
    as_owner(
        &service,
        Operation::SetSetting {
            name: portcullis_directory::operation::Setting::Scim,
            value: serde_json::json!({"organizations": {"domain": {"credentials": ["key/scim-enforced"]}}})
                .as_object()
                .unwrap()
                .clone(),
        },
    );
    let provider = portcullis_directory::scim::Provider::new(service.clone()).unwrap();
    let in_domain: Vec<String> = {
        let head = service.head().unwrap();
        ordinary
            .iter()
            .skip(writes)
            .filter(|u| {
                head.engine
                    .user_row(u)
                    .and_then(|r| head.directory.users.get(r as usize))
                    .is_some_and(|x| x.organization == "domain")
            })
            .take(writes / 2)
            .cloned()
            .collect()
    };
    let mut scim = (Vec::new(), Vec::new());
    for u in &in_domain {
        let body = serde_json::to_vec(&serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": false}}]
        }))
        .unwrap();
        let a = provider.handle(&portcullis_directory::scim::ScimRequest {
            method: "PATCH",
            org: "domain",
            rest: vec!["Users".into(), u.clone()],
            query: &[],
            body: &body,
            if_match: None,
            if_none_match: None,
            base: "http://directory/scim/v2/domain".into(),
            principal: Ok(principal.clone()),
            request_id: None,
        });
        assert_eq!(a.status, 200, "{:?}", a.body);
        let (p, q) = enforced(a.revision.unwrap());
        scim.0.push(p);
        scim.1.push(q);
    }
    println!("change to enforced on the large directory ({writes} writes):");
    println!("  urgent (deactivation), pushed: {}", percentiles(urgent.0));
    println!(
        "  urgent (deactivation), polled every 100 ms: {}",
        percentiles(urgent.1)
    );
    println!(
        "  ordinary (reactivation, coalesced 250 ms), pushed: {}",
        percentiles(plain.0)
    );
    println!(
        "  ordinary (reactivation, coalesced 250 ms), polled every 100 ms: {}",
        percentiles(plain.1)
    );
    println!(
        "  a new user (a new string: no delta in place), pushed: {}",
        percentiles(invited.0)
    );
    println!(
        "  a new user, polled every 100 ms: {}",
        percentiles(invited.1)
    );
    println!(
        "  a SCIM deactivation (PATCH active:false), pushed: {}",
        percentiles(scim.0)
    );
    println!(
        "  a SCIM deactivation, polled every 100 ms: {}",
        percentiles(scim.1)
    );
    drop((pushed, polled));
}
