//! The proxy listener's handler: what the gateway serves itself (the
//! decision endpoint under its prefix, `GET /-/snapshot/me`, static files),
//! then every other request through the checkpoint and, when it passes,
//! forwarded upstream.
//!
//! ```text
//! framing, host → checkpoint (route → identity → decision) → forward
//!     400 ambiguous / malformed host → its refusal → 413 / 502 / 504 / the upstream's answer
//! ```

pub mod browser;
mod frames;
mod grpc_web;
mod limit;
mod revocation;
pub(crate) mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Response, header};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

use crate::response::{Body, Refusal, Rpc};
use crate::shared::Shared;
use crate::stage::forward::{Upstreams, Vouch, method_override};
use crate::stage::host::request_host;

/// Serves one request on the proxy listener of a worker that owns
/// `upstreams`.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    upstreams: &Upstreams,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let rpc = Rpc::of(req.headers());
    if let Some(why) = framing_problem(&req) {
        shared.metrics.malformed();
        return answer(Refusal::ambiguous_request(why), rpc);
    }
    if let Some(prefix) = &shared.config().decision.path_prefix
        && let Some(rel) = req.uri().path().strip_prefix(prefix.as_str())
        && rel.starts_with('/')
    {
        let rel = rel.to_string();
        return crate::decision::handle(shared, req, &rel).await;
    }
    let (parts, body) = req.into_parts();
    if parts.uri.path() == browser::SNAPSHOT_ME {
        return browser::snapshot_me(&shared, &parts).await;
    }
    if let Some(r) = shared
        .site
        .as_ref()
        .and_then(|site| site.serve(&parts.method, parts.uri.path()))
    {
        return r;
    }
    match pass(shared, upstreams, peer, parts, body, started).await {
        Ok(r) => r,
        Err(refusal) => answer(refusal, rpc),
    }
}

/// A refusal as the client reads them: a gRPC status for gRPC and
/// gRPC-Web calls.
pub(crate) fn answer(refusal: Refusal, rpc: Option<Rpc>) -> Response<Body> {
    match rpc {
        Some(rpc) => refusal.into_rpc_response(rpc),
        None => refusal.into_response(),
    }
}

/// `shared` is this request's own handle: an allowed response keeps it
/// (its body stays bound to the decision) rather than cloning another.
async fn pass(
    shared: Arc<Shared>,
    upstreams: &Upstreams,
    peer: SocketAddr,
    parts: http::request::Parts,
    body: Incoming,
    started: Instant,
) -> Result<Response<Body>, Refusal> {
    let host = request_host(&parts).map_err(|why| {
        shared.metrics.malformed();
        Refusal::malformed_host(why)
    })?;
    let server = &shared.config().server;
    // With overrides allowed, the method the upstream will act on is the
    // one authorized; without, the headers are stripped before forwarding.
    let method = if server.allow_method_override {
        method_override(&parts.headers)
            .map_err(Refusal::malformed_request)?
            .unwrap_or_else(|| parts.method.clone())
    } else {
        parts.method.clone()
    };
    let mut parts = parts;
    // An upgrade the gateway passes: the client's side of the switch is
    // taken now, before the request goes upstream.
    let upgrade = upgrade::requested(parts.version, &parts.headers, &server.upgrades)
        .cloned()
        .and_then(|p| {
            parts
                .extensions
                .remove::<hyper::upgrade::OnUpgrade>()
                .map(|on| (p, on))
        });
    let certificate = parts
        .extensions
        .get::<crate::tls::ClientCertificate>()
        .map(|c| Arc::clone(&c.0));
    crate::checkpoint::at_revision(&shared, &parts.headers).await?;
    // Read before deciding: a re-check signalled after this point is seen
    // by the response, so nothing decided on an older snapshot outlives it.
    let seen = shared.recheck_count();
    let passed = crate::checkpoint::check(
        &shared,
        &method,
        host.as_deref(),
        parts.uri.path(),
        &parts.headers,
        certificate.as_ref().and_then(|c| c.principal.as_deref()),
        started,
    )?;
    let (route, resolved, verdict) = (passed.resolved.route, &passed.resolved, &passed.verdict);
    let slot = parts.extensions.remove::<upgrade::ConnectionSlot>();
    let revision = Some(verdict.revision);

    let max_body = server.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Err(Refusal::too_large(
            "body_too_large",
            format!("request bodies are limited to {max_body} bytes"),
        )
        .at(revision));
    }
    // A body without a declared length is counted as it streams; most
    // requests have none, and pay nothing for the limit.
    let (body, exceeded): (Body, _) = if body.is_end_stream() {
        (body.map_err(|e| Box::new(e) as _).boxed_unsync(), None)
    } else {
        let (limited, exceeded) = limit::Limited::new(body, max_body);
        (limited.boxed_unsync(), Some(exceeded))
    };
    // The bearer token, kept with the exchange: verified again when the
    // provider's keys change (a header value's clone shares its bytes).
    let token = parts.headers.get(header::AUTHORIZATION).cloned();
    let assertion = match (&shared.compiled.assertions, route.assertion) {
        (Some(signer), true) => {
            let label = route.label();
            let statement = crate::stage::assertion::Statement {
                principal: passed.credential.principal(),
                acting_as: verdict.acting_as.as_deref(),
                upstream: &route.upstream,
                route: &label,
                action: resolved.action,
                resource: &resolved.resource,
                revision: verdict.revision,
            };
            match signer.sign(&statement, crate::shared::unix_now()) {
                Ok(token) => Some(token),
                // Fail closed: the upstream counts on it.
                Err(e) => {
                    tracing::error!(error = %e, "cannot sign an assertion");
                    return Err(Refusal::unavailable(
                        "assertion_unavailable",
                        "the gateway cannot sign the identity assertion this route sends",
                    ));
                }
            }
        }
        _ => None,
    };
    let upstream_started = Instant::now();
    let forwarded = upstreams
        .forward(
            &route.upstream,
            parts,
            body,
            Vouch {
                principal: passed.credential.principal(),
                acting_as: verdict.acting_as.as_deref(),
                revision: verdict.revision,
                peer,
                path: &resolved.path,
                host: host.as_deref(),
                api_key_header: shared.compiled.identity.api_key_header(),
                keep_method_override: server.allow_method_override,
                tls: shared.compiled.tls.proxy.is_some(),
                assertion: assertion.as_deref(),
                upgrade: upgrade.as_ref().map(|(p, _)| p),
            },
        )
        .await;
    shared
        .metrics
        .upstream_time(upstream_started.elapsed().as_secs_f64());
    let too_large = exceeded.as_ref().is_some_and(limit::Exceeded::is_set);
    let forwarded = match forwarded {
        // The body crossed the limit before the upstream answered: the
        // upstream client says only that its stream broke.
        Err(_) | Ok(_) if too_large => {
            return Err(Refusal::too_large(
                "body_too_large",
                format!("request bodies are limited to {max_body} bytes"),
            )
            .at(revision));
        }
        Ok(response) => response,
        Err(e) => {
            let refusal = Refusal::upstream(e.timed_out(), e.to_string()).at(revision);
            shared
                .metrics
                .upstream_error(&route.upstream, refusal.reason());
            tracing::warn!(upstream = %route.upstream, error = %e, "forwarding failed");
            return Err(refusal);
        }
    };
    // Every exchange stays bound to this decision while it lasts.
    let standing = crate::checkpoint::Standing::of(passed, method, token, certificate);
    let mut response = forwarded;
    if let Some((protocol, client)) = upgrade
        && response.status() == http::StatusCode::SWITCHING_PROTOCOLS
    {
        let tunnel = upgrade::Tunnel {
            shared,
            standing,
            websocket: protocol.as_bytes().eq_ignore_ascii_case(b"websocket"),
            client,
            upstream: hyper::upgrade::on(&mut response),
            slot,
        };
        tokio::spawn(tunnel.run());
        return Ok(response.map(|_| crate::response::empty()));
    }
    let rpc = Rpc::of(response.headers());
    Ok(response.map(|body| {
        revocation::Bound::new(body, rpc, shared, standing, seen, exceeded).boxed_unsync()
    }))
}

/// Requests whose framing or target a gateway must not guess about: the
/// proxy and the upstream could read them differently (request smuggling,
/// host confusion).
fn framing_problem(req: &hyper::Request<Incoming>) -> Option<&'static str> {
    let http1 = req.version() < http::Version::HTTP_2;
    if http1 && req.uri().authority().is_some() {
        return Some(
            "absolute-form request targets are for forward proxies; send the path (origin-form)",
        );
    }
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Some("more than one Host header");
    }
    if hosts == 0 && req.version() == http::Version::HTTP_11 {
        return Some("HTTP/1.1 requests must carry a Host header");
    }
    None
}
