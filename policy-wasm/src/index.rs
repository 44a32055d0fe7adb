//! The indexes built once when a snapshot is loaded, so that a check costs
//! little more than walking a few short lists.
//!
//! Lookup tables hold only record indices and hash the strings already in
//! the body (no second copy of 100k usernames); per-principal lists are CSR
//! arrays (one offsets vector, one items vector); the org tree is numbered
//! by an Euler tour so "is this org inside that one" is two comparisons.
#![allow(
    clippy::indexing_slicing,
    reason = "every index in a loaded body was checked when it was decoded (snapshots::integrity): the engine indexes without checks of its own, on the hot path"
)]

use std::hash::BuildHasher;

use hashbrown::HashTable;
use portcullis_snapshots::body::{Body, GrantRec, NodeRef, PrincipalRef, Str};
use portcullis_snapshots::vocabulary::AdminRole;
use rustc_hash::FxBuildHasher;

#[cfg(not(target_arch = "wasm32"))]
use std::sync::OnceLock;

use portcullis_snapshots::view::ViewFacts;

use crate::csr::Csr;
use crate::facts::{Facts, Grant};
use crate::lists::Lists;
#[cfg(not(target_arch = "wasm32"))]
use crate::tree::Tree;

fn hash(s: &str) -> u64 {
    FxBuildHasher.hash_one(s)
}

/// Record index by id string, hashing strings that live in the body.
#[derive(Clone)]
struct Lookup {
    table: HashTable<u32>,
}

impl Lookup {
    fn build(b: &Body, ids: impl Iterator<Item = Str>) -> Self {
        let ids: Vec<Str> = ids.collect();
        let mut table = HashTable::with_capacity(ids.len());
        for (i, &s) in ids.iter().enumerate() {
            // An empty id names nothing: it is a view's stand-in for a
            // user outside it (a directory never has one).
            if b.str(s).is_empty() {
                continue;
            }
            // The closure rehashes existing entries if the table grows.
            table.insert_unique(hash(b.str(s)), i as u32, |&j| hash(b.str(ids[j as usize])));
        }
        Lookup { table }
    }

    fn get(&self, b: &Body, key: &str, id_of: impl Fn(u32) -> Str) -> Option<u32> {
        self.table
            .find(hash(key), |&i| b.str(id_of(i)) == key)
            .copied()
    }
}

/// Grants of each principal kind, stored contiguously per principal so a
/// check reads one short run of memory instead of scattered records. Each
/// is tagged with its row in the snapshot's grant table: lists are in row
/// order, and a delta names grants by row.
#[derive(Clone)]
pub(crate) struct GrantsByPrincipal {
    pub(crate) users: Lists<Grant>,
    pub(crate) services: Lists<Grant>,
    pub(crate) groups: Lists<Grant>,
}

impl GrantsByPrincipal {
    fn build(b: &Body, grants: &[GrantRec]) -> Self {
        let held = |want: fn(PrincipalRef) -> Option<u32>, keys: usize| {
            Lists::build_tagged(
                keys,
                grants.iter().enumerate().filter_map(move |(row, g)| {
                    want(g.principal).map(|k| {
                        (
                            k,
                            Grant {
                                role: g.role,
                                on: g.on,
                            },
                            row as u32,
                        )
                    })
                }),
                true,
            )
        };
        GrantsByPrincipal {
            users: held(
                |p| match p {
                    PrincipalRef::User(u) => Some(u),
                    _ => None,
                },
                b.users.len(),
            ),
            services: held(
                |p| match p {
                    PrincipalRef::Service(s) => Some(s),
                    _ => None,
                },
                b.service_accounts.len(),
            ),
            groups: held(
                |p| match p {
                    PrincipalRef::Group(g) => Some(g),
                    _ => None,
                },
                b.groups.len(),
            ),
        }
    }

    /// The list of `p` and its key in it.
    pub(crate) fn of(&self, p: PrincipalRef) -> (&Lists<Grant>, u32) {
        match p {
            PrincipalRef::User(u) => (&self.users, u),
            PrincipalRef::Service(s) => (&self.services, s),
            PrincipalRef::Group(g) => (&self.groups, g),
        }
    }

    /// The list of `p` and its key in it, to edit.
    #[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
    pub(crate) fn of_mut(&mut self, p: PrincipalRef) -> (&mut Lists<Grant>, u32) {
        match p {
            PrincipalRef::User(u) => (&mut self.users, u),
            PrincipalRef::Service(s) => (&mut self.services, s),
            PrincipalRef::Group(g) => (&mut self.groups, g),
        }
    }

    pub(crate) fn get(&self, p: PrincipalRef) -> &[Grant] {
        let (lists, k) = self.of(p);
        lists.get(k)
    }
}

/// Grants or permissions of each principal kind.
#[derive(Clone)]
pub(crate) struct ByPrincipal {
    users: Csr,
    services: Csr,
    groups: Csr,
}

impl ByPrincipal {
    pub(crate) fn build(b: &Body, principals: impl Iterator<Item = PrincipalRef> + Clone) -> Self {
        let pick = |want: fn(PrincipalRef) -> Option<u32>| {
            principals
                .clone()
                .enumerate()
                .filter_map(move |(i, p)| want(p).map(|k| (k, i as u32)))
        };
        ByPrincipal {
            users: Csr::build(
                b.users.len(),
                pick(|p| match p {
                    PrincipalRef::User(u) => Some(u),
                    _ => None,
                }),
            ),
            services: Csr::build(
                b.service_accounts.len(),
                pick(|p| match p {
                    PrincipalRef::Service(s) => Some(s),
                    _ => None,
                }),
            ),
            groups: Csr::build(
                b.groups.len(),
                pick(|p| match p {
                    PrincipalRef::Group(g) => Some(g),
                    _ => None,
                }),
            ),
        }
    }

    fn get(&self, p: PrincipalRef) -> &[u32] {
        match p {
            PrincipalRef::User(u) => self.users.get(u),
            PrincipalRef::Service(s) => self.services.get(s),
            PrincipalRef::Group(g) => self.groups.get(g),
        }
    }
}

/// A body with its indexes.
#[derive(Clone)]
pub struct Indexed {
    pub(crate) body: Body,
    users: Lookup,
    services: Lookup,
    pub(crate) api_keys: HashTable<u32>,
    orgs: Lookup,
    envs: Lookup,
    catalogs: Lookup,
    objects: Lookup,
    teams: Lookup,
    pub(crate) grants: GrantsByPrincipal,
    pub(crate) permissions: ByPrincipal,
    pub(crate) user_groups: Lists<u32>,
    pub(crate) service_groups: Lists<u32>,
    /// Teams of each user (member or owner), sorted.
    pub(crate) user_teams: Lists<u32>,
    /// Euler-tour entry and exit numbers of each org.
    org_in: Vec<u32>,
    org_out: Vec<u32>,
    pub(crate) team_occupied: Vec<bool>,
    pub(crate) owners: usize,
    /// What a view states about the whole directory, if this is a view.
    pub(crate) view: Option<ViewFacts>,
    /// Children of every node, built the first time a view is cut (the
    /// WebAssembly builds never cut views).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) tree: OnceLock<Tree>,
}

/// Compares two key hashes in time independent of where they differ, so
/// response timing says nothing about how close a presented key came.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimizer from turning the fold back into an early exit.
    std::hint::black_box(diff) == 0
}

fn key_hash(k: &[u8; 32]) -> u64 {
    // SHA-256 output is uniform: its first eight bytes are a fine hash.
    let mut h = [0u8; 8];
    h.copy_from_slice(&k[..8]);
    u64::from_le_bytes(h)
}

/// API key index by the key's SHA-256.
pub(crate) fn api_key_table(b: &Body) -> HashTable<u32> {
    let mut api_keys = HashTable::with_capacity(b.api_keys.len());
    for (i, k) in b.api_keys.iter().enumerate() {
        api_keys.insert_unique(key_hash(&k.sha256), i as u32, |&j| {
            key_hash(&b.api_keys[j as usize].sha256)
        });
    }
    api_keys
}

impl Indexed {
    /// Indexes a decoded (integrity-checked) body. The body's grant table
    /// moves into the per-principal index (it is the largest table; keeping
    /// both would double it).
    pub fn new(mut body: Body, view: Option<ViewFacts>) -> Self {
        let grant_table = std::mem::take(&mut body.grants);
        let b = &body;
        let users = Lookup::build(b, b.users.iter().map(|u| u.username));
        let services = Lookup::build(b, b.service_accounts.iter().map(|s| s.id));
        let orgs = Lookup::build(b, b.orgs.iter().map(|x| x.id));
        let envs = Lookup::build(b, b.envs.iter().map(|x| x.id));
        let catalogs = Lookup::build(b, b.catalogs.iter().map(|x| x.id));
        let objects = Lookup::build(b, b.objects.iter().map(|x| x.id));
        let teams = Lookup::build(b, b.teams.iter().map(|x| x.id));
        let api_keys = api_key_table(b);
        let grants = GrantsByPrincipal::build(b, &grant_table);
        drop(grant_table);
        let permissions = ByPrincipal::build(b, b.permissions.iter().map(|p| p.principal));
        let memberships = b
            .groups
            .iter()
            .enumerate()
            .flat_map(|(g, grp)| grp.members.iter().map(move |m| (*m, g as u32)));
        let user_groups = Lists::build(
            b.users.len(),
            memberships.clone().filter_map(|(m, g)| match m {
                PrincipalRef::User(u) => Some((u, g)),
                _ => None,
            }),
        );
        let service_groups = Lists::build(
            b.service_accounts.len(),
            memberships.filter_map(|(m, g)| match m {
                PrincipalRef::Service(s) => Some((s, g)),
                _ => None,
            }),
        );
        let user_teams = Lists::build(
            b.users.len(),
            b.teams.iter().enumerate().flat_map(|(t, team)| {
                let owner = team.owner;
                std::iter::once(owner)
                    .chain(team.members.iter().copied().filter(move |&m| m != owner))
                    .map(move |u| (u, t as u32))
            }),
        );
        let (org_in, org_out) = euler_tour(b);
        let mut team_occupied: Vec<bool> = b
            .teams
            .iter()
            .map(|t| t.members.iter().any(|&m| m != t.owner))
            .collect();
        for o in &b.objects {
            if let NodeRef::Team(t) = o.parent {
                team_occupied[t as usize] = true;
            }
        }
        let owners = b
            .users
            .iter()
            .filter(|u| u.admin_role == Some(AdminRole::Owner))
            .count();
        Indexed {
            users,
            services,
            api_keys,
            orgs,
            envs,
            catalogs,
            objects,
            teams,
            grants,
            permissions,
            user_groups,
            service_groups,
            user_teams,
            org_in,
            org_out,
            team_occupied,
            owners,
            view,
            #[cfg(not(target_arch = "wasm32"))]
            tree: OnceLock::new(),
            body,
        }
    }

    /// Indexes user `row`, just appended to the body: its name in the
    /// lookup, and an empty list of groups, teams and grants.
    #[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
    pub(crate) fn add_user(&mut self, row: u32) {
        let b = &self.body;
        let name = |j: u32| b.str(b.users[j as usize].username);
        self.users
            .table
            .insert_unique(hash(name(row)), row, |&j| hash(name(j)));
        self.user_groups.push_key();
        self.user_teams.push_key();
        self.grants.users.push_key();
    }

    /// Number of role grants (the body's table moved into the index).
    pub(crate) fn grant_count(&self) -> usize {
        self.grants.users.count() + self.grants.services.count() + self.grants.groups.count()
    }

    /// Everything the index holds, as text, list by list in key order
    /// (not where each list sits in memory): two indexes that answer
    /// alike print alike. For tests of edits in place (`patch.rs`).
    pub(crate) fn logical_state(&self) -> String {
        use std::fmt::Write;
        let b = &self.body;
        let mut out = format!("{b:?}\n");
        let lists = |out: &mut String, name: &str, l: &Lists<u32>| {
            for k in 0..l.keys() as u32 {
                let _ = writeln!(out, "{name} {k} {:?}", l.get(k));
            }
        };
        lists(&mut out, "user_groups", &self.user_groups);
        lists(&mut out, "service_groups", &self.service_groups);
        lists(&mut out, "user_teams", &self.user_teams);
        for (name, l) in [
            ("grants user", &self.grants.users),
            ("grants service", &self.grants.services),
            ("grants group", &self.grants.groups),
        ] {
            for k in 0..l.keys() as u32 {
                let _ = writeln!(out, "{name} {k} {:?} rows {:?}", l.get(k), l.tags(k));
            }
        }
        for (i, k) in b.api_keys.iter().enumerate() {
            let _ = writeln!(out, "api key {i} {:?}", self.api_key(&k.sha256));
        }
        for (kind, n) in [
            (0, b.users.len()),
            (1, b.service_accounts.len()),
            (2, b.groups.len()),
        ] {
            for k in 0..n as u32 {
                let p = match kind {
                    0 => PrincipalRef::User(k),
                    1 => PrincipalRef::Service(k),
                    _ => PrincipalRef::Group(k),
                };
                let _ = writeln!(out, "permissions {p:?} {:?}", self.permissions.get(p));
            }
        }
        let _ = writeln!(
            out,
            "owners {} occupied {:?} in {:?} out {:?}",
            self.owners, self.team_occupied, self.org_in, self.org_out
        );
        out
    }

    /// The facts a view states, if this body is a principal's view.
    pub(crate) fn view_facts(&self) -> Option<&ViewFacts> {
        self.view.as_ref()
    }

    #[cfg(not(target_arch = "wasm32"))]
    /// The children of every node (built on first use: only cutting views
    /// needs them).
    pub(crate) fn tree(&self) -> &Tree {
        self.tree.get_or_init(|| Tree::build(&self.body))
    }
}

/// Entry/exit numbering of the org tree (iterative: no recursion depth).
fn euler_tour(b: &Body) -> (Vec<u32>, Vec<u32>) {
    let n = b.orgs.len();
    let children = Csr::build(
        n,
        b.orgs
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.parent.map(|p| (p, i as u32))),
    );
    let mut tin = vec![0u32; n];
    let mut tout = vec![0u32; n];
    let mut clock = 0u32;
    // (org, next child position)
    let mut stack: Vec<(u32, usize)> = vec![(b.domain, 0)];
    if n > 0 {
        tin[b.domain as usize] = clock;
    }
    while let Some(&mut (o, ref mut next)) = stack.last_mut() {
        let kids = children.get(o);
        if let Some(&c) = kids.get(*next) {
            *next += 1;
            clock += 1;
            tin[c as usize] = clock;
            stack.push((c, 0));
        } else {
            tout[o as usize] = clock;
            stack.pop();
        }
    }
    (tin, tout)
}

impl Facts for Indexed {
    fn body(&self) -> &Body {
        &self.body
    }

    fn user(&self, name: &str) -> Option<u32> {
        let b = &self.body;
        self.users.get(b, name, |i| b.users[i as usize].username)
    }

    fn service(&self, id: &str) -> Option<u32> {
        let b = &self.body;
        self.services
            .get(b, id, |i| b.service_accounts[i as usize].id)
    }

    fn api_key(&self, sha256: &[u8; 32]) -> Option<u32> {
        let b = &self.body;
        self.api_keys
            .find(key_hash(sha256), |&i| {
                ct_eq(&b.api_keys[i as usize].sha256, sha256)
            })
            .copied()
    }

    fn node(&self, kind: &str, id: &str) -> Option<NodeRef> {
        let b = &self.body;
        match kind {
            "org" => self
                .orgs
                .get(b, id, |i| b.orgs[i as usize].id)
                .map(NodeRef::Org),
            "env" => self
                .envs
                .get(b, id, |i| b.envs[i as usize].id)
                .map(NodeRef::Env),
            "catalog" => self
                .catalogs
                .get(b, id, |i| b.catalogs[i as usize].id)
                .map(NodeRef::Catalog),
            "object" => self
                .objects
                .get(b, id, |i| b.objects[i as usize].id)
                .map(NodeRef::Object),
            "team" => self
                .teams
                .get(b, id, |i| b.teams[i as usize].id)
                .map(NodeRef::Team),
            _ => None,
        }
    }

    fn org_within(&self, org: u32, ancestor: u32) -> bool {
        let (o, a) = (org as usize, ancestor as usize);
        self.org_in[a] <= self.org_in[o] && self.org_out[o] <= self.org_out[a]
    }

    fn grants_of(&self, p: PrincipalRef) -> impl Iterator<Item = Grant> + '_ {
        self.grants.get(p).iter().copied()
    }

    fn permissions_of(&self, p: PrincipalRef) -> impl Iterator<Item = u32> + '_ {
        self.permissions.get(p).iter().copied()
    }

    fn groups_of(&self, p: PrincipalRef) -> impl Iterator<Item = u32> + '_ {
        match p {
            PrincipalRef::User(u) => self.user_groups.get(u),
            PrincipalRef::Service(s) => self.service_groups.get(s),
            PrincipalRef::Group(_) => &[],
        }
        .iter()
        .copied()
    }

    fn in_team(&self, team: u32, user: u32) -> bool {
        self.user_teams.get(user).contains(&team)
    }

    fn teams_of(&self, user: u32) -> impl Iterator<Item = u32> + '_ {
        self.user_teams.get(user).iter().copied()
    }

    fn team_occupied(&self, team: u32) -> bool {
        self.team_occupied
            .get(team as usize)
            .copied()
            .unwrap_or(false)
    }

    fn owner_count(&self) -> usize {
        self.owners
    }

    fn sole_owner(&self, u: u32) -> bool {
        match &self.view {
            Some(v) => v.is_sole_owner(u),
            None => crate::facts::sole_owner_in_directory(self, u),
        }
    }
}
