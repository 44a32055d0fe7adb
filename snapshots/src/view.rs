//! What a principal's view carries besides its sub-directory.
//!
//! A view (`policy_wasm::Engine::view`) holds only the records that decide
//! for one principal. A few rules read facts of the whole directory that
//! such a subset cannot reproduce — "the sole owner" (seed 002) counts the
//! domain's owners and looks at teams the view may not hold — so the view
//! states those facts outright, already decided, in a section after the
//! body (header flag [`crate::header::FLAG_VIEW`]).

use serde::{Deserialize, Serialize};

use crate::body::{Body, PrincipalRef};
use crate::error::DecodeError;

/// The facts a view states instead of holding the records they come from.
/// Field order is the postcard wire order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewFacts {
    /// Whom the view was cut for, in the view's own indices.
    pub principal: Option<PrincipalRef>,
    /// Users of the view who, in the whole directory, are the sole owner of
    /// the domain or of a team that still has members or resources —
    /// ascending user indices of the view.
    pub sole_owners: Vec<u32>,
}

impl ViewFacts {
    /// Whether view user `u` is a sole owner in the whole directory.
    pub fn is_sole_owner(&self, u: u32) -> bool {
        self.sole_owners.binary_search(&u).is_ok()
    }

    /// Checks every index against `body`, and that `sole_owners` is sorted.
    pub(crate) fn check(&self, body: &Body) -> Result<(), DecodeError> {
        let bad = |m: String| Err(DecodeError::Inconsistent(m));
        if let Some(p) = self.principal {
            let (what, i, len) = match p {
                PrincipalRef::User(i) => ("user", i, body.users.len()),
                PrincipalRef::Service(i) => ("service account", i, body.service_accounts.len()),
                PrincipalRef::Group(_) => return bad("a view is cut for a group".into()),
            };
            if i as usize >= len {
                return bad(format!("view principal: {what} index {i} out of range"));
            }
        }
        if !self
            .sole_owners
            .windows(2)
            .all(|w| matches!(w, [a, b] if a < b))
        {
            return bad("view sole owners are not strictly ascending".into());
        }
        if let Some(&last) = self.sole_owners.last()
            && last as usize >= body.users.len()
        {
            return bad(format!("view sole owner {last} out of range"));
        }
        Ok(())
    }
}
