//! The compiled module every generation instantiates, the limits each
//! instance runs under, and the epoch clock that bounds every call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::deadline::TICK;
use crate::memory_image::{Derived, MemoryImage};
use crate::module::{HostError, InstanceLimits, PolicyInstance, PolicyModule};

/// The compiled module, the instance limits, and the epoch clock.
pub struct EnginePool {
    module: PolicyModule,
    limits: InstanceLimits,
    /// Instances per generation.
    pub(super) instances: usize,
    pub(super) traps: AtomicU64,
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
    pub(super) fn load_image(&self, bytes: &[u8]) -> Result<Arc<MemoryImage>, HostError> {
        self.module.load_image(bytes, self.limits)
    }

    /// Applies a delta (`input`, a postcard `PatchInput`) to a copy of
    /// `image`'s engine: the new image.
    pub(super) fn patch_image(
        &self,
        image: &Arc<MemoryImage>,
        input: &[u8],
    ) -> Result<(Arc<MemoryImage>, Derived), HostError> {
        self.module.patch_image(image, input, self.limits)
    }

    pub(super) fn instance_from(
        &self,
        image: &Arc<MemoryImage>,
    ) -> Result<PolicyInstance, HostError> {
        self.module.instantiate_image(image, self.limits)
    }
}

impl Drop for EnginePool {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}
