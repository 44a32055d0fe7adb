//! The one checkpoint every question passes, however it arrives: a request
//! at the proxy, an external gateway's subrequest (nginx `auth_request`,
//! Traefik ForwardAuth, Envoy ext_authz), or a JSON question at
//! `/v1/check`. It composes the stages — route, identity, decision — logs
//! and counts the outcome, and says what to refuse with a [`Refusal`].
//!
//! ```text
//! request:  (method, host, raw path, headers) → route → [`who`] → decision
//!     → 400 malformed_path / 403 no_route / 401 / 503 / 403 deny / Passed
//! question: (credentials or principal, action, resource, context) → [`who`] → decision
//!     → 401 / 503 / Decided (allowed or denied: both are answers)
//! ```
//!
//! Credentials are judged the same way on every path: a bad token or an
//! API key the snapshot does not know is a 401, wherever it is presented.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method, StatusCode};

use crate::metrics::Outcome;
use crate::response::Refusal;
use crate::shared::{Logged, Shared, unix_now};
use crate::stage::authorize::{Verdict, decide};
use crate::stage::identity::{Credential, Unauthenticated};
use crate::stage::route_table::{Rejection, Resolved};
use portcullis_host::swap::Generation;

/// Who is asking, as the caller presents it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Asker<'a> {
    /// Credentials in headers (a bearer token or an API key), verified;
    /// failing those, the service account of the connection's client
    /// certificate, if the listener maps it.
    Credentials(&'a HeaderMap, Option<&'a str>),
    /// A principal the caller vouches for (the decision endpoint's
    /// `principal`, behind its own token).
    Principal(&'a str),
    /// Credentials verified earlier on this connection (an upgraded
    /// connection's, re-checked after a swap).
    Established(&'a Credential),
}

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

/// A question the engine answered (allowed or denied).
pub(crate) struct Decided {
    /// Who was asking.
    pub credential: Credential,
    /// The engine's answer.
    pub verdict: Verdict,
}

/// A 401 for credentials the gateway cannot accept.
pub(crate) fn unauthenticated(e: &Unauthenticated) -> Refusal {
    Refusal::unauthenticated(
        e.to_string(),
        !matches!(e, Unauthenticated::Missing),
        "portcullis",
    )
}

/// Runs one request through route → identity → decision. `path` is the raw
/// request path (no query); `host` the client's host, already parsed;
/// `certificate` the service account of the connection's client
/// certificate, when the listener maps one.
pub(crate) fn check<'s>(
    shared: &'s Shared,
    method: &Method,
    host: Option<&str>,
    path: &str,
    headers: &HeaderMap,
    certificate: Option<&str>,
    started: Instant,
) -> Result<Passed<'s>, Refusal> {
    let logged = blank(method, started);
    let resolved = match shared.compiled.routes.resolve(method.as_str(), host, path) {
        Ok(r) => r,
        Err(Rejection::MalformedPath(why)) => {
            shared.metrics.malformed();
            let refusal = Refusal::malformed_path(why);
            shared.log_decision(Logged {
                path: "(malformed)",
                reason: "malformed_path",
                status: Some(refusal.status()),
                ..logged
            });
            return Err(refusal);
        }
        Err(Rejection::NoRoute { path, .. }) => {
            shared.metrics.no_route();
            let refusal = Refusal::no_route();
            shared.log_decision(Logged {
                path: &path,
                reason: "no_route",
                status: Some(refusal.status()),
                ..logged
            });
            return Err(refusal);
        }
    };
    let route = resolved.route;
    let label = route.name.as_deref().unwrap_or(route.path.as_str());
    let base = Logged {
        path: &resolved.path,
        route: Some(label),
        action: Some(resolved.action),
        resource: Some(&resolved.resource),
        ..logged
    };
    let clock = unix_now();
    let at = Moment {
        clock,
        now: clock,
        bulk: false,
    };
    let decided = match who(
        shared,
        None,
        Asker::Credentials(headers, certificate),
        resolved.action,
        &resolved.resource,
        at,
        &base,
    ) {
        Ok(d) => d,
        Err(refusal) => {
            shared.metrics.request(
                resolved.index,
                if refusal.status() == StatusCode::UNAUTHORIZED {
                    Outcome::Unauthenticated
                } else {
                    Outcome::Unavailable
                },
            );
            return Err(refusal);
        }
    };
    let Decided {
        credential,
        verdict,
    } = decided;
    let shadow = !verdict.allowed && route.shadow;
    let refusal = (!verdict.allowed && !shadow).then(|| {
        Refusal::denied(verdict.reason.clone(), verdict.message.clone()).at(Some(verdict.revision))
    });
    log_verdict(
        shared,
        base,
        &credential,
        &verdict,
        shadow,
        refusal.as_ref().map(Refusal::status),
    );
    if let Some(refusal) = refusal {
        shared.metrics.request(resolved.index, Outcome::Deny);
        return Err(refusal);
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

/// What a long-lived exchange — an upgraded connection, a gRPC or
/// gRPC-Web call, any response still streaming — was allowed as when it
/// opened: asked again whenever what decided it may have changed (a
/// snapshot swap, new identity-provider keys, reloaded client-certificate
/// trust), and ended when the answer changes. Made by moving the request's
/// own strings, so every request can carry one at no cost.
pub(crate) struct Standing {
    /// Who opened it.
    pub credential: Credential,
    /// The bearer token it was opened with, when that was the credential:
    /// verified again against the keys serving (a key the provider
    /// withdrew stops the exchange).
    pub token: Option<http::HeaderValue>,
    /// The connection's client certificate, if it had one: checked again
    /// (revoked, expired) whatever the credential.
    pub certificate: Option<Arc<crate::tls::PeerCertificate>>,
    /// When it was allowed (the gateway's clock, Unix seconds): the time
    /// its token's claims are held to — a token that expires while its
    /// exchange is open does not end it; see `docs/SECURITY.md`.
    pub opened: i64,
    /// The request's method.
    pub method: Method,
    /// The normalized path.
    pub path: String,
    /// The route's position in the table (its label and action).
    pub route: usize,
    /// The resource it was allowed on.
    pub resource: String,
    /// The route only logs denials.
    pub shadow: bool,
}

impl Standing {
    /// The standing of a request the checkpoint passed, taking its strings.
    pub(crate) fn of(
        passed: Passed<'_>,
        method: Method,
        token: Option<http::HeaderValue>,
        certificate: Option<Arc<crate::tls::PeerCertificate>>,
    ) -> Self {
        let token = match passed.credential {
            Credential::Token(_) => token,
            _ => None,
        };
        Standing {
            shadow: passed.resolved.route.shadow,
            route: passed.resolved.index,
            credential: passed.credential,
            token,
            certificate,
            opened: unix_now(),
            method,
            path: passed.resolved.path,
            resource: passed.resolved.resource,
        }
    }
}

/// Asks again, on the snapshot serving now, whether `standing` still
/// holds: its client certificate still accepted and unexpired, its token
/// still verified by a key serving (its time claims as when it was
/// accepted), and the same principal, action and resource allowed.
/// Logged like any decision. A denial on a shadow route is logged and
/// passes.
pub(crate) fn recheck(shared: &Shared, standing: &Standing) -> Result<Verdict, Refusal> {
    let spec = shared.compiled.routes.spec(standing.route);
    let label = spec.map(|r| r.label()).unwrap_or_default();
    let action = spec.map_or("", |r| r.action.as_str());
    let base = Logged {
        path: &standing.path,
        route: Some(&label),
        action: Some(action),
        resource: Some(&standing.resource),
        ..blank(&standing.method, Instant::now())
    };
    let clock = unix_now();
    let refused = |refusal: Refusal| {
        shared.log_decision(Logged {
            principal: Some(standing.credential.principal()),
            reason: refusal.reason(),
            status: Some(refusal.status()),
            ..base
        });
        refusal
    };
    if let Some(cert) = &standing.certificate
        && let Err((why, message)) = cert.check(clock)
    {
        return Err(refused(certificate_withdrawn(why, message)));
    }
    if let Some(token) = &standing.token
        && let Err(e) = shared
            .compiled
            .identity
            .reverify_bearer(token, standing.opened)
    {
        return Err(refused(unauthenticated(&e)));
    }
    let at = Moment {
        clock,
        now: clock,
        bulk: false,
    };
    let Decided {
        credential,
        verdict,
    } = who(
        shared,
        None,
        Asker::Established(&standing.credential),
        action,
        &standing.resource,
        at,
        &base,
    )?;
    let shadow = !verdict.allowed && standing.shadow;
    log_verdict(shared, base, &credential, &verdict, shadow, None);
    if verdict.allowed || shadow {
        Ok(verdict)
    } else {
        Err(
            Refusal::denied(verdict.reason.clone(), verdict.message.clone())
                .at(Some(verdict.revision)),
        )
    }
}

pub(crate) use crate::tls::certificate_withdrawn;

/// Answers one question of the decision endpoint on `generation` (kept by
/// the caller, so a batch is answered on one snapshot): identity →
/// decision at `now` (the gateway's clock when `None`), logged under
/// `endpoint`. A denial is an answer; only credentials and an unavailable
/// engine are refusals.
#[allow(clippy::too_many_arguments)]
pub(crate) fn question(
    shared: &Shared,
    generation: &Arc<Generation>,
    asker: Asker<'_>,
    action: &str,
    resource: &str,
    now: Option<i64>,
    bulk: bool,
    endpoint: &'static str,
    started: Instant,
) -> Result<Decided, Refusal> {
    let base = Logged {
        path: endpoint,
        action: Some(action),
        resource: Some(resource),
        ..blank(&Method::POST, started)
    };
    let clock = unix_now();
    let at = Moment {
        clock,
        now: now.unwrap_or(clock),
        bulk,
    };
    let decided = who(shared, Some(generation), asker, action, resource, at, &base)?;
    shared.log_decision(Logged {
        principal: Some(decided.credential.principal()),
        acting_as: decided.verdict.acting_as.as_deref(),
        allowed: decided.verdict.allowed,
        reason: &decided.verdict.reason,
        revision: Some(decided.verdict.revision),
        delta: decided.verdict.delta,
        ..base
    });
    Ok(decided)
}

/// Logs the engine's answer on a routed request (or its re-check).
fn log_verdict(
    shared: &Shared,
    base: Logged<'_>,
    credential: &Credential,
    verdict: &Verdict,
    shadow: bool,
    status: Option<StatusCode>,
) {
    shared.log_decision(Logged {
        principal: Some(credential.principal()),
        acting_as: verdict.acting_as.as_deref(),
        allowed: verdict.allowed,
        reason: &verdict.reason,
        revision: Some(verdict.revision),
        delta: verdict.delta,
        shadow,
        status,
        ..base
    });
}

fn blank(method: &Method, started: Instant) -> Logged<'_> {
    Logged {
        method,
        path: "",
        route: None,
        action: None,
        resource: None,
        principal: None,
        acting_as: None,
        allowed: false,
        reason: "",
        revision: None,
        delta: false,
        started,
        shadow: false,
        status: None,
    }
}

/// When a question is asked: the gateway's clock (read once per request),
/// which credentials are checked against, and the time and bulk flag the
/// engine decides at.
#[derive(Clone, Copy)]
struct Moment {
    clock: i64,
    now: i64,
    bulk: bool,
}

/// Identity → decision, the part every path shares: credentials verified
/// on the gateway's clock, the engine asked on `generation` (or the
/// current one), and an API key the snapshot does not know refused like a
/// bad token. Refusals are logged here; the caller logs decisions.
fn who(
    shared: &Shared,
    generation: Option<&Arc<Generation>>,
    asker: Asker<'_>,
    action: &str,
    resource: &str,
    at: Moment,
    base: &Logged<'_>,
) -> Result<Decided, Refusal> {
    let current;
    let generation = match generation {
        Some(g) => Some(g),
        None => {
            current = shared.swapper.current();
            current.as_ref()
        }
    };
    let revision = generation.map(|g| g.revision);
    let refuse = |refusal: Refusal, principal: Option<&str>| {
        let decided_at = refusal.revision().or(revision);
        let refusal = refusal.at(decided_at);
        shared.log_decision(Logged {
            principal,
            reason: refusal.reason(),
            revision,
            delta: generation.is_some_and(|g| g.delta),
            status: Some(refusal.status()),
            ..*base
        });
        refusal
    };
    let credential = match asker {
        Asker::Principal(p) => Credential::Token(p.to_string()),
        Asker::Established(c) => c.clone(),
        Asker::Credentials(headers, certificate) => {
            match (
                shared.compiled.identity.authenticate(headers, at.clock),
                certificate,
            ) {
                (Ok(c), _) => c,
                (Err(Unauthenticated::Missing), Some(p)) => Credential::Certificate(p.to_string()),
                (Err(e), _) => return Err(refuse(unauthenticated(&e), None)),
            }
        }
    };
    let principal = credential.principal();
    let Some(generation) = generation else {
        return Err(refuse(Refusal::no_snapshot(), Some(principal)));
    };
    let verdict = match decide(
        generation,
        shared.swapper.pool(),
        &credential,
        action,
        resource,
        at.now,
        at.bulk,
    ) {
        Ok(v) => v,
        Err(e) => {
            shared.metrics.set_traps(shared.swapper.pool().traps());
            return Err(refuse(
                Refusal::unavailable(e.reason(), e.to_string()),
                Some(principal),
            ));
        }
    };
    if verdict.unknown_api_key(&credential) {
        let refusal = Refusal::unauthenticated("unknown API key", true, "portcullis")
            .at(Some(verdict.revision));
        shared.log_decision(Logged {
            principal: Some(principal),
            reason: "unknown_api_key",
            revision: Some(verdict.revision),
            delta: verdict.delta,
            status: Some(refusal.status()),
            ..*base
        });
        return Err(refusal);
    }
    Ok(Decided {
        credential,
        verdict,
    })
}

/// A client that wrote to the directory service names the revision of its
/// write here, to be decided at that revision or a later one.
pub const MIN_REVISION: &str = "x-portcullis-min-revision";

/// Waits, up to `server.min_revision_wait_ms`, until this gateway serves
/// the revision the request names in [`MIN_REVISION`] (no header: at
/// once). A value that is not one revision is a malformed request; a
/// revision that does not arrive in time is 503 `revision_not_yet` —
/// never a decision made on an older directory than the client asked for.
/// The header is `X-Portcullis-*`, so it never reaches an upstream.
pub(crate) async fn at_revision(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    let mut values = headers.get_all(MIN_REVISION).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(Refusal::malformed_request(
            "more than one X-Portcullis-Min-Revision header",
        ));
    }
    let wanted: u64 = value
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            Refusal::malformed_request(
                "X-Portcullis-Min-Revision is not a revision: send the revision a write answered, such as 42",
            )
        })?;
    let serving = || shared.swapper.current().map(|g| g.revision);
    if serving().is_some_and(|r| r >= wanted) {
        return Ok(());
    }
    let wait = std::time::Duration::from_millis(shared.config().server.min_revision_wait_ms);
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before looking again: a swap between the look and the
    // wait is not missed.
    let mut swaps = shared.swaps.subscribe();
    loop {
        if serving().is_some_and(|r| r >= wanted) {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, swaps.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                let now = serving();
                return Err(Refusal::unavailable(
                    "revision_not_yet",
                    format!(
                        "revision {wanted} has not reached this gateway within {} ms (serving {}): retry shortly",
                        wait.as_millis(),
                        now.map_or_else(|| "none".to_string(), |r| r.to_string())
                    ),
                )
                .at(now));
            }
        }
    }
}
