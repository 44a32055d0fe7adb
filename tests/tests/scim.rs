//! SCIM 2.0 end to end: a real SCIM client (Python's scim2-client, from
//! PyPI, which checks every answer against the schemas the service
//! publishes) runs an identity provider's whole provisioning cycle — in
//! Okta's and in Microsoft Entra ID's PATCH dialect — against the
//! directory service over HTTP, and after each change a user's request at
//! a gateway the service pushes to is polled until the gateway enforces
//! it. Also: the SCIM conformance checker of the same project
//! (scim2-tester) against the endpoint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use http::{Method, StatusCode};
use serde_json::{Value, json};

const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";

/// Runs `tests/python/<script>` with `args`; its standard output, once it
/// exited 0.
async fn python(script: &str, args: Vec<String>) -> String {
    let path = format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(path)
            .args(args)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn provisioned() -> (Gw, common::directory::Directory, tempfile::TempDir) {
    let gw = gateway().await;
    let tmp = tempfile::tempdir().unwrap();
    let d = common::directory::directory_with(tmp.path(), 1 << 20, |p| {
        p.store_dir = None;
        p.gateways = vec![portcullis_directory::push::PushTarget {
            admin_url: gw.admin.clone(),
            token: portcullis_demo::DEMO_ADMIN_TOKEN.into(),
        }];
    })
    .await;
    // olivia (an owner) names sam's key (a super administrator's) as
    // acme's SCIM token.
    let set = d
        .call(
            Method::PUT,
            "/v1/directory/settings/scim",
            Some("olivia"),
            json!({"organizations": {"acme": {"credentials": ["key/sam-deploy"]}}}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    (gw, d, tmp)
}

fn token(user: &str) -> String {
    bearer(user).trim_start_matches("Bearer ").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_providers_provisioning_cycle_is_enforced_at_the_gateway_in_both_dialects() {
    let (gw, d, _tmp) = provisioned().await;
    for (dialect, user) in [
        ("okta", "jo.okta@acme.example"),
        ("entra", "jo.entra@acme.example"),
    ] {
        let config = json!({
            "scim": format!("{}/scim/v2/acme", d.base),
            "token": portcullis_demo::DEMO_API_KEY,
            "gateway": format!("{}{TABLE}", gw.base),
            "user_token": token(user),
            "admin_token": token("olivia"),
            "directory": d.base,
            "user": user,
            "dialect": dialect,
            "bound_ms": 1000,
        });
        let stdout = python("scim_client.py", vec![config.to_string()]).await;
        let report: Value = serde_json::from_str(stdout.trim()).unwrap();
        for step in [
            "membership_added",
            "deactivated",
            "reactivated",
            "membership_removed",
            "deleted",
        ] {
            assert!(
                report["enforced_ms"][step].is_number(),
                "{dialect}: {step}: {report}"
            );
        }
        eprintln!(
            "{dialect}: enforced at the gateway after (ms): {}",
            report["enforced_ms"]
        );
    }
    // Every change is in the change log as a SCIM write of sam's key.
    let log = d
        .call(
            Method::GET,
            "/v1/directory/changes?limit=1000",
            Some("olivia"),
            Value::Null,
        )
        .await;
    let entries = log.body["changes"].as_array().unwrap();
    let scim: Vec<&Value> = entries.iter().filter(|e| e["via"] == "scim").collect();
    assert!(scim.len() >= 14, "{}", log.body);
    assert!(
        scim.iter()
            .all(|e| e["actor"].as_str().unwrap().starts_with("apikey/3f50f96d"))
    );
}

/// scim2-tester, the SCIM project's conformance checker, against the
/// endpoint: discovery, and creating, reading, replacing, patching and
/// deleting users and groups with values it makes up from the published
/// schemas. Every check it runs must pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scim_endpoint_passes_the_scim_conformance_checker() {
    let (_gw, d, _tmp) = provisioned().await;
    let base = format!("{}/scim/v2/acme", d.base);
    let stdout = python(
        "scim_conformance.py",
        vec![base, portcullis_demo::DEMO_API_KEY.to_string()],
    )
    .await;
    eprintln!("{stdout}");
}

/// Paths a client may bend: encoded slashes and dot segments in the
/// organization or an id are not decoded into another path — refused with
/// a SCIM error; a token is not read from another organization's URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bent_scim_paths_are_refused_not_rerouted() {
    let (_gw, d, _tmp) = provisioned().await;
    let auth = format!("Bearer {}", portcullis_demo::DEMO_API_KEY);
    for path in [
        "/scim/v2/acme/Users/..%2F..%2Femea%2FUsers%2Fadam",
        "/scim/v2/acme%2F..%2Femea/Users",
        "/scim/v2/acme/Users/%2E%2E",
        "/scim/v2/acme/./Users",
        "/scim/v2/acme//Users",
        "/scim/v2/emea/Users/adam",
    ] {
        let a = send(
            &d.client,
            Method::GET,
            &format!("{}{path}", d.base),
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
        assert!(
            a.status == StatusCode::NOT_FOUND || a.status == StatusCode::FORBIDDEN,
            "{path}: {} {}",
            a.status,
            a.body
        );
        assert_eq!(
            a.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{path}: {}",
            a.body
        );
        assert!(!a.body.to_string().contains("adam@"), "{path}: {}", a.body);
    }
}
