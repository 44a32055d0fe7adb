//! `[admin]`: the admin listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::tls::TlsConfig;
use super::tokens::check_token;

/// `[admin]`: health, readiness, metrics and snapshot pushes, on a listener
/// of their own so they are never exposed with the proxy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener.
    pub listen: SocketAddr,
    /// Bearer token required by `PUT /-/snapshot`.
    pub token: Option<String>,
    /// File holding that token (instead of `token`).
    pub token_file: Option<PathBuf>,
    /// `[admin.tls]`: TLS on the admin listener.
    pub tls: Option<TlsConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
            token_file: None,
            tls: None,
        }
    }
}

impl AdminConfig {
    /// Its own problems.
    pub(super) fn problems(&self, out: &mut Vec<String>) {
        check_token(
            "admin",
            "it guards snapshot pushes",
            &self.token,
            &self.token_file,
            out,
        );
    }
}
