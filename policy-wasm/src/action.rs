//! The action vocabulary: every action the seeds imply, parsed from the
//! stable strings requests carry (documented in `policy-wasm/README.md`).

use std::collections::HashMap;
use std::sync::OnceLock;

use portcullis_snapshots::vocabulary::EntityType;
use rustc_hash::FxBuildHasher;

/// Org administration functions of the seed 001 Admin role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrgFunction {
    /// Manage members.
    Members,
    /// Manage access.
    Access,
    /// Billing.
    Billing,
    /// Organization settings.
    Settings,
}

/// Administrator-role functions (seeds 000 and 003).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdminFunction {
    /// Schema editor (owner level only).
    SchemaEditor,
    /// Release policies (owner level only).
    ReleasePolicies,
    /// Domain-wide settings (owner level only).
    DomainSettings,
    /// SSO configuration (owner level only).
    Sso,
    /// SCIM configuration (owner level only).
    Scim,
    /// API key administration (owner level only).
    ApiKeys,
    /// Configure data sources (any administrator role, in its subtree).
    DataSources,
    /// Configure security policies (any administrator role, in its subtree).
    SecurityPolicies,
}

impl AdminFunction {
    /// Functions reserved to owners and super administrators.
    pub fn owner_level_only(self) -> bool {
        !matches!(
            self,
            AdminFunction::DataSources | AdminFunction::SecurityPolicies
        )
    }
}

/// Service-provider dashboard functions (seed 003).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpFunction {
    /// Rules.
    Rules,
    /// Permissions.
    Permissions,
    /// Applications.
    Applications,
    /// Connections.
    Connections,
    /// Reports (the report viewer's only function).
    Reports,
}

/// View/Manage verbs of seed 004; create, edit and remove need Manage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntityVerb {
    /// View objects of the entity type.
    View,
    /// Manage (create, edit, remove) objects.
    Manage,
    /// Create: needs Manage.
    Create,
    /// Edit: needs Manage.
    Edit,
    /// Remove: needs Manage.
    Remove,
}

/// Team administration (seed 002).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TeamAction {
    /// See the team and its members.
    View,
    /// Edit the team.
    Update,
    /// Invite by email (`teams:invite-users`).
    Invite,
    /// Add an existing user (`teams:add-users`, or `user:create`).
    AddMember,
    /// Remove a member (`teams:remove-users`); the owner cannot be removed.
    RemoveMember,
}

/// Administration of one user account (seeds 000, 002, 003, 004).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserAction {
    /// See the account.
    View,
    /// Edit profile fields.
    Update,
    /// Delete the account.
    Delete,
    /// Deactivate / disable.
    Deactivate,
    /// Reactivate / re-enable.
    Reactivate,
    /// Reset the password.
    ResetPassword,
    /// Change the email address (needs re-verification).
    ChangeEmail,
    /// Change the expiry date.
    UpdateExpiry,
    /// Change the username (never, but by support).
    ChangeUsername,
}

impl UserAction {
    /// Every action that modifies the account (all but View).
    pub fn modifies(self) -> bool {
        self != UserAction::View
    }
}

/// Notifications a principal may be sent (seeds 002, 003).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notification {
    /// Alerts.
    Alerts,
    /// Reports.
    Reports,
    /// Account-expiry warnings (never to administrator accounts).
    ExpiryWarning,
}

/// An action of the vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `read`: read data (org/env/catalog/object) or a team resource.
    Read,
    /// `write`: write data or a team resource; implies read.
    Write,
    /// `org:open`: open an organization.
    OrgOpen,
    /// `env:open`: open an environment.
    EnvOpen,
    /// `dashboards:view`: view an environment's dashboards.
    DashboardsView,
    /// `org:members|access|billing|settings`.
    Org(OrgFunction),
    /// `org:switch`: switch into an organization.
    OrgSwitch,
    /// `admin:*`.
    Admin(AdminFunction),
    /// `sp:*`.
    Sp(SpFunction),
    /// `view:<entity>`, `manage:<entity>`, … (or the bare verb on `entity/<type>`).
    Entity(EntityVerb, EntityType),
    /// `platform:access`.
    PlatformAccess,
    /// `pipelines:view_all_data`.
    ViewAllPipelineData,
    /// `team:*`.
    Team(TeamAction),
    /// `user:invite`: create a user within a team or organization.
    UserInvite,
    /// `user:*` on a user.
    User(UserAction),
    /// `notify:*`: may the principal be sent this.
    Notify(Notification),
    /// `login`: may the principal sign in.
    Login,
}

/// Every fixed action string (entity actions are generated per type),
/// sorted by name (a test keeps it so, and `permissions` lists in this order).
const FIXED: &[(&str, Action)] = &[
    ("admin:api_keys", Action::Admin(AdminFunction::ApiKeys)),
    (
        "admin:data_sources",
        Action::Admin(AdminFunction::DataSources),
    ),
    (
        "admin:domain_settings",
        Action::Admin(AdminFunction::DomainSettings),
    ),
    (
        "admin:release_policies",
        Action::Admin(AdminFunction::ReleasePolicies),
    ),
    (
        "admin:schema_editor",
        Action::Admin(AdminFunction::SchemaEditor),
    ),
    ("admin:scim", Action::Admin(AdminFunction::Scim)),
    (
        "admin:security_policies",
        Action::Admin(AdminFunction::SecurityPolicies),
    ),
    ("admin:sso", Action::Admin(AdminFunction::Sso)),
    ("dashboards:view", Action::DashboardsView),
    ("env:open", Action::EnvOpen),
    ("login", Action::Login),
    ("notify:alerts", Action::Notify(Notification::Alerts)),
    (
        "notify:expiry_warning",
        Action::Notify(Notification::ExpiryWarning),
    ),
    ("notify:reports", Action::Notify(Notification::Reports)),
    ("org:access", Action::Org(OrgFunction::Access)),
    ("org:billing", Action::Org(OrgFunction::Billing)),
    ("org:members", Action::Org(OrgFunction::Members)),
    ("org:open", Action::OrgOpen),
    ("org:settings", Action::Org(OrgFunction::Settings)),
    ("org:switch", Action::OrgSwitch),
    ("pipelines:view_all_data", Action::ViewAllPipelineData),
    ("platform:access", Action::PlatformAccess),
    ("read", Action::Read),
    ("sp:applications", Action::Sp(SpFunction::Applications)),
    ("sp:connections", Action::Sp(SpFunction::Connections)),
    ("sp:permissions", Action::Sp(SpFunction::Permissions)),
    ("sp:reports", Action::Sp(SpFunction::Reports)),
    ("sp:rules", Action::Sp(SpFunction::Rules)),
    ("team:add_member", Action::Team(TeamAction::AddMember)),
    ("team:invite", Action::Team(TeamAction::Invite)),
    ("team:remove_member", Action::Team(TeamAction::RemoveMember)),
    ("team:update", Action::Team(TeamAction::Update)),
    ("team:view", Action::Team(TeamAction::View)),
    ("user:change_email", Action::User(UserAction::ChangeEmail)),
    (
        "user:change_username",
        Action::User(UserAction::ChangeUsername),
    ),
    ("user:deactivate", Action::User(UserAction::Deactivate)),
    ("user:delete", Action::User(UserAction::Delete)),
    ("user:invite", Action::UserInvite),
    ("user:reactivate", Action::User(UserAction::Reactivate)),
    (
        "user:reset_password",
        Action::User(UserAction::ResetPassword),
    ),
    ("user:update", Action::User(UserAction::Update)),
    ("user:update_expiry", Action::User(UserAction::UpdateExpiry)),
    ("user:view", Action::User(UserAction::View)),
    ("write", Action::Write),
];

const VERBS: [(&str, EntityVerb); 5] = [
    ("view", EntityVerb::View),
    ("manage", EntityVerb::Manage),
    ("create", EntityVerb::Create),
    ("edit", EntityVerb::Edit),
    ("remove", EntityVerb::Remove),
];

impl Action {
    /// Parses an action string. Entity actions are `<verb>:<entity type>`;
    /// a bare verb is returned as [`Parsed::BareVerb`] for `entity/<type>` resources.
    pub fn parse(s: &str) -> Option<Parsed> {
        // Every action string is known in advance: one hash and one
        // comparison instead of searching three tables (this is on every
        // check's path).
        static TABLE: OnceLock<HashMap<String, Parsed, FxBuildHasher>> = OnceLock::new();
        TABLE
            .get_or_init(|| {
                Action::all()
                    .map(|a| (a.name(), Parsed::Action(a)))
                    .chain(
                        VERBS
                            .iter()
                            .map(|(n, v)| ((*n).to_string(), Parsed::BareVerb(*v))),
                    )
                    .collect()
            })
            .get(s)
            .copied()
    }

    /// The stable string of this action.
    pub fn name(self) -> String {
        if let Action::Entity(v, e) = self {
            let verb = VERBS.iter().find(|(_, x)| *x == v).map_or("", |(n, _)| n);
            return format!("{verb}:{}", e.name());
        }
        FIXED
            .iter()
            .find(|(_, a)| *a == self)
            .map_or_else(String::new, |(n, _)| (*n).to_string())
    }

    /// Every action, entity actions included: what `permissions` tries.
    pub fn all() -> impl Iterator<Item = Action> {
        FIXED.iter().map(|(_, a)| *a).chain(
            EntityType::ALL
                .into_iter()
                .flat_map(|e| VERBS.iter().map(move |(_, v)| Action::Entity(*v, e))),
        )
    }
}

/// Result of parsing an action string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete action.
    Action(Action),
    /// `view`, `manage`, … without an entity: only valid on `entity/<type>`.
    BareVerb(EntityVerb),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_actions_are_sorted_and_complete() {
        assert!(FIXED.windows(2).all(|w| w[0].0 < w[1].0));
        // Every variant of the vocabulary, once (policy-wasm/README.md).
        assert_eq!(FIXED.len(), 44);
        assert_eq!(Action::all().count(), 44 + 12 * 5);
    }

    #[test]
    fn every_action_name_parses_back() {
        for a in Action::all() {
            assert_eq!(Action::parse(&a.name()), Some(Parsed::Action(a)), "{a:?}");
        }
    }
}
