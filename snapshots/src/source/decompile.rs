//! [`Body`] → [`Directory`]: the inverse of compilation, for `snapshot diff`
//! and the round-trip property (source → snapshot → source is the identity).

use super::model::*;
use crate::body::*;
use crate::vocabulary::NodeKind;

/// Rebuilds the directory source a body was compiled from, in source order.
/// `revision` goes into the directory's `revision` field.
pub fn decompile(b: &Body, revision: Option<u64>) -> Directory {
    let st = |s: Str| b.str(s).to_string();
    let opt = |s: Option<Str>| s.map(st);
    let org_id = |i: u32| {
        b.orgs
            .get(i as usize)
            .map_or_else(String::new, |o| st(o.id))
    };
    Directory {
        format: SOURCE_FORMAT,
        revision,
        organizations: b
            .orgs
            .iter()
            .map(|o| Organization {
                id: st(o.id),
                name: opt(o.name),
                parent: o.parent.map(org_id),
            })
            .collect(),
        environments: b
            .envs
            .iter()
            .map(|e| Environment {
                id: st(e.id),
                name: opt(e.name),
                organization: org_id(e.org),
                tier: e.tier,
            })
            .collect(),
        catalogs: b
            .catalogs
            .iter()
            .map(|c| Catalog {
                id: st(c.id),
                name: opt(c.name),
                environment: b
                    .envs
                    .get(c.env as usize)
                    .map_or_else(String::new, |e| st(e.id)),
                kind: c.kind,
                connector: opt(c.connector),
            })
            .collect(),
        objects: b
            .objects
            .iter()
            .map(|o| Object {
                id: st(o.id),
                name: opt(o.name),
                kind: st(o.kind),
                parent: node_ref(b, o.parent),
            })
            .collect(),
        users: b
            .users
            .iter()
            .map(|u| User {
                username: st(u.username),
                name: opt(u.name),
                first_name: opt(u.first_name),
                last_name: opt(u.last_name),
                email: st(u.email),
                phone: opt(u.phone),
                organization: org_id(u.org),
                timezone: opt(u.timezone),
                locale: opt(u.locale),
                status: u.status,
                allow_login: u.allow_login,
                email_verified: u.email_verified,
                sso: u.sso,
                expires_at: u.expires_at.map(Timestamp),
                last_login: u.last_login.map(Timestamp),
                start_page: opt(u.start_page),
                admin_role: u.admin_role,
                sp_role: u.sp_role,
            })
            .collect(),
        service_accounts: b
            .service_accounts
            .iter()
            .map(|a| ServiceAccount {
                id: st(a.id),
                name: opt(a.name),
                description: opt(a.description),
                organization: org_id(a.org),
                default_access: a.default_access,
                status: a.status,
            })
            .collect(),
        api_keys: b
            .api_keys
            .iter()
            .map(|k| ApiKey {
                id: st(k.id),
                name: opt(k.name),
                sha256: hex::encode(k.sha256),
                created_by: format!("user/{}", user_name(b, k.creator)),
                created_at: k.created_at.map(Timestamp),
                expires_at: k.expires_at.map(Timestamp),
                revoked: k.revoked,
            })
            .collect(),
        groups: b
            .groups
            .iter()
            .map(|g| Group {
                id: st(g.id),
                name: st(g.name),
                code: st(g.code),
                description: opt(g.description),
                members: g.members.iter().map(|&m| principal_ref(b, m)).collect(),
            })
            .collect(),
        teams: b
            .teams
            .iter()
            .map(|t| Team {
                id: st(t.id),
                name: opt(t.name),
                organization: org_id(t.org),
                owner: user_name(b, t.owner).to_string(),
                members: t
                    .members
                    .iter()
                    .map(|&m| user_name(b, m).to_string())
                    .collect(),
            })
            .collect(),
        custom_roles: b
            .custom_roles
            .iter()
            .map(|r| CustomRole {
                id: st(r.id),
                name: opt(r.name),
                description: opt(r.description),
                scopes: r.scopes.iter().map(|&s| st(s)).collect(),
            })
            .collect(),
        grants: b
            .grants
            .iter()
            .map(|g| Grant {
                principal: principal_ref(b, g.principal),
                role: role_name(b, g.role),
                on: node_ref(b, g.on),
            })
            .collect(),
        permissions: b
            .permissions
            .iter()
            .map(|p| PermissionGrant {
                principal: principal_ref(b, p.principal),
                permission: p.permission,
                entity: p.entity,
                on: p.org.map(|o| format!("org/{}", org_id(o))),
            })
            .collect(),
    }
}

fn user_name(b: &Body, i: u32) -> &str {
    b.users.get(i as usize).map_or("", |u| b.str(u.username))
}

/// `user/…`, `service/…` or `group/…`.
pub fn principal_ref(b: &Body, p: PrincipalRef) -> String {
    match p {
        PrincipalRef::User(i) => format!("user/{}", user_name(b, i)),
        PrincipalRef::Service(i) => format!(
            "service/{}",
            b.service_accounts
                .get(i as usize)
                .map_or("", |a| b.str(a.id))
        ),
        PrincipalRef::Group(i) => format!(
            "group/{}",
            b.groups.get(i as usize).map_or("", |g| b.str(g.id))
        ),
    }
}

/// `org/…`, `env/…`, `catalog/…`, `object/…` or `team/…`.
pub fn node_ref(b: &Body, n: NodeRef) -> String {
    let id = match n {
        NodeRef::Org(i) => b.orgs.get(i as usize).map(|x| x.id),
        NodeRef::Env(i) => b.envs.get(i as usize).map(|x| x.id),
        NodeRef::Catalog(i) => b.catalogs.get(i as usize).map(|x| x.id),
        NodeRef::Object(i) => b.objects.get(i as usize).map(|x| x.id),
        NodeRef::Team(i) => b.teams.get(i as usize).map(|x| x.id),
    };
    let kind: NodeKind = n.kind();
    format!("{}/{}", kind.prefix(), id.map_or("", |s| b.str(s)))
}

/// A built-in role name or `role/<id>`.
pub fn role_name(b: &Body, r: RoleRef) -> String {
    match r {
        RoleRef::Builtin(role) => role.name().to_string(),
        RoleRef::Custom(i) => format!(
            "role/{}",
            b.custom_roles.get(i as usize).map_or("", |c| b.str(c.id))
        ),
    }
}
