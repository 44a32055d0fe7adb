//! The two background sources of snapshots: a watched file (`notify`, the
//! cross-platform file-watching crate) and a polled HTTP URL with
//! `ETag`/`If-None-Match`. Both hand candidates to the same validating
//! install as pushes do; a refused candidate is logged and counted and the
//! serving snapshot stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::config::{ms, parse_http_url};
use crate::response::empty;
use crate::shared::Shared;
use crate::snapshot::swap::Source;
use crate::stage::forward::http_client;

/// Starts the configured sources; they end when `stopped` flips.
pub(crate) fn spawn(shared: &Arc<Shared>, stopped: watch::Receiver<bool>) {
    let cfg = &shared.config().snapshot;
    if let (Some(file), true) = (&cfg.file, cfg.watch) {
        match watch_file(file) {
            Ok((watcher, changes)) => {
                tokio::spawn(reload_on_change(
                    Arc::clone(shared),
                    file.clone(),
                    watcher,
                    changes,
                    stopped.clone(),
                ));
            }
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e, "cannot watch the snapshot file; changes will not be picked up")
            }
        }
    }
    if let Some(url) = &cfg.poll_url {
        tokio::spawn(poll(Arc::clone(shared), url.clone(), stopped));
    }
}

/// Watches the file's directory (editors and `mv` replace files, which a
/// watch on the file itself would lose) and reports events about the file.
fn watch_file(
    file: &Path,
) -> notify::Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>)> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = file.file_name().map(|n| n.to_os_string());
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok((watcher, rx))
}

async fn reload_on_change(
    shared: Arc<Shared>,
    file: PathBuf,
    _watcher: notify::RecommendedWatcher,
    mut changes: mpsc::UnboundedReceiver<()>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            change = changes.recv() => if change.is_none() { return },
        }
        // A write arrives as several events; let it settle, then read once.
        tokio::time::sleep(Duration::from_millis(150)).await;
        while changes.try_recv().is_ok() {}
        let bytes = match tokio::fs::read(&file).await {
            Ok(b) => b,
            // Removed or mid-rename: the next event brings it back.
            Err(e) => {
                tracing::debug!(file = %file.display(), error = %e, "snapshot file not readable yet");
                continue;
            }
        };
        if shared.swapper.current().is_some_and(|g| g.holds(&bytes)) {
            continue; // touched, not changed
        }
        if let Ok(done) = shared.install(bytes, Source::File, false).await {
            tracing::info!(file = %file.display(), revision = done.revision, "snapshot file reloaded");
        }
    }
}

async fn poll(shared: Arc<Shared>, url: String, mut stopped: watch::Receiver<bool>) {
    let Ok(uri) = parse_http_url(&url) else {
        return; // refused by config validation already
    };
    let client = http_client(Duration::from_secs(5), 1);
    let every = ms(shared.config().snapshot.poll_interval_ms);
    let max = shared.config().snapshot.max_bytes;
    let mut etag: Option<header::HeaderValue> = None;
    loop {
        let mut req = Request::get(uri.clone());
        if let Some(tag) = &etag {
            req = req.header(header::IF_NONE_MATCH, tag.clone());
        }
        let fetched = match req.body(empty()) {
            Ok(req) => tokio::time::timeout(Duration::from_secs(60), client.request(req)).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the poll request");
                return;
            }
        };
        match fetched {
            Err(_) => tracing::warn!(%url, "snapshot poll timed out"),
            Ok(Err(e)) => tracing::warn!(%url, error = %e, "snapshot poll failed"),
            Ok(Ok(resp)) if resp.status() == StatusCode::NOT_MODIFIED => {}
            Ok(Ok(resp)) if resp.status() == StatusCode::OK => {
                let tag = resp.headers().get(header::ETAG).cloned();
                let body = http_body_util::Limited::new(
                    resp.into_body(),
                    usize::try_from(max).unwrap_or(usize::MAX),
                )
                .collect()
                .await;
                match body {
                    Ok(b) => {
                        // Remember the tag even for a refused candidate: the
                        // same bad bytes are not retried every period.
                        let _ = shared
                            .install(b.to_bytes().to_vec(), Source::Poll, false)
                            .await;
                        etag = tag;
                    }
                    Err(e) => {
                        shared.metrics.swap_failed(Source::Poll.as_str());
                        tracing::warn!(%url, error = %e, "snapshot download failed");
                    }
                }
            }
            Ok(Ok(resp)) => {
                tracing::warn!(%url, status = %resp.status(), "snapshot poll answered an error")
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(jittered(every)) => {}
        }
    }
}

/// A wait between half of `every` and `every`, different for every wait:
/// replicas started together (a deployment) drift apart instead of all
/// polling the store at the same instant, and each still polls at least
/// once per period, so all see a new snapshot within one period of each
/// other.
fn jittered(every: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    // A fresh RandomState is randomly keyed: enough randomness for a jitter.
    let r = RandomState::new().hash_one(std::time::Instant::now());
    let fraction = (r % 1_000_000) as f64 / 1_000_000.0;
    every.mul_f64(0.5 + 0.5 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_a_period_and_varies() {
        let every = Duration::from_secs(10);
        let waits: Vec<Duration> = (0..200).map(|_| jittered(every)).collect();
        assert!(waits.iter().all(|w| *w >= every / 2 && *w <= every));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100, "{} distinct waits", distinct.len());
    }
}
