//! The admin listener: health, readiness, metrics, the serving snapshot,
//! and authenticated snapshot pushes.
//!
//! | method and path        | answer |
//! |------------------------|--------|
//! | `GET /-/healthz`       | 200 while the process serves |
//! | `GET /-/readyz`        | 200 with a snapshot loaded and an instance ready, else 503 |
//! | `GET /-/metrics`       | Prometheus/OpenMetrics text |
//! | `GET /-/snapshot`      | the serving snapshot: revision, SHA-256, source, times |
//! | `PUT /-/snapshot[?force=true]` | install the body (bearer token required) |

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::forward::{Body, full};
use crate::server::{Shared, json_response, read_body};
use crate::swap::{Source, SwapError};

pub(crate) async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/-/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (Method::GET, "/-/readyz") => readyz(&shared),
        (Method::GET, "/-/metrics") => metrics(&shared),
        (Method::GET, "/-/snapshot") => match shared.swapper.current() {
            Some(g) => json_response(
                StatusCode::OK,
                &json!({
                    "revision": g.revision,
                    "sha256": g.sha256,
                    "created_at": g.created_at,
                    "loaded_at": g.loaded_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    "source": g.source.as_str(),
                    "bytes": g.size(),
                }),
            ),
            None => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "no snapshot is loaded yet"}),
            ),
        },
        (Method::PUT, "/-/snapshot") => push(&shared, req).await,
        (_, "/-/snapshot") => {
            let mut r = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "use GET or PUT"}),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, PUT"));
            r
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown admin endpoint", "endpoints": ["/-/healthz", "/-/readyz", "/-/metrics", "/-/snapshot"]}),
        ),
    }
}

fn readyz(shared: &Shared) -> Response<Body> {
    match shared.swapper.current() {
        Some(g) if g.healthy_instances() > 0 => json_response(
            StatusCode::OK,
            &json!({"ready": true, "revision": g.revision}),
        ),
        Some(g) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "revision": g.revision, "why": "every engine instance is being rebuilt"}),
        ),
        None => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "why": "no snapshot loaded yet"}),
        ),
    }
}

fn metrics(shared: &Shared) -> Response<Body> {
    shared.metrics.set_traps(shared.swapper.pool().traps());
    let mut r = Response::new(full(shared.metrics.render()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// Compares tokens through their SHA-256, so the time taken says nothing
/// about how much of a guess was right.
pub(crate) fn token_ok(expected: &str, presented: &[u8]) -> bool {
    Sha256::digest(expected.as_bytes()) == Sha256::digest(presented)
}

/// The token of an `Authorization: Bearer <token>` header, if that is what
/// the request carries.
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&[u8]> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().as_bytes())
}

async fn push(shared: &Arc<Shared>, req: hyper::Request<Incoming>) -> Response<Body> {
    let Some(expected) = &shared.admin_token else {
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "pushes are disabled: set admin.token in the gateway configuration"}),
        );
    };
    if !bearer(req.headers()).is_some_and(|t| token_ok(expected, t)) {
        let mut r = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "send the admin token as `Authorization: Bearer <token>`"}),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
        );
        return r;
    }
    let force = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "force=true" || kv == "force=1"));
    let max = shared.config.snapshot.max_bytes;
    let bytes = match read_body(req.into_body(), max).await {
        Ok(b) => b,
        Err(e) => {
            shared.metrics.swap_failed(Source::Push.as_str());
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": format!("could not read the snapshot (limit {max} bytes): {e}"), "code": "too_large"}),
            );
        }
    };
    let current = shared.swapper.current().map(|g| g.revision);
    match shared.install(bytes, Source::Push, force).await {
        Ok(done) => json_response(
            StatusCode::OK,
            &json!({"revision": done.revision, "previous": done.previous, "sha256": done.sha256}),
        ),
        Err(e) => {
            let status = match e {
                SwapError::Stale { .. } | SwapError::BelowAccepted { .. } => StatusCode::CONFLICT,
                SwapError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            json_response(
                status,
                &json!({"error": e.to_string(), "code": e.code(), "serving_revision": current}),
            )
        }
    }
}
