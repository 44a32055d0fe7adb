//! What changed between two snapshots, as far as principals' views are
//! concerned, without keeping both bodies: a [`Fingerprint`] of each (a
//! few bytes per user) compared in linear time.
//!
//! The common push changes one person — a new hire, a status, a name — and
//! leaves most views exactly as they were. A gateway keeps each view it
//! served and, after a swap, keeps the ones the change cannot reach instead
//! of cutting them all again. The comparison is deliberately narrow: users
//! changed in place or added at the end, everything else identical; any
//! other change is [`Change::Other`] and every view is cut again.
#![allow(
    clippy::indexing_slicing,
    reason = "indices below the lengths just compared"
)]

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::body::{Body, OptStr, Str};
use crate::vocabulary::AdminRole;

/// A body reduced to what decides whether views of it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// Everything but the users and the API keys (views never hold keys),
    /// strings by their text so that reinterning does not count.
    rest: u64,
    /// Per user: what another principal's view holds of it (username,
    /// organization, status, administrator role).
    seen: Vec<u64>,
    /// Per user: the whole record (what its own view holds).
    whole: Vec<u64>,
    /// Per user: its organization.
    orgs: Vec<u32>,
    /// Users holding the owner role (sole-owner facts depend on the count).
    owners: usize,
}

/// One user that differs between two fingerprints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserChange {
    /// Its index (the same in both snapshots).
    pub user: u32,
    /// Its organization before, `None` if it is new.
    pub org_before: Option<u32>,
    /// Its organization now.
    pub org_after: u32,
    /// Whether what others' views hold of it changed (else only what its
    /// own view holds).
    pub seen: bool,
}

/// What changed between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing a view holds.
    Identical,
    /// Only these users (changed in place or added); the number of owners
    /// is the same.
    Users(Vec<UserChange>),
    /// Anything else: every view may have changed.
    Other,
}

struct H<'a> {
    b: &'a Body,
    h: DefaultHasher,
}

impl H<'_> {
    fn s(&mut self, s: Str) {
        self.b.str(s).hash(&mut self.h);
    }

    fn o(&mut self, s: Option<Str>) {
        s.is_some().hash(&mut self.h);
        if let Some(s) = s {
            self.s(s);
        }
    }

    fn o4(&mut self, s: OptStr) {
        self.o(s.get());
    }

    fn v(&mut self, v: impl Hash) {
        v.hash(&mut self.h);
    }
}

impl Fingerprint {
    /// Fingerprints `b`.
    pub fn of(b: &Body) -> Fingerprint {
        let mut h = H {
            b,
            h: DefaultHasher::new(),
        };
        h.v(b.domain);
        for o in &b.orgs {
            h.s(o.id);
            h.o(o.name);
            h.v(o.parent);
        }
        for e in &b.envs {
            h.s(e.id);
            h.o(e.name);
            h.v((e.org, e.tier));
        }
        for c in &b.catalogs {
            h.s(c.id);
            h.o(c.name);
            h.v((c.env, c.kind));
            h.o(c.connector);
        }
        for o in &b.objects {
            h.s(o.id);
            h.o(o.name);
            h.s(o.kind);
            h.v(o.parent);
        }
        for a in &b.service_accounts {
            h.s(a.id);
            h.o(a.name);
            h.o(a.description);
            h.v((a.org, a.default_access, a.status));
        }
        for g in &b.groups {
            h.s(g.id);
            h.s(g.name);
            h.s(g.code);
            h.o(g.description);
            h.v(&g.members);
        }
        for t in &b.teams {
            h.s(t.id);
            h.o(t.name);
            h.v((t.org, t.owner, &t.members));
        }
        for r in &b.custom_roles {
            h.s(r.id);
            h.o(r.name);
            h.o(r.description);
            h.v(r.scopes.len());
            for &s in &r.scopes {
                h.s(s);
            }
        }
        h.v(&b.grants);
        h.v(&b.permissions);
        let rest = h.h.finish();

        let mut seen = Vec::with_capacity(b.users.len());
        let mut whole = Vec::with_capacity(b.users.len());
        for u in &b.users {
            let mut h = H {
                b,
                h: DefaultHasher::new(),
            };
            h.s(u.username);
            h.v((u.org, u.status, u.admin_role));
            seen.push(h.h.finish());
            for s in u.optional_strings() {
                h.o4(s);
            }
            h.s(u.email);
            h.v((
                u.allow_login,
                u.email_verified,
                u.sso,
                u.expires_at,
                u.last_login,
                u.sp_role,
            ));
            whole.push(h.h.finish());
        }
        Fingerprint {
            rest,
            seen,
            whole,
            orgs: b.users.iter().map(|u| u.org).collect(),
            owners: b
                .users
                .iter()
                .filter(|u| u.admin_role == Some(AdminRole::Owner))
                .count(),
        }
    }

    /// What changed from `self` (before) to `after`.
    pub fn change_to(&self, after: &Fingerprint) -> Change {
        let n = self.whole.len();
        // Adding a second user can make a lone owner a sole owner.
        let grew_from_one = n <= 1 && after.whole.len() != n;
        if self.rest != after.rest
            || after.whole.len() < n
            || self.owners != after.owners
            || grew_from_one
        {
            return Change::Other;
        }
        let mut changed = Vec::new();
        for i in 0..after.whole.len() {
            let (seen, whole) = if i < n {
                (
                    self.seen[i] != after.seen[i],
                    self.whole[i] != after.whole[i],
                )
            } else {
                (true, true)
            };
            if whole || seen {
                changed.push(UserChange {
                    user: i as u32,
                    org_before: (i < n).then(|| self.orgs[i]),
                    org_after: after.orgs[i],
                    seen,
                });
            }
        }
        if changed.is_empty() {
            Change::Identical
        } else {
            Change::Users(changed)
        }
    }
}
