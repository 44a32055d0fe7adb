//! `docs/openapi.yaml` against the running gateway: every answer the
//! decision and admin endpoints give here, allow and deny and every error,
//! must be a documented status of its operation, with the documented
//! content type, the documented headers, and a body valid under the
//! documented schema (OpenAPI 3.1 schemas are JSON Schema 2020-12).
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
use portcullis_demo::{DEMO_ADMIN_TOKEN, DEMO_API_KEY};
use serde_json::{Value, json};

const TOKEN: &str = "decision-token-for-openapi";
const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";

fn spec() -> Value {
    let text =
        std::fs::read_to_string(portcullis_tests::workspace_root().join("docs/openapi.yaml"))
            .expect("docs/openapi.yaml");
    serde_norway::from_str(&text).expect("valid YAML")
}

/// Follows an OpenAPI `$ref` (`#/components/...`) inside the document.
fn deref<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => spec
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// Checks one exchange against the operation `method path` of the spec.
fn conforms(spec: &Value, method: &str, path: &str, a: &Answer) {
    let what = format!("{method} {path} → {}", a.status.as_u16());
    let op = spec["paths"][path]
        .get(method)
        .unwrap_or_else(|| panic!("{method} {path} is not documented"));
    let response = op["responses"]
        .get(a.status.as_str())
        .map(|r| deref(spec, r))
        .unwrap_or_else(|| panic!("{what}: status not documented"));
    if let Some(headers) = response.get("headers").and_then(Value::as_object) {
        for name in headers.keys() {
            assert!(
                a.headers.contains_key(name.as_str()),
                "{what}: documented header {name} missing"
            );
        }
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return;
    };
    let actual = a
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (media, body) = content
        .iter()
        .find(|(m, _)| actual.starts_with(m.as_str()))
        .unwrap_or_else(|| panic!("{what}: content type {actual:?} not documented"));
    if media != "application/json" {
        return;
    }
    // The operation's schema, with the spec's components beside it so its
    // `#/components/schemas/...` references resolve.
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": spec["components"],
        "allOf": [body["schema"]],
    });
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&a.body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\nbody: {}", a.body);
}

async fn call(
    gw: &Gw,
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    send(&gw.client, method, &format!("{base}{path}"), headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_the_decision_and_admin_endpoints_is_documented() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.decision.listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.decision.token = Some(TOKEN.into());
    })
    .await;
    let d = format!("http://{}", gw.running.decision_addr.expect("listener"));
    let admin = gw.admin.clone();
    let auth = format!("Bearer {TOKEN}");
    let with_token = [("authorization", auth.as_str())];
    let check = |action: &str| {
        json!({"principal": "user/pat", "action": action, "resource": "catalog/sales"})
            .to_string()
            .into_bytes()
    };

    // /v1/check: allow, deny, malformed, no token, wrong method.
    for (headers, body, want) in [
        (&with_token[..], check("read"), StatusCode::OK),
        (&with_token[..], check("write"), StatusCode::OK),
        (
            &with_token[..],
            b"{\"action\": 1}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (&[][..], check("read"), StatusCode::UNAUTHORIZED),
    ] {
        let a = call(&gw, &d, Method::POST, "/v1/check", headers, body).await;
        assert_eq!(a.status, want, "{}", a.body);
        conforms(&spec, "post", "/v1/check", &a);
    }
    let a = call(&gw, &d, Method::GET, "/v1/check", &with_token, vec![]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    // Documented on POST: the operation that exists.
    conforms(&spec, "post", "/v1/check", &a);

    // /v1/check/batch: answers, and too many.
    let batch = |n: usize| {
        let checks: Vec<Value> = (0..n)
            .map(|i| json!({"principal": "user/pat", "action": if i % 2 == 0 { "read" } else { "write" }, "resource": "catalog/sales", "context": {"bulk": true}}))
            .collect();
        json!({ "checks": checks }).to_string().into_bytes()
    };
    for (n, want) in [(3, StatusCode::OK), (1001, StatusCode::BAD_REQUEST)] {
        let a = call(
            &gw,
            &d,
            Method::POST,
            "/v1/check/batch",
            &with_token,
            batch(n),
        )
        .await;
        assert_eq!(a.status, want, "{}", a.body);
        conforms(&spec, "post", "/v1/check/batch", &a);
    }

    // The adapters: allow, deny, no credentials, no original request.
    let pat = bearer("pat");
    let nginx = |method: &'static str| [("x-original-method", method), ("x-original-uri", TABLE)];
    for (headers, want) in [
        (
            vec![nginx("GET")[0], nginx("GET")[1], ("authorization", &pat)],
            StatusCode::OK,
        ),
        (
            vec![nginx("PUT")[0], nginx("PUT")[1], ("authorization", &pat)],
            StatusCode::FORBIDDEN,
        ),
        (nginx("GET").to_vec(), StatusCode::UNAUTHORIZED),
        (vec![("authorization", &pat)], StatusCode::FORBIDDEN),
    ] {
        let a = call(&gw, &d, Method::GET, "/v1/nginx", &headers, vec![]).await;
        assert_eq!(a.status, want);
        conforms(&spec, "get", "/v1/nginx", &a);
    }
    let traefik = |method: &'static str| {
        [
            ("x-forwarded-method", method),
            ("x-forwarded-uri", TABLE),
            ("x-forwarded-host", "app.example"),
        ]
    };
    for (headers, want) in [
        (
            [&traefik("GET")[..], &[("x-api-key", DEMO_API_KEY)]].concat(),
            StatusCode::OK,
        ),
        (
            [&traefik("DELETE")[..], &[("authorization", pat.as_str())]].concat(),
            StatusCode::FORBIDDEN,
        ),
        (traefik("GET").to_vec(), StatusCode::UNAUTHORIZED),
        (
            vec![("authorization", pat.as_str())],
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let a = call(&gw, &d, Method::GET, "/v1/traefik", &headers, vec![]).await;
        assert_eq!(a.status, want, "{}", a.body);
        conforms(&spec, "get", "/v1/traefik", &a);
    }
    for (method, headers, want) in [
        (
            Method::GET,
            vec![("authorization", pat.as_str())],
            StatusCode::OK,
        ),
        (
            Method::GET,
            vec![("authorization", pat.as_str())],
            StatusCode::FORBIDDEN,
        ),
        (Method::GET, vec![], StatusCode::UNAUTHORIZED),
        (
            Method::GET,
            vec![("authorization", pat.as_str())],
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let path = match want {
            StatusCode::FORBIDDEN => "/v1/envoy/admin/everything".to_string(),
            StatusCode::BAD_REQUEST => "/v1/envoy/envs/prod%2Fx".to_string(),
            _ => format!("/v1/envoy{TABLE}"),
        };
        let a = call(&gw, &d, method, &path, &headers, vec![]).await;
        assert_eq!(a.status, want, "{path}: {}", a.body);
        conforms(&spec, "get", "/v1/envoy/{path}", &a);
    }

    // Admin: health, readiness, metrics, the snapshot, pushes.
    for path in ["/-/healthz", "/-/readyz", "/-/metrics", "/-/snapshot"] {
        let a = call(&gw, &admin, Method::GET, path, &[], vec![]).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        conforms(&spec, "get", path, &a);
    }
    let admin_auth = format!("Bearer {DEMO_ADMIN_TOKEN}");
    for (headers, body, want) in [
        (vec![], revision(2), StatusCode::UNAUTHORIZED),
        (
            vec![("authorization", admin_auth.as_str())],
            revision(2),
            StatusCode::OK,
        ),
        (
            vec![("authorization", admin_auth.as_str())],
            revision(1),
            StatusCode::CONFLICT,
        ),
        (
            vec![("authorization", admin_auth.as_str())],
            b"not a snapshot".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let a = call(&gw, &admin, Method::PUT, "/-/snapshot", &headers, body).await;
        assert_eq!(a.status, want, "{}", a.body);
        conforms(&spec, "put", "/-/snapshot", &a);
    }
    // Deltas: revision 2 serves now.
    let delta = {
        use portcullis_snapshots::delta::{compute, encode_delta};
        let (a, b) = (revision(2), revision(3));
        let (a, b) = (
            portcullis_snapshots::decode(&a).expect("decodes"),
            portcullis_snapshots::decode(&b).expect("decodes"),
        );
        let body = compute(&a.body, &b.body).expect("delta");
        encode_delta(&a.header, &b.header, &body).expect("encodes")
    };
    for (headers, body, want) in [
        (vec![], delta.clone(), StatusCode::UNAUTHORIZED),
        (
            vec![("authorization", admin_auth.as_str())],
            delta.clone(),
            StatusCode::OK,
        ),
        (
            vec![("authorization", admin_auth.as_str())],
            delta,
            StatusCode::CONFLICT,
        ),
        (
            vec![("authorization", admin_auth.as_str())],
            b"not a delta".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let a = call(&gw, &admin, Method::PATCH, "/-/snapshot", &headers, body).await;
        assert_eq!(a.status, want, "{}", a.body);
        conforms(&spec, "patch", "/-/snapshot", &a);
    }
    for path in ["/-/readyz", "/-/snapshot"] {
        let a = call(&gw, &admin, Method::GET, path, &[], vec![]).await;
        assert_eq!(a.body["delta"], true, "{path}: {}", a.body);
        conforms(&spec, "get", path, &a);
    }

    // Without a snapshot: 503s and a 404.
    let empty = gateway_with(None, |c, _| {
        c.decision.listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let d = format!("http://{}", empty.running.decision_addr.expect("listener"));
    let a = call(&empty, &d, Method::POST, "/v1/check", &[], check("read")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    conforms(&spec, "post", "/v1/check", &a);
    let a = call(&empty, &empty.admin, Method::GET, "/-/readyz", &[], vec![]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    conforms(&spec, "get", "/-/readyz", &a);
    let a = call(
        &empty,
        &empty.admin,
        Method::GET,
        "/-/snapshot",
        &[],
        vec![],
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    conforms(&spec, "get", "/-/snapshot", &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_the_directory_service_is_documented() {
    let spec = spec();
    let tmp = tempfile::tempdir().unwrap();
    let d = common::directory::directory(tmp.path(), 4096).await;
    let null = Value::Null;
    let mut seen = std::collections::BTreeSet::new();
    let mut check = |method: &str, path: &str, a: &Answer| {
        conforms(&spec, method, path, a);
        seen.insert((method.to_string(), path.to_string(), a.status.as_u16()));
    };
    let changes = "/v1/directory/changes";
    let deactivate = |u: &str| json!({"operations": [{"op": "deactivate_user", "username": u}]});

    // Writes: each status a write can answer.
    let a = d
        .call(Method::POST, changes, Some("olivia"), deactivate("dave"))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    check("post", changes, &a);
    for (body, user, want) in [
        (deactivate("olivia"), Some("adam"), 403),
        (deactivate("dave"), None, 401),
        (
            json!({"operations": [{"op": "deactivate_user"}]}),
            Some("olivia"),
            400,
        ),
        (
            json!({"operations": [{"op": "remove_grant", "grant": {"principal": "user/dave", "role": "writer", "on": "org/acme"}}]}),
            Some("olivia"),
            404,
        ),
        (
            json!({"operations": [{"op": "add_grant", "grant": {"principal": "user/dave", "role": "reader", "on": "org/acme"}}]}),
            Some("olivia"),
            409,
        ),
        (
            json!({"operations": [{"op": "delete_organization", "id": "apac"}]}),
            Some("olivia"),
            422,
        ),
    ] {
        let a = d.call(Method::POST, changes, user, body).await;
        assert_eq!(a.status.as_u16(), want, "{}", a.body);
        check("post", changes, &a);
    }
    let a = d
        .call_with(
            Method::POST,
            changes,
            Some("olivia"),
            deactivate("carol"),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED);
    check("post", changes, &a);
    let a = d
        .raw(Method::POST, changes, "olivia", vec![b' '; 5000])
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    check("post", changes, &a);

    // Resource-style writes.
    let user = "/v1/directory/users/{username}";
    for (method, path, template, body, who, want) in [
        (
            Method::POST,
            "/v1/directory/users",
            "/v1/directory/users",
            json!({"user": {"username": "nia", "email": "nia@acme.example", "organization": "acme"}}),
            "olivia",
            200,
        ),
        (
            Method::PATCH,
            "/v1/directory/users/nia",
            user,
            json!({"email": "nia@new.example"}),
            "olivia",
            200,
        ),
        (
            Method::PUT,
            "/v1/directory/users/nia/expiry",
            "/v1/directory/users/{username}/expiry",
            json!({"expires_at": "2030-01-01T00:00:00Z"}),
            "olivia",
            200,
        ),
        (
            Method::PUT,
            "/v1/directory/users/rhea/expiry",
            "/v1/directory/users/{username}/expiry",
            json!({"expires_at": null}),
            "rhea",
            403,
        ),
        (
            Method::PUT,
            "/v1/directory/users/nia/admin-role",
            "/v1/directory/users/{username}/admin-role",
            json!({"admin_role": "administrator"}),
            "olivia",
            200,
        ),
        (
            Method::POST,
            "/v1/directory/users/nia/deactivate",
            "/v1/directory/users/{username}/deactivate",
            null.clone(),
            "olivia",
            200,
        ),
        (
            Method::POST,
            "/v1/directory/users/nia/reactivate",
            "/v1/directory/users/{username}/reactivate",
            null.clone(),
            "olivia",
            200,
        ),
        (
            Method::PUT,
            "/v1/directory/teams/noc/members/sue",
            "/v1/directory/teams/{team}/members/{username}",
            null.clone(),
            "tom",
            200,
        ),
        (
            Method::DELETE,
            "/v1/directory/teams/noc/members/sue",
            "/v1/directory/teams/{team}/members/{username}",
            null.clone(),
            "tom",
            200,
        ),
        (
            Method::POST,
            "/v1/directory/grants",
            "/v1/directory/grants",
            json!({"grant": {"principal": "user/pat", "role": "writer", "on": "catalog/sales"}}),
            "olivia",
            200,
        ),
        (
            Method::DELETE,
            "/v1/directory/grants",
            "/v1/directory/grants",
            json!({"grant": {"principal": "user/pat", "role": "writer", "on": "catalog/sales"}}),
            "olivia",
            200,
        ),
        (
            Method::POST,
            "/v1/directory/api-keys",
            "/v1/directory/api-keys",
            json!({"id": "sam-2", "name": "two"}),
            "sam",
            200,
        ),
        (
            Method::DELETE,
            "/v1/directory/api-keys/sam-2",
            "/v1/directory/api-keys/{id}",
            null.clone(),
            "sam",
            200,
        ),
        (
            Method::DELETE,
            "/v1/directory/users/nia",
            user,
            null.clone(),
            "olivia",
            200,
        ),
    ] {
        let a = d.call(method.clone(), path, Some(who), body).await;
        assert_eq!(a.status.as_u16(), want, "{method} {path}: {}", a.body);
        check(&method.as_str().to_ascii_lowercase(), template, &a);
    }

    // Reads.
    for (path, template, who, want) in [
        (
            "/v1/directory/changes?after=1&limit=5",
            changes,
            "olivia",
            200,
        ),
        ("/v1/directory/changes", changes, "dave", 403),
        ("/v1/directory/changes?after=x", changes, "olivia", 400),
        ("/v1/directory", "/v1/directory", "olivia", 200),
        ("/v1/directory", "/v1/directory", "pat", 403),
        (
            "/v1/directory/revision",
            "/v1/directory/revision",
            "pat",
            200,
        ),
        (
            "/v1/directory/actions?resource=user/rhea",
            "/v1/directory/actions",
            "adam",
            200,
        ),
        (
            "/v1/directory/actions",
            "/v1/directory/actions",
            "adam",
            400,
        ),
        (
            "/v1/directory/permissions",
            "/v1/directory/{section}",
            "olivia",
            200,
        ),
        (
            "/v1/directory/users?limit=3",
            "/v1/directory/users",
            "olivia",
            200,
        ),
        ("/v1/directory/users/dave", user, "olivia", 200),
        ("/v1/directory/users/olivia", user, "adam", 403),
        (
            "/v1/directory/grants?limit=3",
            "/v1/directory/{section}",
            "olivia",
            200,
        ),
        (
            "/v1/directory/api-keys",
            "/v1/directory/{section}",
            "sam",
            200,
        ),
        (
            "/v1/directory/teams/noc",
            "/v1/directory/{section}/{id}",
            "kim",
            200,
        ),
        (
            "/v1/directory/teams/noc",
            "/v1/directory/{section}/{id}",
            "dave",
            403,
        ),
        (
            "/v1/directory/teams/nope",
            "/v1/directory/{section}/{id}",
            "olivia",
            404,
        ),
    ] {
        let a = d.call(Method::GET, path, Some(who), null.clone()).await;
        assert_eq!(a.status.as_u16(), want, "{path}: {}", a.body);
        check("get", template, &a);
    }

    // An administrator's new address waits for its holder (seed 003).
    let a = d
        .call(
            Method::PATCH,
            "/v1/directory/users/ada",
            Some("olivia"),
            json!({"email": "ada@new.example"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    check("patch", user, &a);
    assert_eq!(a.body["operations"][0]["outcome"], "pending_approval");
    let id = a.body["operations"][0]["approval"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let approvals = "/v1/directory/approvals";
    let one = "/v1/directory/approvals/{id}";
    let a = d
        .call(Method::GET, approvals, Some("ada"), null.clone())
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["approvals"][0]["id"], id.as_str());
    check("get", approvals, &a);
    let path = format!("{approvals}/{id}");
    for (method, who, want) in [
        (Method::POST, "olivia", 403),
        (Method::POST, "ada", 200),
        (Method::POST, "ada", 404),
        (Method::DELETE, "ada", 404),
    ] {
        let a = d.call(method.clone(), &path, Some(who), null.clone()).await;
        assert_eq!(
            a.status.as_u16(),
            want,
            "{method} {path} as {who}: {}",
            a.body
        );
        check(&method.as_str().to_ascii_lowercase(), one, &a);
    }
    assert!(seen.len() >= 30, "{seen:?}");
}
