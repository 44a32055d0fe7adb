//! Key files the configuration names: snapshot trust, browser-view and
//! assertion signing.

use std::path::Path;

/// Reads a key file with `parse`, naming the file in any error.
fn read_key<K, E: std::fmt::Display>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<K, E>,
) -> Result<K, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads an assertion key's public key (SPKI PEM).
pub fn read_public_key(
    path: &Path,
) -> Result<portcullis_snapshots::signature::VerifyingKey, String> {
    read_key(path, portcullis_snapshots::signature::read_public)
}

/// Reads one of `snapshot.trusted_keys`.
pub fn read_trusted_key(
    path: &Path,
) -> Result<portcullis_snapshots::signature::VerifyingKey, String> {
    read_key(path, portcullis_snapshots::signature::read_public)
}

/// Reads `snapshot.browser_signing_key`.
pub fn read_signing_key(
    path: &Path,
) -> Result<portcullis_snapshots::signature::SigningKey, String> {
    read_key(path, portcullis_snapshots::signature::read_private)
}
