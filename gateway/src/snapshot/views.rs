//! Browser views of one generation: each principal's view
//! (`policy_wasm::Engine::view`, policy-wasm/README.md#views), cut from one
//! native engine that this generation loads the first time a browser asks
//! (or right after a swap, when the previous generation served browsers).
//!
//! A crowd asking at once is served without piling up work: one cut per
//! principal at a time (single flight — the others wait for it), on the
//! view builders' threads only (so the proxy's workers never wait behind a
//! cut), and a cache bounded by bytes and by entries. A view's `ETag` is
//! the hash of its content, so a browser whose view a push did not change
//! gets `304 Not Modified`.

use std::sync::{Arc, OnceLock};

use policy_wasm::Engine;
use portcullis_snapshots::signature;

use super::view_builder::ViewBuilder;

/// One principal's view, ready to serve.
pub struct View {
    /// The snapshot bytes (signed when the gateway signs views), shared by
    /// every response that sends them.
    pub bytes: bytes::Bytes,
    /// The entity tag: the SHA-256 of the view's body, so equal views of
    /// different revisions have equal tags.
    pub etag: String,
}

/// Weighs cached views by their size plus a fixed cost per entry, so the
/// cache is bounded by bytes and by entries alike: at most
/// `CACHE_BYTES / ENTRY_WEIGHT` views, however small.
#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<String, Arc<View>> for Weight {
    fn weight(&self, _: &String, v: &Arc<View>) -> u64 {
        v.bytes.len() as u64 + ENTRY_WEIGHT
    }
}

/// Bytes of views kept per generation.
const CACHE_BYTES: u64 = 128 << 20;
/// What each cached view counts for besides its bytes (32,768 views at most).
const ENTRY_WEIGHT: u64 = 4 << 10;

/// The views of one generation.
pub struct Views {
    snapshot: Arc<[u8]>,
    engine: OnceLock<Result<Arc<Engine>, String>>,
    cache: quick_cache::sync::Cache<String, Arc<View>, Weight>,
}

impl Views {
    /// Views of the snapshot `snapshot` (already validated by the swap).
    pub fn new(snapshot: Arc<[u8]>) -> Self {
        Views {
            snapshot,
            engine: OnceLock::new(),
            cache: quick_cache::sync::Cache::with_weighter(4096, CACHE_BYTES, Weight),
        }
    }

    /// Whether the engine views are cut from is loaded (browsers asked).
    pub fn in_use(&self) -> bool {
        self.engine.get().is_some()
    }

    /// The engine views are cut from, loaded on first use. Blocking: call
    /// it on a view builder or a thread of its own.
    pub fn engine(&self) -> Result<Arc<Engine>, String> {
        self.engine
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let engine = Engine::load(&self.snapshot).map_err(|e| e.to_string())?;
                tracing::info!(
                    revision = engine.revision(),
                    load_ms = started.elapsed().as_millis() as u64,
                    "engine for browser views loaded"
                );
                Ok(Arc::new(engine))
            })
            .clone()
    }

    /// The view of `principal`, signed by `signer` when given, and whether
    /// this call cut it (rather than finding it or waiting for another's).
    pub async fn get(
        self: &Arc<Self>,
        principal: &str,
        signer: Option<signature::SigningKey>,
        builders: &ViewBuilder,
    ) -> Result<(Arc<View>, bool), String> {
        let mut built = false;
        let view = self
            .cache
            .get_or_insert_async(principal, async {
                built = true;
                let views = Arc::clone(self);
                let principal = principal.to_string();
                builders
                    .run(move || views.cut(&principal, signer.as_ref()))
                    .await
            })
            .await?;
        Ok((view, built))
    }

    fn cut(
        &self,
        principal: &str,
        signer: Option<&signature::SigningKey>,
    ) -> Result<Arc<View>, String> {
        let engine = self.engine()?;
        let mut bytes = engine.view(principal).map_err(|e| e.to_string())?;
        let header =
            portcullis_snapshots::header::Header::parse(&bytes).map_err(|e| e.to_string())?;
        let etag = format!(
            "\"v-{}\"",
            hex::encode(header.body_sha256.get(..16).unwrap_or_default())
        );
        if let Some(key) = signer {
            bytes = signature::sign(&bytes, key).map_err(|e| e.to_string())?;
        }
        Ok(Arc::new(View {
            bytes: bytes::Bytes::from(bytes),
            etag,
        }))
    }
}
