//! Where the directory and its change log live. One interface
//! ([`Storage`], `interface.rs`), so that PostgreSQL can follow SQLite
//! (`sqlite.rs`): the service needs only its calls, and each write is one
//! [`Storage::commit`] — the entities it changed and its log entry in one
//! transaction, durable when it returns.

mod interface;
mod sqlite;

pub use interface::{Commit, LogEntry, Remembered, Row, Storage, StorageError, Stored};
pub use sqlite::Sqlite;
