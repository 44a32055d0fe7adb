//! What the rules need to know about a directory, behind one trait with two
//! implementations: [`crate::index::Indexed`] (built once at load, what the
//! engine uses) and [`Naive`] (linear scans over the body: deliberately
//! simple, the reference the property tests compare the indexes against).
#![allow(
    clippy::indexing_slicing,
    reason = "every index in a loaded body was checked when it was decoded (snapshots::integrity): the engine indexes without checks of its own, on the hot path"
)]

use portcullis_snapshots::body::{Body, NodeRef, PrincipalRef, RoleRef, Str};

/// A grant as the rules see it: the holder is implied by how it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The role.
    pub role: RoleRef,
    /// Where it holds (and below).
    pub on: NodeRef,
}

/// Where a node sits in the tree: each field is the ancestor of that kind
/// (the node itself included), so "a grant on N applies at P" is one compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    /// The organization the node is in (or is).
    pub org: u32,
    /// The environment, for environments, catalogs and their objects.
    pub env: Option<u32>,
    /// The catalog, for catalogs and their objects.
    pub catalog: Option<u32>,
    /// The team, for teams and their objects.
    pub team: Option<u32>,
    /// The object, for objects.
    pub object: Option<u32>,
}

/// Facts about one directory.
pub trait Facts {
    /// The decoded snapshot body.
    fn body(&self) -> &Body;
    /// User index by username.
    fn user(&self, name: &str) -> Option<u32>;
    /// Service account index by id.
    fn service(&self, id: &str) -> Option<u32>;
    /// API key index by SHA-256.
    fn api_key(&self, sha256: &[u8; 32]) -> Option<u32>;
    /// Node index by kind prefix and id (`org`, `env`, `catalog`, `object`, `team`).
    fn node(&self, kind: &str, id: &str) -> Option<NodeRef>;
    /// Whether org `org` is `ancestor` or below it.
    fn org_within(&self, org: u32, ancestor: u32) -> bool;
    /// Grants held directly by `p`, in snapshot order.
    fn grants_of(&self, p: PrincipalRef) -> impl Iterator<Item = Grant> + '_;
    /// Permission indices held directly by `p`.
    fn permissions_of(&self, p: PrincipalRef) -> impl Iterator<Item = u32> + '_;
    /// Groups `p` (a user or service account) belongs to.
    fn groups_of(&self, p: PrincipalRef) -> impl Iterator<Item = u32> + '_;
    /// Whether `user` is a member or the owner of `team`.
    fn in_team(&self, team: u32, user: u32) -> bool;
    /// Teams `user` is a member or the owner of, in snapshot order.
    fn teams_of(&self, user: u32) -> impl Iterator<Item = u32> + '_;
    /// Whether `team` has members besides its owner, or resources.
    fn team_occupied(&self, team: u32) -> bool;
    /// Number of users holding the `owner` administrator role.
    fn owner_count(&self) -> usize;

    /// Whether `u` is the sole owner of the domain or of a team that still
    /// has members or resources (seed 002). A view states it (its teams and
    /// owners are a subset); a whole directory computes it.
    fn sole_owner(&self, u: u32) -> bool {
        sole_owner_in_directory(self, u)
    }

    /// The organization a node belongs to (or is).
    fn pos(&self, n: NodeRef) -> Pos {
        let b = self.body();
        let mut p = Pos {
            org: b.domain,
            env: None,
            catalog: None,
            team: None,
            object: None,
        };
        let mut cur = n;
        // Objects sit below catalogs or teams, catalogs below environments:
        // at most three steps to an organization.
        for _ in 0..4 {
            match cur {
                NodeRef::Object(o) => {
                    p.object = Some(o);
                    cur = b.objects[o as usize].parent;
                }
                NodeRef::Catalog(c) => {
                    p.catalog = Some(c);
                    cur = NodeRef::Env(b.catalogs[c as usize].env);
                }
                NodeRef::Env(e) => {
                    p.env = Some(e);
                    cur = NodeRef::Org(b.envs[e as usize].org);
                }
                NodeRef::Team(t) => {
                    p.team = Some(t);
                    cur = NodeRef::Org(b.teams[t as usize].org);
                }
                NodeRef::Org(o) => {
                    p.org = o;
                    break;
                }
            }
        }
        p
    }

    /// Whether a grant on `on` holds at `pos` (on it or an ancestor).
    fn covers(&self, on: NodeRef, pos: &Pos) -> bool {
        match on {
            NodeRef::Org(o) => self.org_within(pos.org, o),
            NodeRef::Env(e) => pos.env == Some(e),
            NodeRef::Catalog(c) => pos.catalog == Some(c),
            NodeRef::Team(t) => pos.team == Some(t),
            NodeRef::Object(o) => pos.object == Some(o),
        }
    }
}

/// [`Facts::sole_owner`] from the records of a whole directory.
pub(crate) fn sole_owner_in_directory<F: Facts + ?Sized>(f: &F, u: u32) -> bool {
    use portcullis_snapshots::vocabulary::AdminRole;
    let b = f.body();
    if b.users[u as usize].admin_role == Some(AdminRole::Owner)
        && f.owner_count() == 1
        && b.users.len() > 1
    {
        return true;
    }
    f.teams_of(u)
        .any(|t| b.teams[t as usize].owner == u && f.team_occupied(t))
}

/// The reference: every question answered by scanning the body.
pub struct Naive<'a> {
    body: &'a Body,
}

impl<'a> Naive<'a> {
    /// Wraps a body (already integrity-checked by decoding).
    pub fn new(body: &'a Body) -> Self {
        Naive { body }
    }
}

impl Facts for Naive<'_> {
    fn body(&self) -> &Body {
        self.body
    }

    fn user(&self, name: &str) -> Option<u32> {
        let b = self.body;
        b.users
            .iter()
            // The empty username is a view's stand-in: it names nobody.
            .position(|u| !name.is_empty() && b.str(u.username) == name)
            .map(|i| i as u32)
    }

    fn service(&self, id: &str) -> Option<u32> {
        let b = self.body;
        b.service_accounts
            .iter()
            .position(|s| b.str(s.id) == id)
            .map(|i| i as u32)
    }

    fn api_key(&self, sha256: &[u8; 32]) -> Option<u32> {
        self.body
            .api_keys
            .iter()
            .position(|k| &k.sha256 == sha256)
            .map(|i| i as u32)
    }

    fn node(&self, kind: &str, id: &str) -> Option<NodeRef> {
        let b = self.body;
        fn find<'b>(b: &Body, ids: impl Iterator<Item = &'b Str>, id: &str) -> Option<u32> {
            ids.into_iter()
                .position(|&s| b.str(s) == id)
                .map(|i| i as u32)
        }
        match kind {
            "org" => find(b, b.orgs.iter().map(|x| &x.id), id).map(NodeRef::Org),
            "env" => find(b, b.envs.iter().map(|x| &x.id), id).map(NodeRef::Env),
            "catalog" => find(b, b.catalogs.iter().map(|x| &x.id), id).map(NodeRef::Catalog),
            "object" => find(b, b.objects.iter().map(|x| &x.id), id).map(NodeRef::Object),
            "team" => find(b, b.teams.iter().map(|x| &x.id), id).map(NodeRef::Team),
            _ => None,
        }
    }

    fn org_within(&self, org: u32, ancestor: u32) -> bool {
        let mut cur = Some(org);
        // Decoding guarantees the tree is acyclic; the bound is belt and braces.
        for _ in 0..=self.body.orgs.len() {
            match cur {
                Some(o) if o == ancestor => return true,
                Some(o) => cur = self.body.orgs[o as usize].parent,
                None => return false,
            }
        }
        false
    }

    fn grants_of(&self, p: PrincipalRef) -> impl Iterator<Item = Grant> + '_ {
        self.body
            .grants
            .iter()
            .filter(move |g| g.principal == p)
            .map(|g| Grant {
                role: g.role,
                on: g.on,
            })
    }

    fn permissions_of(&self, p: PrincipalRef) -> impl Iterator<Item = u32> + '_ {
        self.body
            .permissions
            .iter()
            .enumerate()
            .filter(move |(_, g)| g.principal == p)
            .map(|(i, _)| i as u32)
    }

    fn groups_of(&self, p: PrincipalRef) -> impl Iterator<Item = u32> + '_ {
        self.body
            .groups
            .iter()
            .enumerate()
            .filter(move |(_, g)| g.members.contains(&p))
            .map(|(i, _)| i as u32)
    }

    fn in_team(&self, team: u32, user: u32) -> bool {
        let t = &self.body.teams[team as usize];
        t.owner == user || t.members.contains(&user)
    }

    fn teams_of(&self, user: u32) -> impl Iterator<Item = u32> + '_ {
        (0..self.body.teams.len() as u32).filter(move |&t| self.in_team(t, user))
    }

    fn team_occupied(&self, team: u32) -> bool {
        let t = &self.body.teams[team as usize];
        t.members.iter().any(|&m| m != t.owner)
            || self
                .body
                .objects
                .iter()
                .any(|o| o.parent == NodeRef::Team(team))
    }

    fn owner_count(&self) -> usize {
        use portcullis_snapshots::vocabulary::AdminRole;
        self.body
            .users
            .iter()
            .filter(|u| u.admin_role == Some(AdminRole::Owner))
            .count()
    }
}
