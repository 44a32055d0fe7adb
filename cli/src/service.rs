//! `portcullis directory …`: the directory service (`serve`) and the
//! operator's commands on its database — `import` (the difference from a
//! directory file, committed as one change), `export` (the directory back
//! as JSON) and `log` (the change log for people).
//!
//! The offline commands open the database exclusively: while a service
//! runs they are refused, and the same work goes through its API
//! (`PUT /v1/directory`, `GET /v1/directory`, `GET /v1/directory/changes`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use portcullis_directory::config::DirectoryConfig;
use portcullis_directory::service::{Provenance, Service};

use crate::error::CliError;
use crate::files::read_text;
use crate::output::{say, say_raw};

/// `portcullis directory`.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Run the directory service: the write API, the change log, publishing.
    Serve(ServeArgs),
    /// Make the database's directory FILE: the difference, as one change.
    Import(ImportArgs),
    /// Write the database's directory as JSON.
    Export(ExportArgs),
    /// Print the change log.
    Log(LogArgs),
}

/// The database, named directly or through the service's configuration.
#[derive(Debug, Args)]
pub struct Database {
    /// The SQLite database.
    #[arg(long, conflicts_with = "config", required_unless_present = "config")]
    database: Option<PathBuf>,
    /// The service's configuration (its `database`).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl Database {
    fn path(&self) -> Result<PathBuf, CliError> {
        match (&self.database, &self.config) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(c)) => Ok(DirectoryConfig::read(c)
                .map_err(|e| CliError::Config(e.to_string()))?
                .database),
            (None, None) => Err(CliError::Usage("name --database or --config".into())),
        }
    }

    fn open(&self) -> Result<Service, CliError> {
        let path = self.path()?;
        let shown = portcullis_directory::storage::redacted(&path.to_string_lossy());
        let storage = portcullis_directory::storage::open(&path, None)
            .map_err(|e| CliError::Start(e.to_string()))?;
        Service::open(storage).map_err(|e| CliError::Start(format!("{shown}: {e}")))
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (docs/directory.md).
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The directory file (JSON, the source format).
    file: PathBuf,
    #[command(flatten)]
    database: Database,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    database: Database,
    /// Write here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    database: Database,
    /// Changes after this revision.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// Runs `portcullis directory …`.
pub fn run(cmd: DirectoryCommand) -> Result<(), CliError> {
    match cmd {
        DirectoryCommand::Serve(a) => serve(&a.config),
        DirectoryCommand::Import(a) => import(&a.file, &a.database),
        DirectoryCommand::Export(a) => export(&a.database, a.output.as_deref()),
        DirectoryCommand::Log(a) => log(&a.database, a.after, a.limit, a.json),
    }
}

fn serve(config: &Path) -> Result<(), CliError> {
    crate::serve::init_logs();
    let c = DirectoryConfig::read(config).map_err(|e| CliError::Config(e.to_string()))?;
    let api = portcullis_directory::server::start(&c).map_err(CliError::Start)?;
    let rt = crate::serve::runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(c.listen)
            .await
            .map_err(|e| CliError::Start(format!("cannot listen on {}: {e}", c.listen)))?;
        let revision = api.service.head().map_or(0, |h| h.revision);
        let addr = listener.local_addr().unwrap_or(c.listen);
        say!(
            "directory service on http://{addr} (database {}, revision {revision})",
            c.database.display()
        );
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            portcullis_gateway::server::wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        portcullis_directory::server::serve(Arc::clone(&api), listener, stop)
            .await
            .map_err(|e| CliError::Start(e.to_string()))
    })
}

fn import(file: &Path, database: &Database) -> Result<(), CliError> {
    let text = read_text(file)?;
    let dir = crate::directory::compile_text(file, &text, false)?.0;
    let service = database.open()?;
    let answer = service
        .import(
            &dir,
            "operator",
            false,
            &Provenance {
                via: "import",
                ..Provenance::default()
            },
        )
        .map_err(|e| match e {
            portcullis_directory::error::ServiceError::Invalid422(p) => {
                let problems = portcullis_snapshots::source::Problems(p);
                CliError::Directory {
                    rendered: problems.render(&file.display().to_string()),
                    problems,
                }
            }
            e => CliError::Refused(e.to_string()),
        })?;
    if answer.changed {
        say!("imported {}: revision {}", file.display(), answer.revision);
    } else {
        say!(
            "{} is the directory at revision {} already: nothing to change",
            file.display(),
            answer.revision
        );
    }
    Ok(())
}

fn export(database: &Database, output: Option<&Path>) -> Result<(), CliError> {
    let service = database.open()?;
    let Some(head) = service.head() else {
        return Err(CliError::Usage(
            "the database holds no directory yet: import one".into(),
        ));
    };
    let mut text = serde_json::to_string_pretty(&head.directory)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    text.push('\n');
    match output {
        Some(p) => crate::files::write_atomic(p, text.as_bytes()),
        None => {
            say_raw!("{text}");
            Ok(())
        }
    }
}

fn log(database: &Database, after: u64, limit: usize, json: bool) -> Result<(), CliError> {
    let service = database.open()?;
    let entries = service
        .changes(after, limit)
        .map_err(|e| CliError::Start(e.to_string()))?;
    for e in entries {
        if json {
            say_raw!("{}\n", serde_json::to_string(&e).unwrap_or_default());
            continue;
        }
        let ops = match &e.operations {
            serde_json::Value::Array(a) => a
                .iter()
                .map(|o| {
                    o.get("op")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?")
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        say!(
            "r{}  {}  {} via {}  {}{}",
            e.revision,
            e.time,
            e.actor,
            e.via,
            ops,
            e.request_id
                .as_ref()
                .map_or_else(String::new, |r| format!("  request {r}"))
        );
    }
    Ok(())
}
