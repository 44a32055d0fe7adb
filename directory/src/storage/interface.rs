//! The storage interface: what the service asks of a store, and the
//! rows, log entries and errors that cross it.

use portcullis_snapshots::source::Directory;
use serde::{Deserialize, Serialize};

use crate::operation::EntityKey;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database refused or failed (a full or read-only disk among
    /// them): nothing of the write was kept.
    #[error("the database failed: {0}")]
    Database(String),
    /// The disk (or the database's quota) is full, or the file system
    /// read-only: nothing of the write was kept; writes work again when
    /// there is room.
    #[error("the store cannot write: {0} (free space, or raise max_database_mb)")]
    Full(String),
    /// Another process holds the database.
    #[error(
        "the database {0} is in use by another process (a running directory service?): stop it, or send the change to it"
    )]
    Busy(String),
    /// What is stored cannot be read back.
    #[error("the stored directory is damaged: {0}")]
    Damaged(String),
    /// Another replica committed first: the store's log ends at this
    /// revision, not at the one before this change. Nothing was written;
    /// catch up and decide again.
    #[error(
        "another replica committed revision {0} first: nothing was written; read the directory again and retry"
    )]
    Moved(u64),
}

/// The state a store holds: the revision of its last change and the
/// directory at that revision.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    /// The revision of the last committed change (0: none yet).
    pub revision: u64,
    /// The directory.
    pub directory: Directory,
    /// The administrators' settings (SSO, SCIM), by name.
    pub settings: std::collections::BTreeMap<String, serde_json::Value>,
    /// Changes waiting for their holder's approval, by id.
    pub approvals: std::collections::BTreeMap<String, serde_json::Value>,
}

/// One row of an entity: its key and its JSON as the source writes it,
/// or `None` when the change removed it.
#[derive(Clone, Debug)]
pub struct Row {
    /// Which entity.
    pub key: EntityKey,
    /// Its JSON after the change; `None`: deleted.
    pub json: Option<String>,
    /// Its place in source order, when the change sets it (an import
    /// reorders); `None` keeps an existing row's place and puts a new one
    /// last.
    pub position: Option<u64>,
}

/// An entry of the change log: the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The revision this change made.
    pub revision: u64,
    /// When it was committed (RFC 3339).
    pub time: String,
    /// The acting principal, as the engine named it.
    pub actor: String,
    /// How it came: `api`, `import`, `scim`.
    pub via: String,
    /// The operations (for an import: a summary).
    pub operations: serde_json::Value,
    /// The decision that allowed each operation.
    pub decisions: serde_json::Value,
    /// The request id, when the client sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The idempotency key, when the client sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A change to commit.
#[derive(Clone, Debug)]
pub struct Commit {
    /// The entity rows it changes.
    pub rows: Vec<Row>,
    /// The settings it sets (`None`: removes).
    pub settings: Vec<(String, Option<serde_json::Value>)>,
    /// The approvals it files (`None`: settles or withdraws).
    pub approvals: Vec<(String, Option<serde_json::Value>)>,
    /// Its log entry (its revision is the store's next).
    pub entry: LogEntry,
    /// A fingerprint of the request, stored with its idempotency key so a
    /// different request under the same key is told apart.
    pub request_hash: Option<String>,
    /// The answer sent for it, replayed for a retry under the same key.
    pub response: String,
    /// What another replica needs to apply the change in place (the
    /// service's own JSON; a store other processes write keeps it).
    pub replay: Option<String>,
}

/// The answer a store kept for an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remembered {
    /// The fingerprint of the request that used the key.
    pub request_hash: Option<String>,
    /// The answer sent.
    pub response: String,
    /// The revision it made.
    pub revision: u64,
}

/// A change's revision and what the store kept to replay it (`None`:
/// nothing, an import's).
pub type Replayed = (u64, Option<String>);

/// A store of the directory and its change log.
pub trait Storage: Send {
    /// Reads the directory and its revision.
    fn load(&mut self) -> Result<Stored, StorageError>;
    /// Commits one change durably: every row and the log entry, or nothing.
    fn commit(&mut self, commit: &Commit) -> Result<(), StorageError>;
    /// The answer kept for an idempotency key.
    fn remembered(&mut self, key: &str) -> Result<Option<Remembered>, StorageError>;
    /// Log entries after `after`, oldest first, at most `limit`.
    fn changes(&mut self, after: u64, limit: usize) -> Result<Vec<LogEntry>, StorageError>;
    /// The revision the store's log ends at, when other processes may
    /// commit to it (a shared database); `None` for a store this process
    /// alone writes (it knows its revision).
    fn stored_revision(&mut self) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
    /// Takes the store's writer lock across processes (a shared store),
    /// waiting for another process's write to end; held until
    /// [`Storage::release_writer`].
    fn acquire_writer(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
    /// Lets go of the writer lock.
    fn release_writer(&mut self) {}
    /// The replays of the changes after `after` (at most `limit`), oldest
    /// first, each with its revision (`None`: none kept for it); `None`
    /// when this store keeps none.
    fn replays(&mut self, after: u64, limit: usize) -> Result<Option<Vec<Replayed>>, StorageError> {
        let _ = (after, limit);
        Ok(None)
    }
}
