//! The directory service end to end: its HTTP API as clients use it
//! (identified as at the gateway, refused in the gateway's shape), and a
//! write enforced by a gateway that polls the store the service publishes
//! into.
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

use common::directory::directory;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";

fn assert_refusal(a: &Answer, status: StatusCode, reason: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["decision"], "deny", "{}", a.body);
    assert_eq!(a.body["reason"], reason, "{}", a.body);
    assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        a.headers
            .get("x-portcullis-reason")
            .map(|v| v.to_str().unwrap()),
        Some(reason)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_the_api_is_enforced_by_a_gateway_polling_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let d = directory(tmp.path(), 1 << 20).await;
    let files = files::FileServer::start(d.store.clone()).await;
    let gw = gateway_with(None, |c, _| {
        c.snapshot.poll_url = Some(format!("http://{}/latest.json", files.origin));
        c.snapshot.poll_interval_ms = 50;
        c.server.min_revision_wait_ms = 300;
    })
    .await;
    // The service published revision 1 when it started.
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.running.revision() != Some(1) {
        assert!(Instant::now() < deadline, "revision 1 never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pat = bearer("pat");
    assert_eq!(
        gw.get(TABLE, &[("authorization", &pat)]).await.status,
        StatusCode::OK
    );

    // adam (an administrator of EMEA) may not deactivate pat (in acme)…
    let refused = d
        .call(
            Method::POST,
            "/v1/directory/users/pat/deactivate",
            Some("adam"),
            Value::Null,
        )
        .await;
    assert_refusal(&refused, StatusCode::FORBIDDEN, "no_grant");
    assert_eq!(refused.body["revision"], 1);
    // …olivia (an owner) may; the answer names the revision that holds it.
    let done = d
        .call(
            Method::POST,
            "/v1/directory/users/pat/deactivate",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["revision"], 2);
    assert_eq!(done.headers["x-portcullis-revision"], "2");
    assert_eq!(
        done.body["operations"][0]["decisions"][0]["action"],
        "user:deactivate"
    );
    // A deactivation is urgent: published at once. A client that names
    // the revision of the write is decided at it or later — no polling.
    let a = gw
        .get(
            TABLE,
            &[("authorization", &pat), ("x-portcullis-min-revision", "2")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(a.body["reason"], "account_deactivated");
    assert_eq!(gw.running.revision(), Some(2));
    // A revision that never comes: 503 after the configured wait, and a
    // malformed one is refused.
    let a = gw
        .get(
            TABLE,
            &[("authorization", &pat), ("x-portcullis-min-revision", "99")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(a.body["reason"], "revision_not_yet");
    assert_eq!(a.body["revision"], 2);
    let a = gw
        .get(
            TABLE,
            &[
                ("authorization", &pat),
                ("x-portcullis-min-revision", "two"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    // The decision endpoint waits the same way.
    let a = send(
        &gw.client,
        Method::POST,
        &format!("{}/-/authz/v1/check", gw.base),
        &[("x-portcullis-min-revision", "99")],
        br#"{"principal": "user/pat", "action": "read", "resource": "catalog/sales"}"#.to_vec(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(a.body["reason"], "revision_not_yet");
    // And reactivated: enforced the same way.
    let done = d
        .call(
            Method::POST,
            "/v1/directory/users/pat/reactivate",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(done.body["revision"], 3, "{}", done.body);
    let answered = Instant::now();
    while gw.get(TABLE, &[("authorization", &pat)]).await.status != StatusCode::OK {
        assert!(
            answered.elapsed() < Duration::from_secs(20),
            "never enforced"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let state = d
        .call(
            Method::GET,
            "/v1/directory/revision",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(state.body["revision"], 3);
    assert_eq!(state.body["published"]["revision"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_bad_requests_with_their_reason_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = directory(tmp.path(), 4096).await;

    // No credentials, a bad token.
    let a = d
        .call(Method::GET, "/v1/directory/users/dave", None, Value::Null)
        .await;
    assert_refusal(&a, StatusCode::UNAUTHORIZED, "unauthenticated");
    let a = d
        .call_with(
            Method::GET,
            "/v1/directory/users/dave",
            None,
            Value::Null,
            &[("authorization", "Bearer nope")],
        )
        .await;
    assert_refusal(&a, StatusCode::UNAUTHORIZED, "unauthenticated");

    // Malformed JSON, an unknown field (named with its place), a wrong type.
    let a = d
        .raw(
            Method::POST,
            "/v1/directory/changes",
            "olivia",
            b"{".to_vec(),
        )
        .await;
    assert_refusal(&a, StatusCode::BAD_REQUEST, "malformed_request");
    let a = d
        .call(
            Method::POST,
            "/v1/directory/changes",
            Some("olivia"),
            json!({"operations": [{"op": "deactivate_user", "username": "dave", "colour": "red"}]}),
        )
        .await;
    assert_refusal(&a, StatusCode::BAD_REQUEST, "malformed_request");
    assert!(
        a.body["message"].as_str().unwrap().contains("colour"),
        "{}",
        a.body
    );
    let a = d
        .call(
            Method::POST,
            "/v1/directory/users",
            Some("olivia"),
            json!({"user": {"username": "new", "email": "n@acme.example", "organization": "acme", "shoe": 1}}),
        )
        .await;
    assert_refusal(&a, StatusCode::BAD_REQUEST, "malformed_request");
    assert!(
        a.body["message"].as_str().unwrap().contains("user.shoe"),
        "{}",
        a.body
    );
    let a = d
        .call(
            Method::PUT,
            "/v1/directory/users/dave/expiry",
            Some("olivia"),
            json!({"expires_at": 5}),
        )
        .await;
    assert_refusal(&a, StatusCode::BAD_REQUEST, "malformed_request");
    assert!(
        a.body["message"].as_str().unwrap().contains("expires_at"),
        "{}",
        a.body
    );

    // Both framing headers: refused, as at the gateway (a proxy in front
    // may read the body the other way).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = d.base.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = bearer("olivia");
        s.write_all(
            format!(
                "POST /v1/directory/users/dave/deactivate HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        assert!(out.contains("Transfer-Encoding"), "{out}");
    }

    // Oversized.
    let a = d
        .raw(
            Method::POST,
            "/v1/directory/changes",
            "olivia",
            vec![b' '; 5000],
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Unknown target, duplicate, dot segments.
    let a = d
        .call(
            Method::POST,
            "/v1/directory/users/nobody/deactivate",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "the engine denies an unknown resource first: {}",
        a.body
    );
    let a = d
        .call(
            Method::POST,
            "/v1/directory/grants",
            Some("olivia"),
            json!({"grant": {"principal": "user/dave", "role": "reader", "on": "org/acme"}}),
        )
        .await;
    assert_refusal(&a, StatusCode::CONFLICT, "exists");
    let a = d
        .call(
            Method::DELETE,
            "/v1/directory/grants",
            Some("olivia"),
            json!({"grant": {"principal": "user/dave", "role": "writer", "on": "org/acme"}}),
        )
        .await;
    assert_refusal(&a, StatusCode::NOT_FOUND, "not_found");
    let a = d
        .call(
            Method::POST,
            "/v1/directory/users/../deactivate",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_ne!(a.status, StatusCode::OK);

    // A deactivated or notification-only actor.
    let a = d
        .call(
            Method::POST,
            "/v1/directory/users/dave/deactivate",
            Some("zoe"),
            Value::Null,
        )
        .await;
    assert_refusal(&a, StatusCode::FORBIDDEN, "account_deactivated");
    let a = d
        .call(
            Method::POST,
            "/v1/directory/users/dave/deactivate",
            Some("nina"),
            Value::Null,
        )
        .await;
    assert_refusal(&a, StatusCode::FORBIDDEN, "notification_only");

    // An invalid post-state: every problem, each with its place.
    let a = d
        .call(
            Method::POST,
            "/v1/directory/changes",
            Some("olivia"),
            json!({"operations": [{"op": "delete_organization", "id": "apac"}]}),
        )
        .await;
    assert_refusal(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid_directory");
    assert!(
        a.body["problems"].as_array().unwrap().len() >= 2,
        "{}",
        a.body
    );

    // Two writes against the same revision: one wins, the other is stale.
    let first = d
        .call_with(
            Method::POST,
            "/v1/directory/users/dave/deactivate",
            Some("olivia"),
            Value::Null,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = d
        .call_with(
            Method::POST,
            "/v1/directory/users/carol/deactivate",
            Some("olivia"),
            Value::Null,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_refusal(&second, StatusCode::PRECONDITION_FAILED, "stale_revision");
    assert_eq!(second.body["revision"], 2);

    // A retried write answers the same, without a second change.
    let key = [("idempotency-key", "retry-1")];
    let one = d
        .call_with(
            Method::POST,
            "/v1/directory/users/carol/deactivate",
            Some("olivia"),
            Value::Null,
            &key,
        )
        .await;
    let two = d
        .call_with(
            Method::POST,
            "/v1/directory/users/carol/deactivate",
            Some("olivia"),
            Value::Null,
            &key,
        )
        .await;
    assert_eq!(one.body["revision"], 3);
    assert_eq!(two.body["revision"], 3);
    assert_eq!(two.body["replayed"], true);

    // Nothing refused above left a trace: three revisions, three log entries.
    assert_eq!(d.api.service.head().unwrap().revision, 3);
    let log = d
        .call(
            Method::GET,
            "/v1/directory/changes?after=0",
            Some("olivia"),
            Value::Null,
        )
        .await;
    let revisions: Vec<u64> = log.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, vec![1, 2, 3]);
    assert_eq!(log.body["changes"][1]["actor"], "user/olivia");
    // The log is not for everyone.
    let a = d
        .call(
            Method::GET,
            "/v1/directory/changes",
            Some("dave"),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_made_by_the_service_acts_as_its_creator_at_the_service_and_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let d = directory(tmp.path(), 1 << 20).await;
    let a = d
        .call(
            Method::POST,
            "/v1/directory/api-keys",
            Some("adam"),
            json!({"id": "adam-ci"}),
        )
        .await;
    assert_refusal(&a, StatusCode::FORBIDDEN, "no_grant");
    let a = d
        .call(
            Method::POST,
            "/v1/directory/api-keys",
            Some("sam"),
            json!({"id": "sam-ci", "name": "CI"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let secret = a.body["operations"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    // Acting with it: sam's rights.
    let key = [("x-api-key", secret.as_str())];
    let a = d
        .call_with(
            Method::POST,
            "/v1/directory/users/dave/deactivate",
            None,
            Value::Null,
            &key,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body["operations"][0]["decisions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("user/sam")
    );
    // Revoked: dead.
    let a = d
        .call(
            Method::DELETE,
            "/v1/directory/api-keys/sam-ci",
            Some("sam"),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = d
        .call_with(
            Method::POST,
            "/v1/directory/users/carol/deactivate",
            None,
            Value::Null,
            &key,
        )
        .await;
    assert_refusal(&a, StatusCode::FORBIDDEN, "api_key_revoked");
    // The secret is nowhere in the log.
    let log = d
        .call(
            Method::GET,
            "/v1/directory/changes",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert!(!log.body.to_string().contains(&secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_show_what_the_caller_may_see() {
    let tmp = tempfile::tempdir().unwrap();
    let d = directory(tmp.path(), 1 << 20).await;
    // adam administers EMEA: he lists its users, not acme's.
    let a = d
        .call(
            Method::GET,
            "/v1/directory/users?limit=1000",
            Some("adam"),
            Value::Null,
        )
        .await;
    let names: Vec<&str> = a.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"rhea") && names.contains(&"adam"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"olivia") && !names.contains(&"dave"),
        "{names:?}"
    );
    // Paging.
    let a = d
        .call(
            Method::GET,
            "/v1/directory/users?limit=2",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(a.body["users"].as_array().unwrap().len(), 2);
    let after = a.body["next_after"].as_str().unwrap().to_string();
    let b = d
        .call(
            Method::GET,
            &format!("/v1/directory/users?limit=2&after={after}"),
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_ne!(a.body["users"][0], b.body["users"][0]);
    // What the console draws: the engine's permissions.
    let a = d
        .call(
            Method::GET,
            "/v1/directory/actions?resource=user/olivia",
            Some("adam"),
            Value::Null,
        )
        .await;
    assert!(
        !a.body["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "user:deactivate")
    );
    let a = d
        .call(
            Method::GET,
            "/v1/directory/actions?resource=user/rhea",
            Some("adam"),
            Value::Null,
        )
        .await;
    assert!(
        a.body["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "user:deactivate")
    );
    // Every section, each entity by its own question.
    let ids = |a: &Answer, key: &str| -> Vec<String> {
        a.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[key].as_str().unwrap().to_string())
            .collect()
    };
    let a = d
        .call(
            Method::GET,
            "/v1/directory/organizations",
            Some("adam"),
            Value::Null,
        )
        .await;
    let orgs = ids(&a, "id");
    assert!(
        orgs.contains(&"emea".into()) && orgs.contains(&"emea-retail".into()),
        "{orgs:?}"
    );
    assert!(!orgs.contains(&"apac".into()), "{orgs:?}");
    let a = d
        .call(
            Method::GET,
            "/v1/directory/catalogs",
            Some("pat"),
            Value::Null,
        )
        .await;
    let catalogs = ids(&a, "id");
    assert!(catalogs.contains(&"sales".into()), "{catalogs:?}");
    assert!(!catalogs.contains(&"staging-sales".into()), "{catalogs:?}");
    let a = d
        .call(
            Method::GET,
            "/v1/directory/api-keys",
            Some("sam"),
            Value::Null,
        )
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 4, "{}", a.body);
    assert!(
        a.body["items"][0].get("sha256").is_none(),
        "a key's hash is not listed"
    );
    let a = d
        .call(
            Method::GET,
            "/v1/directory/api-keys",
            Some("dave"),
            Value::Null,
        )
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 0);
    let a = d
        .call(
            Method::GET,
            "/v1/directory/grants?limit=5",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 5);
    let after = a.body["next_after"].as_str().unwrap().to_string();
    let b = d
        .call(
            Method::GET,
            &format!(
                "/v1/directory/grants?limit=5&after={}",
                after.replace(' ', "%20")
            ),
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    assert_eq!(b.body["items"].as_array().unwrap().len(), 5, "{}", b.body);
    assert_ne!(a.body["items"][0], b.body["items"][0]);
    assert_eq!(
        d.call(
            Method::GET,
            "/v1/directory/teams/noc",
            Some("kim"),
            Value::Null
        )
        .await
        .status,
        StatusCode::OK
    );
    let a = d
        .call(
            Method::GET,
            "/v1/directory/teams/noc",
            Some("dave"),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["reason"], "no_grant");
    let a = d
        .call(
            Method::GET,
            "/v1/directory/teams/nope",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // Export: the directory as JSON, for those who manage access.
    let a = d
        .call(Method::GET, "/v1/directory", Some("olivia"), Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["users"].as_array().unwrap().len(), 25);
    let a = d
        .call(Method::GET, "/v1/directory", Some("pat"), Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_are_pushed_to_gateways_admin_apis() {
    let gw = gateway().await;
    let tmp = tempfile::tempdir().unwrap();
    // No store: pushes only, to the gateway and to one that is down.
    let down = format!(
        "http://{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    );
    let d = common::directory::directory_with(tmp.path(), 1 << 20, |p| {
        p.store_dir = None;
        p.push_timeout_ms = 500;
        p.gateways = vec![
            portcullis_directory::push::PushTarget {
                admin_url: gw.admin.clone(),
                token: portcullis_demo::DEMO_ADMIN_TOKEN.into(),
            },
            portcullis_directory::push::PushTarget {
                admin_url: down,
                token: "x".repeat(20),
            },
        ];
    })
    .await;
    let pat = bearer("pat");
    assert_eq!(
        gw.get(TABLE, &[("authorization", &pat)]).await.status,
        StatusCode::OK
    );
    let done = d
        .call(
            Method::POST,
            "/v1/directory/users/pat/deactivate",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(done.body["revision"], 2, "{}", done.body);
    // Pushed: decided at revision 2 by the next request that asks for it.
    let a = gw
        .get(
            TABLE,
            &[("authorization", &pat), ("x-portcullis-min-revision", "2")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(a.body["reason"], "account_deactivated");
    // The gateway that is down is reported, and does not hold back the other.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = d
            .call(
                Method::GET,
                "/v1/directory/revision",
                Some("olivia"),
                Value::Null,
            )
            .await;
        if state.body["published"]["failing"]
            .as_str()
            .is_some_and(|f| f.contains("cannot reach"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failure is never reported: {}",
            state.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An ordinary change (a grant) is coalesced, then pushed as a delta.
    let done = d
        .call(
            Method::POST,
            "/v1/directory/grants",
            Some("olivia"),
            json!({"grant": {"principal": "user/dave", "role": "writer", "on": "catalog/sales"}}),
        )
        .await;
    assert_eq!(done.body["revision"], 3, "{}", done.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.running.revision() != Some(3) {
        assert!(Instant::now() < deadline, "revision 3 never pushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("kind=\"delta\""),
        "pushed whole, not as a delta: {}",
        metrics
            .lines()
            .filter(|l| l.contains("swaps_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_section_is_written_resource_by_resource() {
    let tmp = tempfile::tempdir().unwrap();
    let d = directory(tmp.path(), 1 << 20).await;
    let env = json!({"id": "qa", "name": "QA", "organization": "acme", "tier": "staging"});
    let a = d
        .call(
            Method::POST,
            "/v1/directory/environments",
            Some("olivia"),
            env.clone(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body["operations"][0]["decisions"][0]["action"],
        "org:settings"
    );
    // An administrator of EMEA creates nothing in acme.
    let other = json!({"id": "qa2", "organization": "acme"});
    let a = d
        .call(
            Method::POST,
            "/v1/directory/environments",
            Some("adam"),
            other,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // Replaced in place; the id in the body must be the path's.
    let renamed = json!({"id": "qa", "name": "Quality", "organization": "acme", "tier": "staging"});
    let a = d
        .call(
            Method::PUT,
            "/v1/directory/environments/qa",
            Some("olivia"),
            renamed,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = d
        .call(
            Method::PUT,
            "/v1/directory/environments/qa",
            Some("olivia"),
            json!({"id": "qb", "organization": "acme"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let a = d
        .call(
            Method::GET,
            "/v1/directory/environments/qa",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(a.body["name"], "Quality");
    // Group members and permissions.
    let a = d
        .call(
            Method::PUT,
            "/v1/directory/groups/analysts/members/user/dave",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = d
        .call(
            Method::GET,
            "/v1/directory/groups/analysts",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert!(
        a.body["members"]
            .as_array()
            .unwrap()
            .contains(&json!("user/dave")),
        "{}",
        a.body
    );
    let a = d
        .call(
            Method::DELETE,
            "/v1/directory/groups/analysts/members/user/dave",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let p = json!({"permission": {"principal": "user/dave", "permission": "view", "entity": "pipelines"}});
    let a = d
        .call(
            Method::POST,
            "/v1/directory/permissions",
            Some("olivia"),
            p.clone(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = d
        .call(
            Method::DELETE,
            "/v1/directory/permissions",
            Some("olivia"),
            p,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // Deleted; deleting it again is 404.
    let a = d
        .call(
            Method::DELETE,
            "/v1/directory/environments/qa",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = d
        .call(
            Method::DELETE,
            "/v1/directory/environments/qa",
            Some("olivia"),
            Value::Null,
        )
        .await;
    assert_ne!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(d.api.service.head().unwrap().revision, 8);
}

/// curl against the directory service over TLS, presenting `cert` (a
/// (certificate, key) pair of files) when given: the body as JSON, with
/// `status` added (curl's exit code when it could not connect).
fn curl_tls(
    ca: &std::path::Path,
    port: u16,
    path: &str,
    cert: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    headers: &[&str],
) -> Value {
    let resolve = format!("directory.test:{port}:127.0.0.1");
    let url = format!("https://directory.test:{port}{path}");
    let ca = ca.display().to_string();
    let mut args: Vec<String> = [
        "-sS",
        "-w",
        "\n%{http_code}",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some((c, k)) = cert {
        args.extend([
            "--cert".into(),
            c.display().to_string(),
            "--key".into(),
            k.display().to_string(),
        ]);
    }
    for h in headers {
        args.extend(["-H".to_string(), h.to_string()]);
    }
    args.push(url);
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", ""));
    let mut v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if !v.is_object() {
        v = json!({});
    }
    v["status"] = if status.is_empty() || status == "000" {
        json!(format!("curl {}", out.status.code().unwrap_or(-1)))
    } else {
        json!(status)
    };
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_service_speaks_tls_and_knows_service_accounts_by_their_certificates() {
    // Issue #25: callers are identified exactly as at the gateway — mTLS
    // service accounts included, mapped by `client_principals`.
    use common::ca::{Ca, write};
    use portcullis_gateway::config::{CertificatePair, ClientCertificates, TlsConfig};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = Ca::new("Directory CA");
    let clients = Ca::new("Clients CA");
    let (cert, key) = ca.issue(&["directory.test"], false);
    let ca_file = write(dir, "ca.pem", &ca.pem);
    let tls = TlsConfig {
        certificates: vec![CertificatePair {
            cert: write(dir, "directory.pem", &cert),
            key: write(dir, "directory.key", &key),
        }],
        client_ca: Some(write(dir, "clients.pem", &clients.pem)),
        client_crl: None,
        client_certificates: ClientCertificates::Optional,
        handshake_timeout_ms: 5_000,
        client_principals: [(
            "spiffe://test/ns/prod/sa/etl".to_string(),
            "service/etl-loader".to_string(),
        )]
        .into(),
    };
    let d = common::directory::directory_configured(dir, 1 << 20, |c| c.tls = Some(tls)).await;
    let port: u16 = d.base.rsplit(':').next().unwrap().parse().unwrap();
    let issued = |name: &str, (c, k): (String, String)| {
        (
            write(dir, &format!("{name}.pem"), &c),
            write(dir, &format!("{name}.key"), &k),
        )
    };
    let etl = issued("etl", clients.issue_uri("spiffe://test/ns/prod/sa/etl"));
    let nobody = issued("nobody", clients.issue(&["other.svc.test"], false));
    let stranger = issued("stranger", Ca::new("Elsewhere").issue(&["x.test"], false));

    // The certificate is the service account: the engine answers for it.
    let actions = "/v1/directory/actions?resource=catalog/sales";
    let a = curl_tls(&ca_file, port, actions, Some(&etl), &[]);
    assert_eq!(a["status"], "200", "{a}");
    assert_eq!(a["principal"], "service/etl-loader", "{a}");
    assert!(
        a["permissions"]
            .as_array()
            .is_some_and(|x| x.iter().any(|v| v == "write")),
        "etl-loader writes catalog/sales: {a}"
    );
    // Credentials in the request come first.
    let token = format!("authorization: {}", bearer("pat"));
    let b = curl_tls(&ca_file, port, actions, Some(&etl), &[&token]);
    assert_eq!(b["status"], "200", "{b}");
    assert_eq!(b["principal"], "user/pat", "{b}");
    // A certificate the map does not name is nobody; none at all either.
    let a = curl_tls(&ca_file, port, actions, Some(&nobody), &[]);
    assert_eq!(a["status"], "401", "{a}");
    let a = curl_tls(&ca_file, port, actions, None, &[]);
    assert_eq!(a["status"], "401", "{a}");
    // One from another CA is refused in the handshake.
    let a = curl_tls(&ca_file, port, actions, Some(&stranger), &[]);
    assert!(
        a["status"].as_str().is_some_and(|s| s.starts_with("curl")),
        "{a}"
    );
    // And nothing is served in the clear on that port.
    let plain = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/v1/directory/revision"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
}
