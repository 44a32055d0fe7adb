//! What a write does: operations on the directory model, and how each
//! changes a [`Directory`].
//!
//! An operation names its target by the model's own ids (a username, an
//! organization id, a grant's triple). Applying one to a directory either
//! changes it or refuses with [`OpError`] (404, 409, 422); the caller
//! applies a change's operations to a copy and keeps the copy only when
//! every one applied and the result validates, so nothing is half-done.

use portcullis_snapshots::source::{
    ApiKey, Catalog, CustomRole, Directory, Environment, Grant, Group, Object, Organization,
    PermissionGrant, ServiceAccount, Team, Timestamp, User,
};
use portcullis_snapshots::vocabulary::{AdminRole, SpRole, UserStatus};
use serde::{Deserialize, Serialize};

/// One operation of a change. JSON: `{"op": "<name>", …fields}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// A new organization (409 if the id exists).
    CreateOrganization { organization: Organization },
    /// Replaces an organization (404 if unknown).
    UpdateOrganization { organization: Organization },
    /// Removes an organization.
    DeleteOrganization { id: String },
    /// A new environment.
    CreateEnvironment { environment: Environment },
    /// Replaces an environment.
    UpdateEnvironment { environment: Environment },
    /// Removes an environment.
    DeleteEnvironment { id: String },
    /// A new catalog.
    CreateCatalog { catalog: Catalog },
    /// Replaces a catalog.
    UpdateCatalog { catalog: Catalog },
    /// Removes a catalog.
    DeleteCatalog { id: String },
    /// A new object.
    CreateObject { object: Object },
    /// Replaces an object.
    UpdateObject { object: Object },
    /// Removes an object.
    DeleteObject { id: String },
    /// Invites (creates) a user.
    InviteUser { user: User },
    /// Edits a user's profile; a changed email needs verifying again.
    UpdateUser { username: String, set: UserChanges },
    /// Deactivates a user.
    DeactivateUser { username: String },
    /// Reactivates a deactivated, disabled or banned user.
    ReactivateUser { username: String },
    /// Sets or clears a user's expiry.
    SetUserExpiry {
        username: String,
        expires_at: Option<Timestamp>,
    },
    /// Gives or takes an administrator role.
    SetAdminRole {
        username: String,
        admin_role: Option<AdminRole>,
    },
    /// Deletes a user.
    DeleteUser { username: String },
    /// A new service account.
    CreateServiceAccount { service_account: ServiceAccount },
    /// Replaces a service account.
    UpdateServiceAccount { service_account: ServiceAccount },
    /// Removes a service account.
    DeleteServiceAccount { id: String },
    /// A new API key. It acts as its creator — the acting user (an API key
    /// creating one: the user it acts as) —, never as a user named in the
    /// request, so no one mints a key that impersonates someone else. The
    /// service makes the secret and answers it once; only its SHA-256 is
    /// stored.
    CreateApiKey {
        id: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        expires_at: Option<Timestamp>,
    },
    /// Revokes an API key (it stays listed, dead).
    RevokeApiKey { id: String },
    /// A new group.
    CreateGroup { group: Group },
    /// Replaces a group.
    UpdateGroup { group: Group },
    /// Removes a group.
    DeleteGroup { id: String },
    /// Adds `user/…` or `service/…` to a group.
    AddGroupMember { group: String, member: String },
    /// Removes a member from a group.
    RemoveGroupMember { group: String, member: String },
    /// A new team.
    CreateTeam { team: Team },
    /// Replaces a team.
    UpdateTeam { team: Team },
    /// Removes a team.
    DeleteTeam { id: String },
    /// Adds a user to a team.
    AddTeamMember { team: String, username: String },
    /// Removes a user from a team.
    RemoveTeamMember { team: String, username: String },
    /// A new custom role.
    CreateCustomRole { role: CustomRole },
    /// Replaces a custom role.
    UpdateCustomRole { role: CustomRole },
    /// Removes a custom role.
    DeleteCustomRole { id: String },
    /// Grants a role on a node (or within a team).
    AddGrant { grant: Grant },
    /// Removes a grant.
    RemoveGrant { grant: Grant },
    /// Grants an individual permission.
    AddPermission { permission: PermissionGrant },
    /// Removes an individual permission.
    RemovePermission { permission: PermissionGrant },
    /// Sets an administrators' setting (single sign-on or SCIM
    /// provisioning): owner-level functions (seed 000). The value is the
    /// setting's JSON object, kept as given.
    SetSetting {
        name: Setting,
        value: serde_json::Map<String, serde_json::Value>,
    },
}

/// The administrators' settings the service keeps beside the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// Single sign-on.
    Sso,
    /// SCIM provisioning.
    Scim,
}

impl Setting {
    /// Its stored name, and its path segment.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Sso => "sso",
            Setting::Scim => "scim",
        }
    }

    /// The setting named `name`.
    pub fn of(name: &str) -> Option<Setting> {
        match name {
            "sso" => Some(Setting::Sso),
            "scim" => Some(Setting::Scim),
            _ => None,
        }
    }

    /// The engine's action for configuring it.
    pub fn action(self) -> &'static str {
        match self {
            Setting::Sso => "admin:sso",
            Setting::Scim => "admin:scim",
        }
    }
}

/// The `scim` setting: which credentials provision which organization.
/// A credential is `key/<api key id>` or `service/<service account id>`;
/// it reaches `/scim/v2/<org>/…` of the organizations that name it and no
/// other, and every change it makes is still decided by the engine as the
/// key's creator (or the service account).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimSetting {
    /// `false` turns SCIM off for every organization (default `true`).
    #[serde(default = "enabled", skip_serializing_if = "Clone::clone")]
    pub enabled: bool,
    /// Per organization id.
    #[serde(default)]
    pub organizations: std::collections::BTreeMap<String, ScimOrganization>,
}

fn enabled() -> bool {
    true
}

/// One organization's SCIM provisioning.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimOrganization {
    /// `key/<id>` and `service/<id>` allowed to provision it.
    #[serde(default)]
    pub credentials: Vec<String>,
}

impl Default for ScimSetting {
    fn default() -> ScimSetting {
        ScimSetting {
            enabled: true,
            organizations: std::collections::BTreeMap::new(),
        }
    }
}

impl ScimSetting {
    /// The setting as stored (`None`: absent or not this shape).
    pub fn of(value: Option<&serde_json::Value>) -> Option<ScimSetting> {
        value.and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Whether `credential` provisions `org`.
    pub fn allows(&self, org: &str, credential: &str) -> bool {
        self.enabled
            && self
                .organizations
                .get(org)
                .is_some_and(|o| o.credentials.iter().any(|c| c == credential))
    }

    /// Every problem of the setting against `dir`.
    fn problems(
        value: &serde_json::Map<String, serde_json::Value>,
        dir: &Directory,
    ) -> Result<(), OpError> {
        let s: ScimSetting = serde_json::from_value(serde_json::Value::Object(value.clone()))
            .map_err(|e| {
                OpError::Invalid(format!(
                    "the scim setting: {e}; write {{\"organizations\": {{\"<org>\": {{\"credentials\": [\"key/<api key id>\"]}}}}}}"
                ))
            })?;
        let mut problems = Vec::new();
        for (org, o) in &s.organizations {
            if !dir.organizations.iter().any(|x| x.id == *org) {
                problems.push(format!("organization {org:?} does not exist"));
            }
            for c in &o.credentials {
                let known = match c.split_once('/') {
                    Some(("key", id)) => dir.api_keys.iter().any(|k| k.id == id),
                    Some(("service", id)) => dir.service_accounts.iter().any(|x| x.id == id),
                    _ => {
                        problems.push(format!(
                            "{c:?} (for {org:?}) is neither key/<api key id> nor service/<id>"
                        ));
                        continue;
                    }
                };
                if !known {
                    problems.push(format!("{c:?} (for {org:?}) does not exist"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(OpError::Invalid(format!(
                "the scim setting: {}",
                problems.join("; ")
            )))
        }
    }
}

/// Profile fields `update_user` may set; absent fields are unchanged, an
/// empty string clears an optional one. The
/// username is not among them: it never changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_login: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_role: Option<SpRole>,
    /// The identity provider's id for the user (SCIM `externalId`); an
    /// empty string clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Why an operation cannot apply to the directory as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The target does not exist (404).
    #[error("{0} does not exist")]
    NotFound(String),
    /// The target exists already (409).
    #[error("{0} exists already; update it, or pick another id")]
    Exists(String),
    /// The operation contradicts itself or the model (422).
    #[error("{0}")]
    Invalid(String),
}

/// Which stored entity an operation touched: the storage rewrites these
/// rows (and only these) from the state after the change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityKey {
    /// The section of the directory (`users`, `grants`, …).
    pub kind: Kind,
    /// The entity's key within its section.
    pub key: String,
}

/// The sections of the directory, in the source's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Organization,
    Environment,
    Catalog,
    Object,
    User,
    ServiceAccount,
    ApiKey,
    Group,
    Team,
    CustomRole,
    Grant,
    Permission,
}

impl Kind {
    /// Every section, in the order the source lists them.
    pub const ALL: [Kind; 12] = [
        Kind::Organization,
        Kind::Environment,
        Kind::Catalog,
        Kind::Object,
        Kind::User,
        Kind::ServiceAccount,
        Kind::ApiKey,
        Kind::Group,
        Kind::Team,
        Kind::CustomRole,
        Kind::Grant,
        Kind::Permission,
    ];

    /// The stable name stored in the database.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Organization => "organization",
            Kind::Environment => "environment",
            Kind::Catalog => "catalog",
            Kind::Object => "object",
            Kind::User => "user",
            Kind::ServiceAccount => "service_account",
            Kind::ApiKey => "api_key",
            Kind::Group => "group",
            Kind::Team => "team",
            Kind::CustomRole => "custom_role",
            Kind::Grant => "grant",
            Kind::Permission => "permission",
        }
    }

    /// The kind stored under `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The key of a grant: its three fields (a grant has no id).
pub fn grant_key(g: &Grant) -> String {
    format!("{} {} {}", g.principal, g.role, g.on)
}

/// Whether `key` is [`grant_key`] of `g`, without making it.
fn grant_is(g: &Grant, key: &str) -> bool {
    key.strip_prefix(g.principal.as_str())
        .and_then(|r| r.strip_prefix(' '))
        .and_then(|r| r.strip_prefix(g.role.as_str()))
        .and_then(|r| r.strip_prefix(' '))
        == Some(g.on.as_str())
}

/// The key of an individual permission: its fields.
pub fn permission_key(p: &PermissionGrant) -> String {
    serde_json::to_string(p).unwrap_or_default()
}

/// The key of the `n`th of equal grants or permissions. A directory file
/// may list the same grant twice (the compiler accepts it, and the
/// generated benchmark directory does), so an import must keep both: the
/// second is `<key> #1`.
fn nth(key: String, n: usize) -> String {
    if n == 0 { key } else { format!("{key} #{n}") }
}

/// The base key and occurrence of a stored key.
fn split_nth(key: &str) -> (&str, usize) {
    match key.rsplit_once(" #") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (base, n.parse().unwrap_or(0))
        }
        _ => (key, 0),
    }
}

fn find_nth<T: Serialize>(items: &[T], n: usize, is: impl Fn(&T) -> bool) -> Option<String> {
    items
        .iter()
        .filter(|t| is(t))
        .nth(n)
        .and_then(|t| serde_json::to_string(t).ok())
}

/// One entity of a section, serialized as the source writes it.
pub fn entity_json(dir: &Directory, key: &EntityKey) -> Option<String> {
    let k = key.key.as_str();
    let json = |v: Option<String>| v;
    match key.kind {
        Kind::Organization => json(find(&dir.organizations, |o| o.id == k)),
        Kind::Environment => json(find(&dir.environments, |e| e.id == k)),
        Kind::Catalog => json(find(&dir.catalogs, |c| c.id == k)),
        Kind::Object => json(find(&dir.objects, |o| o.id == k)),
        Kind::User => json(find(&dir.users, |u| u.username == k)),
        Kind::ServiceAccount => json(find(&dir.service_accounts, |s| s.id == k)),
        Kind::ApiKey => json(find(&dir.api_keys, |a| a.id == k)),
        Kind::Group => json(find(&dir.groups, |g| g.id == k)),
        Kind::Team => json(find(&dir.teams, |t| t.id == k)),
        Kind::CustomRole => json(find(&dir.custom_roles, |r| r.id == k)),
        Kind::Grant => {
            let (base, n) = split_nth(k);
            // Compared field by field: a write that touches a grant must
            // not format a key for each of the directory's grants.
            find_nth(&dir.grants, n, |g| grant_is(g, base))
        }
        Kind::Permission => {
            let (base, n) = split_nth(k);
            find_nth(&dir.permissions, n, |p| permission_key(p) == base)
        }
    }
}

/// [`entity_json`], with the rows `key` names found already (`known`).
pub fn entity_json_known(dir: &Directory, key: &EntityKey, known: &Known) -> Option<String> {
    match (key.kind, known) {
        (Kind::User, Known { user: Some(i), .. })
            if dir.users.get(*i).is_some_and(|u| u.username == key.key) =>
        {
            dir.users
                .get(*i)
                .and_then(|u| serde_json::to_string(u).ok())
        }
        (
            Kind::Grant,
            Known {
                grants: Some(at), ..
            },
        ) => {
            let (base, n) = split_nth(&key.key);
            if !at
                .iter()
                .all(|&i| dir.grants.get(i).is_some_and(|g| grant_is(g, base)))
            {
                return entity_json(dir, key);
            }
            at.get(n)
                .and_then(|&i| dir.grants.get(i))
                .and_then(|g| serde_json::to_string(g).ok())
        }
        _ => entity_json(dir, key),
    }
}

fn find<T: Serialize>(items: &[T], pick: impl Fn(&T) -> bool) -> Option<String> {
    // From the end: keys are unique, and what a change creates is last.
    items
        .iter()
        .rev()
        .find(|t| pick(t))
        .and_then(|t| serde_json::to_string(t).ok())
}

/// Adds one stored entity (as [`entity_json`] wrote it) to `dir`.
pub fn push_entity(dir: &mut Directory, kind: Kind, json: &str) -> Result<(), serde_json::Error> {
    match kind {
        Kind::Organization => dir.organizations.push(serde_json::from_str(json)?),
        Kind::Environment => dir.environments.push(serde_json::from_str(json)?),
        Kind::Catalog => dir.catalogs.push(serde_json::from_str(json)?),
        Kind::Object => dir.objects.push(serde_json::from_str(json)?),
        Kind::User => dir.users.push(serde_json::from_str(json)?),
        Kind::ServiceAccount => dir.service_accounts.push(serde_json::from_str(json)?),
        Kind::ApiKey => dir.api_keys.push(serde_json::from_str(json)?),
        Kind::Group => dir.groups.push(serde_json::from_str(json)?),
        Kind::Team => dir.teams.push(serde_json::from_str(json)?),
        Kind::CustomRole => dir.custom_roles.push(serde_json::from_str(json)?),
        Kind::Grant => dir.grants.push(serde_json::from_str(json)?),
        Kind::Permission => dir.permissions.push(serde_json::from_str(json)?),
    }
    Ok(())
}

/// Every entity of `dir` with its key, in source order: what an import
/// stores and what a comparison of two directories walks.
pub fn entities(dir: &Directory) -> Vec<(EntityKey, String)> {
    fn each<T: Serialize>(
        out: &mut Vec<(EntityKey, String)>,
        kind: Kind,
        items: &[T],
        mut key: impl FnMut(&T) -> String,
    ) {
        for t in items {
            if let Ok(json) = serde_json::to_string(t) {
                out.push((EntityKey { kind, key: key(t) }, json));
            }
        }
    }
    let mut out = Vec::new();
    each(&mut out, Kind::Organization, &dir.organizations, |o| {
        o.id.clone()
    });
    each(&mut out, Kind::Environment, &dir.environments, |e| {
        e.id.clone()
    });
    each(&mut out, Kind::Catalog, &dir.catalogs, |c| c.id.clone());
    each(&mut out, Kind::Object, &dir.objects, |o| o.id.clone());
    each(&mut out, Kind::User, &dir.users, |u| u.username.clone());
    each(&mut out, Kind::ServiceAccount, &dir.service_accounts, |s| {
        s.id.clone()
    });
    each(&mut out, Kind::ApiKey, &dir.api_keys, |a| a.id.clone());
    each(&mut out, Kind::Group, &dir.groups, |g| g.id.clone());
    each(&mut out, Kind::Team, &dir.teams, |t| t.id.clone());
    each(&mut out, Kind::CustomRole, &dir.custom_roles, |r| {
        r.id.clone()
    });
    let mut seen = std::collections::HashMap::new();
    each(&mut out, Kind::Grant, &dir.grants, |g| {
        let k = grant_key(g);
        let n = seen.entry(k.clone()).or_insert(0usize);
        *n += 1;
        nth(k, *n - 1)
    });
    let mut seen = std::collections::HashMap::new();
    each(&mut out, Kind::Permission, &dir.permissions, |p| {
        let k = permission_key(p);
        let n = seen.entry(k.clone()).or_insert(0usize);
        *n += 1;
        nth(k, *n - 1)
    });
    out
}

fn key(kind: Kind, key: &str) -> EntityKey {
    EntityKey {
        kind,
        key: key.to_string(),
    }
}

/// Creates, replaces or deletes by id in one section.
fn create<T>(
    items: &mut Vec<T>,
    item: T,
    id: impl Fn(&T) -> &str,
    what: &str,
) -> Result<(), OpError> {
    if items.iter().any(|t| id(t) == id(&item)) {
        return Err(OpError::Exists(format!("{what}/{}", id(&item))));
    }
    items.push(item);
    Ok(())
}

fn update<T>(items: &mut [T], item: T, id: impl Fn(&T) -> &str, what: &str) -> Result<(), OpError> {
    match items.iter_mut().find(|t| id(t) == id(&item)) {
        Some(slot) => {
            *slot = item;
            Ok(())
        }
        None => Err(OpError::NotFound(format!("{what}/{}", id(&item)))),
    }
}

fn delete<T>(
    items: &mut Vec<T>,
    target: &str,
    id: impl Fn(&T) -> &str,
    what: &str,
) -> Result<(), OpError> {
    let before = items.len();
    items.retain(|t| id(t) != target);
    if items.len() == before {
        return Err(OpError::NotFound(format!("{what}/{target}")));
    }
    Ok(())
}

fn user_mut<'a>(dir: &'a mut Directory, username: &str) -> Result<&'a mut User, OpError> {
    dir.users
        .iter_mut()
        .find(|u| u.username == username)
        .ok_or_else(|| OpError::NotFound(format!("user/{username}")))
}

/// Where the rows an operation names are, when its caller knows them from
/// an index: the directory's sections are scanned otherwise (a user among
/// 100k, a grant among 500k — most of a write's time on a large
/// directory). Each hint is checked against the row it names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Known {
    /// The user's index in `users`.
    pub user: Option<usize>,
    /// Every index of the grant in `grants`, ascending.
    pub grants: Option<Vec<usize>>,
    /// The entity the operation creates is known not to exist (found
    /// absent in the engine's index): no scan for a duplicate.
    pub absent: bool,
}

/// The user `username`, at `hint` when it is there.
fn user_at<'a>(
    dir: &'a mut Directory,
    username: &str,
    hint: Option<usize>,
) -> Result<&'a mut User, OpError> {
    match hint {
        Some(i) if dir.users.get(i).is_some_and(|u| u.username == username) => dir
            .users
            .get_mut(i)
            .ok_or_else(|| OpError::NotFound(format!("user/{username}"))),
        _ => user_mut(dir, username),
    }
}

/// What applying an operation made, besides the change itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The entities whose stored rows change.
    pub touched: Vec<EntityKey>,
    /// The secret of a created API key: answered once, never stored.
    pub secret: Option<String>,
}

/// Applies `op` to `dir` at `now` (Unix seconds: users and groups keep
/// when they were created and last changed). `actor_user` is the acting
/// user (`user/…`), who any API key created becomes the creator of;
/// `secret` makes its secret.
pub fn apply(
    dir: &mut Directory,
    op: &Operation,
    actor_user: Option<&str>,
    secret: &mut dyn FnMut() -> String,
    now: i64,
) -> Result<Applied, OpError> {
    apply_known(dir, op, actor_user, secret, &Known::default(), now)
}

/// [`apply`], with the rows `op` names found already (`known`).
pub fn apply_known(
    dir: &mut Directory,
    op: &Operation,
    actor_user: Option<&str>,
    secret: &mut dyn FnMut() -> String,
    known: &Known,
    now: i64,
) -> Result<Applied, OpError> {
    use Operation as O;
    let stamp = Some(Timestamp(now));
    let user_mut = |dir, username| user_at(dir, username, known.user);
    // Where the grant is, when the hint holds.
    let grant_at = |dir: &Directory, grant: &Grant| {
        known
            .grants
            .as_ref()
            .filter(|at| at.iter().all(|&i| dir.grants.get(i) == Some(grant)))
            .cloned()
    };
    let mut applied = Applied::default();
    let touched = &mut applied.touched;
    match op {
        O::CreateOrganization { organization } => {
            create(
                &mut dir.organizations,
                organization.clone(),
                |o| &o.id,
                "org",
            )?;
            touched.push(key(Kind::Organization, &organization.id));
        }
        O::UpdateOrganization { organization } => {
            update(
                &mut dir.organizations,
                organization.clone(),
                |o| &o.id,
                "org",
            )?;
            touched.push(key(Kind::Organization, &organization.id));
        }
        O::DeleteOrganization { id } => {
            delete(&mut dir.organizations, id, |o| &o.id, "org")?;
            touched.push(key(Kind::Organization, id));
        }
        O::CreateEnvironment { environment } => {
            create(&mut dir.environments, environment.clone(), |e| &e.id, "env")?;
            touched.push(key(Kind::Environment, &environment.id));
        }
        O::UpdateEnvironment { environment } => {
            update(&mut dir.environments, environment.clone(), |e| &e.id, "env")?;
            touched.push(key(Kind::Environment, &environment.id));
        }
        O::DeleteEnvironment { id } => {
            delete(&mut dir.environments, id, |e| &e.id, "env")?;
            touched.push(key(Kind::Environment, id));
        }
        O::CreateCatalog { catalog } => {
            create(&mut dir.catalogs, catalog.clone(), |c| &c.id, "catalog")?;
            touched.push(key(Kind::Catalog, &catalog.id));
        }
        O::UpdateCatalog { catalog } => {
            update(&mut dir.catalogs, catalog.clone(), |c| &c.id, "catalog")?;
            touched.push(key(Kind::Catalog, &catalog.id));
        }
        O::DeleteCatalog { id } => {
            delete(&mut dir.catalogs, id, |c| &c.id, "catalog")?;
            touched.push(key(Kind::Catalog, id));
        }
        O::CreateObject { object } => {
            create(&mut dir.objects, object.clone(), |o| &o.id, "object")?;
            touched.push(key(Kind::Object, &object.id));
        }
        O::UpdateObject { object } => {
            update(&mut dir.objects, object.clone(), |o| &o.id, "object")?;
            touched.push(key(Kind::Object, &object.id));
        }
        O::DeleteObject { id } => {
            delete(&mut dir.objects, id, |o| &o.id, "object")?;
            touched.push(key(Kind::Object, id));
        }
        O::InviteUser { user } => {
            let mut user = user.clone();
            (user.created_at, user.updated_at) = (stamp, stamp);
            let username = user.username.clone();
            if known.absent {
                dir.users.push(user);
            } else {
                create(&mut dir.users, user, |u| &u.username, "user")?;
            }
            touched.push(key(Kind::User, &username));
        }
        O::UpdateUser { username, set } => {
            let u = user_mut(dir, username)?;
            // An empty string clears a field (SCIM replaces send a
            // representation without the attributes they clear).
            let assign = |slot: &mut Option<String>, v: &Option<String>| {
                if let Some(v) = v {
                    *slot = (!v.is_empty()).then(|| v.clone());
                }
            };
            assign(&mut u.name, &set.name);
            assign(&mut u.first_name, &set.first_name);
            assign(&mut u.last_name, &set.last_name);
            assign(&mut u.phone, &set.phone);
            assign(&mut u.timezone, &set.timezone);
            assign(&mut u.locale, &set.locale);
            assign(&mut u.start_page, &set.start_page);
            if let Some(email) = &set.email
                && !email.eq_ignore_ascii_case(&u.email)
            {
                // Seed 000: an email change needs re-verification.
                u.email = email.clone();
                u.email_verified = false;
            }
            if let Some(org) = &set.organization {
                u.organization = org.clone();
            }
            if let Some(b) = set.allow_login {
                u.allow_login = b;
            }
            if let Some(b) = set.sso {
                u.sso = b;
            }
            if let Some(r) = set.sp_role {
                u.sp_role = Some(r);
            }
            if let Some(x) = &set.external_id {
                u.external_id = (!x.is_empty()).then(|| x.clone());
            }
            u.updated_at = stamp;
            touched.push(key(Kind::User, username));
        }
        O::DeactivateUser { username } => {
            let u = user_mut(dir, username)?;
            if u.status == UserStatus::Deactivated {
                return Err(OpError::Invalid(format!(
                    "user/{username} is deactivated already"
                )));
            }
            u.status = UserStatus::Deactivated;
            u.updated_at = stamp;
            touched.push(key(Kind::User, username));
        }
        O::ReactivateUser { username } => {
            let u = user_mut(dir, username)?;
            if u.status == UserStatus::Active {
                return Err(OpError::Invalid(format!(
                    "user/{username} is active already"
                )));
            }
            u.status = UserStatus::Active;
            u.updated_at = stamp;
            touched.push(key(Kind::User, username));
        }
        O::SetUserExpiry {
            username,
            expires_at,
        } => {
            let u = user_mut(dir, username)?;
            (u.expires_at, u.updated_at) = (*expires_at, stamp);
            touched.push(key(Kind::User, username));
        }
        O::SetAdminRole {
            username,
            admin_role,
        } => {
            let u = user_mut(dir, username)?;
            (u.admin_role, u.updated_at) = (*admin_role, stamp);
            touched.push(key(Kind::User, username));
        }
        O::DeleteUser { username } => {
            delete(&mut dir.users, username, |u| &u.username, "user")?;
            touched.push(key(Kind::User, username));
        }
        O::CreateServiceAccount { service_account } => {
            create(
                &mut dir.service_accounts,
                service_account.clone(),
                |s| &s.id,
                "service",
            )?;
            touched.push(key(Kind::ServiceAccount, &service_account.id));
        }
        O::UpdateServiceAccount { service_account } => {
            update(
                &mut dir.service_accounts,
                service_account.clone(),
                |s| &s.id,
                "service",
            )?;
            touched.push(key(Kind::ServiceAccount, &service_account.id));
        }
        O::DeleteServiceAccount { id } => {
            delete(&mut dir.service_accounts, id, |s| &s.id, "service")?;
            touched.push(key(Kind::ServiceAccount, id));
        }
        O::CreateApiKey {
            id,
            name,
            expires_at,
        } => {
            let created_by = actor_user.map(str::to_string).ok_or_else(|| {
                OpError::Invalid(
                    "an API key acts as the user who creates it: create it as a user (or with a user's API key)"
                        .into(),
                )
            })?;
            let secret = secret();
            let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()));
            create(
                &mut dir.api_keys,
                ApiKey {
                    id: id.clone(),
                    name: name.clone(),
                    sha256,
                    created_by,
                    created_at: None,
                    expires_at: *expires_at,
                    revoked: false,
                },
                |a| &a.id,
                "apikey",
            )?;
            applied.secret = Some(secret);
            applied.touched.push(key(Kind::ApiKey, id));
        }
        O::RevokeApiKey { id } => {
            let k = dir
                .api_keys
                .iter_mut()
                .find(|a| a.id == *id)
                .ok_or_else(|| OpError::NotFound(format!("api key {id}")))?;
            if k.revoked {
                return Err(OpError::Invalid(format!("api key {id} is revoked already")));
            }
            k.revoked = true;
            touched.push(key(Kind::ApiKey, id));
        }
        O::CreateGroup { group } => {
            let mut group = group.clone();
            (group.created_at, group.updated_at) = (stamp, stamp);
            let id = group.id.clone();
            create(&mut dir.groups, group, |g| &g.id, "group")?;
            touched.push(key(Kind::Group, &id));
        }
        O::UpdateGroup { group } => {
            let mut group = group.clone();
            group.created_at = dir
                .groups
                .iter()
                .find(|g| g.id == group.id)
                .and_then(|g| g.created_at);
            group.updated_at = stamp;
            let id = group.id.clone();
            update(&mut dir.groups, group, |g| &g.id, "group")?;
            touched.push(key(Kind::Group, &id));
        }
        O::DeleteGroup { id } => {
            delete(&mut dir.groups, id, |g| &g.id, "group")?;
            touched.push(key(Kind::Group, id));
        }
        O::AddGroupMember { group, member } => {
            let g = dir
                .groups
                .iter_mut()
                .find(|g| g.id == *group)
                .ok_or_else(|| OpError::NotFound(format!("group/{group}")))?;
            if g.members.contains(member) {
                return Err(OpError::Exists(format!("{member} in group/{group}")));
            }
            g.members.push(member.clone());
            g.updated_at = stamp;
            touched.push(key(Kind::Group, group));
        }
        O::RemoveGroupMember { group, member } => {
            let g = dir
                .groups
                .iter_mut()
                .find(|g| g.id == *group)
                .ok_or_else(|| OpError::NotFound(format!("group/{group}")))?;
            let before = g.members.len();
            g.members.retain(|m| m != member);
            if g.members.len() == before {
                return Err(OpError::NotFound(format!("{member} in group/{group}")));
            }
            g.updated_at = stamp;
            touched.push(key(Kind::Group, group));
        }
        O::CreateTeam { team } => {
            create(&mut dir.teams, team.clone(), |t| &t.id, "team")?;
            touched.push(key(Kind::Team, &team.id));
        }
        O::UpdateTeam { team } => {
            update(&mut dir.teams, team.clone(), |t| &t.id, "team")?;
            touched.push(key(Kind::Team, &team.id));
        }
        O::DeleteTeam { id } => {
            delete(&mut dir.teams, id, |t| &t.id, "team")?;
            touched.push(key(Kind::Team, id));
        }
        O::AddTeamMember { team, username } => {
            let t = dir
                .teams
                .iter_mut()
                .find(|t| t.id == *team)
                .ok_or_else(|| OpError::NotFound(format!("team/{team}")))?;
            if t.members.contains(username) || t.owner == *username {
                return Err(OpError::Exists(format!("user/{username} in team/{team}")));
            }
            t.members.push(username.clone());
            touched.push(key(Kind::Team, team));
        }
        O::RemoveTeamMember { team, username } => {
            let t = dir
                .teams
                .iter_mut()
                .find(|t| t.id == *team)
                .ok_or_else(|| OpError::NotFound(format!("team/{team}")))?;
            let before = t.members.len();
            t.members.retain(|m| m != username);
            if t.members.len() == before {
                return Err(OpError::NotFound(format!("user/{username} in team/{team}")));
            }
            touched.push(key(Kind::Team, team));
        }
        O::CreateCustomRole { role } => {
            create(&mut dir.custom_roles, role.clone(), |r| &r.id, "role")?;
            touched.push(key(Kind::CustomRole, &role.id));
        }
        O::UpdateCustomRole { role } => {
            update(&mut dir.custom_roles, role.clone(), |r| &r.id, "role")?;
            touched.push(key(Kind::CustomRole, &role.id));
        }
        O::DeleteCustomRole { id } => {
            delete(&mut dir.custom_roles, id, |r| &r.id, "role")?;
            touched.push(key(Kind::CustomRole, id));
        }
        O::AddGrant { grant } => {
            let exists = match grant_at(dir, grant) {
                Some(at) => !at.is_empty(),
                None => dir.grants.contains(grant),
            };
            if exists {
                return Err(OpError::Exists(format!("grant {}", grant_key(grant))));
            }
            dir.grants.push(grant.clone());
            touched.push(key(Kind::Grant, &grant_key(grant)));
        }
        O::RemoveGrant { grant } => {
            let removed = match grant_at(dir, grant) {
                Some(at) => {
                    for &i in at.iter().rev() {
                        dir.grants.remove(i);
                    }
                    at.len()
                }
                None => {
                    let before = dir.grants.len();
                    dir.grants.retain(|g| g != grant);
                    before - dir.grants.len()
                }
            };
            if removed == 0 {
                return Err(OpError::NotFound(format!("grant {}", grant_key(grant))));
            }
            // Every copy goes (a file may list a grant twice).
            for n in 0..removed {
                touched.push(key(Kind::Grant, &nth(grant_key(grant), n)));
            }
        }
        O::AddPermission { permission } => {
            if dir.permissions.contains(permission) {
                return Err(OpError::Exists(format!(
                    "permission {}",
                    permission_key(permission)
                )));
            }
            dir.permissions.push(permission.clone());
            touched.push(key(Kind::Permission, &permission_key(permission)));
        }
        O::RemovePermission { permission } => {
            let before = dir.permissions.len();
            dir.permissions.retain(|p| p != permission);
            let removed = before - dir.permissions.len();
            if removed == 0 {
                return Err(OpError::NotFound(format!(
                    "permission {}",
                    permission_key(permission)
                )));
            }
            for n in 0..removed {
                touched.push(key(Kind::Permission, &nth(permission_key(permission), n)));
            }
        }
        // Settings are not the directory's: the service keeps them.
        O::SetSetting {
            name: Setting::Scim,
            value,
        } => ScimSetting::problems(value, dir)?,
        O::SetSetting { .. } => {}
    }
    Ok(applied)
}

impl Operation {
    /// Whether gateways must see this change at once rather than at the
    /// end of the coalescing window: anything that takes access away.
    pub fn is_urgent(&self) -> bool {
        use Operation as O;
        matches!(
            self,
            O::DeactivateUser { .. }
                | O::DeleteUser { .. }
                | O::RevokeApiKey { .. }
                | O::RemoveGrant { .. }
                | O::RemovePermission { .. }
                | O::RemoveGroupMember { .. }
                | O::RemoveTeamMember { .. }
                | O::SetUserExpiry { .. }
                | O::SetAdminRole { .. }
                | O::DeleteServiceAccount { .. }
                | O::UpdateServiceAccount { .. }
                | O::DeleteGroup { .. }
                | O::DeleteTeam { .. }
        )
    }
}
