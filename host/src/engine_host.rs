//! What the gateway asks of a host, whichever runs the engine: install a
//! candidate (a snapshot or a delta, validated completely, nothing changed
//! on error), decide a request on the generation serving, say which
//! revision serves. The wasmtime host ([`crate::swap::Swapper`]) is the
//! one the gateway runs; [`crate::native::NativeHost`] runs the same
//! engine compiled into the process, so the two can be measured side by
//! side (`benches/hosts.rs`).

use policy_wasm::{Decision, Request};
use portcullis_snapshots::Candidate;

use crate::swap::{Installed, Source, SwapError, Swapper, Unavailable};

/// A host of the engine.
pub trait EngineHost: Send + Sync {
    /// Installs `candidate` from `source` (`force`: an older revision too).
    fn install(
        &self,
        candidate: Candidate,
        source: Source,
        force: bool,
    ) -> Result<Installed, SwapError>;

    /// Decides `request` on the generation serving now.
    fn check(&self, request: &Request<'_>) -> Result<Decision, Unavailable>;

    /// The revision serving, if any.
    fn revision(&self) -> Option<u64>;
}

impl EngineHost for Swapper {
    fn install(
        &self,
        candidate: Candidate,
        source: Source,
        force: bool,
    ) -> Result<Installed, SwapError> {
        Swapper::install(self, candidate, source, force)
    }

    fn check(&self, request: &Request<'_>) -> Result<Decision, Unavailable> {
        let generation = self.current().ok_or(Unavailable::NoSnapshot)?;
        generation.with_instance(self.pool(), |i| i.check(request))
    }

    fn revision(&self) -> Option<u64> {
        self.current().map(|g| g.revision)
    }
}
