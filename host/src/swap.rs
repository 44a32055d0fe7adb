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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use portcullis_snapshots::delta::{Delta, DeltaError, DeltaHeader, Layout, decode_delta};
use portcullis_snapshots::header::Header;
use portcullis_snapshots::signature::{self, SignatureError, VerifyingKey};
use portcullis_snapshots::{Candidate, DecodeError};
use thiserror::Error;

use crate::revision_state::{AcceptedRevision, RevisionState};

use crate::deadline::TICK;
use crate::memory_image::{Derived, MemoryImage};
use crate::module::{HostError, InstanceLimits, PolicyInstance, PolicyModule};
use crate::views::Views;

/// Where a candidate snapshot came from (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The configured file, at start-up or after a change.
    File,
    /// `PUT /-/snapshot` on the admin listener.
    Push,
    /// The polled URL.
    Poll,
    /// Built in (the demo).
    Embedded,
}

impl Source {
    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Push => "push",
            Source::Poll => "poll",
            Source::Embedded => "embedded",
        }
    }
}

/// Why a candidate snapshot was refused. The current snapshot keeps serving.
#[derive(Debug, Error)]
pub enum SwapError {
    /// The header is not a Portcullis snapshot header.
    #[error("not a usable snapshot: {0}")]
    Header(#[from] DecodeError),
    /// Larger than `snapshot.max_bytes`.
    #[error("snapshot of {size} bytes exceeds snapshot.max_bytes ({max})")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Not newer than what is serving.
    #[error(
        "revision {candidate} is not newer than the serving revision {current}; build with a higher --revision, or force the swap to roll back"
    )]
    Stale {
        /// The candidate's revision.
        candidate: u64,
        /// The serving revision.
        current: u64,
    },
    /// The engine refused it (hash, decoding, integrity) or could not load it.
    #[error("the engine refused the snapshot: {0}")]
    Load(HostError),
    /// Unsigned where signatures are required, signed by an untrusted key,
    /// or wrongly signed.
    #[error("{0}")]
    Signature(SignatureError),
    /// Older than the revision last accepted before a restart (or the same
    /// revision number with different contents).
    #[error(
        "revision {candidate} does not follow revision {accepted}, accepted before this restart (snapshot.state_file): load that same snapshot or a newer revision, or force a push to roll back"
    )]
    BelowAccepted {
        /// The candidate's revision.
        candidate: u64,
        /// The revision in the state file.
        accepted: u64,
    },
    /// A delta that is corrupted, truncated, or does not give its target.
    #[error("the delta is refused: {0}")]
    Delta(DeltaError),
    /// A delta made for another revision than the one serving.
    #[error("{0}")]
    WrongBase(DeltaError),
    /// A delta, and no snapshot serving for it to apply to.
    #[error(
        "no snapshot is serving, so a delta has nothing to apply to: install the full snapshot first"
    )]
    NoBase,
    /// One principal's view (`snapshot redact --for`), not a directory:
    /// serving it would deny everyone else.
    #[error(
        "this is one principal's view (snapshot redact --for), not a directory: push the snapshot built from the directory"
    )]
    View,
}

impl SwapError {
    /// A short stable code for responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            SwapError::Header(_) => "bad_header",
            SwapError::TooLarge { .. } => "too_large",
            SwapError::Stale { .. } | SwapError::BelowAccepted { .. } => "stale_revision",
            SwapError::Load(_) => "refused",
            SwapError::Signature(SignatureError::Unsigned) => "unsigned",
            SwapError::Signature(_) => "bad_signature",
            SwapError::View => "view_not_directory",
            SwapError::Delta(_) => "bad_delta",
            SwapError::WrongBase(_) | SwapError::NoBase => "wrong_base",
        }
    }
}

/// A decision could not be made; the request is denied with 503.
#[derive(Debug, Error)]
pub enum Unavailable {
    /// No snapshot was ever loaded.
    #[error("no snapshot is loaded yet")]
    NoSnapshot,
    /// Every instance is being rebuilt after a trap.
    #[error("the policy engine is recovering from a fault")]
    Recovering,
    /// The call trapped or ran out of time; its instance is being rebuilt.
    #[error("the policy engine failed on this request: {0}")]
    Fault(HostError),
}

impl Unavailable {
    /// The reason code of the 503 it becomes.
    pub fn reason(&self) -> &'static str {
        match self {
            Unavailable::NoSnapshot => "no_snapshot",
            _ => "engine_unavailable",
        }
    }
}

/// One engine instance slot; `None` while it is rebuilt.
type Slot = Mutex<Option<PolicyInstance>>;

/// A loaded snapshot: its bytes and its instances.
pub struct Generation {
    /// The snapshot's revision.
    pub revision: u64,
    /// SHA-256 of the body, hex.
    pub sha256: String,
    /// When the snapshot was built (Unix seconds).
    pub created_at: i64,
    /// When it became current.
    pub loaded_at: SystemTime,
    /// Where it came from.
    pub source: Source,
    /// Whether it came as a delta to the generation before it.
    pub delta: bool,
    bytes: Arc<Vec<u8>>,
    /// Where the rows of its editable tables are, so that a delta can be
    /// applied to its bytes in place: carried from the delta that made
    /// it, or walked once after a full snapshot is swapped in.
    layout: std::sync::OnceLock<Option<Arc<Layout>>>,
    /// The loaded snapshot every instance starts from.
    image: Arc<MemoryImage>,
    slots: Box<[Slot]>,
    rebuilding: AtomicUsize,
    views: Arc<Views>,
}

impl Generation {
    /// Runs `f` on one of this generation's instances. Each worker thread
    /// prefers its own slot, so instances are rarely contended.
    pub fn with_instance<T>(
        self: &Arc<Self>,
        pool: &Arc<EnginePool>,
        f: impl FnOnce(&mut PolicyInstance) -> Result<T, HostError>,
    ) -> Result<T, Unavailable> {
        let n = self.slots.len();
        let home = worker_index() % n;
        #[allow(
            clippy::indexing_slicing,
            reason = "an index modulo the number of slots"
        )]
        let slot = |i: usize| &self.slots[(home + i) % n];
        // A free working instance, home first; if all are busy, wait for one.
        let mut guard = (0..n)
            .find_map(|i| self.usable(pool, slot(i), false))
            .or_else(|| (0..n).find_map(|i| self.usable(pool, slot(i), true)))
            .ok_or(Unavailable::Recovering)?;
        let Some(instance) = guard.as_mut() else {
            return Err(Unavailable::Recovering);
        };
        match f(instance) {
            Ok(v) => Ok(v),
            Err(e @ HostError::Trap(_)) => {
                *guard = None;
                drop(guard);
                pool.traps.fetch_add(1, Ordering::Relaxed);
                tracing::error!(revision = self.revision, error = %e, "policy module trapped; rebuilding the instance");
                self.rebuild(pool);
                Err(Unavailable::Fault(e))
            }
            Err(HostError::NoSnapshot) => Err(Unavailable::NoSnapshot),
            Err(e) => Err(Unavailable::Fault(e)),
        }
    }

    /// Locks `slot` (waiting for it if `wait`) and returns it if it holds a
    /// working instance. A slot poisoned by a panic mid-call may hold an
    /// instance in any state: it is emptied and rebuilt.
    fn usable<'a>(
        self: &Arc<Self>,
        pool: &Arc<EnginePool>,
        slot: &'a Slot,
        wait: bool,
    ) -> Option<MutexGuard<'a, Option<PolicyInstance>>> {
        let locked = if wait {
            slot.lock()
        } else {
            match slot.try_lock() {
                Ok(g) => Ok(g),
                Err(TryLockError::WouldBlock) => return None,
                Err(TryLockError::Poisoned(p)) => Err(p),
            }
        };
        match locked {
            Ok(g) => g.is_some().then_some(g),
            Err(poisoned) => {
                *poisoned.into_inner() = None;
                slot.clear_poison();
                self.rebuild(pool);
                None
            }
        }
    }

    /// Refills every empty slot in the background.
    fn rebuild(self: &Arc<Self>, pool: &Arc<EnginePool>) {
        if self.rebuilding.fetch_add(1, Ordering::AcqRel) > 0 {
            // A rebuild is running; it rescans the slots before it ends.
            return;
        }
        let generation = Arc::clone(self);
        let pool = Arc::clone(pool);
        let spawned = std::thread::Builder::new()
            .name("portcullis-rebuild".into())
            .spawn(move || {
                loop {
                    for slot in generation.slots.iter() {
                        let empty = slot.lock().map(|g| g.is_none()).unwrap_or(true);
                        if !empty {
                            continue;
                        }
                        match pool.instance_from(&generation.image) {
                            Ok(instance) => {
                                let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
                                *g = Some(instance);
                                tracing::info!(
                                    revision = generation.revision,
                                    "policy instance rebuilt"
                                );
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "rebuilding a policy instance failed; retrying");
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                    // Requests that trapped meanwhile asked for another pass.
                    if generation.rebuilding.swap(0, Ordering::AcqRel) <= 1 {
                        break;
                    }
                    generation.rebuilding.store(1, Ordering::Release);
                }
            });
        if let Err(e) = spawned {
            self.rebuilding.store(0, Ordering::Release);
            tracing::error!(error = %e, "cannot start a rebuild thread");
        }
    }

    /// Makes the next call on every instance trap (fault injection for
    /// tests of the trap path; see `PolicyInstance::interrupt_next_call`).
    #[cfg(feature = "testing")]
    pub fn interrupt_next_calls(&self) {
        for slot in self.slots.iter() {
            if let Some(i) = slot.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                i.interrupt_next_call();
            }
        }
    }

    /// Makes the next call on every instance wait `stall` once its
    /// deadline is armed (see `PolicyInstance::stall_next_call`).
    #[cfg(feature = "testing")]
    pub fn stall_next_calls(&self, stall: Duration) {
        for slot in self.slots.iter() {
            if let Some(i) = slot.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                i.stall_next_call(stall);
            }
        }
    }

    /// The loaded snapshot every instance of this generation starts from.
    pub fn image(&self) -> &Arc<MemoryImage> {
        &self.image
    }

    /// Where the rows of this snapshot's editable tables are (walked on
    /// first use; `None` if the bytes cannot be walked, and then deltas
    /// are applied in full).
    pub fn layout(&self) -> Option<Arc<Layout>> {
        self.layout
            .get_or_init(|| match Layout::of(&self.bytes) {
                Ok(layout) => Some(Arc::new(layout)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot lay out the snapshot's rows; deltas to it are applied in full");
                    None
                }
            })
            .clone()
    }

    /// The browser views of this generation.
    pub fn views(&self) -> &Arc<Views> {
        &self.views
    }

    /// Size of the snapshot in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Whether this generation was loaded from exactly these bytes.
    pub fn holds(&self, bytes: &[u8]) -> bool {
        *self.bytes == *bytes
    }

    /// Instances ready to serve now.
    pub fn healthy_instances(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.lock().map(|g| g.is_some()).unwrap_or(false))
            .count()
    }
}

thread_local! {
    /// The slot this thread prefers: set by proxy workers, first come
    /// first served for any other thread.
    static WORKER_INDEX: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Makes the calling thread prefer instance slot `index` (modulo the
/// number of slots).
pub fn set_worker_index(index: usize) {
    WORKER_INDEX.with(|i| i.set(Some(index)));
}

fn worker_index() -> usize {
    WORKER_INDEX.with(|i| match i.get() {
        Some(index) => index,
        None => {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let index = NEXT.fetch_add(1, Ordering::Relaxed);
            i.set(Some(index));
            index
        }
    })
}

/// The compiled module, the instance limits, and the epoch clock.
pub struct EnginePool {
    module: PolicyModule,
    limits: InstanceLimits,
    instances: usize,
    traps: AtomicU64,
    ticking: Arc<AtomicBool>,
}

impl EnginePool {
    /// `instances` per generation (one per worker thread); starts the epoch
    /// clock that bounds every call.
    pub fn new(
        module: PolicyModule,
        limits: InstanceLimits,
        instances: usize,
    ) -> std::io::Result<Arc<Self>> {
        let ticking = Arc::new(AtomicBool::new(true));
        let pool = Arc::new(EnginePool {
            module: module.clone(),
            limits,
            instances: instances.max(1),
            traps: AtomicU64::new(0),
            ticking: Arc::clone(&ticking),
        });
        std::thread::Builder::new()
            .name("portcullis-epoch".into())
            .spawn(move || {
                while ticking.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    module.tick();
                }
            })?;
        Ok(pool)
    }

    /// Traps seen so far.
    pub fn traps(&self) -> u64 {
        self.traps.load(Ordering::Relaxed)
    }

    /// Loads a snapshot once: the image every instance serving it starts from.
    fn load_image(&self, bytes: &[u8]) -> Result<Arc<MemoryImage>, HostError> {
        self.module.load_image(bytes, self.limits)
    }

    /// Applies a delta (`input`, a postcard `PatchInput`) to a copy of
    /// `image`'s engine: the new image.
    fn patch_image(
        &self,
        image: &Arc<MemoryImage>,
        input: &[u8],
    ) -> Result<(Arc<MemoryImage>, Derived), HostError> {
        self.module.patch_image(image, input, self.limits)
    }

    fn instance_from(&self, image: &Arc<MemoryImage>) -> Result<PolicyInstance, HostError> {
        self.module.instantiate_image(image, self.limits)
    }
}

impl Drop for EnginePool {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

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
    pub views: Option<super::views::Carried>,
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
        let clock = (std::time::Instant::now(), super::cpu_time::thread());
        let plan = self.plan(admitted)?;
        self.install_locked(&one, plan, clock, source, force)
    }

    /// How a candidate becomes the next generation — the one place that
    /// decides between applying a change to the serving engine in place
    /// and loading a snapshot in full: a delta that the serving snapshot's
    /// layout takes in place is a patch, else its target (the serving
    /// bytes with it applied) is loaded; a whole snapshot that differs
    /// from the serving one only by what a delta changes in place is
    /// found (`Delta::between`) and patched the same way, else loaded.
    fn plan(&self, admitted: Admitted) -> Result<Plan, SwapError> {
        let base = self.current.load_full();
        match admitted {
            Admitted::Delta(bytes, header) => {
                let Some(base) = base else {
                    return Err(SwapError::NoBase);
                };
                let base_header = Header::parse(&base.bytes)?;
                if !header.applies_to(&base_header) {
                    return Err(SwapError::WrongBase(
                        header.wrong_base(base_header.revision, &base_header.body_sha256),
                    ));
                }
                let delta = decode_delta(&bytes).map_err(SwapError::Delta)?;
                let in_place = match base.layout() {
                    Some(layout) => match delta.apply_in_place(&base.bytes, &layout) {
                        Ok(applied) => Some(applied),
                        Err(DeltaError::NotInPlace(why)) => {
                            tracing::info!(why, "the delta is applied in full");
                            None
                        }
                        Err(e) => return Err(SwapError::Delta(e)),
                    },
                    None => None,
                };
                match in_place {
                    Some(applied) => Ok(Plan {
                        header: Header::parse(&applied.snapshot)?,
                        patch: Some(Patch {
                            from: Arc::clone(&base.image),
                            input: patch_input(&delta, &applied.removed_grants)?,
                            layout: Arc::new(applied.layout),
                        }),
                        bytes: applied.snapshot,
                        delta: true,
                    }),
                    None => {
                        let target = delta.apply_to(&base.bytes).map_err(SwapError::Delta)?;
                        Ok(Plan {
                            header: Header::parse(&target)?,
                            bytes: target,
                            delta: true,
                            patch: None,
                        })
                    }
                }
            }
            Admitted::Snapshot(bytes, header) => {
                let patch = base.and_then(|base| self.snapshot_as_patch(&base, &bytes, &header));
                Ok(Plan {
                    header,
                    bytes,
                    delta: false,
                    patch,
                })
            }
        }
    }

    /// A whole snapshot that differs from the serving one (`base`) only by
    /// what a delta changes in place, as that patch; `None` when it is not
    /// one (or is not newer). The serving snapshot's layout is made in the
    /// background after every swap but the first (this waits for it, or
    /// walks it).
    fn snapshot_as_patch(&self, base: &Generation, bytes: &[u8], header: &Header) -> Option<Patch> {
        if header.revision <= base.revision {
            return None;
        }
        // New strings (a new user, a rename) are seen in the first bytes,
        // before anything is laid out.
        let same = Delta::same_strings(&base.bytes, bytes);
        self.patchable.store(same, Ordering::Relaxed);
        if !same {
            return None;
        }
        let layout = base.layout()?;
        let found = Delta::between(&base.bytes, &layout, bytes)
            .and_then(|delta| Ok((delta.apply_in_place(&base.bytes, &layout)?, delta)));
        let (applied, delta) = match found {
            Ok(done) => done,
            Err(DeltaError::NotInPlace(why)) => {
                tracing::debug!(why, "the snapshot is loaded in full");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the snapshot is loaded in full");
                return None;
            }
        };
        // The result hashes to the snapshot's own (signed) hash; the
        // snapshot's body must be those very bytes (it was not hashed).
        if applied
            .snapshot
            .get(portcullis_snapshots::header::HEADER_LEN..)
            != bytes.get(header.body_range())
        {
            tracing::warn!(
                "a snapshot read as a change in place did not reproduce its body; loading it in full"
            );
            return None;
        }
        let input = patch_input(&delta, &applied.removed_grants).ok()?;
        Some(Patch {
            from: Arc::clone(&base.image),
            input,
            layout: Arc::new(applied.layout),
        })
    }

    /// The image of a plan — its patch applied to the serving engine, or
    /// its bytes loaded — and the layout it brings; whether it was in
    /// place. The one fallback: a patch the engine does not apply is
    /// loaded in full (its bytes were checked already).
    fn load(&self, bytes: &Arc<Vec<u8>>, patch: Option<Patch>) -> Result<Swapped, SwapError> {
        let Some(Patch {
            from,
            input,
            layout,
        }) = patch
        else {
            return Ok(Swapped {
                image: self.pool.load_image(bytes).map_err(SwapError::Load)?,
                layout: None,
                in_place: false,
            });
        };
        match self.pool.patch_image(&from, &input) {
            Ok((image, derived)) => {
                tracing::debug!(
                    dirty_pages = derived.dirty_pages,
                    overlay_pages = derived.overlay_pages,
                    compacted = derived.compacted,
                    "delta applied in place"
                );
                Ok(Swapped {
                    image,
                    layout: Some(layout),
                    in_place: true,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "the engine did not apply the change in place; loading the snapshot in full");
                Ok(Swapped {
                    image: self.pool.load_image(bytes).map_err(SwapError::Load)?,
                    layout: Some(layout),
                    in_place: false,
                })
            }
        }
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
        if let Some(current) = previous
            && header.revision <= current
            && !force
        {
            return Err(SwapError::Stale {
                candidate: header.revision,
                current,
            });
        }
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
        } = self.load(&bytes, patch)?;
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
        let (took, cpu) = (started.elapsed(), super::cpu_time::thread() - cpu_started);
        // Where the rows are, for the deltas to come: walked once per
        // full snapshot (about a decode), in the background, at the
        // loader's priority, once deltas are in use; a delta that comes
        // first waits for it (or walks it).
        // Also while whole snapshots keep their strings: the next one may
        // then be applied as the change it is (`as_patch`).
        if generation.layout.get().is_none()
            && (self.deltas_seen.load(Ordering::Relaxed)
                || (previous.is_some() && self.patchable.load(Ordering::Relaxed)))
        {
            let g = Arc::clone(&generation);
            let spawned = std::thread::Builder::new()
                .name("portcullis-layout".into())
                .spawn(move || {
                    super::priority::lower(super::priority::SWAP_NICENESS, "the snapshot layout");
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

/// A candidate whose header (and signature, as the policy asks) passed.
enum Admitted {
    Snapshot(Vec<u8>, Header),
    Delta(Vec<u8>, DeltaHeader),
}

/// How an admitted candidate becomes the next generation
/// ([`Swapper::plan`]).
struct Plan {
    /// The snapshot it will serve (a delta's target, made and checked).
    bytes: Vec<u8>,
    header: Header,
    /// It came as a delta.
    delta: bool,
    /// The change to apply to the serving engine in place, when there is
    /// one; else `bytes` are loaded in full.
    patch: Option<Patch>,
}

/// What a plan loaded: the image, the layout it brings, whether it was
/// applied in place.
struct Swapped {
    image: Arc<MemoryImage>,
    layout: Option<Arc<Layout>>,
    in_place: bool,
}

/// A change applied to the serving engine in place.
struct Patch {
    /// The serving snapshot's image.
    from: Arc<MemoryImage>,
    /// The module's `PatchInput`.
    input: Vec<u8>,
    /// The target's layout.
    layout: Arc<Layout>,
}

/// The module's `PatchInput` for `delta` (postcard writes the tuple as
/// the struct).
fn patch_input(
    delta: &Delta,
    removed: &[portcullis_snapshots::body::GrantRec],
) -> Result<Vec<u8>, SwapError> {
    postcard::to_allocvec(&(
        delta.header.target_revision,
        delta.header.target_created_at,
        removed,
        &delta.body,
    ))
    .map_err(|e| SwapError::Delta(DeltaError::Encode(e.to_string())))
}
