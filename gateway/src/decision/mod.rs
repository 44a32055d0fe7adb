//! The decision endpoint: Portcullis as a policy decision point for
//! services and for the gateways people already run. Served on its own
//! listener (`decision.listen`), under a prefix of the proxy listener
//! (`decision.path_prefix`), or both; the paths below are relative to it.
//!
//! | method and path          | answer |
//! |--------------------------|--------|
//! | `POST /v1/check`         | one decision: `{principal | credentials, action, resource, context?}` → `{decision, allowed, reason, message, …}` |
//! | `POST /v1/check/batch`   | `{checks: [...]}` → `{revision, results: [...]}`, all on one snapshot |
//! | any `/v1/nginx`          | nginx `auth_request` ([`adapters`]) |
//! | any `/v1/traefik`        | Traefik ForwardAuth |
//! | any `/v1/envoy/<path>`   | Envoy ext_authz, HTTP service |
//!
//! The JSON endpoints answer 200 with the decision in the body (a denial is
//! an answer, not an error), 400 for a malformed request, 401 without the
//! endpoint's token when one is configured, 503 without a snapshot.

pub mod adapters;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::json;

use policy_wasm::{Asking, Question};

use crate::checkpoint::{Asker, Decided, question};
use crate::response::{Body, Refusal, json_response, read_body};
use crate::shared::Shared;
use crate::stage::identity::{bearer, token_ok};
use portcullis_host::swap::Generation;

/// The JSON endpoints' paths, relative to the mount point.
pub const CHECK: &str = "/v1/check";
/// See [`CHECK`].
pub const CHECK_BATCH: &str = "/v1/check/batch";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    checks: Vec<Question>,
}

/// One answer. (The question is `policy_wasm::Question`, the request
/// format the CLI and the browser package read too.)
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
    /// In a batch, for an item /v1/check would have refused: that status.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

impl CheckResponse<'static> {
    /// A batch item that /v1/check would have refused.
    fn refused(refusal: &Refusal) -> Self {
        CheckResponse {
            decision: "deny",
            allowed: false,
            reason: Cow::Owned(refusal.reason().to_string()),
            message: Cow::Owned(refusal.message().to_string()),
            principal: None,
            acting_as: None,
            revision: refusal.revision(),
            status: Some(refusal.status().as_u16()),
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
        CHECK | CHECK_BATCH => match json_endpoint(&shared, req, rel, started).await {
            Ok(r) => r,
            Err(refusal) => refusal.into_response(),
        },
        _ => match adapters::Adapter::for_path(rel) {
            Some((adapter, original_path)) => {
                if let Err(refusal) = crate::checkpoint::at_revision(&shared, req.headers()).await {
                    return refusal.into_response();
                }
                let original_path = original_path.to_string();
                adapters::handle(&shared, adapter, req, &original_path, started)
            }
            None => Refusal::not_found(
                "unknown_endpoint",
                format!(
                    "unknown decision endpoint; the endpoints are {CHECK}, {CHECK_BATCH}, /v1/nginx, /v1/traefik and /v1/envoy/<path>"
                ),
            )
            .into_response(),
        },
    }
}

async fn json_endpoint(
    shared: &Shared,
    req: hyper::Request<Incoming>,
    rel: &str,
    started: Instant,
) -> Result<Response<Body>, Refusal> {
    if req.method() != Method::POST {
        return Err(Refusal::method_not_allowed(
            "POST",
            format!("{rel} takes POST with a JSON body"),
        ));
    }
    if !token_ok_for(shared, req.headers()) {
        return Err(Refusal::unauthenticated(
            "this decision endpoint needs `Authorization: Bearer <decision.token>`",
            false,
            "portcullis-decision",
        ));
    }
    crate::checkpoint::at_revision(shared, req.headers()).await?;
    let body = read_body(req.into_body(), shared.config().server.max_body_bytes)
        .await
        .map_err(|e| Refusal::malformed_request(format!("cannot read the body: {e}")))?;
    if rel == CHECK {
        check_one(shared, &body, started)
    } else {
        check_batch(shared, &body, started)
    }
}

/// The endpoint's bearer token, when one is configured.
fn token_ok_for(shared: &Shared, headers: &HeaderMap) -> bool {
    match &shared.compiled.tokens.decision {
        None => true,
        Some(expected) => bearer(headers).is_some_and(|t| token_ok(expected, t)),
    }
}

fn check_one(shared: &Shared, body: &[u8], started: Instant) -> Result<Response<Body>, Refusal> {
    let req: Question = serde_json::from_slice(body)
        .map_err(|e| Refusal::malformed_request(format!("the body is not a check request: {e}")))?;
    let generation = shared.swapper.current().ok_or_else(Refusal::no_snapshot)?;
    let answer = answer(shared, &generation, &req, CHECK, started)?;
    shared.metrics.api_check(false, answer.allowed);
    Ok(json_response(StatusCode::OK, &answer))
}

fn check_batch(shared: &Shared, body: &[u8], started: Instant) -> Result<Response<Body>, Refusal> {
    let req: BatchRequest = serde_json::from_slice(body).map_err(|e| {
        Refusal::malformed_request(format!("the body is not a batch of checks: {e}"))
    })?;
    let max = shared.config().decision.max_batch;
    if req.checks.len() > max {
        return Err(Refusal::malformed_request(format!(
            "{} checks in one batch; at most {max} (decision.max_batch)",
            req.checks.len()
        )));
    }
    // One generation for the whole batch: every answer is from one revision.
    let generation = shared.swapper.current().ok_or_else(Refusal::no_snapshot)?;
    let results: Vec<CheckResponse<'_>> = req
        .checks
        .iter()
        .map(|c| {
            // Each item says what /v1/check would have answered, refusals
            // included, with the status it would have had.
            let a = answer(shared, &generation, c, CHECK_BATCH, started)
                .unwrap_or_else(|refusal| CheckResponse::refused(&refusal));
            shared.metrics.api_check(true, a.allowed);
            a
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"revision": generation.revision, "results": results}),
    ))
}

/// Decides one check on `generation` through the checkpoint.
fn answer<'r>(
    shared: &Shared,
    generation: &Arc<Generation>,
    req: &'r Question,
    endpoint: &'static str,
    started: Instant,
) -> Result<CheckResponse<'r>, Refusal> {
    let mut headers = HeaderMap::new();
    let asker = match req
        .asking()
        .map_err(|e| Refusal::malformed_request(e.to_string()))?
    {
        Asking::Principal(p) => Asker::Principal(p),
        Asking::Credentials(c) => {
            let mut put = |name: http::HeaderName, v: &Option<String>| match v {
                Some(v) => HeaderValue::from_str(v).map(|v| {
                    headers.insert(name, v);
                }),
                None => Ok(()),
            };
            put(header::AUTHORIZATION, &c.authorization)
                .and_then(|()| {
                    put(
                        shared.compiled.identity.api_key_header().clone(),
                        &c.api_key,
                    )
                })
                .map_err(|_| {
                    Refusal::malformed_request(
                        "credentials hold characters not allowed in a header",
                    )
                })?;
            Asker::Credentials(&headers, None)
        }
    };
    let Decided {
        credential,
        verdict,
    } = question(
        shared,
        generation,
        asker,
        &req.action,
        &req.resource,
        req.context.now,
        req.context.bulk,
        endpoint,
        started,
    )?;
    Ok(CheckResponse {
        decision: if verdict.allowed { "allow" } else { "deny" },
        allowed: verdict.allowed,
        reason: verdict.reason,
        message: Cow::Owned(verdict.message),
        principal: Some(credential.principal().to_string()),
        acting_as: verdict.acting_as,
        revision: Some(verdict.revision),
        status: None,
    })
}
