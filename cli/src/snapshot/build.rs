//! `snapshot build` and `snapshot validate`: a directory source compiled
//! into a snapshot — every problem reported, nothing written if any.

use std::path::{Path, PathBuf};

use clap::Args;
use portcullis_snapshots::encode;

use crate::deltas::make_delta;
use crate::directory::{compile_text, created_at, warn_unverified};
use crate::error::CliError;
use crate::files::{read_bytes, read_text, write_atomic};
use crate::output::say;
use crate::signing::{sign_delta_with, sign_with};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The directory source (JSON).
    directory: PathBuf,
    /// Where to write the snapshot.
    #[arg(short, long)]
    output: PathBuf,
    /// Revision to stamp (overrides "revision" in the directory).
    #[arg(long)]
    revision: Option<u64>,
    /// Creation time to stamp (RFC 3339). Defaults to $SOURCE_DATE_EPOCH, then now.
    #[arg(long)]
    created_at: Option<String>,
    /// Print the problems as JSON.
    #[arg(long)]
    json: bool,
    /// Sign the snapshot with this private key (PKCS#8 PEM; see `keygen`)
    /// — and the delta, with `--delta-from`.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
    /// Also write the delta from this deployed snapshot to the one built
    /// (to OUTPUT with `.delta` added, or `--delta-output`).
    #[arg(long, value_name = "DEPLOYED")]
    delta_from: Option<PathBuf>,
    /// Where to write the delta of `--delta-from`.
    #[arg(long, value_name = "PATH", requires = "delta_from")]
    delta_output: Option<PathBuf>,
}

/// The arguments of `snapshot validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The directory source (JSON).
    directory: PathBuf,
    /// Print the problems as JSON.
    #[arg(long)]
    json: bool,
}

/// `snapshot validate`.
pub(super) fn validate(a: ValidateArgs) -> Result<(), CliError> {
    let text = read_text(&a.directory)?;
    let (dir, _) = compile_text(&a.directory, &text, a.json)?;
    warn_unverified(&a.directory, &dir);
    say!(
        "{}: valid ({} users, {} grants)",
        a.directory.display(),
        dir.users.len(),
        dir.grants.len()
    );
    Ok(())
}

/// `snapshot build`.
pub(super) fn build(a: BuildArgs) -> Result<(), CliError> {
    let text = read_text(&a.directory)?;
    let (dir, body) = compile_text(&a.directory, &text, a.json)?;
    warn_unverified(&a.directory, &dir);
    let revision = a
        .revision
        .or(dir.revision)
        .ok_or_else(|| CliError::NoRevision {
            path: a.directory.clone(),
        })?;
    let created_at = created_at(a.created_at.as_deref())?;
    let mut bytes = encode(&body, revision, created_at)?;
    if let Some(key) = &a.sign {
        bytes = sign_with(key, &a.output, &bytes)?;
    }
    // The deployed snapshot is read (and the delta made) before anything
    // is written: a bad deployed file leaves nothing behind.
    let delta = match &a.delta_from {
        Some(deployed) => {
            let base = read_bytes(deployed)?;
            let delta = make_delta(deployed, &base, &a.output, &bytes)?;
            let path = a.delta_output.clone().unwrap_or_else(|| {
                let mut p = a.output.as_os_str().to_owned();
                p.push(".delta");
                PathBuf::from(p)
            });
            let delta = match &a.sign {
                Some(key) => sign_delta_with(key, &path, &delta)?,
                None => delta,
            };
            Some((path, delta))
        }
        None => None,
    };
    write_atomic(&a.output, &bytes)?;
    let c = body.counts();
    eprintln!(
        "wrote {} ({} bytes, revision {revision}): {} users, {} groups, {} grants, {} permissions",
        a.output.display(),
        bytes.len(),
        c.users,
        c.groups,
        c.grants,
        c.permissions
    );
    if let Some((path, delta)) = delta {
        write_atomic(&path, &delta)?;
        eprintln!(
            "wrote {} ({} bytes): the delta from {}",
            path.display(),
            delta.len(),
            a.delta_from.as_deref().unwrap_or(Path::new("")).display()
        );
    }
    Ok(())
}
