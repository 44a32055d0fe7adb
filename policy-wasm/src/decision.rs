//! Decisions: compact and string-free (cheap to compute and to pass across
//! the WebAssembly boundary); [`crate::Engine::explain`] renders them.

use portcullis_snapshots::body::{NodeRef, RoleRef, Str};
use portcullis_snapshots::vocabulary::{AdminRole, EntityType, Permission, SpRole};
use serde::{Deserialize, Serialize};

/// Why a decision came out as it did. The `code` strings are stable API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    // ---- allow ----------------------------------------------------------
    /// A role grant (see the basis).
    Grant,
    /// An individual permission (seed 004).
    Permission,
    /// An administrator role (seeds 000, 003).
    AdminRole,
    /// A service-provider dashboard role (seed 003).
    SpRole,
    /// The principal owns the team (seed 002).
    TeamOwner,
    /// The principal is a member of the team.
    TeamMember,
    /// A service account's default read access to its organization (seed 001).
    ServiceDefault,
    /// What every active user may do to their own account.
    SelfService,
    /// The break-glass support principal.
    Support,
    // ---- deny: the request -----------------------------------------------
    /// The request could not be decoded.
    MalformedRequest,
    /// No such principal in the snapshot.
    UnknownPrincipal,
    /// No such resource in the snapshot.
    UnknownResource,
    /// Not an action of the vocabulary.
    UnknownAction,
    /// The action does not apply to this kind of resource.
    ActionNotApplicable,
    // ---- deny: invariants no grant can override --------------------------
    /// The account is disabled.
    AccountDisabled,
    /// The account is deactivated.
    AccountDeactivated,
    /// The account is banned.
    AccountBanned,
    /// The invitation has not been accepted.
    AccountInvited,
    /// The account is past its expiry date.
    AccountExpired,
    /// The email address is not verified.
    EmailUnverified,
    /// A notification-only user (`allow_login: false`).
    NotificationOnly,
    /// The service account is disabled.
    ServiceAccountDisabled,
    /// The API key is revoked.
    ApiKeyRevoked,
    /// The API key is past its expiry date.
    ApiKeyExpired,
    /// The API key's creator cannot act, so neither can the key.
    ApiKeyCreatorInactive,
    /// Nobody edits their own expiry date (seed 003).
    OwnExpiry,
    /// Administrator accounts cannot be changed by bulk operations (seed 003).
    BulkAdministratorAccount,
    /// A super administrator can be deactivated only by support (seed 000).
    SuperAdministratorSupportOnly,
    /// A banned administrator cannot re-enable itself (seed 003).
    BannedAdministratorSelf,
    /// A banned administrator is re-enabled by another administrator (seed 003).
    BannedAdministratorNeedsAdministrator,
    /// A team's owner cannot be removed from the team (seed 002).
    TeamOwnerRemoval,
    /// The sole owner of an occupied organization or team cannot be deleted (seed 002).
    SoleOwner,
    /// A username never changes (seed 000: only support can).
    UsernameImmutable,
    /// Administrator accounts are not sent expiry warnings (seed 003).
    AdministratorNoExpiryWarning,
    /// Notifications are not sent to disabled, banned, deactivated, invited or expired accounts.
    RecipientInactive,
    /// Administrators cannot administer owners (seed 003).
    AdministratorOverOwner,
    /// Notifications are checked with the recipient as the resource.
    NotRecipient,
    // ---- deny: no grant ---------------------------------------------------
    /// Nothing grants this.
    NoGrant,
}

impl Reason {
    /// The stable code (`snake_case`).
    pub fn code(self) -> &'static str {
        use Reason::*;
        match self {
            Grant => "grant",
            Permission => "permission",
            AdminRole => "admin_role",
            SpRole => "sp_role",
            TeamOwner => "team_owner",
            TeamMember => "team_member",
            ServiceDefault => "service_default",
            SelfService => "self_service",
            Support => "support",
            MalformedRequest => "malformed_request",
            UnknownPrincipal => "unknown_principal",
            UnknownResource => "unknown_resource",
            UnknownAction => "unknown_action",
            ActionNotApplicable => "action_not_applicable",
            AccountDisabled => "account_disabled",
            AccountDeactivated => "account_deactivated",
            AccountBanned => "account_banned",
            AccountInvited => "account_invited",
            AccountExpired => "account_expired",
            EmailUnverified => "email_unverified",
            NotificationOnly => "notification_only",
            ServiceAccountDisabled => "service_account_disabled",
            ApiKeyRevoked => "api_key_revoked",
            ApiKeyExpired => "api_key_expired",
            ApiKeyCreatorInactive => "api_key_creator_inactive",
            OwnExpiry => "own_expiry",
            BulkAdministratorAccount => "bulk_administrator_account",
            SuperAdministratorSupportOnly => "super_administrator_support_only",
            BannedAdministratorSelf => "banned_administrator_self",
            BannedAdministratorNeedsAdministrator => "banned_administrator_needs_administrator",
            TeamOwnerRemoval => "team_owner_removal",
            SoleOwner => "sole_owner",
            UsernameImmutable => "username_immutable",
            AdministratorNoExpiryWarning => "administrator_no_expiry_warning",
            RecipientInactive => "recipient_inactive",
            AdministratorOverOwner => "administrator_over_owner",
            NotRecipient => "not_recipient",
            NoGrant => "no_grant",
        }
    }
}

/// Through whom a grant reaches the principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Via {
    /// Held by the principal itself.
    Direct,
    /// Held by a group the principal belongs to.
    Group(u32),
}

/// What allowed a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Basis {
    /// A role held on a node.
    Role {
        /// The role.
        role: RoleRef,
        /// Where it was granted.
        on: NodeRef,
        /// Through whom.
        via: Via,
    },
    /// A scope of a custom role held on a team or organization.
    Scope {
        /// The scope string.
        scope: Str,
        /// The custom role.
        role: u32,
        /// Where the role was granted.
        on: NodeRef,
        /// Through whom.
        via: Via,
    },
    /// An individual permission.
    Permission {
        /// Which.
        permission: Permission,
        /// Entity type, for View/Manage.
        entity: Option<EntityType>,
        /// Org it is held in (`None`: the domain).
        org: Option<u32>,
        /// Through whom.
        via: Via,
    },
    /// An administrator role held by a user sitting in `org`.
    AdminRole {
        /// The role.
        role: AdminRole,
        /// The user's organization.
        org: u32,
    },
    /// A service-provider dashboard role.
    SpRole(SpRole),
    /// Owner of a team.
    TeamOwner(u32),
    /// Member of a team.
    TeamMember(u32),
    /// A service account's default reader role on its organization.
    ServiceDefault(u32),
    /// The principal's own account.
    SelfService,
    /// The support principal.
    Support,
}

/// What must happen for an allowed action to complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Obligation {
    /// The new email address must be verified before it takes effect (seed 002).
    EmailReverification,
    /// The account holder must approve the change (seed 003: administrator email changes).
    HolderApproval,
}

/// The answer to a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decision {
    /// Allow or deny.
    pub allowed: bool,
    /// The stable reason.
    pub reason: Reason,
    /// What allowed it (on allow).
    pub basis: Option<Basis>,
    /// For an API key: the user (index) it acted as.
    pub acting_as: Option<u32>,
    /// Up to two obligations on allow.
    pub obligations: [Option<Obligation>; 2],
    /// The snapshot revision that decided.
    pub revision: u64,
}

impl Decision {
    /// A denial for `reason`.
    pub(crate) fn deny(reason: Reason) -> Self {
        Decision {
            allowed: false,
            reason,
            basis: None,
            acting_as: None,
            obligations: [None, None],
            revision: 0,
        }
    }

    /// An allow by `basis`.
    pub(crate) fn allow(reason: Reason, basis: Basis) -> Self {
        Decision {
            allowed: true,
            reason,
            basis: Some(basis),
            acting_as: None,
            obligations: [None, None],
            revision: 0,
        }
    }
}
