//! Invariants of a decoded body. The engine indexes bodies without bounds
//! checks of its own and walks the org tree by parent links, so a body from
//! a faulty or hostile tool must be refused here, not discovered as a panic
//! or an endless loop later.
#![allow(
    clippy::indexing_slicing,
    reason = "`depth` has one entry per organization, and every parent index is range-checked before the walk"
)]

use crate::body::{
    ApiKeyRec, Body, GrantRec, GroupRec, NodeRef, PermissionRec, PrincipalRef, RoleRef, Str,
    TeamRec, UserRec,
};
use crate::error::DecodeError;

fn bad(msg: String) -> DecodeError {
    DecodeError::Inconsistent(msg)
}

fn in_range(what: &str, i: u32, len: usize) -> Result<(), DecodeError> {
    if (i as usize) < len {
        Ok(())
    } else {
        Err(bad(format!("{what} index {i} out of range (len {len})")))
    }
}

/// Checks every invariant the engine relies on.
pub fn check_body(b: &Body) -> Result<(), DecodeError> {
    check_strings(b)?;
    let n_str = b.strings.len();
    let s = |what: &str, v: Str| in_range(what, v.0, n_str);
    // A match, not `map_or(Ok(()), …)`: that builds and drops an error-sized
    // `Result` for every absent field, which was most of decoding a user.
    let opt = |what: &str, v: Option<Str>| match v {
        Some(v) => s(what, v),
        None => Ok(()),
    };

    check_org_tree(b)?;
    for o in &b.orgs {
        s("org id", o.id)?;
        opt("org name", o.name)?;
    }
    for e in &b.envs {
        s("env id", e.id)?;
        opt("env name", e.name)?;
        in_range("env org", e.org, b.orgs.len())?;
    }
    for c in &b.catalogs {
        s("catalog id", c.id)?;
        opt("catalog name", c.name)?;
        opt("catalog connector", c.connector)?;
        in_range("catalog env", c.env, b.envs.len())?;
    }
    for o in &b.objects {
        s("object id", o.id)?;
        opt("object name", o.name)?;
        s("object kind", o.kind)?;
        match o.parent {
            NodeRef::Catalog(_) | NodeRef::Team(_) => node(b, o.parent)?,
            other => {
                return Err(bad(format!(
                    "object parent {other:?} is not a catalog or team"
                )));
            }
        }
    }
    for u in &b.users {
        check_user(b, u)?;
    }
    for a in &b.service_accounts {
        s("service account id", a.id)?;
        opt("service account name", a.name)?;
        opt("service account description", a.description)?;
        in_range("service account org", a.org, b.orgs.len())?;
    }
    for k in &b.api_keys {
        check_api_key(b, k)?;
    }
    for g in &b.groups {
        check_group(b, g)?;
    }
    for t in &b.teams {
        check_team(b, t)?;
    }
    for r in &b.custom_roles {
        s("custom role id", r.id)?;
        opt("custom role name", r.name)?;
        opt("custom role description", r.description)?;
        for &sc in &r.scopes {
            s("custom role scope", sc)?;
        }
    }
    for g in &b.grants {
        check_grant(b, g)?;
    }
    for p in &b.permissions {
        check_permission(b, p)?;
    }
    Ok(())
}

fn strs(b: &Body, what: &str, v: Str) -> Result<(), DecodeError> {
    in_range(what, v.0, b.strings.len())
}

fn opt_str(b: &Body, what: &str, v: Option<Str>) -> Result<(), DecodeError> {
    match v {
        Some(v) => strs(b, what, v),
        None => Ok(()),
    }
}

// One check per kind of row, against the tables of `b`: what `check_body`
// runs on every row, and what a delta applied in place runs on the rows it
// brings (`policy-wasm`'s patch).

/// A user's references.
pub fn check_user(b: &Body, u: &UserRec) -> Result<(), DecodeError> {
    for v in [u.username, u.email] {
        strs(b, "user field", v)?;
    }
    for v in u.optional_strings() {
        opt_str(b, "user field", v.get())?;
    }
    in_range("user org", u.org, b.orgs.len())
}

/// An API key's references.
pub fn check_api_key(b: &Body, k: &ApiKeyRec) -> Result<(), DecodeError> {
    strs(b, "api key id", k.id)?;
    opt_str(b, "api key name", k.name)?;
    in_range("api key creator", k.creator, b.users.len())
}

/// A group's references and members (users and service accounts only).
pub fn check_group(b: &Body, g: &GroupRec) -> Result<(), DecodeError> {
    for v in [g.id, g.name, g.code] {
        strs(b, "group field", v)?;
    }
    opt_str(b, "group description", g.description)?;
    for m in &g.members {
        match *m {
            PrincipalRef::Group(_) => return Err(bad("a group is a member of a group".into())),
            other => principal(b, other)?,
        }
    }
    Ok(())
}

/// A team's references, owner and members.
pub fn check_team(b: &Body, t: &TeamRec) -> Result<(), DecodeError> {
    strs(b, "team id", t.id)?;
    opt_str(b, "team name", t.name)?;
    in_range("team org", t.org, b.orgs.len())?;
    in_range("team owner", t.owner, b.users.len())?;
    for &m in &t.members {
        in_range("team member", m, b.users.len())?;
    }
    Ok(())
}

/// A role grant: holder, node, and a role that exists there.
pub fn check_grant(b: &Body, g: &GrantRec) -> Result<(), DecodeError> {
    principal(b, g.principal)?;
    node(b, g.on)?;
    match g.role {
        RoleRef::Builtin(role) => {
            if !role.exists_at(g.on.kind()) {
                return Err(bad(format!("role {role:?} granted on a {:?}", g.on.kind())));
            }
        }
        RoleRef::Custom(i) => {
            in_range("custom role", i, b.custom_roles.len())?;
            if !matches!(g.on, NodeRef::Org(_) | NodeRef::Team(_)) {
                return Err(bad("custom role granted outside an org or team".into()));
            }
        }
    }
    Ok(())
}

/// An individual permission: holder, organization, entity.
pub fn check_permission(b: &Body, p: &PermissionRec) -> Result<(), DecodeError> {
    principal(b, p.principal)?;
    if let Some(org) = p.org {
        in_range("permission org", org, b.orgs.len())?;
    }
    if p.permission.needs_entity() != p.entity.is_some() {
        return Err(bad(format!(
            "permission {:?} with entity {:?}",
            p.permission, p.entity
        )));
    }
    Ok(())
}

fn check_strings(b: &Body) -> Result<(), DecodeError> {
    let mut prev = 0u32;
    for &end in &b.strings.ends {
        if end < prev || end as usize > b.strings.blob.len() {
            return Err(bad(format!(
                "string table offset {end} out of order or range"
            )));
        }
        if !b.strings.blob.is_char_boundary(end as usize) {
            return Err(bad(format!("string table offset {end} splits a character")));
        }
        prev = end;
    }
    Ok(())
}

/// Exactly one root (the domain), every other org reaches it.
fn check_org_tree(b: &Body) -> Result<(), DecodeError> {
    let n = b.orgs.len();
    in_range("domain org", b.domain, n)?;
    for (i, o) in b.orgs.iter().enumerate() {
        match o.parent {
            None if i as u32 == b.domain => {}
            None => return Err(bad(format!("org {i} has no parent but is not the domain"))),
            Some(_) if i as u32 == b.domain => {
                return Err(bad("the domain org has a parent".into()));
            }
            Some(p) => in_range("org parent", p, n)?,
        }
    }
    // Depth per org, memoized, so a deep chain costs O(n) in all.
    let mut depth: Vec<u32> = vec![u32::MAX; n];
    depth[b.domain as usize] = 0;
    let mut chain = Vec::new();
    for start in 0..n {
        let mut cur = start;
        chain.clear();
        while depth[cur] == u32::MAX {
            if chain.len() > n {
                return Err(bad("the organization tree has a cycle".into()));
            }
            chain.push(cur);
            // Only the domain has no parent, and its depth is known.
            cur = b.orgs[cur].parent.unwrap_or(b.domain) as usize;
        }
        let mut d = depth[cur];
        for &c in chain.iter().rev() {
            d += 1;
            depth[c] = d;
        }
    }
    Ok(())
}

fn node(b: &Body, n: NodeRef) -> Result<(), DecodeError> {
    match n {
        NodeRef::Org(i) => in_range("org", i, b.orgs.len()),
        NodeRef::Env(i) => in_range("env", i, b.envs.len()),
        NodeRef::Catalog(i) => in_range("catalog", i, b.catalogs.len()),
        NodeRef::Object(i) => in_range("object", i, b.objects.len()),
        NodeRef::Team(i) => in_range("team", i, b.teams.len()),
    }
}

fn principal(b: &Body, p: PrincipalRef) -> Result<(), DecodeError> {
    match p {
        PrincipalRef::User(i) => in_range("user", i, b.users.len()),
        PrincipalRef::Service(i) => in_range("service account", i, b.service_accounts.len()),
        PrincipalRef::Group(i) => in_range("group", i, b.groups.len()),
    }
}
