//! `gateway.toml`: the gateway's configuration, parsed strictly (unknown
//! keys are errors) and checked as a whole before anything starts, so a bad
//! configuration is one clear error at start-up rather than a surprise
//! under load. The reference is `docs/gateway.md`.
//!
//! One file a section, each with its own slice of the checks; what spans
//! sections (listeners that collide, routes naming upstreams, a source of
//! snapshots at all) is checked here. The configuration is the bottom of
//! the gateway: it imports nothing of the gateway, and the stages read
//! their sections from it.

mod admin;
mod assertion;
mod decision;
mod engine;
mod identity;
mod keys;
mod log;
mod route;
mod server;
mod snapshot;
mod tls;
mod tokens;
mod upstream;
mod urls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

pub use admin::AdminConfig;
pub use assertion::{AssertionConfig, AssertionKey};
pub use decision::DecisionConfig;
pub use engine::EngineConfig;
pub use identity::{IdentityConfig, JwtConfig, KeyConfig, ServiceAccountMapping, SupportSubject};
pub use keys::{read_public_key, read_signing_key, read_trusted_key};
pub use log::LogConfig;
pub use route::RouteSpec;
pub use server::ServerConfig;
pub use snapshot::SnapshotConfig;
pub use tls::{CertificatePair, ClientCertificates, TlsConfig};
pub use tokens::Tokens;
pub use upstream::{UpstreamConfig, UpstreamProtocol};
pub use urls::{parse_http_url, parse_store_url};

/// Why the configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The configuration parses but is not usable; every problem is listed.
    #[error("{}: invalid configuration:\n  - {}", .path.display(), .problems.join("\n  - "))]
    Invalid {
        /// The file (or `(built in)`).
        path: PathBuf,
        /// Every problem, with the key it is about.
        problems: Vec<String>,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listeners, limits and timeouts.
    #[serde(default)]
    pub server: ServerConfig,
    /// The admin listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Where snapshots come from.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Limits of the WebAssembly engine.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Credentials.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Upstreams by name.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// The route table; first match wins, no match is denied.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Logs.
    #[serde(default)]
    pub log: LogConfig,
    /// The decision endpoint for other gateways and services.
    #[serde(default)]
    pub decision: DecisionConfig,
    /// `[assertion]`: the keys that sign `X-Portcullis-Assertion` for
    /// routes with `assertion = true`.
    #[serde(default)]
    pub assertion: Option<AssertionConfig>,
}

/// Milliseconds as a duration.
pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl GatewayConfig {
    /// Reads and parses a configuration file, paths in it made relative
    /// to it. Checking it is `CompiledConfig::compile`'s job, which lists
    /// every problem of the settings and of the files they name at once.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Parses TOML text (no checks beyond the schema).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Relative paths in the file are relative to the file.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut self.snapshot.file {
            fix(p);
        }
        if let Some(p) = &mut self.admin.token_file {
            fix(p);
        }
        if let Some(p) = &mut self.decision.token_file {
            fix(p);
        }
        if let Some(jwt) = &mut self.identity.jwt {
            if let Some(p) = &mut jwt.jwks_file {
                fix(p);
            }
            for k in &mut jwt.keys {
                if let Some(p) = &mut k.pem_file {
                    fix(p);
                }
            }
        }
        let d = &mut self.log.decisions;
        if !matches!(d.as_str(), "stdout" | "stderr" | "off") && Path::new(d).is_relative() {
            *d = base.join(&*d).to_string_lossy().into_owned();
        }
    }

    /// Checks the settings themselves and lists every problem. Files they
    /// name are read, and routes and keys built, once, by
    /// `CompiledConfig::compile`, which reports its problems with these.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let out = &mut problems;
        self.server.problems(out);
        self.admin.problems(out);
        self.decision.problems(out);
        self.snapshot.problems(out);
        self.engine.problems(out);
        for (name, tls) in [
            ("server.tls", &self.server.tls),
            ("admin.tls", &self.admin.tls),
            ("decision.tls", &self.decision.tls),
        ] {
            if let Some(t) = tls {
                t.problems(name, out);
            }
        }
        for (name, u) in &self.upstreams {
            u.problems(name, out);
        }
        match &self.assertion {
            Some(a) => a.problems(out),
            None => {
                for r in self.routes.iter().filter(|r| r.assertion) {
                    out.push(format!(
                        "routes: {} has assertion = true, but there is no [assertion] section with a key to sign with",
                        r.label()
                    ));
                }
            }
        }
        // What spans sections: listeners, a source of snapshots, routes.
        let (s, d) = (&self.server, &self.decision);
        if s.listen == self.admin.listen && s.listen.port() != 0 {
            out.push(format!(
                "admin.listen: {} is also server.listen; the admin listener needs its own address",
                s.listen
            ));
        }
        if let Some(listen) = d.listen
            && listen.port() != 0
            && (listen == s.listen || listen == self.admin.listen)
        {
            out.push(format!(
                "decision.listen: {listen} is already the proxy or admin listener; use a path_prefix to share the proxy listener"
            ));
        }
        if self.snapshot.file.is_none()
            && self.snapshot.poll_url.is_none()
            && self.admin.token.is_none()
            && self.admin.token_file.is_none()
        {
            out.push(
                "snapshot: no source: set snapshot.file, snapshot.poll_url, or admin.token to accept pushes"
                    .into(),
            );
        }
        if self.routes.is_empty() {
            out.push(
                "routes: none configured: every request would be denied; add [[routes]]".into(),
            );
        }
        for (i, r) in self.routes.iter().enumerate() {
            if !self.upstreams.contains_key(&r.upstream) {
                out.push(format!(
                    "routes[{i}] ({}): upstream {:?} is not defined under [upstreams]",
                    r.path, r.upstream
                ));
            }
            if policy_wasm::action::Action::parse(&r.action).is_none() {
                out.push(format!(
                    "routes[{i}] ({}): unknown action {:?} (see policy-wasm/README.md)",
                    r.path, r.action
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Worker threads: `server.workers`, or one per core. Each has its own
    /// engine instance of every snapshot.
    pub fn worker_count(&self) -> usize {
        self.server.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
    }

    /// The admin and decision tokens, each read once (from its file when
    /// configured there). An unreadable or short token file is an error:
    /// an endpoint whose token could not be read must not start open.
    pub fn read_tokens(&self) -> Result<Tokens, String> {
        Ok(Tokens {
            admin: tokens::read_token("admin", &self.admin.token, &self.admin.token_file)?,
            decision: tokens::read_token(
                "decision",
                &self.decision.token,
                &self.decision.token_file,
            )?,
        })
    }
}

impl GatewayConfig {
    /// The public keys of `snapshot.trusted_keys` (checked by `validate`).
    pub fn trusted_keys(
        &self,
    ) -> Result<Vec<portcullis_snapshots::signature::VerifyingKey>, String> {
        self.snapshot
            .trusted_keys
            .iter()
            .map(|p| read_trusted_key(p))
            .collect()
    }
}
