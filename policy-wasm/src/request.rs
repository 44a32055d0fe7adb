//! Requests and their parsing into indices: principal, action, resource.

use portcullis_snapshots::body::NodeRef;
use portcullis_snapshots::vocabulary::EntityType;
use serde::{Deserialize, Serialize};

use crate::action::{Action, Parsed};
use crate::decision::Reason;
use crate::facts::Facts;

/// What the caller knows that the snapshot does not. The engine has no
/// clock: the caller supplies the time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Unix seconds, for expiry.
    pub now: i64,
    /// Whether this is part of a bulk operation.
    #[serde(default)]
    pub bulk: bool,
}

/// One question: may `principal` do `action` on `resource`?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request<'a> {
    /// `user/<username>`, `service/<id>`, `apikey/<sha256 hex>` or `support`.
    pub principal: &'a str,
    /// An action of the vocabulary (`read`, `user:deactivate`, `manage:schemas`, …).
    pub action: &'a str,
    /// `org/…`, `env/…`, `catalog/…`, `object/…`, `team/…`,
    /// `team/<id>/member/<username>`, `user/…`, `service/…` or `entity/<type>`.
    pub resource: &'a str,
    /// Time and bulk flag.
    pub context: Context,
}

/// An owned [`Request`], for callers that parse requests from text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedRequest {
    /// See [`Request::principal`].
    pub principal: String,
    /// See [`Request::action`].
    pub action: String,
    /// See [`Request::resource`].
    pub resource: String,
    /// See [`Request::context`].
    #[serde(default)]
    pub context: Context,
}

impl OwnedRequest {
    /// Borrows it as a [`Request`].
    pub fn as_request(&self) -> Request<'_> {
        Request {
            principal: &self.principal,
            action: &self.action,
            resource: &self.resource,
            context: self.context,
        }
    }
}

/// Who is asking, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    User(u32),
    Service(u32),
    ApiKey { key: u32, user: u32 },
    Support,
}

impl Subject {
    /// The user whose rights apply (an API key acts as its creator).
    pub(crate) fn user(self) -> Option<u32> {
        match self {
            Subject::User(u) | Subject::ApiKey { user: u, .. } => Some(u),
            _ => None,
        }
    }
}

/// What is acted on, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Node(NodeRef),
    TeamMember { team: u32, user: u32 },
    User(u32),
    Service(u32),
    Entity(EntityType),
}

pub(crate) fn parse_principal<F: Facts>(f: &F, s: &str) -> Option<Subject> {
    if s == "support" {
        return Some(Subject::Support);
    }
    let (kind, id) = s.split_once('/')?;
    match kind {
        "user" => f.user(id).map(Subject::User),
        "service" => f.service(id).map(Subject::Service),
        "apikey" => {
            let mut sha = [0u8; 32];
            hex::decode_to_slice(id, &mut sha).ok()?;
            let key = f.api_key(&sha)?;
            Some(Subject::ApiKey {
                key,
                user: f.body().api_keys.get(key as usize)?.creator,
            })
        }
        _ => None,
    }
}

pub(crate) fn parse_target<F: Facts>(f: &F, s: &str) -> Option<Target> {
    let (kind, rest) = s.split_once('/')?;
    match kind {
        "user" => f.user(rest).map(Target::User),
        "service" => f.service(rest).map(Target::Service),
        "entity" => EntityType::from_name(rest).map(Target::Entity),
        "team" => match rest.split_once("/member/") {
            Some((team, user)) => {
                let Some(NodeRef::Team(t)) = f.node("team", team) else {
                    return None;
                };
                let u = f.user(user)?;
                // Only members (and the owner) can be removed.
                f.in_team(t, u)
                    .then_some(Target::TeamMember { team: t, user: u })
            }
            None => f.node("team", rest).map(Target::Node),
        },
        _ => f.node(kind, rest).map(Target::Node),
    }
}

/// Parses the action against the target; a bare verb needs `entity/<type>`.
pub(crate) fn parse_action(s: &str, target: Target) -> Result<Action, Reason> {
    match (Action::parse(s), target) {
        (None, _) => Err(Reason::UnknownAction),
        (Some(Parsed::BareVerb(v)), Target::Entity(e)) => Ok(Action::Entity(v, e)),
        (Some(Parsed::BareVerb(_)), _) => Err(Reason::ActionNotApplicable),
        (Some(Parsed::Action(Action::Entity(_, e))), Target::Entity(t)) if e != t => {
            Err(Reason::ActionNotApplicable)
        }
        (Some(Parsed::Action(a)), _) => Ok(a),
    }
}

/// Whether the action means anything on this kind of resource.
pub(crate) fn applies(action: Action, target: Target) -> bool {
    use Action::*;
    let node = |pred: fn(NodeRef) -> bool| matches!(target, Target::Node(n) if pred(n));
    let org = || node(|n| matches!(n, NodeRef::Org(_)));
    match action {
        Read | Write => node(|n| !matches!(n, NodeRef::Team(_))),
        OrgOpen | Org(_) | OrgSwitch | Admin(_) | Sp(_) | PlatformAccess | ViewAllPipelineData => {
            org()
        }
        Entity(..) => org() || matches!(target, Target::Entity(_)),
        EnvOpen | DashboardsView => node(|n| matches!(n, NodeRef::Env(_))),
        Team(crate::action::TeamAction::RemoveMember) => {
            matches!(target, Target::TeamMember { .. })
        }
        Team(_) => node(|n| matches!(n, NodeRef::Team(_))),
        UserInvite => node(|n| matches!(n, NodeRef::Team(_) | NodeRef::Org(_))),
        User(_) | Notify(_) => matches!(target, Target::User(_)),
        Login => matches!(target, Target::User(_) | Target::Service(_)),
    }
}
