//! The one writer: each change is decided by the engine as the acting
//! principal against the revision it applies to, applied to a copy of the
//! directory, validated as a directory file is, committed with its log
//! entry in one transaction — and only then made the head and answered.
//!
//! Writes are serialized (one mutex): a change applies to exactly the
//! revision its decisions were made on, and revisions are contiguous.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use policy_wasm::{Context, Engine, Request};
use portcullis_snapshots::body::{Body, GrantRec};
use portcullis_snapshots::delta::DeltaBody;
use portcullis_snapshots::encode;
use portcullis_snapshots::source::{self, Directory};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ServiceError;
use crate::incremental::Planner;
use crate::operation::{
    EntityKey, Known, Operation, apply_known, entities, entity_json, entity_json_known,
};
use crate::requirement::{Requirement, requirements};
use crate::storage::{Commit, LogEntry, Row, Storage, StorageError, Stored};

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
    /// The approval filed for an email change its holder must approve
    /// (`outcome` is then `pending_approval`, or `applied` for the rest of
    /// the operation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// A change of an administrator account's email address, waiting for the
/// account's holder to approve it (seed 003: "a change to the email
/// address needs to be approved by the account holder"). Until then the
/// account keeps its address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Its id (128 random bits, hex).
    pub id: String,
    /// The account whose address changes: its holder approves.
    pub username: String,
    /// The new address.
    pub email: String,
    /// Who asked for the change; still asked, as then, when it is approved.
    pub requested_by: String,
    /// When (RFC 3339).
    pub requested_at: String,
    /// The revision that filed it.
    pub revision: u64,
    /// When it lapses unapproved (Unix seconds).
    pub expires_at: i64,
}

/// How long an approval waits for its holder.
pub const APPROVAL_TTL_SECS: i64 = 7 * 24 * 3600;

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

/// How a revision follows from the one before: what the publisher needs
/// to make its snapshot without the directory.
#[derive(Clone, Debug)]
pub enum Step {
    /// Compiled whole: the body of the revision.
    Full(Arc<Body>),
    /// Edited in place: the delta from the revision before (one that
    /// `portcullis_snapshots::delta::patch` applies).
    Delta(Arc<DeltaBody>),
}

/// The directory at one revision, with the engine built for it.
pub struct Head {
    /// The revision.
    pub revision: u64,
    /// When its snapshot is made (Unix seconds): the engine's, and the
    /// published snapshot's.
    pub created_at: i64,
    /// The directory.
    pub directory: Directory,
    /// The engine: what compiling and loading `directory` gives.
    pub engine: Engine,
    /// How this revision follows from the one before.
    pub step: Step,
    /// Whether the last change was urgent (takes access away).
    pub urgent: bool,
    /// The administrators' settings (SSO, SCIM) at this revision.
    pub settings: std::collections::BTreeMap<String, serde_json::Value>,
    /// Email changes waiting for their holders, by id.
    pub approvals: BTreeMap<String, Approval>,
    /// The entity rows this revision's change wrote; `None` when it
    /// replaced the directory whole (the first revision, an import).
    pub changed: Option<Arc<[Row]>>,
}

/// A committed revision, as listeners are told of it.
#[derive(Clone, Debug)]
pub struct Revision {
    /// The revision.
    pub revision: u64,
    /// When its snapshot is made (Unix seconds).
    pub created_at: i64,
    /// Whether its change takes access away (published at once).
    pub urgent: bool,
    /// How it follows from the revision before (the first a listener is
    /// told of is always [`Step::Full`]).
    pub step: Step,
    /// The entity rows its change wrote (key, JSON after); `None`: the
    /// directory may have changed anywhere (read it whole).
    pub changed: Option<Arc<[Row]>>,
}

/// Told of every committed revision, in order, with the writer's lock
/// held (so: quickly): the publisher listens. Listeners are not given the
/// head — the writer edits the revision before in place once nobody
/// reads it.
pub trait Listener: Send + Sync {
    /// A revision was committed.
    fn committed(&self, revision: &Revision);
}

/// The writer's own copy of the directory and engine, at the head's
/// revision or one behind it: a write edits it in place and makes it the
/// next head, rather than copying the head (two copies, in turn).
struct Twin {
    revision: u64,
    directory: Directory,
    engine: Engine,
}

/// What brings a twin one revision behind up to the head.
struct Redo {
    revision: u64,
    created_at: i64,
    /// The operations applied, each with where its rows were.
    operations: Vec<(Operation, Known)>,
    delta: Arc<DeltaBody>,
    removed_grants: Vec<GrantRec>,
}

/// The writer's twin, as it stands between writes.
enum Spare {
    /// None: the next write copies the head.
    None,
    /// At the head's revision.
    Ready(Box<Twin>),
    /// Being copied from the head by a thread (after a compiled write).
    Making(std::thread::JoinHandle<Twin>),
    /// The head before this one, and the change that follows it: the
    /// next write takes it once no reader holds it and replays the change.
    Behind(Arc<Head>, Redo),
}

/// How long a write waits for readers to let go of the revision before
/// the head before copying the head instead.
const READERS_WAIT: Duration = Duration::from_millis(20);

impl Twin {
    fn copy_of(head: &Head) -> Twin {
        Twin {
            revision: head.revision,
            directory: head.directory.clone(),
            engine: head.engine.clone(),
        }
    }

    /// The head before, caught up by `redo`: `None` if it does not apply
    /// (it always should — the same change on the same revision).
    fn caught_up(head: Head, redo: &Redo) -> Option<Twin> {
        let mut t = Twin {
            revision: head.revision,
            directory: head.directory,
            engine: head.engine,
        };
        if t.revision + 1 != redo.revision {
            return None;
        }
        for (op, known) in &redo.operations {
            apply_known(
                &mut t.directory,
                op,
                None,
                &mut String::new,
                known,
                redo.created_at,
            )
            .ok()?;
        }
        t.engine
            .apply_delta(
                &redo.delta,
                &redo.removed_grants,
                redo.revision,
                redo.created_at,
            )
            .ok()?;
        t.directory.revision = Some(redo.revision);
        t.revision = redo.revision;
        Some(t)
    }
}

/// The service: storage, the head, and the listeners.
pub struct Service {
    storage: Mutex<Box<dyn Storage>>,
    /// Whether other processes commit to the store too (replicas on one
    /// PostgreSQL): the head is then checked against the store's log
    /// before each write, and followed between writes.
    shared: bool,
    head: ArcSwapOption<Head>,
    listeners: Mutex<Vec<Arc<dyn Listener>>>,
    /// Taken only with `storage` held: the writer's.
    spare: Mutex<Spare>,
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The writer's hold on the store: the service's one-writer lock and, on
/// a store other processes write too, the store's own writer lock — from
/// before the writer reads the store's revision until after it commits,
/// so replicas take turns rather than race (and retry). Released when
/// this goes, whatever the write's outcome.
struct Writing<'a>(MutexGuard<'a, Box<dyn Storage>>);

impl std::ops::Deref for Writing<'_> {
    type Target = Box<dyn Storage>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.release_writer();
    }
}

/// Why a planned write failed: its plan, or the service.
enum Planned<E> {
    Plan(E),
    Service(ServiceError),
}

/// Whether another replica committed first (the write may be decided
/// again).
fn moved(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Storage(StorageError::Moved(_)))
}

/// `once`, decided again (a few times) while another replica commits
/// first — `moved` says when that is what failed.
fn retried<E>(
    mut once: impl FnMut() -> Result<Committed, E>,
    moved: impl Fn(&E) -> bool,
) -> Result<Committed, E> {
    let mut attempt = 0;
    loop {
        match once() {
            Err(e) if moved(&e) && attempt < MOVED_RETRIES => attempt += 1,
            other => return other,
        }
    }
}

fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// Compiles `directory` and loads its engine: the head at `revision`, or
/// every problem of the directory with its place.
fn build(
    mut directory: Directory,
    settings: std::collections::BTreeMap<String, serde_json::Value>,
    approvals: BTreeMap<String, Approval>,
    revision: u64,
    now: i64,
    urgent: bool,
) -> Result<Head, ServiceError> {
    let body = source::compile(&directory).map_err(ServiceError::Invalid422)?;
    let bytes = encode(&body, revision, now).map_err(|e| ServiceError::Build(e.to_string()))?;
    let engine = Engine::load(&bytes).map_err(|e| ServiceError::Build(e.to_string()))?;
    directory.revision = Some(revision);
    Ok(Head {
        revision,
        created_at: now,
        directory,
        engine,
        step: Step::Full(Arc::new(body)),
        urgent,
        settings,
        approvals,
        changed: None,
    })
}

/// The head a store's contents make (compiled whole), if it holds any.
fn head_of(stored: Stored) -> Result<Option<Head>, ServiceError> {
    if stored.revision == 0 {
        return Ok(None);
    }
    let mut approvals = BTreeMap::new();
    for (id, v) in stored.approvals {
        let a: Approval = serde_json::from_value(v).map_err(|e| {
            ServiceError::Storage(StorageError::Damaged(format!("approval {id:?}: {e}")))
        })?;
        approvals.insert(id, a);
    }
    Ok(Some(build(
        stored.directory,
        stored.settings,
        approvals,
        stored.revision,
        now_unix(),
        false,
    )?))
}

/// The most of the other replicas' changes a replica replays in place
/// when it catches up; further behind, it reads the directory whole.
const REPLAY_AT_MOST: u64 = 256;

/// How many times a write is decided again when another replica
/// committed first.
const MOVED_RETRIES: usize = 5;

/// `N` random bytes in hex, or empty when the operating system gives
/// none: failing to get them is not something to carry on from with a
/// weaker secret or id — an empty one is refused where it is used.
fn random_hex<const N: usize>() -> String {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    hex::encode(b)
}

/// A 256-bit API key secret, `pk_` and 64 hex digits (empty: see
/// [`random_hex`]).
fn new_secret() -> String {
    let hex = random_hex::<32>();
    if hex.is_empty() {
        return hex;
    }
    format!("pk_{hex}")
}

/// Asks the engine at `head` whether `principal` may do `action` on
/// `resource`: the decision that allowed it, or the engine's explanation
/// of the refusal.
fn ask(
    head: &Head,
    principal: &str,
    action: &str,
    resource: String,
    context: Context,
) -> Result<(Allowed, Option<String>), Box<policy_wasm::Explanation>> {
    let req = Request {
        principal,
        action,
        resource: &resource,
        context,
    };
    let d = head.engine.check(&req);
    let e = head.engine.explain_decision(&req, &d);
    if !d.allowed {
        return Err(Box::new(e));
    }
    let allowed = Allowed {
        action: action.to_string(),
        resource,
        reason: e.reason,
        message: e.message,
        obligations: e.obligations,
    };
    Ok((allowed, e.acting_as))
}

/// A change decided and ready to apply: what `write` and the approvals
/// hand to the one path that applies, commits and publishes.
struct Proposal<'a> {
    /// The operations to apply (an email held for approval taken out).
    operations: Vec<Operation>,
    /// The operations as requested, for the change log.
    logged: std::borrow::Cow<'a, [Operation]>,
    /// Each operation's decisions and outcome (`applied` ones apply).
    outcomes: Vec<OpOutcome>,
    /// The user the caller acts as (an API key's creator).
    acting_user: Option<String>,
    /// The request's fingerprint, kept with its idempotency key.
    request_hash: Option<String>,
    /// The approvals after the change.
    approvals: BTreeMap<String, Approval>,
    /// The approval rows it files or settles.
    approval_rows: Vec<(String, Option<serde_json::Value>)>,
    /// Replaying another replica's change: the API keys it created, as
    /// it stored them (their secrets are not known here).
    keys: Option<Vec<portcullis_snapshots::source::ApiKey>>,
}

/// What another replica needs to make a change in place: the operations
/// applied (an email held for approval taken out, skipped ones left out),
/// when (users' times and the revision's), the API keys made, and the
/// approval rows. Kept in the change log of a shared store.
#[derive(Serialize, Deserialize)]
struct Replay {
    created_at: i64,
    operations: Vec<Operation>,
    #[serde(default)]
    keys: Vec<portcullis_snapshots::source::ApiKey>,
    #[serde(default)]
    approvals: Vec<(String, Option<serde_json::Value>)>,
}

/// What applying a change made.
#[allow(
    clippy::large_enum_variant,
    reason = "one per write, returned once: boxing would only add an allocation"
)]
enum Written {
    /// Nothing changed: the answer, and the twin, still at the head.
    Unchanged(Committed, Box<Twin>),
    /// The next head, to commit and publish.
    Made {
        answer: Committed,
        next: Arc<Head>,
        /// How the head before it catches up, when it was edited in place.
        redo: Option<Redo>,
        commit: Commit,
    },
}

/// A twin copied from `head` by a thread: a compiled write answers
/// without waiting for the copy.
fn making(head: Arc<Head>) -> Spare {
    match std::thread::Builder::new()
        .name("directory-twin".into())
        .spawn(move || Twin::copy_of(&head))
    {
        Ok(t) => Spare::Making(t),
        Err(_) => Spare::None,
    }
}

impl Service {
    /// Opens the service on `storage`, building the head from what it holds.
    pub fn open(mut storage: Box<dyn Storage>) -> Result<Service, ServiceError> {
        let shared = storage.stored_revision()?.is_some();
        let head = head_of(storage.load()?)?.map(Arc::new);
        let spare = head.as_ref().map_or(Spare::None, |h| making(h.clone()));
        Ok(Service {
            shared,
            storage: Mutex::new(storage),
            head: ArcSwapOption::new(head),
            listeners: Mutex::new(Vec::new()),
            spare: Mutex::new(spare),
        })
    }

    /// Whether other processes commit to the store too.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Brings the head to the store's revision when another replica
    /// committed since (a shared store): each change replayed in place
    /// ([`Service::replay`]) when the log keeps them all, else the store
    /// read and compiled whole and listeners told of it as a whole
    /// revision. `true` when the head changed. Called with the writer's
    /// lock held.
    fn catch_up(&self, storage: &mut Box<dyn Storage>) -> Result<bool, ServiceError> {
        if !self.shared {
            return Ok(false);
        }
        let Some(at) = storage.stored_revision()? else {
            return Ok(false);
        };
        let current = self.head().map_or(0, |h| h.revision);
        if at == current {
            return Ok(false);
        }
        // The other replicas' changes made in place, as they made them,
        // when the log keeps them all; else the directory read whole.
        if at > current
            && current > 0
            && at - current <= REPLAY_AT_MOST
            && let Some(replays) = storage.replays(current, REPLAY_AT_MOST as usize)?
            && replays.len() as u64 == at - current
        {
            let mut replayed = true;
            for (revision, replay) in replays {
                let done = replay
                    .and_then(|r| serde_json::from_str::<Replay>(&r).ok())
                    .map(|r| self.replay(revision, r));
                if !matches!(done, Some(Ok(()))) {
                    if let Some(Err(e)) = done {
                        tracing::warn!(revision, error = %e, "cannot replay another replica's change; reading the directory whole");
                    }
                    replayed = false;
                    break;
                }
            }
            if replayed {
                return Ok(true);
            }
        }
        let Some(head) = head_of(storage.load()?)?.map(Arc::new) else {
            return Ok(false);
        };
        let revision = Revision {
            revision: head.revision,
            created_at: head.created_at,
            urgent: true,
            step: head.step.clone(),
            changed: None,
        };
        self.head.store(Some(head.clone()));
        self.keep(making(head));
        if let Ok(l) = self.listeners.lock() {
            for x in l.iter() {
                x.committed(&revision);
            }
        }
        Ok(true)
    }

    /// Makes another replica's change `revision` (one after the head) in
    /// place, as the writer makes its own — without deciding it again
    /// (that replica did, at this revision) and without committing it.
    /// Called with the writer's lock held.
    fn replay(&self, revision: u64, r: Replay) -> Result<(), ServiceError> {
        let head = self.head().ok_or(ServiceError::Empty)?;
        if head.revision + 1 != revision {
            return Err(ServiceError::Build(format!(
                "revision {revision} does not follow {}",
                head.revision
            )));
        }
        let mut approvals = head.approvals.clone();
        for (id, v) in &r.approvals {
            match v {
                Some(v) => {
                    let a: Approval = serde_json::from_value(v.clone())
                        .map_err(|e| ServiceError::Build(format!("approval {id}: {e}")))?;
                    approvals.insert(id.clone(), a);
                }
                None => {
                    approvals.remove(id);
                }
            }
        }
        let outcomes = (0..r.operations.len())
            .map(|i| OpOutcome {
                operation: i,
                outcome: "applied".into(),
                decisions: Vec::new(),
                skipped_because: None,
                secret: None,
                approval: None,
            })
            .collect();
        let proposal = Proposal {
            operations: r.operations.clone(),
            logged: std::borrow::Cow::Owned(r.operations),
            outcomes,
            acting_user: None,
            request_hash: None,
            approvals,
            approval_rows: r.approvals,
            keys: Some(r.keys),
        };
        let twin = self.twin(&head);
        match self.apply_change(
            &head,
            twin,
            "replica",
            &Provenance::default(),
            proposal,
            r.created_at,
        ) {
            Ok(Written::Made { next, redo, .. }) if next.revision == revision => {
                let spare = match redo {
                    Some(redo) => Spare::Behind(head, redo),
                    None => making(next.clone()),
                };
                self.make_head(next, spare);
                Ok(())
            }
            Ok(Written::Unchanged(_, twin)) => {
                self.keep(Spare::Ready(twin));
                Err(ServiceError::Build(format!(
                    "revision {revision} changed nothing here"
                )))
            }
            Ok(Written::Made { .. }) => {
                self.keep(making(head));
                Err(ServiceError::Build(format!(
                    "revision {revision} came out otherwise"
                )))
            }
            Err(e) => {
                self.keep(making(head));
                Err(e)
            }
        }
    }

    /// Follows the other replicas' commits (a shared store): the head is
    /// brought to the store's revision. `true` when it changed.
    pub fn follow(&self) -> Result<bool, ServiceError> {
        if !self.shared {
            return Ok(false);
        }
        let mut storage = self.storage()?;
        self.catch_up(&mut storage)
    }

    /// The directory at its latest revision, if any.
    pub fn head(&self) -> Option<Arc<Head>> {
        self.head.load_full()
    }

    /// Tells `listener` of the current revision (whole) and of every
    /// revision committed from now on.
    pub fn listen(&self, listener: Arc<dyn Listener>) -> Result<(), ServiceError> {
        // No write in between: the listener misses none.
        let _writing = self.storage()?;
        if let Some(h) = self.head() {
            // Not a compilation: the head's engine may hold strings in the
            // order its deltas appended them, and the deltas after this
            // one are made against that order.
            let body = match &h.step {
                Step::Full(b) => b.clone(),
                Step::Delta(_) => Arc::new(
                    crate::incremental::whole_body(&h.engine, &h.directory).ok_or_else(|| {
                        ServiceError::Build(
                            "the head's grants do not resolve against its engine".into(),
                        )
                    })?,
                ),
            };
            listener.committed(&Revision {
                revision: h.revision,
                created_at: h.created_at,
                urgent: h.urgent,
                step: Step::Full(body),
                changed: None,
            });
        }
        if let Ok(mut l) = self.listeners.lock() {
            l.push(listener);
        }
        Ok(())
    }

    fn storage(&self) -> Result<MutexGuard<'_, Box<dyn Storage>>, ServiceError> {
        self.storage.lock().map_err(|_| {
            ServiceError::Storage(StorageError::Database(
                "a writer failed mid-way; restart the service".into(),
            ))
        })
    }

    /// The writer's hold on the store (see [`Writing`]).
    fn writing(&self) -> Result<Writing<'_>, ServiceError> {
        let mut storage = self.storage()?;
        storage.acquire_writer()?;
        Ok(Writing(storage))
    }

    /// Makes `head` the head, tells the listeners, and keeps `spare` for
    /// the next write. Called with the storage lock held (`_writing`):
    /// the next writer reads this head, never the one before it, and
    /// listeners hear of revisions in order.
    fn publish(&self, head: Arc<Head>, spare: Spare, _writing: Writing<'_>) {
        self.make_head(head, spare);
    }

    /// [`Service::publish`]'s work; the caller holds the writer's lock.
    fn make_head(&self, head: Arc<Head>, spare: Spare) {
        let revision = Revision {
            revision: head.revision,
            created_at: head.created_at,
            urgent: head.urgent,
            step: head.step.clone(),
            changed: head.changed.clone(),
        };
        self.head.store(Some(head));
        self.keep(spare);
        if let Ok(l) = self.listeners.lock() {
            for x in l.iter() {
                x.committed(&revision);
            }
        }
    }

    fn keep(&self, spare: Spare) {
        if let Ok(mut s) = self.spare.lock() {
            *s = spare;
        }
    }

    /// The writer's twin at `head`'s revision: the one kept from the last
    /// write when there is one, else a copy of the head. Called with the
    /// storage lock held.
    fn twin(&self, head: &Arc<Head>) -> Twin {
        let spare = self
            .spare
            .lock()
            .map(|mut s| std::mem::replace(&mut *s, Spare::None))
            .unwrap_or(Spare::None);
        let found = match spare {
            Spare::None => None,
            Spare::Ready(t) => Some(*t),
            Spare::Making(thread) => thread.join().ok(),
            Spare::Behind(mut before, redo) => {
                // Readers hold a head for one request: wait them out
                // briefly rather than copy the directory.
                let deadline = Instant::now() + READERS_WAIT;
                loop {
                    match Arc::try_unwrap(before) {
                        Ok(h) => break Twin::caught_up(h, &redo),
                        Err(still) if Instant::now() < deadline => {
                            before = still;
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        Err(_) => {
                            tracing::debug!("the revision before is still read; copying the head");
                            break None;
                        }
                    }
                }
            }
        };
        match found {
            Some(t) if t.revision == head.revision => t,
            _ => Twin::copy_of(head),
        }
    }

    /// The head, if it is the revision the client read (`If-Match`).
    fn head_at(&self, provenance: &Provenance) -> Result<Arc<Head>, ServiceError> {
        let head = self.head().ok_or(ServiceError::Empty)?;
        match provenance.if_match {
            Some(expected) if expected != head.revision => Err(ServiceError::Stale {
                expected,
                current: head.revision,
            }),
            _ => Ok(head),
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
        retried(|| self.write_once(actor, change, provenance), moved)
    }

    fn write_once(
        &self,
        actor: &str,
        change: &Change,
        provenance: &Provenance,
    ) -> Result<Committed, ServiceError> {
        let request_hash = hex::encode(Sha256::digest(
            serde_json::to_vec(&(actor, change)).unwrap_or_default(),
        ));
        let mut storage = self.writing()?;
        self.catch_up(&mut storage)?;
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
        let head = self.head_at(provenance)?;
        self.write_at(storage, head, actor, change, provenance, request_hash)
    }

    /// Decides, applies, validates and commits the change `plan` makes of
    /// the head, as `actor`: `plan` runs with the writer's lock held, so
    /// no other write comes between what it read and what it changes (a
    /// read-modify-write, such as a SCIM replace or PATCH, never retries
    /// and never loses a concurrent change). An empty change commits
    /// nothing and answers the head's revision.
    pub fn write_planned<E: From<ServiceError>>(
        &self,
        actor: &str,
        provenance: &Provenance,
        mut plan: impl FnMut(&Head) -> Result<Change, E>,
    ) -> Result<Committed, E> {
        retried(
            || self.write_planned_once(actor, provenance, &mut plan),
            |e| matches!(e, Planned::Service(e) if moved(e)),
        )
        .map_err(|e| match e {
            Planned::Service(e) => e.into(),
            Planned::Plan(e) => e,
        })
    }

    fn write_planned_once<E>(
        &self,
        actor: &str,
        provenance: &Provenance,
        plan: &mut impl FnMut(&Head) -> Result<Change, E>,
    ) -> Result<Committed, Planned<E>> {
        let mut storage = self.writing().map_err(Planned::Service)?;
        self.catch_up(&mut storage).map_err(Planned::Service)?;
        let head = self.head_at(provenance).map_err(Planned::Service)?;
        let change = plan(&head).map_err(Planned::Plan)?;
        if change.operations.is_empty() {
            return Ok(Committed {
                revision: head.revision,
                changed: false,
                operations: Vec::new(),
                replayed: false,
            });
        }
        let request_hash = hex::encode(Sha256::digest(
            serde_json::to_vec(&(actor, &change)).unwrap_or_default(),
        ));
        self.write_at(storage, head, actor, &change, provenance, request_hash)
            .map_err(Planned::Service)
    }

    /// [`Service::write`] once the writer holds the store and the head.
    fn write_at(
        &self,
        storage: Writing<'_>,
        head: Arc<Head>,
        actor: &str,
        change: &Change,
        provenance: &Provenance,
        request_hash: String,
    ) -> Result<Committed, ServiceError> {
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
                match ask(&head, actor, action, resource.clone(), context) {
                    Ok((a, acting_as)) => {
                        if acting_as.is_some() {
                            acting_user = acting_as;
                        }
                        allowed.push(a);
                    }
                    Err(e) => {
                        if e.acting_as.is_some() {
                            acting_user = e.acting_as;
                        }
                        if change.bulk && e.reason == "bulk_administrator_account" {
                            skipped = Some(e.message);
                            break;
                        }
                        return Err(ServiceError::Denied {
                            reason: e.reason,
                            message: format!(
                                "operation {i} ({action} on {resource}): {}",
                                e.message
                            ),
                            revision: head.revision,
                            operation: i,
                        });
                    }
                }
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
                approval: None,
            });
        }
        // Seed 003: an administrator account's new address waits for its
        // holder; the rest of the operation applies.
        let mut operations = change.operations.clone();
        let mut approvals = head.approvals.clone();
        let mut approval_rows = Vec::new();
        for (op, outcome) in operations.iter_mut().zip(outcomes.iter_mut()) {
            let held = outcome.skipped_because.is_none()
                && outcome
                    .decisions
                    .iter()
                    .any(|d| d.obligations.iter().any(|o| o == "holder_approval"));
            let Operation::UpdateUser { username, set } = op else {
                continue;
            };
            let current = head
                .engine
                .user_row(username)
                .and_then(|r| head.directory.users.get(r as usize))
                .map(|u| u.email.as_str());
            let Some(email) = set
                .email
                .take_if(|e| held && current.is_some_and(|c| !e.eq_ignore_ascii_case(c)))
            else {
                continue;
            };
            let a = Approval {
                id: random_hex::<16>(),
                username: username.clone(),
                email,
                requested_by: actor.to_string(),
                requested_at: rfc3339(now),
                revision: head.revision + 1,
                expires_at: now + APPROVAL_TTL_SECS,
            };
            if a.id.is_empty() {
                return Err(ServiceError::Build(
                    "the operating system gave no random bytes for the approval's id".into(),
                ));
            }
            // A newer request for the same account replaces an older one;
            // lapsed ones go.
            let gone: Vec<String> = approvals
                .values()
                .filter(|x| x.username == a.username || x.expires_at <= now)
                .map(|x| x.id.clone())
                .collect();
            for id in gone {
                approvals.remove(&id);
                approval_rows.push((id, None));
            }
            approval_rows.push((a.id.clone(), serde_json::to_value(&a).ok()));
            approvals.insert(a.id.clone(), a.clone());
            if *set == crate::operation::UserChanges::default() {
                outcome.outcome = "pending_approval".into();
            }
            outcome.approval = Some(a);
        }
        let proposal = Proposal {
            operations,
            logged: std::borrow::Cow::Borrowed(&change.operations),
            outcomes,
            acting_user,
            request_hash: Some(request_hash),
            approvals,
            approval_rows,
            keys: None,
        };
        self.propose(storage, head, actor, provenance, proposal, now)
    }

    /// The approvals `actor` may see: those it must approve (its own
    /// account's) and those it asked for; lapsed ones are not shown.
    pub fn approvals(&self, actor: &str) -> Vec<Approval> {
        let now = now_unix();
        self.head()
            .map(|h| {
                h.approvals
                    .values()
                    .filter(|a| a.expires_at > now)
                    .filter(|a| {
                        actor.strip_prefix("user/") == Some(a.username.as_str())
                            || a.requested_by == actor
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Settles approval `id` as `actor`: approved (`approve`), the new
    /// address applied — only by the account's holder, signed in as
    /// themselves, and only while whoever asked for it may still change it
    /// (both asked of the engine at the head) — or declined, by the holder
    /// or by whoever asked. Either is a revision in the change log.
    pub fn settle(
        &self,
        actor: &str,
        id: &str,
        approve: bool,
        provenance: &Provenance,
    ) -> Result<Committed, ServiceError> {
        let mut storage = self.writing()?;
        self.catch_up(&mut storage)?;
        let head = self.head_at(provenance)?;
        let now = now_unix();
        let Some(a) = head
            .approvals
            .get(id)
            .filter(|a| a.expires_at > now)
            .cloned()
        else {
            return Err(ServiceError::NotFound {
                operation: 0,
                source: crate::operation::OpError::NotFound(format!(
                    "approval {id} (approvals lapse {} days after they are asked)",
                    APPROVAL_TTL_SECS / 86_400
                )),
            });
        };
        let holder = format!("user/{}", a.username);
        let deny = |reason: &str, message: String| ServiceError::Denied {
            reason: reason.into(),
            message,
            revision: head.revision,
            operation: 0,
        };
        let may = if approve {
            actor == holder
        } else {
            actor == holder || actor == a.requested_by
        };
        if !may {
            return Err(deny(
                "not_the_holder",
                format!(
                    "only {holder}, signed in as themselves, {} this change of its email address (seed 003)",
                    if approve {
                        "approves"
                    } else {
                        "or who asked for it declines"
                    }
                ),
            ));
        }
        let context = Context { now, bulk: false };
        let op = Operation::UpdateUser {
            username: a.username.clone(),
            set: crate::operation::UserChanges {
                email: Some(a.email.clone()),
                ..crate::operation::UserChanges::default()
            },
        };
        let mut decisions = Vec::new();
        if approve {
            // The holder's own say (an active account changing its own
            // address), then the request's author's, asked again now.
            let asks = std::iter::once((holder.as_str(), "user:change_email", holder.clone()))
                .chain(
                    requirements(&head.directory, &op)
                        .into_iter()
                        .map(|r| (a.requested_by.as_str(), r.action, r.resource)),
                );
            for (who, action, resource) in asks {
                let (mut allowed, _) =
                    ask(&head, who, action, resource.clone(), context).map_err(|e| {
                        deny(
                            &e.reason,
                            format!("{who} ({action} on {resource}): {}", e.message),
                        )
                    })?;
                // Approved now.
                allowed.obligations.retain(|o| o != "holder_approval");
                decisions.push(allowed);
            }
        }
        let mut approvals = head.approvals.clone();
        approvals.remove(id);
        let proposal = Proposal {
            operations: if approve {
                vec![op.clone()]
            } else {
                Vec::new()
            },
            logged: std::borrow::Cow::Owned(vec![op]),
            outcomes: vec![OpOutcome {
                operation: 0,
                outcome: if approve { "applied" } else { "declined" }.into(),
                decisions,
                skipped_because: None,
                secret: None,
                approval: Some(a),
            }],
            acting_user: None,
            request_hash: None,
            approvals,
            approval_rows: vec![(id.to_string(), None)],
            keys: None,
        };
        self.propose(storage, head, actor, provenance, proposal, now)
    }

    /// Applies `proposal` to the writer's twin, commits it and makes it the
    /// head; a failure anywhere leaves the head as it was (and the twin,
    /// half changed, is dropped).
    fn propose(
        &self,
        mut storage: Writing<'_>,
        head: Arc<Head>,
        actor: &str,
        provenance: &Provenance,
        proposal: Proposal<'_>,
        now: i64,
    ) -> Result<Committed, ServiceError> {
        let twin = self.twin(&head);
        let written = self.apply_change(&head, twin, actor, provenance, proposal, now);
        match written {
            Ok(Written::Unchanged(answer, twin)) => {
                self.keep(Spare::Ready(twin));
                Ok(answer)
            }
            Ok(Written::Made {
                answer,
                next,
                redo,
                commit,
            }) => {
                if let Err(e) = storage.commit(&commit) {
                    self.keep(making(head));
                    return Err(e.into());
                }
                let spare = match redo {
                    Some(redo) => Spare::Behind(head, redo),
                    None => making(next.clone()),
                };
                self.publish(next, spare, storage);
                Ok(answer)
            }
            Err(e) => {
                self.keep(making(head));
                Err(e)
            }
        }
    }

    /// Applies `change` (decided already: `outcomes`) to `twin`, which is
    /// at `head`'s revision, and makes the next head from it — edited in
    /// place when the change allows (`incremental`), else compiled.
    fn apply_change(
        &self,
        head: &Head,
        mut twin: Twin,
        actor: &str,
        provenance: &Provenance,
        proposal: Proposal<'_>,
        now: i64,
    ) -> Result<Written, ServiceError> {
        let Proposal {
            operations,
            logged,
            mut outcomes,
            acting_user,
            request_hash,
            approvals,
            approval_rows,
            keys,
        } = proposal;
        // What another replica replays: the operations applied, the keys
        // made (their secrets never leave this answer).
        let mut applied_ops = Vec::new();
        let mut made_keys = Vec::new();
        let mut settings = head.settings.clone();
        let mut setting_rows = Vec::new();
        let mut touched: Vec<EntityKey> = Vec::new();
        let mut urgent = false;
        let mut planner = Some(Planner::new(&twin.engine));
        let mut redone = Vec::new();
        for (i, op) in operations.iter().enumerate() {
            let Some(outcome) = outcomes.get_mut(i) else {
                continue;
            };
            if outcome.outcome != "applied" {
                continue;
            }
            let known = match planner.as_mut().map(|p| p.before(&twin.directory, op)) {
                Some(Some(k)) => k,
                Some(None) => {
                    planner = None;
                    Known::default()
                }
                None => Known::default(),
            };
            let mut secret = new_secret;
            let applied = apply_known(
                &mut twin.directory,
                op,
                acting_user.as_deref(),
                &mut secret,
                &known,
                now,
            )
            .map_err(|e| ServiceError::from_op(i, e))?;
            if let Operation::CreateApiKey { id, .. } = op {
                // A replayed key is the one the other replica stored.
                if let (Some(given), Some(made)) = (
                    keys.as_ref().and_then(|k| k.iter().find(|k| k.id == *id)),
                    twin.directory.api_keys.last_mut().filter(|k| k.id == *id),
                ) {
                    *made = given.clone();
                }
                if let Some(made) = twin.directory.api_keys.last().filter(|k| k.id == *id) {
                    made_keys.push(made.clone());
                }
            }
            applied_ops.push(op.clone());
            if planner.is_some() {
                redone.push((op.clone(), known));
            }
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
        let changed = !touched.is_empty() || !setting_rows.is_empty() || !approval_rows.is_empty();
        if !changed {
            return Ok(Written::Unchanged(
                Committed {
                    revision: head.revision,
                    changed: false,
                    operations: outcomes,
                    replayed: false,
                },
                Box::new(twin),
            ));
        }
        let revision = head.revision + 1;
        let rows: Vec<Row> = touched
            .into_iter()
            .map(|key| Row {
                json: match &planner {
                    Some(p) => entity_json_known(&twin.directory, &key, &p.known(&key)),
                    None => entity_json(&twin.directory, &key),
                },
                key,
                position: None,
            })
            .collect();
        let changed: Arc<[Row]> = rows.clone().into();
        let planned = planner.and_then(|p| p.finish(&twin.directory));
        let Twin {
            mut directory,
            mut engine,
            ..
        } = twin;
        let (next, redo) = match planned {
            Some((delta, removed_grants))
                if engine
                    .apply_delta(&delta, &removed_grants, revision, now)
                    .is_ok() =>
            {
                let delta = Arc::new(delta);
                directory.revision = Some(revision);
                let next = Head {
                    revision,
                    created_at: now,
                    directory,
                    engine,
                    step: Step::Delta(delta.clone()),
                    urgent,
                    settings,
                    approvals,
                    changed: Some(changed),
                };
                let redo = Redo {
                    revision,
                    created_at: now,
                    operations: redone,
                    delta,
                    removed_grants,
                };
                (next, Some(redo))
            }
            _ => (
                Head {
                    changed: Some(changed),
                    ..build(directory, settings, approvals, revision, now, urgent)?
                },
                None,
            ),
        };
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
        let replay = self
            .shared
            .then(|| {
                serde_json::to_string(&Replay {
                    created_at: now,
                    operations: applied_ops,
                    keys: made_keys,
                    approvals: approval_rows.clone(),
                })
                .ok()
            })
            .flatten();
        let commit = Commit {
            rows,
            settings: setting_rows,
            approvals: approval_rows,
            entry: LogEntry {
                revision,
                time: rfc3339(now),
                actor: actor.to_string(),
                via: provenance.via.to_string(),
                operations: serde_json::to_value(&*logged).unwrap_or_default(),
                decisions: serde_json::to_value(&kept.operations).unwrap_or_default(),
                request_id: provenance.request_id.clone(),
                idempotency_key: provenance.idempotency_key.clone(),
            },
            request_hash,
            response: serde_json::to_string(&kept).unwrap_or_default(),
            replay,
        };
        Ok(Written::Made {
            answer,
            next: Arc::new(next),
            redo,
            commit,
        })
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
        let mut storage = self.writing()?;
        self.catch_up(&mut storage)?;
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
            let domain = crate::requirement::domain(&h.directory);
            let (allowed, _) = ask(
                h,
                actor,
                "admin:domain_settings",
                domain.clone(),
                Context { now, bulk: false },
            )
            .map_err(|e| ServiceError::Denied {
                reason: e.reason,
                message: format!("import (admin:domain_settings on {domain}): {}", e.message),
                revision: h.revision,
                operation: 0,
            })?;
            decisions.push(allowed);
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
        let approvals = head
            .as_ref()
            .map(|h| h.approvals.clone())
            .unwrap_or_default();
        let built = Arc::new(build(
            desired,
            settings,
            approvals,
            revision,
            now,
            removed > 0,
        )?);
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
                approval: None,
            }],
            replayed: false,
        };
        storage.commit(&Commit {
            rows,
            settings: Vec::new(),
            approvals: Vec::new(),
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
            replay: None,
        })?;
        self.publish(built.clone(), making(built), storage);
        Ok(answer)
    }
}
