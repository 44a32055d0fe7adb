//! Errors of the command-line boundary, each mapped to a documented exit code.

use std::path::PathBuf;

use portcullis_snapshots::{DecodeError, EncodeError, source::Problems};
use thiserror::Error;

/// Exit code: the input (directory or snapshot) is invalid.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: wrong usage (clap's own code).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a file could not be read or written.
pub const EXIT_IO: u8 = 3;

/// Exit code: `check` denied the request.
pub const EXIT_DENIED: u8 = 4;

/// Exit code: the gateway could not start, or could not be reached.
pub const EXIT_UNAVAILABLE: u8 = 5;

/// What went wrong in a CLI command.
#[derive(Debug, Error)]
pub enum CliError {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// "cannot read", "cannot write", …
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory source has problems (already rendered with the file name).
    #[error("{rendered}")]
    Directory {
        /// Every problem, rendered.
        rendered: String,
        /// The problems, for `--json`.
        problems: Problems,
    },
    /// A snapshot file was refused.
    #[error("{path}: {source}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// Why.
        source: DecodeError,
    },
    /// No revision in the source or on the command line.
    #[error(
        "{path}: no revision: set \"revision\" in the directory or pass --revision N (revisions must increase with every snapshot you push)"
    )]
    NoRevision {
        /// The directory file.
        path: PathBuf,
    },
    /// A bad argument value that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// The WebAssembly module failed (compile, trap, …).
    #[error("{0}")]
    Module(String),
    /// `check` answered deny (already printed).
    #[error("")]
    Denied,
    /// The gateway configuration is invalid (every problem listed).
    #[error("{0}")]
    Config(String),
    /// The gateway could not start.
    #[error("{0}")]
    Start(String),
    /// A push could not reach the gateway.
    #[error("{0}")]
    Push(String),
    /// The gateway refused a pushed snapshot.
    #[error("{0}")]
    Refused(String),
    /// Standard output was closed by its reader (`… | head`): the command
    /// ends quietly, successfully.
    #[error("")]
    OutputClosed,
    /// Encoding failed (a bug: compilation guarantees encodable bodies).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A delta was refused, or could not be made.
    #[error("{path}: {source}")]
    Delta {
        /// The delta file (or the candidate it was made for).
        path: PathBuf,
        /// Why.
        source: portcullis_snapshots::delta::DeltaError,
    },
    /// A principal's view could not be cut (unknown principal, or not a
    /// user or service account).
    #[error("{0}; name a user/… or service/… of the snapshot")]
    View(#[from] policy_wasm::ViewError),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::OutputClosed => 0,
            CliError::Io { .. } => EXIT_IO,
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Denied | CliError::Refused(_) => EXIT_DENIED,
            CliError::Config(_) => EXIT_INVALID,
            CliError::Start(_) | CliError::Push(_) => EXIT_UNAVAILABLE,
            CliError::Directory { .. }
            | CliError::Snapshot { .. }
            | CliError::NoRevision { .. }
            | CliError::Encode(_)
            | CliError::Delta { .. }
            | CliError::Module(_) => EXIT_INVALID,
            CliError::View(_) => EXIT_USAGE,
        }
    }
}
