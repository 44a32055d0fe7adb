//! Committed revisions, out to the gateways: a store directory in the
//! layout `snapshot publish` writes (`snapshot-N.snap`, `delta-M-N.delta`,
//! `latest.json` last), which gateways poll.
//!
//! Ordinary changes are coalesced for a short window into the next
//! revision; a change that takes access away is published at once. A
//! publication that fails (a full disk, a refused write) is retried, and
//! since each publication carries the head with the delta from the last
//! revision *published*, a gateway following the manifest never sees a gap.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_gateway::manifest::{
    DeltaEntry, MANIFEST_FORMAT, MANIFEST_FORMAT_CHAINED, Manifest, SnapshotOf,
};
use portcullis_snapshots::body::Body;
use portcullis_snapshots::delta::{Delta, Layout};
use portcullis_snapshots::signature::SigningKey;
use portcullis_snapshots::{decode, delta, encode, signature};

use crate::push::{PushTarget, Pusher};
use crate::service::{Listener, Revision, Step};
use crate::storage::{Fence, Lease};

/// Why a revision could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A file of the store could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store's manifest or snapshot cannot be read.
    #[error("{path}: {message}")]
    Store {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The store holds this revision or a later one already.
    #[error(
        "revision {revision} is not newer than revision {published} published in {path}; build with a higher revision"
    )]
    NotNewer {
        /// The revision to publish.
        revision: u64,
        /// The store's.
        published: u64,
        /// The manifest.
        path: PathBuf,
    },
}

/// What one publication wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The revision.
    pub revision: u64,
    /// The snapshot's file name and size, when one was written.
    pub snapshot: Option<(String, usize)>,
    /// The delta's file name and size, when there was a revision before.
    pub delta: Option<(String, usize)>,
    /// Deltas the manifest lists.
    pub listed: usize,
}

/// Writes `bytes` to `path` through a synced temporary file and a rename:
/// a reader sees the old file or the new one, never part of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|source| PublishError::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, PublishError> {
    fs::read(path).map_err(|source| PublishError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })
}

/// Publishes the snapshot `bytes` (signed already, when signing) into the
/// store `dir`: the snapshot, the delta from the revision the manifest
/// names (signed with `key`), then the manifest listing up to `keep`
/// deltas. Files the manifest no longer names are removed afterwards.
pub fn publish(
    dir: &Path,
    bytes: &[u8],
    keep: usize,
    key: Option<&SigningKey>,
) -> Result<Published, PublishError> {
    publish_with(dir, bytes, keep, key, Made::Compute, 1)
}

/// The delta a publication writes beside its snapshot.
#[derive(Clone, Copy, Debug)]
pub enum Made<'a> {
    /// Computed here from the store's files.
    Compute,
    /// Made already: from revision `.0`, signed as the store wants it
    /// (computed here when the store's manifest names another revision).
    From(u64, &'a [u8]),
    /// None: the strings changed, so a gateway loads the whole snapshot
    /// either way, and computing a delta would only delay it (about a
    /// second and a half on a 100k-user directory). The manifest then
    /// lists no delta: none leads to this revision.
    Skip,
}

/// [`publish`], with the delta as `made` says, and a full snapshot only
/// every `full_every` publications: in between, the delta and a manifest
/// naming the last full snapshot and the deltas from it
/// (`MANIFEST_FORMAT_CHAINED`).
pub fn publish_with(
    dir: &Path,
    bytes: &[u8],
    keep: usize,
    key: Option<&SigningKey>,
    made: Made<'_>,
    full_every: u64,
) -> Result<Published, PublishError> {
    let bad = |path: &Path, message: String| PublishError::Store {
        path: path.to_path_buf(),
        message,
    };
    // The whole snapshot is decoded only when the delta must be computed
    // here; its header is enough otherwise.
    let header = portcullis_snapshots::Header::parse(bytes)
        .map_err(|e| bad(Path::new("the new snapshot"), e.to_string()))?;
    let decoded = std::cell::OnceCell::new();
    let new_body = || -> Result<&portcullis_snapshots::body::Body, PublishError> {
        match decoded.get_or_init(|| decode(bytes).map_err(|e| e.to_string())) {
            Ok(s) => Ok(&s.body),
            Err(e) => Err(bad(Path::new("the new snapshot"), e.clone())),
        }
    };
    if header.is_view() {
        return Err(bad(
            Path::new("the new snapshot"),
            "a principal's view, not a directory snapshot".into(),
        ));
    }
    fs::create_dir_all(dir).map_err(|source| PublishError::Io {
        action: "cannot create",
        path: dir.to_path_buf(),
        source,
    })?;
    let manifest_path = dir.join("latest.json");
    let previous = if manifest_path.exists() {
        let m = Manifest::parse(&read(&manifest_path)?).map_err(|e| bad(&manifest_path, e))?;
        if m.revision >= header.revision {
            return Err(PublishError::NotNewer {
                revision: header.revision,
                published: m.revision,
                path: manifest_path,
            });
        }
        Some(m)
    } else {
        None
    };
    let sha256 = hex::encode(header.body_sha256);
    let name = format!("snapshot-{}.snap", header.revision);
    let mut deltas = Vec::new();
    let mut delta_file = None;
    // The delta from the previous revision — or, computed here, from the
    // revision the store's snapshot file holds.
    let mut delta_from = None;
    if let Some(m) = previous.as_ref().filter(|_| !matches!(made, Made::Skip)) {
        let base_path = dir.join(&m.snapshot);
        let (from, from_sha256, d) = match made {
            Made::From(from, d) if from == m.revision => (from, m.sha256.clone(), d.to_vec()),
            _ => {
                let base_bytes = read(&base_path)?;
                let base = decode(&base_bytes).map_err(|e| bad(&base_path, e.to_string()))?;
                let body = delta::compute(&base.body, new_body()?)
                    .map_err(|e| bad(&base_path, e.to_string()))?;
                let d = delta::encode_delta(&base.header, &header, &body)
                    .map_err(|e| bad(&base_path, e.to_string()))?;
                let d = match key {
                    Some(k) => {
                        signature::sign_delta(&d, k).map_err(|e| bad(&base_path, e.to_string()))?
                    }
                    None => d,
                };
                let (r, sha) = m.snapshot_holds();
                (r, sha.to_string(), d)
            }
        };
        let path = format!("delta-{}-{}.delta", from, header.revision);
        deltas.push(DeltaEntry {
            from,
            from_sha256,
            to: header.revision,
            to_sha256: sha256.clone(),
            path: path.clone(),
            bytes: d.len() as u64,
        });
        delta_file = Some((path, d));
        delta_from = Some(from);
        deltas.extend(m.deltas.iter().cloned());
    }
    // A full snapshot, or the previous one kept with the deltas from it.
    let chained = previous.as_ref().and_then(|m| {
        let (holds, holds_sha) = m.snapshot_holds();
        let since = m.chain(holds, holds_sha)?.len() as u64;
        (delta_from == Some(m.revision) && since + 1 < full_every).then(|| {
            (
                m,
                SnapshotOf {
                    revision: holds,
                    sha256: holds_sha.to_string(),
                },
                since as usize + 1,
            )
        })
    });
    let manifest = match chained {
        Some((m, of, needed)) => {
            deltas.truncate(keep.max(needed));
            Manifest {
                format: MANIFEST_FORMAT_CHAINED,
                revision: header.revision,
                sha256,
                snapshot: m.snapshot.clone(),
                bytes: m.bytes,
                deltas,
                snapshot_of: Some(of),
            }
        }
        None => {
            deltas.truncate(keep);
            Manifest {
                format: MANIFEST_FORMAT,
                revision: header.revision,
                sha256,
                snapshot: name.clone(),
                bytes: bytes.len() as u64,
                deltas,
                snapshot_of: None,
            }
        }
    };
    // The files the manifest names first, the manifest last: a replica
    // never reads a manifest whose files are not there yet.
    if manifest.snapshot_of.is_none() {
        write_atomic(&dir.join(&name), bytes)?;
    }
    if let Some((path, d)) = &delta_file {
        write_atomic(&dir.join(path), d)?;
    }
    let text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| bad(&manifest_path, e.to_string()))?;
    write_atomic(&manifest_path, &text)?;
    if let Some(m) = &previous {
        prune(dir, &manifest, m);
    }
    Ok(Published {
        revision: header.revision,
        snapshot: manifest
            .snapshot_of
            .is_none()
            .then_some((name, bytes.len())),
        delta: delta_file.map(|(p, d)| (p, d.len())),
        listed: manifest.deltas.len(),
    })
}

/// Removes the files the previous manifest named that the new one does
/// not: a replica that read the previous manifest a moment ago and finds
/// its file gone polls again and reads the new one.
fn prune(dir: &Path, now: &Manifest, before: &Manifest) {
    let named: Vec<&str> = std::iter::once(now.snapshot.as_str())
        .chain(now.deltas.iter().map(|d| d.path.as_str()))
        .collect();
    let old = std::iter::once(before.snapshot.as_str())
        .chain(before.deltas.iter().map(|d| d.path.as_str()));
    for f in old {
        if !named.contains(&f) && !f.contains('/') && !f.starts_with('.') {
            let _ = fs::remove_file(dir.join(f));
        }
    }
}

/// The state of publication, for `GET /v1/directory/revision` and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PublishState {
    /// The last revision every destination has (the store, each gateway).
    pub revision: u64,
    /// The last failure, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<String>,
    /// Replicas on one database: whether this one holds the publishing
    /// lease (the others publish nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leading: Option<bool>,
}

/// Where revisions go.
pub struct Destinations {
    /// A store directory.
    pub store_dir: Option<PathBuf>,
    /// Gateways' admin APIs.
    pub gateways: Vec<PushTarget>,
    /// Signs snapshots and deltas.
    pub key: Option<SigningKey>,
    /// Ordinary changes wait this long to be published together.
    pub window: Duration,
    /// Deltas the manifest lists (at least those from its snapshot).
    pub keep: usize,
    /// A full snapshot in the store every this many publications.
    pub full_every: u64,
    /// One push's deadline.
    pub push_timeout: Duration,
    /// When several replicas share the database: publish only while this
    /// one holds the publishing lease, each publication fenced.
    pub gate: Option<Arc<Lease>>,
}

/// Publishes revisions from a thread of its own.
pub struct Publisher {
    tx: Mutex<mpsc::Sender<Revision>>,
    state: Arc<Mutex<PublishState>>,
}

impl Listener for Publisher {
    fn committed(&self, revision: &Revision) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(revision.clone());
        }
    }
}

impl Publisher {
    /// Starts publishing to `to`.
    pub fn start(to: Destinations) -> Arc<Publisher> {
        let (tx, rx) = mpsc::channel::<Revision>();
        let state = Arc::new(Mutex::new(PublishState::default()));
        let st = state.clone();
        let spawned = std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || run(&to, &rx, &st));
        if let (Err(e), Ok(mut s)) = (spawned, state.lock()) {
            s.failing = Some(format!("the publisher could not start: {e}"));
        }
        Arc::new(Publisher {
            tx: Mutex::new(tx),
            state,
        })
    }

    /// Where publication stands.
    pub fn state(&self) -> PublishState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

const RETRY: Duration = Duration::from_secs(1);

/// The publisher's own copy of the directory's body, at the last revision
/// it was told of: the service hands over the delta of each revision edited
/// in place, and this applies it in place — a snapshot is encoded once per
/// publication, not once per write.
struct Replica {
    revision: u64,
    created_at: i64,
    body: Arc<Body>,
}

impl Replica {
    /// Follows `r`; an error when `r` does not follow this replica (it
    /// always does: the service tells revisions in order).
    fn follow(replica: &mut Option<Replica>, r: &Revision) -> Result<(), String> {
        match (&r.step, replica.as_mut()) {
            (Step::Full(body), _) => {
                *replica = Some(Replica {
                    revision: r.revision,
                    created_at: r.created_at,
                    body: body.clone(),
                });
                Ok(())
            }
            (Step::Delta(d), Some(rep)) if rep.revision + 1 == r.revision => {
                // A copy only when the service's head still shares the
                // body it compiled; every later delta edits this one.
                let body = Arc::make_mut(&mut rep.body);
                if let Err(e) = delta::patch(body, d) {
                    *replica = None;
                    return Err(format!(
                        "revision {}'s delta does not apply to the publisher's copy ({e}); restart the service",
                        r.revision
                    ));
                }
                rep.revision = r.revision;
                rep.created_at = r.created_at;
                Ok(())
            }
            (Step::Delta(_), rep) => {
                let at = rep.as_ref().map_or(0, |x| x.revision);
                *replica = None;
                Err(format!(
                    "revision {} came after revision {at}; restart the service",
                    r.revision
                ))
            }
        }
    }
}

/// A revision to publish: its snapshot (unsigned) and body.
struct Current<'a> {
    revision: u64,
    snapshot: Arc<Vec<u8>>,
    body: &'a Body,
}

/// The last revision published anywhere: the base of the next delta.
struct Last {
    revision: u64,
    snapshot: Arc<Vec<u8>>,
    /// The layout of its (unsigned) snapshot, when known: what finds a
    /// change in place in milliseconds.
    layout: Option<Layout>,
}

/// A delta, signed as the store wants it, and the layout of its target's
/// snapshot when the delta was read off its bytes.
type SignedDelta = (Vec<u8>, Option<Layout>);

/// The delta from the last revision to `now`, signed with `key`, and the
/// layout of `now`'s snapshot when the delta found it — `None` when the
/// strings changed. A change that keeps every string (a status, a role, an
/// expiry, members, grants and keys added or removed) is read off the two
/// snapshots' bytes alongside the base's layout and checked by applying it
/// (`Delta::between`, as a gateway reads a pushed snapshot: tens of
/// milliseconds). One that changes strings (a new user, a rename) is a
/// full load at every gateway whatever it receives: computing its delta
/// (`delta::compute`, about a second and a half on a 100k-user directory)
/// would only delay it, so the whole snapshot goes. Anything else is
/// computed from the two bodies.
fn delta_between(
    last: &Last,
    now: &Current<'_>,
    key: Option<&SigningKey>,
) -> Result<Option<SignedDelta>, String> {
    let (base, target) = (last.snapshot.as_slice(), now.snapshot.as_slice());
    if !Delta::same_strings(base, target) {
        return Ok(None);
    }
    let (b, t) = (
        portcullis_snapshots::Header::parse(base).map_err(|e| e.to_string())?,
        portcullis_snapshots::Header::parse(target).map_err(|e| e.to_string())?,
    );
    let in_place = last.layout.as_ref().and_then(|layout| {
        let d = Delta::between(base, layout, target).ok()?;
        let applied = d.apply_in_place(base, layout).ok()?;
        // The result must be the target's body, byte for byte.
        (applied
            .snapshot
            .get(portcullis_snapshots::header::HEADER_LEN..)
            == target.get(t.body_range()))
        .then_some((d.body, applied.layout))
    });
    let (body, layout) = match in_place {
        Some((body, layout)) => (body, Some(layout)),
        None => {
            let before = decode(base).map_err(|e| e.to_string())?;
            (
                delta::compute(&before.body, now.body).map_err(|e| e.to_string())?,
                None,
            )
        }
    };
    let d = delta::encode_delta(&b, &t, &body).map_err(|e| e.to_string())?;
    let d = match key {
        Some(k) => signature::sign_delta(&d, k).map_err(|e| e.to_string())?,
        None => d,
    };
    Ok(Some((d, layout)))
}

/// What each destination holds.
struct Progress {
    store: u64,
    gateways: Vec<u64>,
    /// The last revision sent anywhere.
    last: Option<Last>,
}

impl Progress {
    fn everywhere(&self) -> u64 {
        self.gateways
            .iter()
            .copied()
            .chain(std::iter::once(self.store))
            .min()
            .unwrap_or(0)
    }
}

/// Brings every destination to `now`: the gateways first (a delta is a
/// few hundred bytes), then the store (the whole snapshot is written);
/// the first failure, if any (the others are still tried).
fn publish_revision(
    to: &Destinations,
    pusher: Option<&Pusher>,
    now: &Current<'_>,
    progress: &mut Progress,
) -> Result<(), String> {
    let signed = match &to.key {
        Some(k) => signature::sign(&now.snapshot, k).map_err(|e| e.to_string())?,
        None => now.snapshot.to_vec(),
    };
    // The delta from the last revision sent anywhere, once for every
    // destination.
    let mut found_layout = None;
    let mut skip = false;
    let delta =
        progress
            .last
            .as_ref()
            .and_then(|last| match delta_between(last, now, to.key.as_ref()) {
                Ok(Some((d, layout))) => {
                    found_layout = layout;
                    Some((last.revision, d))
                }
                Ok(None) => {
                    skip = true;
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no delta from the last revision published");
                    None
                }
            });
    let mut failure = None;
    if let Some(pusher) = pusher {
        for (target, held) in to.gateways.iter().zip(progress.gateways.iter_mut()) {
            if *held == 0
                && let Some(serving) = pusher.serving(target)
            {
                *held = serving;
            }
            if *held >= now.revision {
                continue;
            }
            // A delta only for a gateway that holds its base.
            let d = delta
                .as_ref()
                .filter(|(from, _)| *from == *held)
                .map(|(_, d)| d.as_slice());
            match pusher.push(target, d, &signed) {
                Ok(()) => *held = now.revision,
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
    }
    if let Some(dir) = &to.store_dir
        && progress.store < now.revision
    {
        let made = match &delta {
            Some((from, d)) => Made::From(*from, d),
            None if skip => Made::Skip,
            None => Made::Compute,
        };
        match publish_with(dir, &signed, to.keep, to.key.as_ref(), made, to.full_every) {
            Ok(p) => progress.store = p.revision,
            Err(e) => {
                failure.get_or_insert(e.to_string());
            }
        }
    }
    if progress
        .last
        .as_ref()
        .is_none_or(|l| l.revision < now.revision)
    {
        // Without a layout from the delta, one is made now — after the
        // destinations have this revision, before the next one is asked.
        let layout = found_layout.or_else(|| Layout::of(&now.snapshot).ok());
        progress.last = Some(Last {
            revision: now.revision,
            snapshot: now.snapshot.clone(),
            layout,
        });
    }
    match failure {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// The revision the store's manifest names (0: none).
fn stored_revision(to: &Destinations) -> u64 {
    to.store_dir
        .as_ref()
        .and_then(|d| Manifest::parse(&fs::read(d.join("latest.json")).ok()?).ok())
        .map_or(0, |m| m.revision)
}

/// How often a replica without the publishing lease looks again.
const LEASE_POLL: Duration = Duration::from_millis(100);

fn run(to: &Destinations, rx: &mpsc::Receiver<Revision>, state: &Mutex<PublishState>) {
    let store = stored_revision(to);
    let pusher = if to.gateways.is_empty() {
        None
    } else {
        match Pusher::new(to.push_timeout) {
            Ok(p) => Some(p),
            Err(e) => {
                if let Ok(mut s) = state.lock() {
                    s.failing = Some(format!("cannot push to gateways: {e}"));
                }
                None
            }
        }
    };
    let mut progress = Progress {
        store: if to.store_dir.is_some() {
            store
        } else {
            u64::MAX
        },
        gateways: vec![0; to.gateways.len()],
        last: None,
    };
    let fail = |e: String| {
        tracing::error!(error = %e, "cannot publish");
        if let Ok(mut s) = state.lock() {
            s.failing = Some(e);
        }
    };
    let mut replica: Option<Replica> = None;
    // The snapshot of the replica's revision, once encoded.
    let mut encoded: Option<(u64, Arc<Vec<u8>>)> = None;
    let mut pending = false;
    let mut due: Option<Instant> = None;
    // With a lease: whether this replica led at the last publication.
    let mut leading = to.gate.is_none();
    loop {
        let wait = due.map(|d| d.saturating_duration_since(Instant::now()));
        let got = match wait {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(w) => rx.recv_timeout(w),
        };
        match got {
            Ok(r) => {
                if let Err(e) = Replica::follow(&mut replica, &r) {
                    fail(e);
                }
                if r.revision <= progress.everywhere() {
                    continue;
                }
                let at = if r.urgent {
                    Instant::now()
                } else {
                    Instant::now() + to.window
                };
                due = Some(due.map_or(at, |d| d.min(at)));
                pending = true;
                if due.is_some_and(|d| d > Instant::now()) {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if !pending {
                    return;
                }
            }
        }
        let Some(rep) = replica.as_ref().filter(|_| pending) else {
            due = None;
            continue;
        };
        if let Some(gate) = &to.gate {
            if let Ok(mut s) = state.lock() {
                s.leading = Some(gate.held());
            }
            if !gate.held() {
                // Another replica publishes; this one watches for the lease.
                leading = false;
                due = Some(Instant::now() + LEASE_POLL);
                continue;
            }
            if !leading {
                // Just taken over: what the store and the gateways hold is
                // the last leader's; the next publication is a whole one.
                leading = true;
                progress.store = if to.store_dir.is_some() {
                    stored_revision(to)
                } else {
                    u64::MAX
                };
                progress.gateways.iter_mut().for_each(|g| *g = 0);
                progress.last = None;
                tracing::info!(revision = rep.revision, "took over publishing");
            }
            match gate.fence(rep.revision) {
                Fence::Publish => {}
                Fence::Published => {
                    pending = false;
                    due = None;
                    continue;
                }
                Fence::NotLeading => {
                    leading = false;
                    due = Some(Instant::now() + LEASE_POLL);
                    continue;
                }
            }
        }
        if encoded.as_ref().is_none_or(|(r, _)| *r != rep.revision) {
            match encode(&rep.body, rep.revision, rep.created_at) {
                Ok(bytes) => encoded = Some((rep.revision, Arc::new(bytes))),
                Err(e) => {
                    fail(format!("cannot encode revision {}: {e}", rep.revision));
                    due = Some(Instant::now() + RETRY);
                    continue;
                }
            }
        }
        let Some((revision, snapshot)) = encoded.as_ref() else {
            continue;
        };
        let now = Current {
            revision: *revision,
            snapshot: snapshot.clone(),
            body: &rep.body,
        };
        match publish_revision(to, pusher.as_ref(), &now, &mut progress) {
            Ok(()) => {
                pending = false;
                due = None;
                tracing::info!(revision, "published");
                if let Ok(mut s) = state.lock() {
                    s.revision = *revision;
                    s.failing = None;
                }
            }
            Err(e) => {
                tracing::warn!(revision, error = %e, "publishing failed; retrying");
                if let Ok(mut s) = state.lock() {
                    s.failing = Some(e);
                }
                due = Some(Instant::now() + RETRY);
            }
        }
    }
}
