//! The engine compiled into the process, behind the same interface as the
//! wasmtime host ([`crate::engine_host::EngineHost`]). One generation is
//! shared by every worker (a loaded engine is immutable, so there is no
//! instance per worker and no image to map); a full snapshot is loaded
//! natively; a delta is applied to the serving snapshot's bytes and, when
//! it can be, to a copy of the serving engine in place.
//!
//! It decides nothing in the gateway today: what it gives up is the
//! sandbox (a bug in the engine is a bug in the gateway's process, with no
//! memory limit, no deadline and no trap to rebuild from). It is here so
//! that its cost and the wasmtime host's are on the table side by side
//! (`cargo bench -p portcullis-host --bench hosts`). Signatures and the
//! accepted-revision floor are the wasmtime swapper's; this host checks
//! revision order, views and deltas' bases only.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use policy_wasm::{Decision, Engine, Request};
use portcullis_snapshots::Candidate;
use portcullis_snapshots::delta::{DeltaError, DeltaHeader, Layout, decode_delta};
use portcullis_snapshots::header::Header;

use crate::cpu_time;
use crate::engine_host::EngineHost;
use crate::module::HostError;
use crate::swap::{Installed, Source, SwapError, Unavailable};

/// A loaded snapshot: its bytes and its engine.
pub struct NativeGeneration {
    /// The snapshot's revision.
    pub revision: u64,
    bytes: Arc<Vec<u8>>,
    layout: OnceLock<Option<Arc<Layout>>>,
    engine: Engine,
}

impl NativeGeneration {
    /// The engine serving this generation.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn layout(&self) -> Option<Arc<Layout>> {
        self.layout
            .get_or_init(|| Layout::of(&self.bytes).ok().map(Arc::new))
            .clone()
    }
}

/// Holds the current generation and installs new ones, one at a time.
pub struct NativeHost {
    current: ArcSwapOption<NativeGeneration>,
    install_lock: Mutex<()>,
    max_bytes: u64,
}

impl NativeHost {
    /// An empty host accepting candidates of up to `max_bytes`.
    pub fn new(max_bytes: u64) -> Self {
        NativeHost {
            current: ArcSwapOption::empty(),
            install_lock: Mutex::new(()),
            max_bytes,
        }
    }

    /// The generation serving now.
    pub fn current(&self) -> Option<Arc<NativeGeneration>> {
        self.current.load_full()
    }

    /// The target of a delta to `base`, and its engine: in place on a copy
    /// of the serving engine when the delta allows it, else loaded.
    fn apply(base: &NativeGeneration, bytes: &[u8]) -> Result<(Vec<u8>, Engine, bool), SwapError> {
        let header = DeltaHeader::parse(bytes).map_err(SwapError::Delta)?;
        let base_header = Header::parse(&base.bytes)?;
        if !header.applies_to(&base_header) {
            return Err(SwapError::WrongBase(
                header.wrong_base(base_header.revision, &base_header.body_sha256),
            ));
        }
        let delta = decode_delta(bytes).map_err(SwapError::Delta)?;
        if let Some(layout) = base.layout() {
            match delta.apply_in_place(&base.bytes, &layout) {
                Ok(applied) => {
                    let mut engine = base.engine.clone();
                    let patched = engine.apply_delta(
                        &delta.body,
                        &applied.removed_grants,
                        delta.header.target_revision,
                        delta.header.target_created_at,
                    );
                    if patched.is_ok() {
                        return Ok((applied.snapshot, engine, true));
                    }
                    let engine = load(&applied.snapshot)?;
                    return Ok((applied.snapshot, engine, false));
                }
                Err(DeltaError::NotInPlace(_)) => {}
                Err(e) => return Err(SwapError::Delta(e)),
            }
        }
        let target = delta.apply_to(&base.bytes).map_err(SwapError::Delta)?;
        let engine = load(&target)?;
        Ok((target, engine, false))
    }
}

fn load(bytes: &[u8]) -> Result<Engine, SwapError> {
    Engine::load(bytes).map_err(|e| SwapError::Load(HostError::Load(e.to_string())))
}

impl EngineHost for NativeHost {
    fn install(
        &self,
        candidate: Candidate,
        _source: Source,
        force: bool,
    ) -> Result<Installed, SwapError> {
        if candidate.bytes().len() as u64 > self.max_bytes {
            return Err(SwapError::TooLarge {
                size: candidate.bytes().len() as u64,
                max: self.max_bytes,
            });
        }
        let _one = self.install_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (started, cpu_started) = (Instant::now(), cpu_time::thread());
        let base = self.current.load_full();
        let (bytes, engine, delta, in_place) = match candidate {
            Candidate::Snapshot(bytes) => {
                if Header::parse(&bytes)?.is_view() {
                    return Err(SwapError::View);
                }
                let engine = load(&bytes)?;
                (bytes, engine, false, false)
            }
            Candidate::Delta(bytes) => {
                let base = base.as_ref().ok_or(SwapError::NoBase)?;
                let (target, engine, in_place) = Self::apply(base, &bytes)?;
                (target, engine, true, in_place)
            }
        };
        let header = Header::parse(&bytes)?;
        let previous = base.as_ref().map(|g| g.revision);
        SwapError::unless_newer(header.revision, previous, force)?;
        let generation = NativeGeneration {
            revision: header.revision,
            bytes: Arc::new(bytes),
            layout: OnceLock::new(),
            engine,
        };
        self.current.store(Some(Arc::new(generation)));
        Ok(Installed {
            revision: header.revision,
            previous,
            sha256: hex::encode(header.body_sha256),
            delta,
            in_place,
            views: None,
            took: started.elapsed(),
            cpu: cpu_time::thread().saturating_sub(cpu_started),
            image_bytes: 0,
        })
    }

    fn check(&self, request: &Request<'_>) -> Result<Decision, Unavailable> {
        let generation = self.current.load();
        let generation = generation.as_ref().ok_or(Unavailable::NoSnapshot)?;
        Ok(generation.engine.check(request))
    }

    fn revision(&self) -> Option<u64> {
        self.current.load().as_ref().map(|g| g.revision)
    }
}
