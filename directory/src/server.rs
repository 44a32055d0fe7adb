//! The service's HTTP API (`docs/directory.md`, `docs/openapi.yaml`):
//! JSON over HTTP/1.1, every caller identified as at the gateway, every
//! refusal in the gateway's body shape.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use policy_wasm::Context;
use portcullis_gateway::framing::{Framed, FramingLog};
use portcullis_gateway::response::{Body, Refusal, json_response};
use portcullis_gateway::stage::identity::{Identity, Unauthenticated};
use portcullis_gateway::tls::{ClientCertificate, MaybeTls, Tls};
use portcullis_snapshots::source::{Directory, Grant, Timestamp, User};
use portcullis_snapshots::vocabulary::AdminRole;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::ServiceError;

/// A handler's early answer: a finished response, boxed (it is large, and
/// the happy path should not carry its size).
type Early = Box<Response<Body>>;
use crate::operation::{Operation, UserChanges};
use crate::publish::Publisher;
use crate::service::{Change, Committed, Provenance, Service};

/// The largest request head (line and headers) read; larger → 431.
const MAX_HEAD: usize = 16 * 1024;

/// The revision a write made, or the one a read saw.
pub const REVISION_HEADER: &str = "x-portcullis-revision";

/// What the handlers share.
pub struct Api {
    /// The service.
    pub service: Arc<Service>,
    /// How callers are identified.
    pub identity: Identity,
    /// The publisher, when the service publishes.
    pub publisher: Option<Arc<Publisher>>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Origins allowed to call from a browser.
    pub cors_origins: Vec<String>,
    /// TLS on the listener, when configured: the gateway's (certificates
    /// reloaded when their files change, client certificates verified and
    /// mapped to service accounts by `client_principals`).
    pub tls: Option<Arc<Tls>>,
    /// The SCIM 2.0 provider at `/scim/v2/{org}/…`.
    pub scim: Arc<crate::scim::Provider>,
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn refusal(e: &ServiceError) -> Response<Body> {
    match e {
        // The engine's refusal: exactly the gateway's body.
        ServiceError::Denied {
            reason,
            message,
            revision,
            ..
        } => Refusal::denied(reason.clone(), message.clone())
            .at(Some(*revision))
            .into_response(),
        ServiceError::Invalid422(problems) => {
            let mut r = json_response(
                e.status(),
                &serde_json::json!({
                    "decision": "deny",
                    "reason": e.reason(),
                    "message": e.to_string(),
                    "problems": problems,
                }),
            );
            reason_header(&mut r, e.reason());
            r
        }
        _ => {
            let mut body = serde_json::json!({
                "decision": "deny",
                "reason": e.reason(),
                "message": e.to_string(),
            });
            if let (ServiceError::Stale { current, .. }, Some(o)) = (e, body.as_object_mut()) {
                o.insert("revision".into(), (*current).into());
            }
            let mut r = json_response(e.status(), &body);
            reason_header(&mut r, e.reason());
            r
        }
    }
}

fn reason_header(r: &mut Response<Body>, reason: &str) {
    if let Ok(v) = http::HeaderValue::from_str(reason) {
        r.headers_mut()
            .insert(portcullis_gateway::response::REASON_HEADER, v);
    }
}

fn malformed(message: impl Into<String>) -> Response<Body> {
    refusal(&ServiceError::Malformed(message.into()))
}

fn not_found(message: impl Into<String>) -> Response<Body> {
    Refusal::not_found("not_found", message).into_response()
}

/// Reads a JSON body as `T`: unknown fields, wrong types and trailing
/// bytes are refused with their place.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let value: T =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut de, &mut note))
            .map_err(|e| {
                let at = e.path().to_string();
                if at == "." || at.is_empty() {
                    e.inner().to_string()
                } else {
                    format!("at {at}: {}", e.inner())
                }
            })?;
    de.end().map_err(|e| format!("after the JSON value: {e}"))?;
    if let Some(first) = unknown.first() {
        return Err(format!(
            "unknown field at {first}{}: check its spelling against docs/directory.md",
            if unknown.len() > 1 {
                format!(" (and {} more)", unknown.len() - 1)
            } else {
                String::new()
            }
        ));
    }
    Ok(value)
}

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let mut all = headers.get_all(header::IF_MATCH).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return if headers.contains_key(header::IF_MATCH) {
            Err("more than one If-Match header".into())
        } else {
            Ok(None)
        };
    };
    let s = v.to_str().map_err(|_| "If-Match is not text".to_string())?;
    let s = s.trim().trim_start_matches("W/").trim_matches('"');
    s.parse::<u64>().map(Some).map_err(|_| {
        format!("If-Match {s:?} is not a revision: send the revision you read, such as \"12\"")
    })
}

/// Where an API write comes from: its request id, `If-Match`, and (when
/// `keyed`) its `Idempotency-Key`.
fn provenance(headers: &HeaderMap, keyed: bool) -> Result<Provenance, String> {
    Ok(Provenance {
        via: "api",
        request_id: single_header(headers, "x-request-id")?,
        idempotency_key: if keyed {
            single_header(headers, "idempotency-key")?
        } else {
            None
        },
        if_match: if_match(headers)?,
    })
}

fn single_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(format!("more than one {name} header")),
        (Some(v), None) => {
            let s = v.to_str().map_err(|_| format!("{name} is not text"))?;
            if s.is_empty() || s.len() > 200 {
                return Err(format!("{name} must be 1 to 200 characters"));
            }
            Ok(Some(s.to_string()))
        }
    }
}

/// The query's parameters, percent-decoded (`+` is a space); a value
/// that does not decode to UTF-8 is dropped, as if absent.
fn query(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decoded(k)?, percent_decoded(v)?))
        })
        .collect()
}

fn percent_decoded(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                let h = std::str::from_utf8(&hex).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn query_u64(q: &[(String, String)], name: &str, default: u64) -> Result<u64, String> {
    match q.iter().find(|(k, _)| k == name) {
        None => Ok(default),
        Some((_, v)) => v
            .parse()
            .map_err(|_| format!("query parameter {name}={v:?} is not a whole number")),
    }
}

/// A path segment: an id as the model writes it. Percent-encoding and
/// dot segments are refused rather than decoded, so the id a handler acts
/// on is exactly the bytes in the path.
fn segment(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+'));
    ok.then_some(s)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    user: User,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpiryBody {
    expires_at: Option<Timestamp>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminRoleBody {
    admin_role: Option<AdminRole>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyBody {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_at: Option<Timestamp>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    grant: Grant,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionBody {
    permission: portcullis_snapshots::source::PermissionGrant,
}

/// The operation a resource-style write of a section is: `POST` a new
/// entity (`id` none), `PUT` one in place of `id` (the body's id must be
/// `id`: a rename is a delete and a create), `DELETE` `id`.
fn entity_op(kind: &str, id: Option<&str>, body: &[u8], delete: bool) -> Result<Operation, String> {
    use Operation as O;
    fn same(id: Option<&str>, got: &str) -> Result<(), String> {
        match id {
            Some(id) if id != got => Err(format!(
                "the body's id {got:?} is not the path's {id:?}: an id never changes (delete and create instead)"
            )),
            _ => Ok(()),
        }
    }
    let target = || id.map(str::to_string).unwrap_or_default();
    if delete {
        return Ok(match kind {
            "organizations" => O::DeleteOrganization { id: target() },
            "environments" => O::DeleteEnvironment { id: target() },
            "catalogs" => O::DeleteCatalog { id: target() },
            "objects" => O::DeleteObject { id: target() },
            "service-accounts" => O::DeleteServiceAccount { id: target() },
            "groups" => O::DeleteGroup { id: target() },
            "teams" => O::DeleteTeam { id: target() },
            "custom-roles" => O::DeleteCustomRole { id: target() },
            _ => return Err(format!("{kind} are not deleted by id")),
        });
    }
    let update = id.is_some();
    Ok(match kind {
        "organizations" => {
            let organization: portcullis_snapshots::source::Organization = parse_json(body)?;
            same(id, &organization.id)?;
            if update {
                O::UpdateOrganization { organization }
            } else {
                O::CreateOrganization { organization }
            }
        }
        "environments" => {
            let environment: portcullis_snapshots::source::Environment = parse_json(body)?;
            same(id, &environment.id)?;
            if update {
                O::UpdateEnvironment { environment }
            } else {
                O::CreateEnvironment { environment }
            }
        }
        "catalogs" => {
            let catalog: portcullis_snapshots::source::Catalog = parse_json(body)?;
            same(id, &catalog.id)?;
            if update {
                O::UpdateCatalog { catalog }
            } else {
                O::CreateCatalog { catalog }
            }
        }
        "objects" => {
            let object: portcullis_snapshots::source::Object = parse_json(body)?;
            same(id, &object.id)?;
            if update {
                O::UpdateObject { object }
            } else {
                O::CreateObject { object }
            }
        }
        "service-accounts" => {
            let service_account: portcullis_snapshots::source::ServiceAccount = parse_json(body)?;
            same(id, &service_account.id)?;
            if update {
                O::UpdateServiceAccount { service_account }
            } else {
                O::CreateServiceAccount { service_account }
            }
        }
        "groups" => {
            let group: portcullis_snapshots::source::Group = parse_json(body)?;
            same(id, &group.id)?;
            if update {
                O::UpdateGroup { group }
            } else {
                O::CreateGroup { group }
            }
        }
        "teams" => {
            let team: portcullis_snapshots::source::Team = parse_json(body)?;
            same(id, &team.id)?;
            if update {
                O::UpdateTeam { team }
            } else {
                O::CreateTeam { team }
            }
        }
        "custom-roles" => {
            let role: portcullis_snapshots::source::CustomRole = parse_json(body)?;
            same(id, &role.id)?;
            if update {
                O::UpdateCustomRole { role }
            } else {
                O::CreateCustomRole { role }
            }
        }
        _ => {
            return Err(format!(
                "{kind} are not written this way: see docs/directory.md"
            ));
        }
    })
}

impl Api {
    async fn body(&self, req: Request<Incoming>) -> Result<Bytes, Early> {
        match Limited::new(req.into_body(), self.max_body_bytes)
            .collect()
            .await
        {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Box::new(
                Refusal::too_large(
                    "body_too_large",
                    format!(
                        "the body is over {} bytes: split the change",
                        self.max_body_bytes
                    ),
                )
                .into_response(),
            )),
            Err(e) => Err(Box::new(malformed(format!(
                "the body could not be read: {e}"
            )))),
        }
    }

    /// Who is asking: the request's credentials, or — with none — the
    /// service account the connection's client certificate is
    /// (`tls.client_principals`), as at the gateway.
    fn actor(
        &self,
        headers: &HeaderMap,
        certificate: Option<&ClientCertificate>,
    ) -> Result<String, Early> {
        self.principal(headers, certificate, false).map_err(|e| {
            let invalid = !matches!(e, Unauthenticated::Missing);
            Box::new(
                Refusal::unauthenticated(e.to_string(), invalid, "portcullis-directory")
                    .into_response(),
            )
        })
    }

    /// The request's principal: its credentials (with `bearer_keys`, a
    /// bearer token that is no JWT is an API key's secret), or — with none
    /// — the service account its client certificate is.
    fn principal(
        &self,
        headers: &HeaderMap,
        certificate: Option<&ClientCertificate>,
        bearer_keys: bool,
    ) -> Result<String, Unauthenticated> {
        let now = now_unix();
        let by_credentials = if bearer_keys {
            self.identity.authenticate_bearer_keys(headers, now)
        } else {
            self.identity.authenticate(headers, now)
        };
        match (
            by_credentials,
            certificate.and_then(|c| c.0.principal.clone()),
        ) {
            (Err(Unauthenticated::Missing), Some(p)) => Ok(p.to_string()),
            (r, _) => r.map(|c| c.principal().to_string()),
        }
    }

    /// A SCIM request (`/scim/v2/{org}/…`): identified as at the gateway,
    /// except that a bearer token which is not a JWT is an API key's
    /// secret (identity providers send their SCIM token that way).
    async fn scim(self: Arc<Self>, req: Request<Incoming>, rest: &str) -> Response<Body> {
        let segments: Option<Vec<String>> = rest.split('/').map(percent_decoded).collect();
        let Some(mut segments) = segments.filter(|s| {
            s.iter()
                .all(|x| !x.is_empty() && x != "." && x != ".." && !x.contains('/'))
        }) else {
            return scim_response(
                crate::scim::ScimError::not_found(format!(
                    "no SCIM endpoint /scim/v2/{rest}: /scim/v2/{{organization}}/Users, …/Groups, …"
                ))
                .into(),
            );
        };
        let org = segments.remove(0);
        let headers = req.headers().clone();
        let principal = self
            .principal(&headers, req.extensions().get::<ClientCertificate>(), true)
            .map_err(|e| format!("{e}: send Authorization: Bearer <SCIM token>"));
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost")
            .to_string();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{host}/scim/v2/{}", crate::scim::segment(&org));
        let method = req.method().as_str().to_string();
        let q = query(req.uri());
        let body = if matches!(req.method(), &Method::GET | &Method::DELETE) {
            Bytes::new()
        } else {
            match self.body(req).await {
                Ok(b) => b,
                Err(_) => {
                    return scim_response(
                        crate::scim::ScimError::too_large(format!(
                            "the body is over {} bytes: split the change",
                            self.max_body_bytes
                        ))
                        .into(),
                    );
                }
            }
        };
        let text = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (if_match, if_none_match, request_id) = (
            text("if-match"),
            text("if-none-match"),
            text("x-request-id"),
        );
        let api = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            api.scim.handle(&crate::scim::ScimRequest {
                method: &method,
                org: &org,
                rest: segments,
                query: &q,
                body: &body,
                if_match: if_match.as_deref(),
                if_none_match: if_none_match.as_deref(),
                base,
                principal,
                request_id,
            })
        })
        .await;
        match done {
            Ok(a) => scim_response(a),
            Err(e) => scim_response(
                crate::scim::ScimError::internal(format!("the request failed: {e}")).into(),
            ),
        }
    }

    /// Asks the engine at the head whether `actor` may `action` on
    /// `resource`; a refusal in the gateway's shape otherwise.
    fn allowed(&self, actor: &str, action: &str, resource: &str) -> Result<u64, Early> {
        let Some(head) = self.service.head() else {
            return Err(Box::new(refusal(&ServiceError::Empty)));
        };
        let req = policy_wasm::Request {
            principal: actor,
            action,
            resource,
            context: Context {
                now: now_unix(),
                bulk: false,
            },
        };
        let d = head.engine.check(&req);
        if d.allowed {
            return Ok(head.revision);
        }
        let e = head.engine.explain_decision(&req, &d);
        Err(Box::new(
            Refusal::denied(e.reason, format!("{action} on {resource}: {}", e.message))
                .at(Some(head.revision))
                .into_response(),
        ))
    }

    async fn write(
        self: Arc<Self>,
        actor: String,
        headers: &HeaderMap,
        change: Change,
    ) -> Response<Body> {
        let provenance = match provenance(headers, true) {
            Ok(p) => p,
            Err(m) => return malformed(m),
        };
        let service = self.service.clone();
        let done =
            tokio::task::spawn_blocking(move || service.write(&actor, &change, &provenance)).await;
        answer(done)
    }

    /// Approves or declines an approval as `actor`.
    async fn settle(
        self: Arc<Self>,
        actor: String,
        headers: &HeaderMap,
        id: String,
        approve: bool,
    ) -> Response<Body> {
        // Settling twice finds nothing the second time: a retry needs no key.
        let provenance = match provenance(headers, false) {
            Ok(p) => p,
            Err(m) => return malformed(m),
        };
        let service = self.service.clone();
        let done =
            tokio::task::spawn_blocking(move || service.settle(&actor, &id, approve, &provenance))
                .await;
        answer(done)
    }

    /// The answer, with CORS headers for an allowed origin; a preflight
    /// from one is answered here. Other origins get no CORS headers, so a
    /// browser keeps their pages from reading the answers.
    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .filter(|o| self.cors_origins.iter().any(|a| a == o))
            .map(str::to_string);
        let preflight = req.method() == Method::OPTIONS && origin.is_some();
        let mut r = if preflight {
            let mut r = Response::new(portcullis_gateway::response::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                http::HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                http::HeaderValue::from_static(
                    "authorization, content-type, if-match, idempotency-key, x-request-id, x-api-key",
                ),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                http::HeaderValue::from_static("600"),
            );
            r
        } else {
            self.route(req).await
        };
        if let Some(o) = origin.and_then(|o| http::HeaderValue::from_str(&o).ok()) {
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                http::HeaderValue::from_static("x-portcullis-revision, x-portcullis-reason, etag"),
            );
            h.append(header::VARY, http::HeaderValue::from_static("origin"));
        }
        r
    }

    async fn route(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        if path == "/healthz" {
            return json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}));
        }
        if let Some(rest) = path.strip_prefix("/scim/v2/") {
            let rest = rest.to_string();
            return self.scim(req, &rest).await;
        }
        let Some(rest) = path.strip_prefix("/v1/directory") else {
            return not_found(format!("no endpoint {path}: see docs/directory.md"));
        };
        let parts: Vec<&str> = rest.split('/').skip(1).collect();
        if parts.iter().any(|p| segment(p).is_none()) && !rest.is_empty() {
            return malformed(format!(
                "the path {path:?} has an empty, dot or encoded segment: name ids as they are"
            ));
        }
        let headers = req.headers().clone();
        let actor = match self.actor(&headers, req.extensions().get::<ClientCertificate>()) {
            Ok(a) => a,
            Err(r) => return *r,
        };
        let q = query(req.uri());
        let one = |op: Operation| Change {
            operations: vec![op],
            bulk: false,
        };
        match (&method, parts.as_slice()) {
            (&Method::GET, []) => {
                // The whole directory: access management of the domain.
                let Some(head) = self.service.head() else {
                    return refusal(&ServiceError::Empty);
                };
                let domain = crate::requirement::domain(&head.directory);
                if let Err(r) = self.allowed(&actor, "org:access", &domain) {
                    return *r;
                }
                // Tens of megabytes for a large directory: written off the
                // runtime's threads.
                let revision = head.revision;
                match tokio::task::spawn_blocking(move || {
                    json_response(StatusCode::OK, &head.directory)
                })
                .await
                {
                    Ok(r) => with_revision(r, revision),
                    Err(e) => refusal(&ServiceError::Build(e.to_string())),
                }
            }
            (&Method::PUT, []) => {
                let bytes = match self.body(req).await {
                    Ok(b) => b,
                    Err(r) => return *r,
                };
                let text = match std::str::from_utf8(&bytes) {
                    Ok(t) => t,
                    Err(_) => return malformed("the directory is not UTF-8"),
                };
                let desired = match portcullis_snapshots::source::parse(text) {
                    Ok(d) => d,
                    Err(problems) => {
                        return refusal(&ServiceError::Invalid422(located(text, problems)));
                    }
                };
                let provenance = Provenance {
                    via: "import",
                    request_id: single_header(&headers, "x-request-id").ok().flatten(),
                    idempotency_key: None,
                    if_match: match if_match(&headers) {
                        Ok(m) => m,
                        Err(m) => return malformed(m),
                    },
                };
                let service = self.service.clone();
                answer(
                    tokio::task::spawn_blocking(move || {
                        service.import(&desired, &actor, true, &provenance)
                    })
                    .await,
                )
            }
            (&Method::GET, ["revision"]) => {
                let head = self.service.head().map_or(0, |h| h.revision);
                let published = self.publisher.as_ref().map(|p| p.state());
                json_response(
                    StatusCode::OK,
                    &serde_json::json!({"revision": head, "published": published}),
                )
            }
            (&Method::POST, ["changes"]) => {
                let bytes = match self.body(req).await {
                    Ok(b) => b,
                    Err(r) => return *r,
                };
                match parse_json::<Change>(&bytes) {
                    Ok(change) if change.operations.is_empty() => {
                        malformed("a change needs at least one operation")
                    }
                    Ok(change) => self.write(actor, &headers, change).await,
                    Err(m) => malformed(m),
                }
            }
            (&Method::GET, ["changes"]) => {
                let Some(head) = self.service.head() else {
                    return refusal(&ServiceError::Empty);
                };
                if let Err(r) = self.allowed(
                    &actor,
                    "org:access",
                    &crate::requirement::domain(&head.directory),
                ) {
                    return *r;
                }
                let (after, limit) = match (query_u64(&q, "after", 0), query_u64(&q, "limit", 100))
                {
                    (Ok(a), Ok(l)) => (a, l.clamp(1, 1000) as usize),
                    (Err(m), _) | (_, Err(m)) => return malformed(m),
                };
                let service = self.service.clone();
                match tokio::task::spawn_blocking(move || service.changes(after, limit)).await {
                    Ok(Ok(entries)) => {
                        let next = entries.last().map(|e| e.revision);
                        with_revision(
                            json_response(
                                StatusCode::OK,
                                &serde_json::json!({"changes": entries, "next_after": next}),
                            ),
                            head.revision,
                        )
                    }
                    Ok(Err(e)) => refusal(&e),
                    Err(e) => refusal(&ServiceError::Build(e.to_string())),
                }
            }
            (&Method::GET, ["actions"]) => {
                let Some(head) = self.service.head() else {
                    return refusal(&ServiceError::Empty);
                };
                let Some((_, resource)) = q.iter().find(|(k, _)| k == "resource") else {
                    return malformed("name the resource: ?resource=user/olivia");
                };
                let p = head.engine.permissions(
                    &actor,
                    resource,
                    Context {
                        now: now_unix(),
                        bulk: false,
                    },
                );
                with_revision(
                    json_response(
                        StatusCode::OK,
                        &serde_json::json!({"principal": actor, "resource": resource, "permissions": p, "revision": head.revision}),
                    ),
                    head.revision,
                )
            }
            (&Method::GET, ["users"]) => self.list_users(&actor, &q),
            (&Method::GET, ["approvals"]) => {
                let revision = self.service.head().map_or(0, |h| h.revision);
                with_revision(
                    json_response(
                        StatusCode::OK,
                        &serde_json::json!({"approvals": self.service.approvals(&actor)}),
                    ),
                    revision,
                )
            }
            (&Method::POST, ["approvals", id]) | (&Method::DELETE, ["approvals", id]) => {
                let approve = method == Method::POST;
                let id = (*id).to_string();
                self.settle(actor, &headers, id, approve).await
            }
            (&Method::GET, ["settings", name]) => {
                let Some(setting) = crate::operation::Setting::of(name) else {
                    return not_found(format!(
                        "no setting {name:?}: the settings are sso and scim"
                    ));
                };
                let Some(head) = self.service.head() else {
                    return refusal(&ServiceError::Empty);
                };
                if let Err(r) = self.allowed(
                    &actor,
                    setting.action(),
                    &crate::requirement::domain(&head.directory),
                ) {
                    return *r;
                }
                with_revision(
                    json_response(
                        StatusCode::OK,
                        &serde_json::json!({
                            "name": setting.name(),
                            "value": head.settings.get(setting.name()),
                        }),
                    ),
                    head.revision,
                )
            }
            (&Method::PUT, ["settings", name]) => {
                let Some(setting) = crate::operation::Setting::of(name) else {
                    return not_found(format!(
                        "no setting {name:?}: the settings are sso and scim"
                    ));
                };
                match self
                    .parse::<serde_json::Map<String, serde_json::Value>>(req)
                    .await
                {
                    Ok(value) => {
                        let op = Operation::SetSetting {
                            name: setting,
                            value,
                        };
                        self.write(actor, &headers, one(op)).await
                    }
                    Err(r) => *r,
                }
            }
            (&Method::POST, [kind]) if Section::of(kind).is_some_and(Section::writable) => {
                let kind = (*kind).to_string();
                match self.body(req).await {
                    Ok(bytes) => match entity_op(&kind, None, &bytes, false) {
                        Ok(op) => self.write(actor, &headers, one(op)).await,
                        Err(m) => malformed(m),
                    },
                    Err(r) => *r,
                }
            }
            (&Method::PUT, [kind, id]) if Section::of(kind).is_some_and(Section::writable) => {
                let (kind, id) = ((*kind).to_string(), (*id).to_string());
                match self.body(req).await {
                    Ok(bytes) => match entity_op(&kind, Some(&id), &bytes, false) {
                        Ok(op) => self.write(actor, &headers, one(op)).await,
                        Err(m) => malformed(m),
                    },
                    Err(r) => *r,
                }
            }
            (&Method::DELETE, [kind, id]) if Section::of(kind).is_some_and(Section::writable) => {
                match entity_op(kind, Some(id), b"", true) {
                    Ok(op) => self.write(actor, &headers, one(op)).await,
                    Err(m) => malformed(m),
                }
            }
            (&Method::POST, ["permissions"]) | (&Method::DELETE, ["permissions"]) => {
                let remove = method == Method::DELETE;
                match self.parse::<PermissionBody>(req).await {
                    Ok(b) => {
                        let op = if remove {
                            Operation::RemovePermission {
                                permission: b.permission,
                            }
                        } else {
                            Operation::AddPermission {
                                permission: b.permission,
                            }
                        };
                        self.write(actor, &headers, one(op)).await
                    }
                    Err(r) => *r,
                }
            }
            (&Method::PUT, ["groups", g, "members", kind, id])
            | (&Method::DELETE, ["groups", g, "members", kind, id]) => {
                let (group, member) = ((*g).to_string(), format!("{kind}/{id}"));
                let op = if method == Method::PUT {
                    Operation::AddGroupMember { group, member }
                } else {
                    Operation::RemoveGroupMember { group, member }
                };
                self.write(actor, &headers, one(op)).await
            }
            (&Method::GET, [kind]) if Section::of(kind).is_some() => {
                self.list_section(&actor, kind, None, &q)
            }
            (&Method::GET, [kind, id]) if Section::of(kind).is_some() => {
                self.list_section(&actor, kind, Some(id), &q)
            }
            (&Method::GET, ["users", u]) => {
                let Some(head) = self.service.head() else {
                    return refusal(&ServiceError::Empty);
                };
                if let Err(r) = self.allowed(&actor, "user:view", &format!("user/{u}")) {
                    return *r;
                }
                match head.directory.users.iter().find(|x| x.username == *u) {
                    Some(user) => with_revision(json_response(StatusCode::OK, user), head.revision),
                    None => not_found(format!("user/{u} does not exist")),
                }
            }
            (&Method::POST, ["users"]) => match self.parse::<InviteBody>(req).await {
                Ok(b) => {
                    self.write(actor, &headers, one(Operation::InviteUser { user: b.user }))
                        .await
                }
                Err(r) => *r,
            },
            (&Method::PATCH, ["users", u]) => {
                let username = (*u).to_string();
                match self.parse::<UserChanges>(req).await {
                    Ok(set) => {
                        self.write(
                            actor,
                            &headers,
                            one(Operation::UpdateUser { username, set }),
                        )
                        .await
                    }
                    Err(r) => *r,
                }
            }
            (&Method::DELETE, ["users", u]) => {
                let username = (*u).to_string();
                self.write(actor, &headers, one(Operation::DeleteUser { username }))
                    .await
            }
            (&Method::POST, ["users", u, "deactivate"]) => {
                let username = (*u).to_string();
                self.write(actor, &headers, one(Operation::DeactivateUser { username }))
                    .await
            }
            (&Method::POST, ["users", u, "reactivate"]) => {
                let username = (*u).to_string();
                self.write(actor, &headers, one(Operation::ReactivateUser { username }))
                    .await
            }
            (&Method::PUT, ["users", u, "expiry"]) => {
                let username = (*u).to_string();
                match self.parse::<ExpiryBody>(req).await {
                    Ok(b) => {
                        let op = Operation::SetUserExpiry {
                            username,
                            expires_at: b.expires_at,
                        };
                        self.write(actor, &headers, one(op)).await
                    }
                    Err(r) => *r,
                }
            }
            (&Method::PUT, ["users", u, "admin-role"]) => {
                let username = (*u).to_string();
                match self.parse::<AdminRoleBody>(req).await {
                    Ok(b) => {
                        let op = Operation::SetAdminRole {
                            username,
                            admin_role: b.admin_role,
                        };
                        self.write(actor, &headers, one(op)).await
                    }
                    Err(r) => *r,
                }
            }
            (&Method::POST, ["api-keys"]) => match self.parse::<ApiKeyBody>(req).await {
                Ok(b) => {
                    let op = Operation::CreateApiKey {
                        id: b.id,
                        name: b.name,
                        expires_at: b.expires_at,
                    };
                    self.write(actor, &headers, one(op)).await
                }
                Err(r) => *r,
            },
            (&Method::DELETE, ["api-keys", id]) => {
                let id = (*id).to_string();
                self.write(actor, &headers, one(Operation::RevokeApiKey { id }))
                    .await
            }
            (&Method::PUT, ["teams", t, "members", u]) => {
                let op = Operation::AddTeamMember {
                    team: (*t).to_string(),
                    username: (*u).to_string(),
                };
                self.write(actor, &headers, one(op)).await
            }
            (&Method::DELETE, ["teams", t, "members", u]) => {
                let op = Operation::RemoveTeamMember {
                    team: (*t).to_string(),
                    username: (*u).to_string(),
                };
                self.write(actor, &headers, one(op)).await
            }
            (&Method::POST, ["grants"]) => match self.parse::<GrantBody>(req).await {
                Ok(b) => {
                    self.write(actor, &headers, one(Operation::AddGrant { grant: b.grant }))
                        .await
                }
                Err(r) => *r,
            },
            (&Method::DELETE, ["grants"]) => match self.parse::<GrantBody>(req).await {
                Ok(b) => {
                    self.write(
                        actor,
                        &headers,
                        one(Operation::RemoveGrant { grant: b.grant }),
                    )
                    .await
                }
                Err(r) => *r,
            },
            _ => not_found(format!(
                "no endpoint {method} {path}: see docs/directory.md"
            )),
        }
    }

    async fn parse<T: DeserializeOwned>(&self, req: Request<Incoming>) -> Result<T, Early> {
        let bytes = self.body(req).await?;
        parse_json(&bytes).map_err(|m| Box::new(malformed(m)))
    }

    /// The entities of a section the actor may see — each by the question
    /// [`Section::asks`] puts to the engine —, in source order, paged by
    /// key; or one of them (`id`: 404 when it does not exist, 403 when the
    /// actor may not see it).
    fn list_section(
        &self,
        actor: &str,
        kind: &str,
        id: Option<&str>,
        q: &[(String, String)],
    ) -> Response<Body> {
        let (Some(head), Some(section)) = (self.service.head(), Section::of(kind)) else {
            return refusal(&ServiceError::Empty);
        };
        let limit = match query_u64(q, "limit", 100) {
            Ok(l) => l.clamp(1, 1000) as usize,
            Err(m) => return malformed(m),
        };
        let after = q
            .iter()
            .find(|(k, _)| k == "after")
            .map(|(_, v)| v.as_str());
        let context = Context {
            now: now_unix(),
            bulk: false,
        };
        let dir = &head.directory;
        let domain = crate::requirement::domain(dir);
        let may = |action: &str, resource: &str| {
            let req = policy_wasm::Request {
                principal: actor,
                action,
                resource,
                context,
            };
            head.engine.check(&req).allowed
        };
        let mut rows = section.rows(dir);
        if let Some(id) = id {
            return match rows.find(|r| r.key == id) {
                None => not_found(format!("{kind}/{id} does not exist")),
                Some(r) => {
                    let (action, resource) = section.asks(dir, &domain, &r);
                    match self.allowed(actor, action, &resource) {
                        Ok(rev) => with_revision(
                            json_response(StatusCode::OK, &section.value(dir, r.index)),
                            rev,
                        ),
                        Err(e) => *e,
                    }
                }
            };
        }
        let mut past_cursor = after.is_none();
        let mut out: Vec<Row> = Vec::new();
        let mut next = None;
        for r in rows {
            if !past_cursor {
                past_cursor = Some(r.key.as_str()) == after;
                continue;
            }
            let (action, resource) = section.asks(dir, &domain, &r);
            if may(action, &resource) {
                if out.len() == limit {
                    next = out.last().map(|x| x.key.clone());
                    break;
                }
                out.push(r);
            }
        }
        let items: Vec<serde_json::Value> =
            out.iter().map(|r| section.value(dir, r.index)).collect();
        with_revision(
            json_response(
                StatusCode::OK,
                &serde_json::json!({"items": items, "next_after": next}),
            ),
            head.revision,
        )
    }

    /// Users the actor may view, in source order, paged by username.
    fn list_users(&self, actor: &str, q: &[(String, String)]) -> Response<Body> {
        let Some(head) = self.service.head() else {
            return refusal(&ServiceError::Empty);
        };
        let limit = match query_u64(q, "limit", 100) {
            Ok(l) => l.clamp(1, 1000) as usize,
            Err(m) => return malformed(m),
        };
        let get = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let (after, org, status) = (get("after"), get("organization"), get("status"));
        let context = Context {
            now: now_unix(),
            bulk: false,
        };
        let all = &head.directory.users;
        // The cursor's row through the engine's index (users are in the
        // same order in both): a later page does not scan the pages before.
        let start = match after {
            None => Some(0),
            Some(a) => head
                .engine
                .user_row(a)
                .map(|r| r as usize)
                .filter(|&r| all.get(r).is_some_and(|u| u.username == a))
                .or_else(|| all.iter().position(|u| u.username == a))
                .map(|r| r + 1),
        };
        let mut users = Vec::new();
        let mut next = None;
        for u in all.get(start.unwrap_or(all.len())..).unwrap_or_default() {
            if org.is_some_and(|o| o != u.organization)
                || status.is_some_and(|s| serde_json::to_value(u.status).ok() != Some(s.into()))
            {
                continue;
            }
            let resource = format!("user/{}", u.username);
            let req = policy_wasm::Request {
                principal: actor,
                action: "user:view",
                resource: &resource,
                context,
            };
            if head.engine.check(&req).allowed {
                if users.len() == limit {
                    next = users.last().map(|x: &&User| x.username.clone());
                    break;
                }
                users.push(u);
            }
        }
        with_revision(
            json_response(
                StatusCode::OK,
                &serde_json::json!({"users": users, "next_after": next}),
            ),
            head.revision,
        )
    }
}

/// A listed entity: its key (for paging and `GET …/{id}`) and its place
/// in its section.
struct Row {
    key: String,
    /// What the entity hangs off, for the question it is read by.
    scope: String,
    index: usize,
}

/// The sections listed by `GET /v1/directory/{section}` besides users.
#[derive(Clone, Copy)]
enum Section {
    Organizations,
    Environments,
    Catalogs,
    Objects,
    ServiceAccounts,
    ApiKeys,
    Groups,
    Teams,
    CustomRoles,
    Grants,
    Permissions,
}

impl Section {
    /// Whether `POST`, `PUT …/{id}` and `DELETE …/{id}` write it (grants,
    /// permissions and API keys have their own endpoints).
    fn writable(self) -> bool {
        !matches!(
            self,
            Section::ApiKeys | Section::Grants | Section::Permissions
        )
    }

    fn of(name: &str) -> Option<Section> {
        Some(match name {
            "organizations" => Section::Organizations,
            "environments" => Section::Environments,
            "catalogs" => Section::Catalogs,
            "objects" => Section::Objects,
            "service-accounts" => Section::ServiceAccounts,
            "api-keys" => Section::ApiKeys,
            "groups" => Section::Groups,
            "teams" => Section::Teams,
            "custom-roles" => Section::CustomRoles,
            "grants" => Section::Grants,
            "permissions" => Section::Permissions,
            _ => return None,
        })
    }

    /// Each entity's key and scope, in source order. Only the entities
    /// answered are serialized ([`Section::value`]), not the section.
    /// The section's rows, made as they are read: a page reads up to its
    /// cursor and then as many as it shows, not the whole section (a key
    /// for each of 500,000 grants, per request).
    fn rows(self, d: &Directory) -> Box<dyn Iterator<Item = Row> + '_> {
        fn rows<'a, T>(
            items: &'a [T],
            key: impl Fn(&T) -> String + 'a,
            scope: impl Fn(&T) -> String + 'a,
        ) -> Box<dyn Iterator<Item = Row> + 'a> {
            Box::new(items.iter().enumerate().map(move |(index, t)| Row {
                key: key(t),
                scope: scope(t),
                index,
            }))
        }
        fn none<T>(_: &T) -> String {
            String::new()
        }
        match self {
            Section::Organizations => rows(&d.organizations, |o| o.id.clone(), none),
            Section::Environments => rows(&d.environments, |e| e.id.clone(), none),
            Section::Catalogs => rows(&d.catalogs, |c| c.id.clone(), none),
            Section::Objects => rows(&d.objects, |o| o.id.clone(), none),
            Section::ServiceAccounts => rows(
                &d.service_accounts,
                |s| s.id.clone(),
                |s| s.organization.clone(),
            ),
            Section::ApiKeys => rows(&d.api_keys, |k| k.id.clone(), none),
            Section::Groups => rows(&d.groups, |g| g.id.clone(), none),
            Section::Teams => rows(&d.teams, |t| t.id.clone(), none),
            Section::CustomRoles => rows(&d.custom_roles, |r| r.id.clone(), none),
            Section::Grants => rows(&d.grants, crate::operation::grant_key, |g| g.on.clone()),
            Section::Permissions => rows(&d.permissions, crate::operation::permission_key, |p| {
                p.on.clone().unwrap_or_default()
            }),
        }
    }

    /// The entity at `index`, as the directory source writes it.
    fn value(self, d: &Directory, index: usize) -> serde_json::Value {
        fn at<T: serde::Serialize>(items: &[T], index: usize) -> serde_json::Value {
            items
                .get(index)
                .and_then(|t| serde_json::to_value(t).ok())
                .unwrap_or_default()
        }
        match self {
            Section::Organizations => at(&d.organizations, index),
            Section::Environments => at(&d.environments, index),
            Section::Catalogs => at(&d.catalogs, index),
            Section::Objects => at(&d.objects, index),
            Section::ServiceAccounts => at(&d.service_accounts, index),
            // A key's hash stays in the database: a listing names keys,
            // it does not hand out what a guess is checked against.
            Section::ApiKeys => {
                let mut v = at(&d.api_keys, index);
                if let Some(o) = v.as_object_mut() {
                    o.remove("sha256");
                }
                v
            }
            Section::Groups => at(&d.groups, index),
            Section::Teams => at(&d.teams, index),
            Section::CustomRoles => at(&d.custom_roles, index),
            Section::Grants => at(&d.grants, index),
            Section::Permissions => at(&d.permissions, index),
        }
    }

    /// The question an entity is read by.
    fn asks(self, d: &Directory, domain: &str, r: &Row) -> (&'static str, String) {
        match self {
            Section::Organizations => ("org:open", format!("org/{}", r.key)),
            Section::Environments => ("env:open", format!("env/{}", r.key)),
            Section::Catalogs => ("read", format!("catalog/{}", r.key)),
            Section::Objects => ("read", format!("object/{}", r.key)),
            Section::ServiceAccounts => ("org:access", format!("org/{}", r.scope)),
            Section::ApiKeys => ("admin:api_keys", domain.to_string()),
            Section::Groups => ("view:user_groups", domain.to_string()),
            Section::Teams => ("team:view", format!("team/{}", r.key)),
            Section::CustomRoles => ("org:access", domain.to_string()),
            Section::Grants => {
                if r.scope.starts_with("team/") {
                    ("team:view", r.scope.clone())
                } else {
                    ("org:access", crate::requirement::node_org(d, &r.scope))
                }
            }
            Section::Permissions => (
                "org:access",
                if r.scope.is_empty() {
                    domain.to_string()
                } else {
                    r.scope.clone()
                },
            ),
        }
    }
}

fn located(
    text: &str,
    mut problems: Vec<portcullis_snapshots::source::Problem>,
) -> Vec<portcullis_snapshots::source::Problem> {
    let locator = portcullis_snapshots::source::Locator::new(text);
    for p in &mut problems {
        if p.line == 0 {
            (p.line, p.column) = locator.position(&p.pointer);
        }
    }
    problems
}

/// A SCIM answer as HTTP: `application/scim+json`, `ETag`, `Location`.
fn scim_response(a: crate::scim::ScimAnswer) -> Response<Body> {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = match &a.body {
        Some(b) => json_response(status, b),
        None => {
            let mut r = Response::new(portcullis_gateway::response::empty());
            *r.status_mut() = status;
            r
        }
    };
    let h = r.headers_mut();
    if a.body.is_some() {
        h.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/scim+json"),
        );
    }
    let mut put = |name: http::HeaderName, v: &Option<String>| {
        if let Some(v) = v
            .as_deref()
            .and_then(|v| http::HeaderValue::from_str(v).ok())
        {
            h.insert(name, v);
        }
    };
    put(header::ETAG, &a.etag);
    put(header::LOCATION, &a.location);
    put(
        http::HeaderName::from_static(portcullis_gateway::response::REASON_HEADER),
        &a.reason,
    );
    if let Some(rev) = a.revision {
        h.insert(REVISION_HEADER, rev.into());
    }
    if a.status == 401 {
        h.insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"portcullis-scim\""),
        );
    }
    r
}

fn with_revision(mut r: Response<Body>, revision: u64) -> Response<Body> {
    r.headers_mut().insert(REVISION_HEADER, revision.into());
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{revision}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn answer(done: Result<Result<Committed, ServiceError>, tokio::task::JoinError>) -> Response<Body> {
    match done {
        Ok(Ok(c)) => {
            let rev = c.revision;
            with_revision(json_response(StatusCode::OK, &c), rev)
        }
        Ok(Err(e)) => refusal(&e),
        Err(e) => refusal(&ServiceError::Build(format!("the writer stopped: {e}"))),
    }
}

/// Serves the API on `listener` until `stop` turns true.
pub async fn serve(
    api: Arc<Api>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if let Some(remote) = api.identity.remote_keys() {
        remote
            .fetch()
            .await
            .map_err(|e| std::io::Error::other(format!("identity provider keys: {e}")))?;
        tokio::spawn(Arc::clone(remote).run(|_| {}, stop.clone()));
    }
    // The directory service keeps no metrics endpoint: TLS events are
    // logged (reloads, refused handshakes, withdrawn certificates).
    let tls_metrics = portcullis_gateway::metrics::TlsMetrics::default();
    if let Some(tls) = &api.tls {
        portcullis_gateway::tls::watch(Arc::clone(tls), tls_metrics.clone(), stop.clone());
    }
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return Ok(()),
        };
        let api_tls = api.tls.clone();
        let api = api.clone();
        let mut stopped = stop.clone();
        // The gateway's framing follower: a request carrying both
        // Content-Length and Transfer-Encoding (which hyper hides from
        // handlers) is refused, as at the gateway — a proxy in front may
        // read its body the other way.
        let framing = FramingLog::new();
        let seen = framing.clone();
        let tls_metrics = tls_metrics.clone();
        tokio::spawn(async move {
            let (stream, certificate) = match &api.tls {
                None => (MaybeTls::Plain(stream), None),
                Some(tls) => {
                    match portcullis_gateway::tls::handshake(tls, stream, peer, &tls_metrics).await
                    {
                        Some(s) => s,
                        None => return,
                    }
                }
            };
            let cert = certificate.clone();
            let svc = service_fn(move |mut req: Request<Incoming>| {
                let api = api.clone();
                // HTTP/1 requests reach the service in the order they were
                // sent, so the n-th one asks about the n-th head on the wire.
                let ambiguous =
                    req.version() < http::Version::HTTP_2 && seen.next_request_is_ambiguous();
                // A certificate revoked or expired since the handshake no
                // longer speaks for its connection.
                let withdrawn = cert.as_ref().and_then(|c| match c.check(now_unix()) {
                    Ok(()) => {
                        req.extensions_mut()
                            .insert(ClientCertificate(Arc::clone(c)));
                        None
                    }
                    Err((why, message)) => Some(
                        portcullis_gateway::tls::certificate_withdrawn(why, message)
                            .into_response(),
                    ),
                });
                async move {
                    if let Some(refusal) = withdrawn {
                        return Ok::<_, std::convert::Infallible>(refusal);
                    }
                    if ambiguous {
                        return Ok::<_, std::convert::Infallible>(
                            Refusal::ambiguous_request(
                                "Content-Length together with Transfer-Encoding (RFC 9112 §6.1): send one",
                            )
                            .into_response(),
                        );
                    }
                    Ok::<_, std::convert::Infallible>(api.answer(req).await)
                }
            });
            // The header timeout needs hyper's timer: without it hyper
            // panics on the first request.
            // HTTP/1.1, and HTTP/2 where TLS negotiates it (ALPN), as at
            // the gateway.
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .max_buf_size(MAX_HEAD);
            builder
                .http2()
                .timer(hyper_util::rt::TokioTimer::new())
                .max_concurrent_streams(100)
                .max_header_list_size(MAX_HEAD as u32);
            let conn =
                builder.serve_connection(TokioIo::new(Framed::new(stream, framing, MAX_HEAD)), svc);
            tokio::pin!(conn);
            // When the listener's trust reloads or the client certificate
            // expires, the connection ends with it (new handshakes decide
            // anew).
            let ends = async {
                match (&certificate, &api_tls) {
                    (Some(c), Some(tls)) => {
                        portcullis_gateway::tls::until_withdrawn(tls, c, peer, &tls_metrics).await;
                    }
                    _ => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = conn.as_mut() => { let _ = r; }
                () = ends => {}
                _ = stopped.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// Follows the other replicas' commits every `every`, on a thread that
/// ends with the service.
fn follow(service: &Arc<Service>, every: std::time::Duration) -> Result<(), String> {
    let weak = Arc::downgrade(service);
    std::thread::Builder::new()
        .name("follow".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(s) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = s.follow() {
                    tracing::warn!(error = %e, "cannot follow the other replicas");
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start a thread: {e}"))
}

/// Starts everything a configuration names: the store, the service, the
/// publisher. What `portcullis directory serve` runs.
pub fn start(config: &crate::config::DirectoryConfig) -> Result<Arc<Api>, String> {
    let storage = crate::storage::open(&config.database, config.max_database_mb.map(|mb| mb << 20))
        .map_err(|e| e.to_string())?;
    let service = Arc::new(Service::open(storage).map_err(|e| e.to_string())?);
    let identity = Identity::new(config.identity.clone()).map_err(|e| format!("identity: {e}"))?;
    let p = &config.publish;
    if service.shared() {
        follow(
            &service,
            std::time::Duration::from_millis(p.follow_ms.max(1)),
        )?;
    }
    let publisher = if p.store_dir.is_some() || !p.gateways.is_empty() {
        // Replicas on one database: one publishes at a time.
        let gate = if crate::storage::is_postgres(&config.database) {
            Some(Arc::new(
                crate::storage::Lease::start(
                    &config.database.to_string_lossy(),
                    std::time::Duration::from_millis(p.lease_check_ms.max(1)),
                )
                .map_err(|e| format!("the publishing lease: {e}"))?,
            ))
        } else {
            None
        };
        let key = match &p.signing_key {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Some(
                    portcullis_snapshots::signature::read_private(&pem)
                        .map_err(|e| format!("{}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        let publisher = Publisher::start(crate::publish::Destinations {
            store_dir: p.store_dir.clone(),
            gateways: p.gateways.clone(),
            key,
            window: p.window(),
            keep: p.keep,
            full_every: p.full_every.max(1),
            push_timeout: std::time::Duration::from_millis(p.push_timeout_ms),
            gate,
        });
        service
            .listen(publisher.clone())
            .map_err(|e| format!("publishing: {e}"))?;
        Some(publisher)
    } else {
        None
    };
    let tls = match &config.tls {
        Some(t) => Some(Arc::new(
            Tls::new("directory", t).map_err(|e| format!("tls: {}", e.join("; ")))?,
        )),
        None => None,
    };
    let scim =
        Arc::new(crate::scim::Provider::new(service.clone()).map_err(|e| format!("scim: {e}"))?);
    Ok(Arc::new(Api {
        scim,
        service,
        identity,
        publisher,
        max_body_bytes: config.max_body_bytes,
        cors_origins: config.cors_origins.clone(),
        tls,
    }))
}
