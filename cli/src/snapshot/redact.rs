//! `snapshot redact`: a snapshot without personal data or API keys, or
//! one principal's view (what the gateway serves its browser).

use std::path::PathBuf;

use clap::Args;

use crate::error::CliError;
use crate::files::{decode_file, read_bytes, write_atomic};
use crate::output::say;

/// The arguments of `snapshot redact`.
#[derive(Debug, Args)]
pub struct RedactArgs {
    /// The snapshot file.
    snapshot: PathBuf,
    /// Where to write the redacted snapshot or the view.
    #[arg(short, long)]
    output: PathBuf,
    /// Write this principal's view (`user/…` or `service/…`): only
    /// what decides its own requests, and nobody else's personal data.
    #[arg(long = "for", value_name = "PRINCIPAL")]
    principal: Option<String>,
}

/// `snapshot redact`.
pub(super) fn run(a: RedactArgs) -> Result<(), CliError> {
    let RedactArgs {
        snapshot,
        output,
        principal,
    } = a;
    let bytes = read_bytes(&snapshot)?;
    let Some(principal) = principal else {
        let redacted = portcullis_snapshots::scope::redact_snapshot(&bytes).map_err(|source| {
            CliError::Snapshot {
                path: snapshot.clone(),
                source,
            }
        })?;
        write_atomic(&output, &redacted)?;
        say!(
            "wrote {} ({} bytes, from {} bytes): no personal data, no API keys",
            output.display(),
            redacted.len(),
            bytes.len()
        );
        return Ok(());
    };
    let engine = policy_wasm::Engine::load(&bytes).map_err(|e| match e {
        policy_wasm::LoadError::Decode(source) => CliError::Snapshot {
            path: snapshot.clone(),
            source,
        },
    })?;
    let view = engine.view(&principal)?;
    write_atomic(&output, &view)?;
    let body = decode_file(&output, &view)?.body;
    let counts = body.counts();
    // The stand-in for team owners outside the view names nobody.
    let others = body
        .users
        .iter()
        .filter(|u| !body.str(u.username).is_empty())
        .count()
        .saturating_sub(usize::from(principal.starts_with("user/")));
    say!(
        "wrote {} ({} bytes, from {} bytes): the view of {principal} — {others} other users, {} organizations, {} environments, {} catalogs, {} objects, {} teams, {} grants; nobody else's personal data, no API keys",
        output.display(),
        view.len(),
        bytes.len(),
        counts.organizations,
        counts.environments,
        counts.catalogs,
        counts.objects,
        counts.teams,
        counts.grants,
    );
    Ok(())
}
