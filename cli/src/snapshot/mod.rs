//! `portcullis snapshot …`: one file per subcommand, its arguments and
//! its body; what several share (files, directory sources, signing,
//! deltas) lives beside this module, in the crate's own files.

mod build;
mod delta;
mod diff;
mod generate;
mod inspect;
mod keys;
mod publish;
mod push;
mod redact;

use clap::Subcommand;

use crate::error::CliError;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Validate a directory source and compile it into a snapshot.
    ///
    /// Every problem in the directory is reported with its JSON pointer,
    /// line and column; if there is any, nothing is written.
    Build(build::BuildArgs),
    /// Validate a directory source without writing anything.
    Validate(build::ValidateArgs),
    /// Show a snapshot's header and record counts.
    Inspect(inspect::InspectArgs),
    /// Show what changed between two snapshots (or directory sources):
    /// principals, nodes, roles, grants and permissions added, removed or changed.
    Diff(diff::DiffArgs),
    /// Write the delta from the deployed snapshot to a candidate.
    ///
    /// What a gateway serving the deployed revision needs to serve the
    /// candidate (`PATCH /-/snapshot`, `snapshot push --delta`, `snapshot
    /// publish`). Format: snapshots/FORMAT.md, "Deltas".
    Delta(delta::DeltaArgs),
    /// Apply a delta to the snapshot it was made from.
    ///
    /// Writes the candidate's snapshot: the same body and SHA-256 as its
    /// full build (unsigned: sign it with `snapshot sign`).
    Apply(delta::ApplyArgs),
    /// Publish a snapshot, with the delta from the last one, into a store directory.
    ///
    /// Writes the snapshot, the delta from the revision published before
    /// it, and the manifest (`latest.json`, written last) that polling
    /// gateways read (`snapshot.poll_url = ".../latest.json"`). Files
    /// already there are left for replicas still fetching them.
    Publish(publish::PublishArgs),
    /// Write a deterministic, realistic large directory (for benchmarks).
    ///
    /// Writes a snapshot when OUT ends in `.snap`, directory JSON otherwise.
    /// Generated API key secrets are `pk_<seed>_<index>`.
    Generate(generate::GenerateArgs),
    /// Send a snapshot (or, with --delta, a delta) to a running gateway (validated there before the swap).
    Push(push::PushArgs),
    /// Make an Ed25519 key pair for signing snapshots: the private key
    /// (PKCS#8 PEM, readable by its owner only) and the public key (SPKI
    /// PEM) that gateways list in `snapshot.trusted_keys`.
    Keygen(keys::KeygenArgs),
    /// Sign a snapshot (an existing signature is replaced).
    Sign(keys::SignArgs),
    /// Write the snapshot without personal data or API keys — or, with
    /// `--for`, one principal's view: what the gateway serves its browser
    /// at `GET /-/snapshot/me` (policy-wasm/README.md#views).
    Redact(redact::RedactArgs),
}

/// Runs a `snapshot` subcommand.
pub fn run(cmd: SnapshotCommand) -> Result<(), CliError> {
    match cmd {
        SnapshotCommand::Build(a) => build::build(a),
        SnapshotCommand::Validate(a) => build::validate(a),
        SnapshotCommand::Inspect(a) => inspect::run(a),
        SnapshotCommand::Diff(a) => diff::run(a),
        SnapshotCommand::Delta(a) => delta::delta(a),
        SnapshotCommand::Apply(a) => delta::apply(a),
        SnapshotCommand::Publish(a) => publish::run(a),
        SnapshotCommand::Generate(a) => generate::run(a),
        SnapshotCommand::Push(a) => push::run(a),
        SnapshotCommand::Keygen(a) => keys::keygen_cmd(a),
        SnapshotCommand::Sign(a) => keys::sign(a),
        SnapshotCommand::Redact(a) => redact::run(a),
    }
}
