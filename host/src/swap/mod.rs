//! Snapshot hot swap: every candidate becomes a [`Generation`] — the
//! snapshot bytes, the memory image of one instance that loaded it, and one
//! engine instance per worker started from that image — before a single
//! atomic pointer swap (arc-swap) makes it current. The snapshot is loaded
//! once per swap, whatever the number of workers: the workers' instances
//! map the image copy-on-write (`memory_image/`).
//!
//! A request takes the current generation once, at its start, and keeps it
//! (an `Arc`) until its decision is made: requests in flight finish on the
//! snapshot they started with, and the old generation is freed when the
//! last of them is done. Loading happens off the request path, so a swap
//! costs requests nothing but the CPU the load takes.
//!
//! An instance that traps is thrown away (its memory may be mid-update)
//! and rebuilt in the background from the generation's image; meanwhile
//! the other instances serve.

mod error;
mod generation;
mod plan;
mod pool;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use portcullis_snapshots::Candidate;
use portcullis_snapshots::delta::DeltaHeader;
use portcullis_snapshots::header::Header;
use portcullis_snapshots::signature::{self, SignatureError, VerifyingKey};

pub use error::{Source, SwapError, Unavailable};
pub use generation::{Generation, set_worker_index};
pub use pool::EnginePool;

use crate::revision_state::{AcceptedRevision, RevisionState};
use crate::views::Views;
use plan::{Admitted, Plan, Swapped};

/// What a successful swap did.
#[derive(Clone, Debug)]
pub struct Installed {
    /// The new revision.
    pub revision: u64,
    /// The revision it replaced.
    pub previous: Option<u64>,
    /// SHA-256 of the new body, hex.
    pub sha256: String,
    /// Whether it came as a delta.
    pub delta: bool,
    /// Whether that delta was applied to the loaded engine in place
    /// (rather than its target loaded in full).
    pub in_place: bool,
    /// Browser views kept over the swap, when browsers had been served.
    pub views: Option<crate::views::Carried>,
    /// Wall time from the checked header to the swap (the load, the
    /// workers' instances, the views carried over).
    pub took: Duration,
    /// CPU time of the same (it all runs on the installing thread).
    pub cpu: Duration,
    /// Memory the loaded snapshot's image holds, shared by every worker.
    pub image_bytes: u64,
}

/// What a swap is about to publish, told to [`Swapper::announcing`]'s
/// callback before readers can see it: counters read after the revision
/// moved have counted it.
#[derive(Clone, Copy, Debug)]
pub struct Publishing {
    /// The new revision.
    pub revision: u64,
    /// It came as a delta.
    pub delta: bool,
    /// It was applied to the serving engine in place.
    pub in_place: bool,
    /// Memory of its image.
    pub image_bytes: u64,
}

/// Hears of each swap just before it is published.
type Announce = Box<dyn Fn(&Publishing, Source) + Send + Sync>;

/// Holds the current generation and installs new ones, one at a time.
pub struct Swapper {
    announce: Option<Announce>,
    pool: Arc<EnginePool>,
    current: ArcSwapOption<Generation>,
    install_lock: Mutex<()>,
    max_bytes: u64,
    trusted: Vec<VerifyingKey>,
    require_signature: bool,
    state: Option<RevisionState>,
    /// The revision last accepted before this process started.
    floor: Option<AcceptedRevision>,
    /// Bytes of browser views each generation keeps.
    view_cache_bytes: u64,
    /// Whether a delta has come: full snapshots are then laid out for the
    /// next one ahead of time (a gateway fed whole snapshots never pays
    /// for it).
    deltas_seen: AtomicBool,
    /// The last whole snapshot pushed had the serving one's strings: the
    /// next may be a change in place too, worth laying the new one out for.
    patchable: AtomicBool,
}

impl Swapper {
    /// An empty swapper (not ready until the first install).
    pub fn new(pool: Arc<EnginePool>, max_bytes: u64) -> Self {
        Swapper {
            announce: None,
            pool,
            current: ArcSwapOption::empty(),
            install_lock: Mutex::new(()),
            max_bytes,
            trusted: Vec::new(),
            require_signature: false,
            state: None,
            floor: None,
            view_cache_bytes: 256 << 20,
            deltas_seen: AtomicBool::new(false),
            patchable: AtomicBool::new(true),
        }
    }

    /// Tells `announce` of every swap just before it is published (the
    /// metrics count it there, so nobody reads a revision that the
    /// counters have not counted yet).
    pub fn announcing(
        mut self,
        announce: impl Fn(&Publishing, Source) + Send + Sync + 'static,
    ) -> Self {
        self.announce = Some(Box::new(announce));
        self
    }

    /// Keeps up to `bytes` of browser views per generation
    /// (`snapshot.browser_view_cache_mb`).
    pub fn caching_views(mut self, bytes: u64) -> Self {
        self.view_cache_bytes = bytes;
        self
    }

    /// Accepts signatures by `trusted` keys only, and (when `require`)
    /// signed snapshots only.
    pub fn trusting(mut self, trusted: Vec<VerifyingKey>, require: bool) -> Self {
        self.trusted = trusted;
        self.require_signature = require;
        self
    }

    /// Keeps the accepted revision in `state`, never going below what it
    /// holds now. An unreadable state file is an error.
    pub fn remembering(mut self, state: RevisionState) -> Result<Self, String> {
        self.floor = state.load()?;
        self.state = Some(state);
        Ok(self)
    }

    /// Signature policy: what `snapshot.trusted_keys` and
    /// `snapshot.require_signature` allow, for a snapshot or a delta
    /// (`verify` checks the one or the other's signature against the
    /// trusted keys).
    fn check_signature(
        &self,
        verify: impl FnOnce(&[VerifyingKey]) -> Result<Option<VerifyingKey>, SignatureError>,
    ) -> Result<(), SwapError> {
        if self.trusted.is_empty() && !self.require_signature {
            return Ok(());
        }
        match verify(&self.trusted) {
            Ok(Some(_)) => Ok(()),
            Ok(None) if !self.require_signature => Ok(()),
            Ok(None) => Err(SwapError::Signature(SignatureError::Unsigned)),
            Err(SignatureError::Decode(e)) => Err(SwapError::Header(e)),
            Err(SignatureError::Delta(e)) => Err(SwapError::Delta(e)),
            Err(e) => Err(SwapError::Signature(e)),
        }
    }

    /// `snapshot.max_bytes`, for a snapshot or a delta.
    fn check_size(&self, bytes: &[u8]) -> Result<(), SwapError> {
        if bytes.len() as u64 > self.max_bytes {
            return Err(SwapError::TooLarge {
                size: bytes.len() as u64,
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    /// The engine pool.
    pub fn pool(&self) -> &Arc<EnginePool> {
        &self.pool
    }

    /// The current generation, if any: keep it for the whole decision.
    pub fn current(&self) -> Option<Arc<Generation>> {
        self.current.load_full()
    }

    /// Validates a candidate completely — header, signature, revision
    /// order, hash, decoding and integrity, loading — and only then makes
    /// it current. A delta must apply to exactly the snapshot serving; its
    /// result must be exactly its target. Blocking and CPU-heavy: call it
    /// off the async workers. On error nothing changes.
    pub fn install(
        &self,
        candidate: Candidate,
        source: Source,
        force: bool,
    ) -> Result<Installed, SwapError> {
        self.check_size(candidate.bytes())?;
        // The header's signature only: loading checks the body against the
        // signed hash anyway.
        let admitted = match candidate {
            Candidate::Snapshot(bytes) => {
                let header = Header::parse(&bytes)?;
                if header.is_view() {
                    return Err(SwapError::View);
                }
                self.check_signature(|trusted| signature::verify_header(&bytes, trusted))?;
                Admitted::Snapshot(bytes, header)
            }
            Candidate::Delta(bytes) => {
                let header = DeltaHeader::parse(&bytes).map_err(SwapError::Delta)?;
                self.check_signature(|trusted| signature::verify_delta(&bytes, trusted))?;
                self.deltas_seen.store(true, Ordering::Relaxed);
                Admitted::Delta(bytes, header)
            }
        };
        // One install at a time, so the revision checks stay true until
        // the swap.
        let one = self.install_lock.lock().unwrap_or_else(|p| p.into_inner());
        let clock = (std::time::Instant::now(), crate::cpu_time::thread());
        let plan = plan::plan(self.current.load_full(), admitted, &self.patchable)?;
        self.install_locked(&one, plan, clock, source, force)
    }

    /// The rest of an install, under the install lock: revision order,
    /// the load, the swap.
    fn install_locked(
        &self,
        _one: &MutexGuard<'_, ()>,
        plan: Plan,
        (started, cpu_started): (std::time::Instant, Duration),
        source: Source,
        force: bool,
    ) -> Result<Installed, SwapError> {
        let Plan {
            bytes,
            header,
            delta,
            patch,
        } = plan;
        let previous = self.current.load().as_ref().map(|g| g.revision);
        SwapError::unless_newer(header.revision, previous, force)?;
        // Before the first install after a restart, the state file's
        // revision is the floor: the same snapshot again, or a newer one.
        if let Some(floor) = &self.floor
            && previous.is_none()
            && !force
            && (header.revision < floor.revision
                || (header.revision == floor.revision
                    && hex::encode(header.body_sha256) != floor.sha256))
        {
            return Err(SwapError::BelowAccepted {
                candidate: header.revision,
                accepted: floor.revision,
            });
        }
        // An `Arc<[u8]>` would copy the bytes again.
        let bytes = Arc::new(bytes);
        let Swapped {
            image,
            layout,
            in_place,
        } = plan::load(&self.pool, &bytes, patch)?;
        let slots = (0..self.pool.instances)
            .map(|_| self.pool.instance_from(&image).map(|i| Mutex::new(Some(i))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SwapError::Load)?;
        let sha256 = hex::encode(header.body_sha256);
        let generation = Generation {
            revision: header.revision,
            sha256: sha256.clone(),
            created_at: header.created_at,
            loaded_at: SystemTime::now(),
            source,
            delta,
            slots: slots.into_boxed_slice(),
            rebuilding: AtomicUsize::new(0),
            image,
            views: Arc::new(Views::new(Arc::clone(&bytes), self.view_cache_bytes)),
            bytes,
            layout: std::sync::OnceLock::new(),
        };
        if let Some(layout) = layout {
            let _ = generation.layout.set(Some(layout));
        }
        let generation = Arc::new(generation);
        let image_bytes = generation.image.resident_bytes();
        if let Some(announce) = &self.announce {
            announce(
                &Publishing {
                    revision: header.revision,
                    delta,
                    in_place,
                    image_bytes,
                },
                source,
            );
        }
        let replaced = self.current.swap(Some(Arc::clone(&generation)));
        let load_ms = started.elapsed().as_millis() as u64;
        // Browsers were served views of the old snapshot: load the new
        // one's engine now, before the push is answered, and keep the
        // views the push did not change, rather than cutting them all
        // again for the crowd that follows.
        let carried = replaced.filter(|g| g.views.in_use()).and_then(|before| {
            match generation.views.carry_from(&before.views) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the engine for browser views");
                    None
                }
            }
        });
        if let Some(state) = &self.state
            && let Err(e) = state.store(&AcceptedRevision {
                revision: header.revision,
                sha256: sha256.clone(),
            })
        {
            // The swap stands (refusing a valid snapshot would be worse);
            // a restart now could accept an older one.
            tracing::error!(error = %e, "cannot record the accepted revision");
        }
        let (took, cpu) = (started.elapsed(), crate::cpu_time::thread() - cpu_started);
        // Where the rows are, for the deltas to come: walked once per
        // full snapshot (about a decode), in the background, at the
        // loader's priority, once deltas are in use; a delta that comes
        // first waits for it (or walks it).
        // Also while whole snapshots keep their strings: the next one may
        // then be applied as the change it is (`plan::snapshot_as_patch`).
        if generation.layout.get().is_none()
            && (self.deltas_seen.load(Ordering::Relaxed)
                || (previous.is_some() && self.patchable.load(Ordering::Relaxed)))
        {
            let g = Arc::clone(&generation);
            let spawned = std::thread::Builder::new()
                .name("portcullis-layout".into())
                .spawn(move || {
                    crate::priority::lower(crate::priority::SWAP_NICENESS, "the snapshot layout");
                    let _ = g.layout();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the layout thread; the first delta lays the snapshot out");
            }
        }
        tracing::info!(
            revision = header.revision,
            previous = ?previous,
            source = source.as_str(),
            delta,
            in_place,
            forced = force && previous.is_some_and(|p| header.revision <= p),
            load_ms,
            swap_ms = took.as_millis() as u64,
            cpu_ms = cpu.as_millis() as u64,
            image_bytes,
            views_kept = carried.map(|c| c.kept),
            views_dropped = carried.map(|c| c.dropped),
            "snapshot swapped in"
        );
        Ok(Installed {
            revision: header.revision,
            previous,
            sha256,
            delta,
            in_place,
            views: carried,
            took,
            cpu,
            image_bytes,
        })
    }
}
