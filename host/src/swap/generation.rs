//! A loaded snapshot serving requests: its bytes, its memory image, one
//! instance slot per worker started from that image, and the browser
//! views cut from it. An instance that traps is emptied and rebuilt from
//! the image in the background while the others serve.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, SystemTime};

use portcullis_snapshots::delta::Layout;

use super::error::{Source, Unavailable};
use super::pool::EnginePool;
use crate::memory_image::MemoryImage;
use crate::module::{HostError, PolicyInstance};
use crate::views::Views;

/// One engine instance slot; `None` while it is rebuilt.
pub(super) type Slot = Mutex<Option<PolicyInstance>>;

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
    pub(super) bytes: Arc<Vec<u8>>,
    /// Where the rows of its editable tables are, so that a delta can be
    /// applied to its bytes in place: carried from the delta that made
    /// it, or walked once after a full snapshot is swapped in.
    pub(super) layout: std::sync::OnceLock<Option<Arc<Layout>>>,
    /// The loaded snapshot every instance starts from.
    pub(super) image: Arc<MemoryImage>,
    pub(super) slots: Box<[Slot]>,
    pub(super) rebuilding: AtomicUsize,
    pub(super) views: Arc<Views>,
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
