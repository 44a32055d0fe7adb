//! Where the directory and its change log live. One interface
//! ([`Storage`], `interface.rs`) over two stores — SQLite, embedded, one
//! process (`sqlite.rs`), and PostgreSQL, shared by several replicas
//! (`postgresql.rs`): the service needs only its calls, and each write is
//! one [`Storage::commit`] — the entities it changed and its log entry in
//! one transaction, durable when it returns.

mod interface;
mod postgresql;
mod sqlite;

pub use interface::{Commit, LogEntry, Remembered, Replayed, Row, Storage, StorageError, Stored};
pub use postgresql::{Fence, Lease, Postgres, redacted};
pub use sqlite::Sqlite;

/// Whether `database` names a PostgreSQL database (`postgres://…`,
/// `postgresql://…`) rather than a SQLite file.
pub fn is_postgres(database: &std::path::Path) -> bool {
    let s = database.to_string_lossy();
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// Opens the store `database` names: a PostgreSQL URL, or a SQLite file
/// (held to `max_bytes`, when given; a PostgreSQL database's quota is
/// PostgreSQL's to set).
pub fn open(
    database: &std::path::Path,
    max_bytes: Option<u64>,
) -> Result<Box<dyn Storage>, StorageError> {
    if is_postgres(database) {
        if max_bytes.is_some() {
            return Err(StorageError::Database(
                "max_database_mb is SQLite's quota: for PostgreSQL, set one in PostgreSQL (a tablespace or disk quota)".into(),
            ));
        }
        return Ok(Box::new(Postgres::open(&database.to_string_lossy())?));
    }
    Ok(Box::new(Sqlite::open_with_quota(database, max_bytes)?))
}
