//! `portcullis`: the operator's command line — build, inspect, diff,
//! sign and push snapshots, ask the engine, run the gateway (`serve`) and
//! the demo. A thin layer over the libraries: the engine
//! (`policy-wasm`), the snapshot format (`portcullis-snapshots`), the
//! engine's host (`portcullis-host`), the gateway (`portcullis-gateway`)
//! and the demo (`portcullis-demo`).

mod check;
mod deltas;
mod directory;
mod error;
mod files;
mod output;
mod serve;
mod service;
mod signing;
mod snapshot;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = e.to_string();
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// Portcullis: who may do what in your organization's directory, decided
/// by one engine and enforced at the edge.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, propagate_version = true)]
#[command(after_help = "\
Exit codes:
  0  success
  1  the directory or snapshot is invalid (every problem is listed)
  2  wrong usage
  3  a file could not be read or written
  4  `check`: the (last) request was denied; `snapshot push`: the gateway refused the snapshot
  5  `serve`, `demo`: the gateway could not start; `snapshot push`: the gateway is unreachable

Start with: portcullis snapshot build snapshots/examples/acme.json -o acme.snap")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, inspect, compare, publish and generate directory snapshots; make and apply deltas.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Ask the engine: may PRINCIPAL do ACTION on RESOURCE? (exit 0 allow, 4 deny)
    Check(check::CheckArgs),
    /// Run the gateway: authorize every request, forward the allowed ones.
    Serve(serve::ServeArgs),
    /// The gateway with the example directory, a demo upstream and curl commands to try.
    Demo(serve::DemoArgs),
    /// The directory service: the write API, its database, import, export and the change log.
    #[command(subcommand)]
    Directory(service::DirectoryCommand),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Snapshot(cmd) => snapshot::run(cmd),
        Command::Check(args) => check::run(args),
        Command::Serve(args) => serve::serve(args),
        Command::Demo(args) => serve::demo(args),
        Command::Directory(cmd) => service::run(cmd),
    }
}
