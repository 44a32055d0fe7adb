//! `snapshot inspect`: a snapshot's header and record counts, or a
//! delta's revisions and edits.

use std::path::{Path, PathBuf};

use clap::Args;
use portcullis_snapshots::source::Timestamp;
use portcullis_snapshots::{delta, signature};
use serde_json::json;

use crate::error::CliError;
use crate::files::{decode_file, read_bytes};
use crate::output::say;

/// The arguments of `snapshot inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The snapshot file.
    snapshot: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `snapshot inspect`.
pub(super) fn run(a: InspectArgs) -> Result<(), CliError> {
    inspect(&a.snapshot, a.json)
}

fn inspect(path: &Path, json: bool) -> Result<(), CliError> {
    let bytes = read_bytes(path)?;
    if delta::is_delta(&bytes) {
        return inspect_delta(path, &bytes, json);
    }
    let snap = decode_file(path, &bytes)?;
    let h = snap.header;
    let b = &snap.body;
    let domain = b
        .orgs
        .get(b.domain as usize)
        .map_or("", |o| b.str(o.id))
        .to_string();
    let counts = b.counts();
    let signer = signature::signer(&bytes)
        .ok()
        .flatten()
        .map(|k| signature::fingerprint(&k));
    if json {
        let out = json!({
            "file": path.display().to_string(),
            "bytes": bytes.len(),
            "format_version": h.format_version,
            "signed_by": signer,
            "revision": h.revision,
            "created_at": Timestamp(h.created_at).to_string(),
            "sha256": hex::encode(h.body_sha256),
            "body_bytes": h.body_len,
            "domain": format!("org/{domain}"),
            "counts": counts,
        });
        say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    say!("snapshot    {} ({} bytes)", path.display(), bytes.len());
    say!("format      {}", h.format_version);
    say!("revision    {}", h.revision);
    say!("created     {}", Timestamp(h.created_at));
    say!("sha256      {}", hex::encode(h.body_sha256));
    say!(
        "signed      {}",
        signer.map_or_else(
            || "no".to_string(),
            |k| format!("by key {k} (not verified here)")
        )
    );
    say!("domain      org/{domain}");
    let rows = [
        ("organizations", counts.organizations),
        ("environments", counts.environments),
        ("catalogs", counts.catalogs),
        ("objects", counts.objects),
        ("users", counts.users),
        ("service accounts", counts.service_accounts),
        ("api keys", counts.api_keys),
        ("groups", counts.groups),
        ("memberships", counts.group_memberships),
        ("teams", counts.teams),
        ("custom roles", counts.custom_roles),
        ("grants", counts.grants),
        ("permissions", counts.permissions),
        ("strings", counts.strings),
    ];
    for (name, n) in rows {
        say!("  {name:<17} {n:>9}");
    }
    Ok(())
}

fn inspect_delta(path: &Path, bytes: &[u8], json: bool) -> Result<(), CliError> {
    let d = delta::decode_delta(bytes).map_err(|source| CliError::Delta {
        path: path.to_path_buf(),
        source,
    })?;
    let h = d.header;
    let (removed, inserted) = d.body.edits();
    let signer = signature::delta_signer(bytes)
        .ok()
        .flatten()
        .map(|k| signature::fingerprint(&k));
    if json {
        let out = json!({
            "file": path.display().to_string(),
            "bytes": bytes.len(),
            "delta": true,
            "signed_by": signer,
            "base_revision": h.base_revision,
            "base_sha256": hex::encode(h.base_sha256),
            "revision": h.target_revision,
            "created_at": Timestamp(h.target_created_at).to_string(),
            "sha256": hex::encode(h.target_sha256),
            "rows_removed": removed,
            "rows_inserted": inserted,
        });
        say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    say!("delta       {} ({} bytes)", path.display(), bytes.len());
    say!(
        "applies to  revision {} ({})",
        h.base_revision,
        hex::encode(h.base_sha256)
    );
    say!(
        "makes       revision {} ({})",
        h.target_revision,
        hex::encode(h.target_sha256)
    );
    say!("created     {}", Timestamp(h.target_created_at));
    say!(
        "signed      {}",
        signer.map_or_else(
            || "no".to_string(),
            |k| format!("by key {k} (not verified here)")
        )
    );
    say!("rows        {removed} removed, {inserted} inserted or changed");
    Ok(())
}
