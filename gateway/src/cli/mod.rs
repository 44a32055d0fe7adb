//! Command-line interface: argument definitions and dispatch.

mod snapshot;

use clap::{Parser, Subcommand};

use crate::error::CliError;

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

Start with: portcullis snapshot build snapshots/examples/acme.json -o acme.snap")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, inspect, compare and generate directory snapshots.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Snapshot(cmd) => snapshot::run(cmd),
    }
}
