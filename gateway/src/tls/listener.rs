//! TLS on one listener: the rustls configuration serving now (its
//! certificates picked by SNI, its client-certificate verifier), reloaded
//! when its files change.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use tokio::sync::{mpsc, watch as watch_channel};

use crate::config::{ClientCertificates, TlsConfig};
use crate::metrics::TlsMetrics;

use super::certs::{self, Loaded};
use super::sni;

/// The verifier of client certificates serving now.
struct Verifier(Arc<dyn ClientCertVerifier>);

/// TLS on one listener.
pub struct Tls {
    /// Which listener (`proxy`, `admin`, `decision`), for logs and metrics.
    pub listener: &'static str,
    settings: TlsConfig,
    current: ArcSwap<ServerConfig>,
    /// The certificates serving now, for metrics.
    loaded: ArcSwap<Vec<Loaded>>,
    /// The client certificate verifier serving now (CAs and CRLs).
    verifier: ArcSwapOption<Verifier>,
    /// Bumped by every reload that serves: connections verify their
    /// client certificates again when it moves.
    generation: AtomicU64,
    /// Told of every reload that serves (its generation).
    reloaded: watch_channel::Sender<u64>,
    /// Time allowed for a handshake.
    pub handshake_timeout: Duration,
}

/// What one load of the files gives.
struct Built {
    config: ServerConfig,
    loaded: Vec<Loaded>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// A rustls time for `now` (Unix seconds).
fn unix_time(now: i64) -> rustls_pki_types::UnixTime {
    rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(now).unwrap_or(0),
    ))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The configuration section of a listener's TLS, for errors.
fn setting(listener: &str) -> &'static str {
    match listener {
        "proxy" => "server.tls",
        "admin" => "admin.tls",
        _ => "decision.tls",
    }
}

/// A rustls configuration for `settings`, and what it serves.
fn build(settings: &TlsConfig, name: &str) -> Result<Built, Vec<String>> {
    let loaded = certs::load_all(&settings.certificates, now()).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| format!("{name}.certificates: {p}"))
            .collect::<Vec<_>>()
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| vec![format!("{name}: {e}")])?;
    let (builder, verifier) = match &settings.client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certs::read_chain(path).map_err(|e| vec![format!("{name}.client_ca: {e}")])? {
                roots
                    .add(ca)
                    .map_err(|e| vec![format!("{name}.client_ca: {}: {e}", path.display())])?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if let Some(path) = &settings.client_crl {
                let crls =
                    certs::read_crls(path).map_err(|e| vec![format!("{name}.client_crl: {e}")])?;
                // A CA without a CRL in the file: its certificates are not
                // checked for revocation (rather than all refused).
                verifier = verifier.with_crls(crls).allow_unknown_revocation_status();
            }
            let verifier = match settings.client_certificates {
                ClientCertificates::Required => verifier,
                ClientCertificates::Optional => verifier.allow_unauthenticated(),
            }
            .build()
            .map_err(|e| vec![format!("{name}.client_ca: {e}")])?;
            (
                builder.with_client_cert_verifier(Arc::clone(&verifier)),
                Some(verifier),
            )
        }
        None => (builder.with_no_client_auth(), None),
    };
    let mut config = builder.with_cert_resolver(Arc::new(sni::BySni::new(&loaded)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Built {
        config,
        loaded,
        verifier,
    })
}

impl Tls {
    /// Loads `settings` for the listener `listener`; every problem named.
    pub fn new(listener: &'static str, settings: &TlsConfig) -> Result<Tls, Vec<String>> {
        let built = build(settings, setting(listener))?;
        Ok(Tls {
            listener,
            settings: settings.clone(),
            current: ArcSwap::from_pointee(built.config),
            loaded: ArcSwap::from_pointee(built.loaded),
            verifier: ArcSwapOption::from(built.verifier.map(|v| Arc::new(Verifier(v)))),
            generation: AtomicU64::new(0),
            reloaded: watch_channel::Sender::new(0),
            handshake_timeout: Duration::from_millis(settings.handshake_timeout_ms),
        })
    }

    /// Which load of the files serves (moves with every reload that serves).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Hears of every reload that serves.
    pub fn reloads(&self) -> watch_channel::Receiver<u64> {
        self.reloaded.subscribe()
    }

    /// Verifies a client certificate chain (leaf first) as a handshake
    /// would now: the CAs and CRLs serving, the time now.
    pub fn verify_client(
        &self,
        chain: &[rustls_pki_types::CertificateDer<'_>],
    ) -> Result<(), String> {
        let verifier = self.verifier.load_full().ok_or_else(|| {
            "the listener no longer asks for client certificates (no client_ca)".to_string()
        })?;
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| "no certificate".to_string())?;
        verifier
            .0
            .verify_client_cert(leaf, intermediates, unix_time(now()))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The acceptor for the next connection (the configuration serving now).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// The certificates serving now.
    pub fn serving(&self) -> Arc<Vec<Loaded>> {
        self.loaded.load_full()
    }

    /// Reads the files again: the new set serves if it loads, and the old
    /// one keeps serving if not (the problems returned).
    pub fn reload(&self) -> Result<(), Vec<String>> {
        let built = build(&self.settings, setting(self.listener))?;
        self.current.store(Arc::new(built.config));
        self.loaded.store(Arc::new(built.loaded));
        self.verifier
            .store(built.verifier.map(|v| Arc::new(Verifier(v))));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.reloaded.send_replace(generation);
        Ok(())
    }

    /// (file, end of validity) of each certificate serving.
    pub fn expiries(&self) -> Vec<(String, i64)> {
        self.serving()
            .iter()
            .map(|l| (l.origin.clone(), l.not_after))
            .collect()
    }

    /// The service account a verified client certificate chain is, by the
    /// first SAN of its leaf that `client_principals` names (URI SANs, then
    /// DNS names); `None` when none is named, or when two name different
    /// accounts.
    pub(crate) fn principal_of(
        &self,
        chain: &[rustls_pki_types::CertificateDer<'_>],
    ) -> Option<Arc<str>> {
        use x509_parser::extensions::GeneralName;
        let map = &self.settings.client_principals;
        if map.is_empty() {
            return None;
        }
        let (_, leaf) = x509_parser::parse_x509_certificate(chain.first()?).ok()?;
        let san = leaf.subject_alternative_name().ok()??;
        let mut found: Option<&String> = None;
        for name in &san.value.general_names {
            let key = match name {
                GeneralName::URI(uri) => (*uri).to_string(),
                GeneralName::DNSName(dns) => dns.to_ascii_lowercase(),
                _ => continue,
            };
            if let Some(p) = map.get(&key) {
                if found.is_some_and(|f| f != p) {
                    tracing::warn!(
                        listener = self.listener,
                        "a client certificate names two service accounts in client_principals; it identifies neither"
                    );
                    return None;
                }
                found = Some(p);
            }
        }
        found.map(|p| Arc::from(p.as_str()))
    }

    /// Every file it reads.
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .settings
            .certificates
            .iter()
            .flat_map(|p| [p.cert.clone(), p.key.clone()])
            .collect();
        files.extend(self.settings.client_ca.clone());
        files.extend(self.settings.client_crl.clone());
        files
    }
}

/// Reloads `tls` whenever one of its files changes (watching their
/// directories: certificate managers replace files by rename, and
/// Kubernetes swaps a symlink), until `stopped`.
pub fn watch(tls: Arc<Tls>, metrics: TlsMetrics, mut stopped: watch_channel::Receiver<bool>) {
    use notify::{RecursiveMode, Watcher};
    metrics.serving(tls.listener, &tls.expiries());
    let files = tls.files();
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .map(|f| match f.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let names: Vec<_> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_os_string()))
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && event.paths.iter().any(|p| {
                // A file of ours, or Kubernetes' `..data` symlink swap.
                p.file_name()
                    .is_some_and(|n| names.iter().any(|m| m == n) || n == "..data")
            })
        {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(listener = tls.listener, error = %e, "cannot watch the TLS files; certificates will not be reloaded");
            return;
        }
    };
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::error!(listener = tls.listener, dir = %dir.display(), error = %e, "cannot watch a TLS directory; changes there will not be reloaded");
        }
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                change = rx.recv() => if change.is_none() { return },
            }
            // A renewal writes a certificate and a key: let both land.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while rx.try_recv().is_ok() {}
            match tls.reload() {
                Ok(()) => {
                    metrics.reloaded(tls.listener, true);
                    metrics.serving(tls.listener, &tls.expiries());
                    tracing::info!(listener = tls.listener, "TLS certificates reloaded");
                }
                Err(problems) => {
                    metrics.reloaded(tls.listener, false);
                    tracing::error!(listener = tls.listener, problems = ?problems, "new TLS certificates refused; the previous ones keep serving");
                }
            }
        }
    });
}
