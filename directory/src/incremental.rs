//! A change turned into a delta against the engine of the revision it
//! applies to, instead of compiling the whole directory again.
//!
//! The administrators' everyday changes — a user's status, expiry,
//! administrator role or flags; an API key revoked; the members of a group
//! or a team; grants and permissions added or removed — edit rows that
//! exist already, or add and remove rows that nothing refers to. Those are
//! the deltas an engine applies in place (`Engine::apply_delta`), so the
//! writer edits its engine rather than compiling, encoding and loading the
//! directory, and a write costs what it changes. Each row is built as
//! compilation builds it, and each check compilation makes of such a row
//! is made here; whatever this cannot build exactly — a new string, a new
//! user or node, any other operation — is `None`, and the writer compiles.
//! `directory/tests/service.rs` checks every write against a full build.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use policy_wasm::Engine;
use portcullis_snapshots::body::{
    ApiKeyRec, Body, GrantRec, NodeRef, OptStr, PermissionRec, PrincipalRef, RoleRef, Str, UserRec,
};
use portcullis_snapshots::delta::{DeltaBody, MemberEdit, Splice, TableLens};
use portcullis_snapshots::source::{
    Directory, Grant, PermissionGrant, RESERVED_USERNAME, User, level_problem, plausible_email,
    valid_id,
};
use portcullis_snapshots::vocabulary::{AdminRole, BuiltinRole, Permission};

use crate::operation::{EntityKey, Kind, Known, Operation};

/// Where a row of an appendable table (grants, permissions) now is.
enum Origin {
    /// A row of the base, at this index.
    Base(u32),
    /// Added by this change, the n-th addition still there.
    Added(usize),
}

/// A table that rows are appended to and removed from: the base rows
/// removed, and the rows added at its end, as a change goes.
struct Appendable<T> {
    base: u32,
    removed: BTreeSet<u32>,
    added: Vec<T>,
}

impl<T> Appendable<T> {
    fn new(base: usize) -> Self {
        Appendable {
            base: base as u32,
            removed: BTreeSet::new(),
            added: Vec::new(),
        }
    }

    /// Where the row now at `p` comes from: the directory's section is
    /// the base's rows not removed, in order, then the rows added.
    fn origin(&self, p: usize) -> Origin {
        let kept = (self.base as usize).saturating_sub(self.removed.len());
        if p >= kept {
            return Origin::Added(p - kept);
        }
        let mut b = p as u32;
        for &r in &self.removed {
            if r <= b {
                b += 1;
            } else {
                break;
            }
        }
        Origin::Base(b)
    }

    /// Removes the rows now at `positions` (ascending); the base rows
    /// among them.
    fn remove(&mut self, positions: &[usize]) -> Vec<u32> {
        let origins: Vec<Origin> = positions.iter().map(|&p| self.origin(p)).collect();
        let mut base = Vec::new();
        let mut added = Vec::new();
        for o in origins {
            match o {
                Origin::Base(r) => base.push(r),
                Origin::Added(i) => added.push(i),
            }
        }
        for i in added.into_iter().rev() {
            if i < self.added.len() {
                self.added.remove(i);
            }
        }
        self.removed.extend(base.iter().copied());
        base
    }

    /// The splices: runs of removed rows, then the additions at the end.
    fn splices(self) -> Vec<Splice<T>> {
        let mut out: Vec<Splice<T>> = Vec::new();
        for r in self.removed {
            match out.last_mut() {
                Some(s) if s.at + s.remove == r => s.remove += 1,
                _ => out.push(Splice {
                    at: r,
                    remove: 1,
                    insert: Vec::new(),
                }),
            }
        }
        if !self.added.is_empty() {
            match out.last_mut() {
                Some(s) if s.at + s.remove == self.base => s.insert = self.added,
                _ => out.push(Splice {
                    at: self.base,
                    remove: 0,
                    insert: self.added,
                }),
            }
        }
        out
    }
}

/// Follows a change operation by operation ([`Planner::before`] each, on
/// the directory as it is before that operation), then makes its delta
/// from the directory after it ([`Planner::finish`]).
pub(crate) struct Planner<'a> {
    engine: &'a Engine,
    users: BTreeSet<u32>,
    api_keys: BTreeSet<u32>,
    groups: BTreeSet<u32>,
    teams: BTreeSet<u32>,
    grants: Appendable<GrantRec>,
    permissions: Appendable<PermissionRec>,
    removed_grants: BTreeMap<u32, GrantRec>,
    /// Users invited, in order: appended to the users, their strings to
    /// the string table.
    invited: Vec<String>,
}

impl<'a> Planner<'a> {
    /// A planner against `engine`: the revision the change applies to.
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Planner {
            engine,
            users: BTreeSet::new(),
            api_keys: BTreeSet::new(),
            groups: BTreeSet::new(),
            teams: BTreeSet::new(),
            grants: Appendable::new(engine.grant_count()),
            permissions: Appendable::new(engine.tables().permissions.len()),
            removed_grants: BTreeMap::new(),
            invited: Vec::new(),
        }
    }

    /// Notes `op`, about to be applied: where the rows it names are in
    /// the directory now (found in the engine's indexes), or `None` when it
    /// is not a change this module makes (the writer compiles).
    pub(crate) fn before(&mut self, dir: &Directory, op: &Operation) -> Option<Known> {
        use Operation as O;
        let t = self.engine.tables();
        let row = |set: &mut BTreeSet<u32>, r: Option<u32>| match r {
            Some(r) => {
                set.insert(r);
                Some(Known::default())
            }
            None => None,
        };
        match op {
            O::DeactivateUser { username }
            | O::ReactivateUser { username }
            | O::SetUserExpiry { username, .. }
            | O::SetAdminRole { username, .. }
            | O::UpdateUser { username, .. } => {
                // The users' rows do not move in a change made here.
                let r = self.engine.user_row(username);
                row(&mut self.users, r).map(|_| Known {
                    user: r.map(|r| r as usize),
                    ..Known::default()
                })
            }
            O::RevokeApiKey { id } => {
                let r = t.api_keys.iter().position(|k| t.str(k.id) == id);
                row(&mut self.api_keys, r.map(|r| r as u32))
            }
            O::AddGroupMember { group, .. } | O::RemoveGroupMember { group, .. } => {
                let r = self.group_row(group);
                row(&mut self.groups, r)
            }
            O::AddTeamMember { team, .. } | O::RemoveTeamMember { team, .. } => {
                let r = match self.engine.node_row(&format!("team/{team}")) {
                    Some(NodeRef::Team(r)) => Some(r),
                    _ => None,
                };
                row(&mut self.teams, r)
            }
            O::AddGrant { grant } => {
                let g = self.grant(grant)?;
                let at = self.grant_positions(&g);
                self.grants.added.push(g);
                Some(Known {
                    grants: Some(at),
                    ..Known::default()
                })
            }
            O::RemoveGrant { grant } => {
                let g = self.grant(grant)?;
                let at = self.grant_positions(&g);
                for r in self.grants.remove(&at) {
                    self.removed_grants.insert(r, g);
                }
                Some(Known {
                    grants: Some(at),
                    ..Known::default()
                })
            }
            O::AddPermission { permission } => {
                let p = self.permission(permission)?;
                self.permissions.added.push(p);
                Some(Known::default())
            }
            O::RemovePermission { permission } => {
                self.permission(permission)?;
                // Permissions are few: their section is scanned.
                let at = positions(&dir.permissions, permission);
                self.permissions.remove(&at);
                Some(Known::default())
            }
            O::InviteUser { user } => {
                let name = &user.username;
                // Compilation's checks of a new name; a taken one is the
                // operation's own refusal (409).
                let fresh = valid_id(name)
                    && !name.eq_ignore_ascii_case(RESERVED_USERNAME)
                    && self.engine.user_row(name).is_none()
                    && !self.invited.contains(name);
                fresh.then(|| {
                    self.invited.push(name.clone());
                    Known {
                        absent: true,
                        ..Known::default()
                    }
                })
            }
            // Settings are the service's, not the directory's.
            O::SetSetting { .. } => Some(Known::default()),
            _ => None,
        }
    }

    /// Where the rows `key` names are in the directory as it is now.
    pub(crate) fn known(&self, key: &EntityKey) -> Known {
        match key.kind {
            Kind::User => Known {
                user: self.engine.user_row(&key.key).map(|r| r as usize),
                ..Known::default()
            },
            Kind::Grant => {
                let base = key
                    .key
                    .rsplit_once(" #")
                    .map_or(key.key.as_str(), |(b, _)| b);
                let mut parts = base.splitn(3, ' ');
                let (Some(principal), Some(role), Some(on)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Known::default();
                };
                let grant = Grant {
                    principal: principal.into(),
                    role: role.into(),
                    on: on.into(),
                };
                Known {
                    grants: self.grant(&grant).map(|g| self.grant_positions(&g)),
                    ..Known::default()
                }
            }
            _ => Known::default(),
        }
    }

    /// Where `g` is in the directory's grants now, ascending: its base rows
    /// not removed (each moved up by the removed rows before it), then the
    /// additions.
    fn grant_positions(&self, g: &GrantRec) -> Vec<usize> {
        let a = &self.grants;
        let kept = (a.base as usize).saturating_sub(a.removed.len());
        let mut at: Vec<usize> = self
            .engine
            .grant_rows(g)
            .into_iter()
            .filter(|r| !a.removed.contains(r))
            .map(|r| r as usize - a.removed.range(..r).count())
            .collect();
        at.extend(
            a.added
                .iter()
                .enumerate()
                .filter(|(_, x)| *x == g)
                .map(|(i, _)| kept + i),
        );
        at
    }

    /// The delta from the engine's revision to `dir` (the directory after
    /// every operation noted), and the base's grants it removes, in row
    /// order — or `None` when a row cannot be made without compiling.
    pub(crate) fn finish(self, dir: &Directory) -> Option<(DeltaBody, Vec<GrantRec>)> {
        let t = self.engine.tables();
        if dir.users.len() != t.users.len() + self.invited.len()
            || dir.api_keys.len() != t.api_keys.len()
            || dir.groups.len() != t.groups.len()
            || dir.teams.len() != t.teams.len()
        {
            return None;
        }
        let mut users = Vec::new();
        for &r in &self.users {
            let (u, old) = (dir.users.get(r as usize)?, t.users.get(r as usize)?);
            let rec = self.user(old, u)?;
            users.extend(one_row(r, old, rec));
        }
        let mut api_keys = Vec::new();
        for &r in &self.api_keys {
            let (k, old) = (dir.api_keys.get(r as usize)?, t.api_keys.get(r as usize)?);
            let same = t.str(old.id) == k.id
                && same_opt(t, old.name, &k.name)
                && hex::encode(old.sha256) == k.sha256
                && k.created_by.strip_prefix("user/") == Some(t.user_name(old.creator));
            if !same {
                return None;
            }
            let rec = ApiKeyRec {
                created_at: k.created_at.map(|x| x.0),
                expires_at: k.expires_at.map(|x| x.0),
                revoked: k.revoked,
                ..old.clone()
            };
            api_keys.extend(one_row(r, old, rec));
        }
        let mut group_members = Vec::new();
        for &r in &self.groups {
            let (g, old) = (dir.groups.get(r as usize)?, t.groups.get(r as usize)?);
            let same = t.str(old.id) == g.id
                && t.str(old.name) == g.name
                && t.str(old.code) == g.code
                && same_opt(t, old.description, &g.description);
            if !same {
                return None;
            }
            let mut seen = HashSet::new();
            let mut members = Vec::with_capacity(g.members.len());
            for m in &g.members {
                let p = self.principal(m, false)?;
                if !seen.insert(p) {
                    return None;
                }
                members.push(p);
            }
            group_members.extend(whole_list(r, &old.members, members));
        }
        let mut team_members = Vec::new();
        for &r in &self.teams {
            let (tm, old) = (dir.teams.get(r as usize)?, t.teams.get(r as usize)?);
            let same = t.str(old.id) == tm.id
                && same_opt(t, old.name, &tm.name)
                && t.str(t.orgs.get(old.org as usize)?.id) == tm.organization
                && t.user_name(old.owner) == tm.owner;
            if !same {
                return None;
            }
            let mut seen = HashSet::new();
            let mut members = Vec::with_capacity(tm.members.len());
            for m in &tm.members {
                if !seen.insert(m.as_str()) {
                    return None;
                }
                members.push(self.engine.user_row(m)?);
            }
            team_members.extend(whole_list(r, &old.members, members));
        }
        let base = TableLens {
            grants: self.engine.grant_count() as u32,
            ..TableLens::of(t)
        };
        let mut strings = Vec::new();
        let mut new_users = Vec::with_capacity(self.invited.len());
        for (k, name) in self.invited.iter().enumerate() {
            let u = dir.users.get(t.users.len() + k)?;
            if u.username != *name {
                return None;
            }
            let rec = self.new_user(
                u,
                dir.users.get(t.users.len()..t.users.len() + k)?,
                base.strings,
                &mut strings,
            )?;
            new_users.push(rec);
        }
        if !new_users.is_empty() {
            users.push(Splice {
                at: base.users,
                remove: 0,
                insert: new_users,
            });
        }
        let strings = if strings.is_empty() {
            Vec::new()
        } else {
            vec![Splice {
                at: base.strings,
                remove: 0,
                insert: strings,
            }]
        };
        let delta = DeltaBody {
            base,
            strings,
            domain: t.domain,
            users,
            api_keys,
            group_members,
            team_members,
            grants: self.grants.splices(),
            permissions: self.permissions.splices(),
            ..DeltaBody::default()
        };
        Some((delta, self.removed_grants.into_values().collect()))
    }

    /// `u` as compilation makes its row, from `old` (its row in the base):
    /// only when every string of it is the base's — a new string is a
    /// compile — and it passes compilation's checks of a user.
    fn user(&self, old: &UserRec, u: &User) -> Option<UserRec> {
        let t = self.engine.tables();
        let same_strings = t.str(old.username) == u.username
            && t.str(old.email) == u.email
            && same_optstr(t, old.name, &u.name)
            && same_optstr(t, old.first_name, &u.first_name)
            && same_optstr(t, old.last_name, &u.last_name)
            && same_optstr(t, old.phone, &u.phone)
            && same_optstr(t, old.timezone, &u.timezone)
            && same_optstr(t, old.locale, &u.locale)
            && same_optstr(t, old.start_page, &u.start_page);
        // A notification-only user cannot own a team: compilation checks
        // the teams when that flag changes.
        if !same_strings || u.allow_login != old.allow_login {
            return None;
        }
        let org = self.user_org(u)?;
        Some(UserRec {
            org,
            status: u.status,
            email_verified: u.email_verified,
            sso: u.sso,
            expires_at: u.expires_at.map(|x| x.0).into(),
            last_login: u.last_login.map(|x| x.0).into(),
            admin_role: u.admin_role,
            sp_role: u.sp_role,
            ..old.clone()
        })
    }

    /// The row of `u`'s organization, unless `u` is an owner or super
    /// administrator outside the domain (seed 003) — which compilation
    /// refuses, saying where.
    fn user_org(&self, u: &User) -> Option<u32> {
        let org = match self.engine.node_row(&format!("org/{}", u.organization))? {
            NodeRef::Org(o) => o,
            _ => return None,
        };
        let owner_level = matches!(
            u.admin_role,
            Some(AdminRole::Owner | AdminRole::SuperAdministrator)
        );
        (!owner_level || org == self.engine.tables().domain).then_some(org)
    }

    /// A new user's row, its strings appended to `strings` (the table has
    /// `base` before them), when it passes compilation's checks of a user:
    /// its organization exists, its email is plausible and nobody else's
    /// (`earlier`: the users invited before it in the change), an owner
    /// or super administrator sits under the domain.
    fn new_user(
        &self,
        u: &User,
        earlier: &[User],
        base: u32,
        strings: &mut Vec<String>,
    ) -> Option<UserRec> {
        let t = self.engine.tables();
        let org = self.user_org(u)?;
        // Emails are unique compared case-insensitively (compilation
        // lowercases fully; ASCII folding agrees with it on ASCII text).
        if !plausible_email(&u.email) || !u.email.is_ascii() {
            return None;
        }
        let same = |other: &str| {
            if other.is_ascii() {
                other.eq_ignore_ascii_case(&u.email)
            } else {
                other.to_lowercase() == u.email.to_ascii_lowercase()
            }
        };
        if t.users.iter().any(|x| same(t.str(x.email))) || earlier.iter().any(|x| same(&x.email)) {
            return None;
        }
        let mut add = |text: Option<&str>| {
            text.map(|text| {
                strings.push(text.to_string());
                Str(base + strings.len() as u32 - 1)
            })
        };
        Some(UserRec {
            username: add(Some(&u.username))?,
            name: add(u.name.as_deref()).into(),
            first_name: add(u.first_name.as_deref()).into(),
            last_name: add(u.last_name.as_deref()).into(),
            email: add(Some(&u.email))?,
            phone: add(u.phone.as_deref()).into(),
            org,
            timezone: add(u.timezone.as_deref()).into(),
            locale: add(u.locale.as_deref()).into(),
            status: u.status,
            allow_login: u.allow_login,
            email_verified: u.email_verified,
            sso: u.sso,
            expires_at: u.expires_at.map(|x| x.0).into(),
            last_login: u.last_login.map(|x| x.0).into(),
            start_page: add(u.start_page.as_deref()).into(),
            admin_role: u.admin_role,
            sp_role: u.sp_role,
        })
    }

    fn group_row(&self, id: &str) -> Option<u32> {
        let t = self.engine.tables();
        t.groups
            .iter()
            .position(|g| t.str(g.id) == id)
            .map(|r| r as u32)
    }

    /// A grantee, resolved as compilation resolves it.
    fn principal(&self, r: &str, groups_allowed: bool) -> Option<PrincipalRef> {
        match r.split_once('/')? {
            ("user", name) => self.engine.user_row(name).map(PrincipalRef::User),
            ("service", id) => self.engine.service_row(id).map(PrincipalRef::Service),
            ("group", id) if groups_allowed => self.group_row(id).map(PrincipalRef::Group),
            _ => None,
        }
    }

    /// A grant's row, when it resolves and its role exists at its node's
    /// level.
    fn grant(&self, g: &Grant) -> Option<GrantRec> {
        let t = self.engine.tables();
        let principal = self.principal(&g.principal, true)?;
        let on = self.engine.node_row(&g.on)?;
        let role = match (
            BuiltinRole::from_name(&g.role),
            g.role.strip_prefix("role/"),
        ) {
            (Some(b), _) => RoleRef::Builtin(b),
            (None, Some(id)) => {
                RoleRef::Custom(t.custom_roles.iter().position(|c| t.str(c.id) == id)? as u32)
            }
            (None, None) => return None,
        };
        if level_problem(role, on.kind()).is_some() {
            return None;
        }
        Some(GrantRec {
            principal,
            role,
            on,
        })
    }

    /// A permission's row, when it resolves and passes compilation's checks.
    fn permission(&self, p: &PermissionGrant) -> Option<PermissionRec> {
        let principal = self.principal(&p.principal, true)?;
        match (p.permission.needs_entity(), p.entity) {
            (true, None) | (false, Some(_)) => return None,
            (true, Some(e)) if p.permission == Permission::View && e.manage_only() => return None,
            _ => {}
        }
        let org = match &p.on {
            None => None,
            Some(r) => match self.engine.node_row(r)? {
                NodeRef::Org(o) => Some(o),
                _ => return None,
            },
        };
        Some(PermissionRec {
            principal,
            permission: p.permission,
            entity: p.entity,
            org,
        })
    }
}

/// Row `at` replaced by `new`, unless it is `old` already.
fn one_row<T: PartialEq>(at: u32, old: &T, new: T) -> Option<Splice<T>> {
    (new != *old).then(|| Splice {
        at,
        remove: 1,
        insert: vec![new],
    })
}

/// The member list of row `row` replaced whole by `new`, unless it is
/// `old` already (lists are short; the edit stays small).
fn whole_list<M: PartialEq>(row: u32, old: &[M], new: Vec<M>) -> Option<MemberEdit<M>> {
    (new != old).then(|| MemberEdit {
        row,
        splices: vec![Splice {
            at: 0,
            remove: old.len() as u32,
            insert: new,
        }],
    })
}

/// The whole body `engine` was made from, `dir` being its directory: the
/// engine's tables (strings in the order its deltas appended them, which
/// a compilation would not reproduce) and the directory's grants resolved
/// against them — what a listener that joins late must start from for
/// the deltas after it to apply. `None` if a grant does not resolve (it
/// always does for a head).
pub(crate) fn whole_body(engine: &Engine, dir: &Directory) -> Option<Body> {
    let planner = Planner::new(engine);
    let grants = dir
        .grants
        .iter()
        .map(|g| planner.grant(g))
        .collect::<Option<Vec<_>>>()?;
    let mut body = engine.tables().clone();
    body.grants = grants;
    Some(body)
}

/// Where `item` is in `rows`, ascending.
fn positions<T: PartialEq>(rows: &[T], item: &T) -> Vec<usize> {
    rows.iter()
        .enumerate()
        .filter(|(_, x)| *x == item)
        .map(|(i, _)| i)
        .collect()
}

fn same_opt(t: &portcullis_snapshots::body::Body, s: Option<Str>, text: &Option<String>) -> bool {
    match (s, text) {
        (None, None) => true,
        (Some(s), Some(x)) => t.str(s) == x,
        _ => false,
    }
}

fn same_optstr(t: &portcullis_snapshots::body::Body, s: OptStr, text: &Option<String>) -> bool {
    same_opt(t, s.get(), text)
}
