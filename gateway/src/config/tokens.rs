//! The bearer tokens of the admin API and the decision endpoint, inline
//! or from a file.

use std::path::PathBuf;

/// The bearer tokens guarding the admin API and the decision endpoint.
#[derive(Clone, Default)]
pub struct Tokens {
    /// `admin.token`: pushes are refused without one.
    pub admin: Option<String>,
    /// `decision.token`: the decision endpoint is open without one.
    pub decision: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("admin", &self.admin.as_ref().map(|_| "…"))
            .field("decision", &self.decision.as_ref().map(|_| "…"))
            .finish()
    }
}

pub(super) fn read_token(
    section: &str,
    token: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<String>, String> {
    match (token, file) {
        (Some(t), _) => Ok(Some(t.clone())),
        (None, Some(p)) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("{section}.token_file {}: cannot read: {e}", p.display()))?;
            let t = t.trim();
            if t.len() < 16 {
                return Err(format!(
                    "{section}.token_file {}: the token must have at least 16 characters",
                    p.display()
                ));
            }
            Ok(Some(t.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// A section's `token` / `token_file` pair: at most one, 16 characters or more.
pub(super) fn check_token(
    section: &str,
    why: &str,
    token: &Option<String>,
    file: &Option<PathBuf>,
    problems: &mut Vec<String>,
) {
    match (token, file) {
        (Some(_), Some(_)) => {
            problems.push(format!("{section}: give `token` or `token_file`, not both"))
        }
        (Some(t), None) if t.len() < 16 => problems.push(format!(
            "{section}.token: use at least 16 characters ({why})"
        )),
        _ => {}
    }
}
