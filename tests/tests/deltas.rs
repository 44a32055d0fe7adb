//! Deltas through the real gateway (issue #14): `PATCH /-/snapshot`
//! applies a delta to exactly the revision serving, and anything else — a
//! delta for another base, corrupted or truncated, signed by an untrusted
//! key, pushed with the wrong method — is refused while the old revision
//! keeps serving. A worker that traps after a delta is rebuilt on the
//! delta's revision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use portcullis_demo::{DEMO_ADMIN_TOKEN, example_snapshot};
use portcullis_snapshots::delta::{compute, encode_delta};
use portcullis_snapshots::signature::{generate, public_pem, sign, sign_delta};
use portcullis_snapshots::{Header, decode};
use serde_json::{Value, json};

const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";

/// The example at `n`, with pat disabled when `pat_disabled`.
fn example(n: u64, pat_disabled: bool) -> Vec<u8> {
    example_snapshot(|v| {
        v["revision"] = json!(n);
        if pat_disabled && let Some(users) = v["users"].as_array_mut() {
            for u in users.iter_mut().filter(|u| u["username"] == "pat") {
                u["status"] = json!("disabled");
            }
        }
    })
    .expect("example builds")
}

fn delta(from: &[u8], to: &[u8]) -> Vec<u8> {
    let (a, b) = (decode(from).unwrap(), decode(to).unwrap());
    let d = compute(&a.body, &b.body).unwrap();
    encode_delta(&a.header, &b.header, &d).unwrap()
}

async fn patch(gw: &Gw, bytes: Vec<u8>) -> Answer {
    let token = format!("Bearer {DEMO_ADMIN_TOKEN}");
    send(
        &gw.client,
        Method::PATCH,
        &format!("{}/-/snapshot", gw.admin),
        &[("authorization", &token)],
        bytes,
    )
    .await
}

async fn readyz(gw: &Gw) -> Value {
    serde_json::from_str(&gw.admin_get("/-/readyz").await.1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_is_applied_to_the_revision_serving() {
    let gw = gateway().await;
    let pat = bearer("pat");
    assert_eq!(
        gw.get(TABLE, &[("authorization", &pat)]).await.status,
        StatusCode::OK
    );
    assert_eq!(readyz(&gw).await["delta"], false);

    let (one, two) = (example(1, false), example(2, true));
    let d = delta(&one, &two);
    assert!(d.len() < 300, "pat disabled: {} bytes", d.len());
    let a = patch(&gw, d).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["revision"], 2);
    assert_eq!(a.body["previous"], 1);
    assert_eq!(a.body["delta"], true);
    assert_eq!(
        a.body["in_place"], true,
        "a user's status is edited in place"
    );
    assert_eq!(
        a.body["sha256"],
        hex::encode(Header::parse(&two).unwrap().body_sha256),
        "the delta's result is exactly the full build's body"
    );
    let denied = gw.get(TABLE, &[("authorization", &pat)]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body["revision"], 2);
    let r = readyz(&gw).await;
    assert_eq!(
        (r["revision"].clone(), r["delta"].clone()),
        (json!(2), json!(true))
    );
    let (_, info) = gw.admin_get("/-/snapshot").await;
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["delta"], true);
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_snapshot_swaps_total{source=\"push\",kind=\"delta\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_snapshot_deltas_in_place_total 1"),
        "{metrics}"
    );

    // A whole snapshot after it is a full install again.
    let a = gw.push(example(3, false), false).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(readyz(&gw).await["delta"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_for_another_revision_is_refused_and_the_old_one_keeps_serving() {
    let gw = gateway().await;
    let pat = bearer("pat");
    // Made from revision 2, which is not serving.
    let d = delta(&example(2, false), &example(3, true));
    let a = patch(&gw, d).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert_eq!(a.body["reason"], "wrong_base");
    assert_eq!(a.body["revision"], 1);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("full snapshot"),
        "{}",
        a.body
    );
    // Same revision number, other contents: not the base either.
    let d = delta(&example(1, true), &example(2, false));
    assert_eq!(patch(&gw, d).await.body["reason"], "wrong_base");
    assert_eq!(
        gw.get(TABLE, &[("authorization", &pat)]).await.status,
        StatusCode::OK
    );
    assert_eq!(gw.running.revision(), Some(1));

    // Without any snapshot, a delta has nothing to apply to.
    let empty = gateway_with(None, |_, _| {}).await;
    let a = patch(&empty, delta(&example(1, false), &example(2, true))).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert_eq!(a.body["reason"], "wrong_base");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_truncated_and_misdirected_deltas_are_refused() {
    let gw = gateway().await;
    let d = delta(&example(1, false), &example(2, true));
    let mut corrupted = d.clone();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0xff;
    let a = patch(&gw, corrupted).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["reason"], "bad_delta");
    assert!(
        a.body["message"].as_str().unwrap().contains("corrupted"),
        "{}",
        a.body
    );

    let a = patch(&gw, d[..d.len() - 3].to_vec()).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["reason"], "bad_delta");

    // PUT is for snapshots, PATCH for deltas.
    let a = gw.push(d.clone(), false).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["reason"], "wrong_method");
    let a = patch(&gw, example(2, true)).await;
    assert_eq!(a.body["reason"], "wrong_method");

    // A delta to an older revision is a rollback: refused unless forced.
    let back = delta(&example(1, false), &example(0, true));
    let a = patch(&gw, back).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert_eq!(a.body["reason"], "stale_revision");

    assert_eq!(gw.running.revision(), Some(1));
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_snapshot_swap_failures_total{source=\"push\"} 5"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delta_from_an_untrusted_key_is_refused() {
    let key = generate().expect("key");
    let one = sign(&example(1, false), &key).unwrap();
    let gw = gateway_with(Some(one.clone()), |c, dir| {
        let path = dir.join("trusted.pub");
        std::fs::write(&path, public_pem(&key.verifying_key()).unwrap()).unwrap();
        c.snapshot.trusted_keys = vec![path];
        c.snapshot.require_signature = true;
    })
    .await;
    let d = delta(&one, &example(2, true));

    let a = patch(&gw, d.clone()).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["reason"], "unsigned");

    let stranger = generate().expect("key");
    let a = patch(&gw, sign_delta(&d, &stranger).unwrap()).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["reason"], "bad_signature");
    assert!(a.body["message"].as_str().unwrap().contains("not trusted"));

    // A snapshot's signature does not pass for a delta's: re-flagged as
    // signed with a snapshot signature trailer, it does not verify.
    let mut forged = d.clone();
    forged[10] |= 1;
    forged.extend_from_slice(&one[one.len() - 96..]);
    let a = patch(&gw, forged).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["reason"], "bad_signature");
    assert_eq!(gw.running.revision(), Some(1));

    let a = patch(&gw, sign_delta(&d, &key).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(gw.running.revision(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_traps_after_a_delta_is_rebuilt_on_the_deltas_revision() {
    let gw = gateway_with(Some(example(1, false)), |c, _| c.server.workers = Some(1)).await;
    let a = patch(&gw, delta(&example(1, false), &example(2, true))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let pat = bearer("pat");
    gw.running.interrupt_next_decisions();
    let a = gw.get(TABLE, &[("authorization", &pat)]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    let a = loop {
        let a = gw.get(TABLE, &[("authorization", &pat)]).await;
        if a.status != StatusCode::SERVICE_UNAVAILABLE {
            break a;
        }
        assert!(Instant::now() < deadline, "the instance was not rebuilt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Rebuilt from the delta's result: pat is still disabled.
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(a.body["revision"], 2);
}

/// The example at `n` with `change` made to its source.
fn example_with(n: u64, change: impl Fn(&mut Value)) -> Vec<u8> {
    example_snapshot(|v| {
        v["revision"] = json!(n);
        change(v);
    })
    .expect("example builds")
}

fn grant(p: &str, role: &str, on: &str) -> Value {
    json!({"principal": p, "role": role, "on": on})
}

/// Every user and service account × every catalog, org and user × a few
/// actions, through `POST /-/authz/v1/check`, against a native engine
/// that loaded `target`.
async fn decides_like(gw: &Gw, target: &[u8]) {
    let engine = policy_wasm::Engine::load(target).unwrap();
    let dir: Value = serde_json::from_str(portcullis_demo::EXAMPLE_DIRECTORY).unwrap();
    let names = |key: &str, field: &str, prefix: &str| -> Vec<String> {
        dir[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x[field].as_str().map(|s| format!("{prefix}/{s}")))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut principals = names("users", "username", "user");
    principals.extend(names("service_accounts", "id", "service"));
    let mut resources = names("catalogs", "id", "catalog");
    resources.extend(names("organizations", "id", "org"));
    resources.extend(names("teams", "id", "team"));
    resources.extend(names("users", "username", "user").into_iter().take(6));
    assert!(principals.len() > 20 && resources.len() > 10);
    let mut batch = Vec::new();
    for p in &principals {
        for r in &resources {
            for action in [
                "read",
                "write",
                "catalog:delete",
                "user:update",
                "team:add_member",
            ] {
                batch.push(json!({"principal": p, "action": action, "resource": r}));
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for checks in batch.chunks(1000) {
        let a = send(
            &gw.client,
            Method::POST,
            &format!("{}/-/authz/v1/check/batch", gw.base),
            &[],
            json!({ "checks": checks }).to_string().into_bytes(),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let answers = a.body["results"].as_array().expect("results");
        assert_eq!(answers.len(), checks.len());
        for (q, got) in checks.iter().zip(answers) {
            let req = policy_wasm::Request {
                principal: q["principal"].as_str().unwrap(),
                action: q["action"].as_str().unwrap(),
                resource: q["resource"].as_str().unwrap(),
                context: policy_wasm::Context {
                    now,
                    ..Default::default()
                },
            };
            let want = engine.check(&req);
            assert_eq!(got["allowed"], want.allowed, "{q} {got}");
            assert_eq!(got["reason"], want.reason.code(), "{q} {got}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_applied_in_place_decide_exactly_like_their_targets() {
    let gw = gateway_with(Some(example(1, false)), |c, _| c.server.workers = Some(2)).await;
    // Grants removed, added and moved; memberships of groups and teams;
    // a user disabled — each a delta the engine applies in place.
    let steps: [fn(&mut Value); 3] = [
        |v| {
            let grants = v["grants"].as_array_mut().unwrap();
            grants.remove(0);
            grants.insert(5, grant("user/pat", "writer", "catalog/sales"));
        },
        |v| {
            v["groups"][0]["members"] = json!(["user/carol", "user/bob", "service/ci-bot"]);
            v["teams"][0]["members"] = json!(["kim", "nina", "pat"]);
        },
        |v| {
            let grants = v["grants"].as_array_mut().unwrap();
            grants.push(grant("group/auditors", "reader", "org/acme"));
            grants.swap(1, 7);
            for u in v["users"].as_array_mut().unwrap() {
                if u["username"] == "carol" {
                    u["status"] = json!("disabled");
                }
            }
        },
    ];
    let mut base = example(1, false);
    let mut changes: Vec<fn(&mut Value)> = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        changes.push(step);
        let n = i as u64 + 2;
        let target = example_with(n, |v| changes.iter().for_each(|c| c(v)));
        let a = patch(&gw, delta(&base, &target)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body["in_place"], true, "step {i}: {}", a.body);
        assert_eq!(
            a.body["sha256"],
            hex::encode(Header::parse(&target).unwrap().body_sha256)
        );
        decides_like(&gw, &target).await;
        base = target;
    }
    // A delta that needs a full load (a new user: new strings) works from
    // an image made by deltas, and the next in-place one after it.
    let newcomer = example_with(5, |v| {
        changes.iter().for_each(|c| c(v));
        let mut u = v["users"][11].clone();
        u["username"] = json!("newcomer");
        u["email"] = json!("newcomer@acme.example");
        v["users"].as_array_mut().unwrap().push(u);
    });
    let a = patch(&gw, delta(&base, &newcomer)).await;
    assert_eq!(
        (a.status, a.body["in_place"].clone()),
        (StatusCode::OK, json!(false)),
        "{}",
        a.body
    );
    decides_like(&gw, &newcomer).await;
    // And a worker that traps is rebuilt from the image a delta made.
    let last = example_with(6, |v| {
        changes.iter().for_each(|c| c(v));
        let mut u = v["users"][11].clone();
        u["username"] = json!("newcomer");
        u["email"] = json!("newcomer@acme.example");
        v["users"].as_array_mut().unwrap().push(u);
        v["grants"].as_array_mut().unwrap().pop();
    });
    let a = patch(&gw, delta(&newcomer, &last)).await;
    assert_eq!(a.body["in_place"], true, "{}", a.body);
    gw.running.interrupt_next_decisions();
    let pat = bearer("pat");
    let _ = gw.get(TABLE, &[("authorization", &pat)]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.get(TABLE, &[("authorization", &pat)]).await.status == StatusCode::SERVICE_UNAVAILABLE
    {
        assert!(Instant::now() < deadline, "the instance was not rebuilt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    decides_like(&gw, &last).await;
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_snapshot_deltas_in_place_total 4"),
        "{metrics}"
    );
}

/// A store: the files of a directory over HTTP (`common::files`).
struct Store {
    dir: tempfile::TempDir,
    origin: std::net::SocketAddr,
    files: common::files::FileServer,
}

impl Store {
    async fn start() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let files = common::files::FileServer::start(dir.path().to_path_buf()).await;
        Store {
            origin: files.origin,
            dir,
            files,
        }
    }

    /// Publishes `snapshot` with the deltas given (from, bytes of the
    /// `from` snapshot), as `snapshot publish` does: files first, manifest last.
    fn publish(&self, snapshot: &[u8], deltas: &[&[u8]]) {
        self.publish_corrupted(snapshot, deltas, false);
    }

    /// [`Store::publish`], the deltas' last byte flipped when `corrupt`.
    fn publish_corrupted(&self, snapshot: &[u8], deltas: &[&[u8]], corrupt: bool) {
        use portcullis_gateway::manifest::{DeltaEntry, Manifest};
        let h = Header::parse(snapshot).unwrap();
        let name = format!("snapshot-{}.snap", h.revision);
        std::fs::write(self.dir.path().join(&name), snapshot).unwrap();
        let entries = deltas
            .iter()
            .map(|from| {
                let f = Header::parse(from).unwrap();
                let mut d = delta(from, snapshot);
                if corrupt && let Some(last) = d.last_mut() {
                    *last ^= 0xff;
                }
                let path = format!("delta-{}-{}.delta", f.revision, h.revision);
                std::fs::write(self.dir.path().join(&path), &d).unwrap();
                DeltaEntry {
                    from: f.revision,
                    from_sha256: hex::encode(f.body_sha256),
                    to: h.revision,
                    to_sha256: hex::encode(h.body_sha256),
                    path,
                    bytes: d.len() as u64,
                }
            })
            .collect();
        let m = Manifest {
            format: 1,
            revision: h.revision,
            sha256: hex::encode(h.body_sha256),
            snapshot: name,
            bytes: snapshot.len() as u64,
            deltas: entries,
            snapshot_of: None,
        };
        std::fs::write(
            self.dir.path().join("latest.json"),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
    }

    fn sent(&self, name: &str) -> usize {
        self.files.sent(name)
    }
}

async fn wait_for(gw: &Gw, revision: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.running.revision() != Some(revision) {
        assert!(
            Instant::now() < deadline,
            "revision {revision} never served ({:?})",
            gw.running.revision()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_follows_the_stores_manifest_by_deltas_and_falls_back_to_the_snapshot() {
    let store = Store::start().await;
    let (one, two, three, four) = (
        example(1, false),
        example(2, true),
        example(3, false),
        example(4, true),
    );
    store.publish(&one, &[]);
    let gw = gateway_with(None, |c, _| {
        c.snapshot.poll_url = Some(format!("http://{}/latest.json", store.origin));
        c.snapshot.poll_interval_ms = 50;
    })
    .await;
    // Nothing serving: the snapshot.
    wait_for(&gw, 1).await;
    assert_eq!(store.sent("snapshot-1.snap"), one.len());

    // Revision 2 with a delta from 1: the delta, not the snapshot.
    store.publish(&two, &[&one]);
    wait_for(&gw, 2).await;
    assert_eq!(readyz(&gw).await["delta"], true);
    assert_eq!(
        store.sent("snapshot-2.snap"),
        0,
        "fetched the snapshot, not the delta"
    );
    assert!(store.sent("delta-1-2.delta") > 0);
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_snapshot_swaps_total{source=\"poll\",kind=\"delta\"} 1"),
        "{metrics}"
    );

    // Revision 4 lists only the delta from 3: a gap, so the snapshot.
    store.publish(&four, &[&three]);
    wait_for(&gw, 4).await;
    assert_eq!(readyz(&gw).await["delta"], false);
    assert_eq!(store.sent("snapshot-4.snap"), four.len());
    assert_eq!(store.sent("delta-3-4.delta"), 0);

    // A corrupted delta: refused, then the snapshot.
    let five = example(5, false);
    store.publish_corrupted(&five, &[&four], true);
    wait_for(&gw, 5).await;
    assert_eq!(store.sent("snapshot-5.snap"), five.len());
    assert_eq!(readyz(&gw).await["delta"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_a_full_snapshot_every_few_revisions_brings_every_gateway_to_the_latest() {
    // The directory service writes a full snapshot only every
    // `full_every` publications; in between, a delta and a manifest naming
    // the last full snapshot and the deltas from it. A gateway that
    // follows takes the delta; one that starts fresh takes the snapshot,
    // then the deltas.
    use portcullis_directory::publish::{Made, publish_with};
    use portcullis_gateway::manifest::Manifest;
    let store = Store::start().await;
    let dir = store.dir.path();
    let revisions: Vec<Vec<u8>> = (1..=5).map(|n| example(n, n % 2 == 0)).collect();
    let publish = |n: usize| {
        let made = n
            .checked_sub(1)
            .map(|p| (p as u64 + 1, delta(&revisions[p], &revisions[n])));
        let made = match &made {
            Some((from, d)) => Made::From(*from, d),
            None => Made::Compute,
        };
        publish_with(dir, &revisions[n], 10, None, made, 3).unwrap()
    };
    let manifest = || Manifest::parse(&std::fs::read(dir.join("latest.json")).unwrap()).unwrap();
    assert!(publish(0).snapshot.is_some());
    let following = gateway_with(None, |c, _| {
        c.snapshot.poll_url = Some(format!("http://{}/latest.json", store.origin));
        c.snapshot.poll_interval_ms = 50;
    })
    .await;
    wait_for(&following, 1).await;
    for n in 1..=2 {
        let p = publish(n);
        assert!(
            p.snapshot.is_none(),
            "revision {}: no snapshot written",
            n + 1
        );
        wait_for(&following, n as u64 + 1).await;
    }
    let m = manifest();
    assert_eq!(m.revision, 3);
    assert_eq!(m.snapshot, "snapshot-1.snap");
    assert_eq!(m.snapshot_of.as_ref().map(|o| o.revision), Some(1));
    assert_eq!(m.deltas.len(), 2);
    assert!(!dir.join("snapshot-2.snap").exists());
    assert_eq!(
        store.sent("snapshot-1.snap"),
        revisions[0].len(),
        "fetched once"
    );
    assert!(store.sent("delta-2-3.delta") > 0);

    // A gateway starting now: the snapshot of revision 1, then the deltas.
    let fresh = gateway_with(None, |c, _| {
        c.snapshot.poll_url = Some(format!("http://{}/latest.json", store.origin));
        c.snapshot.poll_interval_ms = 50;
    })
    .await;
    wait_for(&fresh, 3).await;
    assert_eq!(
        store.sent("snapshot-1.snap"),
        2 * revisions[0].len(),
        "the fresh gateway fetched the snapshot once"
    );

    // The third publication since the snapshot is a full one again.
    let p = publish(3);
    assert!(p.snapshot.is_some());
    let m = manifest();
    assert_eq!((m.revision, m.snapshot_of.is_none()), (4, true));
    assert!(!dir.join("snapshot-1.snap").exists(), "pruned");
    wait_for(&following, 4).await;
    wait_for(&fresh, 4).await;
    assert_eq!(store.sent("snapshot-4.snap"), 0, "both followed the delta");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revision_a_delta_made_is_remembered_across_a_restart() {
    use portcullis_gateway::server::{StartError, start};
    use portcullis_host::swap::SwapError;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut config = demo_gateway_config(dir.path()).await;
    config.snapshot.state_file = Some(state.clone());
    config.admin.token = Some(DEMO_ADMIN_TOKEN.into());
    let gw = start(config, Some(example(1, false)))
        .await
        .expect("starts");
    let admin = format!("http://{}", gw.admin_addr);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let token = format!("Bearer {DEMO_ADMIN_TOKEN}");
    let a = send(
        &client,
        Method::PATCH,
        &format!("{admin}/-/snapshot"),
        &[("authorization", &token)],
        delta(&example(1, false), &example(2, true)),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    gw.shutdown().await;
    let recorded = std::fs::read_to_string(&state).unwrap();
    assert!(recorded.contains("\"revision\":2"), "{recorded}");

    // Restarted with revision 1, which the delta replaced: refused.
    let mut config = demo_gateway_config(dir.path()).await;
    config.snapshot.state_file = Some(state);
    let err = start(config, Some(example(1, false)))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            &err,
            StartError::Snapshot {
                source: SwapError::BelowAccepted {
                    candidate: 1,
                    accepted: 2
                },
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_views_a_delta_does_not_reach_are_kept() {
    let gw = gateway().await;
    let pat = bearer("pat");
    let url = format!("{}/-/snapshot/me", gw.base);
    let first = send(
        &gw.client,
        Method::GET,
        &url,
        &[("authorization", &pat)],
        vec![],
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let etag = first.headers["etag"].to_str().unwrap().to_string();
    let built = || async {
        let (_, metrics) = gw.admin_get("/-/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("portcullis_browser_views_built_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert_eq!(built().await, Some(1));
    // Another user's name changes, as a delta: pat's view is kept.
    let renamed = example_snapshot(|v| {
        v["revision"] = json!(2);
        v["users"][1]["name"] = json!("Someone Else");
    })
    .unwrap();
    let a = patch(&gw, delta(&example(1, false), &renamed)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let again = send(
        &gw.client,
        Method::GET,
        &url,
        &[("authorization", &pat), ("if-none-match", &etag)],
        vec![],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        built().await,
        Some(1),
        "cut again after a delta that left it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_snapshots_that_differ_by_a_delta_are_applied_in_place() {
    let gw = gateway_with(Some(example(1, false)), |c, _| c.server.workers = Some(2)).await;
    let steps: [fn(&mut Value); 4] = [
        |v| {
            v["grants"].as_array_mut().unwrap().remove(2);
        },
        |v| {
            let grants = v["grants"].as_array_mut().unwrap();
            grants.remove(0);
            grants.insert(5, grant("user/pat", "writer", "catalog/sales"));
        },
        |v| {
            v["groups"][0]["members"] = json!(["user/carol", "user/bob", "service/ci-bot"]);
            v["teams"][0]["members"] = json!(["kim", "nina", "pat"]);
            for u in v["users"].as_array_mut().unwrap() {
                if u["username"] == "carol" {
                    u["status"] = json!("disabled");
                }
            }
        },
        // New strings: loaded in full.
        |v| {
            let mut u = v["users"][11].clone();
            u["username"] = json!("newcomer");
            u["email"] = json!("newcomer@acme.example");
            v["users"].as_array_mut().unwrap().push(u);
        },
    ];
    let mut changes: Vec<fn(&mut Value)> = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        changes.push(step);
        let target = example_with(i as u64 + 2, |v| changes.iter().for_each(|c| c(v)));
        let a = gw.push(target.clone(), false).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body["in_place"], i < 3, "step {i}: {}", a.body);
        assert_eq!(a.body["delta"], false, "{}", a.body);
        decides_like(&gw, &target).await;
    }
    // The same bytes again, forced: nothing is newer, so it is loaded.
    let again = example_with(5, |v| changes.iter().for_each(|c| c(v)));
    let a = gw.push(again.clone(), true).await;
    assert_eq!(a.body["in_place"], false, "{}", a.body);
    decides_like(&gw, &again).await;
}
