//! Which records a principal's view holds — the definition in
//! `policy-wasm/README.md#views`, computed from the engine's indexes.
//!
//! Candidates are found by walking down from what the principal holds
//! (its grants' targets, its permissions' organizations, its
//! administrator role's reach, its teams), then kept only if some action
//! of the principal on them can be allowed. What is kept is closed under
//! ancestors, so the cascade and `list` work in the view as in the
//! directory.
#![allow(
    clippy::indexing_slicing,
    reason = "every index in a loaded body was checked when it was decoded (snapshots::integrity)"
)]

use portcullis_snapshots::body::{NodeRef, PrincipalRef, RoleRef};
use portcullis_snapshots::vocabulary::{
    AdminRole, BuiltinRole, DefaultAccess, EntityType, Permission,
};
type FxHashMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

use crate::action::{Action, TeamAction};
use crate::facts::{Facts, Grant};
use crate::index::Indexed;
use crate::request::{Subject, Target, applies};
use crate::rules::grants_allow;
use crate::tree::Tree;

/// What to collect below an organization.
const ORGS: u8 = 1;
/// Environments, catalogs and their objects.
const DATA: u8 = 2;
/// Teams and their objects.
const TEAMS: u8 = 4;
const ALL: u8 = ORGS | DATA | TEAMS;

/// The records of one principal's view, as ascending indices of the
/// directory (so the view keeps the directory's order).
#[derive(Debug, Default)]
pub(crate) struct Reach {
    pub orgs: Vec<u32>,
    pub envs: Vec<u32>,
    pub catalogs: Vec<u32>,
    pub objects: Vec<u32>,
    pub teams: Vec<u32>,
    /// Users besides the stand-in: the principal and those it can act on.
    pub users: Vec<u32>,
    /// The principal, then the groups it is in: whose grants and
    /// permissions the view holds.
    pub holders: Vec<PrincipalRef>,
    /// Where the view's other people come from.
    pub scope: ViewScope,
}

/// Where a view's other people come from: which users' changes can change
/// it (a gateway keeps views a push did not reach, `Engine::view_changed_by`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewScope {
    /// The principal, if it is a user.
    pub user: Option<u32>,
    /// Every user (an owner's or a super administrator's view).
    pub all_users: bool,
    /// Organizations whose users, and their subtrees', the view may hold.
    pub user_orgs: Vec<u32>,
    /// Teams whose members the view may hold, ascending: the view lists
    /// their members (those it holds); other teams list only the principal.
    pub user_teams: Vec<u32>,
}

/// Nodes found so far, per kind, unsorted and with repeats.
#[derive(Default)]
struct Found {
    orgs: Vec<u32>,
    envs: Vec<u32>,
    catalogs: Vec<u32>,
    objects: Vec<u32>,
    teams: Vec<u32>,
}

impl Found {
    fn env(&mut self, tree: &Tree, e: u32) {
        self.envs.push(e);
        for &c in tree.catalogs(e) {
            self.catalog(tree, c);
        }
    }

    fn catalog(&mut self, tree: &Tree, c: u32) {
        self.catalogs.push(c);
        self.objects.extend_from_slice(tree.catalog_objects(c));
    }

    fn team(&mut self, tree: &Tree, t: u32) {
        self.teams.push(t);
        self.objects.extend_from_slice(tree.team_objects(t));
    }
}

/// Walks down from roots, expanding each organization once per kind of
/// record (roots overlap: a grant on the domain and one on an org below).
struct Walker<'t> {
    tree: &'t Tree,
    expanded: FxHashMap<u32, u8>,
    found: Found,
}

impl Walker<'_> {
    fn walk(&mut self, root: NodeRef, what: u8) {
        let tree = self.tree;
        match root {
            NodeRef::Org(o) => {
                let mut stack = vec![(o, what)];
                while let Some((org, want)) = stack.pop() {
                    let done = self.expanded.entry(org).or_insert(0);
                    let new = want & !*done;
                    if new == 0 {
                        // Expanded before with these kinds, and so was
                        // everything below it.
                        continue;
                    }
                    *done |= new;
                    if new & ORGS != 0 {
                        self.found.orgs.push(org);
                    }
                    if new & DATA != 0 {
                        for &e in tree.envs(org) {
                            self.found.env(tree, e);
                        }
                    }
                    if new & TEAMS != 0 {
                        for &t in tree.teams(org) {
                            self.found.team(tree, t);
                        }
                    }
                    stack.extend(tree.org_children(org).iter().map(|&c| (c, new)));
                }
            }
            NodeRef::Env(e) => {
                if what & DATA != 0 {
                    self.found.env(tree, e);
                } else {
                    self.found.envs.push(e);
                }
            }
            NodeRef::Catalog(c) => self.found.catalog(tree, c),
            NodeRef::Object(o) => self.found.objects.push(o),
            NodeRef::Team(t) => self.found.team(tree, t),
        }
    }
}

/// `v` ascending without repeats. A view holding a large share of a kind
/// of record (an owner's view holds every user) is sorted through a
/// bitmap of that kind, in linear time; small ones by sorting.
fn sorted(mut v: Vec<u32>, universe: usize) -> Vec<u32> {
    if v.len() < universe / 64 || v.is_sorted_by(|a, b| a < b) {
        v.sort_unstable();
        v.dedup();
        return v;
    }
    let mut bits = vec![0u64; universe.div_ceil(64)];
    for &i in &v {
        if let Some(w) = bits.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }
    v.clear();
    for (w, &word) in bits.iter().enumerate() {
        let mut word = word;
        while word != 0 {
            v.push(w as u32 * 64 + word.trailing_zeros());
            word &= word - 1;
        }
    }
    v
}

fn owner_level(role: Option<AdminRole>) -> bool {
    matches!(role, Some(AdminRole::Owner | AdminRole::SuperAdministrator))
}

/// Whom a view is cut for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Whom {
    User(u32),
    Service(u32),
}

impl Whom {
    pub(crate) fn principal(self) -> PrincipalRef {
        match self {
            Whom::User(u) => PrincipalRef::User(u),
            Whom::Service(s) => PrincipalRef::Service(s),
        }
    }

    fn subject(self) -> Subject {
        match self {
            Whom::User(u) => Subject::User(u),
            Whom::Service(s) => Subject::Service(s),
        }
    }
}

/// Computes the reach of `whom`.
pub(crate) fn reach(f: &Indexed, whom: Whom) -> Reach {
    let b = f.body();
    let tree = f.tree();
    let subject = whom.subject();
    let actor = subject.user();
    let me = whom.principal();
    let mut holders = vec![me];
    holders.extend(f.groups_of(me).map(PrincipalRef::Group));
    let grants: Vec<Grant> = holders.iter().flat_map(|&h| f.grants_of(h)).collect();
    let permissions: Vec<u32> = holders.iter().flat_map(|&h| f.permissions_of(h)).collect();
    let home_org = match subject {
        Subject::Service(s) => b.service_accounts[s as usize].org,
        _ => actor.map_or(b.domain, |u| b.users[u as usize].org),
    };
    let admin_role = actor.and_then(|u| b.users[u as usize].admin_role);
    let sp_role = actor.and_then(|u| b.users[u as usize].sp_role);

    // 1. Candidate nodes, walking down from what the principal holds.
    let mut w = Walker {
        tree,
        expanded: FxHashMap::default(),
        found: Found::default(),
    };
    if owner_level(admin_role) {
        w.walk(NodeRef::Org(b.domain), ALL);
    } else if admin_role.is_some() {
        w.walk(NodeRef::Org(home_org), ALL);
    }
    if sp_role.is_some() {
        w.walk(NodeRef::Org(b.domain), ORGS);
    }
    if let Subject::Service(s) = subject
        && b.service_accounts[s as usize].default_access == DefaultAccess::Reader
    {
        w.walk(NodeRef::Org(home_org), ORGS | DATA);
    }
    for g in &grants {
        let what = match g.role {
            RoleRef::Builtin(BuiltinRole::Admin) => ALL,
            RoleRef::Builtin(_) => ORGS | DATA,
            RoleRef::Custom(_) => ORGS | TEAMS,
        };
        w.walk(g.on, what);
        // Any role opens the organizations around where it is held.
        w.walk(NodeRef::Org(f.pos(g.on).org), ORGS);
    }
    for &i in &permissions {
        let p = &b.permissions[i as usize];
        let what = match (p.permission, p.entity) {
            (Permission::SuperAdmin, _) => ALL,
            (Permission::Manage, Some(EntityType::Users)) => ORGS | TEAMS,
            _ => ORGS,
        };
        w.walk(NodeRef::Org(p.org.unwrap_or(b.domain)), what);
    }
    if let Some(u) = actor {
        for t in f.teams_of(u) {
            w.walk(NodeRef::Team(t), TEAMS);
        }
    }
    let found = w.found;

    // 2. Keep what the principal can act on.
    // The actions that apply to each kind of node (applicability depends
    // on the kind only), most often allowed first.
    let applicable = |n: NodeRef| -> Vec<Action> {
        Action::all()
            .filter(|&a| applies(a, Target::Node(n)))
            .collect()
    };
    let per_kind = [
        applicable(NodeRef::Org(0)),
        applicable(NodeRef::Env(0)),
        applicable(NodeRef::Catalog(0)),
        applicable(NodeRef::Object(0)),
        applicable(NodeRef::Team(0)),
    ];
    let acts = |n: NodeRef| {
        let kind = match n {
            NodeRef::Org(_) => 0,
            NodeRef::Env(_) => 1,
            NodeRef::Catalog(_) => 2,
            NodeRef::Object(_) => 3,
            NodeRef::Team(_) => 4,
        };
        per_kind[kind]
            .iter()
            .any(|&a| grants_allow(f, subject, a, Target::Node(n)))
    };
    let keep = |v: Vec<u32>, node: fn(u32) -> NodeRef, universe: usize| -> Vec<u32> {
        sorted(v, universe)
            .into_iter()
            .filter(|&i| acts(node(i)))
            .collect()
    };
    let mut orgs = keep(found.orgs, NodeRef::Org, b.orgs.len());
    let mut envs = keep(found.envs, NodeRef::Env, b.envs.len());
    let mut catalogs = keep(found.catalogs, NodeRef::Catalog, b.catalogs.len());
    let mut objects = keep(found.objects, NodeRef::Object, b.objects.len());
    let mut teams = keep(found.teams, NodeRef::Team, b.teams.len());

    // 3. Users it can act on, and teams whose members it can act on.
    let mut users: Vec<u32> = actor.into_iter().collect();
    let mut scope = ViewScope {
        user: actor,
        all_users: owner_level(admin_role),
        ..ViewScope::default()
    };
    let mut subtree_users = |org: u32, with_owners: bool, users: &mut Vec<u32>| {
        scope.user_orgs.push(org);
        tree.orgs_within(org, |o| {
            users.extend(
                tree.users(o)
                    .iter()
                    .filter(|&&u| with_owners || !owner_level(b.users[u as usize].admin_role)),
            );
        });
    };
    if owner_level(admin_role) {
        users.extend(0..b.users.len() as u32);
    } else {
        if admin_role.is_some() {
            subtree_users(home_org, false, &mut users);
        }
        for &i in &permissions {
            let p = &b.permissions[i as usize];
            let org = p.org.unwrap_or(b.domain);
            match (p.permission, p.entity) {
                (Permission::SuperAdmin, _) => subtree_users(org, true, &mut users),
                (Permission::Manage, Some(EntityType::Users)) => {
                    subtree_users(org, false, &mut users)
                }
                _ => {}
            }
        }
        for g in &grants {
            let user_scope = || match g.role {
                RoleRef::Custom(r) => b.custom_roles[r as usize]
                    .scopes
                    .iter()
                    .any(|&s| b.str(s).starts_with("user:")),
                RoleRef::Builtin(_) => false,
            };
            match (g.role, g.on) {
                (RoleRef::Builtin(BuiltinRole::Admin), NodeRef::Org(o)) => {
                    subtree_users(o, false, &mut users)
                }
                (RoleRef::Custom(_), NodeRef::Org(o)) if user_scope() => {
                    subtree_users(o, false, &mut users)
                }
                (RoleRef::Custom(_), NodeRef::Team(t))
                    if user_scope() && actor.is_some_and(|u| f.in_team(t, u)) =>
                {
                    let team = &b.teams[t as usize];
                    users.extend(
                        std::iter::once(team.owner)
                            .chain(team.members.iter().copied())
                            .filter(|&u| !owner_level(b.users[u as usize].admin_role)),
                    );
                    scope.user_teams.push(t);
                }
                _ => {}
            }
        }
    }
    // Teams whose members it may remove: each member is a resource it acts
    // on (the owner never is: an owner cannot be removed).
    for &t in &teams {
        let team = &b.teams[t as usize];
        let target = Target::TeamMember {
            team: t,
            user: team.owner,
        };
        if grants_allow(f, subject, Action::Team(TeamAction::RemoveMember), target) {
            users.extend(team.members.iter().filter(|&&m| m != team.owner));
            scope.user_teams.push(t);
        }
    }
    let users = sorted(users, b.users.len());
    scope.user_teams = sorted(std::mem::take(&mut scope.user_teams), b.teams.len());

    // 4. Everything the kept records refer to, and every ancestor.
    for g in &grants {
        match g.on {
            NodeRef::Org(i) => orgs.push(i),
            NodeRef::Env(i) => envs.push(i),
            NodeRef::Catalog(i) => catalogs.push(i),
            NodeRef::Object(i) => objects.push(i),
            NodeRef::Team(i) => teams.push(i),
        }
    }
    for &i in &permissions {
        orgs.push(b.permissions[i as usize].org.unwrap_or(b.domain));
    }
    orgs.push(home_org);
    orgs.extend(users.iter().map(|&u| b.users[u as usize].org));
    let objects = sorted(objects, b.objects.len());
    for &o in &objects {
        match b.objects[o as usize].parent {
            NodeRef::Catalog(c) => catalogs.push(c),
            NodeRef::Team(t) => teams.push(t),
            _ => {}
        }
    }
    let catalogs = sorted(catalogs, b.catalogs.len());
    envs.extend(catalogs.iter().map(|&c| b.catalogs[c as usize].env));
    let envs = sorted(envs, b.envs.len());
    let teams = sorted(teams, b.teams.len());
    orgs.extend(envs.iter().map(|&e| b.envs[e as usize].org));
    orgs.extend(teams.iter().map(|&t| b.teams[t as usize].org));
    let mut with_ancestors = Vec::with_capacity(orgs.len());
    for o in sorted(orgs, b.orgs.len()) {
        let mut cur = Some(o);
        // The tree is acyclic (checked at decode); the bound is belt and braces.
        for _ in 0..=b.orgs.len() {
            let Some(x) = cur else { break };
            with_ancestors.push(x);
            cur = b.orgs[x as usize].parent;
        }
    }
    Reach {
        orgs: sorted(with_ancestors, b.orgs.len()),
        envs,
        catalogs,
        objects,
        teams,
        users,
        holders,
        scope,
    }
}
