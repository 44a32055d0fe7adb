//! Why a delta is refused.

use thiserror::Error;

use crate::error::DecodeError;

/// Why a delta was refused. Whatever is serving keeps serving.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DeltaError {
    /// The bytes are not a delta this build reads.
    #[error("not a usable delta: {0}")]
    Format(String),
    /// The delta's body does not match its SHA-256.
    #[error("the delta's body does not match its SHA-256: the file is corrupted; fetch it again")]
    HashMismatch,
    /// The delta applies to another snapshot than the one given.
    #[error(
        "this delta applies to revision {base_revision} ({base_sha256}), not to revision {revision} ({sha256}): apply the full snapshot, or the deltas in between"
    )]
    WrongBase {
        /// The revision the delta applies to.
        base_revision: u64,
        /// Its body SHA-256, hex.
        base_sha256: String,
        /// The revision it was given.
        revision: u64,
        /// Its body SHA-256, hex.
        sha256: String,
    },
    /// The base snapshot itself is refused.
    #[error("the base snapshot is refused: {0}")]
    Base(DecodeError),
    /// The delta's edits do not fit the base (out of range, overlapping,
    /// a kept row pointing at a removed one).
    #[error("the delta does not apply to its base ({table}: {reason})")]
    DoesNotApply {
        /// The table.
        table: &'static str,
        /// What does not fit.
        reason: &'static str,
    },
    /// Applied, the result is not the target: not this delta's base, or a
    /// faulty tool wrote it.
    #[error(
        "applying the delta does not give the snapshot it promises (SHA-256 {got} instead of {want}); install the full snapshot"
    )]
    TargetMismatch {
        /// The SHA-256 promised, hex.
        want: String,
        /// The SHA-256 obtained, hex.
        got: String,
    },
    /// The delta changes tables that other tables refer to by index
    /// (`.0` names which): it cannot be applied to bytes or to a loaded
    /// engine in place. Apply it in full ([`super::Delta::apply_to`]).
    #[error("this delta cannot be applied in place ({0}); apply it in full")]
    NotInPlace(&'static str),
    /// The result could not be encoded.
    #[error("the result could not be encoded: {0}")]
    Encode(String),
}

impl DeltaError {
    /// The delta does not fit its base: `reason`, in `table`.
    pub fn apply(table: &'static str, reason: &'static str) -> DeltaError {
        DeltaError::DoesNotApply { table, reason }
    }
}
