//! The directory source: the JSON an operator writes (format version 1).
//!
//! A field that can only name one kind of thing takes a bare id
//! (`"organization": "emea"`); a field that can name several takes a typed
//! reference (`"principal": "group/analysts"`, `"on": "env/prod"`).
//! Unknown fields are errors, reported by [`crate::source::parse`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::vocabulary::{
    AccountStatus, AdminRole, CatalogKind, DefaultAccess, EntityType, EnvTier, Permission, SpRole,
    UserStatus,
};

/// The directory source format version this crate reads.
pub const SOURCE_FORMAT: u32 = 1;

/// An instant, written as RFC 3339 (`2026-03-01T00:00:00Z`), held as Unix
/// seconds (sub-second precision is dropped: expiry is decided to the second).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses RFC 3339.
    pub fn parse(s: &str) -> Result<Self, String> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Timestamp(t.unix_timestamp()))
            .map_err(|e| {
                format!("invalid timestamp {s:?}: {e}; expected RFC 3339 such as \"2026-03-01T00:00:00Z\"")
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(s) => f.write_str(&s),
            None => write!(f, "@{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_true(b: &bool) -> bool {
    *b
}
fn yes() -> bool {
    true
}
fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// A whole directory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Directory {
    /// Source format version; must be 1.
    pub format: u32,
    /// Snapshot revision; `snapshot build --revision` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The organization tree: exactly one has no `parent` (the domain).
    pub organizations: Vec<Organization>,
    /// Environments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<Environment>,
    /// Catalogs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalogs: Vec<Catalog>,
    /// Objects below catalogs and teams (object-level shares target these).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Object>,
    /// Users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
    /// Service accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<ServiceAccount>,
    /// API keys (hashes only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKey>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// Teams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<Team>,
    /// Custom roles (bundles of scopes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_roles: Vec<CustomRole>,
    /// Role grants on nodes of the tree and within teams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// Individual permissions (View/Manage, Super Admin, flags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<PermissionGrant>,
}

impl Directory {
    /// The directory without what a snapshot does not carry — when users
    /// and groups were made and last changed, identity providers' ids, a
    /// group's organization —: what decompiling its snapshot gives back.
    pub fn without_bookkeeping(&self) -> Directory {
        let mut d = self.clone();
        for u in &mut d.users {
            (u.created_at, u.updated_at, u.external_id) = (None, None, None);
        }
        for g in &mut d.groups {
            (g.created_at, g.updated_at, g.external_id, g.organization) = (None, None, None, None);
        }
        d
    }
}

/// An organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    /// Unique id, referenced as `org/<id>`.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Parent organization id; absent for the domain organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// An environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Unique id, referenced as `env/<id>`.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Organization id.
    pub organization: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "is_default")]
    pub tier: EnvTier,
}

/// A catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Unique id, referenced as `catalog/<id>`.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Environment id.
    pub environment: String,
    /// `internal` (default) or `external`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub kind: CatalogKind,
    /// Connector of an external catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
}

/// An object below a catalog or a team.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Unique id, referenced as `object/<id>`.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form kind: `table`, `dashboard`, `site`, `billing`, `vpn`, …
    pub kind: String,
    /// `catalog/<id>` or `team/<id>`.
    pub parent: String,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Unique and immutable; referenced as `user/<username>`.
    pub username: String,
    /// Full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Unique email address (compared case-insensitively).
    pub email: String,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Organization id.
    pub organization: String,
    /// IANA timezone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Account status (default `active`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: UserStatus,
    /// `false` makes a notification-only user (default `true`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub allow_login: bool,
    /// Whether the email is verified (default `false`: fail closed).
    #[serde(default, skip_serializing_if = "is_false")]
    pub email_verified: bool,
    /// Single sign-on enabled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sso: bool,
    /// When the account expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Last login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login: Option<Timestamp>,
    /// Start page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_page: Option<String>,
    /// Administrator role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_role: Option<AdminRole>,
    /// Service-provider dashboard role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_role: Option<SpRole>,
    /// The identity provider's own id for the user (SCIM `externalId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// When the user was created (set by the directory service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When the user last changed (set by the directory service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// A service account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceAccount {
    /// Unique id, referenced as `service/<id>`.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Organization id.
    pub organization: String,
    /// `reader` (default) or `none`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub default_access: DefaultAccess,
    /// `active` (default) or `disabled`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: AccountStatus,
}

/// An API key: only the SHA-256 of its secret is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Unique id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lower-case hex SHA-256 of the secret (64 characters).
    pub sha256: String,
    /// `user/<username>`: the key acts as this user.
    pub created_by: String,
    /// Creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Revoked keys are dead.
    #[serde(default, skip_serializing_if = "is_false")]
    pub revoked: bool,
}

/// A group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Unique id, referenced as `group/<id>`.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Code.
    pub code: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `user/<username>` and `service/<id>` members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// The organization whose identity provider keeps the group (SCIM
    /// provisioning); none for a group of the whole domain. Its grants
    /// apply wherever they are given, like any group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The identity provider's own id for the group (SCIM `externalId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// When the group was created (set by the directory service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When the group last changed (set by the directory service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// A team.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// Unique id, referenced as `team/<id>`.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Organization id.
    pub organization: String,
    /// Username of the owner: a portal user, never notification-only.
    pub owner: String,
    /// Usernames of the members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// A custom role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomRole {
    /// Unique id, referenced as `role/<id>`.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Scopes such as `user:create` or `site:write`.
    pub scopes: Vec<String>,
}

/// A role grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// `user/…`, `service/…` or `group/…`.
    pub principal: String,
    /// A built-in role name or `role/<custom role id>`.
    pub role: String,
    /// `org/…`, `env/…`, `catalog/…`, `object/…` or `team/…`.
    pub on: String,
}

/// An individual permission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PermissionGrant {
    /// `user/…`, `service/…` or `group/…`.
    pub principal: String,
    /// Which permission.
    pub permission: Permission,
    /// Entity type, for `view` and `manage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<EntityType>,
    /// `org/<id>` it holds in (and below); absent means the domain organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
}
