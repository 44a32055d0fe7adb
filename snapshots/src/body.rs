//! The snapshot body: the directory resolved into flat tables whose
//! references are indices, with every string interned once.
//!
//! This is what the engine indexes on load. Records keep the order of the
//! directory source, so decoding gives the directory back exactly. Field
//! order is the postcard wire order: **append fields only at a format bump**.

use serde::{Deserialize, Serialize};

use crate::vocabulary::{
    AccountStatus, AdminRole, BuiltinRole, CatalogKind, DefaultAccess, EntityType, EnvTier,
    NodeKind, Permission, SpRole, UserStatus,
};

/// Index of a string in [`StringTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Str(pub u32);

/// An optional [`Str`] in four bytes (`u32::MAX` is "none"). On the wire it
/// is exactly an `Option<Str>`; in memory it halves the large user table's
/// optional fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Option<Str>", into = "Option<Str>")]
pub struct OptStr(u32);

impl OptStr {
    /// No string.
    pub const NONE: OptStr = OptStr(u32::MAX);

    /// The string index, if any.
    pub fn get(self) -> Option<Str> {
        (self.0 != u32::MAX).then_some(Str(self.0))
    }
}

impl From<Option<Str>> for OptStr {
    fn from(s: Option<Str>) -> Self {
        // Decoding checks every index against the table, which can never
        // hold u32::MAX strings, so a decoded u32::MAX cannot be confused.
        s.map_or(OptStr::NONE, |s| OptStr(s.0))
    }
}

impl From<OptStr> for Option<Str> {
    fn from(s: OptStr) -> Self {
        s.get()
    }
}

/// An optional Unix time in eight bytes (`i64::MIN` is "none", a date no
/// RFC 3339 source can express). On the wire it is exactly an `Option<i64>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Option<i64>", into = "Option<i64>")]
pub struct OptTime(i64);

impl OptTime {
    /// No time.
    pub const NONE: OptTime = OptTime(i64::MIN);

    /// The time, if any.
    pub fn get(self) -> Option<i64> {
        (self.0 != i64::MIN).then_some(self.0)
    }
}

impl From<Option<i64>> for OptTime {
    fn from(t: Option<i64>) -> Self {
        t.map_or(OptTime::NONE, OptTime)
    }
}

impl From<OptTime> for Option<i64> {
    fn from(t: OptTime) -> Self {
        t.get()
    }
}

/// All strings of a snapshot, concatenated, with the end offset of each.
///
/// One allocation for every string in the directory: decoding 100k users is
/// decoding two buffers, not half a million small strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StringTable {
    /// The concatenated UTF-8 text.
    pub blob: String,
    /// `ends[i]` is where string `i` ends in `blob`; it starts where `i - 1` ends.
    #[serde(deserialize_with = "crate::exact_vec::deserialize")]
    pub ends: Vec<u32>,
}

impl StringTable {
    /// The string `s`, or `""` for an index out of range (decoding checks
    /// every index, so that only happens for a hand-built table).
    pub fn get(&self, s: Str) -> &str {
        let i = s.0 as usize;
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0) as usize
        };
        self.blob.get(start..end).unwrap_or("")
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the table holds no strings.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// A node of the resource tree, by table index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NodeRef {
    /// Index into [`Body::orgs`].
    Org(u32),
    /// Index into [`Body::envs`].
    Env(u32),
    /// Index into [`Body::catalogs`].
    Catalog(u32),
    /// Index into [`Body::objects`].
    Object(u32),
    /// Index into [`Body::teams`].
    Team(u32),
}

impl NodeRef {
    /// The kind of node referenced.
    pub fn kind(self) -> NodeKind {
        match self {
            NodeRef::Org(_) => NodeKind::Org,
            NodeRef::Env(_) => NodeKind::Env,
            NodeRef::Catalog(_) => NodeKind::Catalog,
            NodeRef::Object(_) => NodeKind::Object,
            NodeRef::Team(_) => NodeKind::Team,
        }
    }
}

/// A principal that can receive grants, by table index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PrincipalRef {
    /// Index into [`Body::users`].
    User(u32),
    /// Index into [`Body::service_accounts`].
    Service(u32),
    /// Index into [`Body::groups`].
    Group(u32),
}

/// A role: built in, or a custom bundle of scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RoleRef {
    /// A cascade role.
    Builtin(BuiltinRole),
    /// Index into [`Body::custom_roles`].
    Custom(u32),
}

/// An organization; the domain organization has no parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRec {
    /// Source id.
    pub id: Str,
    /// Display name.
    pub name: Option<Str>,
    /// Parent organization index.
    pub parent: Option<u32>,
}

/// An environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvRec {
    /// Source id.
    pub id: Str,
    /// Display name.
    pub name: Option<Str>,
    /// Owning organization index.
    pub org: u32,
    /// What the environment is for.
    pub tier: EnvTier,
}

/// A catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRec {
    /// Source id.
    pub id: Str,
    /// Display name.
    pub name: Option<Str>,
    /// Owning environment index.
    pub env: u32,
    /// Internal or external.
    pub kind: CatalogKind,
    /// Connector of an external catalog (e.g. `snowflake`).
    pub connector: Option<Str>,
}

/// An object below a catalog or a team (a table, dashboard, site, VPN, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRec {
    /// Source id.
    pub id: Str,
    /// Display name.
    pub name: Option<Str>,
    /// Free-form kind (`table`, `site`, `billing`, …).
    pub kind: Str,
    /// The catalog or team it hangs below.
    pub parent: NodeRef,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRec {
    /// Unique, immutable username.
    pub username: Str,
    /// Full name.
    pub name: OptStr,
    /// First name.
    pub first_name: OptStr,
    /// Last name.
    pub last_name: OptStr,
    /// Unique email address.
    pub email: Str,
    /// Optional phone number (SMS two-factor, notifications).
    pub phone: OptStr,
    /// Organization index.
    pub org: u32,
    /// IANA timezone name.
    pub timezone: OptStr,
    /// Locale tag.
    pub locale: OptStr,
    /// Account status.
    pub status: UserStatus,
    /// `false`: a notification-only user.
    pub allow_login: bool,
    /// Whether the email address is verified.
    pub email_verified: bool,
    /// Single sign-on enabled.
    pub sso: bool,
    /// Unix seconds after which the account is expired.
    pub expires_at: OptTime,
    /// Unix seconds of the last login.
    pub last_login: OptTime,
    /// Start page shown after login.
    pub start_page: OptStr,
    /// Administrator role, if any.
    pub admin_role: Option<AdminRole>,
    /// Service-provider dashboard role, if any.
    pub sp_role: Option<SpRole>,
}

impl UserRec {
    /// The optional strings of the record: its personal data (names,
    /// phone) and its preferences (time zone, locale, start page).
    pub fn optional_strings(&self) -> [OptStr; 7] {
        [
            self.name,
            self.first_name,
            self.last_name,
            self.phone,
            self.timezone,
            self.locale,
            self.start_page,
        ]
    }
}

/// A service account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountRec {
    /// Source id.
    pub id: Str,
    /// Display name.
    pub name: Option<Str>,
    /// Description.
    pub description: Option<Str>,
    /// Organization index.
    pub org: u32,
    /// Implicit access to its organization.
    pub default_access: DefaultAccess,
    /// Status.
    pub status: AccountStatus,
}

/// An API key, stored as the SHA-256 of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRec {
    /// Source id.
    pub id: Str,
    /// Display name.
    pub name: Option<Str>,
    /// SHA-256 of the key secret.
    pub sha256: [u8; 32],
    /// The user the key acts as.
    pub creator: u32,
    /// Unix seconds of creation.
    pub created_at: Option<i64>,
    /// Unix seconds after which the key is dead.
    pub expires_at: Option<i64>,
    /// Revoked keys are dead.
    pub revoked: bool,
}

/// A group; its grants apply to its members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRec {
    /// Source id.
    pub id: Str,
    /// Unique name.
    pub name: Str,
    /// Code.
    pub code: Str,
    /// Description.
    pub description: Option<Str>,
    /// Users and service accounts (never groups).
    pub members: Vec<PrincipalRef>,
}

/// A team; roles given within it apply only to it and its resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRec {
    /// Source id.
    pub id: Str,
    /// Display name.
    pub name: Option<Str>,
    /// Organization index.
    pub org: u32,
    /// Owner (user index); an implicit member who cannot be removed.
    pub owner: u32,
    /// Member user indices (the owner may or may not be listed).
    pub members: Vec<u32>,
}

/// A named bundle of scopes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomRoleRec {
    /// Source id.
    pub id: Str,
    /// Display name.
    pub name: Option<Str>,
    /// Description.
    pub description: Option<Str>,
    /// Scopes such as `user:create`.
    pub scopes: Vec<Str>,
}

/// A role held by a principal on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrantRec {
    /// Who holds it.
    pub principal: PrincipalRef,
    /// What role.
    pub role: RoleRef,
    /// Where: holds on this node and every node below it.
    pub on: NodeRef,
}

/// An individual permission (seed 004), held within an organization subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PermissionRec {
    /// Who holds it.
    pub principal: PrincipalRef,
    /// Which permission.
    pub permission: Permission,
    /// Entity type, for View and Manage.
    pub entity: Option<EntityType>,
    /// Organization index it holds in (and below); `None` is the domain
    /// organization (kept apart so the source round-trips exactly).
    pub org: Option<u32>,
}

/// The decoded body of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// Every string, interned.
    pub strings: StringTable,
    /// Index of the domain (root) organization.
    pub domain: u32,
    /// Organizations.
    pub orgs: Vec<OrgRec>,
    /// Environments.
    pub envs: Vec<EnvRec>,
    /// Catalogs.
    #[serde(deserialize_with = "crate::exact_vec::deserialize")]
    pub catalogs: Vec<CatalogRec>,
    /// Objects below catalogs and teams.
    #[serde(deserialize_with = "crate::exact_vec::deserialize")]
    pub objects: Vec<ObjectRec>,
    /// Users.
    #[serde(deserialize_with = "crate::exact_vec::deserialize")]
    pub users: Vec<UserRec>,
    /// Service accounts.
    #[serde(deserialize_with = "crate::exact_vec::deserialize")]
    pub service_accounts: Vec<ServiceAccountRec>,
    /// API keys.
    #[serde(deserialize_with = "crate::exact_vec::deserialize")]
    pub api_keys: Vec<ApiKeyRec>,
    /// Groups.
    #[serde(deserialize_with = "crate::exact_vec::deserialize")]
    pub groups: Vec<GroupRec>,
    /// Teams.
    pub teams: Vec<TeamRec>,
    /// Custom roles.
    pub custom_roles: Vec<CustomRoleRec>,
    /// Role grants.
    #[serde(deserialize_with = "crate::exact_vec::deserialize")]
    pub grants: Vec<GrantRec>,
    /// Individual permissions.
    #[serde(deserialize_with = "crate::exact_vec::deserialize")]
    pub permissions: Vec<PermissionRec>,
}

/// Record counts, for `snapshot inspect`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Organizations.
    pub organizations: usize,
    /// Environments.
    pub environments: usize,
    /// Catalogs.
    pub catalogs: usize,
    /// Objects.
    pub objects: usize,
    /// Users.
    pub users: usize,
    /// Service accounts.
    pub service_accounts: usize,
    /// API keys.
    pub api_keys: usize,
    /// Groups.
    pub groups: usize,
    /// Group memberships.
    pub group_memberships: usize,
    /// Teams.
    pub teams: usize,
    /// Custom roles.
    pub custom_roles: usize,
    /// Role grants.
    pub grants: usize,
    /// Individual permissions.
    pub permissions: usize,
    /// Interned strings.
    pub strings: usize,
}

impl Body {
    /// Record counts.
    pub fn counts(&self) -> Counts {
        Counts {
            organizations: self.orgs.len(),
            environments: self.envs.len(),
            catalogs: self.catalogs.len(),
            objects: self.objects.len(),
            users: self.users.len(),
            service_accounts: self.service_accounts.len(),
            api_keys: self.api_keys.len(),
            groups: self.groups.len(),
            group_memberships: self.groups.iter().map(|g| g.members.len()).sum(),
            teams: self.teams.len(),
            custom_roles: self.custom_roles.len(),
            grants: self.grants.len(),
            permissions: self.permissions.len(),
            strings: self.strings.len(),
        }
    }

    /// The string `s`.
    pub fn str(&self, s: Str) -> &str {
        self.strings.get(s)
    }

    /// The username of user `i` (`""` out of range).
    pub fn user_name(&self, i: u32) -> &str {
        self.users
            .get(i as usize)
            .map_or("", |u| self.str(u.username))
    }

    /// The source reference of a principal: `user/…`, `service/…` or `group/…`.
    pub fn principal_ref(&self, p: PrincipalRef) -> String {
        match p {
            PrincipalRef::User(i) => format!("user/{}", self.user_name(i)),
            PrincipalRef::Service(i) => format!(
                "service/{}",
                self.service_accounts
                    .get(i as usize)
                    .map_or("", |a| self.str(a.id))
            ),
            PrincipalRef::Group(i) => format!(
                "group/{}",
                self.groups.get(i as usize).map_or("", |g| self.str(g.id))
            ),
        }
    }

    /// The source reference of a node: `org/…`, `env/…`, `catalog/…`, `object/…` or `team/…`.
    pub fn node_ref(&self, n: NodeRef) -> String {
        let id = match n {
            NodeRef::Org(i) => self.orgs.get(i as usize).map(|x| x.id),
            NodeRef::Env(i) => self.envs.get(i as usize).map(|x| x.id),
            NodeRef::Catalog(i) => self.catalogs.get(i as usize).map(|x| x.id),
            NodeRef::Object(i) => self.objects.get(i as usize).map(|x| x.id),
            NodeRef::Team(i) => self.teams.get(i as usize).map(|x| x.id),
        };
        format!("{}/{}", n.kind().prefix(), id.map_or("", |s| self.str(s)))
    }

    /// The source name of a role: a built-in role name or `role/<id>`.
    pub fn role_name(&self, r: RoleRef) -> String {
        match r {
            RoleRef::Builtin(role) => role.name().to_string(),
            RoleRef::Custom(i) => format!(
                "role/{}",
                self.custom_roles
                    .get(i as usize)
                    .map_or("", |c| self.str(c.id))
            ),
        }
    }
}
