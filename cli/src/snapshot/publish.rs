//! `snapshot publish`: a snapshot, the delta from the one published
//! before, and the manifest replicas poll, written into a store directory
//! in the order that never shows a replica a file that is not there yet.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Args;
use portcullis_gateway::manifest::{DeltaEntry, MANIFEST_FORMAT, Manifest};

use crate::deltas::make_delta;
use crate::error::CliError;
use crate::files::{decode_file, read_bytes, write_atomic};
use crate::output::say;
use crate::signing::{sign_delta_with, sign_with};

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
    if let Some(key) = sign {
        bytes = sign_with(key, snapshot, &bytes)?;
    }
    fs::create_dir_all(dir).map_err(|source| CliError::Io {
        action: "cannot create",
        path: dir.to_path_buf(),
        source,
    })?;
    let manifest_path = dir.join("latest.json");
    let previous = if manifest_path.exists() {
        let m = Manifest::parse(&read_bytes(&manifest_path)?)
            .map_err(|e| CliError::Usage(format!("{}: {e}", manifest_path.display())))?;
        if m.revision >= header.revision {
            return Err(CliError::Usage(format!(
                "{}: revision {} is not newer than revision {} published in {}; build with a higher --revision",
                snapshot.display(),
                header.revision,
                m.revision,
                manifest_path.display()
            )));
        }
        Some(m)
    } else {
        None
    };
    let sha256 = hex::encode(header.body_sha256);
    let name = format!("snapshot-{}.snap", header.revision);
    let mut deltas = Vec::new();
    let mut delta_file = None;
    if let Some(m) = &previous {
        let base_path = dir.join(&m.snapshot);
        let base = read_bytes(&base_path)?;
        let mut delta = make_delta(&base_path, &base, snapshot, &bytes)?;
        if let Some(key) = sign {
            delta = sign_delta_with(key, snapshot, &delta)?;
        }
        let path = format!("delta-{}-{}.delta", m.revision, header.revision);
        deltas.push(DeltaEntry {
            from: m.revision,
            from_sha256: m.sha256.clone(),
            to: header.revision,
            to_sha256: sha256.clone(),
            path: path.clone(),
            bytes: delta.len() as u64,
        });
        delta_file = Some((path, delta));
        deltas.extend(m.deltas.iter().cloned());
    }
    deltas.truncate(keep);
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        revision: header.revision,
        sha256,
        snapshot: name.clone(),
        bytes: bytes.len() as u64,
        deltas,
    };
    // The files the manifest names first, the manifest last: a replica
    // never reads a manifest whose files are not there yet.
    write_atomic(&dir.join(&name), &bytes)?;
    if let Some((path, delta)) = &delta_file {
        write_atomic(&dir.join(path), delta)?;
    }
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| CliError::Usage(e.to_string()))?;
    write_atomic(&manifest_path, &text)?;
    say!(
        "published revision {} in {}: {name} ({} bytes){}, latest.json ({} deltas listed)",
        header.revision,
        dir.display(),
        bytes.len(),
        delta_file
            .as_ref()
            .map_or_else(String::new, |(p, d)| format!(", {p} ({} bytes)", d.len())),
        manifest.deltas.len()
    );
    Ok(())
}
