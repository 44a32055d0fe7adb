//! `directory serve --config FILE`: the service's TOML, validated as a
//! whole before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_gateway::config::IdentityConfig;
use serde::Deserialize;

/// The service's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The store: a SQLite file (created if missing), or a PostgreSQL
    /// URL (`postgres://user:password@host/db`; its tables are made if
    /// missing) for several replicas on one database.
    pub database: PathBuf,
    /// How callers are identified: the gateway's `[identity]` section,
    /// verbatim.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// The most the database may hold, in MiB (a quota; none by default):
    /// past it writes are refused with 503 `store_full`, as on a full disk.
    #[serde(default)]
    pub max_database_mb: Option<u64>,
    /// Largest request body, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Where committed revisions go.
    #[serde(default)]
    pub publish: PublishConfig,
    /// Origins whose pages may call the API from a browser (CORS), such as
    /// a console at `https://console.example.com`; none by default.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// TLS on the listener, configured as a gateway listener's
    /// (`docs/gateway.md`, "TLS"): certificates reloaded when their files
    /// change; with `client_ca`, client certificates verified (and checked
    /// again on open connections when the trust reloads or they expire),
    /// and `client_principals` naming the service accounts they are.
    #[serde(default)]
    pub tls: Option<portcullis_gateway::config::TlsConfig>,
}

/// Publishing committed revisions.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// A store directory, in the layout `snapshot publish` writes
    /// (snapshots, deltas, `latest.json`), which gateways poll.
    #[serde(default)]
    pub store_dir: Option<PathBuf>,
    /// Sign snapshots and deltas with this Ed25519 private key (PEM).
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// How long ordinary changes wait to be published together, in
    /// milliseconds (at most 250 by default). Urgent ones — anything that
    /// takes access away — are published at once.
    #[serde(default = "default_coalesce")]
    pub coalesce_ms: u64,
    /// Deltas the manifest lists (at least those leading from its
    /// snapshot).
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// The store gets a full snapshot every this many publications (and
    /// whenever the strings change); in between, a delta and the manifest
    /// — hundreds of bytes rather than the whole directory. 1: a full
    /// snapshot every time.
    #[serde(default = "default_full_every")]
    pub full_every: u64,
    /// Gateways to push every revision to (their admin APIs), besides or
    /// instead of the store.
    #[serde(default)]
    pub gateways: Vec<crate::push::PushTarget>,
    /// How long one push may take as a whole, in milliseconds.
    #[serde(default = "default_push_timeout")]
    pub push_timeout_ms: u64,
    /// Replicas on one PostgreSQL: how often one without the publishing
    /// lease tries to take it, in milliseconds (default 250) — with the
    /// time PostgreSQL takes to see the publisher's connection end, the
    /// bound on a takeover.
    #[serde(default = "default_lease_check")]
    pub lease_check_ms: u64,
    /// Replicas on one PostgreSQL: how often each looks for the others'
    /// commits, in milliseconds (default 100). A write always reads the
    /// store's revision first, whatever this says.
    #[serde(default = "default_follow")]
    pub follow_ms: u64,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            store_dir: None,
            signing_key: None,
            coalesce_ms: default_coalesce(),
            keep: default_keep(),
            full_every: default_full_every(),
            gateways: Vec::new(),
            push_timeout_ms: default_push_timeout(),
            lease_check_ms: default_lease_check(),
            follow_ms: default_follow(),
        }
    }
}

impl PublishConfig {
    /// The coalescing window.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.coalesce_ms)
    }
}

fn default_max_body() -> usize {
    4 << 20
}
fn default_coalesce() -> u64 {
    250
}
fn default_keep() -> usize {
    10
}
fn default_full_every() -> u64 {
    10
}
fn default_push_timeout() -> u64 {
    5_000
}

fn default_lease_check() -> u64 {
    250
}

fn default_follow() -> u64 {
    100
}

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is not a configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its place.
        message: String,
    },
}

impl DirectoryConfig {
    /// Reads and checks `path`. Relative paths in it are relative to the
    /// file's directory.
    pub fn read(path: &Path) -> Result<DirectoryConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c: DirectoryConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if !crate::storage::is_postgres(&c.database) {
            rebase(&mut c.database);
        }
        if let Some(p) = c.publish.store_dir.as_mut() {
            rebase(p);
        }
        if let Some(p) = c.publish.signing_key.as_mut() {
            rebase(p);
        }
        Ok(c)
    }
}
