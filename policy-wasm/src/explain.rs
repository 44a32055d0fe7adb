//! Human-readable explanations of decisions: the message and the chain of
//! facts that decided (who acted as whom, which group, which grant, where).
#![allow(
    clippy::indexing_slicing,
    reason = "every index in a loaded body was checked when it was decoded (snapshots::integrity): the engine indexes without checks of its own, on the hot path"
)]

use portcullis_snapshots::body::Body;
use serde::{Deserialize, Serialize};

use crate::decision::{Basis, Decision, Obligation, Reason, Via};
use crate::request::Request;

/// A decision with its strings: what the CLI prints, the gateway's 403 body
/// carries, and a UI shows on hover. (Every field is always present: this
/// type also crosses the WebAssembly boundary as postcard, which is not
/// self-describing.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// `allow` or `deny`.
    pub decision: String,
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The stable reason code.
    pub reason: String,
    /// One sentence for a human.
    pub message: String,
    /// The facts that decided, outermost first.
    pub chain: Vec<String>,
    /// For an API key: `user/<username>` it acted as.
    pub acting_as: Option<String>,
    /// What must still happen (`email_reverification`, `holder_approval`).
    pub obligations: Vec<String>,
    /// The snapshot revision that decided.
    pub revision: u64,
}

fn org(b: &Body, o: u32) -> String {
    format!("org/{}", b.str(b.orgs[o as usize].id))
}

fn user(b: &Body, u: u32) -> String {
    format!("user/{}", b.str(b.users[u as usize].username))
}

/// The sentence for a denial by invariant or for a malformed request.
fn deny_message(reason: Reason, req: &Request<'_>) -> String {
    use Reason::*;
    let (p, a, r) = (req.principal, req.action, req.resource);
    match reason {
        MalformedRequest => "the request could not be decoded".into(),
        UnknownPrincipal => format!("{p} is not a principal in this snapshot"),
        UnknownResource => format!("{r} is not a resource in this snapshot"),
        UnknownAction => {
            format!("{a:?} is not an action Portcullis knows (see policy-wasm/README.md)")
        }
        ActionNotApplicable => format!("{a} does not apply to {r}"),
        AccountDisabled => format!("{p} is disabled; disabled accounts cannot act"),
        AccountDeactivated => format!("{p} is deactivated; deactivated accounts cannot act"),
        AccountBanned => format!("{p} is banned; another administrator must re-enable it"),
        AccountInvited => format!("{p} has not accepted its invitation yet"),
        AccountExpired => format!("{p} is past its expiry date"),
        EmailUnverified => format!("{p} has not verified its email address"),
        NotificationOnly => {
            format!("{p} is a notification-only user (allow_login: false) and cannot log in or act")
        }
        ServiceAccountDisabled => format!("{p} is a disabled service account"),
        ApiKeyRevoked => "the API key is revoked".into(),
        ApiKeyExpired => "the API key is past its expiry date".into(),
        ApiKeyCreatorInactive => "the API key's creator cannot act, so neither can the key".into(),
        OwnExpiry => "nobody edits their own expiry date".into(),
        BulkAdministratorAccount => {
            format!("{r} is an administrator account; bulk operations cannot change it")
        }
        SuperAdministratorSupportOnly => {
            format!("{r} is a super administrator; only support can deactivate or delete it")
        }
        BannedAdministratorSelf => {
            "a banned administrator cannot re-enable itself; another administrator must".into()
        }
        BannedAdministratorNeedsAdministrator => {
            format!("{r} is a banned administrator; only another administrator can re-enable it")
        }
        TeamOwnerRemoval => {
            "a team's owner cannot be removed from the team; transfer ownership first".into()
        }
        SoleOwner => format!(
            "{r} is the sole owner of an organization or team that still has members or resources; transfer ownership first"
        ),
        UsernameImmutable => "usernames never change (only support can change one)".into(),
        AdministratorNoExpiryWarning => format!(
            "{r} is an administrator account; administrator accounts are not sent expiry warnings"
        ),
        RecipientInactive => format!(
            "{r} is disabled, deactivated, banned, invited or expired; it is not sent notifications"
        ),
        AdministratorOverOwner => format!(
            "administrators cannot administer owners or super administrators, and {r} is one"
        ),
        NotRecipient => format!("{a} is checked with the principal itself as the resource"),
        NoGrant => format!("no role, permission or administrator role of {p} allows {a} on {r}"),
        Grant | Permission | AdminRole | SpRole | TeamOwner | TeamMember | ServiceDefault
        | SelfService | Support => {
            format!("{p} may {a} on {r}")
        }
    }
}

/// Renders a decision for `req`. The chain reads outermost first: who the
/// key acts as, which group, which grant, how it cascades to the resource.
pub(crate) fn explain(b: &Body, d: &Decision, req: &Request<'_>) -> Explanation {
    let mut chain = Vec::new();
    let acting_as = d.acting_as.map(|u| user(b, u));
    let principal = acting_as
        .clone()
        .unwrap_or_else(|| req.principal.to_string());
    if let Some(u) = &acting_as {
        chain.push(format!(
            "{} acts as its creator {u}",
            short_key(req.principal)
        ));
    }
    let message = match d.basis {
        None => {
            chain.push(format!("rule {}", d.reason.code()));
            format!("denied: {}", deny_message(d.reason, req))
        }
        Some(basis) => {
            let group = match basis {
                Basis::Role { via, .. }
                | Basis::Scope { via, .. }
                | Basis::Permission { via, .. } => via_group(b, via),
                _ => None,
            };
            if let Some(g) = &group {
                chain.push(format!("{principal} is a member of {g}"));
            }
            let holder = group.unwrap_or_else(|| principal.clone());
            let line = format!("{holder} {}", basis_text(b, basis));
            chain.push(line.clone());
            if let Basis::Role { on, .. } = basis {
                let on = b.node_ref(on);
                if on != req.resource {
                    chain.push(format!(
                        "{} is below {on}, and roles cascade down",
                        req.resource
                    ));
                }
            }
            format!("allowed: {line}")
        }
    };
    Explanation {
        decision: if d.allowed { "allow" } else { "deny" }.into(),
        allowed: d.allowed,
        reason: d.reason.code().into(),
        message,
        chain,
        acting_as,
        obligations: d
            .obligations
            .iter()
            .flatten()
            .map(|o| match o {
                Obligation::EmailReverification => "email_reverification".to_string(),
                Obligation::HolderApproval => "holder_approval".to_string(),
            })
            .collect(),
        revision: d.revision,
    }
}

fn via_group(b: &Body, v: Via) -> Option<String> {
    match v {
        Via::Direct => None,
        Via::Group(g) => Some(format!("group/{}", b.str(b.groups[g as usize].id))),
    }
}

/// What the holder has, as the second half of a sentence.
fn basis_text(b: &Body, basis: Basis) -> String {
    use portcullis_snapshots::vocabulary::SpRole;
    match basis {
        Basis::Role { role, on, .. } => {
            format!("holds {} on {}", b.role_name(role), b.node_ref(on))
        }
        Basis::Scope {
            scope, role, on, ..
        } => format!(
            "holds scope {} of role/{} within {}",
            b.str(scope),
            b.str(b.custom_roles[role as usize].id),
            b.node_ref(on)
        ),
        Basis::Permission {
            permission,
            entity,
            org: o,
            ..
        } => format!(
            "holds permission {}{} in {}",
            permission.name(),
            entity.map(|e| format!(" {}", e.name())).unwrap_or_default(),
            org(b, o.unwrap_or(b.domain))
        ),
        Basis::AdminRole { role, org: o } => {
            format!("is {} in {}", admin_role_name(role), org(b, o))
        }
        Basis::SpRole(SpRole::DashboardAdministrator) => "is SP dashboard administrator".into(),
        Basis::SpRole(SpRole::ReportViewer) => "is SP dashboard report viewer".into(),
        Basis::TeamOwner(t) => format!("owns team/{}", b.str(b.teams[t as usize].id)),
        Basis::TeamMember(t) => format!("is a member of team/{}", b.str(b.teams[t as usize].id)),
        Basis::ServiceDefault(o) => {
            format!("is a service account, by default reader on {}", org(b, o))
        }
        Basis::SelfService => "acts on its own account".into(),
        Basis::Support => "is the break-glass support principal".into(),
    }
}

fn short_key(p: &str) -> String {
    match p.strip_prefix("apikey/") {
        Some(h) if h.len() > 12 => format!("apikey/{}…", &h[..12]),
        _ => p.to_string(),
    }
}

fn admin_role_name(r: portcullis_snapshots::vocabulary::AdminRole) -> &'static str {
    use portcullis_snapshots::vocabulary::AdminRole::*;
    match r {
        Owner => "owner",
        SuperAdministrator => "super administrator",
        Administrator => "administrator",
    }
}
