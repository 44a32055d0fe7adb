//! `GET /-/snapshot/me` on the proxy listener: the serving snapshot without
//! personal data or API keys, for a signed-in browser to ask the engine for
//! permission hints locally (issue #5). The gateway stays the enforcer.
//!
//! Each caller gets its principal's view (policy-wasm/README.md#views):
//! only what decides its own requests — exactly as the whole snapshot
//! does — and nobody else's personal data or any API key. It is cut on a
//! principal's first request and cached with its generation
//! (`snapshot::views`). Callers must present a bearer token; the `ETag` is
//! the view's content hash, so `If-None-Match` skips every push that did
//! not change this principal's view.

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::checkpoint::unauthenticated;
use crate::response::{Body, Refusal, empty, full};
use crate::shared::{Shared, unix_now};
use crate::stage::authorize::decide;
use crate::stage::identity::Credential;

/// The path, reserved on the proxy listener.
pub(crate) const SNAPSHOT_ME: &str = "/-/snapshot/me";

pub(crate) async fn snapshot_me(
    shared: &Arc<Shared>,
    parts: &http::request::Parts,
) -> Response<Body> {
    match view(shared, parts).await {
        Ok(r) => r,
        Err(refusal) => refusal.into_response(),
    }
}

async fn view(
    shared: &Arc<Shared>,
    parts: &http::request::Parts,
) -> Result<Response<Body>, Refusal> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(Refusal::method_not_allowed("GET, HEAD", "use GET"));
    }
    // A page that just wrote to the directory asks for the view at the
    // revision of its write.
    crate::checkpoint::at_revision(shared, &parts.headers).await?;
    let generation = shared.swapper.current();
    let revision = generation.as_ref().map(|g| g.revision);
    let clock = unix_now();
    let principal = match shared.compiled.identity.authenticate(&parts.headers, clock) {
        Ok(Credential::Token(p) | Credential::Certificate(p)) => p,
        Ok(Credential::ApiKey(_)) => {
            return Err(Refusal::denied(
                "bearer_token_required",
                "browser snapshots are for signed-in users: send a bearer token, not an API key",
            )
            .at(revision));
        }
        Err(e) => return Err(unauthenticated(&e).at(revision)),
    };
    let generation = generation.ok_or_else(Refusal::no_snapshot)?;
    // Only a principal that may act gets its view: a disabled, expired or
    // unknown one is denied here as every other action of its is (the
    // engine's `login` on itself says whether it can act at all).
    if !(principal.starts_with("user/") || principal.starts_with("service/")) {
        return Err(Refusal::denied(
            "not_a_browser_principal",
            "browser snapshots are for users and service accounts",
        )
        .at(revision));
    }
    let verdict = decide(
        &generation,
        shared.swapper.pool(),
        &Credential::Token(principal.clone()),
        "login",
        &principal,
        clock,
        false,
    )
    .map_err(|e| Refusal::unavailable(e.reason(), e.to_string()).at(revision))?;
    if !verdict.allowed {
        return Err(Refusal::denied(verdict.reason, verdict.message).at(revision));
    }
    let signer = shared.compiled.browser_signer.clone();
    let (view, built) = generation
        .views()
        .get(&principal, signer, &shared.view_builds)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot cut the browser view");
            Refusal::internal("view_failed", e).at(revision)
        })?;
    if built {
        shared.metrics.view_built();
    }
    // The tag is the view's content hash, weak (the same for gzipped and
    // plain bytes): a push that left this view as it was answers 304 (RFC
    // 9110 weak comparison: `W/` prefixes are ignored).
    let fresh = parts
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*"
                    || t.strip_prefix("W/").unwrap_or(t)
                        == view.etag.strip_prefix("W/").unwrap_or(&view.etag)
            })
        });
    let mut r = if fresh {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        // Large views are kept gzipped: sent so to every client that
        // accepts it (every browser does), unpacked on a view builder for
        // the others.
        let gzip = view.gzipped && accepts_gzip(&parts.headers);
        let body = if parts.method == Method::HEAD {
            empty()
        } else if view.gzipped && !gzip {
            let v = Arc::clone(&view);
            let plain = shared
                .view_builds
                .run(move || v.plain())
                .await
                .map_err(|e| Refusal::internal("view_failed", e).at(revision))?;
            full(plain)
        } else {
            full(view.body.clone())
        };
        let mut r = Response::new(body);
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.portcullis.snapshot"),
        );
        if gzip {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&view.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static("Authorization, Accept-Encoding"),
    );
    Ok(r)
}

/// Whether `Accept-Encoding` accepts gzip (RFC 9110 §12.5.3: `gzip` or
/// `*`, with a nonzero quality).
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
        })
}
