//! The decision endpoint: Portcullis as a policy decision point for
//! services and for the gateways people already run. Served on its own
//! listener (`decision.listen`), under a prefix of the proxy listener
//! (`decision.path_prefix`), or both; the paths below are relative to it.
//!
//! | method and path          | answer |
//! |--------------------------|--------|
//! | `POST /v1/check`         | one decision: `{principal | credentials, action, resource, context?}` → `{decision, allowed, reason, message, …}` |
//! | `POST /v1/check/batch`   | `{checks: [...]}` → `{revision, results: [...]}`, all on one snapshot |
//! | any `/v1/nginx`          | nginx `auth_request` ([`crate::adapters`]) |
//! | any `/v1/traefik`        | Traefik ForwardAuth |
//! | any `/v1/envoy/<path>`   | Envoy ext_authz, HTTP service |
//!
//! The JSON endpoints answer 200 with the decision in the body (a denial is
//! an answer, not an error), 400 for a malformed request, 401 without the
//! endpoint's token when one is configured, 503 without a snapshot.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::authorize::{Verdict, decide};
use crate::forward::Body;
use crate::identity::Credential;
use crate::server::{Logged, Shared, json_response, read_body, refuse, unix_now};
use crate::swap::Generation;

/// The JSON endpoints' paths, relative to the mount point.
pub const CHECK: &str = "/v1/check";
/// See [`CHECK`].
pub const CHECK_BATCH: &str = "/v1/check/batch";

/// One question.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    /// Who, when the caller has already authenticated them (`user/pat`).
    principal: Option<String>,
    /// Or the end user's own credentials, verified like the proxy does.
    credentials: Option<Credentials>,
    action: String,
    resource: String,
    #[serde(default)]
    context: CheckContext,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    /// The `Authorization` header's value (`Bearer <jwt>`).
    authorization: Option<String>,
    /// An API key.
    api_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckContext {
    /// Unix seconds; the gateway's clock when left out.
    now: Option<i64>,
    /// Part of a bulk operation.
    #[serde(default)]
    bulk: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    checks: Vec<CheckRequest>,
}

/// One answer.
#[derive(Debug, Serialize)]
struct CheckResponse<'a> {
    decision: &'static str,
    allowed: bool,
    reason: Cow<'a, str>,
    /// A sentence for people (on denials).
    #[serde(skip_serializing_if = "str::is_empty")]
    message: Cow<'a, str>,
    /// The principal decided for (for credentials: whom they name).
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    /// For an API key: the user it acts as.
    #[serde(skip_serializing_if = "Option::is_none")]
    acting_as: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
}

impl CheckResponse<'static> {
    fn refused(reason: &'static str, message: String, revision: Option<u64>) -> Self {
        CheckResponse {
            decision: "deny",
            allowed: false,
            reason: Cow::Borrowed(reason),
            message: Cow::Owned(message),
            principal: None,
            acting_as: None,
            revision,
        }
    }
}

/// Serves a request whose path, relative to the mount point, is `rel`.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
    rel: &str,
) -> Response<Body> {
    let started = Instant::now();
    match rel {
        CHECK | CHECK_BATCH => {
            if req.method() != Method::POST {
                let mut r = refuse(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    &format!("{rel} takes POST with a JSON body"),
                    None,
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                return r;
            }
            if !token_ok(&shared, req.headers()) {
                let mut r = refuse(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "this decision endpoint needs `Authorization: Bearer <decision.token>`",
                    None,
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"portcullis-decision\""),
                );
                return r;
            }
            let body = match read_body(req.into_body(), shared.config.server.max_body_bytes).await {
                Ok(b) => b,
                Err(e) => return malformed(&format!("cannot read the body: {e}")),
            };
            if rel == CHECK {
                check_one(&shared, &body, started)
            } else {
                check_batch(&shared, &body, started)
            }
        }
        _ => match crate::adapters::Adapter::for_path(rel) {
            Some((adapter, original_path)) => {
                let original_path = original_path.to_string();
                crate::adapters::handle(&shared, adapter, req, &original_path, started)
            }
            None => json_response(
                StatusCode::NOT_FOUND,
                &json!({
                    "decision": "deny",
                    "reason": "unknown_endpoint",
                    "message": "unknown decision endpoint",
                    "endpoints": [CHECK, CHECK_BATCH, "/v1/nginx", "/v1/traefik", "/v1/envoy/<path>"],
                }),
            ),
        },
    }
}

/// The endpoint's bearer token, when one is configured.
fn token_ok(shared: &Shared, headers: &HeaderMap) -> bool {
    match &shared.decision_token {
        None => true,
        Some(expected) => {
            crate::admin::bearer(headers).is_some_and(|t| crate::admin::token_ok(expected, t))
        }
    }
}

fn malformed(message: &str) -> Response<Body> {
    refuse(StatusCode::BAD_REQUEST, "malformed_request", message, None)
}

fn check_one(shared: &Shared, body: &[u8], started: Instant) -> Response<Body> {
    let req: CheckRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return malformed(&format!("the body is not a check request: {e}")),
    };
    let Some(generation) = shared.swapper.current() else {
        return no_snapshot();
    };
    let answer = answer(shared, &generation, &req, CHECK, started);
    let status = match answer.reason.as_ref() {
        "no_snapshot" | "engine_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    shared.metrics.api_check(false, answer.allowed);
    json_response(status, &answer)
}

fn check_batch(shared: &Shared, body: &[u8], started: Instant) -> Response<Body> {
    let req: BatchRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return malformed(&format!("the body is not a batch of checks: {e}")),
    };
    let max = shared.config.decision.max_batch;
    if req.checks.len() > max {
        return malformed(&format!(
            "{} checks in one batch; at most {max} (decision.max_batch)",
            req.checks.len()
        ));
    }
    // One generation for the whole batch: every answer is from one revision.
    let Some(generation) = shared.swapper.current() else {
        return no_snapshot();
    };
    let results: Vec<CheckResponse<'_>> = req
        .checks
        .iter()
        .map(|c| {
            let a = answer(shared, &generation, c, CHECK_BATCH, started);
            shared.metrics.api_check(true, a.allowed);
            a
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"revision": generation.revision, "results": results}),
    )
}

fn no_snapshot() -> Response<Body> {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_snapshot",
        "no directory snapshot is loaded yet; every check is denied until one is",
        None,
    )
}

/// Decides one check on `generation`, logging it like a proxied request.
fn answer<'r>(
    shared: &Shared,
    generation: &Arc<Generation>,
    req: &'r CheckRequest,
    endpoint: &'static str,
    started: Instant,
) -> CheckResponse<'r> {
    let revision = Some(generation.revision);
    let now = req.context.now.unwrap_or_else(unix_now);
    let credential = match (&req.principal, &req.credentials) {
        (Some(p), None) => Credential::Token(p.clone()),
        (None, Some(c)) => {
            let mut headers = HeaderMap::new();
            let mut put = |name: http::HeaderName, v: &Option<String>| match v {
                Some(v) => HeaderValue::from_str(v).map(|v| {
                    headers.insert(name, v);
                }),
                None => Ok(()),
            };
            let set = put(header::AUTHORIZATION, &c.authorization)
                .and_then(|()| put(shared.identity().api_key_header().clone(), &c.api_key));
            if set.is_err() {
                return CheckResponse::refused(
                    "unauthenticated",
                    "credentials hold characters not allowed in a header".into(),
                    revision,
                );
            }
            match shared.identity().authenticate(&headers, unix_now()) {
                Ok(c) => c,
                Err(e) => {
                    return CheckResponse::refused("unauthenticated", e.to_string(), revision);
                }
            }
        }
        _ => {
            return CheckResponse::refused(
                "malformed_request",
                "give exactly one of `principal` and `credentials`".into(),
                revision,
            );
        }
    };
    let verdict = match decide(
        generation,
        shared.swapper.pool(),
        &credential,
        &req.action,
        &req.resource,
        now,
        req.context.bulk,
    ) {
        Ok(v) => v,
        Err(e) => {
            shared.metrics.set_traps(shared.swapper.pool().traps());
            return CheckResponse::refused(e.reason(), e.to_string(), revision);
        }
    };
    let Verdict {
        allowed,
        reason,
        message,
        acting_as,
        revision,
    } = verdict;
    shared.log_decision(Logged {
        method: &Method::POST,
        path: endpoint,
        route: None,
        action: Some(&req.action),
        resource: Some(&req.resource),
        principal: Some(credential.principal()),
        acting_as: acting_as.as_deref(),
        allowed,
        reason: &reason,
        revision: Some(revision),
        started,
        shadow: false,
        status: None,
    });
    CheckResponse {
        decision: if allowed { "allow" } else { "deny" },
        allowed,
        reason,
        message: Cow::Owned(message),
        principal: Some(credential.principal().to_string()),
        acting_as,
        revision: Some(revision),
    }
}
