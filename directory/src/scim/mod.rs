//! SCIM 2.0 (RFC 7643, RFC 7644): identity providers provision an
//! organization's users and groups at `/scim/v2/{org}/…`.
//!
//! The organization in the URL is the scope of everything: its users
//! (those whose `organization` it is) and its groups (those SCIM made
//! for it, or given it). A request's credential must be one the `scim`
//! setting names for that organization (set by owners and super
//! administrators: `admin:scim`), and is asked `admin:scim` by the engine
//! on every request — a key whose creator was demoted, deactivated, or
//! which was revoked stops at once. Every change is then an ordinary
//! write of the service: decided by the engine as the credential (an API
//! key acts as its creator), validated, committed with `via = scim`, and
//! published to gateways like any other.
//!
//! Layers: `mod` (dispatch, scope, paging) → `patch`, `resource` →
//! `filter`, `index`, `discovery` → `error`.

mod discovery;
mod error;
pub mod filter;
mod index;
mod patch;
mod resource;

use std::sync::Arc;

use policy_wasm::{Context, Request};
use portcullis_snapshots::body::NodeRef;
use portcullis_snapshots::source::{Group, User};
use serde_json::{Value, json};

pub use error::ScimError;
use index::{Index, Shared};
pub use resource::segment;

use crate::error::ServiceError;
use crate::operation::{Operation, ScimSetting, Setting};
use crate::requirement::domain;
use crate::service::{Change, Committed, Head, Provenance, Service};

const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// One SCIM request, as the HTTP layer read it.
#[derive(Clone, Debug)]
pub struct ScimRequest<'a> {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: &'a str,
    /// The organization of the URL.
    pub org: &'a str,
    /// The path's segments after the organization, percent-decoded.
    pub rest: Vec<String>,
    /// The query's pairs, decoded.
    pub query: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// The organization's SCIM base URL, absolute (for `location`, `$ref`).
    pub base: String,
    /// Who is asking, as the gateway names principals (`apikey/<sha256>`,
    /// `service/…`, `user/…`), or why they could not be identified.
    pub principal: Result<String, String>,
    /// The client's request id, for the change log.
    pub request_id: Option<String>,
}

/// A SCIM answer, for the HTTP layer to send.
#[derive(Clone, Debug, PartialEq)]
pub struct ScimAnswer {
    /// The status.
    pub status: u16,
    /// The body (none for 204 and 304).
    pub body: Option<Value>,
    /// `ETag`.
    pub etag: Option<String>,
    /// `Location`, for a created resource.
    pub location: Option<String>,
    /// The directory revision read or written.
    pub revision: Option<u64>,
    /// The engine's reason, for a refusal it decided.
    pub reason: Option<String>,
}

impl ScimAnswer {
    fn ok(status: u16, body: Value) -> ScimAnswer {
        ScimAnswer {
            status,
            body: Some(body),
            etag: None,
            location: None,
            revision: None,
            reason: None,
        }
    }

    fn resource(status: u16, body: Value, revision: u64) -> ScimAnswer {
        let etag = body
            .pointer("/meta/version")
            .and_then(Value::as_str)
            .map(str::to_string);
        let location = (status == 201)
            .then(|| body.pointer("/meta/location").and_then(Value::as_str))
            .flatten()
            .map(str::to_string);
        ScimAnswer {
            status,
            body: Some(body),
            etag,
            location,
            revision: Some(revision),
            reason: None,
        }
    }
}

impl From<ScimError> for ScimAnswer {
    fn from(e: ScimError) -> ScimAnswer {
        ScimAnswer {
            status: e.status,
            body: Some(e.body()),
            etag: None,
            location: None,
            revision: None,
            reason: e.reason.clone(),
        }
    }
}

impl From<ServiceError> for ScimError {
    fn from(e: ServiceError) -> ScimError {
        match &e {
            ServiceError::Denied {
                reason, message, ..
            } => ScimError::forbidden(reason.clone(), format!("{reason}: {message}")),
            ServiceError::NotFound { source, .. } => ScimError::not_found(source.to_string()),
            ServiceError::Exists { source, .. } => ScimError::uniqueness(source.to_string()),
            ServiceError::Invalid { source, .. } => ScimError::invalid_value(source.to_string()),
            ServiceError::Invalid422(problems) => {
                let mut unique = false;
                let said: Vec<String> = problems
                    .iter()
                    .map(|p| {
                        unique |= p.message.starts_with("duplicate");
                        format!("{}: {}", p.pointer, p.message)
                    })
                    .collect();
                let detail = format!("the directory would be invalid: {}", said.join("; "));
                if unique {
                    ScimError::uniqueness(detail)
                } else {
                    ScimError::invalid_value(detail)
                }
            }
            ServiceError::Malformed(m) => ScimError::invalid_syntax(m.clone()),
            ServiceError::Stale { .. } | ServiceError::KeyReused(_) => {
                ScimError::precondition(e.to_string())
            }
            ServiceError::Storage(_) | ServiceError::Empty => ScimError::unavailable(e.to_string()),
            ServiceError::Build(_) => ScimError::internal(e.to_string()),
        }
    }
}

/// The provider: the service, and the index of what IdPs look up.
pub struct Provider {
    service: Arc<Service>,
    index: Shared,
}

/// The checks every request of an authenticated caller passed.
struct Caller<'a> {
    principal: String,
    head: Arc<Head>,
    org: &'a str,
    base: &'a str,
}

/// A writing caller, admitted: it holds no head.
struct Writer<'a> {
    principal: String,
    org: &'a str,
    base: &'a str,
}

impl Caller<'_> {
    fn user(&self, id: &str) -> Option<&User> {
        in_org_user(&self.head, self.org, id)
    }

    fn group(&self, id: &str) -> Option<&Group> {
        in_org_group(&self.head, self.org, id)
    }

    fn shown(&self) -> impl Fn(&str) -> bool + '_ {
        move |u: &str| self.user(u).is_some()
    }

    fn user_json(&self, u: &User) -> Value {
        resource::user_json(u, self.base)
    }

    fn group_json(&self, g: &Group) -> Value {
        resource::group_json(g, self.base, &self.shown())
    }
}

fn query<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn list_of(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// What a list or search asks.
struct Listing {
    filter: Option<filter::Filter>,
    start: usize,
    count: usize,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn number(v: Option<&Value>, name: &str, default: usize) -> Result<usize, ScimError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|n| usize::try_from(n.max(0)).unwrap_or(0))
            .ok_or_else(|| ScimError::invalid_value(format!("{name} is a whole number"))),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(|n| usize::try_from(n.max(0)).unwrap_or(0))
            .map_err(|_| ScimError::invalid_value(format!("{name} {s:?} is not a whole number"))),
        Some(other) => Err(ScimError::invalid_value(format!(
            "{name} is a whole number, not {other}"
        ))),
    }
}

impl Listing {
    fn of(
        filter: Option<&str>,
        start: Option<&Value>,
        count: Option<&Value>,
        attributes: Vec<String>,
        excluded: Vec<String>,
    ) -> Result<Listing, ScimError> {
        let filter = match filter {
            Some(f) if !f.trim().is_empty() => Some(filter::parse(f)?),
            _ => None,
        };
        Ok(Listing {
            filter,
            // RFC 7644 §3.4.2.4: below 1 is 1; a negative count is 0.
            start: number(start, "startIndex", 1)?.max(1),
            count: number(count, "count", 100)?.min(discovery::MAX_PAGE),
            attributes,
            excluded,
        })
    }

    fn from_query(q: &[(String, String)]) -> Result<Listing, ScimError> {
        let v = |n: &str| query(q, n).map(|s| Value::String(s.to_string()));
        Listing::of(
            query(q, "filter"),
            v("startIndex").as_ref(),
            v("count").as_ref(),
            list_of(query(q, "attributes")),
            list_of(query(q, "excludedAttributes")),
        )
    }

    fn from_search(body: &[u8]) -> Result<Listing, ScimError> {
        let b: Value = serde_json::from_slice(body)
            .map_err(|e| ScimError::invalid_syntax(format!("the search is not JSON: {e}")))?;
        resource::check_schemas(&b, SEARCH_SCHEMA)?;
        let strings = |n: &str| -> Result<Vec<String>, ScimError> {
            match filter::field(&b, n) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str().map(str::to_string).ok_or_else(|| {
                            ScimError::invalid_value(format!("{n} is a list of attribute names"))
                        })
                    })
                    .collect(),
                Some(Value::String(s)) => Ok(list_of(Some(s))),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{n} is a list of attribute names"
                ))),
            }
        };
        let f = match filter::field(&b, "filter") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(ScimError::invalid_filter("filter is a string")),
        };
        Listing::of(
            f,
            filter::field(&b, "startIndex"),
            filter::field(&b, "count"),
            strings("attributes")?,
            strings("excludedAttributes")?,
        )
    }
}

fn body_json(body: &[u8]) -> Result<Value, ScimError> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

/// `If-Match`: the resource's version must be one of those listed.
fn precondition(if_match: Option<&str>, current: &Value) -> Result<(), ScimError> {
    let Some(want) = if_match else {
        return Ok(());
    };
    let have = current
        .pointer("/meta/version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let strip = |s: &str| {
        s.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    let ok = want
        .split(',')
        .any(|w| w.trim() == "*" || strip(w) == strip(have));
    if ok {
        Ok(())
    } else {
        Err(ScimError::precondition(format!(
            "the resource is at version {have}, not {want}: read it again and retry"
        )))
    }
}

impl Provider {
    /// A provider over `service`, told of each revision to keep its index.
    pub fn new(service: Arc<Service>) -> Result<Provider, ServiceError> {
        let index = Shared::default();
        service.listen(Arc::new(index.clone()))?;
        Ok(Provider { service, index })
    }

    /// Answers one request. Blocking: a write waits for its commit.
    pub fn handle(&self, req: &ScimRequest<'_>) -> ScimAnswer {
        match self.route(req) {
            Ok(a) => a,
            Err(e) => e.into(),
        }
    }

    fn route(&self, req: &ScimRequest<'_>) -> Result<ScimAnswer, ScimError> {
        let rest: Vec<&str> = req.rest.iter().map(String::as_str).collect();
        let base = req.base.as_str();
        // Discovery needs no credential: it says nothing of the directory.
        match (req.method, rest.as_slice()) {
            ("GET", ["ServiceProviderConfig"]) => {
                return Ok(ScimAnswer::ok(
                    200,
                    discovery::service_provider_config(base),
                ));
            }
            ("GET", ["ResourceTypes"]) => {
                return Ok(list_response(discovery::resource_types(base)));
            }
            ("GET", ["Schemas"]) => return Ok(list_response(discovery::schemas(base))),
            ("GET", ["ResourceTypes", id]) => {
                return found(discovery::resource_types(base), id);
            }
            ("GET", ["Schemas", id]) => return found(discovery::schemas(base), id),
            (_, ["ServiceProviderConfig" | "ResourceTypes" | "Schemas", ..]) => {
                return Err(ScimError::not_allowed(
                    "discovery endpoints answer GET only",
                ));
            }
            _ => {}
        }
        let caller = self.caller(req)?;
        let writes = matches!(
            (req.method, rest.as_slice()),
            ("POST", ["Users" | "Groups"]) | ("PUT" | "PATCH" | "DELETE", ["Users" | "Groups", _])
        );
        if writes {
            // A write lets go of the head it was admitted at: the writer
            // edits the revision before in place once no request holds it.
            let Caller {
                principal,
                head,
                org,
                base,
            } = caller;
            drop(head);
            let w = &Writer {
                principal,
                org,
                base,
            };
            return match (req.method, rest.as_slice()) {
                ("POST", ["Users"]) => self.create_user(w, req),
                ("PUT", ["Users", id]) => {
                    self.replace_user(w, req, id, Edit::Put(body_json(req.body)?))
                }
                ("PATCH", ["Users", id]) => {
                    self.replace_user(w, req, id, Edit::Patch(body_json(req.body)?))
                }
                ("DELETE", ["Users", id]) => self.delete_user(w, req, id),
                ("POST", ["Groups"]) => self.create_group(w, req),
                ("PUT", ["Groups", id]) => {
                    self.replace_group(w, req, id, Edit::Put(body_json(req.body)?))
                }
                ("PATCH", ["Groups", id]) => {
                    self.replace_group(w, req, id, Edit::Patch(body_json(req.body)?))
                }
                _ => self.delete_group(w, req, rest.get(1).copied().unwrap_or_default()),
            };
        }
        let c = &caller;
        match (req.method, rest.as_slice()) {
            ("GET", ["Users"]) => self.list_users(c, &Listing::from_query(req.query)?),
            ("POST", ["Users", ".search"]) => self.list_users(c, &Listing::from_search(req.body)?),
            ("GET", ["Users", id]) => {
                let u = c.user(id).ok_or_else(|| no_user(c.org, id))?;
                self.answer_one(c, req, c.user_json(u))
            }
            ("GET", ["Groups"]) => self.list_groups(c, &Listing::from_query(req.query)?),
            ("POST", ["Groups", ".search"]) => {
                self.list_groups(c, &Listing::from_search(req.body)?)
            }
            ("GET", ["Groups", id]) => {
                let g = c.group(id).ok_or_else(|| no_group(c.org, id))?;
                self.answer_one(c, req, c.group_json(g))
            }
            (_, ["Me", ..]) => Err(ScimError::not_implemented(
                "/Me is not supported: a provisioning credential is not a user; use /Users/{id}",
            )),
            (_, ["Bulk"]) => Err(ScimError::not_implemented(
                "bulk is not supported (ServiceProviderConfig says so): send one request per change",
            )),
            (_, [".search"]) => Err(ScimError::not_implemented(
                "search at the root is not supported: POST /Users/.search or /Groups/.search",
            )),
            (_, ["Users" | "Groups"] | ["Users" | "Groups", _]) => Err(ScimError::not_allowed(
                format!("{} is not allowed here", req.method),
            )),
            _ => Err(ScimError::not_found(format!(
                "no SCIM endpoint /{}: Users, Groups, ServiceProviderConfig, ResourceTypes, Schemas",
                req.rest.join("/")
            ))),
        }
    }

    /// Identifies and admits the caller for the organization.
    fn caller<'a>(&self, req: &'a ScimRequest<'_>) -> Result<Caller<'a>, ScimError> {
        let principal = req.principal.clone().map_err(ScimError::unauthorized)?;
        let head = self
            .service
            .head()
            .ok_or_else(|| ScimError::unavailable("the directory is empty: import one first"))?;
        let org_exists = matches!(
            head.engine.node_row(&format!("org/{}", req.org)),
            Some(NodeRef::Org(_))
        );
        // The credential as the setting names it: `key/<id>` for an API key.
        let credential = match principal.strip_prefix("apikey/") {
            Some(h) => {
                let mut sha = [0u8; 32];
                hex::decode_to_slice(h, &mut sha)
                    .ok()
                    .and_then(|()| head.engine.api_key_id(&sha))
                    .map(|id| format!("key/{id}"))
                    .unwrap_or_default()
            }
            None => principal.clone(),
        };
        let setting = ScimSetting::of(head.settings.get(Setting::Scim.name())).unwrap_or_default();
        if !org_exists || !setting.allows(req.org, &credential) {
            // One answer for an unknown organization and one not this
            // credential's: it learns nothing of the others.
            return Err(ScimError::forbidden(
                "scim_not_configured",
                format!(
                    "this credential does not provision organization {:?}: an owner or super administrator names it in the scim setting (organizations.{}.credentials)",
                    req.org, req.org
                ),
            ));
        }
        let on = domain(&head.directory);
        let ask = Request {
            principal: &principal,
            action: Setting::Scim.action(),
            resource: &on,
            context: Context {
                now: time::OffsetDateTime::now_utc().unix_timestamp(),
                bulk: false,
            },
        };
        let d = head.engine.check(&ask);
        if !d.allowed {
            let e = head.engine.explain_decision(&ask, &d);
            return Err(ScimError::forbidden(
                e.reason.clone(),
                format!(
                    "{}: {} ({} on {on})",
                    e.reason,
                    e.message,
                    Setting::Scim.action()
                ),
            ));
        }
        Ok(Caller {
            principal,
            head,
            org: req.org,
            base: &req.base,
        })
    }

    fn answer_one(
        &self,
        c: &Caller<'_>,
        req: &ScimRequest<'_>,
        mut v: Value,
    ) -> Result<ScimAnswer, ScimError> {
        let version = v
            .pointer("/meta/version")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let (Some(want), Some(have)) = (req.if_none_match, &version)
            && want.split(',').any(|w| w.trim() == have || w.trim() == "*")
        {
            return Ok(ScimAnswer {
                status: 304,
                body: None,
                etag: version,
                location: None,
                revision: Some(c.head.revision),
                reason: None,
            });
        }
        resource::project(
            &mut v,
            &list_of(query(req.query, "attributes")),
            &list_of(query(req.query, "excludedAttributes")),
        );
        let mut a = ScimAnswer::resource(200, v, c.head.revision);
        a.etag = version;
        Ok(a)
    }

    fn provenance(req: &ScimRequest<'_>) -> Provenance {
        Provenance {
            via: "scim",
            request_id: req.request_id.clone(),
            idempotency_key: None,
            if_match: None,
        }
    }

    /// Commits the change `plan` makes of the head (under the writer's
    /// lock), then answers the resource `show` reads from the new head.
    fn change(
        &self,
        c: &Writer<'_>,
        req: &ScimRequest<'_>,
        status: u16,
        mut plan: impl FnMut(&Head) -> Result<Vec<Operation>, ScimError>,
        show: impl FnOnce(&Caller<'_>) -> Option<Value>,
    ) -> Result<ScimAnswer, ScimError> {
        let committed: Committed =
            self.service
                .write_planned(&c.principal, &Self::provenance(req), |head| {
                    Ok::<_, ScimError>(Change {
                        operations: plan(head)?,
                        bulk: false,
                    })
                })?;
        if let Some(pending) = committed
            .operations
            .iter()
            .find(|o| o.outcome == "pending_approval")
        {
            tracing::info!(
                operation = pending.operation,
                "scim: an address change waits for its holder"
            );
        }
        let after = Caller {
            principal: c.principal.clone(),
            head: self
                .service
                .head()
                .ok_or_else(|| ScimError::unavailable("the directory is empty"))?,
            org: c.org,
            base: c.base,
        };
        let Some(v) = show(&after) else {
            return Ok(ScimAnswer {
                status: 204,
                body: None,
                etag: None,
                location: None,
                revision: Some(committed.revision),
                reason: None,
            });
        };
        Ok(ScimAnswer::resource(status, v, committed.revision))
    }

    fn create_user(&self, c: &Writer<'_>, req: &ScimRequest<'_>) -> Result<ScimAnswer, ScimError> {
        let body = body_json(req.body)?;
        let f = resource::user_fields(&body)?;
        let user = resource::new_user(&f, c.org)?;
        let username = user.username.clone();
        self.change(
            c,
            req,
            201,
            |head| {
                if head.engine.user_row(&username).is_some() {
                    return Err(ScimError::uniqueness(format!(
                        "userName {username:?} is taken"
                    )));
                }
                Ok(vec![Operation::InviteUser { user: user.clone() }])
            },
            |after| after.user(&username).map(|u| after.user_json(u)),
        )
    }

    fn replace_user(
        &self,
        c: &Writer<'_>,
        req: &ScimRequest<'_>,
        id: &str,
        edit: Edit,
    ) -> Result<ScimAnswer, ScimError> {
        let org = c.org;
        self.change(
            c,
            req,
            200,
            |head| {
                let user = in_org_user(head, org, id).ok_or_else(|| no_user(c.org, id))?;
                let current = resource::user_json(user, c.base);
                precondition(req.if_match, &current)?;
                let wanted = edit.of(current, resource::USER_SCHEMA)?;
                let f = resource::user_fields(&wanted)?;
                resource::user_changes(user, &f)
            },
            |after| after.user(id).map(|u| after.user_json(u)),
        )
    }

    fn delete_user(
        &self,
        c: &Writer<'_>,
        req: &ScimRequest<'_>,
        id: &str,
    ) -> Result<ScimAnswer, ScimError> {
        let org = c.org;
        self.change(
            c,
            req,
            204,
            |head| {
                let user = in_org_user(head, org, id).ok_or_else(|| no_user(c.org, id))?;
                precondition(req.if_match, &resource::user_json(user, c.base))?;
                // What names it goes with it (the directory refuses a
                // reference to a user that does not exist): its group and
                // team memberships and its grants and permissions. A team it
                // owns, or API keys it created, stay: the directory says
                // so, and an administrator transfers them first (seed 002).
                let member = format!("user/{id}");
                let dir = &head.directory;
                let mut ops: Vec<Operation> = dir
                    .groups
                    .iter()
                    .filter(|g| g.members.contains(&member))
                    .map(|g| Operation::RemoveGroupMember {
                        group: g.id.clone(),
                        member: member.clone(),
                    })
                    .collect();
                ops.extend(
                    dir.teams
                        .iter()
                        .filter(|t| t.members.iter().any(|m| m == id))
                        .map(|t| Operation::RemoveTeamMember {
                            team: t.id.clone(),
                            username: id.to_string(),
                        }),
                );
                ops.extend(unreferenced(head, &member));
                ops.push(Operation::DeleteUser {
                    username: id.to_string(),
                });
                Ok(ops)
            },
            |_| None,
        )
    }

    fn create_group(&self, c: &Writer<'_>, req: &ScimRequest<'_>) -> Result<ScimAnswer, ScimError> {
        let body = body_json(req.body)?;
        let f = resource::group_fields(&body)?;
        let id = new_group_id();
        if id.is_empty() {
            return Err(ScimError::internal(
                "the operating system gave no random bytes for the group's id",
            ));
        }
        let org = c.org;
        let gid = id.clone();
        self.change(
            c,
            req,
            201,
            |head| {
                for m in &f.members {
                    if in_org_user(head, org, m).is_none() {
                        return Err(no_member(org, m));
                    }
                }
                if head
                    .directory
                    .groups
                    .iter()
                    .any(|g| g.name.eq_ignore_ascii_case(&f.name))
                {
                    return Err(ScimError::uniqueness(format!(
                        "a group named {:?} exists: group names are unique (seed 004)",
                        f.name
                    )));
                }
                Ok(vec![Operation::CreateGroup {
                    group: Group {
                        id: gid.clone(),
                        name: f.name.clone(),
                        code: f.external_id.clone().unwrap_or_else(|| gid.clone()),
                        description: None,
                        members: f.members.iter().map(|u| format!("user/{u}")).collect(),
                        organization: Some(org.to_string()),
                        external_id: f.external_id.clone(),
                        created_at: None,
                        updated_at: None,
                    },
                }])
            },
            |after| after.group(&id).map(|g| after.group_json(g)),
        )
    }

    fn replace_group(
        &self,
        c: &Writer<'_>,
        req: &ScimRequest<'_>,
        id: &str,
        edit: Edit,
    ) -> Result<ScimAnswer, ScimError> {
        let org = c.org;
        self.change(
            c,
            req,
            200,
            |head| {
                let g = in_org_group(head, org, id).ok_or_else(|| no_group(c.org, id))?;
                let shown = |u: &str| in_org_user(head, org, u).is_some();
                let current = resource::group_json(g, c.base, &shown);
                precondition(req.if_match, &current)?;
                let wanted = edit.of(current, resource::GROUP_SCHEMA)?;
                let f = resource::group_fields(&wanted)?;
                for m in &f.members {
                    if !shown(m) {
                        return Err(no_member(org, m));
                    }
                }
                Ok(resource::group_changes(g, &f, &shown))
            },
            |after| after.group(id).map(|g| after.group_json(g)),
        )
    }

    fn delete_group(
        &self,
        c: &Writer<'_>,
        req: &ScimRequest<'_>,
        id: &str,
    ) -> Result<ScimAnswer, ScimError> {
        let org = c.org;
        self.change(
            c,
            req,
            204,
            |head| {
                let g = in_org_group(head, org, id).ok_or_else(|| no_group(c.org, id))?;
                let shown = |u: &str| in_org_user(head, org, u).is_some();
                precondition(req.if_match, &resource::group_json(g, c.base, &shown))?;
                // The access given to the group goes with it: its grants
                // and permissions (taking access away is the safe side).
                let mut ops = unreferenced(head, &format!("group/{id}"));
                ops.push(Operation::DeleteGroup { id: id.to_string() });
                Ok(ops)
            },
            |_| None,
        )
    }

    fn list_users(&self, c: &Caller<'_>, l: &Listing) -> Result<ScimAnswer, ScimError> {
        let index = self
            .index
            .read(&c.head.directory)
            .ok_or_else(|| ScimError::unavailable("the SCIM index failed; restart the service"))?;
        let candidates = user_candidates(c, &index, l)?;
        drop(index);
        let matching = |u: &User| -> Option<Value> {
            let v = c.user_json(u);
            l.filter.as_ref().is_none_or(|f| f.matches(&v)).then_some(v)
        };
        page(l, c.head.revision, candidates, |id| {
            c.user(id).and_then(matching)
        })
    }

    fn list_groups(&self, c: &Caller<'_>, l: &Listing) -> Result<ScimAnswer, ScimError> {
        let index = self
            .index
            .read(&c.head.directory)
            .ok_or_else(|| ScimError::unavailable("the SCIM index failed; restart the service"))?;
        let f = l.filter.as_ref();
        let named = |attr: &str| f.and_then(|f| f.equalities(attr, None));
        let candidates: Candidates = if let Some(ids) = named("id") {
            Candidates::Examine(ids)
        } else if let Some(names) = named("displayName") {
            Candidates::Examine(
                names
                    .iter()
                    .filter_map(|n| index.group_by_name(n).cloned())
                    .collect(),
            )
        } else if let Some(xs) = named("externalId") {
            Candidates::Examine(
                xs.iter()
                    .filter_map(|x| index.group_by_external(c.org, x).cloned())
                    .collect(),
            )
        } else {
            let n = index.group_count(c.org);
            if f.is_some() && n > discovery::MAX_SCAN {
                return Err(too_many(n, "id, displayName or externalId"));
            }
            if f.is_none() {
                let ids = index
                    .groups_of(c.org)
                    .skip(l.start - 1)
                    .take(l.count)
                    .cloned()
                    .collect();
                Candidates::Page(ids, n)
            } else {
                Candidates::Examine(index.groups_of(c.org).cloned().collect())
            }
        };
        drop(index);
        let matching = |g: &Group| -> Option<Value> {
            let v = c.group_json(g);
            f.is_none_or(|f| f.matches(&v)).then_some(v)
        };
        page(l, c.head.revision, candidates, |id| {
            c.group(id).and_then(matching)
        })
    }
}

/// What a PUT or PATCH asks of a resource.
enum Edit {
    /// The whole new representation.
    Put(Value),
    /// A PATCH body.
    Patch(Value),
}

impl Edit {
    /// The representation asked for, given the current one.
    fn of(&self, current: Value, schema: &str) -> Result<Value, ScimError> {
        match self {
            Edit::Put(v) => Ok(v.clone()),
            Edit::Patch(p) => {
                let mut v = current;
                patch::apply(&mut v, p, schema)?;
                Ok(v)
            }
        }
    }
}

/// Which resources a listing examines.
enum Candidates {
    /// Named by an index, or all of the organization's: each is checked
    /// against the filter, and the page cut from those that match.
    Examine(Vec<String>),
    /// No filter: the page itself, and how many there are in all.
    Page(Vec<String>, usize),
}

fn too_many(n: usize, indexed: &str) -> ScimError {
    ScimError::too_many(format!(
        "this organization has {n} resources and the filter names none by an indexed attribute ({indexed} eq …): add one, or list without a filter page by page"
    ))
}

fn user_candidates(c: &Caller<'_>, index: &Index, l: &Listing) -> Result<Candidates, ScimError> {
    let f = l.filter.as_ref();
    let named = |attr: &str, sub: Option<&str>| f.and_then(|f| f.equalities(attr, sub));
    if let Some(ids) = named("id", None) {
        return Ok(Candidates::Examine(ids));
    }
    if let Some(names) = named("userName", None) {
        return Ok(Candidates::Examine(
            names
                .iter()
                .flat_map(|n| index.users_by_name(n).cloned().collect::<Vec<_>>())
                .collect(),
        ));
    }
    if let Some(xs) = named("externalId", None) {
        return Ok(Candidates::Examine(
            xs.iter()
                .filter_map(|x| index.user_by_external(c.org, x).cloned())
                .collect(),
        ));
    }
    if let Some(es) = named("emails", Some("value")) {
        return Ok(Candidates::Examine(
            es.iter()
                .flat_map(|e| index.users_by_email(e).cloned().collect::<Vec<_>>())
                .collect(),
        ));
    }
    let n = index.user_count(c.org);
    if f.is_some() && n > discovery::MAX_SCAN {
        return Err(too_many(n, "userName, id, externalId or emails"));
    }
    if f.is_none() {
        // Only the page is read: the set is in order already.
        let ids = index
            .users_of(c.org)
            .skip(l.start - 1)
            .take(l.count)
            .cloned()
            .collect();
        return Ok(Candidates::Page(ids, n));
    }
    Ok(Candidates::Examine(
        index.users_of(c.org).cloned().collect(),
    ))
}

/// A page of a listing: `read` gives the resource of an id when it
/// matches (and exists, in the organization, at the head).
fn page(
    l: &Listing,
    revision: u64,
    candidates: Candidates,
    read: impl Fn(&str) -> Option<Value>,
) -> Result<ScimAnswer, ScimError> {
    let skip = l.start - 1;
    let (total, resources): (usize, Vec<Value>) = match candidates {
        Candidates::Examine(mut ids) => {
            ids.sort();
            ids.dedup();
            let all: Vec<Value> = ids.iter().filter_map(|id| read(id)).collect();
            let total = all.len();
            (total, all.into_iter().skip(skip).take(l.count).collect())
        }
        Candidates::Page(ids, total) => (total, ids.iter().filter_map(|id| read(id)).collect()),
    };
    let resources: Vec<Value> = resources
        .into_iter()
        .map(|mut v| {
            resource::project(&mut v, &l.attributes, &l.excluded);
            v
        })
        .collect();
    let mut a = ScimAnswer::ok(
        200,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": l.start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    );
    a.revision = Some(revision);
    Ok(a)
}

fn list_response(items: Vec<Value>) -> ScimAnswer {
    ScimAnswer::ok(
        200,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": items.len(),
            "startIndex": 1,
            "itemsPerPage": items.len(),
            "Resources": items,
        }),
    )
}

fn found(items: Vec<Value>, id: &str) -> Result<ScimAnswer, ScimError> {
    items
        .into_iter()
        .find(|i| i.get("id").and_then(Value::as_str) == Some(id))
        .map(|i| ScimAnswer::ok(200, i))
        .ok_or_else(|| ScimError::not_found(format!("no {id:?} here")))
}

fn in_org_user<'h>(head: &'h Head, org: &str, id: &str) -> Option<&'h User> {
    let row = head.engine.user_row(id)?;
    head.directory
        .users
        .get(row as usize)
        .filter(|u| u.username == id && u.organization == org)
}

fn in_org_group<'h>(head: &'h Head, org: &str, id: &str) -> Option<&'h Group> {
    head.directory
        .groups
        .iter()
        .find(|g| g.id == id && g.organization.as_deref() == Some(org))
}

/// The operations that remove the grants and permissions of `principal`.
fn unreferenced(head: &Head, principal: &str) -> Vec<Operation> {
    let dir = &head.directory;
    let mut grants: Vec<_> = dir
        .grants
        .iter()
        .filter(|g| g.principal == principal)
        .cloned()
        .collect();
    grants.dedup();
    let mut permissions: Vec<_> = dir
        .permissions
        .iter()
        .filter(|p| p.principal == principal)
        .cloned()
        .collect();
    permissions.dedup();
    grants
        .into_iter()
        .map(|grant| Operation::RemoveGrant { grant })
        .chain(
            permissions
                .into_iter()
                .map(|permission| Operation::RemovePermission { permission }),
        )
        .collect()
}

fn no_user(org: &str, id: &str) -> ScimError {
    ScimError::not_found(format!("no user {id:?} in organization {org:?}"))
}

fn no_group(org: &str, id: &str) -> ScimError {
    ScimError::not_found(format!("no group {id:?} in organization {org:?}"))
}

fn no_member(org: &str, id: &str) -> ScimError {
    ScimError::invalid_value(format!(
        "members: no user {id:?} in organization {org:?} (a member's value is a user's id)"
    ))
}

fn new_group_id() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    format!("scim-{}", hex::encode(b))
}
