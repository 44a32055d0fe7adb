//! The closed vocabularies of the directory model, shared by the JSON source
//! and the binary snapshot so the two can never disagree on a name.
//!
//! Every enum serializes as the `snake_case` name used in the JSON source;
//! postcard encodes the variant index, so **variants are only ever appended**
//! (reordering them would change the meaning of existing snapshots).

use serde::{Deserialize, Serialize};

/// Built-in roles of the org → environment → catalog cascade (seed 001).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinRole {
    /// Organization only: members, access, billing and settings; implies writer.
    Admin,
    /// Read and write data; implies reader.
    Writer,
    /// View data and dashboards.
    Reader,
    /// Organization only: no blanket access, set per environment and catalog.
    CustomPerEnvironment,
    /// Environment only: opens the environment and its dashboards, data per catalog.
    CustomPerCatalog,
}

impl BuiltinRole {
    /// Every built-in role, in declaration order.
    pub const ALL: [BuiltinRole; 5] = [
        BuiltinRole::Admin,
        BuiltinRole::Writer,
        BuiltinRole::Reader,
        BuiltinRole::CustomPerEnvironment,
        BuiltinRole::CustomPerCatalog,
    ];

    /// The name used in the JSON source.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinRole::Admin => "admin",
            BuiltinRole::Writer => "writer",
            BuiltinRole::Reader => "reader",
            BuiltinRole::CustomPerEnvironment => "custom_per_environment",
            BuiltinRole::CustomPerCatalog => "custom_per_catalog",
        }
    }

    /// Parses a source name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether the seeds define this role at nodes of `kind` (seed 001's
    /// table; object shares take catalog-level roles).
    pub fn exists_at(self, kind: NodeKind) -> bool {
        match self {
            BuiltinRole::Admin | BuiltinRole::CustomPerEnvironment => kind == NodeKind::Org,
            BuiltinRole::CustomPerCatalog => kind == NodeKind::Env,
            BuiltinRole::Writer | BuiltinRole::Reader => matches!(
                kind,
                NodeKind::Org | NodeKind::Env | NodeKind::Catalog | NodeKind::Object
            ),
        }
    }
}

/// The kinds of node in the resource tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// An organization (the domain organization or a sub-organization).
    Org,
    /// An environment, belonging to an organization.
    Env,
    /// A catalog (data source), belonging to an environment.
    Catalog,
    /// An object below a catalog or a team.
    Object,
    /// A team, belonging to an organization.
    Team,
}

impl NodeKind {
    /// The reference prefix (`org/…`, `env/…`).
    pub fn prefix(self) -> &'static str {
        match self {
            NodeKind::Org => "org",
            NodeKind::Env => "env",
            NodeKind::Catalog => "catalog",
            NodeKind::Object => "object",
            NodeKind::Team => "team",
        }
    }
}

/// Entity types of the View/Manage permission model (seed 004).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    /// Data pipelines.
    Pipelines,
    /// Schemas.
    Schemas,
    /// Variables.
    Variables,
    /// Settings (manage only).
    Settings,
    /// Views.
    Views,
    /// Data quality checks.
    DataQualityChecks,
    /// Data quality check groups.
    DataQualityCheckGroups,
    /// Firewall rules (manage only).
    FirewallRules,
    /// Workflows.
    Workflows,
    /// Destinations.
    Destinations,
    /// Users (manage only).
    Users,
    /// User groups (manage only).
    UserGroups,
}

impl EntityType {
    /// Every entity type, in declaration order.
    pub const ALL: [EntityType; 12] = [
        EntityType::Pipelines,
        EntityType::Schemas,
        EntityType::Variables,
        EntityType::Settings,
        EntityType::Views,
        EntityType::DataQualityChecks,
        EntityType::DataQualityCheckGroups,
        EntityType::FirewallRules,
        EntityType::Workflows,
        EntityType::Destinations,
        EntityType::Users,
        EntityType::UserGroups,
    ];

    /// The name used in the JSON source and in `entity/<name>` references.
    pub fn name(self) -> &'static str {
        match self {
            EntityType::Pipelines => "pipelines",
            EntityType::Schemas => "schemas",
            EntityType::Variables => "variables",
            EntityType::Settings => "settings",
            EntityType::Views => "views",
            EntityType::DataQualityChecks => "data_quality_checks",
            EntityType::DataQualityCheckGroups => "data_quality_check_groups",
            EntityType::FirewallRules => "firewall_rules",
            EntityType::Workflows => "workflows",
            EntityType::Destinations => "destinations",
            EntityType::Users => "users",
            EntityType::UserGroups => "user_groups",
        }
    }

    /// Parses a source name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Seed 004 lists these with "Manage" only: a bare View grant on them
    /// does not exist (holding Manage still implies View).
    pub fn manage_only(self) -> bool {
        matches!(
            self,
            EntityType::Settings
                | EntityType::FirewallRules
                | EntityType::Users
                | EntityType::UserGroups
        )
    }
}

/// Individual permissions of seed 004: flags and View/Manage per entity type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Perform all actions in the system.
    SuperAdmin,
    /// Access to the analytics platform (a warehouse account exists).
    PlatformAccess,
    /// The warehouse account may view all data tables.
    ViewAllPipelineData,
    /// View objects of one entity type.
    View,
    /// Create, edit and remove objects of one entity type; implies View.
    Manage,
}

impl Permission {
    /// The name used in the JSON source.
    pub fn name(self) -> &'static str {
        match self {
            Permission::SuperAdmin => "super_admin",
            Permission::PlatformAccess => "platform_access",
            Permission::ViewAllPipelineData => "view_all_pipeline_data",
            Permission::View => "view",
            Permission::Manage => "manage",
        }
    }

    /// Whether this permission is per entity type (needs `entity`).
    pub fn needs_entity(self) -> bool {
        matches!(self, Permission::View | Permission::Manage)
    }
}

/// Administrator roles (seeds 000 and 003).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Every function including schema editor, release policies and
    /// domain-wide settings; administers everyone; sits in the domain org.
    Owner,
    /// Administrator plus SSO, SCIM and API keys; deactivated only by support.
    SuperAdministrator,
    /// Every function but the owner-only ones, within its own org subtree.
    Administrator,
}

/// Service-provider dashboard roles (seed 003).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpRole {
    /// Rules, permissions, applications, connections and reports.
    DashboardAdministrator,
    /// Reports only.
    ReportViewer,
}

/// Account status of a user (seeds 000, 003, 004).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Invited, has not activated the account yet.
    Invited,
    /// May act (subject to the other invariants).
    #[default]
    Active,
    /// Disabled by an administrator.
    Disabled,
    /// Deactivated (for a super administrator: only by support).
    Deactivated,
    /// Banned by misuse monitoring; re-enabled by another administrator.
    Banned,
}

/// Status of a service account.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// May act.
    #[default]
    Active,
    /// May not act.
    Disabled,
}

/// A service account's implicit access to its own organization (seed 001:
/// "new service accounts start with read access at the organization level").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAccess {
    /// Reader on its organization (the seed's default).
    #[default]
    Reader,
    /// Narrowed: only explicit grants apply.
    None,
}

/// Where a catalog's data lives (seed 001).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CatalogKind {
    /// A catalog hosted by the platform.
    #[default]
    Internal,
    /// An external data source.
    External,
}

/// What an environment is for (seed 001: production, staging, per customer).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EnvTier {
    /// Production.
    Production,
    /// Staging.
    Staging,
    /// Development.
    Development,
    /// A customer-specific environment.
    Customer,
    /// Anything else.
    #[default]
    Other,
}

/// Scopes of the user- and team-administration vocabulary (seed 002).
/// Scopes on team resources take the form `<object kind>:read|write`.
pub const KNOWN_SCOPES: [&str; 9] = [
    "user:create",
    "user:read",
    "user:update",
    "user:delete",
    "teams:invite-users",
    "teams:add-users",
    "teams:remove-users",
    "teams:update",
    "teams:read",
];

/// Verbs allowed in `<object kind>:<verb>` resource scopes.
pub const RESOURCE_SCOPE_VERBS: [&str; 2] = ["read", "write"];
