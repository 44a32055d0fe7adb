//! Signing snapshots and deltas with an operator's key, and trusting a
//! delta only when a listed key signed it.

use std::path::{Path, PathBuf};

use portcullis_snapshots::{delta, signature};

use crate::error::CliError;
use crate::files::read_text;

/// `bytes` (the snapshot at `path`) signed with the key in `key_file`.
pub(crate) fn sign_with(key_file: &Path, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, CliError> {
    let key = signature::read_private(&read_text(key_file)?)
        .map_err(|e| CliError::Usage(format!("{}: {e}", key_file.display())))?;
    signature::sign(bytes, &key).map_err(|source| CliError::Snapshot {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn sign_delta_with(
    key_file: &Path,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<u8>, CliError> {
    let key = signature::read_private(&read_text(key_file)?)
        .map_err(|e| CliError::Usage(format!("{}: {e}", key_file.display())))?;
    signature::sign_delta(bytes, &key).map_err(|source| CliError::Delta {
        path: path.to_path_buf(),
        source,
    })
}

/// The delta in `bytes` (read from `path`), refused unless signed by one
/// of `trust` (when given).
pub(crate) fn read_delta(
    path: &Path,
    bytes: &[u8],
    trust: &[PathBuf],
) -> Result<delta::Delta, CliError> {
    let as_delta = |source| CliError::Delta {
        path: path.to_path_buf(),
        source,
    };
    let d = delta::decode_delta(bytes).map_err(as_delta)?;
    if !trust.is_empty() {
        let keys = trust
            .iter()
            .map(|k| {
                signature::read_public(&read_text(k)?)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", k.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        match signature::verify_delta(bytes, &keys) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(CliError::Usage(format!(
                    "{}: the delta is not signed, and --trust asks for a signature",
                    path.display()
                )));
            }
            Err(e) => return Err(CliError::Usage(format!("{}: {e}", path.display()))),
        }
    }
    Ok(d)
}
