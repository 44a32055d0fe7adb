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
//! | `PATCH /-/snapshot[?force=true]` | apply the body, a delta, to the serving snapshot (bearer token required) |

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;

use crate::response::{Body, Refusal, full, json_response, read_body_declared};
use crate::shared::Shared;
use crate::stage::identity::{bearer, token_ok};
use portcullis_host::swap::{Source, SwapError};

pub(crate) async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/-/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (Method::GET, "/.well-known/jwks.json") => match &shared.compiled.assertions {
            Some(a) => json_response(StatusCode::OK, a.jwks()),
            None => json_response(
                StatusCode::NOT_FOUND,
                &json!({"reason": "no_assertion_keys", "message": "no [assertion] section: the gateway signs no assertions"}),
            ),
        },
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
                    "delta": g.delta,
                    "bytes": g.size(),
                }),
            ),
            None => Refusal::not_found("no_snapshot", "no snapshot is loaded yet").into_response(),
        },
        (Method::PUT, "/-/snapshot") => push(&shared, req, false).await,
        (Method::PATCH, "/-/snapshot") => push(&shared, req, true).await,
        (_, "/-/snapshot") => Refusal::method_not_allowed(
            "GET, PUT, PATCH",
            "use GET, PUT (a snapshot) or PATCH (a delta)",
        )
        .into_response(),
        _ => Refusal::not_found(
            "unknown_endpoint",
            "unknown admin endpoint; the endpoints are /-/healthz, /-/readyz, /-/metrics and /-/snapshot",
        )
        .into_response(),
    }
}

fn readyz(shared: &Shared) -> Response<Body> {
    match shared.swapper.current() {
        Some(g) if g.healthy_instances() > 0 => json_response(
            StatusCode::OK,
            &json!({"ready": true, "revision": g.revision, "delta": g.delta}),
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

async fn push(shared: &Arc<Shared>, req: hyper::Request<Incoming>, delta: bool) -> Response<Body> {
    match install_pushed(shared, req, delta).await {
        Ok(r) => r,
        Err(refusal) => refusal.into_response(),
    }
}

async fn install_pushed(
    shared: &Arc<Shared>,
    req: hyper::Request<Incoming>,
    delta: bool,
) -> Result<Response<Body>, Refusal> {
    let Some(expected) = &shared.compiled.tokens.admin else {
        return Err(Refusal::admin_forbidden(
            "pushes are disabled: set admin.token in the gateway configuration",
        ));
    };
    if !bearer(req.headers()).is_some_and(|t| token_ok(expected, t)) {
        return Err(Refusal::unauthenticated(
            "send the admin token as `Authorization: Bearer <token>`",
            false,
            "portcullis-admin",
        ));
    }
    let force = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "force=true" || kv == "force=1"));
    let max = shared.config().snapshot.max_bytes;
    let current = shared.swapper.current().map(|g| g.revision);
    let bytes = read_body_declared(req.into_body(), max)
        .await
        .map_err(|e| {
            shared.metrics.swap_failed(Source::Push.as_str());
            Refusal::too_large(
                "too_large",
                format!("could not read the snapshot (limit {max} bytes): {e}"),
            )
            .at(current)
        })?;
    // PUT takes a snapshot, PATCH a delta: a body of the other kind is a
    // client that meant the other method.
    let candidate = portcullis_snapshots::Candidate::of(bytes);
    if candidate.is_delta() != delta {
        shared.metrics.swap_failed(Source::Push.as_str());
        let message = if delta {
            "PATCH takes a delta (portcullis snapshot delta); send a whole snapshot with PUT"
        } else {
            "this is a delta: send it with PATCH (portcullis snapshot push --delta), or send the whole snapshot with PUT"
        };
        return Err(Refusal::invalid_snapshot("wrong_method", message).at(current));
    }
    match shared.install(candidate, Source::Push, force).await {
        Ok(done) => Ok(json_response(
            StatusCode::OK,
            &json!({"revision": done.revision, "previous": done.previous, "sha256": done.sha256, "delta": done.delta, "in_place": done.in_place}),
        )),
        Err(e) => {
            let message = e.to_string();
            Err(match e {
                SwapError::Stale { .. }
                | SwapError::BelowAccepted { .. }
                | SwapError::WrongBase(_)
                | SwapError::NoBase => Refusal::stale(e.code(), message),
                SwapError::TooLarge { .. } => Refusal::too_large(e.code(), message),
                _ => Refusal::invalid_snapshot(e.code(), message),
            }
            .at(current))
        }
    }
}
