//! The decision endpoint end to end: `POST /v1/check`, `/v1/check/batch`,
//! and the nginx, Traefik and Envoy adapters, over real sockets with the
//! real module and the demo configuration (routes, tokens, example
//! directory). The Traefik and Envoy cases replay the requests those
//! gateways send (recorded header sets: Traefik's ForwardAuth middleware and
//! Envoy's ext_authz HTTP service mode); nginx itself is exercised in
//! `cli/tests/nginx.rs`.
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
use portcullis_demo::DEMO_API_KEY;
use serde_json::{Value, json};

const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";
const AUTHZ: &str = "/-/authz";

fn snippet(name: &str) -> String {
    std::fs::read_to_string(
        portcullis_tests::workspace_root()
            .join("docs/snippets")
            .join(name),
    )
    .expect("snippet")
}

/// The values of the `- item` lines under `key:` in a YAML snippet.
fn yaml_list(text: &str, key: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| l.trim() != format!("{key}:"));
    lines.next();
    lines
        .map(str::trim)
        .take_while(|l| l.starts_with("- "))
        .map(|l| l.trim_start_matches("- ").to_string())
        .collect()
}

/// The value of the first `key: value` line in a YAML snippet.
fn yaml_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no {key} in the snippet"))
}

#[test]
fn the_docs_quote_the_tested_snippets_verbatim() {
    for (doc, names) in [
        (
            "gateway.md",
            &["nginx.conf", "traefik.yaml", "envoy.yaml", "Caddyfile"][..],
        ),
        ("DEPLOYMENT.md", &["replica.toml", "portcullis.service"][..]),
    ] {
        let text =
            std::fs::read_to_string(portcullis_tests::workspace_root().join("docs").join(doc))
                .expect("docs");
        for name in names {
            assert!(
                text.contains(&snippet(name)),
                "docs/{doc} does not quote docs/snippets/{name}"
            );
        }
    }
}

impl Gw {
    async fn post_json(&self, path: &str, headers: &[(&str, &str)], body: Value) -> Answer {
        send(
            &self.client,
            Method::POST,
            &format!("{}{AUTHZ}{path}", self.base),
            headers,
            body.to_string().into_bytes(),
        )
        .await
    }

    async fn adapter(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
        send(
            &self.client,
            method,
            &format!("{}{AUTHZ}{path}", self.base),
            headers,
            vec![],
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_answers_allow_and_deny_with_the_reason() {
    let gw = gateway().await;
    let a = gw
        .post_json(
            "/v1/check",
            &[],
            json!({"principal": "user/pat", "action": "read", "resource": "catalog/sales"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["decision"], "allow");
    assert_eq!(a.body["allowed"], true);
    assert_eq!(a.body["principal"], "user/pat");
    assert_eq!(a.body["revision"], 1);

    let a = gw
        .post_json(
            "/v1/check",
            &[],
            json!({"principal": "user/pat", "action": "write", "resource": "catalog/sales"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["decision"], "deny");
    assert_eq!(a.body["reason"], "no_grant");
    assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));

    // Seed 000: administrators never act on owners, whatever the grants.
    let a = gw
        .post_json(
            "/v1/check",
            &[],
            json!({"principal": "user/adam", "action": "user:update", "resource": "user/olivia"}),
        )
        .await;
    assert_eq!(a.body["reason"], "administrator_over_owner", "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_verifies_credentials_like_the_proxy() {
    let gw = gateway().await;
    let token = bearer("pat");
    let a = gw
        .post_json(
            "/v1/check",
            &[],
            json!({"credentials": {"authorization": token}, "action": "read", "resource": "catalog/sales"}),
        )
        .await;
    assert_eq!(a.body["decision"], "allow", "{}", a.body);
    assert_eq!(a.body["principal"], "user/pat");

    let a = gw
        .post_json(
            "/v1/check",
            &[],
            json!({"credentials": {"authorization": "Bearer forged.jwt.value"}, "action": "read", "resource": "catalog/sales"}),
        )
        .await;
    assert_eq!(a.body["decision"], "deny");
    assert_eq!(a.body["reason"], "unauthenticated");

    let a = gw
        .post_json(
            "/v1/check",
            &[],
            json!({"credentials": {"api_key": DEMO_API_KEY}, "action": "read", "resource": "catalog/sales"}),
        )
        .await;
    assert!(a.body["acting_as"].as_str().is_some(), "{}", a.body);
    assert!(
        a.body["principal"]
            .as_str()
            .is_some_and(|p| p.starts_with("apikey/"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_checks_are_400_with_a_reason() {
    let gw = gateway().await;
    for body in [
        json!({"action": "read"}),
        json!({"principal": "user/pat", "action": "read", "resource": "catalog/sales", "extra": 1}),
        json!("not an object"),
    ] {
        let a = gw.post_json("/v1/check", &[], body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(a.body["reason"], "malformed_request");
    }
    let both = gw
        .post_json(
            "/v1/check",
            &[],
            json!({"principal": "user/pat", "credentials": {}, "action": "read", "resource": "catalog/sales"}),
        )
        .await;
    assert_eq!(both.body["reason"], "malformed_request");
    let get = gw.adapter(Method::GET, "/v1/check", &[]).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    let unknown = gw.adapter(Method::GET, "/v1/nope", &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_answers_in_order_on_one_revision() {
    let gw = gateway().await;
    let checks: Vec<Value> = ["read", "write", "read"]
        .iter()
        .zip(["catalog/sales", "catalog/sales", "catalog/nowhere"])
        .map(|(a, r)| json!({"principal": "user/pat", "action": a, "resource": r}))
        .collect();
    let a = gw
        .post_json("/v1/check/batch", &[], json!({"checks": checks}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["revision"], 1);
    let decisions: Vec<&str> = a.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["decision"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(decisions, ["allow", "deny", "deny"]);
    assert_eq!(a.body["results"][2]["reason"], "unknown_resource");

    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"principal": "user/pat", "action": "read", "resource": "catalog/sales"}))
        .collect();
    let a = gw
        .post_json("/v1/check/batch", &[], json!({"checks": too_many}))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("1000"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_listener_and_endpoint_token() {
    let gw = gateway_with(Some(revision(1)), |c, _| {
        c.decision.listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.decision.path_prefix = None;
        c.decision.token = Some("decision-token-0123456789".into());
    })
    .await;
    let addr = gw.running.decision_addr.expect("decision listener");
    let body = json!({"principal": "user/pat", "action": "read", "resource": "catalog/sales"});
    let url = format!("http://{addr}/v1/check");
    let a = send(
        &gw.client,
        Method::POST,
        &url,
        &[],
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = send(
        &gw.client,
        Method::POST,
        &url,
        &[("authorization", "Bearer decision-token-0123456789")],
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(a.body["decision"], "allow", "{}", a.body);
    // Without a prefix, the proxy listener does not serve it.
    let a = gw.post_json("/v1/check", &[], body).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["reason"], "no_route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_gets_200_with_identity_401_or_403() {
    let gw = gateway().await;
    let pat = bearer("pat");
    let original = |method: &'static str, uri: &'static str| {
        [
            ("x-original-method", method),
            ("x-original-uri", uri),
            ("host", "app.example"),
        ]
    };
    let mut h = original("GET", "/envs/prod/catalogs/sales/tables/orders?limit=5").to_vec();
    h.push(("authorization", &pat));
    let a = gw.adapter(Method::GET, "/v1/nginx", &h).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["x-portcullis-principal"], "user/pat");
    assert_eq!(a.headers["x-portcullis-revision"], "1");
    assert_eq!(a.headers["x-portcullis-acting-as"], "");

    let mut h = original("PUT", TABLE).to_vec();
    h.push(("authorization", &pat));
    let a = gw.adapter(Method::GET, "/v1/nginx", &h).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.headers["x-portcullis-reason"], "no_grant");

    let a = gw
        .adapter(Method::GET, "/v1/nginx", &original("GET", TABLE))
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.contains_key("www-authenticate"));

    // nginx only understands 2xx, 401 and 403: a malformed path is a 403.
    let mut h = original("GET", "/envs/prod/catalogs/sales%2Ftables/orders").to_vec();
    h.push(("authorization", &pat));
    let a = gw.adapter(Method::GET, "/v1/nginx", &h).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.headers["x-portcullis-reason"], "malformed_path");

    // Without the original request, nothing is allowed.
    let a = gw
        .adapter(Method::GET, "/v1/nginx", &[("authorization", &pat)])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.headers["x-portcullis-reason"], "missing_original_request");
}

/// What Traefik's ForwardAuth middleware sends: the client's headers plus
/// X-Forwarded-{Method,Proto,Host,Uri,For}, as a GET to the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_forward_auth_contract() {
    let gw = gateway().await;
    let key = DEMO_API_KEY;
    let recorded = |method: &'static str, uri: &'static str| {
        vec![
            ("x-forwarded-method", method),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example"),
            ("x-forwarded-uri", uri),
            ("x-forwarded-for", "203.0.113.7"),
            ("accept", "application/json"),
            ("user-agent", "curl/8.5.0"),
        ]
    };
    let config = snippet("traefik.yaml");
    let address = yaml_value(&config, "address");
    let endpoint = address
        .strip_prefix("http://127.0.0.1:9191")
        .expect("the decision listener");
    let copied = yaml_list(&config, "authResponseHeaders");
    assert_eq!(copied.len(), 3, "{copied:?}");

    let mut h = recorded("GET", TABLE);
    h.push(("x-api-key", key));
    let a = gw.adapter(Method::GET, endpoint, &h).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    for name in &copied {
        assert!(
            a.headers.contains_key(name.as_str()),
            "{name} missing on allow"
        );
    }
    assert!(
        a.headers["x-portcullis-principal"]
            .to_str()
            .is_ok_and(|p| p.starts_with("apikey/"))
    );
    assert_ne!(a.headers["x-portcullis-acting-as"], "");

    let pat = bearer("pat");
    let mut h = recorded("DELETE", TABLE);
    h.push(("authorization", &pat));
    let a = gw.adapter(Method::GET, endpoint, &h).await;
    // Traefik shows the client this response as it is.
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["reason"], "no_grant");
    assert_eq!(a.headers["content-type"], "application/json");

    let a = gw
        .adapter(Method::GET, endpoint, &recorded("GET", TABLE))
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    let mut h = recorded("GET", "/nowhere");
    h.push(("authorization", &pat));
    let a = gw.adapter(Method::GET, endpoint, &h).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["reason"], "no_route");
}

/// What Envoy's ext_authz filter (HTTP service, `path_prefix:
/// /-/authz/v1/envoy`) sends: the original method, the prefix + the
/// original path, and the allowed headers (Host, Authorization, …).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_ext_authz_contract() {
    let gw = gateway().await;
    let pat = bearer("pat");
    let h = [
        ("host", "app.example"),
        ("authorization", pat.as_str()),
        ("x-envoy-expected-rq-timeout-ms", "250"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "9f0c4d1e-2b7a-4c55-9d7e-1a2b3c4d5e6f"),
    ];
    let config = snippet("envoy.yaml");
    let prefix = yaml_value(&config, "path_prefix");
    let upstream_headers: Vec<String> = config
        .lines()
        .skip_while(|l| l.trim() != "allowed_upstream_headers:")
        .skip(2)
        .map_while(|l| l.trim().strip_prefix("- exact: ").map(str::to_string))
        .collect();
    assert_eq!(upstream_headers.len(), 3, "{upstream_headers:?}");
    let a = gw
        .adapter(Method::GET, &format!("{prefix}{TABLE}?limit=5"), &h)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers["x-portcullis-principal"], "user/pat");
    for name in &upstream_headers {
        assert!(
            a.headers.contains_key(name.as_str()),
            "{name} missing on allow"
        );
    }

    let a = gw
        .adapter(Method::DELETE, &format!("{prefix}{TABLE}"), &h)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["reason"], "no_grant");

    let a = gw
        .adapter(
            Method::GET,
            &format!("{prefix}{TABLE}"),
            &[("host", "app.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_endpoint_checks_are_counted() {
    let gw = gateway().await;
    gw.post_json(
        "/v1/check",
        &[],
        json!({"principal": "user/pat", "action": "read", "resource": "catalog/sales"}),
    )
    .await;
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains(
            "portcullis_decision_api_checks_total{endpoint=\"check\",decision=\"allow\"} 1"
        ),
        "{metrics}"
    );
}

/// Issue #12, hole 8: `/v1/check` with credentials used to decide on its
/// own path (an unknown API key was a 200 deny there and a 401 at the
/// proxy). One checkpoint decides for both: on every kind of credential
/// the proxy and the decision endpoint give the same answer — the same
/// refusal (status and reason) when the credentials are refused, the same
/// decision and reason when the engine decides (a denial is a 403 at the
/// proxy and a 200 answer at the endpoint, by design).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_the_proxy_agree_on_every_kind_of_credential() {
    let gw = gateway().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let sign = |claims: Value| {
        format!(
            "Bearer {}",
            portcullis_demo::demo_sign(&claims).expect("sign")
        )
    };
    let claims = |sub: &str, exp: i64| json!({"sub": sub, "iss": "portcullis-demo", "aud": "portcullis-demo", "exp": exp});
    let mut forged = bearer("pat");
    let last = forged.pop().unwrap_or('A');
    forged.push(if last == 'A' { 'B' } else { 'A' });
    // (kind, Authorization, API key)
    let cases: Vec<(&str, Option<String>, Option<&str>)> = vec![
        ("a valid token that may", Some(bearer("pat")), None),
        ("a valid token that may not", Some(bearer("victor")), None),
        ("a token of a disabled user", Some(bearer("dan")), None),
        (
            "a token of a user the directory lacks",
            Some(bearer("nobody")),
            None,
        ),
        (
            "an expired token",
            Some(sign(claims("pat", now - 3600))),
            None,
        ),
        ("a forged token", Some(forged), None),
        (
            "a token naming a service account by spelling",
            Some(sign(claims("service/etl-loader", now + 600))),
            None,
        ),
        (
            "the demo's mapped service account",
            Some(sign(claims("svc:etl-loader", now + 600))),
            None,
        ),
        (
            "a Basic credential",
            Some("Basic cGF0OnBhdA==".into()),
            None,
        ),
        ("no credentials", None, None),
        ("a known API key", None, Some(DEMO_API_KEY)),
        ("an unknown API key", None, Some("pk_nobody_knows_this_key")),
        (
            "a token and an API key",
            Some(bearer("pat")),
            Some(DEMO_API_KEY),
        ),
    ];
    for (kind, authorization, api_key) in cases {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = authorization.as_deref() {
            headers.push(("authorization", a));
        }
        if let Some(k) = api_key {
            headers.push(("x-api-key", k));
        }
        let proxy = send(
            &gw.client,
            Method::GET,
            &format!("{}{TABLE}", gw.base),
            &headers,
            vec![],
        )
        .await;
        let mut credentials = serde_json::Map::new();
        if let Some(a) = &authorization {
            credentials.insert("authorization".into(), json!(a));
        }
        if let Some(k) = api_key {
            credentials.insert("api_key".into(), json!(k));
        }
        let check = gw
            .post_json(
                "/v1/check",
                &[],
                json!({"credentials": credentials, "action": "read", "resource": "catalog/sales"}),
            )
            .await;
        let proxy_reason = proxy
            .headers
            .get("x-portcullis-reason")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match proxy.status {
            StatusCode::OK => {
                assert_eq!(check.status, StatusCode::OK, "{kind}: {}", check.body);
                assert_eq!(check.body["decision"], "allow", "{kind}: {}", check.body);
                assert_eq!(
                    Some(check.body["principal"].as_str().unwrap_or_default()),
                    proxy.body["x-portcullis-principal"].as_str(),
                    "{kind}"
                );
            }
            StatusCode::FORBIDDEN => {
                assert_eq!(check.status, StatusCode::OK, "{kind}: {}", check.body);
                assert_eq!(check.body["decision"], "deny", "{kind}");
                assert_eq!(check.body["reason"], proxy_reason, "{kind}: {}", check.body);
            }
            status => {
                assert_eq!(
                    check.status, status,
                    "{kind}: {} vs {}",
                    check.body, proxy.body
                );
                assert_eq!(check.body["reason"], proxy_reason, "{kind}");
                assert_eq!(
                    check.headers.get("www-authenticate").is_some(),
                    proxy.headers.get("www-authenticate").is_some(),
                    "{kind}"
                );
            }
        }
    }
    // In a batch, a refused item says the status /v1/check would have had.
    let a = gw
        .post_json(
            "/v1/check/batch",
            &[],
            json!({"checks": [
                {"credentials": {"api_key": "pk_nobody_knows_this_key"}, "action": "read", "resource": "catalog/sales"},
                {"principal": "user/pat", "action": "read", "resource": "catalog/sales"}
            ]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["results"][0]["status"], 401, "{}", a.body);
    assert_eq!(a.body["results"][0]["reason"], "unauthenticated");
    assert_eq!(a.body["results"][1]["decision"], "allow");
    assert!(a.body["results"][1].get("status").is_none());
}

/// Issue #12, holes 1, 4 and 10 through the adapters: the external
/// gateway forwards the client's request as it is, so what the proxy would
/// strip or refuse is refused here — a method override (nginx gets a 403,
/// the only refusal besides 401 it passes on), a junk host, `..;`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapters_refuse_what_the_proxy_would_strip_or_refuse() {
    let gw = gateway().await;
    let pat = bearer("pat");
    let nginx =
        |uri: &'static str, host: &'static str, extra: Option<(&'static str, &'static str)>| {
            let mut h = vec![
                ("x-original-method", "GET"),
                ("x-original-uri", uri),
                ("host", host),
            ];
            h.extend(extra);
            h
        };
    for (what, mut headers, reason) in [
        (
            "a method override",
            nginx(
                TABLE,
                "app.example",
                Some(("x-http-method-override", "DELETE")),
            ),
            "method_override",
        ),
        (
            "a look-alike method override",
            nginx(
                TABLE,
                "app.example",
                Some(("x_http_method_override", "DELETE")),
            ),
            "method_override",
        ),
        (
            "a junk host",
            nginx(TABLE, "app.example:1@evil.example", None),
            "malformed_host",
        ),
        (
            "..; behind a wildcard",
            nginx(
                "/envs/prod/catalogs/sales/tables/..;/..;/..;/..;/staging/catalogs/staging-sales/x",
                "app.example",
                None,
            ),
            "malformed_path",
        ),
    ] {
        headers.push(("authorization", &pat));
        let a = gw.adapter(Method::GET, "/v1/nginx", &headers).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
        assert_eq!(a.headers["x-portcullis-reason"], reason, "{what}");
    }
    // Traefik shows the proxy's own status.
    let a = gw
        .adapter(
            Method::GET,
            "/v1/traefik",
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", TABLE),
                ("x-forwarded-host", "app.example"),
                ("x-http-method-override", "DELETE"),
                ("authorization", &pat),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.body["reason"], "method_override");
}
