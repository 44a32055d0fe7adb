//! `snapshot generate`: a deterministic, realistic large directory for
//! benchmarks.

use std::path::PathBuf;

use clap::Args;
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::{encode, source};

use crate::directory::created_at;
use crate::error::CliError;
use crate::files::write_atomic;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where to write (`.snap`: a snapshot; anything else: directory JSON).
    #[arg(short, long)]
    output: PathBuf,
    /// Users.
    #[arg(long, default_value_t = GenerateParams::default().users)]
    users: usize,
    /// Groups (about 50 members each).
    #[arg(long, default_value_t = GenerateParams::default().groups)]
    groups: usize,
    /// Organizations, the domain included.
    #[arg(long, default_value_t = GenerateParams::default().orgs)]
    orgs: usize,
    /// Environments.
    #[arg(long, default_value_t = GenerateParams::default().envs)]
    envs: usize,
    /// Catalogs.
    #[arg(long, default_value_t = GenerateParams::default().catalogs)]
    catalogs: usize,
    /// Role grants.
    #[arg(long, default_value_t = GenerateParams::default().grants)]
    grants: usize,
    /// Random seed: the same seed and sizes give the same directory.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Revision to stamp.
    #[arg(long, default_value_t = 1)]
    revision: u64,
}

pub(super) fn run(a: GenerateArgs) -> Result<(), CliError> {
    let params = GenerateParams {
        users: a.users,
        groups: a.groups,
        orgs: a.orgs,
        envs: a.envs,
        catalogs: a.catalogs,
        grants: a.grants,
        seed: a.seed,
    };
    let mut dir = generate(params);
    dir.revision = Some(a.revision);
    let bytes = if a.output.extension().is_some_and(|e| e == "snap") {
        let body = source::compile(&dir).map_err(|p| CliError::Directory {
            rendered: format!(
                "generated directory is invalid (a bug): {}",
                source::Problems(p.clone())
            ),
            problems: source::Problems(p),
        })?;
        encode(&body, a.revision, created_at(None)?)?
    } else {
        serde_json::to_vec(&dir).map_err(|e| CliError::Usage(e.to_string()))?
    };
    write_atomic(&a.output, &bytes)?;
    eprintln!(
        "wrote {} ({} bytes): {} users, {} groups, {} catalogs, {} grants",
        a.output.display(),
        bytes.len(),
        dir.users.len(),
        dir.groups.len(),
        dir.catalogs.len(),
        dir.grants.len()
    );
    Ok(())
}
