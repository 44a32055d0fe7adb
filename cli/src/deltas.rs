//! The delta between two snapshot files.

use std::path::Path;

use portcullis_snapshots::delta;

use crate::error::CliError;
use crate::files::decode_file;

/// The delta from `base` (at `deployed`) to `target` (at `candidate`),
/// unsigned.
pub(crate) fn make_delta(
    deployed: &Path,
    base: &[u8],
    candidate: &Path,
    target: &[u8],
) -> Result<Vec<u8>, CliError> {
    let (old, new) = (
        decode_file(deployed, base)?,
        decode_file(candidate, target)?,
    );
    for (path, s) in [(deployed, &old), (candidate, &new)] {
        if s.header.is_view() {
            return Err(CliError::Usage(format!(
                "{}: a principal's view, not a directory snapshot",
                path.display()
            )));
        }
    }
    let as_delta = |source| CliError::Delta {
        path: candidate.to_path_buf(),
        source,
    };
    let body = delta::compute(&old.body, &new.body).map_err(as_delta)?;
    delta::encode_delta(&old.header, &new.header, &body).map_err(as_delta)
}
