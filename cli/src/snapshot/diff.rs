//! `snapshot diff`: what changed between two snapshots, directory
//! sources, or a snapshot and a delta to it.

use std::path::{Path, PathBuf};

use clap::Args;
use portcullis_snapshots::{delta, diff, source};
use serde_json::json;

use crate::directory::load_any;
use crate::error::CliError;
use crate::files::{decode_file, read_bytes};
use crate::output::{say, say_raw};
use crate::signing::read_delta;

/// The arguments of `snapshot diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The snapshot (or directory JSON) currently deployed.
    old: PathBuf,
    /// The candidate: a snapshot, directory JSON, or a delta that
    /// applies to OLD.
    new: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `snapshot diff`.
pub(super) fn run(a: DiffArgs) -> Result<(), CliError> {
    diff_cmd(&a.old, &a.new, a.json)
}

fn diff_cmd(old: &Path, new: &Path, json: bool) -> Result<(), CliError> {
    let old_bytes = read_bytes(old)?;
    let o = load_any(old, &old_bytes)?;
    let new_bytes = read_bytes(new)?;
    // A delta as NEW: what it changes in OLD (the snapshot it applies to).
    let n = if delta::is_delta(&new_bytes) {
        let d = read_delta(new, &new_bytes, &[])?;
        let applied = d.apply_to(&old_bytes).map_err(|source| CliError::Delta {
            path: new.to_path_buf(),
            source,
        })?;
        let snap = decode_file(new, &applied)?;
        source::decompile(&snap.body, Some(snap.header.revision))
    } else {
        load_any(new, &new_bytes)?
    };
    let d = diff::diff(&o, &n);
    if json {
        let out = json!({
            "old_revision": o.revision,
            "new_revision": n.revision,
            "sections": d.sections,
        });
        say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    let rev = |r: Option<u64>| r.map_or_else(|| "none".to_string(), |r| r.to_string());
    say!("revision: {} → {}", rev(o.revision), rev(n.revision));
    if o.revision.is_some() && n.revision <= o.revision {
        say!("warning: the new revision is not greater; gateways will refuse it unless forced");
    }
    say_raw!("{}", d.render());
    Ok(())
}
