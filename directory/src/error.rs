//! Why a write or a read was refused: one enum for the service's
//! boundary, each with its HTTP status and a stable reason code.

use http::StatusCode;
use portcullis_snapshots::source::Problem;

use crate::operation::OpError;
use crate::storage::StorageError;

/// Why the service refused a request.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The body or a parameter cannot be read (400), with its place.
    #[error("{0}")]
    Malformed(String),
    /// The engine denied an operation (403), with its reason.
    #[error("{message}")]
    Denied {
        /// The engine's reason code.
        reason: String,
        /// The engine's sentence.
        message: String,
        /// The revision that decided.
        revision: u64,
        /// Which operation of the change (0-based).
        operation: usize,
    },
    /// An operation's target is unknown (404).
    #[error("operation {operation}: {source}")]
    NotFound {
        /// Which operation.
        operation: usize,
        /// What was missing.
        source: OpError,
    },
    /// An operation's target exists already (409).
    #[error("operation {operation}: {source}")]
    Exists {
        /// Which operation.
        operation: usize,
        /// What exists.
        source: OpError,
    },
    /// The change was written against another revision (412).
    #[error(
        "the change was prepared against revision {expected}, but the directory is at revision {current}: read it again and retry"
    )]
    Stale {
        /// The `If-Match` revision.
        expected: u64,
        /// The current revision.
        current: u64,
    },
    /// An idempotency key was used before for a different request (422).
    #[error(
        "the Idempotency-Key was used for a different request (revision {0}): use a new key for a new change"
    )]
    KeyReused(u64),
    /// An operation contradicts itself (422).
    #[error("operation {operation}: {source}")]
    Invalid {
        /// Which operation.
        operation: usize,
        /// Why.
        source: OpError,
    },
    /// The directory after the change would be invalid (422): every
    /// problem with its place.
    #[error("the change would make the directory invalid: {} problem(s)", .0.len())]
    Invalid422(Vec<Problem>),
    /// The store failed; nothing of the change was kept (503).
    #[error("{0}; nothing of the change was kept — retry when the store recovers")]
    Storage(#[from] StorageError),
    /// The service has no directory yet (503).
    #[error("the directory is empty: import one first (`portcullis directory import FILE`)")]
    Empty,
    /// Building the engine for the new revision failed (500).
    #[error("the new revision could not be built: {0}")]
    Build(String),
}

impl ServiceError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ServiceError::Malformed(_) => StatusCode::BAD_REQUEST,
            ServiceError::Denied { .. } => StatusCode::FORBIDDEN,
            ServiceError::NotFound { .. } => StatusCode::NOT_FOUND,
            ServiceError::Exists { .. } => StatusCode::CONFLICT,
            ServiceError::Stale { .. } => StatusCode::PRECONDITION_FAILED,
            ServiceError::KeyReused(_)
            | ServiceError::Invalid { .. }
            | ServiceError::Invalid422(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::Storage(_) | ServiceError::Empty => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Build(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable reason code.
    pub fn reason(&self) -> &str {
        match self {
            ServiceError::Malformed(_) => "malformed_request",
            ServiceError::Denied { reason, .. } => reason,
            ServiceError::NotFound { .. } => "not_found",
            ServiceError::Exists { .. } => "exists",
            ServiceError::Stale { .. } => "stale_revision",
            ServiceError::KeyReused(_) => "idempotency_key_reused",
            ServiceError::Invalid { .. } => "invalid_operation",
            ServiceError::Invalid422(_) => "invalid_directory",
            ServiceError::Storage(StorageError::Busy(_)) => "store_busy",
            ServiceError::Storage(StorageError::Full(_)) => "store_full",
            ServiceError::Storage(_) => "store_unavailable",
            ServiceError::Empty => "no_directory",
            ServiceError::Build(_) => "build_failed",
        }
    }

    /// Sorts an operation's failure by its status.
    pub(crate) fn from_op(operation: usize, source: OpError) -> ServiceError {
        match source {
            OpError::NotFound(_) => ServiceError::NotFound { operation, source },
            OpError::Exists(_) => ServiceError::Exists { operation, source },
            OpError::Invalid(_) => ServiceError::Invalid { operation, source },
        }
    }
}
