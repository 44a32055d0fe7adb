//! `GET /-/snapshot/me` on the proxy listener: the serving snapshot without
//! personal data or API keys, for a signed-in browser to ask the engine for
//! permission hints locally (issue #5). The gateway stays the enforcer.
//!
//! Each caller gets the snapshot scoped to its principal: no personal data,
//! no API keys, and only the grants and permissions that decide for it —
//! deciding exactly like the full snapshot for that principal
//! (`tests/tests/redacted.rs`). It is built on a principal's first request
//! and cached with its generation. Callers must present a bearer token;
//! `ETag`/`If-None-Match` let a browser skip unchanged revisions.

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};

use sha2::{Digest, Sha256};

use crate::forward::{Body, full};
use crate::identity::Credential;
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
    let principal = match shared.identity().authenticate(&parts.headers, unix_now()) {
        Ok(Credential::Token(p)) => p,
        Ok(Credential::ApiKey(_)) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "bearer_token_required",
                "browser snapshots are for signed-in users: send a bearer token, not an API key",
                revision,
            );
        }
        Err(e) => return unauthenticated(&e, revision),
    };
    let Some(generation) = generation else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_snapshot",
            "no directory snapshot is loaded yet",
            None,
        );
    };
    // Only a principal that may act gets its view: a disabled, expired or
    // unknown one is denied here as every other action of its is (the
    // engine's `login` on itself says whether it can act at all).
    if !(principal.starts_with("user/") || principal.starts_with("service/")) {
        return refuse(
            StatusCode::FORBIDDEN,
            "not_a_browser_principal",
            "browser snapshots are for users and service accounts",
            revision,
        );
    }
    match crate::authorize::decide(
        &generation,
        shared.swapper.pool(),
        &Credential::Token(principal.clone()),
        "login",
        &principal,
        unix_now(),
        false,
    ) {
        Ok(v) if v.allowed => {}
        Ok(v) => return refuse(StatusCode::FORBIDDEN, &v.reason, &v.message, revision),
        Err(e) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                e.reason(),
                &e.to_string(),
                revision,
            );
        }
    }
    // The answer differs per principal: the tag says whose it is.
    let whose = hex::encode(&Sha256::digest(principal.as_bytes())[..6]);
    let etag = format!(
        "\"{}-{}-{whose}\"",
        generation.revision,
        &generation.sha256[..16]
    );
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
        let signer = shared.browser_signer.clone();
        match tokio::task::spawn_blocking(move || g.scoped(&principal, signer.as_ref())).await {
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
