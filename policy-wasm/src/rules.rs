//! The rules of PRODUCT.md and the seeds, in the order they are decided:
//! the request must make sense, the invariants no grant can override come
//! next, and only then are grants consulted.
#![allow(
    clippy::indexing_slicing,
    reason = "every index in a loaded body was checked when it was decoded (snapshots::integrity): the engine indexes without checks of its own, on the hot path"
)]

use portcullis_snapshots::body::{Body, NodeRef, PermissionRec, PrincipalRef, RoleRef};
use portcullis_snapshots::vocabulary::{
    AccountStatus, AdminRole, BuiltinRole, DefaultAccess, EntityType, Permission, SpRole,
    UserStatus,
};

use crate::action::{Action, EntityVerb, Notification, SpFunction, TeamAction, UserAction};
use crate::decision::{Basis, Decision, Obligation, Reason, Via};
use crate::facts::{Facts, Grant, Pos};
use crate::request::{
    Context, Request, Subject, Target, applies, parse_action, parse_principal, parse_target,
};

/// Decides one request against `f`. Never panics on any request.
pub(crate) fn decide<F: Facts>(f: &F, req: &Request<'_>) -> Decision {
    let Some(subject) = parse_principal(f, req.principal) else {
        return Decision::deny(Reason::UnknownPrincipal);
    };
    let mut d = match parse_target(f, req.resource) {
        None => Decision::deny(Reason::UnknownResource),
        Some(target) => match parse_action(req.action, target) {
            Err(reason) => Decision::deny(reason),
            Ok(action) if !applies(action, target) => Decision::deny(Reason::ActionNotApplicable),
            Ok(action) => decide_parsed(f, subject, action, target, req.context),
        },
    };
    // Every decision an API key gets names the user it acts as.
    if let Subject::ApiKey { user, .. } = subject {
        d.acting_as = Some(user);
    }
    d
}

/// Decides a resolved request.
pub(crate) fn decide_parsed<F: Facts>(
    f: &F,
    subject: Subject,
    action: Action,
    target: Target,
    ctx: Context,
) -> Decision {
    let b = f.body();
    let actor = subject.user();

    // A username never changes; seed 000: only by contacting support.
    if action == Action::User(UserAction::ChangeUsername) && subject != Subject::Support {
        return Decision::deny(Reason::UsernameImmutable);
    }
    if let Action::Notify(n) = action {
        return notification(b, subject, n, target, ctx);
    }
    // Seed 003: a banned administrator is re-enabled by another
    // administrator, never by itself. Said before "you are banned" because
    // it is the more specific answer.
    if let (Action::User(UserAction::Reactivate), Target::User(t)) = (action, target)
        && actor == Some(t)
        && is_banned_admin(b, t)
    {
        return Decision::deny(Reason::BannedAdministratorSelf);
    }
    if let Some(reason) = inactive(b, subject, ctx.now) {
        return Decision::deny(reason);
    }
    if let Some(reason) = target_invariant(f, subject, action, target, ctx) {
        return Decision::deny(reason);
    }
    if subject == Subject::Support {
        return with_obligations(
            b,
            Decision::allow(Reason::Support, Basis::Support),
            action,
            target,
            actor,
        );
    }
    let d = by_grants(f, subject, action, target);
    with_obligations(b, d, action, target, actor)
}

/// Whether `subject`'s roles, grants and permissions allow `action` on
/// `target`, whatever its account status and the time: "could it ever do
/// this", which is what cutting a view asks of every candidate.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn grants_allow<F: Facts>(
    f: &F,
    subject: Subject,
    action: Action,
    target: Target,
) -> bool {
    by_grants(f, subject, action, target).allowed
}

fn is_banned_admin(b: &Body, u: u32) -> bool {
    let user = &b.users[u as usize];
    user.status == UserStatus::Banned && user.admin_role.is_some()
}

fn owner_level(role: Option<AdminRole>) -> bool {
    matches!(role, Some(AdminRole::Owner | AdminRole::SuperAdministrator))
}

/// Why a user account cannot act now, if it cannot.
pub(crate) fn user_inactive(b: &Body, u: u32, now: i64) -> Option<Reason> {
    let user = &b.users[u as usize];
    match user.status {
        UserStatus::Disabled => return Some(Reason::AccountDisabled),
        UserStatus::Deactivated => return Some(Reason::AccountDeactivated),
        UserStatus::Banned => return Some(Reason::AccountBanned),
        UserStatus::Invited => return Some(Reason::AccountInvited),
        UserStatus::Active => {}
    }
    if user.expires_at.get().is_some_and(|t| t <= now) {
        return Some(Reason::AccountExpired);
    }
    if !user.allow_login {
        return Some(Reason::NotificationOnly);
    }
    if !user.email_verified {
        return Some(Reason::EmailUnverified);
    }
    None
}

/// Only an active account can act (PRODUCT.md invariants); an API key of an
/// account that cannot act is dead too.
fn inactive(b: &Body, subject: Subject, now: i64) -> Option<Reason> {
    match subject {
        Subject::Support => None,
        Subject::User(u) => user_inactive(b, u, now),
        Subject::Service(s) => (b.service_accounts[s as usize].status == AccountStatus::Disabled)
            .then_some(Reason::ServiceAccountDisabled),
        Subject::ApiKey { key, user } => {
            let k = &b.api_keys[key as usize];
            if k.revoked {
                Some(Reason::ApiKeyRevoked)
            } else if k.expires_at.is_some_and(|t| t <= now) {
                Some(Reason::ApiKeyExpired)
            } else {
                user_inactive(b, user, now).map(|_| Reason::ApiKeyCreatorInactive)
            }
        }
    }
}

/// May `subject` be sent notification `n`? The recipient is the resource.
fn notification(
    b: &Body,
    subject: Subject,
    n: Notification,
    target: Target,
    ctx: Context,
) -> Decision {
    let Target::User(r) = target else {
        return Decision::deny(Reason::ActionNotApplicable);
    };
    if subject != Subject::User(r) {
        return Decision::deny(Reason::NotRecipient);
    }
    let user = &b.users[r as usize];
    // Notification-only and unverified users still receive (seed 002);
    // accounts that are switched off do not.
    let off =
        user.status != UserStatus::Active || user.expires_at.get().is_some_and(|t| t <= ctx.now);
    if off {
        return Decision::deny(Reason::RecipientInactive);
    }
    if n == Notification::ExpiryWarning && user.admin_role.is_some() {
        return Decision::deny(Reason::AdministratorNoExpiryWarning);
    }
    Decision::allow(Reason::SelfService, Basis::SelfService)
}

/// Invariants about the target that hold whoever asks.
fn target_invariant<F: Facts>(
    f: &F,
    subject: Subject,
    action: Action,
    target: Target,
    ctx: Context,
) -> Option<Reason> {
    let b = f.body();
    match (action, target) {
        (Action::Team(TeamAction::RemoveMember), Target::TeamMember { team, user })
            if b.teams[team as usize].owner == user =>
        {
            Some(Reason::TeamOwnerRemoval)
        }
        (Action::User(a), Target::User(t)) => {
            let target_user = &b.users[t as usize];
            if ctx.bulk && a.modifies() && target_user.admin_role.is_some() {
                return Some(Reason::BulkAdministratorAccount);
            }
            if a == UserAction::UpdateExpiry && subject.user() == Some(t) {
                return Some(Reason::OwnExpiry);
            }
            if matches!(a, UserAction::Deactivate | UserAction::Delete)
                && target_user.admin_role == Some(AdminRole::SuperAdministrator)
                && subject != Subject::Support
            {
                return Some(Reason::SuperAdministratorSupportOnly);
            }
            if a == UserAction::Delete && f.sole_owner(t) {
                return Some(Reason::SoleOwner);
            }
            None
        }
        _ => None,
    }
}

fn with_obligations(
    b: &Body,
    mut d: Decision,
    action: Action,
    target: Target,
    actor: Option<u32>,
) -> Decision {
    if d.allowed
        && let (Action::User(UserAction::ChangeEmail), Target::User(t)) = (action, target)
    {
        d.obligations[0] = Some(Obligation::EmailReverification);
        // Seed 003: an administrator account's email change is approved by its holder.
        if b.users[t as usize].admin_role.is_some() && actor != Some(t) {
            d.obligations[1] = Some(Obligation::HolderApproval);
        }
    }
    d
}

// ---------------------------------------------------------------------------
// Grants

/// The principals whose grants count for a subject: itself, then its groups.
fn principal_of(subject: Subject) -> Option<PrincipalRef> {
    match subject {
        Subject::User(u) | Subject::ApiKey { user: u, .. } => Some(PrincipalRef::User(u)),
        Subject::Service(s) => Some(PrincipalRef::Service(s)),
        Subject::Support => None,
    }
}

/// First grant (direct, then through groups, in snapshot order) for which
/// `visit` returns a decision.
fn each_grant<F: Facts>(
    f: &F,
    p: PrincipalRef,
    mut visit: impl FnMut(&Grant, Via) -> Option<Decision>,
) -> Option<Decision> {
    for g in f.grants_of(p) {
        if let Some(d) = visit(&g, Via::Direct) {
            return Some(d);
        }
    }
    for grp in f.groups_of(p) {
        for g in f.grants_of(PrincipalRef::Group(grp)) {
            if let Some(d) = visit(&g, Via::Group(grp)) {
                return Some(d);
            }
        }
    }
    None
}

/// Like [`each_grant`] for individual permissions.
fn each_permission<F: Facts>(
    f: &F,
    p: PrincipalRef,
    mut visit: impl FnMut(&PermissionRec, Via) -> Option<Decision>,
) -> Option<Decision> {
    let perms = &f.body().permissions;
    for i in f.permissions_of(p) {
        if let Some(d) = visit(&perms[i as usize], Via::Direct) {
            return Some(d);
        }
    }
    for grp in f.groups_of(p) {
        for i in f.permissions_of(PrincipalRef::Group(grp)) {
            if let Some(d) = visit(&perms[i as usize], Via::Group(grp)) {
                return Some(d);
            }
        }
    }
    None
}

fn role_allow(g: &Grant, via: Via) -> Decision {
    Decision::allow(
        Reason::Grant,
        Basis::Role {
            role: g.role,
            on: g.on,
            via,
        },
    )
}

fn perm_allow(p: &PermissionRec, via: Via) -> Decision {
    Decision::allow(
        Reason::Permission,
        Basis::Permission {
            permission: p.permission,
            entity: p.entity,
            org: p.org,
            via,
        },
    )
}

/// Whether permission `p` holds in org `org` (held on it or an ancestor).
fn perm_covers<F: Facts>(f: &F, p: &PermissionRec, org: u32) -> bool {
    f.org_within(org, p.org.unwrap_or(f.body().domain))
}

/// Seed 004 Super Admin: every action within the org it is held in.
fn super_admin<F: Facts>(f: &F, p: PrincipalRef, org: u32) -> Option<Decision> {
    each_permission(f, p, |perm, via| {
        (perm.permission == Permission::SuperAdmin && perm_covers(f, perm, org))
            .then(|| perm_allow(perm, via))
    })
}

/// Administrator-role authority over org `org`: owners and super
/// administrators everywhere, administrators in their own subtree.
fn admin_over<F: Facts>(f: &F, actor: Option<u32>, org: u32) -> Option<Decision> {
    let u = &f.body().users[actor? as usize];
    let role = u.admin_role?;
    let ok = owner_level(Some(role)) || f.org_within(org, u.org);
    ok.then(|| Decision::allow(Reason::AdminRole, Basis::AdminRole { role, org: u.org }))
}

/// The seed 001 Admin role held on `org` or an ancestor.
fn org_admin_grant<F: Facts>(f: &F, p: PrincipalRef, org: u32) -> Option<Decision> {
    each_grant(f, p, |g, via| match (g.role, g.on) {
        (RoleRef::Builtin(BuiltinRole::Admin), NodeRef::Org(o)) if f.org_within(org, o) => {
            Some(role_allow(g, via))
        }
        _ => None,
    })
}

/// The highest authority that applies everywhere in `org`: administrator
/// roles, then Super Admin.
fn authority<F: Facts>(f: &F, actor: Option<u32>, p: PrincipalRef, org: u32) -> Option<Decision> {
    admin_over(f, actor, org).or_else(|| super_admin(f, p, org))
}

/// A custom-role scope that reaches a place: held within `team` (and the
/// principal is in that team — seed 002: roles apply only within the team),
/// or held on an organization containing `org`.
fn scope<F: Facts>(
    f: &F,
    p: PrincipalRef,
    actor: Option<u32>,
    team: Option<u32>,
    org: Option<u32>,
    wanted: &dyn Fn(&str) -> bool,
) -> Option<Decision> {
    let b = f.body();
    each_grant(f, p, |g, via| {
        let RoleRef::Custom(r) = g.role else {
            return None;
        };
        let reaches = match g.on {
            NodeRef::Team(t) => team == Some(t) && actor.is_some_and(|u| f.in_team(t, u)),
            NodeRef::Org(o) => org.is_some_and(|x| f.org_within(x, o)),
            _ => false,
        };
        if !reaches {
            return None;
        }
        let role = &b.custom_roles[r as usize];
        role.scopes.iter().find(|&&s| wanted(b.str(s))).map(|&s| {
            Decision::allow(
                Reason::Grant,
                Basis::Scope {
                    scope: s,
                    role: r,
                    on: g.on,
                    via,
                },
            )
        })
    })
}

fn no_grant() -> Decision {
    Decision::deny(Reason::NoGrant)
}

fn by_grants<F: Facts>(f: &F, subject: Subject, action: Action, target: Target) -> Decision {
    let b = f.body();
    let actor = subject.user();
    let Some(p) = principal_of(subject) else {
        return no_grant();
    };
    match (action, target) {
        (Action::Read | Action::Write, Target::Node(n)) => {
            let pos = f.pos(n);
            if pos.team.is_some() {
                team_resource(f, p, actor, action == Action::Write, &pos)
            } else {
                data(f, subject, p, action == Action::Write, &pos)
            }
        }
        (Action::OrgOpen, Target::Node(NodeRef::Org(o))) => org_open(f, subject, p, o),
        (Action::EnvOpen | Action::DashboardsView, Target::Node(n @ NodeRef::Env(e))) => {
            let pos = f.pos(n);
            let env_org = b.envs[e as usize].org;
            each_grant(f, p, |g, via| {
                let opens = matches!(
                    g.role,
                    RoleRef::Builtin(
                        BuiltinRole::Admin
                            | BuiltinRole::Writer
                            | BuiltinRole::Reader
                            | BuiltinRole::CustomPerCatalog
                    )
                );
                (opens && f.covers(g.on, &pos)).then(|| role_allow(g, via))
            })
            .or_else(|| service_default(f, subject, env_org))
            .or_else(|| authority(f, actor, p, env_org))
            .unwrap_or_else(no_grant)
        }
        (Action::Org(_), Target::Node(NodeRef::Org(o))) => org_admin_grant(f, p, o)
            .or_else(|| authority(f, actor, p, o))
            .unwrap_or_else(no_grant),
        (Action::OrgSwitch, Target::Node(NodeRef::Org(o))) => {
            authority(f, actor, p, o).unwrap_or_else(no_grant)
        }
        (Action::Admin(func), Target::Node(NodeRef::Org(o))) => {
            let by_role = if func.owner_level_only() {
                actor.and_then(|u| {
                    let user = &b.users[u as usize];
                    match user.admin_role {
                        Some(role) if owner_level(Some(role)) => Some(Decision::allow(
                            Reason::AdminRole,
                            Basis::AdminRole {
                                role,
                                org: user.org,
                            },
                        )),
                        _ => None,
                    }
                })
            } else {
                admin_over(f, actor, o)
            };
            by_role
                .or_else(|| super_admin(f, p, o))
                .unwrap_or_else(no_grant)
        }
        (Action::Sp(func), Target::Node(NodeRef::Org(o))) => {
            let sp = actor
                .and_then(|u| b.users[u as usize].sp_role)
                .and_then(|r| {
                    (r == SpRole::DashboardAdministrator || func == SpFunction::Reports)
                        .then(|| Decision::allow(Reason::SpRole, Basis::SpRole(r)))
                });
            let owner = actor.and_then(|u| {
                let user = &b.users[u as usize];
                owner_level(user.admin_role)
                    .then(|| admin_over(f, actor, o))
                    .flatten()
            });
            sp.or(owner)
                .or_else(|| super_admin(f, p, o))
                .unwrap_or_else(no_grant)
        }
        (Action::Entity(verb, entity), Target::Node(NodeRef::Org(o))) => {
            entity_action(f, actor, p, verb, entity, o)
        }
        (Action::Entity(verb, entity), Target::Entity(_)) => {
            entity_action(f, actor, p, verb, entity, b.domain)
        }
        (Action::PlatformAccess, Target::Node(NodeRef::Org(o))) => {
            flag(f, p, o, Permission::PlatformAccess)
                .unwrap_or_else(|| super_admin(f, p, o).unwrap_or_else(no_grant))
        }
        (Action::ViewAllPipelineData, Target::Node(NodeRef::Org(o))) => {
            // Seed 004: the flag is about the warehouse account that
            // platform access creates; without that account it means nothing.
            match (
                flag(f, p, o, Permission::PlatformAccess),
                flag(f, p, o, Permission::ViewAllPipelineData),
            ) {
                (Some(_), Some(d)) => d,
                _ => super_admin(f, p, o).unwrap_or_else(no_grant),
            }
        }
        (Action::Team(a), Target::Node(NodeRef::Team(t)) | Target::TeamMember { team: t, .. }) => {
            team_action(f, p, actor, a, t)
        }
        (Action::UserInvite, Target::Node(n)) => {
            let pos = f.pos(n);
            let team = pos.team;
            authority(f, actor, p, pos.org)
                .or_else(|| org_admin_grant(f, p, pos.org))
                .or_else(|| team.and_then(|t| team_owner(b, actor, t)))
                .or_else(|| scope(f, p, actor, team, Some(pos.org), &|s| s == "user:create"))
                .or_else(|| manage_users(f, p, pos.org))
                .unwrap_or_else(no_grant)
        }
        (Action::User(a), Target::User(t)) => user_action(f, subject, p, a, t),
        (Action::Login, Target::User(u)) if actor == Some(u) => {
            Decision::allow(Reason::SelfService, Basis::SelfService)
        }
        (Action::Login, Target::Service(s)) if subject == Subject::Service(s) => {
            Decision::allow(Reason::SelfService, Basis::SelfService)
        }
        (Action::Login, _) => Decision::deny(Reason::NotRecipient),
        _ => Decision::deny(Reason::ActionNotApplicable),
    }
}

/// Read/write data: the org → env → catalog → object cascade (seed 001).
fn data<F: Facts>(f: &F, subject: Subject, p: PrincipalRef, write: bool, pos: &Pos) -> Decision {
    each_grant(f, p, |g, via| {
        let level = match g.role {
            RoleRef::Builtin(BuiltinRole::Admin | BuiltinRole::Writer) => 2,
            RoleRef::Builtin(BuiltinRole::Reader) => 1,
            _ => 0,
        };
        (level > usize::from(write) && f.covers(g.on, pos)).then(|| role_allow(g, via))
    })
    .or_else(|| {
        if write {
            None
        } else {
            service_default(f, subject, pos.org)
        }
    })
    .or_else(|| authority(f, subject.user(), p, pos.org))
    .unwrap_or_else(no_grant)
}

/// Seed 001: a service account starts as reader on its organization.
fn service_default<F: Facts>(f: &F, subject: Subject, org: u32) -> Option<Decision> {
    let Subject::Service(s) = subject else {
        return None;
    };
    let sa = &f.body().service_accounts[s as usize];
    (sa.default_access == DefaultAccess::Reader && f.org_within(org, sa.org))
        .then(|| Decision::allow(Reason::ServiceDefault, Basis::ServiceDefault(sa.org)))
}

/// Team resources (seed 002): the owner, scopes held within the team (or an
/// org above), object shares, and administrators.
fn team_resource<F: Facts>(
    f: &F,
    p: PrincipalRef,
    actor: Option<u32>,
    write: bool,
    pos: &Pos,
) -> Decision {
    let b = f.body();
    let (Some(t), Some(o)) = (pos.team, pos.object) else {
        return Decision::deny(Reason::ActionNotApplicable);
    };
    let kind = b.str(b.objects[o as usize].kind);
    // `<kind>:write` allows both; `<kind>:read` allows reading.
    let scope_allows = |s: &str| match s.split_once(':') {
        Some((k, "write")) => k == kind,
        Some((k, "read")) => k == kind && !write,
        _ => false,
    };
    team_owner(b, actor, t)
        .or_else(|| {
            each_grant(f, p, |g, via| {
                let level = match g.role {
                    RoleRef::Builtin(BuiltinRole::Writer) => 2,
                    RoleRef::Builtin(BuiltinRole::Reader) => 1,
                    _ => 0,
                };
                (level > usize::from(write) && g.on == NodeRef::Object(o))
                    .then(|| role_allow(g, via))
            })
        })
        .or_else(|| scope(f, p, actor, Some(t), Some(pos.org), &scope_allows))
        .or_else(|| authority(f, actor, p, pos.org))
        .unwrap_or_else(no_grant)
}

fn team_owner(b: &Body, actor: Option<u32>, t: u32) -> Option<Decision> {
    (actor? == b.teams[t as usize].owner)
        .then_some(Decision::allow(Reason::TeamOwner, Basis::TeamOwner(t)))
}

/// Opening an organization: any role on it, above it or inside it; team
/// membership inside it; administrator authority; service default access.
fn org_open<F: Facts>(f: &F, subject: Subject, p: PrincipalRef, o: u32) -> Decision {
    let b = f.body();
    let actor = subject.user();
    let related = |x: u32| f.org_within(x, o) || f.org_within(o, x);
    each_grant(f, p, |g, via| {
        related(f.pos(g.on).org).then(|| role_allow(g, via))
    })
    .or_else(|| {
        let Subject::Service(s) = subject else {
            return None;
        };
        let sa = &b.service_accounts[s as usize];
        (sa.default_access == DefaultAccess::Reader && related(sa.org))
            .then(|| Decision::allow(Reason::ServiceDefault, Basis::ServiceDefault(sa.org)))
    })
    .or_else(|| {
        let u = actor?;
        f.teams_of(u)
            .find(|&t| f.org_within(b.teams[t as usize].org, o))
            .map(|t| Decision::allow(Reason::TeamMember, Basis::TeamMember(t)))
    })
    .or_else(|| {
        let user = &b.users[actor? as usize];
        let role = user.admin_role?;
        (owner_level(Some(role)) || related(user.org)).then(|| {
            Decision::allow(
                Reason::AdminRole,
                Basis::AdminRole {
                    role,
                    org: user.org,
                },
            )
        })
    })
    .or_else(|| super_admin(f, p, o))
    .unwrap_or_else(no_grant)
}

fn flag<F: Facts>(f: &F, p: PrincipalRef, o: u32, which: Permission) -> Option<Decision> {
    each_permission(f, p, |perm, via| {
        (perm.permission == which && perm_covers(f, perm, o)).then(|| perm_allow(perm, via))
    })
}

/// Seed 004 View/Manage: Manage implies View; create, edit and remove need Manage.
fn entity_action<F: Facts>(
    f: &F,
    actor: Option<u32>,
    p: PrincipalRef,
    verb: EntityVerb,
    entity: EntityType,
    o: u32,
) -> Decision {
    each_permission(f, p, |perm, via| {
        let level_ok = match perm.permission {
            Permission::Manage => true,
            Permission::View => verb == EntityVerb::View,
            _ => false,
        };
        (level_ok && perm.entity == Some(entity) && perm_covers(f, perm, o))
            .then(|| perm_allow(perm, via))
    })
    .or_else(|| authority(f, actor, p, o))
    .unwrap_or_else(no_grant)
}

fn manage_users<F: Facts>(f: &F, p: PrincipalRef, org: u32) -> Option<Decision> {
    each_permission(f, p, |perm, via| {
        (perm.permission == Permission::Manage
            && perm.entity == Some(EntityType::Users)
            && perm_covers(f, perm, org))
        .then(|| perm_allow(perm, via))
    })
}

/// Team administration (seed 002).
fn team_action<F: Facts>(
    f: &F,
    p: PrincipalRef,
    actor: Option<u32>,
    a: TeamAction,
    t: u32,
) -> Decision {
    let b = f.body();
    let org = b.teams[t as usize].org;
    let wanted: &dyn Fn(&str) -> bool = match a {
        TeamAction::View => &|s| s == "teams:read" || s == "teams:update",
        TeamAction::Update => &|s| s == "teams:update",
        TeamAction::Invite => &|s| s == "teams:invite-users",
        // Seed 002: "Add Member (requires user:create or similar scope)".
        TeamAction::AddMember => &|s| s == "teams:add-users" || s == "user:create",
        TeamAction::RemoveMember => &|s| s == "teams:remove-users",
    };
    team_owner(b, actor, t)
        .or_else(|| scope(f, p, actor, Some(t), Some(org), wanted))
        .or_else(|| {
            (a == TeamAction::View && actor.is_some_and(|u| f.in_team(t, u)))
                .then_some(Decision::allow(Reason::TeamMember, Basis::TeamMember(t)))
        })
        .or_else(|| org_admin_grant(f, p, org))
        .or_else(|| authority(f, actor, p, org))
        .unwrap_or_else(no_grant)
}

/// Administration of user `t` (seeds 000, 002, 003, 004).
fn user_action<F: Facts>(
    f: &F,
    subject: Subject,
    p: PrincipalRef,
    a: UserAction,
    t: u32,
) -> Decision {
    let b = f.body();
    let actor = subject.user();
    let target = &b.users[t as usize];
    let org = target.org;
    if actor == Some(t)
        && matches!(
            a,
            UserAction::View
                | UserAction::Update
                | UserAction::ResetPassword
                | UserAction::ChangeEmail
        )
    {
        return Decision::allow(Reason::SelfService, Basis::SelfService);
    }
    let actor_role = actor.and_then(|u| b.users[u as usize].admin_role);
    // Owners and super administrators administer everyone (seed 003).
    if owner_level(actor_role)
        && let Some(d) = admin_over(f, actor, org)
    {
        return d;
    }
    if let Some(d) = super_admin(f, p, org) {
        return d;
    }
    // Administrators cannot administer owners (seed 003).
    if owner_level(target.admin_role) {
        return if actor_role == Some(AdminRole::Administrator) {
            Decision::deny(Reason::AdministratorOverOwner)
        } else {
            no_grant()
        };
    }
    if let Some(d) = admin_over(f, actor, org) {
        return d;
    }
    // Seed 003: a banned administrator is re-enabled by another administrator.
    if a == UserAction::Reactivate && is_banned_admin(b, t) {
        return Decision::deny(Reason::BannedAdministratorNeedsAdministrator);
    }
    let wanted: &dyn Fn(&str) -> bool = match a {
        UserAction::View => &|s| s.starts_with("user:"),
        UserAction::Delete => &|s| s == "user:delete",
        UserAction::ChangeUsername => &|_| false,
        _ => &|s| s == "user:update",
    };
    org_admin_grant(f, p, org)
        .or_else(|| manage_users(f, p, org))
        // Scopes held within a team reach that team's members; held on an
        // organization, the users sitting in it.
        .or_else(|| {
            f.teams_of(t)
                .find_map(|team| scope(f, p, actor, Some(team), None, wanted))
        })
        .or_else(|| scope(f, p, actor, None, Some(org), wanted))
        .unwrap_or_else(no_grant)
}
