//! `snapshot publish`: a snapshot, the delta from the one published
//! before, and the manifest replicas poll, written into a store directory
//! in the order that never shows a replica a file that is not there yet.

use std::path::{Path, PathBuf};

use clap::Args;
use portcullis_directory::publish as store;
use portcullis_snapshots::signature;

use crate::error::CliError;
use crate::files::{decode_file, read_bytes, read_text};
use crate::output::say;

/// The arguments of `snapshot publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The snapshot to publish (a full build).
    snapshot: PathBuf,
    /// The store directory (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Deltas the manifest lists, newest first: a replica this many
    /// revisions behind still gets deltas rather than the snapshot.
    #[arg(long, default_value_t = 10)]
    keep: usize,
    /// Sign the snapshot and the delta with this private key.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
}

/// `snapshot publish`.
pub(super) fn run(a: PublishArgs) -> Result<(), CliError> {
    publish(&a.snapshot, &a.dir, a.keep, a.sign.as_deref())
}

fn publish(snapshot: &Path, dir: &Path, keep: usize, sign: Option<&Path>) -> Result<(), CliError> {
    let mut bytes = read_bytes(snapshot)?;
    let header = decode_file(snapshot, &bytes)?.header;
    if header.is_view() {
        return Err(CliError::Usage(format!(
            "{}: a principal's view, not a directory snapshot",
            snapshot.display()
        )));
    }
    let key = match sign {
        Some(key_file) => Some(
            signature::read_private(&read_text(key_file)?)
                .map_err(|e| CliError::Usage(format!("{}: {e}", key_file.display())))?,
        ),
        None => None,
    };
    if let Some(k) = &key {
        bytes = signature::sign(&bytes, k).map_err(|source| CliError::Snapshot {
            path: snapshot.to_path_buf(),
            source,
        })?;
    }
    // The store's layout is the directory service's too: one writer of it.
    let p = store::publish(dir, &bytes, keep, key.as_ref()).map_err(|e| match e {
        e @ store::PublishError::NotNewer { .. } => {
            CliError::Usage(format!("{}: {e}", snapshot.display()))
        }
        e => CliError::Usage(e.to_string()),
    })?;
    say!(
        "published revision {} in {}: {}{}, latest.json ({} deltas listed)",
        p.revision,
        dir.display(),
        p.snapshot.as_ref().map_or_else(
            || "no snapshot (the deltas from the last one)".to_string(),
            |(name, n)| format!("{name} ({n} bytes)")
        ),
        p.delta
            .as_ref()
            .map_or_else(String::new, |(p, d)| format!(", {p} ({d} bytes)")),
        p.listed
    );
    Ok(())
}
