//! `GET /-/snapshot/me` on the proxy listener: the serving snapshot without
//! personal data or API keys, for a signed-in browser to ask the engine for
//! permission hints locally (issue #5). The gateway stays the enforcer.
//!
//! One redacted snapshot per revision serves every caller (decisions for
//! users and service accounts are the same as on the full snapshot); it is
//! built on first request and cached with its generation. Callers must be
//! authenticated; `ETag`/`If-None-Match` let a browser skip unchanged
//! revisions.

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::forward::{Body, full};
use crate::server::{Shared, refuse, unauthenticated, unix_now};

/// The path, reserved on the proxy listener.
pub(crate) const SNAPSHOT_ME: &str = "/-/snapshot/me";

pub(crate) async fn snapshot_me(
    shared: &Arc<Shared>,
    parts: &http::request::Parts,
) -> Response<Body> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut r = refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET",
            None,
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let generation = shared.swapper.current();
    let revision = generation.as_ref().map(|g| g.revision);
    if let Err(e) = shared.identity().authenticate(&parts.headers, unix_now()) {
        return unauthenticated(&e, revision);
    }
    let Some(generation) = generation else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_snapshot",
            "no directory snapshot is loaded yet",
            None,
        );
    };
    let etag = format!("\"{}-{}\"", generation.revision, &generation.sha256[..16]);
    let fresh = parts
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        let mut r = Response::new(crate::forward::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let g = Arc::clone(&generation);
        match tokio::task::spawn_blocking(move || g.redacted()).await {
            Ok(Ok(bytes)) => {
                let mut r = Response::new(if parts.method == Method::HEAD {
                    crate::forward::empty()
                } else {
                    full(bytes.to_vec())
                });
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/vnd.portcullis.snapshot"),
                );
                r
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot build the redacted snapshot");
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "redaction_failed",
                    &e,
                    revision,
                )
            }
            Err(e) => refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "redaction_failed",
                &e.to_string(),
                revision,
            ),
        }
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Authorization"));
    r
}
