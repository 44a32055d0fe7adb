//! The one writer: each change is decided by the engine as the acting
//! principal against the revision it applies to, applied to a copy of the
//! directory, validated as a directory file is, committed with its log
//! entry in one transaction — and only then made the head and answered.
//!
//! Writes are serialized (one mutex): a change applies to exactly the
//! revision its decisions were made on, and revisions are contiguous.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwapOption;
use policy_wasm::{Context, Engine, Request};
use portcullis_snapshots::body::Body;
use portcullis_snapshots::encode;
use portcullis_snapshots::source::{self, Directory};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ServiceError;
use crate::operation::{EntityKey, Operation, apply, entities, entity_json};
use crate::requirement::{Requirement, requirements};
use crate::storage::{Commit, LogEntry, Row, Storage, StorageError};

/// A change: operations applied all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The operations, in order.
    pub operations: Vec<Operation>,
    /// A bulk operation: the engine refuses it on administrator accounts
    /// (seed 003), and those operations are skipped, not fatal.
    #[serde(default)]
    pub bulk: bool,
}

/// Where a change came from and how to treat a retry.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    /// `api`, `import`, `scim`.
    pub via: &'static str,
    /// The client's request id.
    pub request_id: Option<String>,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// `If-Match`: the revision the client read.
    pub if_match: Option<u64>,
}

/// One decision that allowed an operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Allowed {
    /// The action asked.
    pub action: String,
    /// On what.
    pub resource: String,
    /// The engine's reason code.
    pub reason: String,
    /// The engine's sentence (the grant that allowed it).
    pub message: String,
    /// What must still happen (`email_reverification`, `holder_approval`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obligations: Vec<String>,
}

/// What became of one operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpOutcome {
    /// Its place in the change (0-based).
    pub operation: usize,
    /// `applied`, or `skipped` (a bulk operation on an administrator).
    pub outcome: String,
    /// The decisions.
    pub decisions: Vec<Allowed>,
    /// The engine's reason, for a skipped one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    /// A created API key's secret: shown in this answer only, never stored
    /// (a replay of the same request answers `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The answer to a committed change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    /// The revision that holds the change: gateways at this revision or
    /// later enforce it.
    pub revision: u64,
    /// Whether anything changed (an import of the current directory, or
    /// a bulk change whose every operation was skipped, does not).
    pub changed: bool,
    /// Each operation's outcome.
    pub operations: Vec<OpOutcome>,
    /// Whether this answer is a replay for a retried idempotency key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// The directory at one revision, with the engine built for it.
pub struct Head {
    /// The revision.
    pub revision: u64,
    /// The directory.
    pub directory: Directory,
    /// The engine, loaded from `snapshot`.
    pub engine: Engine,
    /// The snapshot of this revision, unsigned.
    pub snapshot: Arc<Vec<u8>>,
    /// Its body, decoded: the publisher computes the delta from the
    /// revision before without decoding either snapshot again.
    pub body: Arc<portcullis_snapshots::body::Body>,
    /// Whether the last change was urgent (takes access away).
    pub urgent: bool,
    /// The administrators' settings (SSO, SCIM) at this revision.
    pub settings: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Told of every new head: the publisher listens.
pub trait Listener: Send + Sync {
    /// A revision was committed.
    fn committed(&self, head: &Arc<Head>);
}

/// The service: storage, the head, and the listeners.
pub struct Service {
    storage: Mutex<Box<dyn Storage>>,
    head: ArcSwapOption<Head>,
    listeners: Mutex<Vec<Arc<dyn Listener>>>,
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// Builds the engine and snapshot for `directory` at `revision` — from
/// `body` when it is already known to be what compiling `directory` gives,
/// else compiled, saying every problem of the directory with its place.
fn build(
    mut directory: Directory,
    body: Option<Body>,
    settings: std::collections::BTreeMap<String, serde_json::Value>,
    revision: u64,
    now: i64,
    urgent: bool,
) -> Result<Head, ServiceError> {
    let body = match body {
        Some(b) => b,
        None => source::compile(&directory).map_err(ServiceError::Invalid422)?,
    };
    let bytes = encode(&body, revision, now).map_err(|e| ServiceError::Build(e.to_string()))?;
    let engine = Engine::load(&bytes).map_err(|e| ServiceError::Build(e.to_string()))?;
    directory.revision = Some(revision);
    Ok(Head {
        revision,
        directory,
        engine,
        snapshot: Arc::new(bytes),
        body: Arc::new(body),
        urgent,
        settings,
    })
}

/// What compiling `next` gives, made from `base` (the compiled body of the
/// directory before) by editing rows in place — when every operation
/// applied only changes a field that nothing refers to and no validation
/// reads: a user's status or expiry, an API key's revocation. Compiling
/// is most of a write's cost on a large directory; these are the
/// administrators' everyday changes (and the urgent ones). `None` for any
/// other operation: the caller compiles.
fn edited_in_place(base: &Body, next: &Directory, ops: &[&Operation]) -> Option<Body> {
    use Operation as O;
    if base.users.len() != next.users.len() || base.api_keys.len() != next.api_keys.len() {
        return None;
    }
    let mut body = base.clone();
    // Rows by name: a scan for a few operations, an index for many.
    let indexed = ops.len() > 8;
    let users: HashMap<&str, usize> = if indexed {
        next.users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.username.as_str(), i))
            .collect()
    } else {
        HashMap::new()
    };
    let user_row = |name: &str| {
        if indexed {
            users.get(name).copied()
        } else {
            next.users.iter().position(|u| u.username == name)
        }
    };
    for op in ops {
        match op {
            O::DeactivateUser { username }
            | O::ReactivateUser { username }
            | O::SetUserExpiry { username, .. } => {
                // The body keeps the source's order: row i is user i.
                let i = user_row(username)?;
                let (user, row) = (next.users.get(i)?, body.users.get_mut(i)?);
                if base.str(row.username) != user.username {
                    return None;
                }
                row.status = user.status;
                row.expires_at = user.expires_at.map(|t| t.0).into();
            }
            O::RevokeApiKey { id } => {
                let i = next.api_keys.iter().position(|k| k.id == *id)?;
                let (key, row) = (next.api_keys.get(i)?, body.api_keys.get_mut(i)?);
                if base.str(row.id) != key.id {
                    return None;
                }
                row.revoked = key.revoked;
            }
            _ => return None,
        }
    }
    Some(body)
}

/// A 256-bit API key secret, `pk_` and 64 hex digits.
fn new_secret() -> String {
    let mut b = [0u8; 32];
    // The OS's generator failing is not something to carry on from with a
    // weaker secret: an empty one is refused below.
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    format!("pk_{}", hex::encode(b))
}

impl Service {
    /// Opens the service on `storage`, building the head from what it holds.
    pub fn open(mut storage: Box<dyn Storage>) -> Result<Service, ServiceError> {
        let stored = storage.load()?;
        let head = if stored.revision == 0 {
            None
        } else {
            Some(Arc::new(build(
                stored.directory,
                None,
                stored.settings,
                stored.revision,
                now_unix(),
                false,
            )?))
        };
        Ok(Service {
            storage: Mutex::new(storage),
            head: ArcSwapOption::new(head),
            listeners: Mutex::new(Vec::new()),
        })
    }

    /// The directory at its latest revision, if any.
    pub fn head(&self) -> Option<Arc<Head>> {
        self.head.load_full()
    }

    /// Tells `listener` of every new head from now on (and of the current
    /// one).
    pub fn listen(&self, listener: Arc<dyn Listener>) {
        if let Some(h) = self.head() {
            listener.committed(&h);
        }
        if let Ok(mut l) = self.listeners.lock() {
            l.push(listener);
        }
    }

    fn storage(&self) -> Result<MutexGuard<'_, Box<dyn Storage>>, ServiceError> {
        self.storage.lock().map_err(|_| {
            ServiceError::Storage(StorageError::Database(
                "a writer failed mid-way; restart the service".into(),
            ))
        })
    }

    /// Makes `head` the head and tells the listeners. Called with the
    /// storage lock still held (`_writing`): the next writer reads this
    /// head, never the one before it.
    fn publish(&self, head: Arc<Head>, _writing: MutexGuard<'_, Box<dyn Storage>>) {
        self.head.store(Some(head.clone()));
        drop(_writing);
        if let Ok(l) = self.listeners.lock() {
            for x in l.iter() {
                x.committed(&head);
            }
        }
    }

    /// The change log after `after`.
    pub fn changes(&self, after: u64, limit: usize) -> Result<Vec<LogEntry>, ServiceError> {
        Ok(self.storage()?.changes(after, limit)?)
    }

    /// Decides, applies, validates and commits `change` as `actor`.
    pub fn write(
        &self,
        actor: &str,
        change: &Change,
        provenance: &Provenance,
    ) -> Result<Committed, ServiceError> {
        let request_hash = hex::encode(Sha256::digest(
            serde_json::to_vec(&(actor, change)).unwrap_or_default(),
        ));
        let mut storage = self.storage()?;
        if let Some(key) = &provenance.idempotency_key
            && let Some(r) = storage.remembered(key)?
        {
            if r.request_hash.as_deref() != Some(request_hash.as_str()) {
                return Err(ServiceError::KeyReused(r.revision));
            }
            let mut answer: Committed = serde_json::from_str(&r.response)
                .map_err(|e| ServiceError::Storage(StorageError::Damaged(e.to_string())))?;
            answer.replayed = true;
            return Ok(answer);
        }
        let head = self.head().ok_or(ServiceError::Empty)?;
        if let Some(expected) = provenance.if_match
            && expected != head.revision
        {
            return Err(ServiceError::Stale {
                expected,
                current: head.revision,
            });
        }
        let now = now_unix();
        let context = Context {
            now,
            bulk: change.bulk,
        };
        // Decide every operation against the head before changing anything.
        let mut outcomes = Vec::with_capacity(change.operations.len());
        let mut acting_user: Option<String> =
            actor.strip_prefix("user/").map(|_| actor.to_string());
        for (i, op) in change.operations.iter().enumerate() {
            let mut allowed = Vec::new();
            let mut skipped = None;
            for Requirement { action, resource } in requirements(&head.directory, op) {
                let req = Request {
                    principal: actor,
                    action,
                    resource: &resource,
                    context,
                };
                let d = head.engine.check(&req);
                let e = head.engine.explain_decision(&req, &d);
                if let Some(u) = &e.acting_as {
                    acting_user = Some(u.clone());
                }
                if !d.allowed {
                    if change.bulk && e.reason == "bulk_administrator_account" {
                        skipped = Some(e.message);
                        break;
                    }
                    return Err(ServiceError::Denied {
                        reason: e.reason,
                        message: format!("operation {i} ({action} on {resource}): {}", e.message),
                        revision: head.revision,
                        operation: i,
                    });
                }
                allowed.push(Allowed {
                    action: action.to_string(),
                    resource,
                    reason: e.reason,
                    message: e.message,
                    obligations: e.obligations,
                });
            }
            outcomes.push(OpOutcome {
                operation: i,
                outcome: if skipped.is_some() {
                    "skipped"
                } else {
                    "applied"
                }
                .into(),
                decisions: allowed,
                skipped_because: skipped,
                secret: None,
            });
        }
        // Apply to a copy: a failure anywhere leaves the head as it was.
        let mut next = head.directory.clone();
        let mut settings = head.settings.clone();
        let mut setting_rows = Vec::new();
        let mut touched: Vec<EntityKey> = Vec::new();
        let mut urgent = false;
        for (i, op) in change.operations.iter().enumerate() {
            let Some(outcome) = outcomes.get_mut(i) else {
                continue;
            };
            if outcome.skipped_because.is_some() {
                continue;
            }
            let mut secret = new_secret;
            let applied = apply(&mut next, op, acting_user.as_deref(), &mut secret)
                .map_err(|e| ServiceError::from_op(i, e))?;
            if applied.secret.as_deref() == Some("") {
                return Err(ServiceError::Build(
                    "the operating system gave no random bytes for the API key's secret".into(),
                ));
            }
            outcome.secret = applied.secret;
            touched.extend(applied.touched);
            urgent |= op.is_urgent();
            if let Operation::SetSetting { name, value } = op {
                let value = serde_json::Value::Object(value.clone());
                if settings.get(name.name()) != Some(&value) {
                    settings.insert(name.name().to_string(), value.clone());
                    setting_rows.push((name.name().to_string(), Some(value)));
                }
            }
        }
        touched.sort();
        touched.dedup();
        let changed = !touched.is_empty() || !setting_rows.is_empty();
        if !changed {
            return Ok(Committed {
                revision: head.revision,
                changed: false,
                operations: outcomes,
                replayed: false,
            });
        }
        let revision = head.revision + 1;
        let rows = touched
            .into_iter()
            .map(|key| Row {
                json: entity_json(&next, &key),
                key,
                position: None,
            })
            .collect();
        let applied: Vec<&Operation> = change
            .operations
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.skipped_because.is_none())
            .map(|(op, _)| op)
            .collect();
        let in_place = edited_in_place(&head.body, &next, &applied);
        let built = build(next, in_place, settings, revision, now, urgent)?;
        let answer = Committed {
            revision,
            changed: true,
            operations: outcomes,
            replayed: false,
        };
        let mut kept = answer.clone();
        for o in &mut kept.operations {
            o.secret = None;
        }
        let commit = Commit {
            rows,
            settings: setting_rows,
            entry: LogEntry {
                revision,
                time: rfc3339(now),
                actor: actor.to_string(),
                via: provenance.via.to_string(),
                operations: serde_json::to_value(&change.operations).unwrap_or_default(),
                decisions: serde_json::to_value(&kept.operations).unwrap_or_default(),
                request_id: provenance.request_id.clone(),
                idempotency_key: provenance.idempotency_key.clone(),
            },
            request_hash: Some(request_hash),
            response: serde_json::to_string(&kept).unwrap_or_default(),
        };
        storage.commit(&commit)?;
        self.publish(Arc::new(built), storage);
        Ok(answer)
    }

    /// Makes the directory `desired`, as one change: the difference from
    /// the current one is committed (nothing when there is none). `actor`
    /// is decided `admin:domain_settings` on the domain organization when
    /// `decide` (an import through the API); an operator importing into
    /// the database directly is not asked.
    pub fn import(
        &self,
        desired: &Directory,
        actor: &str,
        decide: bool,
        provenance: &Provenance,
    ) -> Result<Committed, ServiceError> {
        let mut storage = self.storage()?;
        let head = self.head();
        let current = head.as_ref().map(|h| h.revision).unwrap_or(0);
        if let Some(expected) = provenance.if_match
            && expected != current
        {
            return Err(ServiceError::Stale { expected, current });
        }
        let now = now_unix();
        let mut decisions = Vec::new();
        if decide {
            let Some(h) = &head else {
                return Err(ServiceError::Empty);
            };
            let domain = h
                .directory
                .organizations
                .iter()
                .find(|o| o.parent.is_none())
                .map(|o| format!("org/{}", o.id))
                .unwrap_or_default();
            let req = Request {
                principal: actor,
                action: "admin:domain_settings",
                resource: &domain,
                context: Context { now, bulk: false },
            };
            let d = h.engine.check(&req);
            let e = h.engine.explain_decision(&req, &d);
            if !d.allowed {
                return Err(ServiceError::Denied {
                    reason: e.reason,
                    message: format!("import (admin:domain_settings on {domain}): {}", e.message),
                    revision: h.revision,
                    operation: 0,
                });
            }
            decisions.push(Allowed {
                action: "admin:domain_settings".into(),
                resource: domain,
                reason: e.reason,
                message: e.message,
                obligations: e.obligations,
            });
        }
        let mut desired = desired.clone();
        desired.revision = None;
        let wanted = entities(&desired);
        let mut seen: HashMap<&EntityKey, usize> = HashMap::with_capacity(wanted.len());
        let mut problems = Vec::new();
        for (i, (k, _)) in wanted.iter().enumerate() {
            if let Some(first) = seen.insert(k, i) {
                problems.push(source::Problem {
                    pointer: String::new(),
                    line: 0,
                    column: 0,
                    message: format!(
                        "{} {:?} is listed twice (entities {first} and {i} in source order)",
                        k.kind.name(),
                        k.key
                    ),
                    hint: Some("list each entity once".into()),
                });
            }
        }
        if !problems.is_empty() {
            return Err(ServiceError::Invalid422(problems));
        }
        let have: HashMap<EntityKey, (usize, String)> = head
            .as_ref()
            .map(|h| {
                entities(&h.directory)
                    .into_iter()
                    .enumerate()
                    .map(|(i, (k, j))| (k, (i, j)))
                    .collect()
            })
            .unwrap_or_default();
        let mut rows = Vec::new();
        let (mut put, mut moved) = (0usize, 0usize);
        for (i, (k, json)) in wanted.iter().enumerate() {
            match have.get(k) {
                Some((at, j)) if j == json && *at == i => {}
                Some((_, j)) if j == json => moved += 1,
                _ => put += 1,
            }
            if have.get(k).is_none_or(|(at, j)| j != json || *at != i) {
                rows.push(Row {
                    key: k.clone(),
                    json: Some(json.clone()),
                    position: Some(i as u64),
                });
            }
        }
        let wanted_keys: std::collections::HashSet<&EntityKey> =
            wanted.iter().map(|(k, _)| k).collect();
        let mut removed = 0usize;
        for k in have.keys() {
            if !wanted_keys.contains(k) {
                removed += 1;
                rows.push(Row {
                    key: k.clone(),
                    json: None,
                    position: None,
                });
            }
        }
        if rows.is_empty() {
            return Ok(Committed {
                revision: current,
                changed: false,
                operations: Vec::new(),
                replayed: false,
            });
        }
        let revision = current + 1;
        let settings = head
            .as_ref()
            .map(|h| h.settings.clone())
            .unwrap_or_default();
        let built = build(desired, None, settings, revision, now, removed > 0)?;
        let summary = serde_json::json!({
            "import": {"entities": wanted.len(), "written": put, "moved": moved, "removed": removed}
        });
        let answer = Committed {
            revision,
            changed: true,
            operations: vec![OpOutcome {
                operation: 0,
                outcome: "applied".into(),
                decisions: decisions.clone(),
                skipped_because: None,
                secret: None,
            }],
            replayed: false,
        };
        storage.commit(&Commit {
            rows,
            settings: Vec::new(),
            entry: LogEntry {
                revision,
                time: rfc3339(now),
                actor: actor.to_string(),
                via: provenance.via.to_string(),
                operations: summary,
                decisions: serde_json::to_value(&decisions).unwrap_or_default(),
                request_id: provenance.request_id.clone(),
                idempotency_key: provenance.idempotency_key.clone(),
            },
            request_hash: None,
            response: serde_json::to_string(&answer).unwrap_or_default(),
        })?;
        self.publish(Arc::new(built), storage);
        Ok(answer)
    }
}
