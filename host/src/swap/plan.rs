//! How a candidate becomes the next generation, decided in one place: a
//! change the serving engine can take in place is applied to a copy of its
//! image (a patch), anything else is loaded in full, and a patch the
//! engine refuses is loaded in full — the one fallback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use portcullis_snapshots::delta::{Delta, DeltaError, DeltaHeader, Layout, decode_delta};
use portcullis_snapshots::header::Header;

use super::error::SwapError;
use super::generation::Generation;
use super::pool::EnginePool;
use crate::memory_image::MemoryImage;

/// A candidate whose header (and signature, as the policy asks) passed.
pub(super) enum Admitted {
    Snapshot(Vec<u8>, Header),
    Delta(Vec<u8>, DeltaHeader),
}

/// How an admitted candidate becomes the next generation
/// ([`plan`]).
pub(super) struct Plan {
    /// The snapshot it will serve (a delta's target, made and checked).
    pub(super) bytes: Vec<u8>,
    pub(super) header: Header,
    /// It came as a delta.
    pub(super) delta: bool,
    /// The change to apply to the serving engine in place, when there is
    /// one; else `bytes` are loaded in full.
    pub(super) patch: Option<Patch>,
}

/// What a plan loaded: the image, the layout it brings, whether it was
/// applied in place.
pub(super) struct Swapped {
    pub(super) image: Arc<MemoryImage>,
    pub(super) layout: Option<Arc<Layout>>,
    pub(super) in_place: bool,
}

/// A change applied to the serving engine in place.
pub(super) struct Patch {
    /// The serving snapshot's image.
    pub(super) from: Arc<MemoryImage>,
    /// The module's `PatchInput`.
    pub(super) input: Vec<u8>,
    /// The target's layout.
    pub(super) layout: Arc<Layout>,
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

/// How a candidate becomes the next generation — the one place that
/// decides between applying a change to the serving engine in place
/// and loading a snapshot in full: a delta that the serving snapshot's
/// layout takes in place is a patch, else its target (the serving
/// bytes with it applied) is loaded; a whole snapshot that differs
/// from the serving one only by what a delta changes in place is
/// found (`Delta::between`) and patched the same way, else loaded.
pub(super) fn plan(
    base: Option<Arc<Generation>>,
    admitted: Admitted,
    patchable: &AtomicBool,
) -> Result<Plan, SwapError> {
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
            let patch = base.and_then(|base| snapshot_as_patch(&base, &bytes, &header, patchable));
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
fn snapshot_as_patch(
    base: &Generation,
    bytes: &[u8],
    header: &Header,
    patchable: &AtomicBool,
) -> Option<Patch> {
    if header.revision <= base.revision {
        return None;
    }
    // New strings (a new user, a rename) are seen in the first bytes,
    // before anything is laid out.
    let same = Delta::same_strings(&base.bytes, bytes);
    patchable.store(same, Ordering::Relaxed);
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
pub(super) fn load(
    pool: &EnginePool,
    bytes: &Arc<Vec<u8>>,
    patch: Option<Patch>,
) -> Result<Swapped, SwapError> {
    let Some(Patch {
        from,
        input,
        layout,
    }) = patch
    else {
        return Ok(Swapped {
            image: pool.load_image(bytes).map_err(SwapError::Load)?,
            layout: None,
            in_place: false,
        });
    };
    match pool.patch_image(&from, &input) {
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
                image: pool.load_image(bytes).map_err(SwapError::Load)?,
                layout: Some(layout),
                in_place: false,
            })
        }
    }
}
