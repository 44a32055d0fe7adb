//! Browser views of one generation: each principal's view
//! (`policy_wasm::Engine::view`, policy-wasm/README.md#views), cut from one
//! native engine that this generation loads the first time a browser asks
//! (or right after a swap, when the previous generation served browsers).
//!
//! A crowd asking at once is served without piling up work: one cut per
//! principal at a time (single flight — the others wait for it), on the
//! view builders' threads only (below the proxy workers' priority), and a
//! cache bounded by bytes and by entries. A view's `ETag` is the hash of
//! its content, so a browser whose view a push did not change gets
//! `304 Not Modified`.
//!
//! A push usually changes a person or two. After a swap, the new
//! generation compares fingerprints of the two snapshots
//! (`portcullis_snapshots::fingerprint`) and keeps every cached view the
//! change cannot reach (`Engine::view_changed_by`) — the same bytes, so a
//! browser that holds one gets `304` — and the crowd that follows a push
//! is mostly served from the cache.

use std::sync::{Arc, OnceLock};

use policy_wasm::{Engine, ViewScope};
use portcullis_snapshots::fingerprint::{Change, Fingerprint};
use portcullis_snapshots::header::Header;
use portcullis_snapshots::signature;

use super::view_builder::ViewBuilder;

/// Views this large or larger are kept and sent gzipped: an administrator's
/// view holds its users and runs to megabytes (gzip takes a 3.6 MB view to
/// 0.9 MB), while most views are a few kilobytes, not worth the CPU.
pub const GZIP_FROM: usize = 32 << 10;

/// One principal's view, ready to serve.
pub struct View {
    /// The snapshot bytes (signed when the gateway signs views), gzipped
    /// when `gzipped`, shared by every response that sends them.
    pub body: bytes::Bytes,
    /// Whether `body` is gzipped (a view of at least [`GZIP_FROM`] bytes).
    pub gzipped: bool,
    /// The entity tag, weak (the same for the gzipped and the plain
    /// bytes): the SHA-256 of the view's body, so equal views of different
    /// revisions have equal tags.
    pub etag: String,
    /// Where its other people come from: which changes reach it.
    scope: ViewScope,
}

/// Weighs cached views by their size plus a fixed cost per entry, so the
/// cache is bounded by bytes and by entries alike: at most
/// `snapshot.browser_view_cache_mb / ENTRY_WEIGHT` views, however small.
#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<String, Arc<View>> for Weight {
    fn weight(&self, _: &String, v: &Arc<View>) -> u64 {
        v.body.len() as u64 + ENTRY_WEIGHT
    }
}

/// Level 1: most of gzip's gain on views (usernames, ids) for a fraction
/// of its time.
fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::fast(),
    );
    z.write_all(bytes)?;
    z.finish()
}

impl View {
    /// The view's bytes, not gzipped: for a client that does not accept
    /// gzip (blocking for a large view: call it off the workers).
    pub fn plain(&self) -> Result<bytes::Bytes, String> {
        if !self.gzipped {
            return Ok(self.body.clone());
        }
        use std::io::Read;
        let mut out = Vec::with_capacity(self.body.len() * 4);
        flate2::read::GzDecoder::new(&self.body[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("cannot gunzip a view: {e}"))?;
        Ok(out.into())
    }
}

/// What each cached view counts for besides its bytes.
const ENTRY_WEIGHT: u64 = 4 << 10;

/// The engine views are cut from, and the fingerprint that tells what the
/// next snapshot changed.
struct Loaded {
    engine: Engine,
    fingerprint: Fingerprint,
}

/// The views of one generation.
pub struct Views {
    snapshot: Arc<Vec<u8>>,
    loaded: OnceLock<Result<Arc<Loaded>, String>>,
    cache: quick_cache::sync::Cache<String, Arc<View>, Weight>,
}

/// What [`Views::carry_from`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// Views kept for the new revision.
    pub kept: usize,
    /// Views the change reached (cut again when next asked for).
    pub dropped: usize,
}

impl Views {
    /// Views of the snapshot `snapshot` (already validated by the swap),
    /// keeping up to `cache_bytes` of them.
    pub fn new(snapshot: Arc<Vec<u8>>, cache_bytes: u64) -> Self {
        let items = (cache_bytes / ENTRY_WEIGHT).clamp(16, 1 << 16) as usize;
        // Few shards: each holds an equal share of the bytes, and views
        // range from a kilobyte to megabytes (an owner's), so many small
        // shards would each overflow with a few large views while the
        // cache as a whole had room. Views are asked for far less often
        // than decisions are made: lock contention does not matter here.
        let cache = match quick_cache::OptionsBuilder::new()
            .shards(2)
            .estimated_items_capacity(items)
            .weight_capacity(cache_bytes)
            .build()
        {
            Ok(options) => quick_cache::sync::Cache::with_options(
                options,
                Weight,
                quick_cache::DefaultHashBuilder::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            Err(_) => quick_cache::sync::Cache::with_weighter(items, cache_bytes, Weight),
        };
        Views {
            snapshot,
            loaded: OnceLock::new(),
            cache,
        }
    }

    /// Whether the engine views are cut from is loaded (browsers asked).
    pub fn in_use(&self) -> bool {
        self.loaded.get().is_some()
    }

    /// The engine views are cut from, loaded on first use. Blocking: call
    /// it on a view builder or a thread of its own.
    fn loaded(&self) -> Result<Arc<Loaded>, String> {
        self.loaded
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let snapshot =
                    portcullis_snapshots::decode(&self.snapshot).map_err(|e| e.to_string())?;
                let fingerprint = Fingerprint::of(&snapshot.body);
                let engine = Engine::from_snapshot(snapshot);
                tracing::info!(
                    revision = engine.revision(),
                    load_ms = started.elapsed().as_millis() as u64,
                    "engine for browser views loaded"
                );
                Ok(Arc::new(Loaded {
                    engine,
                    fingerprint,
                }))
            })
            .clone()
    }

    /// Keeps every view of `before` (the previous generation) that the
    /// change between the two snapshots cannot reach — the same bytes,
    /// shared: a view's revision is the one it was cut from, and a browser
    /// that already holds it gets `304` for it. Blocking: loads this
    /// generation's engine if needed.
    pub fn carry_from(&self, before: &Views) -> Result<Carried, String> {
        let now = self.loaded()?;
        let Some(Ok(then)) = before.loaded.get() else {
            return Ok(Carried::default());
        };
        let changed = match then.fingerprint.change_to(&now.fingerprint) {
            Change::Identical => Vec::new(),
            Change::Users(users) => users,
            Change::Other => {
                return Ok(Carried {
                    kept: 0,
                    dropped: before.cache.len(),
                });
            }
        };
        let mut carried = Carried::default();
        for (principal, view) in before.cache.iter() {
            if changed
                .iter()
                .any(|c| now.engine.view_changed_by(&view.scope, c))
                || self.cache.contains_key(&principal)
            {
                carried.dropped += 1;
                continue;
            }
            self.cache.insert(principal, view);
            carried.kept += 1;
        }
        Ok(carried)
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
        let loaded = self.loaded()?;
        let (mut bytes, scope) = loaded
            .engine
            .view_scoped(principal)
            .map_err(|e| e.to_string())?;
        let header = Header::parse(&bytes).map_err(|e| e.to_string())?;
        let etag = format!(
            "W/\"v-{}\"",
            hex::encode(header.body_sha256.get(..16).unwrap_or_default())
        );
        if let Some(key) = signer {
            bytes = signature::sign(&bytes, key).map_err(|e| e.to_string())?;
        }
        let gzipped = bytes.len() >= GZIP_FROM;
        if gzipped {
            bytes = gzip(&bytes).map_err(|e| format!("cannot gzip a view: {e}"))?;
        }
        Ok(Arc::new(View {
            body: bytes::Bytes::from(bytes),
            gzipped,
            etag,
            scope,
        }))
    }
}
