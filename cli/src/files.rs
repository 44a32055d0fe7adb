//! Reading and writing the operator's files: snapshots and deltas decoded
//! with their path in every error, and written atomically (a watching
//! gateway never sees half a file; a failure leaves the old one).

use std::fs;
use std::io::Write;
use std::path::Path;

use portcullis_snapshots::{Snapshot, decode};

use crate::error::CliError;

pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, CliError> {
    fs::read(path).map_err(|source| CliError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read_text(path: &Path) -> Result<String, CliError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes)
        .map_err(|e| CliError::Usage(format!("{}: not UTF-8 text: {e}", path.display())))
}

/// Writes via a temporary file and a rename, so readers (a watching
/// gateway) never see half a snapshot and a failure leaves the old file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    // The store's writer: one way to replace a file whole.
    portcullis_directory::publish::write_atomic(path, bytes).map_err(|e| match e {
        portcullis_directory::publish::PublishError::Io {
            action,
            path,
            source,
        } => CliError::Io {
            action,
            path,
            source,
        },
        e => CliError::Usage(e.to_string()),
    })
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)
}

pub(crate) fn decode_file(path: &Path, bytes: &[u8]) -> Result<Snapshot, CliError> {
    decode(bytes).map_err(|source| CliError::Snapshot {
        path: path.to_path_buf(),
        source,
    })
}
