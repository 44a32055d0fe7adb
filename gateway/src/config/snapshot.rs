//! `[snapshot]`: where snapshots come from, and what is accepted.

use std::path::PathBuf;

use serde::Deserialize;

use super::urls::parse_store_url;

/// `[snapshot]`: the sources of snapshots. Pushes to the admin listener
/// are always possible; a file and a URL are optional.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// A snapshot file loaded at start-up.
    pub file: Option<PathBuf>,
    /// Reload the file whenever it changes.
    pub watch: bool,
    /// An `http://` or `https://` URL polled with `If-None-Match`: a
    /// snapshot, or a store's manifest (`latest.json`, `snapshot publish`).
    pub poll_url: Option<String>,
    /// CA certificates (PEM) to trust for an `https://` store instead of
    /// the system's (a private CA).
    pub poll_ca_file: Option<PathBuf>,
    /// Headers sent with every request to the store (a private bucket's
    /// credentials, e.g. `Authorization`). Never logged.
    pub poll_headers: std::collections::BTreeMap<String, String>,
    /// Polling period.
    pub poll_interval_ms: u64,
    /// Time one fetch from the store may take as a whole — connecting,
    /// TLS, headers and the whole body — before it is abandoned (logged,
    /// counted, retried next period). Large enough for the largest
    /// snapshot over the slowest link the store is reached by.
    pub poll_timeout_ms: u64,
    /// Largest snapshot accepted from any source, in bytes.
    pub max_bytes: u64,
    /// Public keys (SPKI PEM files, `portcullis snapshot keygen`) whose
    /// signatures are accepted. A snapshot signed by any other key is
    /// refused from every source.
    pub trusted_keys: Vec<PathBuf>,
    /// Refuse unsigned snapshots from every source (needs `trusted_keys`).
    pub require_signature: bool,
    /// Where the revision last accepted is kept across restarts, so that an
    /// older snapshot — validly signed or not — cannot roll the gateway back
    /// (only a forced push can).
    pub state_file: Option<PathBuf>,
    /// Private key (PKCS#8 PEM) that signs the per-principal snapshots of
    /// `GET /-/snapshot/me`, for browsers that verify them
    /// (`PolicyEngine.loadAsync(bytes, [public key])`).
    pub browser_signing_key: Option<PathBuf>,
    /// Memory for principals' views (`GET /-/snapshot/me`), in MiB: views
    /// kept between requests and over pushes that do not change them.
    /// Each view counts its size plus 4 KiB, so this bounds their number
    /// too (256 MiB: 65,536 views at most).
    pub browser_view_cache_mb: u64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            file: None,
            watch: true,
            poll_url: None,
            poll_ca_file: None,
            poll_headers: Default::default(),
            poll_interval_ms: 10_000,
            poll_timeout_ms: 60_000,
            max_bytes: 256 * 1024 * 1024,
            trusted_keys: Vec::new(),
            require_signature: false,
            state_file: None,
            browser_signing_key: None,
            browser_view_cache_mb: 256,
        }
    }
}

impl SnapshotConfig {
    /// Its own problems (whether there is any source at all is checked by
    /// the whole configuration: pushes are the admin section's).
    pub(super) fn problems(&self, out: &mut Vec<String>) {
        let snap = self;
        for (name, v) in [
            ("snapshot.poll_interval_ms", snap.poll_interval_ms),
            ("snapshot.poll_timeout_ms", snap.poll_timeout_ms),
        ] {
            if v == 0 {
                out.push(format!("{name}: must be greater than 0"));
            }
        }
        if snap.require_signature && snap.trusted_keys.is_empty() {
            out.push(
                "snapshot.require_signature: list the public keys to trust in snapshot.trusted_keys".into(),
            );
        }
        if let Some(state) = &snap.state_file
            && let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            out.push(format!(
                "snapshot.state_file {}: the directory {} does not exist",
                state.display(),
                dir.display()
            ));
        }
        if let Some(url) = &snap.poll_url
            && let Err(e) = parse_store_url(url)
        {
            out.push(format!("snapshot.poll_url: {e}"));
        }
        let https = snap
            .poll_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        if snap.poll_ca_file.is_some() && !https {
            out.push(
                "snapshot.poll_ca_file: trusted only for an https:// snapshot.poll_url".into(),
            );
        }
        if !snap.poll_headers.is_empty() && snap.poll_url.is_none() {
            out.push("snapshot.poll_headers: set snapshot.poll_url too".into());
        }
    }
}
