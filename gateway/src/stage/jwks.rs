//! The identity provider's signing keys, fetched from its `jwks_uri`
//! (given, or found by OIDC discovery from its issuer) and kept fresh.
//!
//! Fetched once at start — a gateway that cannot read them does not start
//! — then every `jwks_refresh_s`, and early when a token names a `kid` the
//! set lacks (a rotation), but never more than once per
//! `jwks_min_refresh_s`: forged tokens with random `kid`s cost the provider
//! nothing. A failed refresh keeps the last good set, logged and counted.
//!
//! Every fetch is bounded as a whole by `jwks_timeout_ms` (connect, TLS,
//! headers, body): a provider or middlebox that never answers costs one
//! deadline, then the loop goes on — a key the provider withdrew stops
//! verifying at the next refresh that reaches it, not when the process
//! restarts. An unknown `kid` arriving while a fetch hangs starts a fresh
//! one once the least interval has passed (issue #23).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, watch};

use super::keys::{Key, keys_of_jwks};
use crate::config::JwtConfig;
use crate::store::{FetchError, StoreClient, loggable};

/// Where the keys are.
enum Source {
    /// A JWK Set URL.
    Url(http::Uri),
    /// An OIDC issuer: its discovery document names the JWK Set.
    Issuer(String),
}

/// Largest discovery document or JWK Set read.
const MAX_BYTES: usize = 1 << 20;

/// Why the keys could not be fetched.
#[derive(Debug)]
pub struct KeysUnavailable {
    /// Which fetch was abandoned at its deadline (`jwks`,
    /// `oidc_discovery`), if that is why.
    pub timed_out: Option<&'static str>,
    /// What went wrong, for logs.
    pub message: String,
}

impl std::fmt::Display for KeysUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for KeysUnavailable {
    fn from(message: String) -> Self {
        KeysUnavailable {
            timed_out: None,
            message,
        }
    }
}

/// How one refresh ended, for the metrics.
#[derive(Clone, Copy, Debug)]
pub struct Refreshed {
    /// A new set serves.
    pub ok: bool,
    /// Keys serving now.
    pub keys: usize,
    /// The fetch abandoned at its deadline, if any.
    pub timed_out: Option<&'static str>,
}

/// Keys from the provider, and when they were last asked for.
pub struct RemoteKeys {
    source: Source,
    client: StoreClient,
    keys: ArcSwap<Vec<Key>>,
    wake: Notify,
    last_attempt: Mutex<Option<Instant>>,
    refresh: Duration,
    min_interval: Duration,
    /// Bumped whenever a new set serves: tokens verified against an older
    /// set are verified again (a key the provider dropped stops working
    /// at once, not when the cached tokens expire).
    generation: std::sync::atomic::AtomicU64,
}

fn https(url: &str, what: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("identity.jwt.{what}: {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(format!(
            "identity.jwt.{what}: {url:?}: keys come over https:// only"
        ));
    }
    Ok(uri)
}

impl RemoteKeys {
    /// The provider of `jwt`, if it names one (`jwks_url` or
    /// `oidc_issuer`); nothing fetched yet.
    pub fn new(jwt: &JwtConfig) -> Result<Option<Arc<RemoteKeys>>, String> {
        let source = match (&jwt.jwks_url, &jwt.oidc_issuer) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err("identity.jwt: give jwks_url or oidc_issuer, not both".into());
            }
            (Some(url), None) => Source::Url(https(url, "jwks_url")?),
            (None, Some(issuer)) => {
                https(issuer, "oidc_issuer")?;
                Source::Issuer(issuer.trim_end_matches('/').to_string())
            }
        };
        if jwt.jwks_refresh_s == 0 || jwt.jwks_min_refresh_s == 0 {
            return Err(
                "identity.jwt.jwks_refresh_s and jwks_min_refresh_s: must be greater than 0".into(),
            );
        }
        if jwt.jwks_timeout_ms == 0 {
            return Err("identity.jwt.jwks_timeout_ms: must be greater than 0".into());
        }
        let client = StoreClient::new(
            jwt.jwks_ca_file.as_deref(),
            "identity.jwt.jwks_ca_file",
            &Default::default(),
            Duration::from_millis(jwt.jwks_timeout_ms),
        )?;
        Ok(Some(Arc::new(RemoteKeys {
            source,
            client,
            keys: ArcSwap::from_pointee(Vec::new()),
            wake: Notify::new(),
            last_attempt: Mutex::new(None),
            refresh: Duration::from_secs(jwt.jwks_refresh_s),
            min_interval: Duration::from_secs(jwt.jwks_min_refresh_s),
            generation: std::sync::atomic::AtomicU64::new(0),
        })))
    }

    /// The keys serving now.
    pub(crate) fn keys(&self) -> Arc<Vec<Key>> {
        self.keys.load_full()
    }

    /// Which set serves (changes with every fetched set).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A token named a `kid` the set lacks: fetch again soon, unless a
    /// fetch was tried within the last `jwks_min_refresh_s`.
    pub(crate) fn unknown_kid(&self) {
        let recent = self
            .last_attempt
            .lock()
            .map(|t| t.is_some_and(|t| t.elapsed() < self.min_interval))
            .unwrap_or(true);
        if !recent {
            self.wake.notify_one();
        }
    }

    async fn get_json(
        &self,
        uri: &http::Uri,
        what: &'static str,
    ) -> Result<serde_json::Value, KeysUnavailable> {
        let answer =
            self.client
                .fetch(uri, None, MAX_BYTES)
                .await
                .map_err(|e| KeysUnavailable {
                    timed_out: matches!(e, FetchError::TimedOut { .. }).then_some(what),
                    message: e.to_string(),
                })?;
        if !answer.status.is_success() {
            return Err(format!("{}: HTTP {}", loggable(uri), answer.status).into());
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| format!("{}: not JSON: {e}", loggable(uri)).into())
    }

    /// Fetches the keys (discovery first, for an issuer); they serve if
    /// they parse. The number of keys, or why not. Each fetch is bounded
    /// by `jwks_timeout_ms`.
    pub async fn fetch(&self) -> Result<usize, KeysUnavailable> {
        if let Ok(mut t) = self.last_attempt.lock() {
            *t = Some(Instant::now());
        }
        let uri = match &self.source {
            Source::Url(u) => u.clone(),
            Source::Issuer(issuer) => {
                let doc = https(
                    &format!("{issuer}/.well-known/openid-configuration"),
                    "oidc_issuer",
                )?;
                let config = self.get_json(&doc, "oidc_discovery").await?;
                // OpenID Connect Discovery §4.3: the document's issuer is
                // exactly the one asked about.
                let named = config
                    .get("issuer")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
                    .trim_end_matches('/');
                if named != issuer {
                    return Err(format!(
                        "{}: names issuer {named:?}, not {issuer:?}",
                        loggable(&doc)
                    )
                    .into());
                }
                let jwks = config
                    .get("jwks_uri")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| format!("{}: no jwks_uri", loggable(&doc)))?;
                https(jwks, "oidc_issuer's jwks_uri")?
            }
        };
        let set = self.get_json(&uri, "jwks").await?;
        let keys =
            keys_of_jwks(&set.to_string()).map_err(|e| format!("{}: {e}", loggable(&uri)))?;
        if keys.is_empty() {
            return Err(format!("{}: no keys", loggable(&uri)).into());
        }
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(n)
    }

    /// One refresh: a fetch, replaced by a fresh one when a token names an
    /// unknown `kid` while it has been under way for the least interval
    /// (the one under way may be hung on a connection that will never
    /// answer; its deadline ends it anyway).
    async fn refresh(&self) -> Result<usize, KeysUnavailable> {
        let mut started = Instant::now();
        let mut attempt = std::pin::pin!(self.fetch());
        loop {
            tokio::select! {
                done = &mut attempt => return done,
                () = self.wake.notified() => {
                    if started.elapsed() >= self.min_interval {
                        tracing::warn!(from = %self.origin(), "a key refresh is still waiting for an answer; starting another for a token with an unknown kid");
                        started = Instant::now();
                        attempt.set(self.fetch());
                    }
                }
            }
        }
    }

    /// What it fetches from, for logs.
    pub fn origin(&self) -> String {
        match &self.source {
            Source::Url(u) => loggable(u),
            Source::Issuer(i) => format!("{i} (OIDC discovery)"),
        }
    }

    /// Refreshes until `stopped`: every `jwks_refresh_s`, and when a token
    /// names an unknown `kid` (at most once per `jwks_min_refresh_s`).
    /// `fetched` hears of each attempt.
    pub async fn run(
        self: Arc<Self>,
        fetched: impl Fn(Refreshed) + Send + 'static,
        mut stopped: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = tokio::time::sleep(self.refresh) => {}
                _ = self.wake.notified() => {}
            }
            // However it was woken, never sooner than the least interval.
            let since = self
                .last_attempt
                .lock()
                .ok()
                .and_then(|t| t.map(|t| t.elapsed()))
                .unwrap_or(self.min_interval);
            if since < self.min_interval {
                tokio::time::sleep(self.min_interval - since).await;
            }
            let outcome = tokio::select! {
                _ = stopped.changed() => return,
                outcome = self.refresh() => outcome,
            };
            match outcome {
                Ok(n) => {
                    fetched(Refreshed {
                        ok: true,
                        keys: n,
                        timed_out: None,
                    });
                    tracing::info!(from = %self.origin(), keys = n, "identity provider keys refreshed");
                }
                Err(e) => {
                    fetched(Refreshed {
                        ok: false,
                        keys: self.keys().len(),
                        timed_out: e.timed_out,
                    });
                    tracing::error!(from = %self.origin(), error = %e, "cannot refresh the identity provider's keys; the last good ones keep serving");
                }
            }
        }
    }
}
