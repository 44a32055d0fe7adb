//! The public facade: load a snapshot once, then answer checks.

use portcullis_snapshots::body::NodeRef;
use portcullis_snapshots::vocabulary::NodeKind;
use portcullis_snapshots::{DecodeError, DecodeLimits, Snapshot, decode_with, decode_with_digest};
use thiserror::Error;

use crate::action::{Action, EntityVerb};
use crate::decision::{Decision, Reason};
use crate::explain::{Explanation, explain};
use crate::facts::{Facts, Naive};
use crate::index::Indexed;
use crate::request::{Context, Request, Target, applies, parse_principal, parse_target};
use crate::rules::{decide, decide_parsed};

/// Why a snapshot could not be loaded. The previous engine (if any) is
/// untouched: loading builds a new one or nothing.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The bytes are not a valid snapshot.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// An authorization engine over one snapshot, indexed for fast checks.
#[derive(Clone)]
pub struct Engine {
    facts: Indexed,
    revision: u64,
    created_at: i64,
}

impl Engine {
    /// Decodes, verifies and indexes a snapshot.
    pub fn load(bytes: &[u8]) -> Result<Engine, LoadError> {
        Self::load_with(bytes, DecodeLimits::default())
    }

    /// [`Engine::load`] with explicit decoding limits.
    pub fn load_with(bytes: &[u8], limits: DecodeLimits) -> Result<Engine, LoadError> {
        Ok(Self::from_snapshot(decode_with(bytes, limits)?))
    }

    /// [`Engine::load`] with the body's SHA-256 already computed by the
    /// caller (the browser package hashes with WebCrypto).
    pub fn load_with_digest(bytes: &[u8], body_sha256: [u8; 32]) -> Result<Engine, LoadError> {
        Ok(Self::from_snapshot(decode_with_digest(
            bytes,
            DecodeLimits::default(),
            body_sha256,
        )?))
    }

    /// Indexes an already decoded snapshot.
    pub fn from_snapshot(s: Snapshot) -> Engine {
        Engine {
            revision: s.header.revision,
            created_at: s.header.created_at,
            facts: Indexed::new(s.body, s.view),
        }
    }

    /// Applies a delta to this engine in place, as if it had loaded the
    /// snapshot the delta makes (revision `revision`, built at
    /// `created_at`). `removed_grants` are the base snapshot's grants at
    /// the rows the delta removes, in order (the engine keeps no grant
    /// table). A delta that needs a full load, or does not fit, is refused
    /// and the engine is unchanged: `policy-wasm/src/patch.rs`.
    ///
    /// The delta's authenticity and the target's content hash are the
    /// caller's to check (`snapshots::delta`): this only edits.
    #[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
    pub fn apply_delta(
        &mut self,
        delta: &portcullis_snapshots::delta::DeltaBody,
        removed_grants: &[portcullis_snapshots::body::GrantRec],
        revision: u64,
        created_at: i64,
    ) -> Result<(), crate::PatchError> {
        self.facts.patch(delta, removed_grants)?;
        self.revision = revision;
        self.created_at = created_at;
        Ok(())
    }

    /// The snapshot's tables as the engine holds them — every table but
    /// the grants, which live in per-principal indexes. For a writer that
    /// turns a directory change into a delta against this engine.
    pub fn tables(&self) -> &portcullis_snapshots::body::Body {
        self.facts.body()
    }

    /// Rows of the grant table (which [`Engine::tables`] leaves empty).
    pub fn grant_count(&self) -> usize {
        self.facts.grant_count()
    }

    /// The rows of the grant table that hold `grant`, ascending: a lookup
    /// in the principal's grants, not a scan of the table.
    #[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
    pub fn grant_rows(&self, grant: &portcullis_snapshots::body::GrantRec) -> Vec<u32> {
        let (lists, k) = self.facts.grants.of(grant.principal);
        let want = crate::facts::Grant {
            role: grant.role,
            on: grant.on,
        };
        lists
            .get(k)
            .iter()
            .zip(lists.tags(k))
            .filter(|(g, _)| **g == want)
            .map(|(_, &row)| row)
            .collect()
    }

    /// The row of the user `username`.
    pub fn user_row(&self, username: &str) -> Option<u32> {
        self.facts.user(username)
    }

    /// The row of the service account `id`.
    pub fn service_row(&self, id: &str) -> Option<u32> {
        self.facts.service(id)
    }

    /// The id of the API key whose secret hashes to `sha256` (any key,
    /// revoked or expired too: whether it may act is the check's to say).
    pub fn api_key_id(&self, sha256: &[u8; 32]) -> Option<&str> {
        let row = self.facts.api_key(sha256)?;
        let b = self.tables();
        b.api_keys.get(row as usize).map(|k| b.str(k.id))
    }

    /// The node a reference names (`org/acme`, `env/prod`, `catalog/…`,
    /// `object/…`, `team/…`).
    pub fn node_row(&self, reference: &str) -> Option<NodeRef> {
        let (kind, id) = reference.split_once('/')?;
        self.facts.node(kind, id)
    }

    /// What the engine holds, as text that is the same for two engines
    /// that answer alike however they were built (a full load, or deltas
    /// applied in place). For tests; not a stable format.
    #[doc(hidden)]
    pub fn logical_state(&self) -> String {
        format!(
            "revision {} created {}\n{}",
            self.revision,
            self.created_at,
            self.facts.logical_state()
        )
    }

    /// The snapshot revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// When the snapshot was built (Unix seconds).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The usernames of the snapshot's users, in snapshot order — in a
    /// view, the people it holds (its stand-in for owners outside it names
    /// nobody and is not listed).
    pub fn people(&self) -> Vec<String> {
        let b = self.facts.body();
        b.users
            .iter()
            .map(|u| b.str(u.username))
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Record counts: what a view holds, for a page to show.
    pub fn counts(&self) -> portcullis_snapshots::body::Counts {
        let b = self.facts.body();
        portcullis_snapshots::body::Counts {
            users: b
                .users
                .iter()
                .filter(|u| !b.str(u.username).is_empty())
                .count(),
            grants: self.facts.grant_count(),
            ..b.counts()
        }
    }

    /// Whether this snapshot is a principal's view rather than a whole
    /// directory.
    pub fn is_view(&self) -> bool {
        self.facts.view_facts().is_some()
    }

    /// The view of `principal` (a user or a service account): the smallest
    /// snapshot that decides every request of `principal` as this one does,
    /// with nobody else's personal data and no API keys. Its cost follows
    /// the size of the view, not of the directory (`policy-wasm/README.md#views`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn view(&self, principal: &str) -> Result<Vec<u8>, crate::ViewError> {
        self.view_scoped(principal).map(|(bytes, _)| bytes)
    }

    /// [`Engine::view`] and where its other people come from, so that a
    /// holder of the view can tell whether a later snapshot changed it
    /// ([`Engine::view_changed_by`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn view_scoped(
        &self,
        principal: &str,
    ) -> Result<(Vec<u8>, crate::ViewScope), crate::ViewError> {
        crate::view::view(&self.facts, principal, self.revision, self.created_at)
    }

    /// Whether `change` (from `portcullis_snapshots::fingerprint`, between
    /// the snapshot a view of `scope` was cut from and this one) can change
    /// that view. Only meaningful for [`Change::Users`]: the two snapshots
    /// then have the same organizations and teams.
    ///
    /// [`Change::Users`]: portcullis_snapshots::fingerprint::Change::Users
    #[cfg(not(target_arch = "wasm32"))]
    pub fn view_changed_by(
        &self,
        scope: &crate::ViewScope,
        change: &portcullis_snapshots::fingerprint::UserChange,
    ) -> bool {
        crate::view::changed_by(&self.facts, scope, change)
    }

    /// [`Engine::view`] as a decoded snapshot body and its stated facts,
    /// for tools that inspect it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn view_body(
        &self,
        principal: &str,
    ) -> Result<
        (
            portcullis_snapshots::body::Body,
            portcullis_snapshots::view::ViewFacts,
        ),
        crate::ViewError,
    > {
        crate::view::view_body(&self.facts, principal)
    }

    /// Decides one request. Unknown principals, resources and actions are
    /// denials with a reason, never errors.
    pub fn check(&self, req: &Request<'_>) -> Decision {
        let mut d = decide(&self.facts, req);
        d.revision = self.revision;
        d
    }

    /// Decides many requests, in order.
    pub fn check_batch(&self, reqs: &[Request<'_>]) -> Vec<Decision> {
        reqs.iter().map(|r| self.check(r)).collect()
    }

    /// Decides and explains one request.
    pub fn explain(&self, req: &Request<'_>) -> Explanation {
        explain(self.facts.body(), &self.check(req), req)
    }

    /// Renders a decision already made for `req`.
    pub fn explain_decision(&self, req: &Request<'_>, d: &Decision) -> Explanation {
        explain(self.facts.body(), d, req)
    }

    /// Every action `principal` may take on `resource`: what a UI needs to
    /// draw a page. Empty for an unknown principal or resource.
    pub fn permissions(&self, principal: &str, resource: &str, context: Context) -> Vec<String> {
        let f = &self.facts;
        let (Some(subject), Some(target)) =
            (parse_principal(f, principal), parse_target(f, resource))
        else {
            return Vec::new();
        };
        let bare = matches!(target, Target::Entity(_));
        // Entity actions come in groups per entity type, `view` first; the
        // other verbs need Manage, which implies View (seed 004), so when
        // `view` is denied the rest of its group is too, unasked: most
        // principals view no entity type, and an organization has 60 of
        // these actions.
        let mut view_denied = None;
        Action::all()
            .filter(|&a| match (a, target) {
                (Action::Entity(_, e), Target::Entity(t)) => e == t,
                _ => applies(a, target),
            })
            .filter(|&a| {
                if let Action::Entity(verb, e) = a
                    && verb != EntityVerb::View
                    && view_denied == Some(e)
                {
                    return false;
                }
                let allowed = decide_parsed(f, subject, a, target, context).allowed;
                if let Action::Entity(EntityVerb::View, e) = a {
                    view_denied = (!allowed).then_some(e);
                }
                allowed
            })
            .map(|a| {
                let name = a.name();
                // On `entity/<type>` the vocabulary is the bare verb.
                match (bare, name.split_once(':')) {
                    (true, Some((verb, _))) => verb.to_string(),
                    _ => name,
                }
            })
            .collect()
    }

    /// The nodes of `kind` (`org`, `env`, `catalog`, `object`, `team`) at or
    /// below `under` on which `principal` may do `action`: what a UI needs
    /// to list environments or catalogs. Returned as references (`env/prod`).
    pub fn list(
        &self,
        principal: &str,
        action: &str,
        kind: &str,
        under: &str,
        context: Context,
    ) -> Result<Vec<String>, Reason> {
        let f = &self.facts;
        let b = f.body();
        let subject = parse_principal(f, principal).ok_or(Reason::UnknownPrincipal)?;
        let Some(Target::Node(under)) = parse_target(f, under) else {
            return Err(Reason::UnknownResource);
        };
        let Some(Ok(action)) = crate::action::Action::parse(action).map(|p| match p {
            crate::action::Parsed::Action(a) => Ok(a),
            crate::action::Parsed::BareVerb(_) => Err(()),
        }) else {
            return Err(Reason::UnknownAction);
        };
        let (kind, n) = match kind {
            "org" => (NodeKind::Org, b.orgs.len()),
            "env" => (NodeKind::Env, b.envs.len()),
            "catalog" => (NodeKind::Catalog, b.catalogs.len()),
            "object" => (NodeKind::Object, b.objects.len()),
            "team" => (NodeKind::Team, b.teams.len()),
            _ => return Err(Reason::UnknownResource),
        };
        let mut out = Vec::new();
        for i in 0..n as u32 {
            let node = match kind {
                NodeKind::Org => NodeRef::Org(i),
                NodeKind::Env => NodeRef::Env(i),
                NodeKind::Catalog => NodeRef::Catalog(i),
                NodeKind::Object => NodeRef::Object(i),
                NodeKind::Team => NodeRef::Team(i),
            };
            let target = Target::Node(node);
            if f.covers(under, &f.pos(node))
                && applies(action, target)
                && decide_parsed(f, subject, action, target, context).allowed
            {
                out.push(b.node_ref(node));
            }
        }
        Ok(out)
    }
}

/// The reference evaluator: the same rules over linear scans of the body,
/// no indexes. Slow on purpose; tests compare the engine against it.
pub fn check_reference(snapshot: &Snapshot, req: &Request<'_>) -> Decision {
    let mut d = decide(&Naive::new(&snapshot.body), req);
    d.revision = snapshot.header.revision;
    d
}
