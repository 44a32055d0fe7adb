//! Directory sources as the commands read them: compiled with every
//! problem rendered (text or JSON), warned about when they deny users
//! without meaning to, loaded from a snapshot or JSON alike; the creation
//! time a build stamps.

use std::path::Path;

use portcullis_snapshots::header::MAGIC;
use portcullis_snapshots::source::{self, Directory, Timestamp};
use portcullis_snapshots::vocabulary::UserStatus;
use serde_json::json;

use crate::error::CliError;
use crate::files::decode_file;

/// Parses and compiles, turning problems into a rendered [`CliError`].
pub(crate) fn compile_text(
    path: &Path,
    text: &str,
    json: bool,
) -> Result<(Directory, portcullis_snapshots::body::Body), CliError> {
    source::build(text).map_err(|problems| CliError::Directory {
        rendered: if json {
            serde_json::to_string_pretty(&json!({
                "file": path.display().to_string(),
                "problems": problems.0,
            }))
            .unwrap_or_default()
        } else {
            problems.render(&path.display().to_string())
        },
        problems,
    })
}

/// Users who could act but for an unverified email: `email_verified`
/// defaults to false (fail closed), so a directory written by hand without
/// it denies those users every interactive action. It builds — that may be
/// meant — but the operator hears about it, on standard error.
pub(crate) fn warn_unverified(path: &Path, dir: &Directory) {
    let unverified: Vec<&str> = dir
        .users
        .iter()
        .filter(|u| !u.email_verified && u.allow_login && u.status == UserStatus::Active)
        .map(|u| u.username.as_str())
        .collect();
    if unverified.is_empty() {
        return;
    }
    let named = unverified
        .iter()
        .take(5)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if unverified.len() > 5 { ", …" } else { "" };
    eprintln!(
        "warning: {}: {} active user{} without \"email_verified\": true ({named}{more}): every interactive action of theirs is denied until their email is verified",
        path.display(),
        unverified.len(),
        if unverified.len() == 1 { "" } else { "s" },
    );
}

/// Loads a snapshot or a directory source as a directory, with its revision.
pub(crate) fn load_any(path: &Path, bytes: &[u8]) -> Result<Directory, CliError> {
    if bytes.starts_with(&MAGIC) {
        let snap = decode_file(path, bytes)?;
        return Ok(source::decompile(&snap.body, Some(snap.header.revision)));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        CliError::Usage(format!(
            "{}: neither a snapshot nor UTF-8 directory JSON",
            path.display()
        ))
    })?;
    Ok(compile_text(path, text, false)?.0)
}

pub(crate) fn created_at(flag: Option<&str>) -> Result<i64, CliError> {
    if let Some(s) = flag {
        return Timestamp::parse(s)
            .map(|t| t.0)
            .map_err(|e| CliError::Usage(format!("--created-at: {e}")));
    }
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        return s
            .trim()
            .parse()
            .map_err(|_| CliError::Usage(format!("SOURCE_DATE_EPOCH={s:?} is not Unix seconds")));
    }
    Ok(time::OffsetDateTime::now_utc().unix_timestamp())
}
