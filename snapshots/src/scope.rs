//! Directories without personal data, for browsers.
//!
//! A browser that asks the engine for permission hints needs a snapshot,
//! but the whole directory would hand every user's name, email and phone —
//! and every API key hash — to anyone signed in. [`redact`] keeps what
//! decisions are made of (the tree, roles, grants, groups, teams, and each
//! user's username, organization, status flags, expiry and administrator
//! roles) and removes the rest: names, emails, phones, timezones, locales,
//! last logins and start pages of every user, and every API key.
//!
//! Decisions for users and service accounts are unchanged —
//! `tests/tests/redacted.rs` checks every action on every resource for
//! every principal of the example and for a sample of a generated
//! directory. Only API-key principals are no longer known to them: a
//! browser acts as its user, never as a key. What a browser is actually
//! served is smaller still: its principal's view (`policy_wasm::Engine::view`).

use crate::source::Directory;

/// `dir` without personal data and without API keys.
pub fn redact(dir: &Directory) -> Directory {
    let mut redacted = dir.clone();
    for (i, u) in redacted.users.iter_mut().enumerate() {
        u.name = None;
        u.first_name = None;
        u.last_name = None;
        // Emails must stay unique (case-insensitively) and well formed;
        // the position says nothing about the person.
        u.email = format!("user-{i}@redacted.invalid");
        u.phone = None;
        u.timezone = None;
        u.locale = None;
        u.last_login = None;
        u.start_page = None;
    }
    redacted.api_keys.clear();
    redacted
}

/// [`redact`] on snapshot bytes: same revision and creation time, a new
/// body. Fails only if `bytes` is not a valid snapshot. (One principal's
/// view — what a browser gets — is `policy_wasm::Engine::view`.)
pub fn redact_snapshot(bytes: &[u8]) -> Result<Vec<u8>, crate::DecodeError> {
    let snapshot = crate::decode(bytes)?;
    let h = snapshot.header;
    let dir = redact(&crate::source::decompile(&snapshot.body, Some(h.revision)));
    // A valid body decompiles into a valid directory, and redaction keeps
    // every reference and uniqueness; a failure here would be a bug, so it
    // is reported rather than unwrapped.
    let body = crate::source::compile(&dir).map_err(|problems| {
        crate::DecodeError::Inconsistent(format!(
            "the redacted directory does not compile ({} problems)",
            problems.len()
        ))
    })?;
    crate::encode(&body, h.revision, h.created_at)
        .map_err(|e| crate::DecodeError::Inconsistent(format!("cannot encode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_personal_survives() {
        let text = include_str!("../examples/acme.json");
        let (dir, _) = crate::source::build(text).expect("example builds");
        let r = redact(&dir);
        let json = serde_json::to_string(&r).expect("serializes");
        for u in &dir.users {
            assert!(!json.contains(&u.email), "{} leaked", u.email);
            for s in [&u.name, &u.first_name, &u.last_name, &u.phone]
                .into_iter()
                .flatten()
            {
                assert!(!json.contains(s.as_str()), "{s} leaked");
            }
        }
        for k in &dir.api_keys {
            assert!(!json.contains(&k.sha256), "key hash leaked");
        }
        assert_eq!(r.users.len(), dir.users.len());
        assert!(
            crate::source::compile(&r).is_ok(),
            "the redacted directory is valid"
        );
    }
}
