//! `[decision]`: the decision endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::tls::TlsConfig;
use super::tokens::check_token;

/// `[decision]`: the decision endpoint — `POST /v1/check`,
/// `POST /v1/check/batch` and the nginx `auth_request`, Traefik ForwardAuth
/// and Envoy ext_authz adapters — on a listener of its own, under a path
/// prefix of the proxy listener, or both. Off unless one is given.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionConfig {
    /// Its own listener (every worker accepts on it).
    pub listen: Option<SocketAddr>,
    /// Mounted on the proxy listener under this prefix, e.g. `/-/authz`.
    pub path_prefix: Option<String>,
    /// Bearer token required by `/v1/check` and `/v1/check/batch` (the
    /// adapters carry the end user's own credentials instead).
    pub token: Option<String>,
    /// File holding that token (instead of `token`).
    pub token_file: Option<PathBuf>,
    /// Most checks in one `/v1/check/batch` request.
    pub max_batch: usize,
    /// `[decision.tls]`: TLS on the decision listener.
    pub tls: Option<TlsConfig>,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            listen: None,
            path_prefix: None,
            token: None,
            token_file: None,
            max_batch: 1000,
            tls: None,
        }
    }
}

impl DecisionConfig {
    /// Its own problems (where it listens is checked against the other
    /// listeners by the whole configuration).
    pub(super) fn problems(&self, out: &mut Vec<String>) {
        let d = self;
        check_token(
            "decision",
            "it guards the decision endpoint",
            &d.token,
            &d.token_file,
            out,
        );
        if let Some(prefix) = &d.path_prefix
            && (!prefix.starts_with('/')
                || prefix.ends_with('/')
                || prefix.contains(['?', '#', '%']))
        {
            out.push(format!(
                "decision.path_prefix: {prefix:?} must start with `/`, not end with one, and hold no `?`, `#` or `%` (e.g. \"/-/authz\")"
            ));
        }
        if d.max_batch == 0 {
            out.push("decision.max_batch: must be at least 1".into());
        }
        if d.tls.is_some() && d.listen.is_none() {
            out.push("decision.tls: needs decision.listen (the decision endpoint on the proxy listener uses server.tls)".into());
        }
    }
}
