//! Signed snapshots through the real gateway (issue #7): with
//! `require_signature`, unsigned and wrongly signed snapshots are refused
//! from every source and the serving one stays; the revision last accepted
//! survives a restart, so an old but validly signed snapshot cannot roll
//! the gateway back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_demo::example_snapshot;
use portcullis_gateway::server::{StartError, start};
use portcullis_host::swap::SwapError;
use portcullis_snapshots::signature::{SigningKey, generate, public_pem, sign};
use serde_json::json;

fn signed(revision_number: u64, key: &SigningKey) -> Vec<u8> {
    sign(&revision(revision_number), key).expect("sign")
}

/// Writes `key`'s public half into `dir` and trusts it, signatures required.
fn trust(config: &mut portcullis_gateway::config::GatewayConfig, dir: &Path, key: &SigningKey) {
    let path = dir.join("trusted.pub");
    std::fs::write(&path, public_pem(&key.verifying_key()).expect("pem")).expect("write key");
    config.snapshot.trusted_keys = vec![path];
    config.snapshot.require_signature = true;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_must_be_signed_by_a_trusted_key() {
    let key = generate().expect("key");
    let gw = gateway_with(Some(signed(1, &key)), |c, dir| trust(c, dir, &key)).await;
    assert_eq!(gw.running.revision(), Some(1));

    let a = gw.push(revision(2), false).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["reason"], "unsigned");

    let stranger = generate().expect("key");
    let a = gw.push(signed(2, &stranger), false).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.body["reason"], "bad_signature");
    assert!(
        a.body["message"]
            .as_str()
            .is_some_and(|e| e.contains("not trusted"))
    );

    // Re-dated after signing: the header no longer matches its signature.
    let mut redated = signed(2, &key);
    redated[12] = 9;
    let a = gw.push(redated, false).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.body["reason"], "bad_signature");
    assert_eq!(gw.running.revision(), Some(1), "nothing refused was loaded");

    let a = gw.push(signed(2, &key), false).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(gw.running.revision(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_file_must_be_signed_too() {
    let key = generate().expect("key");
    let mut file = None;
    let gw = gateway_with(None, |c, dir| {
        trust(c, dir, &key);
        let path = dir.join("directory.snap");
        std::fs::write(&path, signed(1, &key)).expect("write");
        c.snapshot.file = Some(path.clone());
        c.snapshot.watch = true;
        file = Some(path);
    })
    .await;
    let file = file.expect("path");
    assert_eq!(gw.running.revision(), Some(1));
    // An unsigned revision 2 in the watched file: refused, 1 keeps serving.
    std::fs::write(file.with_extension("tmp"), revision(2)).expect("write");
    std::fs::rename(file.with_extension("tmp"), &file).expect("rename");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = gw.admin_get("/-/metrics").await;
        if metrics.contains("portcullis_snapshot_swap_failures_total{source=\"file\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unsigned file was not refused:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.running.revision(), Some(1));
    // A signed revision 2: loaded.
    std::fs::write(file.with_extension("tmp"), signed(2, &key)).expect("write");
    std::fs::rename(file.with_extension("tmp"), &file).expect("rename");
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.running.revision() != Some(2) {
        assert!(Instant::now() < deadline, "the signed file was not loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_initial_snapshot_stops_the_start() {
    let key = generate().expect("key");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = demo_gateway_config(dir.path()).await;
    trust(&mut config, dir.path(), &key);
    let err = start(config, Some(revision(1)))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            &err,
            StartError::Snapshot {
                source: SwapError::Signature(_),
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accepted_revision_survives_a_restart() {
    let key = generate().expect("key");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let configure = |c: &mut portcullis_gateway::config::GatewayConfig| {
        trust(c, dir.path(), &key);
        c.snapshot.state_file = Some(state.clone());
    };

    // First run: revision 5 accepted.
    let mut config = demo_gateway_config(dir.path()).await;
    configure(&mut config);
    let first = start(config, Some(signed(5, &key))).await.expect("starts");
    first.shutdown().await;
    let recorded = std::fs::read_to_string(&state).expect("state file");
    assert!(recorded.contains("\"revision\":5"), "{recorded}");

    // Restart with an older, validly signed snapshot: refused.
    let mut config = demo_gateway_config(dir.path()).await;
    configure(&mut config);
    let err = start(config, Some(signed(3, &key)))
        .await
        .err()
        .expect("an older revision is refused");
    assert!(
        matches!(
            &err,
            StartError::Snapshot {
                source: SwapError::BelowAccepted {
                    candidate: 3,
                    accepted: 5
                },
                ..
            }
        ),
        "{err}"
    );

    // The same revision 5 again is fine (a plain restart); a different
    // snapshot under the same number is not.
    let mut config = demo_gateway_config(dir.path()).await;
    configure(&mut config);
    let again = start(config, Some(signed(5, &key)))
        .await
        .expect("restarts");
    again.shutdown().await;
    let other_five = example_snapshot(|v| {
        v["revision"] = json!(5);
        v["users"][0]["first_name"] = json!("Olive");
    })
    .expect("builds");
    let mut config = demo_gateway_config(dir.path()).await;
    configure(&mut config);
    let err = start(config, Some(sign(&other_five, &key).expect("sign")))
        .await
        .err()
        .expect("another snapshot numbered 5 is refused");
    assert!(
        matches!(
            &err,
            StartError::Snapshot {
                source: SwapError::BelowAccepted {
                    candidate: 5,
                    accepted: 5
                },
                ..
            }
        ),
        "{err}"
    );

    // Started empty: a push of revision 4 is refused unless forced.
    let mut config = demo_gateway_config(dir.path()).await;
    configure(&mut config);
    let running = start(config, None).await.expect("starts empty");
    let refused = running.install(signed(4, &key), false).await;
    assert!(
        matches!(refused, Err(SwapError::BelowAccepted { .. })),
        "{refused:?}"
    );
    running
        .install(signed(4, &key), true)
        .await
        .expect("a forced push rolls back");
    assert_eq!(running.revision(), Some(4));
    running.shutdown().await;
    let recorded = std::fs::read_to_string(&state).expect("state file");
    assert!(recorded.contains("\"revision\":4"), "{recorded}");

    // A corrupt state file stops the start: the floor is unknown.
    std::fs::write(&state, "garbage").expect("write");
    let mut config = demo_gateway_config(dir.path()).await;
    configure(&mut config);
    let err = start(config, Some(signed(9, &key)))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("state_file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_snapshots_are_signed_with_the_browser_key() {
    let browser_key = generate().expect("key");
    let gw = gateway_with(Some(revision(1)), |c, dir| {
        let path = dir.join("browser.pem");
        std::fs::write(
            &path,
            portcullis_snapshots::signature::private_pem(&browser_key).expect("pem"),
        )
        .expect("write");
        c.snapshot.browser_signing_key = Some(path);
    })
    .await;
    let resp = gw
        .client
        .request(
            http::Request::get(format!("{}/-/snapshot/me", gw.base))
                .header("authorization", bearer("pat"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let verified = portcullis_snapshots::signature::verify(&body, &[browser_key.verifying_key()])
        .expect("verifies");
    assert_eq!(verified, Some(browser_key.verifying_key()));

    // A view kept over a push (revision 2 changes nobody) is the same
    // signed view.
    assert_eq!(gw.push(revision(2), false).await.status, StatusCode::OK);
    let resp = gw
        .client
        .request(
            http::Request::get(format!("{}/-/snapshot/me", gw.base))
                .header("authorization", bearer("pat"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("answer");
    let kept = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        portcullis_snapshots::signature::verify(&kept, &[browser_key.verifying_key()])
            .expect("verifies"),
        Some(browser_key.verifying_key())
    );
    assert_eq!(kept, body);
}
