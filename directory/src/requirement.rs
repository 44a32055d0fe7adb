//! Which action on which resource each operation is: the questions the
//! engine answers before a write. Documented in `docs/directory.md`
//! ("Who may write what"); every rule of the seeds about managing
//! accounts is the engine's, this only names the question.
//!
//! Operations are decided against the revision the change applies to, so
//! an operation that names what the same change creates is asked about
//! the nearest thing that exists (a new organization: its parent).

use portcullis_snapshots::source::{Directory, Grant, PermissionGrant};
use portcullis_snapshots::vocabulary::{AdminRole, Permission};

use crate::operation::Operation;

/// One question for the engine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Requirement {
    /// An action of the vocabulary.
    pub action: &'static str,
    /// A resource reference.
    pub resource: String,
}

fn need(action: &'static str, resource: String) -> Requirement {
    Requirement { action, resource }
}

/// The domain organization (the one without a parent), as a resource.
pub fn domain(dir: &Directory) -> String {
    dir.organizations
        .iter()
        .find(|o| o.parent.is_none())
        .map_or_else(|| "org/".to_string(), |o| format!("org/{}", o.id))
}

fn env_org(dir: &Directory, env: &str) -> Option<String> {
    dir.environments
        .iter()
        .find(|e| e.id == env)
        .map(|e| format!("org/{}", e.organization))
}

fn catalog_org(dir: &Directory, catalog: &str) -> Option<String> {
    dir.catalogs
        .iter()
        .find(|c| c.id == catalog)
        .and_then(|c| env_org(dir, &c.environment))
}

fn team_org(dir: &Directory, team: &str) -> Option<String> {
    dir.teams
        .iter()
        .find(|t| t.id == team)
        .map(|t| format!("org/{}", t.organization))
}

/// The organization a node of the tree belongs to (`org/…` for itself).
/// An unknown node is returned as it is: the engine denies it as unknown.
pub fn node_org(dir: &Directory, node: &str) -> String {
    let found = if let Some(id) = node.strip_prefix("env/") {
        env_org(dir, id)
    } else if let Some(id) = node.strip_prefix("catalog/") {
        catalog_org(dir, id)
    } else if let Some(id) = node.strip_prefix("object/") {
        dir.objects
            .iter()
            .find(|o| o.id == id)
            .and_then(|o| parent_org(dir, &o.parent))
    } else if node.starts_with("org/") {
        Some(node.to_string())
    } else {
        None
    };
    found.unwrap_or_else(|| node.to_string())
}

fn parent_org(dir: &Directory, parent: &str) -> Option<String> {
    if let Some(id) = parent.strip_prefix("catalog/") {
        catalog_org(dir, id)
    } else if let Some(id) = parent.strip_prefix("team/") {
        team_org(dir, id)
    } else {
        None
    }
}

fn user_org(dir: &Directory, username: &str) -> Option<String> {
    dir.users
        .iter()
        .find(|u| u.username == username)
        .map(|u| format!("org/{}", u.organization))
}

fn org_of_parent(dir: &Directory, parent: Option<&str>) -> String {
    match parent {
        Some(p) => format!("org/{p}"),
        None => domain(dir),
    }
}

fn owner_level(role: Option<AdminRole>) -> bool {
    matches!(role, Some(AdminRole::Owner | AdminRole::SuperAdministrator))
}

/// Who may grant: a role on a team is the team's business (seed 002:
/// roles inside a team stay inside it); on the tree, access management of
/// the organization the node is in (seed 001's Admin: "access").
fn grant_requirement(dir: &Directory, g: &Grant) -> Requirement {
    if g.on.starts_with("team/") {
        need("team:update", g.on.clone())
    } else {
        need("org:access", node_org(dir, &g.on))
    }
}

fn permission_requirement(dir: &Directory, p: &PermissionGrant) -> Requirement {
    let on = p.on.clone().unwrap_or_else(|| domain(dir));
    if p.permission == Permission::SuperAdmin {
        // Making someone Super Admin is an owner-level act.
        need("admin:domain_settings", domain(dir))
    } else {
        need("org:access", on)
    }
}

/// The questions `op` asks, about `dir` as it is before the change.
pub fn requirements(dir: &Directory, op: &Operation) -> Vec<Requirement> {
    use Operation as O;
    let user = |u: &str| format!("user/{u}");
    match op {
        O::CreateOrganization { organization: o } => {
            if o.parent.is_none() {
                vec![need("admin:domain_settings", domain(dir))]
            } else {
                vec![need(
                    "org:settings",
                    org_of_parent(dir, o.parent.as_deref()),
                )]
            }
        }
        O::UpdateOrganization { organization: o } => {
            let mut v = vec![need("org:settings", format!("org/{}", o.id))];
            let old = dir.organizations.iter().find(|x| x.id == o.id);
            if let Some(old) = old
                && old.parent != o.parent
            {
                // Moving an organization: settings where it goes too.
                v.push(need(
                    "org:settings",
                    org_of_parent(dir, o.parent.as_deref()),
                ));
            }
            v
        }
        O::DeleteOrganization { id } => {
            let parent = dir
                .organizations
                .iter()
                .find(|o| o.id == *id)
                .and_then(|o| o.parent.clone());
            match parent {
                Some(p) => vec![need("org:settings", format!("org/{p}"))],
                None => vec![need("admin:domain_settings", format!("org/{id}"))],
            }
        }
        O::CreateEnvironment { environment: e } | O::UpdateEnvironment { environment: e } => {
            let mut v = vec![need("org:settings", format!("org/{}", e.organization))];
            if let Some(old) = env_org(dir, &e.id)
                && old != format!("org/{}", e.organization)
            {
                v.push(need("org:settings", old));
            }
            v
        }
        O::DeleteEnvironment { id } => {
            vec![need(
                "org:settings",
                env_org(dir, id).unwrap_or_else(|| format!("env/{id}")),
            )]
        }
        O::CreateCatalog { catalog: c } | O::UpdateCatalog { catalog: c } => {
            // Seed 003: configuring data sources is an administrator function.
            let mut v = vec![need(
                "admin:data_sources",
                env_org(dir, &c.environment).unwrap_or_else(|| format!("env/{}", c.environment)),
            )];
            if let Some(old) = catalog_org(dir, &c.id)
                && Some(&old) != env_org(dir, &c.environment).as_ref()
            {
                v.push(need("admin:data_sources", old));
            }
            v
        }
        O::DeleteCatalog { id } => vec![need(
            "admin:data_sources",
            catalog_org(dir, id).unwrap_or_else(|| format!("catalog/{id}")),
        )],
        O::CreateObject { object: o } | O::UpdateObject { object: o } => {
            let mut v = vec![object_parent(&o.parent)];
            if let Some(old) = dir.objects.iter().find(|x| x.id == o.id)
                && old.parent != o.parent
            {
                v.push(object_parent(&old.parent));
            }
            v
        }
        O::DeleteObject { id } => match dir.objects.iter().find(|o| o.id == *id) {
            Some(o) => vec![object_parent(&o.parent)],
            None => vec![need("write", format!("object/{id}"))],
        },
        O::InviteUser { user: u } => {
            let mut v = vec![need("user:invite", format!("org/{}", u.organization))];
            if u.admin_role.is_some() {
                v.push(admin_role_requirement(
                    dir,
                    &u.organization,
                    u.admin_role,
                    None,
                ));
            }
            v
        }
        O::UpdateUser { username, set } => {
            let mut v = vec![need("user:update", user(username))];
            if set.email.is_some() {
                v.push(need("user:change_email", user(username)));
            }
            if let Some(org) = &set.organization {
                v.push(need("user:invite", format!("org/{org}")));
            }
            if set.sp_role.is_some() {
                v.push(need(
                    "sp:permissions",
                    user_org(dir, username).unwrap_or_else(|| domain(dir)),
                ));
            }
            v
        }
        O::DeactivateUser { username } => vec![need("user:deactivate", user(username))],
        O::ReactivateUser { username } => vec![need("user:reactivate", user(username))],
        O::SetUserExpiry { username, .. } => vec![need("user:update_expiry", user(username))],
        O::DeleteUser { username } => vec![need("user:delete", user(username))],
        O::SetAdminRole {
            username,
            admin_role,
        } => {
            let target = dir.users.iter().find(|u| u.username == *username);
            let org = target.map_or_else(String::new, |u| u.organization.clone());
            vec![
                need("user:update", user(username)),
                admin_role_requirement(dir, &org, *admin_role, target.and_then(|u| u.admin_role)),
            ]
        }
        O::CreateServiceAccount { service_account: s }
        | O::UpdateServiceAccount { service_account: s } => {
            let mut v = vec![need("org:access", format!("org/{}", s.organization))];
            if let Some(old) = dir.service_accounts.iter().find(|x| x.id == s.id)
                && old.organization != s.organization
            {
                v.push(need("org:access", format!("org/{}", old.organization)));
            }
            v
        }
        O::DeleteServiceAccount { id } => {
            let org = dir
                .service_accounts
                .iter()
                .find(|s| s.id == *id)
                .map_or_else(
                    || format!("service/{id}"),
                    |s| format!("org/{}", s.organization),
                );
            vec![need("org:access", org)]
        }
        // Seed 000: only owners and super administrators manage API keys.
        O::CreateApiKey { .. } | O::RevokeApiKey { .. } => {
            vec![need("admin:api_keys", domain(dir))]
        }
        O::CreateGroup { .. } | O::UpdateGroup { .. } | O::DeleteGroup { .. } => {
            vec![need("manage:user_groups", domain(dir))]
        }
        O::AddGroupMember { .. } | O::RemoveGroupMember { .. } => {
            vec![need("edit:user_groups", domain(dir))]
        }
        O::CreateTeam { team } => vec![need("org:members", format!("org/{}", team.organization))],
        O::UpdateTeam { team } => {
            let mut v = vec![need("team:update", format!("team/{}", team.id))];
            if let Some(old) = dir.teams.iter().find(|t| t.id == team.id) {
                if old.owner != team.owner || old.organization != team.organization {
                    // A new owner or organization is the organization's call.
                    v.push(need("org:members", format!("org/{}", old.organization)));
                }
                for gone in old.members.iter().filter(|m| !team.members.contains(m)) {
                    v.push(need(
                        "team:remove_member",
                        format!("team/{}/member/{gone}", team.id),
                    ));
                }
                if team.members.iter().any(|m| !old.members.contains(m)) {
                    v.push(need("team:add_member", format!("team/{}", team.id)));
                }
            }
            v
        }
        O::DeleteTeam { id } => vec![need(
            "org:members",
            team_org(dir, id).unwrap_or_else(|| format!("team/{id}")),
        )],
        O::AddTeamMember { team, .. } => vec![need("team:add_member", format!("team/{team}"))],
        O::RemoveTeamMember { team, username } => vec![need(
            "team:remove_member",
            format!("team/{team}/member/{username}"),
        )],
        O::CreateCustomRole { .. } | O::UpdateCustomRole { .. } | O::DeleteCustomRole { .. } => {
            vec![need("org:access", domain(dir))]
        }
        O::AddGrant { grant } | O::RemoveGrant { grant } => vec![grant_requirement(dir, grant)],
        O::AddPermission { permission } | O::RemovePermission { permission } => {
            vec![permission_requirement(dir, permission)]
        }
        // Seed 000: SSO and SCIM are configured by owners and super
        // administrators only.
        O::SetSetting { name, .. } => vec![need(name.action(), domain(dir))],
    }
}

fn object_parent(parent: &str) -> Requirement {
    if parent.starts_with("team/") {
        need("team:update", parent.to_string())
    } else {
        need("write", parent.to_string())
    }
}

/// Giving or taking an administrator role: owner-level roles are the
/// owners' to give and take (seed 003: administrators cannot administer
/// owners); the administrator role is access management of the user's
/// organization.
fn admin_role_requirement(
    dir: &Directory,
    org: &str,
    new: Option<AdminRole>,
    old: Option<AdminRole>,
) -> Requirement {
    if owner_level(new) || owner_level(old) {
        need("admin:domain_settings", domain(dir))
    } else {
        need("org:access", format!("org/{org}"))
    }
}
