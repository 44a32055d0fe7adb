//! [`Directory`] → [`Body`]: resolves every reference to an index and
//! reports every problem at once. Validation *is* this pass, so whatever
//! validates also compiles, and nothing that fails validation is encoded.
#![allow(
    clippy::indexing_slicing,
    reason = "indexes into the source's own tables, resolved by the compiler from ids it registered; the cycle walk's `state` has one entry per organization"
)]

use std::collections::{HashMap, HashSet};

use super::model::{Directory, SOURCE_FORMAT};
use super::problem::Problem;
use crate::body::*;
use crate::vocabulary::{AdminRole, BuiltinRole, KNOWN_SCOPES, NodeKind, RESOURCE_SCOPE_VERBS};

/// Interns strings into a [`StringTable`].
#[derive(Default)]
pub(crate) struct Interner {
    table: StringTable,
    seen: HashMap<String, u32>,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> Str {
        if let Some(&i) = self.seen.get(s) {
            return Str(i);
        }
        let i = self.table.ends.len() as u32;
        self.table.blob.push_str(s);
        self.table.ends.push(self.table.blob.len() as u32);
        self.seen.insert(s.to_string(), i);
        Str(i)
    }

    pub(crate) fn opt(&mut self, s: &Option<String>) -> Option<Str> {
        s.as_deref().map(|s| self.intern(s))
    }

    pub(crate) fn finish(self) -> StringTable {
        self.table
    }
}

/// Id → index for one kind, recording where each id was first defined.
struct Ids<'a> {
    noun: &'static str,
    map: HashMap<&'a str, (u32, String)>,
}

impl<'a> Ids<'a> {
    fn new(noun: &'static str) -> Self {
        Ids {
            noun,
            map: HashMap::new(),
        }
    }

    fn get(&self, id: &str) -> Option<u32> {
        self.map.get(id).map(|(i, _)| *i)
    }

    fn suggest(&self, id: &str) -> String {
        let lower = id.to_ascii_lowercase();
        if let Some((k, _)) = self
            .map
            .iter()
            .find(|(k, _)| k.to_ascii_lowercase() == lower)
        {
            return format!("did you mean {k:?}? ids are case-sensitive");
        }
        if self.map.is_empty() {
            return format!("the directory defines no {}s", self.noun);
        }
        if self.map.len() <= 8 {
            let mut known: Vec<&str> = self.map.keys().copied().collect();
            known.sort_unstable();
            return format!("known {}s: {}", self.noun, known.join(", "));
        }
        format!("define the {} first, or fix the spelling", self.noun)
    }
}

const ID_HINT: &str =
    "ids are 1 to 256 characters, none of them '/', whitespace or a control character";

/// The name of the break-glass support principal, which no user may take.
pub const RESERVED_USERNAME: &str = "support";

/// Whether `id` is an id compilation accepts (for writers that add an
/// entity alone).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && !id
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
}

struct Compiler<'a> {
    problems: Vec<Problem>,
    orgs: Ids<'a>,
    envs: Ids<'a>,
    catalogs: Ids<'a>,
    objects: Ids<'a>,
    users: Ids<'a>,
    services: Ids<'a>,
    keys: Ids<'a>,
    groups: Ids<'a>,
    teams: Ids<'a>,
    roles: Ids<'a>,
}

impl<'a> Compiler<'a> {
    fn problem(&mut self, p: Problem) {
        self.problems.push(p);
    }

    /// Registers the ids of one table, reporting bad and duplicate ones.
    fn define<T>(
        problems: &mut Vec<Problem>,
        ids: &mut Ids<'a>,
        section: &str,
        field: &str,
        items: &'a [T],
        id_of: impl Fn(&'a T) -> &'a str,
    ) {
        for (i, item) in items.iter().enumerate() {
            let id = id_of(item);
            let at = format!("/{section}/{i}/{field}");
            if !valid_id(id) {
                problems.push(
                    Problem::new(&at, format!("invalid {} id {id:?}", ids.noun)).hint(ID_HINT),
                );
                continue;
            }
            if let Some((_, first)) = ids.map.get(id) {
                problems.push(
                    Problem::new(&at, format!("duplicate {} id {id:?}", ids.noun))
                        .hint(format!("first defined at {first}; ids must be unique")),
                );
                continue;
            }
            ids.map.insert(id, (i as u32, at));
        }
    }

    /// Resolves a bare id of a known kind.
    fn bare(&mut self, which: fn(&Self) -> &Ids<'a>, id: &str, at: &str) -> u32 {
        let ids = which(self);
        match ids.get(id) {
            Some(i) => i,
            None => {
                let p =
                    Problem::new(at, format!("unknown {} {id:?}", ids.noun)).hint(ids.suggest(id));
                self.problem(p);
                0
            }
        }
    }

    /// Resolves `kind/id` to a node of one of `allowed` kinds.
    fn node(&mut self, r: &str, at: &str, allowed: &[NodeKind]) -> Option<NodeRef> {
        let expected = allowed
            .iter()
            .map(|k| format!("{}/<id>", k.prefix()))
            .collect::<Vec<_>>()
            .join(", ");
        let Some((kind, id)) = r.split_once('/') else {
            self.problem(
                Problem::new(at, format!("{r:?} is not a typed reference"))
                    .hint(format!("write one of {expected}")),
            );
            return None;
        };
        let found = match kind {
            "org" => Some((NodeKind::Org, &self.orgs)),
            "env" => Some((NodeKind::Env, &self.envs)),
            "catalog" => Some((NodeKind::Catalog, &self.catalogs)),
            "object" => Some((NodeKind::Object, &self.objects)),
            "team" => Some((NodeKind::Team, &self.teams)),
            _ => None,
        };
        let Some((kind, ids)) = found.filter(|(k, _)| allowed.contains(k)) else {
            self.problem(
                Problem::new(at, format!("{r:?} cannot be used here"))
                    .hint(format!("expected one of {expected}")),
            );
            return None;
        };
        let Some(i) = ids.get(id) else {
            let p = Problem::new(at, format!("unknown {} {id:?}", ids.noun)).hint(ids.suggest(id));
            self.problem(p);
            return None;
        };
        Some(match kind {
            NodeKind::Org => NodeRef::Org(i),
            NodeKind::Env => NodeRef::Env(i),
            NodeKind::Catalog => NodeRef::Catalog(i),
            NodeKind::Object => NodeRef::Object(i),
            NodeKind::Team => NodeRef::Team(i),
        })
    }

    /// Resolves a grantee: `user/…`, `service/…` or (if allowed) `group/…`.
    fn principal(&mut self, r: &str, at: &str, groups_allowed: bool) -> Option<PrincipalRef> {
        let expected = if groups_allowed {
            "user/<username>, service/<id> or group/<id>"
        } else {
            "user/<username> or service/<id>"
        };
        let (kind, id) = r.split_once('/').unwrap_or(("", r));
        let (ids, make): (&Ids, fn(u32) -> PrincipalRef) = match kind {
            "user" => (&self.users, PrincipalRef::User),
            "service" => (&self.services, PrincipalRef::Service),
            "group" if groups_allowed => (&self.groups, PrincipalRef::Group),
            "group" => {
                self.problem(
                    Problem::new(at, "groups cannot be members of groups")
                        .hint("list the group's members instead"),
                );
                return None;
            }
            "apikey" => {
                self.problem(
                    Problem::new(at, "API keys cannot hold grants")
                        .hint("an API key acts as the user who created it; grant to that user"),
                );
                return None;
            }
            _ if r == "support" => {
                self.problem(
                    Problem::new(at, "the support principal cannot hold grants")
                        .hint("support is built in and outside the directory's control"),
                );
                return None;
            }
            _ => {
                self.problem(
                    Problem::new(at, format!("{r:?} is not a principal reference"))
                        .hint(format!("write {expected}")),
                );
                return None;
            }
        };
        match ids.get(id) {
            Some(i) => Some(make(i)),
            None => {
                let p =
                    Problem::new(at, format!("unknown {} {id:?}", ids.noun)).hint(ids.suggest(id));
                self.problem(p);
                None
            }
        }
    }
}

/// Compiles a parsed directory, or returns every problem in it.
pub fn compile(dir: &Directory) -> Result<Body, Vec<Problem>> {
    if dir.format != SOURCE_FORMAT {
        return Err(vec![Problem::new(
            "/format",
            format!("unsupported format {}", dir.format),
        )]);
    }
    let mut c = Compiler::new(dir);
    let mut out = Output::default();
    c.org_tree(dir, &mut out);
    c.nodes(dir, &mut out);
    c.principals(dir, &mut out);
    c.roles_and_grants(dir, &mut out);
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let Output { strings, mut body } = out;
    body.strings = strings.finish();
    Ok(body)
}

/// What compiling writes: the interned strings and the body's tables.
#[derive(Default)]
struct Output {
    strings: Interner,
    body: Body,
}

impl<'a> Compiler<'a> {
    /// Every table's ids registered (bad and duplicate ones reported), so
    /// that any section can resolve a reference to any other.
    fn new(dir: &'a Directory) -> Self {
        let mut c = Compiler {
            problems: Vec::new(),
            orgs: Ids::new("organization"),
            envs: Ids::new("environment"),
            catalogs: Ids::new("catalog"),
            objects: Ids::new("object"),
            users: Ids::new("user"),
            services: Ids::new("service account"),
            keys: Ids::new("API key"),
            groups: Ids::new("group"),
            teams: Ids::new("team"),
            roles: Ids::new("custom role"),
        };
        let p = &mut c.problems;
        Compiler::define(
            p,
            &mut c.orgs,
            "organizations",
            "id",
            &dir.organizations,
            |o| &o.id,
        );
        Compiler::define(
            p,
            &mut c.envs,
            "environments",
            "id",
            &dir.environments,
            |o| &o.id,
        );
        Compiler::define(p, &mut c.catalogs, "catalogs", "id", &dir.catalogs, |o| {
            &o.id
        });
        Compiler::define(p, &mut c.objects, "objects", "id", &dir.objects, |o| &o.id);
        Compiler::define(p, &mut c.users, "users", "username", &dir.users, |u| {
            &u.username
        });
        // `support` names the break-glass principal, outside the customer's
        // control (seed 002); a user of that name would be one spelling away
        // from it wherever principals are written as text (tokens, logs).
        for (i, u) in dir.users.iter().enumerate() {
            if u.username.eq_ignore_ascii_case(RESERVED_USERNAME) {
                p.push(
                    Problem::new(
                        format!("/users/{i}/username"),
                        format!("the username {:?} is reserved", u.username),
                    )
                    .hint(
                        "\"support\" is the break-glass support principal; choose another username",
                    ),
                );
            }
        }
        Compiler::define(
            p,
            &mut c.services,
            "service_accounts",
            "id",
            &dir.service_accounts,
            |o| &o.id,
        );
        Compiler::define(p, &mut c.keys, "api_keys", "id", &dir.api_keys, |o| &o.id);
        Compiler::define(p, &mut c.groups, "groups", "id", &dir.groups, |o| &o.id);
        Compiler::define(p, &mut c.teams, "teams", "id", &dir.teams, |o| &o.id);
        Compiler::define(
            p,
            &mut c.roles,
            "custom_roles",
            "id",
            &dir.custom_roles,
            |o| &o.id,
        );
        c
    }

    /// The organization tree: exactly one domain organization, every other one under a known parent, no cycle.
    fn org_tree(&mut self, dir: &'a Directory, out: &mut Output) {
        let (s, body) = (&mut out.strings, &mut out.body);
        let roots: Vec<usize> = dir
            .organizations
            .iter()
            .enumerate()
            .filter(|(_, o)| o.parent.is_none())
            .map(|(i, _)| i)
            .collect();
        match roots.as_slice() {
        [] => self.problem(
            Problem::new("/organizations", "no domain organization").hint(
                "exactly one organization must have no \"parent\": the domain (root) organization",
            ),
        ),
        [_] => {}
        [first, rest @ ..] => {
            for &i in rest {
                self.problem(
                    Problem::new(format!("/organizations/{i}"), "a second organization without a parent")
                        .hint(format!(
                            "only the domain organization ({:?}) has no parent; give this one a \"parent\"",
                            dir.organizations[*first].id
                        )),
                );
            }
        }
    }
        let domain = roots.first().copied().unwrap_or(0) as u32;
        body.domain = domain;
        for (i, o) in dir.organizations.iter().enumerate() {
            let parent = o
                .parent
                .as_deref()
                .map(|p| self.bare(|c| &c.orgs, p, &format!("/organizations/{i}/parent")));
            body.orgs.push(OrgRec {
                id: s.intern(&o.id),
                name: s.opt(&o.name),
                parent,
            });
        }
        report_org_cycles(self, dir, body);
    }

    /// Environments, catalogs and objects, each under a node of the right kind.
    fn nodes(&mut self, dir: &'a Directory, out: &mut Output) {
        let (s, body) = (&mut out.strings, &mut out.body);
        for (i, e) in dir.environments.iter().enumerate() {
            let org = self.bare(
                |c| &c.orgs,
                &e.organization,
                &format!("/environments/{i}/organization"),
            );
            body.envs.push(EnvRec {
                id: s.intern(&e.id),
                name: s.opt(&e.name),
                org,
                tier: e.tier,
            });
        }
        for (i, cat) in dir.catalogs.iter().enumerate() {
            let env = self.bare(
                |c| &c.envs,
                &cat.environment,
                &format!("/catalogs/{i}/environment"),
            );
            body.catalogs.push(CatalogRec {
                id: s.intern(&cat.id),
                name: s.opt(&cat.name),
                env,
                kind: cat.kind,
                connector: s.opt(&cat.connector),
            });
        }
        for (i, o) in dir.objects.iter().enumerate() {
            let at = format!("/objects/{i}/parent");
            let parent = self
                .node(&o.parent, &at, &[NodeKind::Catalog, NodeKind::Team])
                .unwrap_or(NodeRef::Catalog(0));
            if o.kind.is_empty() {
                self.problem(
                    Problem::new(format!("/objects/{i}/kind"), "empty object kind")
                        .hint("name what the object is: table, dashboard, site, vpn, billing, …"),
                );
            }
            body.objects.push(ObjectRec {
                id: s.intern(&o.id),
                name: s.opt(&o.name),
                kind: s.intern(&o.kind),
                parent,
            });
        }
    }

    /// Users, service accounts, API keys, groups and teams: unique emails and key hashes, owners placed right, members known.
    fn principals(&mut self, dir: &'a Directory, out: &mut Output) {
        let (s, body) = (&mut out.strings, &mut out.body);
        let mut emails: HashMap<String, usize> = HashMap::new();
        for (i, u) in dir.users.iter().enumerate() {
            let org = self.bare(
                |c| &c.orgs,
                &u.organization,
                &format!("/users/{i}/organization"),
            );
            let at_email = format!("/users/{i}/email");
            if !plausible_email(&u.email) {
                self.problem(
                    Problem::new(&at_email, format!("invalid email address {:?}", u.email))
                        .hint("an email address has one '@' with text on both sides"),
                );
            } else if let Some(first) = emails.insert(u.email.to_lowercase(), i) {
                self.problem(
                Problem::new(&at_email, format!("duplicate email {:?}", u.email)).hint(format!(
                    "also used by /users/{first}; emails are unique (compared case-insensitively)"
                )),
            );
            }
            if matches!(
                u.admin_role,
                Some(AdminRole::Owner | AdminRole::SuperAdministrator)
            ) && self
                .orgs
                .get(&u.organization)
                .is_some_and(|o| o != body.domain)
            {
                self.problem(
                Problem::new(format!("/users/{i}/organization"), format!("{:?} is an owner or super administrator outside the domain organization", u.username))
                    .hint("owner and super administrator accounts must sit directly under the domain organization (seed 003); move the user or make them an administrator"),
            );
            }
            body.users.push(UserRec {
                username: s.intern(&u.username),
                name: s.opt(&u.name).into(),
                first_name: s.opt(&u.first_name).into(),
                last_name: s.opt(&u.last_name).into(),
                email: s.intern(&u.email),
                phone: s.opt(&u.phone).into(),
                org,
                timezone: s.opt(&u.timezone).into(),
                locale: s.opt(&u.locale).into(),
                status: u.status,
                allow_login: u.allow_login,
                email_verified: u.email_verified,
                sso: u.sso,
                expires_at: u.expires_at.map(|t| t.0).into(),
                last_login: u.last_login.map(|t| t.0).into(),
                start_page: s.opt(&u.start_page).into(),
                admin_role: u.admin_role,
                sp_role: u.sp_role,
            });
        }
        for (i, a) in dir.service_accounts.iter().enumerate() {
            let org = self.bare(
                |c| &c.orgs,
                &a.organization,
                &format!("/service_accounts/{i}/organization"),
            );
            body.service_accounts.push(ServiceAccountRec {
                id: s.intern(&a.id),
                name: s.opt(&a.name),
                description: s.opt(&a.description),
                org,
                default_access: a.default_access,
                status: a.status,
            });
        }
        let mut hashes: HashMap<[u8; 32], usize> = HashMap::new();
        for (i, k) in dir.api_keys.iter().enumerate() {
            let at = format!("/api_keys/{i}/sha256");
            let mut sha256 = [0u8; 32];
            let lower_hex = k.sha256.len() == 64
                && k.sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !lower_hex || hex::decode_to_slice(&k.sha256, &mut sha256).is_err() {
                self.problem(Problem::new(&at, "sha256 is not 64 lower-case hex digits").hint("store the SHA-256 of the key secret, e.g. `printf %s \"$KEY\" | sha256sum`; never the secret itself"));
            } else if let Some(first) = hashes.insert(sha256, i) {
                self.problem(
                    Problem::new(&at, "two API keys have the same hash").hint(format!(
                        "also /api_keys/{first}; each key needs its own secret"
                    )),
                );
            }
            let at = format!("/api_keys/{i}/created_by");
            let creator = match k.created_by.split_once('/') {
                Some(("user", name)) => match self.users.get(name) {
                    Some(u) => u,
                    None => {
                        self.problem(Problem::new(&at, format!("API key {:?} names a creator that does not exist: user {name:?}", k.id)).hint("a key acts as its creator; remove the key or restore the user"));
                        0
                    }
                },
                _ => {
                    self.problem(
                        Problem::new(&at, format!("{:?} is not a user reference", k.created_by))
                            .hint("API keys are created by users: write user/<username>"),
                    );
                    0
                }
            };
            body.api_keys.push(ApiKeyRec {
                id: s.intern(&k.id),
                name: s.opt(&k.name),
                sha256,
                creator,
                created_at: k.created_at.map(|t| t.0),
                expires_at: k.expires_at.map(|t| t.0),
                revoked: k.revoked,
            });
        }
        let mut group_names: HashMap<&str, usize> = HashMap::new();
        for (i, g) in dir.groups.iter().enumerate() {
            if g.name.trim().is_empty() {
                self.problem(Problem::new(
                    format!("/groups/{i}/name"),
                    "empty group name",
                ));
            } else if let Some(first) = group_names.insert(&g.name, i) {
                self.problem(
                    Problem::new(
                        format!("/groups/{i}/name"),
                        format!("duplicate group name {:?}", g.name),
                    )
                    .hint(format!(
                        "also /groups/{first}; group names are unique (seed 004)"
                    )),
                );
            }
            if g.code.trim().is_empty() {
                self.problem(
                    Problem::new(format!("/groups/{i}/code"), "empty group code")
                        .hint("seed 004 requires a code for every group"),
                );
            }
            if let Some(org) = &g.organization {
                self.bare(|c| &c.orgs, org, &format!("/groups/{i}/organization"));
            }
            let mut members = Vec::with_capacity(g.members.len());
            let mut seen = HashSet::new();
            for (j, m) in g.members.iter().enumerate() {
                let at = format!("/groups/{i}/members/{j}");
                if let Some(p) = self.principal(m, &at, false) {
                    if seen.insert(p) {
                        members.push(p);
                    } else {
                        self.problem(Problem::new(&at, format!("{m:?} is listed twice")));
                    }
                }
            }
            body.groups.push(GroupRec {
                id: s.intern(&g.id),
                name: s.intern(&g.name),
                code: s.intern(&g.code),
                description: s.opt(&g.description),
                members,
            });
        }
        for (i, t) in dir.teams.iter().enumerate() {
            let org = self.bare(
                |c| &c.orgs,
                &t.organization,
                &format!("/teams/{i}/organization"),
            );
            let at = format!("/teams/{i}/owner");
            let owner = match self.users.get(&t.owner) {
                Some(u) => {
                    if !dir.users[u as usize].allow_login {
                        self.problem(Problem::new(&at, format!("team owner {:?} is a notification-only user", t.owner)).hint("notification-only users (allow_login: false) cannot own resources (seed 002); choose a portal user"));
                    }
                    u
                }
                None => {
                    let hint = if t.owner.contains('/') {
                        "the owner is a bare username (\"owner\": \"adam\"), and must be a user"
                            .to_string()
                    } else {
                        format!(
                            "team owners must be users; {}",
                            self.users.suggest(&t.owner)
                        )
                    };
                    self.problem(
                        Problem::new(&at, format!("team owner {:?} is not a user", t.owner))
                            .hint(hint),
                    );
                    0
                }
            };
            let mut members = Vec::with_capacity(t.members.len());
            let mut seen = HashSet::new();
            for (j, m) in t.members.iter().enumerate() {
                let at = format!("/teams/{i}/members/{j}");
                let u = self.bare(|c| &c.users, m, &at);
                if !seen.insert(m.as_str()) {
                    self.problem(Problem::new(&at, format!("{m:?} is listed twice")));
                }
                members.push(u);
            }
            body.teams.push(TeamRec {
                id: s.intern(&t.id),
                name: s.opt(&t.name),
                org,
                owner,
                members,
            });
        }
    }

    /// Custom roles, grants (a role that exists at the node's level) and View/Manage permissions.
    fn roles_and_grants(&mut self, dir: &'a Directory, out: &mut Output) {
        let (s, body) = (&mut out.strings, &mut out.body);
        for (i, r) in dir.custom_roles.iter().enumerate() {
            let mut scopes = Vec::with_capacity(r.scopes.len());
            for (j, sc) in r.scopes.iter().enumerate() {
                if let Some(p) = scope_problem(sc) {
                    self.problem(
                        Problem::new(format!("/custom_roles/{i}/scopes/{j}"), p.0).hint(p.1),
                    );
                }
                scopes.push(s.intern(sc));
            }
            body.custom_roles.push(CustomRoleRec {
                id: s.intern(&r.id),
                name: s.opt(&r.name),
                description: s.opt(&r.description),
                scopes,
            });
        }
        const ANY_NODE: [NodeKind; 5] = [
            NodeKind::Org,
            NodeKind::Env,
            NodeKind::Catalog,
            NodeKind::Object,
            NodeKind::Team,
        ];
        for (i, g) in dir.grants.iter().enumerate() {
            let base = format!("/grants/{i}");
            let principal = self.principal(&g.principal, &format!("{base}/principal"), true);
            let on = self.node(&g.on, &format!("{base}/on"), &ANY_NODE);
            let role = match (
                BuiltinRole::from_name(&g.role),
                g.role.strip_prefix("role/"),
            ) {
                (Some(b), _) => Some(RoleRef::Builtin(b)),
                (None, Some(id)) => match self.roles.get(id) {
                    Some(r) => Some(RoleRef::Custom(r)),
                    None => {
                        let p = Problem::new(
                            format!("{base}/role"),
                            format!("unknown custom role {id:?}"),
                        )
                        .hint(self.roles.suggest(id));
                        self.problem(p);
                        None
                    }
                },
                (None, None) => {
                    let hint = if matches!(
                        g.role.as_str(),
                        "owner" | "super_administrator" | "administrator"
                    ) {
                        "administrator roles are not grants: set \"admin_role\" on the user"
                    } else {
                        "built-in roles are admin, writer, reader, custom_per_environment and custom_per_catalog; custom roles are written role/<id>"
                    };
                    self.problem(
                        Problem::new(format!("{base}/role"), format!("unknown role {:?}", g.role))
                            .hint(hint),
                    );
                    None
                }
            };
            if let (Some(role), Some(on)) = (role, on)
                && let Some(msg) = level_problem(role, on.kind())
            {
                self.problem(
                    Problem::new(
                        format!("{base}/role"),
                        format!("role {:?} does not exist on {}", g.role, noun(on.kind())),
                    )
                    .hint(msg),
                );
            }
            if let (Some(principal), Some(role), Some(on)) = (principal, role, on) {
                body.grants.push(GrantRec {
                    principal,
                    role,
                    on,
                });
            }
        }
        for (i, pg) in dir.permissions.iter().enumerate() {
            let base = format!("/permissions/{i}");
            let principal = self.principal(&pg.principal, &format!("{base}/principal"), true);
            match (pg.permission.needs_entity(), pg.entity) {
            (true, None) => self.problem(Problem::new(&base, format!("{} needs an \"entity\"", pg.permission.name())).hint("View and Manage are granted per entity type, e.g. \"entity\": \"schemas\"")),
            (false, Some(_)) => self.problem(Problem::new(format!("{base}/entity"), "this permission takes no entity").hint("super_admin, platform_access and view_all_pipeline_data are not per entity type")),
            (true, Some(e)) if pg.permission == crate::vocabulary::Permission::View && e.manage_only() => self.problem(
                Problem::new(format!("{base}/permission"), format!("{} has no View permission", e.name()))
                    .hint("seed 004 defines only Manage for settings, firewall rules, users and user groups; grant manage (which includes view)"),
            ),
            _ => {}
        }
            let org = pg.on.as_deref().and_then(|r| {
                match self.node(r, &format!("{base}/on"), &[NodeKind::Org]) {
                    Some(NodeRef::Org(o)) => Some(o),
                    _ => None,
                }
            });
            if let Some(principal) = principal {
                body.permissions.push(PermissionRec {
                    principal,
                    permission: pg.permission,
                    entity: pg.entity,
                    org,
                });
            }
        }
    }
}

fn noun(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Org => "an organization",
        NodeKind::Env => "an environment",
        NodeKind::Catalog => "a catalog",
        NodeKind::Object => "an object",
        NodeKind::Team => "a team",
    }
}

/// Why `role` cannot be granted on a node of `kind`, if it cannot: the
/// check a grant passes in compilation, for writers that add one alone.
pub fn level_problem(role: RoleRef, kind: NodeKind) -> Option<&'static str> {
    match role {
        RoleRef::Builtin(b) if !b.exists_at(kind) => Some(match b {
            BuiltinRole::Admin => "admin is an organization role (seed 001); grant it on org/<id>",
            BuiltinRole::CustomPerEnvironment => {
                "custom_per_environment is an organization role (seed 001); grant it on org/<id>, then grant roles per environment"
            }
            BuiltinRole::CustomPerCatalog => {
                "custom_per_catalog is an environment role (seed 001); grant it on env/<id>, then grant roles per catalog"
            }
            BuiltinRole::Writer | BuiltinRole::Reader => {
                "within a team, roles are custom roles (seed 002): grant role/<id> on the team"
            }
        }),
        RoleRef::Custom(_) if !matches!(kind, NodeKind::Org | NodeKind::Team) => Some(
            "custom roles are granted within a team or an organization: on team/<id> or org/<id>",
        ),
        _ => None,
    }
}

/// `(message, hint)` for a scope outside the vocabulary.
fn scope_problem(scope: &str) -> Option<(String, String)> {
    let Some((resource, verb)) = scope.split_once(':') else {
        return Some((
            format!("invalid scope {scope:?}"),
            "scopes are written resource:verb, e.g. user:create".into(),
        ));
    };
    if matches!(resource, "user" | "teams") {
        if KNOWN_SCOPES.contains(&scope) {
            return None;
        }
        return Some((
            format!("unknown scope {scope:?}"),
            format!(
                "known {resource} scopes: {}",
                KNOWN_SCOPES
                    .iter()
                    .filter(|s| s.starts_with(resource))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let resource_ok = !resource.is_empty()
        && resource
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if resource_ok && RESOURCE_SCOPE_VERBS.contains(&verb) {
        None
    } else {
        Some((
            format!("invalid scope {scope:?}"),
            "resource scopes are <object kind>:read or <object kind>:write, e.g. site:write".into(),
        ))
    }
}

/// Whether `e` passes compilation's check of an email address.
pub fn plausible_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !e.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Reports each cycle in the org tree once, at its first member.
fn report_org_cycles(c: &mut Compiler<'_>, dir: &Directory, body: &Body) {
    let n = body.orgs.len();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; n];
    for start in 0..n {
        let mut path = Vec::new();
        let mut cur = start;
        loop {
            match state[cur] {
                2 => break,
                1 => {
                    let from = path.iter().position(|&p| p == cur).unwrap_or(0);
                    let cycle = &path[from..];
                    let first = cycle.iter().copied().min().unwrap_or(cur);
                    let names: Vec<&str> = cycle
                        .iter()
                        .chain(std::iter::once(&cur))
                        .map(|&i| dir.organizations[i].id.as_str())
                        .collect();
                    c.problem(
                        Problem::new(
                            format!("/organizations/{first}/parent"),
                            format!("the organization tree has a cycle: {}", names.join(" → ")),
                        )
                        .hint("every organization must lead up to the domain organization"),
                    );
                    break;
                }
                _ => {}
            }
            state[cur] = 1;
            path.push(cur);
            // A parent left unresolved (unknown id) was reported already and
            // resolved to 0; stop there instead of inventing a cycle.
            let parent = dir.organizations[cur]
                .parent
                .as_deref()
                .and_then(|p| c.orgs.get(p));
            match parent {
                Some(p) => cur = p as usize,
                None => break,
            }
        }
        for p in path {
            state[p] = 2;
        }
    }
}
