//! The resource tree read downwards: the children of every node, and the
//! users sitting in each organization. Checks never need it (they walk
//! up, from a resource to its ancestors); cutting a principal's view walks
//! down from what it holds, so it is built the first time a view is cut.
#![allow(
    clippy::indexing_slicing,
    reason = "every index in a loaded body was checked when it was decoded (snapshots::integrity)"
)]

use portcullis_snapshots::body::{Body, NodeRef};

use crate::csr::Csr;

/// Children lists, one compressed table per parent/child kind.
#[derive(Clone)]
pub(crate) struct Tree {
    org_children: Csr,
    org_envs: Csr,
    org_teams: Csr,
    org_users: Csr,
    env_catalogs: Csr,
    catalog_objects: Csr,
    team_objects: Csr,
}

impl Tree {
    pub(crate) fn build(b: &Body) -> Tree {
        let objects_below = |want: fn(NodeRef) -> Option<u32>, keys: usize| {
            Csr::build(
                keys,
                b.objects
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, o)| want(o.parent).map(|k| (k, i as u32))),
            )
        };
        Tree {
            org_children: Csr::build(
                b.orgs.len(),
                b.orgs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, o)| o.parent.map(|p| (p, i as u32))),
            ),
            org_envs: Csr::build(
                b.orgs.len(),
                b.envs.iter().enumerate().map(|(i, e)| (e.org, i as u32)),
            ),
            org_teams: Csr::build(
                b.orgs.len(),
                b.teams.iter().enumerate().map(|(i, t)| (t.org, i as u32)),
            ),
            org_users: Csr::build(
                b.orgs.len(),
                b.users.iter().enumerate().map(|(i, u)| (u.org, i as u32)),
            ),
            env_catalogs: Csr::build(
                b.envs.len(),
                b.catalogs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.env, i as u32)),
            ),
            catalog_objects: objects_below(
                |n| match n {
                    NodeRef::Catalog(c) => Some(c),
                    _ => None,
                },
                b.catalogs.len(),
            ),
            team_objects: objects_below(
                |n| match n {
                    NodeRef::Team(t) => Some(t),
                    _ => None,
                },
                b.teams.len(),
            ),
        }
    }

    /// `org` and every organization below it (iterative: no recursion depth).
    pub(crate) fn orgs_within(&self, org: u32, mut visit: impl FnMut(u32)) {
        let mut stack = vec![org];
        while let Some(o) = stack.pop() {
            visit(o);
            stack.extend_from_slice(self.org_children.get(o));
        }
    }

    /// Organizations directly below `org`.
    pub(crate) fn org_children(&self, org: u32) -> &[u32] {
        self.org_children.get(org)
    }

    /// Environments of `org` (not of the organizations below it).
    pub(crate) fn envs(&self, org: u32) -> &[u32] {
        self.org_envs.get(org)
    }

    /// Teams of `org` (not of the organizations below it).
    pub(crate) fn teams(&self, org: u32) -> &[u32] {
        self.org_teams.get(org)
    }

    /// Users whose organization is `org` (not one below it).
    pub(crate) fn users(&self, org: u32) -> &[u32] {
        self.org_users.get(org)
    }

    /// Catalogs of environment `env`.
    pub(crate) fn catalogs(&self, env: u32) -> &[u32] {
        self.env_catalogs.get(env)
    }

    /// Objects below catalog `c`.
    pub(crate) fn catalog_objects(&self, c: u32) -> &[u32] {
        self.catalog_objects.get(c)
    }

    /// Objects below team `t`.
    pub(crate) fn team_objects(&self, t: u32) -> &[u32] {
        self.team_objects.get(t)
    }
}
