//! A principal's view: the smallest part of the directory that decides
//! every request of that principal exactly as the whole directory does —
//! what a browser loads for permission hints (`GET /-/snapshot/me`,
//! `portcullis snapshot redact --for`). The definition is in
//! `policy-wasm/README.md#views`.
//!
//! It is cut from the engine's indexes in two steps: [`reach`] walks down
//! from what the principal holds and keeps what it can act on, then [`cut`]
//! renumbers those records into a body of their own. Nothing is decoded
//! or compiled again, so the cost follows the size of the view, not of
//! the directory.

mod cut;
mod reach;

use portcullis_snapshots::EncodeError;
use portcullis_snapshots::body::Body;
use portcullis_snapshots::fingerprint::UserChange;
use portcullis_snapshots::view::ViewFacts;
use thiserror::Error;

use crate::index::Indexed;
use crate::request::{Subject, parse_principal};
pub use reach::ViewScope;
use reach::Whom;

/// Why a view could not be cut.
#[derive(Debug, Error)]
pub enum ViewError {
    /// The principal is not in the snapshot.
    #[error("{0} is not a principal in this snapshot")]
    UnknownPrincipal(String),
    /// Views are cut for users and service accounts, which act through a
    /// browser; API keys and the support principal do not.
    #[error("{0} is not a user or a service account: views are cut for those only")]
    NotAViewPrincipal(String),
    /// The view did not encode: a bug, reported rather than served.
    #[error("the view of {principal} does not encode: {source}")]
    Encode {
        /// Whose view.
        principal: String,
        /// Why.
        source: EncodeError,
    },
}

/// The view of `principal` as a body and the facts it states.
pub(crate) fn view_body(f: &Indexed, principal: &str) -> Result<(Body, ViewFacts), ViewError> {
    let (body, facts, _) = view_parts(f, principal)?;
    Ok((body, facts))
}

fn view_parts(f: &Indexed, principal: &str) -> Result<(Body, ViewFacts, ViewScope), ViewError> {
    let whom = match parse_principal(f, principal) {
        None => return Err(ViewError::UnknownPrincipal(principal.to_string())),
        Some(Subject::User(u)) => Whom::User(u),
        Some(Subject::Service(s)) => Whom::Service(s),
        Some(Subject::ApiKey { .. } | Subject::Support) => {
            return Err(ViewError::NotAViewPrincipal(principal.to_string()));
        }
    };
    let r = reach::reach(f, whom);
    let (body, facts) = cut::cut(f, whom, &r);
    Ok((body, facts, r.scope))
}

/// The view of `principal`, encoded as a snapshot of the same revision,
/// and where its other people come from.
pub(crate) fn view(
    f: &Indexed,
    principal: &str,
    revision: u64,
    created_at: i64,
) -> Result<(Vec<u8>, ViewScope), ViewError> {
    let (body, facts, scope) = view_parts(f, principal)?;
    let bytes = portcullis_snapshots::encode_view(&body, &facts, revision, created_at).map_err(
        |source| ViewError::Encode {
            principal: principal.to_string(),
            source,
        },
    )?;
    Ok((bytes, scope))
}

/// Whether `change` can change a view of `scope`: it changes the view's
/// principal, or what views hold of others (username, organization,
/// status, administrator role) for one of the people this view may hold.
pub(crate) fn changed_by(f: &Indexed, scope: &ViewScope, change: &UserChange) -> bool {
    use crate::facts::Facts;
    let user = change.user;
    if scope.user == Some(user) {
        return true;
    }
    if !change.seen {
        return false;
    }
    scope.all_users
        || [change.org_before, Some(change.org_after)]
            .into_iter()
            .flatten()
            .any(|o| scope.user_orgs.iter().any(|&root| f.org_within(o, root)))
        || scope.user_teams.iter().any(|&t| {
            f.body()
                .teams
                .get(t as usize)
                .is_some_and(|team| team.owner == user || team.members.contains(&user))
        })
}
