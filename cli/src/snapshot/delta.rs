//! `snapshot delta` and `snapshot apply`: the change from a deployed
//! snapshot to a candidate, and that change applied.

use std::path::{Path, PathBuf};

use clap::Args;
use portcullis_snapshots::delta;

use crate::deltas::make_delta;
use crate::error::CliError;
use crate::files::{read_bytes, write_atomic};
use crate::output::say;
use crate::signing::{read_delta, sign_delta_with};

/// The arguments of `snapshot delta`.
#[derive(Debug, Args)]
pub struct DeltaArgs {
    /// The snapshot deployed (the delta applies to exactly this one).
    deployed: PathBuf,
    /// The candidate snapshot (a full build).
    candidate: PathBuf,
    /// Where to write the delta.
    #[arg(short, long)]
    output: PathBuf,
    /// Sign the delta with this private key (PKCS#8 PEM).
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
}

/// The arguments of `snapshot apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The snapshot the delta applies to.
    deployed: PathBuf,
    /// The delta.
    delta: PathBuf,
    /// Where to write the resulting snapshot.
    #[arg(short, long)]
    output: PathBuf,
    /// Refuse the delta unless it is signed by one of these public keys
    /// (SPKI PEM).
    #[arg(long = "trust", value_name = "PUBLIC_KEY")]
    trust: Vec<PathBuf>,
}

/// `snapshot delta`.
pub(super) fn delta(a: DeltaArgs) -> Result<(), CliError> {
    let (base, target) = (read_bytes(&a.deployed)?, read_bytes(&a.candidate)?);
    write_delta(
        &a.deployed,
        &base,
        &a.candidate,
        &target,
        &a.output,
        a.sign.as_deref(),
    )
}

/// `snapshot apply`.
pub(super) fn apply(a: ApplyArgs) -> Result<(), CliError> {
    apply_cmd(&a.deployed, &a.delta, &a.output, &a.trust)
}

fn write_delta(
    deployed: &Path,
    base: &[u8],
    candidate: &Path,
    target: &[u8],
    output: &Path,
    sign: Option<&Path>,
) -> Result<(), CliError> {
    let mut bytes = make_delta(deployed, base, candidate, target)?;
    if let Some(key) = sign {
        bytes = sign_delta_with(key, output, &bytes)?;
    }
    write_atomic(output, &bytes)?;
    let d = delta::decode_delta(&bytes).map_err(|source| CliError::Delta {
        path: output.to_path_buf(),
        source,
    })?;
    let (removed, inserted) = d.body.edits();
    say!(
        "wrote {} ({} bytes, {:.2}% of the candidate's {} bytes): revision {} → {}, {removed} rows removed, {inserted} inserted or changed",
        output.display(),
        bytes.len(),
        bytes.len() as f64 * 100.0 / target.len().max(1) as f64,
        target.len(),
        d.header.base_revision,
        d.header.target_revision,
    );
    Ok(())
}

fn apply_cmd(
    deployed: &Path,
    delta: &Path,
    output: &Path,
    trust: &[PathBuf],
) -> Result<(), CliError> {
    let d = read_delta(delta, &read_bytes(delta)?, trust)?;
    let base = read_bytes(deployed)?;
    let out = d.apply_to(&base).map_err(|source| CliError::Delta {
        path: delta.to_path_buf(),
        source,
    })?;
    write_atomic(output, &out)?;
    say!(
        "wrote {} ({} bytes, revision {}, SHA-256 {}): {} with {} applied",
        output.display(),
        out.len(),
        d.header.target_revision,
        hex::encode(d.header.target_sha256),
        deployed.display(),
        delta.display()
    );
    Ok(())
}
