//! The PostgreSQL store, for several directory-service replicas on one
//! database (`database = "postgres://…"`).
//!
//! The same tables as SQLite's. A commit runs in one transaction that
//! first takes a transaction-scoped advisory lock (one writer at a time
//! across replicas) and checks that the log ends at the revision before
//! this one: a replica whose head is behind gets [`StorageError::Moved`]
//! and catches up before deciding again, so two replicas never commit the
//! same revision. `synchronous_commit` is left on: a commit returns once
//! PostgreSQL has it on disk.
//!
//! The client is rust-postgres' synchronous `postgres` crate (the most
//! used PostgreSQL client of the ecosystem). It drives its connection on
//! a runtime of its own, which may not be started inside another: each
//! store owns a thread that owns the connection, and the service's calls
//! are sent to it and waited for — from a blocking thread, as SQLite's
//! are. A lost connection is opened again for the next call; a commit
//! whose connection broke is not retried (it may have landed: the next
//! write finds out, and an idempotency key replays its answer).

use std::sync::mpsc;

use postgres::{Client, Config, GenericClient, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::interface::{Commit, LogEntry, Remembered, Replayed, Storage, StorageError, Stored};
use crate::operation::{Kind, push_entity};

/// The advisory lock a commit holds (any fixed number, the same in every
/// replica): "PCDW", Portcullis directory writer.
const WRITER_LOCK: i64 = 0x5043_4457;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entities (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    position BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS changes (
    revision BIGINT PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    via TEXT NOT NULL,
    operations TEXT NOT NULL,
    decisions TEXT NOT NULL,
    request_id TEXT,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT,
    response TEXT NOT NULL,
    replay TEXT
);
ALTER TABLE changes ADD COLUMN IF NOT EXISTS replay TEXT;
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
    value BIGINT NOT NULL
);
";

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// How long connecting, or data unacknowledged on an open connection,
/// may take before the call fails (503: nothing kept, retry).
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// How long a write waits for another replica's writer lock (a replica
/// compiling a change holds it about a second and a half on a 100k-user
/// directory): past it, 503 and nothing kept.
const LOCK_TIMEOUT: &str = "SET lock_timeout = '20s'";

/// Above this many rows a commit streams them with `COPY` (an import:
/// 600k rows in one round trip rather than one each).
const COPY_ABOVE: usize = 1000;

/// `s` as a field of `COPY … FROM STDIN` text.
fn copy_field(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

/// Writes `rows` through a temporary table filled by `COPY`, with the
/// same meaning as row by row: positions given are set, others kept for
/// existing entities and taken from `next` for new ones. The next free
/// position.
fn copy_rows(
    tx: &mut postgres::Transaction<'_>,
    rows: &[super::interface::Row],
    mut next: i64,
) -> Result<i64, postgres::Error> {
    use std::io::Write;
    tx.batch_execute(
        "CREATE TEMP TABLE incoming (kind TEXT NOT NULL, key TEXT NOT NULL, position BIGINT,
             body TEXT, placed BOOLEAN NOT NULL) ON COMMIT DROP",
    )?;
    let mut text = String::new();
    for row in rows {
        let position = match (&row.json, row.position) {
            (None, _) => None,
            (Some(_), Some(p)) => Some(i64::try_from(p).unwrap_or(i64::MAX)),
            (Some(_), None) => Some(next),
        };
        if let Some(p) = position {
            next = next.max(p.saturating_add(1));
        }
        copy_field(&mut text, row.key.kind.name());
        text.push('\t');
        copy_field(&mut text, &row.key.key);
        text.push('\t');
        match position {
            Some(p) => text.push_str(&p.to_string()),
            None => text.push_str("\\N"),
        }
        text.push('\t');
        match &row.json {
            Some(j) => copy_field(&mut text, j),
            None => text.push_str("\\N"),
        }
        text.push('\t');
        text.push(if row.position.is_some() { 't' } else { 'f' });
        text.push('\n');
    }
    let mut w = tx.copy_in("COPY incoming (kind, key, position, body, placed) FROM STDIN")?;
    if let Err(e) = w.write_all(text.as_bytes()) {
        // Dropped unfinished, the copy is aborted and the transaction
        // with it: any statement now fails, and that failure is this
        // commit's (nothing is kept). The second cannot succeed either.
        drop(w);
        tracing::warn!(error = %e, "a COPY was cut short");
        tx.batch_execute("SELECT 1")?;
        return tx.batch_execute("SELECT 1/0").map(|()| next);
    }
    w.finish()?;
    tx.batch_execute(
        "DELETE FROM entities e USING incoming i
             WHERE i.body IS NULL AND e.kind = i.kind AND e.key = i.key;
         INSERT INTO entities (kind, key, position, body)
             SELECT kind, key, position, body FROM incoming WHERE body IS NOT NULL AND placed
             ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body, position = excluded.position;
         INSERT INTO entities (kind, key, position, body)
             SELECT kind, key, position, body FROM incoming WHERE body IS NOT NULL AND NOT placed
             ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body;",
    )?;
    Ok(next)
}

/// The connection thread's state: the configuration (to connect again),
/// its TLS, and the connection, when open.
struct Connection {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    client: Option<Client>,
}

/// A URL (`postgres://…?sslmode=…&sslrootcert=…`) or key-value string
/// (`host=… sslmode=…`) read as libpq reads these two options, and the
/// rest as rust-postgres reads it. TLS is used for `sslmode` `prefer`,
/// `require`, `verify-ca` and `verify-full`, and the server's certificate
/// is then always verified, name included (libpq's `verify-full`), against
/// `sslrootcert` or else the system's roots: an unverified TLS connection
/// guards against nothing a man in the middle does.
fn settings(url: &str, shown: &str) -> Result<(Config, Option<MakeRustlsConnect>), StorageError> {
    let bad = |m: String| StorageError::Database(format!("{shown}: {m}"));
    let (mut mode, mut root) = (None::<String>, None::<String>);
    // Takes out the two options rust-postgres does not read; keeps the rest.
    let mut ours = |option: &str| {
        match option.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => root = Some(v.to_string()),
            _ => return false,
        }
        true
    };
    let rest = match url.split_once('?') {
        Some((base, query)) if url.contains("://") => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.is_empty() && !ours(p))
                .collect();
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        _ if url.contains("://") => url.to_string(),
        _ => url
            .split_whitespace()
            .filter(|w| !ours(w))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mut config: Config = rest.parse().map_err(|e| bad(format!("{e}")))?;
    // Every wait has a deadline: connecting, a connection whose peer
    // vanished without a word (no FIN: a host or network gone), and — on
    // the session, `LOCK_TIMEOUT` — the writer lock a hung replica holds.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEADLINE);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(DEADLINE);
    }
    config.keepalives(true);
    config.keepalives_idle(DEADLINE);
    let tls_mode = match mode.as_deref() {
        None | Some("disable") => None,
        Some("prefer") => Some(postgres::config::SslMode::Prefer),
        Some("require" | "verify-ca" | "verify-full") => Some(postgres::config::SslMode::Require),
        Some(other) => {
            return Err(bad(format!(
                "sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"
            )));
        }
    };
    let Some(tls_mode) = tls_mode else {
        if root.is_some() {
            return Err(bad(
                "sslrootcert without sslmode: add sslmode=verify-full".into()
            ));
        }
        config.ssl_mode(postgres::config::SslMode::Disable);
        return Ok((config, None));
    };
    config.ssl_mode(tls_mode);
    let mut roots = rustls::RootCertStore::empty();
    match &root {
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            for c in certs {
                let c = c.map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        return Err(bad(
            "no certificate to verify the server with: name the CA with sslrootcert".into(),
        ));
    }
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok((config, Some(MakeRustlsConnect::new(client))))
}

impl Connection {
    /// The open connection, or a new one (its tables made if missing).
    fn client(&mut self) -> Result<&mut Client, postgres::Error> {
        let c = match self.client.take().filter(|c| !c.is_closed()) {
            Some(c) => c,
            None => {
                let mut c = match &self.tls {
                    Some(tls) => self.config.connect(tls.clone())?,
                    None => self.config.connect(NoTls)?,
                };
                c.batch_execute(SCHEMA)?;
                c.batch_execute(LOCK_TIMEOUT)?;
                c
            }
        };
        Ok(self.client.insert(c))
    }
}

/// A PostgreSQL store.
pub struct Postgres {
    /// The URL without its password, for messages.
    shown: String,
    jobs: mpsc::Sender<Job>,
}

/// An error and what caused it (a TLS handshake's reason is its cause).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// `url` with any password replaced, for messages and logs.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s && url.get(s + 3..at).is_some_and(|u| u.contains(':')) => {
            let userinfo = url.get(s + 3..at).unwrap_or_default();
            let user = userinfo.split(':').next().unwrap_or_default();
            format!(
                "{}{user}:***{}",
                url.get(..s + 3).unwrap_or_default(),
                url.get(at..).unwrap_or_default()
            )
        }
        _ => url.to_string(),
    }
}

fn database(shown: &str) -> impl Fn(postgres::Error) -> StorageError + '_ {
    move |e| {
        if let Some(db) = e.as_db_error() {
            use postgres::error::SqlState;
            let code = db.code();
            if *code == SqlState::DISK_FULL
                || *code == SqlState::OUT_OF_MEMORY
                || *code == SqlState::PROGRAM_LIMIT_EXCEEDED
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
            {
                return StorageError::Full(format!("{shown}: {db}"));
            }
            return StorageError::Database(format!("{shown}: {db}"));
        }
        StorageError::Database(format!("{shown}: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::redacted;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            redacted("postgres://app:s3cret@db:5432/d?sslmode=require"),
            "postgres://app:***@db:5432/d?sslmode=require"
        );
        assert_eq!(redacted("postgres://app@db/d"), "postgres://app@db/d");
        assert_eq!(redacted("host=db user=app"), "host=db user=app");
    }
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/database`,
    /// or `host=… dbname=…`) and makes the tables if they are missing.
    pub fn open(url: &str) -> Result<Postgres, StorageError> {
        let shown = redacted(url);
        let (config, tls) = settings(url, &shown)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || {
                let mut conn = Connection {
                    config,
                    tls,
                    client: None,
                };
                for job in rx {
                    job(&mut conn);
                }
            })
            .map_err(|e| StorageError::Database(format!("cannot start a thread: {e}")))?;
        let store = Postgres { shown, jobs };
        store.run(|_| Ok(()))?;
        Ok(store)
    }

    /// Runs `f` on the connection thread and waits for its answer.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = mpsc::channel();
        let shown = self.shown.clone();
        let job: Job = Box::new(move |conn| {
            let err = database(&shown);
            let r = match conn.client() {
                Ok(c) => f(c).map_err(&err),
                Err(e) => Err(StorageError::Database(format!(
                    "{shown}: cannot connect: {}",
                    e.as_db_error()
                        .map_or_else(|| with_causes(&e), ToString::to_string)
                ))),
            };
            let _ = tx.send(r);
        });
        self.jobs.send(job).map_err(|_| {
            StorageError::Database(format!("{}: the connection thread stopped", self.shown))
        })?;
        rx.recv().map_err(|_| {
            StorageError::Database(format!("{}: the connection thread stopped", self.shown))
        })?
    }
}

fn revision_of(v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| StorageError::Damaged("a negative revision".into()))
}

fn documents(
    c: &mut impl GenericClient,
    table: &'static str,
) -> Result<Vec<(String, String)>, postgres::Error> {
    // `table` is one of two names written here, never input.
    Ok(c.query(&format!("SELECT name, body FROM {table}"), &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

impl Storage for Postgres {
    fn load(&mut self) -> Result<Stored, StorageError> {
        let (revision, rows, settings, approvals) = self.run(|c| {
            // One snapshot of the database for all four reads.
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let revision: i64 = tx
                .query_one("SELECT COALESCE(MAX(revision), 0) FROM changes", &[])?
                .get(0);
            let rows: Vec<(String, String, String)> = tx
                .query(
                    "SELECT kind, key, body FROM entities ORDER BY position",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            let settings = documents(&mut tx, "settings")?;
            let approvals = documents(&mut tx, "approvals")?;
            tx.commit()?;
            Ok((revision, rows, settings, approvals))
        })?;
        let mut stored = Stored {
            revision: revision_of(revision)?,
            ..Stored::default()
        };
        stored.directory.format = portcullis_snapshots::source::SOURCE_FORMAT;
        for (kind, key, body) in rows {
            let k = Kind::from_name(&kind).ok_or_else(|| {
                StorageError::Damaged(format!("an entity of unknown kind {kind:?}"))
            })?;
            push_entity(&mut stored.directory, k, &body)
                .map_err(|e| StorageError::Damaged(format!("{kind} {key:?}: {e}")))?;
        }
        for (into, table, docs) in [
            (&mut stored.settings, "settings", settings),
            (&mut stored.approvals, "approvals", approvals),
        ] {
            for (name, body) in docs {
                let v = serde_json::from_str(&body)
                    .map_err(|e| StorageError::Damaged(format!("{table} {name:?}: {e}")))?;
                into.insert(name, v);
            }
        }
        Ok(stored)
    }

    fn commit(&mut self, commit: &Commit) -> Result<(), StorageError> {
        let commit = commit.clone();
        let expected = i64::try_from(commit.entry.revision).unwrap_or(i64::MAX);
        let moved = self.run(move |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_LOCK])?;
            let at: i64 = tx
                .query_one("SELECT COALESCE(MAX(revision), 0) FROM changes", &[])?
                .get(0);
            if at != expected - 1 {
                return Ok(Some(at));
            }
            let mut next: i64 = tx
                .query_opt("SELECT value FROM counters WHERE name = 'position'", &[])?
                .map_or(0, |r| r.get(0));
            if commit.rows.len() > COPY_ABOVE {
                next = copy_rows(&mut tx, &commit.rows, next)?;
            } else {
                let put = tx.prepare(
                    "INSERT INTO entities (kind, key, position, body) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
                )?;
                let place =
                    tx.prepare("UPDATE entities SET position = $3 WHERE kind = $1 AND key = $2")?;
                let remove = tx.prepare("DELETE FROM entities WHERE kind = $1 AND key = $2")?;
                for row in &commit.rows {
                    let kind = row.key.kind.name();
                    match &row.json {
                        Some(json) => {
                            let position = match row.position {
                                Some(p) => i64::try_from(p).unwrap_or(i64::MAX),
                                None => next,
                            };
                            tx.execute(&put, &[&kind, &row.key.key, &position, json])?;
                            if row.position.is_some() {
                                tx.execute(&place, &[&kind, &row.key.key, &position])?;
                            }
                            next = next.max(position.saturating_add(1));
                        }
                        None => {
                            tx.execute(&remove, &[&kind, &row.key.key])?;
                        }
                    }
                }
            }
            tx.execute(
                "INSERT INTO counters (name, value) VALUES ('position', $1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&next],
            )?;
            for (table, rows) in [
                ("settings", &commit.settings),
                ("approvals", &commit.approvals),
            ] {
                for (name, value) in rows {
                    match value {
                        Some(v) => tx.execute(
                            &format!(
                                "INSERT INTO {table} (name, body) VALUES ($1, $2)
                                 ON CONFLICT (name) DO UPDATE SET body = excluded.body"
                            ),
                            &[name, &v.to_string()],
                        ),
                        None => {
                            tx.execute(&format!("DELETE FROM {table} WHERE name = $1"), &[name])
                        }
                    }?;
                }
            }
            let e = &commit.entry;
            tx.execute(
                "INSERT INTO changes (revision, time, actor, via, operations, decisions,
                     request_id, idempotency_key, request_hash, response, replay)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &expected,
                    &e.time,
                    &e.actor,
                    &e.via,
                    &e.operations.to_string(),
                    &e.decisions.to_string(),
                    &e.request_id,
                    &e.idempotency_key,
                    &commit.request_hash,
                    &commit.response,
                    &commit.replay,
                ],
            )?;
            // Followers waiting on LISTEN hear of it at once.
            tx.execute(
                "SELECT pg_notify('portcullis_directory', $1)",
                &[&expected.to_string()],
            )?;
            tx.commit()?;
            Ok(None)
        })?;
        match moved {
            None => Ok(()),
            Some(at) => Err(StorageError::Moved(revision_of(at)?)),
        }
    }

    fn remembered(&mut self, key: &str) -> Result<Option<Remembered>, StorageError> {
        let key = key.to_string();
        self.run(move |c| {
            Ok(c.query_opt(
                "SELECT request_hash, response, revision FROM changes WHERE idempotency_key = $1",
                &[&key],
            )?
            .map(|r| Remembered {
                request_hash: r.get(0),
                response: r.get(1),
                revision: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            }))
        })
    }

    fn changes(&mut self, after: u64, limit: usize) -> Result<Vec<LogEntry>, StorageError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.run(move |c| {
            Ok(c.query(
                "SELECT revision, time, actor, via, operations, decisions, request_id, idempotency_key
                 FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2",
                &[&after, &limit],
            )?
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, String>(4),
                    r.get::<_, String>(5),
                    r.get::<_, Option<String>>(6),
                    r.get::<_, Option<String>>(7),
                )
            })
            .collect::<Vec<_>>())
        })?;
        rows.into_iter()
            .map(
                |(revision, time, actor, via, ops, decisions, request_id, idempotency_key)| {
                    let parse = |s: &str| {
                        serde_json::from_str(s)
                            .map_err(|e| StorageError::Damaged(format!("a log entry: {e}")))
                    };
                    Ok(LogEntry {
                        revision: revision_of(revision)?,
                        time,
                        actor,
                        via,
                        operations: parse(&ops)?,
                        decisions: parse(&decisions)?,
                        request_id,
                        idempotency_key,
                    })
                },
            )
            .collect()
    }

    fn acquire_writer(&mut self) -> Result<(), StorageError> {
        self.run(|c| {
            c.execute("SELECT pg_advisory_lock($1)", &[&WRITER_LOCK])
                .map(|_| ())
        })
    }

    fn release_writer(&mut self) {
        // Advisory locks stack per session: release every hold this
        // session has (a broken connection released them already).
        let _ = self.run(|c| {
            c.execute("SELECT pg_advisory_unlock_all()", &[])
                .map(|_| ())
        });
    }

    fn replays(&mut self, after: u64, limit: usize) -> Result<Option<Vec<Replayed>>, StorageError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.run(move |c| {
            Ok(c.query(
                "SELECT revision, replay FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2",
                &[&after, &limit],
            )?
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, Option<String>>(1)))
            .collect::<Vec<_>>())
        })?;
        rows.into_iter()
            .map(|(r, replay)| Ok((revision_of(r)?, replay)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn stored_revision(&mut self) -> Result<Option<u64>, StorageError> {
        let r = self.run(|c| {
            Ok(
                c.query_one("SELECT COALESCE(MAX(revision), 0) FROM changes", &[])?
                    .get::<_, i64>(0),
            )
        })?;
        revision_of(r).map(Some)
    }
}

/// The publishing lease, for several replicas on one database: exactly one
/// publishes at a time. A session advisory lock held on a connection of
/// its own: PostgreSQL releases it when that connection ends — the
/// replica's process died, or its connection broke — and another replica,
/// trying every `every`, takes it. Before each publication the holder
/// fences it ([`Lease::fence`]): the lock is checked on the lease's own
/// connection and the revision recorded as published, in one transaction,
/// so a replica that lost the lease without noticing yet publishes
/// nothing, and no revision is published below one already published.
pub struct Lease {
    jobs: mpsc::Sender<Job>,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The advisory lock of the lease: "PCDP", Portcullis directory publisher.
const PUBLISHER_LOCK: i64 = 0x5043_4450;

/// What [`Lease::fence`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// This replica holds the lease, and `revision` is now the last one
    /// published: publish it.
    Publish,
    /// A later revision was published already: skip this one.
    Published,
    /// The lease is not this replica's (or the database cannot say).
    NotLeading,
}

impl Lease {
    /// Starts trying to take the lease on `url`, every `every`.
    pub fn start(url: &str, every: std::time::Duration) -> Result<Lease, StorageError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let shown = redacted(url);
        let (config, tls) = settings(url, &shown)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let held = std::sync::Arc::new(AtomicBool::new(false));
        let h = held.clone();
        std::thread::Builder::new()
            .name("publish-lease".into())
            .spawn(move || {
                let mut conn = Connection {
                    config,
                    tls,
                    client: None,
                };
                loop {
                    // Fences asked meanwhile run on this connection.
                    match rx.recv_timeout(every) {
                        Ok(job) => {
                            job(&mut conn);
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                    }
                    let had = conn.client.as_ref().is_some_and(|c| !c.is_closed());
                    let now = conn.client().and_then(|c| {
                        if had && h.load(Ordering::SeqCst) {
                            // Still ours while this connection lives.
                            c.simple_query("SELECT 1").map(|_| true)
                        } else {
                            c.query_one("SELECT pg_try_advisory_lock($1)", &[&PUBLISHER_LOCK])
                                .map(|r| r.get::<_, bool>(0))
                        }
                    });
                    let leading = match now {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(error = %e, "the publishing lease's connection failed");
                            conn.client = None;
                            false
                        }
                    };
                    if leading != h.swap(leading, Ordering::SeqCst) {
                        tracing::info!(leading, "the publishing lease changed hands");
                    }
                }
            })
            .map_err(|e| StorageError::Database(format!("cannot start a thread: {e}")))?;
        Ok(Lease { jobs, held })
    }

    /// Whether this replica holds the lease, as last checked.
    pub fn held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Checks the lease on its own connection and records `revision` as
    /// published, in one transaction.
    pub fn fence(&self, revision: u64) -> Fence {
        if !self.held() {
            return Fence::NotLeading;
        }
        let revision = i64::try_from(revision).unwrap_or(i64::MAX);
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |conn| {
            let r = conn.client().and_then(|c| {
                let mut t = c.transaction()?;
                t.batch_execute(
                    "CREATE TABLE IF NOT EXISTS publications (name TEXT PRIMARY KEY, revision BIGINT NOT NULL)",
                )?;
                // An advisory lock on one bigint is (classid, objid) =
                // (high, low) halves, objsubid 1.
                let (high, low) = (PUBLISHER_LOCK >> 32, PUBLISHER_LOCK & 0xffff_ffff);
                let ours: i64 = t
                    .query_one(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                         AND classid::bigint = $1 AND objid::bigint = $2
                         AND objsubid = 1 AND pid = pg_backend_pid()",
                        &[&high, &low],
                    )?
                    .get(0);
                if ours == 0 {
                    return Ok(Fence::NotLeading);
                }
                let advanced = t.execute(
                    "INSERT INTO publications (name, revision) VALUES ('published', $1)
                     ON CONFLICT (name) DO UPDATE SET revision = excluded.revision
                     WHERE publications.revision <= excluded.revision",
                    &[&revision],
                )?;
                t.commit()?;
                Ok(if advanced == 1 {
                    Fence::Publish
                } else {
                    Fence::Published
                })
            });
            let _ = tx.send(r.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot fence a publication");
                Fence::NotLeading
            }));
        });
        if self.jobs.send(job).is_err() {
            return Fence::NotLeading;
        }
        rx.recv().unwrap_or(Fence::NotLeading)
    }
}
