//! The two background sources of snapshots: a watched file (`notify`, the
//! cross-platform file-watching crate) and a polled HTTP URL with
//! `ETag`/`If-None-Match`. Both hand candidates to the same validating
//! install as pushes do; a refused candidate is logged and counted and the
//! serving snapshot stays.
//!
//! The polled URL is a snapshot, or a store's manifest (`latest.json`,
//! `snapshot/manifest.rs`): then the gateway fetches the chain of deltas
//! from the revision it serves when the manifest lists one, and the full
//! snapshot when it does not or a delta fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{StatusCode, header};
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use portcullis_snapshots::Candidate;

use crate::config::{ms, parse_store_url};
use crate::manifest::{Manifest, beside};
use crate::shared::Shared;
use crate::store::{FetchError, StoreClient, loggable};
use portcullis_host::swap::Source;

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
        if let Ok(done) = shared
            .install(Candidate::of(bytes), Source::File, false)
            .await
        {
            tracing::info!(file = %file.display(), revision = done.revision, "snapshot file reloaded");
        }
    }
}

async fn poll(shared: Arc<Shared>, url: String, mut stopped: watch::Receiver<bool>) {
    let (Ok(uri), Some(client)) = (parse_store_url(&url), shared.compiled.store.clone()) else {
        return; // refused by config validation already
    };
    let every = ms(shared.config().snapshot.poll_interval_ms);
    let mut etag: Option<header::HeaderValue> = None;
    loop {
        // A manifest (`latest.json`) or a snapshot: by its name, for the
        // timeout metric only (what it holds is read from its first byte).
        let what = if uri.path().ends_with(".json") {
            "manifest"
        } else {
            "snapshot"
        };
        match fetch(&shared, &client, &uri, etag.as_ref(), what).await {
            Ok(Fetched::NotModified) => {}
            Ok(Fetched::Body(body, tag)) => {
                // Remember the tag even for a refused candidate: the same
                // bad bytes are not retried every period. A store that
                // failed to answer is asked again.
                let settled = if body.first() == Some(&b'{') {
                    follow_manifest(&shared, &client, &uri, &body).await
                } else {
                    let _ = shared
                        .install(Candidate::of(body), Source::Poll, false)
                        .await;
                    true
                };
                if settled {
                    etag = tag;
                }
            }
            Err(e) => tracing::warn!(url = %loggable(&uri), error = %e, "snapshot poll failed"),
        }
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(jittered(every)) => {}
        }
    }
}

enum Fetched {
    NotModified,
    Body(Vec<u8>, Option<header::HeaderValue>),
}

/// One GET from the store (at most `snapshot.max_bytes`, the whole
/// exchange within `snapshot.poll_timeout_ms`); `what` it fetches names
/// it in the timeout metric.
async fn fetch(
    shared: &Shared,
    client: &StoreClient,
    uri: &http::Uri,
    etag: Option<&header::HeaderValue>,
    what: &'static str,
) -> Result<Fetched, String> {
    let max = usize::try_from(shared.config().snapshot.max_bytes).unwrap_or(usize::MAX);
    let answer = client.fetch(uri, etag, max).await.map_err(|e| {
        if e.timed_out() {
            shared.metrics.fetch().timed_out(what);
        } else if matches!(e, FetchError::Body(_)) {
            shared.metrics.swap_failed(Source::Poll.as_str());
        }
        e.to_string()
    })?;
    match answer.status {
        StatusCode::NOT_MODIFIED => Ok(Fetched::NotModified),
        StatusCode::OK => Ok(Fetched::Body(answer.body.to_vec(), answer.etag)),
        status => Err(format!("{} answered {status}", loggable(uri))),
    }
}

/// Brings the gateway to the manifest's revision: the chain of deltas from
/// the revision serving when the manifest lists one, the full snapshot
/// otherwise (or when a delta fails). False when the store could not be
/// read (try again next period).
async fn follow_manifest(
    shared: &Arc<Shared>,
    client: &StoreClient,
    manifest_uri: &http::Uri,
    body: &[u8],
) -> bool {
    let m = match Manifest::parse(body) {
        Ok(m) => m,
        Err(e) => {
            shared.metrics.swap_failed(Source::Poll.as_str());
            tracing::warn!(url = %loggable(manifest_uri), error = %e, "the store's manifest is refused");
            return true;
        }
    };
    let serving = shared
        .swapper
        .current()
        .map(|g| (g.revision, g.sha256.clone()));
    if serving
        .as_ref()
        .is_some_and(|(r, sha)| m.is_serving(*r, sha))
    {
        return true;
    }
    if let Some(chain) = serving.as_ref().and_then(|(r, sha)| m.chain(*r, sha))
        && follow_chain(shared, client, manifest_uri, &chain).await
    {
        return true;
    }
    let (holds, holds_sha) = m.snapshot_holds();
    if m.snapshot_of.is_some() && serving.as_ref().is_some_and(|(r, _)| *r >= holds) {
        // The store's snapshot is not newer than what is served (it is
        // written only every few revisions) and no delta leads from here:
        // the next full snapshot will.
        tracing::warn!(
            revision = m.revision,
            snapshot = holds,
            "no delta in the store leads from the revision served; waiting for its next full snapshot"
        );
        return true;
    }
    match fetch_and_install(shared, client, manifest_uri, &m.snapshot, "snapshot").await {
        Ok(installed) => {
            // An earlier snapshot: then the deltas from it.
            if installed
                && m.snapshot_of.is_some()
                && let Some(chain) = m.chain(holds, holds_sha)
            {
                follow_chain(shared, client, manifest_uri, &chain).await;
            }
            true
        }
        Err(e) => {
            tracing::warn!(path = %m.snapshot, error = %e, "cannot fetch the snapshot");
            false
        }
    }
}

/// Fetches and installs each delta of `chain` in turn: whether all were.
async fn follow_chain(
    shared: &Arc<Shared>,
    client: &StoreClient,
    manifest_uri: &http::Uri,
    chain: &[&crate::manifest::DeltaEntry],
) -> bool {
    for d in chain {
        match fetch_and_install(shared, client, manifest_uri, &d.path, "delta").await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::warn!(path = %d.path, error = %e, "cannot fetch a delta; fetching the snapshot");
                return false;
            }
        }
    }
    true
}

/// Fetches the file `name` beside the manifest and installs it: whether it
/// was installed, or why the store could not be read.
async fn fetch_and_install(
    shared: &Arc<Shared>,
    client: &StoreClient,
    manifest_uri: &http::Uri,
    name: &str,
    what: &'static str,
) -> Result<bool, String> {
    let uri = beside(manifest_uri, name)?;
    match fetch(shared, client, &uri, None, what).await? {
        Fetched::Body(bytes, _) => Ok(shared
            .install(Candidate::of(bytes), Source::Poll, false)
            .await
            .is_ok()),
        Fetched::NotModified => Err(format!(
            "{} answered 304 to an unconditional request",
            loggable(&uri)
        )),
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
