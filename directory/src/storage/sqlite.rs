//! The default store: one SQLite file in WAL mode.
//!
//! `synchronous = FULL`: a commit returns after the WAL is on disk, so an
//! answered write survives a crash or a power cut. The connection holds
//! the database exclusively (`locking_mode = EXCLUSIVE`): a second
//! process — an import while the service runs — is refused with
//! [`StorageError::Busy`] rather than writing behind the service's back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::interface::{Commit, LogEntry, Remembered, Storage, StorageError, Stored};
use crate::operation::{Kind, push_entity};

/// A SQLite store.
pub struct Sqlite {
    path: PathBuf,
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entities (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    position INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    via TEXT NOT NULL,
    operations TEXT NOT NULL,
    decisions TEXT NOT NULL,
    request_id TEXT,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT,
    response TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

fn db(path: &Path) -> impl Fn(rusqlite::Error) -> StorageError + '_ {
    move |e| {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    return StorageError::Busy(path.display().to_string());
                }
                ErrorCode::DiskFull | ErrorCode::ReadOnly | ErrorCode::SystemIoFailure => {
                    return StorageError::Full(format!("{}: {e}", path.display()));
                }
                _ => {}
            }
        }
        StorageError::Database(e.to_string())
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Sqlite, StorageError> {
        Sqlite::open_with_quota(path, None)
    }

    /// [`Sqlite::open`], the database held to `max_bytes` (rounded down to
    /// whole pages): past it a commit fails as on a full disk — refused
    /// whole, the service answering 503 — while reads go on.
    pub fn open_with_quota(path: &Path, max_bytes: Option<u64>) -> Result<Sqlite, StorageError> {
        let err = db(path);
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(Duration::from_millis(200))
            .map_err(&err)?;
        // Exclusive before WAL: WAL then needs no shared memory, and the
        // first write takes the lock for the life of the connection.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(&err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(&err)?;
        conn.execute_batch(SCHEMA).map_err(&err)?;
        if let Some(max) = max_bytes {
            let page: u64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
                .map_err(&err)?
                .try_into()
                .unwrap_or(4096);
            let pages = (max / page.max(1)).max(1);
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(&err)?;
        }
        Ok(Sqlite {
            path: path.to_path_buf(),
            conn,
        })
    }
}

/// The JSON documents of a table of them (`settings`, `approvals`), by name.
fn documents(
    conn: &Connection,
    table: &'static str,
    err: &impl Fn(rusqlite::Error) -> StorageError,
) -> Result<std::collections::BTreeMap<String, serde_json::Value>, StorageError> {
    let mut out = std::collections::BTreeMap::new();
    let mut stmt = conn
        .prepare(&format!("SELECT name, body FROM {table}"))
        .map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    while let Some(row) = rows.next().map_err(err)? {
        let name: String = row.get(0).map_err(err)?;
        let body: String = row.get(1).map_err(err)?;
        let value = serde_json::from_str(&body)
            .map_err(|e| StorageError::Damaged(format!("{table} {name:?}: {e}")))?;
        out.insert(name, value);
    }
    Ok(out)
}

impl Storage for Sqlite {
    fn load(&mut self) -> Result<Stored, StorageError> {
        let err = db(&self.path);
        let revision: u64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(revision), 0) FROM changes", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(&err)?
            .try_into()
            .map_err(|_| StorageError::Damaged("a negative revision".into()))?;
        let mut stored = Stored {
            revision,
            ..Stored::default()
        };
        stored.directory.format = portcullis_snapshots::source::SOURCE_FORMAT;
        let mut stmt = self
            .conn
            .prepare("SELECT kind, key, body FROM entities ORDER BY position")
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let kind: String = row.get(0).map_err(&err)?;
            let key: String = row.get(1).map_err(&err)?;
            let body: String = row.get(2).map_err(&err)?;
            let k = Kind::from_name(&kind).ok_or_else(|| {
                StorageError::Damaged(format!("an entity of unknown kind {kind:?}"))
            })?;
            push_entity(&mut stored.directory, k, &body)
                .map_err(|e| StorageError::Damaged(format!("{kind} {key:?}: {e}")))?;
        }
        stored.settings = documents(&self.conn, "settings", &err)?;
        stored.approvals = documents(&self.conn, "approvals", &err)?;
        Ok(stored)
    }

    fn commit(&mut self, commit: &Commit) -> Result<(), StorageError> {
        let err = db(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        {
            let mut next: i64 = tx
                .query_row(
                    "SELECT value FROM counters WHERE name = 'position'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&err)?
                .unwrap_or(0);
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO entities (kind, key, position, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
                )
                .map_err(&err)?;
            let mut place = tx
                .prepare_cached("UPDATE entities SET position = ?3 WHERE kind = ?1 AND key = ?2")
                .map_err(&err)?;
            let mut remove = tx
                .prepare_cached("DELETE FROM entities WHERE kind = ?1 AND key = ?2")
                .map_err(&err)?;
            for row in &commit.rows {
                let kind = row.key.kind.name();
                match &row.json {
                    Some(json) => {
                        let position = match row.position {
                            Some(p) => i64::try_from(p).unwrap_or(i64::MAX),
                            None => next,
                        };
                        put.execute(params![kind, row.key.key, position, json])
                            .map_err(&err)?;
                        if row.position.is_some() {
                            place
                                .execute(params![kind, row.key.key, position])
                                .map_err(&err)?;
                        }
                        next = next.max(position.saturating_add(1));
                    }
                    None => {
                        remove.execute(params![kind, row.key.key]).map_err(&err)?;
                    }
                }
            }
            tx.execute(
                "INSERT INTO counters (name, value) VALUES ('position', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![next],
            )
            .map_err(&err)?;
            for (table, rows) in [
                ("settings", &commit.settings),
                ("approvals", &commit.approvals),
            ] {
                for (name, value) in rows {
                    // `table` is one of the two names above, never input.
                    match value {
                        Some(v) => tx.execute(
                            &format!(
                                "INSERT INTO {table} (name, body) VALUES (?1, ?2)
                                 ON CONFLICT (name) DO UPDATE SET body = excluded.body"
                            ),
                            params![name, v.to_string()],
                        ),
                        None => tx.execute(
                            &format!("DELETE FROM {table} WHERE name = ?1"),
                            params![name],
                        ),
                    }
                    .map_err(&err)?;
                }
            }
            let e = &commit.entry;
            let json = |v: &serde_json::Value| v.to_string();
            tx.execute(
                "INSERT INTO changes (revision, time, actor, via, operations, decisions,
                     request_id, idempotency_key, request_hash, response)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    i64::try_from(e.revision).unwrap_or(i64::MAX),
                    e.time,
                    e.actor,
                    e.via,
                    json(&e.operations),
                    json(&e.decisions),
                    e.request_id,
                    e.idempotency_key,
                    commit.request_hash,
                    commit.response,
                ],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    fn remembered(&mut self, key: &str) -> Result<Option<Remembered>, StorageError> {
        let err = db(&self.path);
        self.conn
            .query_row(
                "SELECT request_hash, response, revision FROM changes WHERE idempotency_key = ?1",
                params![key],
                |r| {
                    Ok(Remembered {
                        request_hash: r.get(0)?,
                        response: r.get(1)?,
                        revision: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
                    })
                },
            )
            .optional()
            .map_err(&err)
    }

    fn changes(&mut self, after: u64, limit: usize) -> Result<Vec<LogEntry>, StorageError> {
        let err = db(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT revision, time, actor, via, operations, decisions, request_id, idempotency_key
                 FROM changes WHERE revision > ?1 ORDER BY revision LIMIT ?2",
            )
            .map_err(&err)?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![after, limit]).map_err(&err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(&err)? {
            let parse = |s: String| {
                serde_json::from_str(&s)
                    .map_err(|e| StorageError::Damaged(format!("a log entry: {e}")))
            };
            out.push(LogEntry {
                revision: r.get::<_, i64>(0).map_err(&err)?.try_into().unwrap_or(0),
                time: r.get(1).map_err(&err)?,
                actor: r.get(2).map_err(&err)?,
                via: r.get(3).map_err(&err)?,
                operations: parse(r.get(4).map_err(&err)?)?,
                decisions: parse(r.get(5).map_err(&err)?)?,
                request_id: r.get(6).map_err(&err)?,
                idempotency_key: r.get(7).map_err(&err)?,
            });
        }
        Ok(out)
    }
}
