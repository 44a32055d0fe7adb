//! The configuration compiled once into the value the server runs on:
//! routes built, identity keys and JWKS read, tokens and signing keys read,
//! upstream URLs parsed. Parse, don't validate: nothing here is read or
//! checked a second time at start-up, and `portcullis serve --check`
//! compiles exactly what `serve` would run.

use portcullis_snapshots::signature::{SigningKey, VerifyingKey};
use std::sync::Arc;

use thiserror::Error;

use crate::config::{ConfigError, GatewayConfig, Tokens};
use crate::stage::assertion::Assertions;
use crate::stage::forward::UpstreamSpecs;
use crate::stage::identity::Identity;
use crate::stage::route_table::{PathRules, RouteTable};
use crate::store::StoreClient;
use crate::tls::Tls;

/// Why a configuration cannot run.
#[derive(Debug, Error)]
pub enum CompileError {
    /// The configuration itself is invalid (every problem listed).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// A file it names (token, key, JWKS) could not be read or used.
    #[error("{0}")]
    Unreadable(String),
}

/// A configuration ready to serve.
pub struct CompiledConfig {
    /// The settings read as they are (limits, timeouts, sections).
    pub config: GatewayConfig,
    /// The route table, with the path rules of `[server]`.
    pub routes: RouteTable,
    /// The credential verifier, keys loaded.
    pub identity: Identity,
    /// The admin and decision tokens.
    pub tokens: Tokens,
    /// The upstreams, URLs parsed; each worker connects its own pools.
    pub upstreams: UpstreamSpecs,
    /// `snapshot.trusted_keys`.
    pub trusted_keys: Vec<VerifyingKey>,
    /// `snapshot.browser_signing_key`.
    pub browser_signer: Option<SigningKey>,
    /// The client for `snapshot.poll_url` (TLS roots and headers read).
    pub store: Option<StoreClient>,
    /// TLS of the proxy, admin and decision listeners, certificates loaded.
    pub tls: TlsListeners,
    /// `[assertion]`, keys loaded.
    pub assertions: Option<Assertions>,
}

/// Each listener's TLS, when it has a `tls` section.
#[derive(Clone, Default)]
pub struct TlsListeners {
    /// `[server.tls]`.
    pub proxy: Option<Arc<Tls>>,
    /// `[admin.tls]`.
    pub admin: Option<Arc<Tls>>,
    /// `[decision.tls]`.
    pub decision: Option<Arc<Tls>>,
}

impl CompiledConfig {
    /// Validates `config`, reads and builds everything it names, and
    /// lists every problem at once. Token files that cannot be read are
    /// [`CompileError::Unreadable`] (the start stops with exit code 5);
    /// everything else is [`CompileError::Invalid`].
    pub fn compile(config: GatewayConfig) -> Result<Self, CompileError> {
        let mut problems = config.validate().err().unwrap_or_default();
        let mut problem = |p: String| problems.push(p);
        let routes = RouteTable::new(config.routes.clone())
            .map_err(|e| problem(format!("routes: {e}")))
            .ok();
        let identity = Identity::new(config.identity.clone())
            .map_err(|e| problem(format!("identity: {e}")))
            .ok();
        let upstreams = UpstreamSpecs::parse(&config.upstreams)
            .map_err(&mut problem)
            .ok();
        let trusted_keys = config
            .trusted_keys()
            .map_err(|e| problem(format!("snapshot.trusted_keys: {e}")))
            .ok();
        let browser_signer = match &config.snapshot.browser_signing_key {
            Some(path) => crate::config::read_signing_key(path)
                .map(Some)
                .map_err(|e| problem(format!("snapshot.browser_signing_key: {e}")))
                .ok(),
            None => Some(None),
        };
        let store = match &config.snapshot.poll_url {
            Some(_) => StoreClient::new(
                config.snapshot.poll_ca_file.as_deref(),
                "snapshot.poll_ca_file",
                &config.snapshot.poll_headers,
                crate::config::ms(config.snapshot.poll_timeout_ms),
            )
            .map(Some)
            .map_err(&mut problem)
            .ok(),
            None => Some(None),
        };
        let assertions = match &config.assertion {
            Some(a) => match Assertions::new(a) {
                Ok(a) => Some(a),
                Err(p) => {
                    problems.extend(p);
                    None
                }
            },
            None => None,
        };
        let mut tls = TlsListeners::default();
        for (listener, settings, slot) in [
            ("proxy", &config.server.tls, &mut tls.proxy),
            ("admin", &config.admin.tls, &mut tls.admin),
            ("decision", &config.decision.tls, &mut tls.decision),
        ] {
            if let Some(settings) = settings {
                match Tls::new(listener, settings) {
                    Ok(t) => *slot = Some(Arc::new(t)),
                    Err(p) => problems.extend(p),
                }
            }
        }
        let (
            Some(routes),
            Some(identity),
            Some(upstreams),
            Some(trusted_keys),
            Some(browser_signer),
            Some(store),
        ) = (
            routes,
            identity,
            upstreams,
            trusted_keys,
            browser_signer,
            store,
        )
        else {
            return Err(invalid(problems));
        };
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let tokens = config.read_tokens().map_err(CompileError::Unreadable)?;
        let routes = routes.with_path_rules(PathRules {
            allow_path_parameters: config.server.allow_path_parameters,
        });
        Ok(CompiledConfig {
            config,
            routes,
            identity,
            tokens,
            upstreams,
            trusted_keys,
            browser_signer,
            store,
            tls,
            assertions,
        })
    }
}

impl CompileError {
    /// The same error, naming the configuration file it is about.
    pub fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            CompileError::Invalid(ConfigError::Invalid { problems, .. }) => {
                CompileError::Invalid(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    problems,
                })
            }
            other => other,
        }
    }
}

fn invalid(problems: Vec<String>) -> CompileError {
    CompileError::Invalid(ConfigError::Invalid {
        path: "(configuration)".into(),
        problems,
    })
}
