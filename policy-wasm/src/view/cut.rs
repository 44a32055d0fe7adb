//! Writes a principal's view: the records of its [`Reach`] renumbered into
//! a body of their own, with only the strings they use.
#![allow(
    clippy::indexing_slicing,
    reason = "every index in a loaded body was checked when it was decoded (snapshots::integrity)"
)]

use portcullis_snapshots::body::{
    Body, CatalogRec, CustomRoleRec, EnvRec, GrantRec, GroupRec, NodeRef, ObjectRec, OptStr,
    OptTime, OrgRec, PermissionRec, PrincipalRef, RoleRef, Str, StringTable, TeamRec, UserRec,
};
use portcullis_snapshots::view::ViewFacts;
use portcullis_snapshots::vocabulary::UserStatus;
type FxHashMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

use super::reach::{Reach, Whom};
use crate::facts::Facts;
use crate::index::Indexed;

/// The strings of the view, copied from the directory's on first use.
struct Strings<'a> {
    src: &'a Body,
    seen: FxHashMap<u32, Str>,
    table: StringTable,
}

impl Strings<'_> {
    fn text(&mut self, text: &str) -> Str {
        self.table.blob.push_str(text);
        self.table.ends.push(self.table.blob.len() as u32);
        Str(self.table.ends.len() as u32 - 1)
    }

    /// A string unique in its table (a username, a node id): no need to
    /// look for an earlier copy.
    fn unique(&mut self, s: Str) -> Str {
        self.text(self.src.str(s))
    }

    fn get(&mut self, s: Str) -> Str {
        if let Some(&v) = self.seen.get(&s.0) {
            return v;
        }
        let v = self.text(self.src.str(s));
        self.seen.insert(s.0, v);
        v
    }

    fn opt(&mut self, s: Option<Str>) -> Option<Str> {
        s.map(|s| self.get(s))
    }

    fn opt4(&mut self, s: OptStr) -> OptStr {
        self.opt(s.get()).into()
    }
}

/// Position of directory index `i` in the ascending `kept`; `u32::MAX`
/// (which encoding refuses as out of range) if it is missing, which would
/// be a bug in the reach.
fn at(kept: &[u32], i: u32) -> u32 {
    kept.binary_search(&i).map_or(u32::MAX, |p| p as u32)
}

/// The view's body and the facts it states.
pub(crate) fn cut(f: &Indexed, whom: Whom, r: &Reach) -> (Body, ViewFacts) {
    let src = f.body();
    let mut s = Strings {
        src,
        seen: FxHashMap::default(),
        table: StringTable {
            blob: String::with_capacity(16 * (r.users.len() + r.catalogs.len() + r.objects.len())),
            ends: Vec::with_capacity(r.users.len() + 2 * (r.catalogs.len() + r.objects.len())),
        },
    };
    let node = |n: NodeRef| match n {
        NodeRef::Org(i) => NodeRef::Org(at(&r.orgs, i)),
        NodeRef::Env(i) => NodeRef::Env(at(&r.envs, i)),
        NodeRef::Catalog(i) => NodeRef::Catalog(at(&r.catalogs, i)),
        NodeRef::Object(i) => NodeRef::Object(at(&r.objects, i)),
        NodeRef::Team(i) => NodeRef::Team(at(&r.teams, i)),
    };
    let me = whom.principal();
    let principal = |p: PrincipalRef| match p {
        PrincipalRef::User(u) => PrincipalRef::User(at(&r.users, u)),
        PrincipalRef::Service(_) => PrincipalRef::Service(0),
        PrincipalRef::Group(g) => PrincipalRef::Group(
            r.holders
                .iter()
                .skip(1)
                .position(|&h| h == PrincipalRef::Group(g))
                .map_or(u32::MAX, |i| i as u32),
        ),
    };
    let mut b = Body {
        domain: at(&r.orgs, src.domain),
        ..Body::default()
    };

    b.orgs = r
        .orgs
        .iter()
        .map(|&i| {
            let o = &src.orgs[i as usize];
            OrgRec {
                id: s.unique(o.id),
                name: s.opt(o.name),
                parent: o.parent.map(|p| at(&r.orgs, p)),
            }
        })
        .collect();
    b.envs = r
        .envs
        .iter()
        .map(|&i| {
            let e = &src.envs[i as usize];
            EnvRec {
                id: s.unique(e.id),
                name: s.opt(e.name),
                org: at(&r.orgs, e.org),
                tier: e.tier,
            }
        })
        .collect();
    b.catalogs = r
        .catalogs
        .iter()
        .map(|&i| {
            let c = &src.catalogs[i as usize];
            CatalogRec {
                id: s.unique(c.id),
                name: s.opt(c.name),
                env: at(&r.envs, c.env),
                kind: c.kind,
                connector: s.opt(c.connector),
            }
        })
        .collect();
    b.objects = r
        .objects
        .iter()
        .map(|&i| {
            let o = &src.objects[i as usize];
            ObjectRec {
                id: s.unique(o.id),
                name: s.opt(o.name),
                kind: s.get(o.kind),
                parent: node(o.parent),
            }
        })
        .collect();

    // Users: the principal whole; the others with what decides for them —
    // username, organization, status, administrator role — and nothing
    // else (login flags, expiry and service-provider role are read of the
    // acting principal only).
    let no_email = s.text("");
    // What a view holds of a user other than its principal (and of the
    // stand-in): nothing but these four.
    let other = |username: Str, org: u32, status: UserStatus, admin_role| UserRec {
        username,
        name: OptStr::NONE,
        first_name: OptStr::NONE,
        last_name: OptStr::NONE,
        email: no_email,
        phone: OptStr::NONE,
        org,
        timezone: OptStr::NONE,
        locale: OptStr::NONE,
        status,
        // Read only of the principal itself: not stated of others.
        allow_login: false,
        email_verified: false,
        sso: false,
        expires_at: OptTime::NONE,
        last_login: OptTime::NONE,
        start_page: OptStr::NONE,
        admin_role,
        sp_role: None,
    };
    b.users = r
        .users
        .iter()
        .map(|&i| {
            let u = &src.users[i as usize];
            let org = at(&r.orgs, u.org);
            if me == PrincipalRef::User(i) {
                return UserRec {
                    username: s.unique(u.username),
                    name: s.opt4(u.name),
                    first_name: s.opt4(u.first_name),
                    last_name: s.opt4(u.last_name),
                    email: s.get(u.email),
                    phone: s.opt4(u.phone),
                    org,
                    timezone: s.opt4(u.timezone),
                    locale: s.opt4(u.locale),
                    start_page: s.opt4(u.start_page),
                    ..u.clone()
                };
            }
            other(s.unique(u.username), org, u.status, u.admin_role)
        })
        .collect();
    // Team owners outside the view are one stand-in user whose empty
    // username names nobody: decisions only ask "is the owner this user".
    let stand_in = r
        .teams
        .iter()
        .any(|&t| at(&r.users, src.teams[t as usize].owner) == u32::MAX)
        .then(|| {
            b.users
                .push(other(no_email, b.domain, UserStatus::Disabled, None));
            b.users.len() as u32 - 1
        });
    if let Whom::Service(i) = whom {
        let a = &src.service_accounts[i as usize];
        b.service_accounts
            .push(portcullis_snapshots::body::ServiceAccountRec {
                id: s.get(a.id),
                name: s.opt(a.name),
                description: s.opt(a.description),
                org: at(&r.orgs, a.org),
                ..a.clone()
            });
    }
    let me_in_view = principal(me);
    b.groups = r
        .holders
        .iter()
        .skip(1)
        .filter_map(|&h| match h {
            PrincipalRef::Group(g) => Some(&src.groups[g as usize]),
            _ => None,
        })
        .map(|g| GroupRec {
            id: s.get(g.id),
            name: s.get(g.name),
            code: s.get(g.code),
            description: s.opt(g.description),
            members: vec![me_in_view],
        })
        .collect();
    b.teams = r
        .teams
        .iter()
        .map(|&t| {
            let team = &src.teams[t as usize];
            let full = r.scope.user_teams.binary_search(&t).is_ok();
            let owner = at(&r.users, team.owner);
            TeamRec {
                id: s.unique(team.id),
                name: s.opt(team.name),
                org: at(&r.orgs, team.org),
                owner: if owner == u32::MAX {
                    stand_in.unwrap_or(u32::MAX)
                } else {
                    owner
                },
                members: team
                    .members
                    .iter()
                    .filter(|&&m| {
                        if full {
                            r.users.binary_search(&m).is_ok()
                        } else {
                            me == PrincipalRef::User(m)
                        }
                    })
                    .map(|&m| at(&r.users, m))
                    .collect(),
            }
        })
        .collect();

    // Grants and permissions of the principal and its groups, in the
    // directory's order for each holder (so the same grant decides).
    let holder_grants: Vec<(PrincipalRef, crate::facts::Grant)> = r
        .holders
        .iter()
        .flat_map(|&h| f.grants_of(h).map(move |g| (h, g)))
        .collect();
    let mut roles: Vec<u32> = holder_grants
        .iter()
        .filter_map(|(_, g)| match g.role {
            RoleRef::Custom(c) => Some(c),
            RoleRef::Builtin(_) => None,
        })
        .collect();
    roles.sort_unstable();
    roles.dedup();
    b.custom_roles = roles
        .iter()
        .map(|&c| {
            let role = &src.custom_roles[c as usize];
            CustomRoleRec {
                id: s.get(role.id),
                name: s.opt(role.name),
                description: s.opt(role.description),
                scopes: role.scopes.iter().map(|&x| s.get(x)).collect(),
            }
        })
        .collect();
    b.grants = holder_grants
        .iter()
        .map(|&(h, g)| GrantRec {
            principal: principal(h),
            role: match g.role {
                RoleRef::Custom(c) => RoleRef::Custom(at(&roles, c)),
                builtin => builtin,
            },
            on: node(g.on),
        })
        .collect();
    b.permissions = r
        .holders
        .iter()
        .flat_map(|&h| f.permissions_of(h).map(move |i| (h, i)))
        .map(|(h, i)| {
            let p = &src.permissions[i as usize];
            PermissionRec {
                principal: principal(h),
                org: p.org.map(|o| at(&r.orgs, o)),
                ..*p
            }
        })
        .collect();
    b.strings = s.table;

    let facts = ViewFacts {
        principal: Some(me_in_view),
        sole_owners: r
            .users
            .iter()
            .enumerate()
            .filter(|&(_, &u)| f.sole_owner(u))
            .map(|(i, _)| i as u32)
            .collect(),
    };
    (b, facts)
}
