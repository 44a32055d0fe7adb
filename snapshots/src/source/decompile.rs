//! [`Body`] → [`Directory`]: the inverse of compilation, for `snapshot diff`
//! and the round-trip property (source → snapshot → source is the identity).

use super::model::*;
use crate::body::*;

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
                parent: b.node_ref(o.parent),
            })
            .collect(),
        users: b
            .users
            .iter()
            .map(|u| User {
                username: st(u.username),
                name: opt(u.name.get()),
                first_name: opt(u.first_name.get()),
                last_name: opt(u.last_name.get()),
                email: st(u.email),
                phone: opt(u.phone.get()),
                organization: org_id(u.org),
                timezone: opt(u.timezone.get()),
                locale: opt(u.locale.get()),
                status: u.status,
                allow_login: u.allow_login,
                email_verified: u.email_verified,
                sso: u.sso,
                expires_at: u.expires_at.get().map(Timestamp),
                last_login: u.last_login.get().map(Timestamp),
                start_page: opt(u.start_page.get()),
                admin_role: u.admin_role,
                sp_role: u.sp_role,
                external_id: None,
                created_at: None,
                updated_at: None,
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
                created_by: format!("user/{}", b.user_name(k.creator)),
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
                members: g.members.iter().map(|&m| b.principal_ref(m)).collect(),
                organization: None,
                external_id: None,
                created_at: None,
                updated_at: None,
            })
            .collect(),
        teams: b
            .teams
            .iter()
            .map(|t| Team {
                id: st(t.id),
                name: opt(t.name),
                organization: org_id(t.org),
                owner: b.user_name(t.owner).to_string(),
                members: t
                    .members
                    .iter()
                    .map(|&m| b.user_name(m).to_string())
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
                principal: b.principal_ref(g.principal),
                role: b.role_name(g.role),
                on: b.node_ref(g.on),
            })
            .collect(),
        permissions: b
            .permissions
            .iter()
            .map(|p| PermissionGrant {
                principal: b.principal_ref(p.principal),
                permission: p.permission,
                entity: p.entity,
                on: p.org.map(|o| format!("org/{}", org_id(o))),
            })
            .collect(),
    }
}
