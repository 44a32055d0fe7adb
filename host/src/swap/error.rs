//! What a swap can refuse, and why a decision could not be made: the
//! errors the host reports to the gateway, each with the code its metrics
//! and responses use.

use portcullis_snapshots::DecodeError;
use portcullis_snapshots::delta::DeltaError;
use portcullis_snapshots::signature::SignatureError;
use thiserror::Error;

use crate::module::HostError;

/// Where a candidate snapshot came from (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The configured file, at start-up or after a change.
    File,
    /// `PUT /-/snapshot` on the admin listener.
    Push,
    /// The polled URL.
    Poll,
    /// Built in (the demo).
    Embedded,
}

impl Source {
    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Push => "push",
            Source::Poll => "poll",
            Source::Embedded => "embedded",
        }
    }
}

/// Why a candidate snapshot was refused. The current snapshot keeps serving.
#[derive(Debug, Error)]
pub enum SwapError {
    /// The header is not a Portcullis snapshot header.
    #[error("not a usable snapshot: {0}")]
    Header(#[from] DecodeError),
    /// Larger than `snapshot.max_bytes`.
    #[error("snapshot of {size} bytes exceeds snapshot.max_bytes ({max})")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Not newer than what is serving.
    #[error(
        "revision {candidate} is not newer than the serving revision {current}; build with a higher --revision, or force the swap to roll back"
    )]
    Stale {
        /// The candidate's revision.
        candidate: u64,
        /// The serving revision.
        current: u64,
    },
    /// The engine refused it (hash, decoding, integrity) or could not load it.
    #[error("the engine refused the snapshot: {0}")]
    Load(HostError),
    /// Unsigned where signatures are required, signed by an untrusted key,
    /// or wrongly signed.
    #[error("{0}")]
    Signature(SignatureError),
    /// Older than the revision last accepted before a restart (or the same
    /// revision number with different contents).
    #[error(
        "revision {candidate} does not follow revision {accepted}, accepted before this restart (snapshot.state_file): load that same snapshot or a newer revision, or force a push to roll back"
    )]
    BelowAccepted {
        /// The candidate's revision.
        candidate: u64,
        /// The revision in the state file.
        accepted: u64,
    },
    /// A delta that is corrupted, truncated, or does not give its target.
    #[error("the delta is refused: {0}")]
    Delta(DeltaError),
    /// A delta made for another revision than the one serving.
    #[error("{0}")]
    WrongBase(DeltaError),
    /// A delta, and no snapshot serving for it to apply to.
    #[error(
        "no snapshot is serving, so a delta has nothing to apply to: install the full snapshot first"
    )]
    NoBase,
    /// One principal's view (`snapshot redact --for`), not a directory:
    /// serving it would deny everyone else.
    #[error(
        "this is one principal's view (snapshot redact --for), not a directory: push the snapshot built from the directory"
    )]
    View,
}

impl SwapError {
    /// Revision order: a candidate must be newer than the revision
    /// serving (`current`), unless the install is forced.
    pub(crate) fn unless_newer(
        candidate: u64,
        current: Option<u64>,
        force: bool,
    ) -> Result<(), SwapError> {
        match current {
            Some(current) if candidate <= current && !force => {
                Err(SwapError::Stale { candidate, current })
            }
            _ => Ok(()),
        }
    }

    /// A short stable code for responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            SwapError::Header(_) => "bad_header",
            SwapError::TooLarge { .. } => "too_large",
            SwapError::Stale { .. } | SwapError::BelowAccepted { .. } => "stale_revision",
            SwapError::Load(_) => "refused",
            SwapError::Signature(SignatureError::Unsigned) => "unsigned",
            SwapError::Signature(_) => "bad_signature",
            SwapError::View => "view_not_directory",
            SwapError::Delta(_) => "bad_delta",
            SwapError::WrongBase(_) | SwapError::NoBase => "wrong_base",
        }
    }
}

/// A decision could not be made; the request is denied with 503.
#[derive(Debug, Error)]
pub enum Unavailable {
    /// No snapshot was ever loaded.
    #[error("no snapshot is loaded yet")]
    NoSnapshot,
    /// Every instance is being rebuilt after a trap.
    #[error("the policy engine is recovering from a fault")]
    Recovering,
    /// The call trapped or ran out of time; its instance is being rebuilt.
    #[error("the policy engine failed on this request: {0}")]
    Fault(HostError),
}

impl Unavailable {
    /// The reason code of the 503 it becomes.
    pub fn reason(&self) -> &'static str {
        match self {
            Unavailable::NoSnapshot => "no_snapshot",
            _ => "engine_unavailable",
        }
    }
}
