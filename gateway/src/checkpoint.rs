//! The checkpoint every request passes, whether it arrives at the proxy or
//! through the decision endpoint's adapters (nginx `auth_request`, Traefik
//! ForwardAuth, Envoy ext_authz): route → identity → decision, each refusal
//! logged and counted and turned into its response.
//!
//! ```text
//! (method, host, raw path, headers)
//!     → 400 malformed_path / 403 no_route / 401 / 503 no_snapshot, engine_unavailable / 403 deny
//!     → Passed (allowed, or denied on a shadow route)
//! ```

use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::authorize::{Verdict, decide};
use crate::forward::Body;
use crate::identity::Credential;
use crate::metrics::Outcome;
use crate::route_table::{Rejection, Resolved};
use crate::server::{Logged, Shared, refuse, unauthenticated, unix_now};

/// A request the checkpoint lets through: allowed, or denied on a route in
/// shadow mode (logged as a denial, forwarded anyway).
pub(crate) struct Passed<'s> {
    /// The route, action, resource and normalized path.
    pub resolved: Resolved<'s>,
    /// Who is asking.
    pub credential: Credential,
    /// The engine's answer.
    pub verdict: Verdict,
}

/// Runs one request through the checkpoint (a refusal is boxed: it is the
/// rarer, larger answer). `path` is the raw request
/// path (no query); `host` the client's host, if any.
pub(crate) fn check<'s>(
    shared: &'s Shared,
    method: &Method,
    host: Option<&str>,
    path: &str,
    headers: &HeaderMap,
    started: Instant,
) -> Result<Passed<'s>, Box<Response<Body>>> {
    let logged = |path: &'static str| Logged {
        method,
        path,
        route: None,
        action: None,
        resource: None,
        principal: None,
        acting_as: None,
        allowed: false,
        reason: "",
        revision: None,
        started,
        shadow: false,
        status: None,
    };
    let resolved = match shared.routes.resolve(method.as_str(), host, path) {
        Ok(r) => r,
        Err(Rejection::MalformedPath(why)) => {
            shared.metrics.malformed();
            shared.log_decision(Logged {
                reason: "malformed_path",
                status: Some(StatusCode::BAD_REQUEST),
                ..logged("(malformed)")
            });
            return Err(Box::new(refuse(
                StatusCode::BAD_REQUEST,
                "malformed_path",
                &format!("malformed path: {why}"),
                None,
            )));
        }
        Err(Rejection::NoRoute { path, .. }) => {
            shared.metrics.no_route();
            shared.log_decision(Logged {
                path: &path,
                reason: "no_route",
                status: Some(StatusCode::FORBIDDEN),
                ..logged("")
            });
            return Err(Box::new(refuse(
                StatusCode::FORBIDDEN,
                "no_route",
                "no route matches this request; requests outside the route table are denied",
                None,
            )));
        }
    };
    let route = resolved.route;
    let label = route.name.as_deref().unwrap_or(route.path.as_str());
    let generation = shared.swapper.current();
    let revision = generation.as_ref().map(|g| g.revision);
    let base = Logged {
        path: &resolved.path,
        route: Some(label),
        action: Some(resolved.action),
        resource: Some(&resolved.resource),
        revision,
        ..logged("")
    };

    let now = unix_now();
    let credential = match shared.identity().authenticate(headers, now) {
        Ok(c) => c,
        Err(e) => {
            shared
                .metrics
                .request(resolved.index, Outcome::Unauthenticated);
            shared.log_decision(Logged {
                reason: "unauthenticated",
                status: Some(StatusCode::UNAUTHORIZED),
                ..base
            });
            return Err(Box::new(unauthenticated(&e, revision)));
        }
    };
    let principal = credential.principal();
    let Some(generation) = generation else {
        shared.metrics.request(resolved.index, Outcome::Unavailable);
        shared.log_decision(Logged {
            principal: Some(principal),
            reason: "no_snapshot",
            status: Some(StatusCode::SERVICE_UNAVAILABLE),
            ..base
        });
        return Err(Box::new(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_snapshot",
            "no directory snapshot is loaded yet; every request is denied until one is",
            None,
        )));
    };
    let verdict: Verdict = match decide(
        &generation,
        shared.swapper.pool(),
        &credential,
        resolved.action,
        &resolved.resource,
        now,
        false,
    ) {
        Ok(v) => v,
        Err(e) => {
            shared.metrics.set_traps(shared.swapper.pool().traps());
            shared.metrics.request(resolved.index, Outcome::Unavailable);
            let reason = e.reason();
            shared.log_decision(Logged {
                principal: Some(principal),
                reason,
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
                ..base
            });
            return Err(Box::new(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                reason,
                &e.to_string(),
                revision,
            )));
        }
    };
    drop(generation);
    if verdict.unknown_api_key(&credential) {
        shared
            .metrics
            .request(resolved.index, Outcome::Unauthenticated);
        shared.log_decision(Logged {
            principal: Some(principal),
            reason: "unknown_api_key",
            status: Some(StatusCode::UNAUTHORIZED),
            ..base
        });
        let mut r = refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "unknown API key",
            Some(verdict.revision),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis\", error=\"invalid_token\""),
        );
        return Err(Box::new(r));
    }
    let shadow = !verdict.allowed && route.shadow;
    let status = (!verdict.allowed && !shadow).then_some(StatusCode::FORBIDDEN);
    shared.log_decision(Logged {
        principal: Some(principal),
        acting_as: verdict.acting_as.as_deref(),
        allowed: verdict.allowed,
        reason: &verdict.reason,
        revision: Some(verdict.revision),
        shadow,
        status,
        ..base
    });
    if !verdict.allowed && !shadow {
        shared.metrics.request(resolved.index, Outcome::Deny);
        return Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            &verdict.reason,
            &verdict.message,
            Some(verdict.revision),
        )));
    }
    shared.metrics.request(
        resolved.index,
        if shadow {
            Outcome::ShadowDeny
        } else {
            Outcome::Allow
        },
    );
    Ok(Passed {
        resolved,
        credential,
        verdict,
    })
}
