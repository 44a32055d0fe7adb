//! Image files: a loaded instance's memory kept as a sealed file (a memfd
//! on Linux), and the overlay of the pages a delta changed. Safe code: it
//! writes and seals files; mapping them is `mapping.rs`'s.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

#[cfg(target_os = "linux")]
use rustix::fs::{MemfdFlags, SealFlags};
use wasmtime::Val;

/// A loaded instance's linear memory and mutable globals, ready to start
/// any number of instances from: a sealed base file, and for an image made
/// by a delta, an overlay of the pages the delta changed.
pub struct MemoryImage {
    pub(super) base: Arc<OwnedFd>,
    pub(super) base_len: usize,
    pub(super) overlay: Option<Overlay>,
    pub(super) len: usize,
    /// Whether instances map every page up front (full loads), rather than
    /// on first touch (images made by deltas: most of their pages are
    /// already in memory, and a swap must cost little per worker).
    pub(super) populate: bool,
    /// The module's mutable globals, in the order of `ImageModule::globals`.
    pub(crate) globals: Vec<Val>,
}

/// Pages that replace the base's, in a sealed file of their own.
pub(super) struct Overlay {
    pub(super) file: OwnedFd,
    pub(super) runs: Vec<Run>,
}

/// `pages` pages from page `page` of the memory, at page `at` of the
/// overlay file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Run {
    pub(super) page: usize,
    pub(super) pages: usize,
    pub(super) at: usize,
}

/// What a delta's image cost: the pages it wrote, and whether it wrote
/// the whole memory again (the overlay had grown past its bound).
#[derive(Clone, Copy, Debug, Default)]
pub struct Derived {
    /// Pages the delta changed (written by the instance that applied it).
    pub dirty_pages: usize,
    /// Pages of the new image's overlay.
    pub overlay_pages: usize,
    /// Whether the image was written whole instead.
    pub compacted: bool,
}

impl MemoryImage {
    /// Size of the image in bytes (the loaded instance's memory size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the image is empty (never, for a loaded module).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Memory the image itself holds: the file's pages the load wrote
    /// (pages it never touched take none) and its overlay's. Shared by
    /// every instance, and not in any process's RSS once the loading
    /// instance is gone. An image made by a delta shares its base with
    /// the images before it: count it once.
    pub fn resident_bytes(&self) -> u64 {
        let blocks = |f: &OwnedFd| rustix::fs::fstat(f).map_or(0, |st| st.st_blocks as u64 * 512);
        blocks(&self.base) + self.overlay.as_ref().map_or(0, |o| blocks(&o.file))
    }

    /// Pages of this image that replace its base's.
    pub(super) fn overlay_pages(&self) -> impl Iterator<Item = usize> + '_ {
        self.overlay
            .iter()
            .flat_map(|o| o.runs.iter())
            .flat_map(|r| r.page..r.page + r.pages)
    }
}

pub(super) fn page_size() -> usize {
    rustix::param::page_size()
}

/// An overlay bigger than this share of the memory, or in more pieces
/// than this, is not worth its mappings: the image is written whole.
const OVERLAY_MAX_SHARE: usize = 4;
const OVERLAY_MAX_RUNS: usize = 4096;

/// The image of `memory` (the linear memory of an instance started from
/// `from`, which applied a delta): `from`'s base with an overlay of every
/// page that differs from it — those the instance wrote, and those
/// `from`'s own overlay held. `dirty` says which pages the instance wrote
/// (`written::written_pages`); without it, or when the overlay would grow
/// past its bound, the whole memory is written to a new base.
pub(super) fn derive(
    from: &MemoryImage,
    memory: &[u8],
    dirty: Option<Vec<bool>>,
    globals: Vec<Val>,
) -> io::Result<(MemoryImage, Derived)> {
    let ps = page_size();
    let pages = memory.len().div_ceil(ps);
    let mut stats = Derived {
        dirty_pages: dirty
            .as_ref()
            .map_or(pages, |d| d.iter().filter(|&&x| x).count()),
        ..Derived::default()
    };
    let whole = |stats: &mut Derived| -> io::Result<(MemoryImage, Derived)> {
        let file = new_file()?;
        write_at(&file, memory, 0)?;
        let mut image = seal(file, memory.len(), globals.clone())?;
        image.populate = false;
        stats.compacted = true;
        Ok((image, *stats))
    };
    let Some(mut dirty) = dirty else {
        return whole(&mut stats);
    };
    for p in from.overlay_pages() {
        if let Some(d) = dirty.get_mut(p) {
            *d = true;
        }
    }
    let mut runs = Vec::new();
    let mut at = 0;
    let mut p = 0;
    while p < pages {
        if dirty.get(p).copied().unwrap_or(false) {
            let start = p;
            while dirty.get(p).copied().unwrap_or(false) {
                p += 1;
            }
            runs.push(Run {
                page: start,
                pages: p - start,
                at,
            });
            at += p - start;
        } else {
            p += 1;
        }
    }
    stats.overlay_pages = at;
    if at * OVERLAY_MAX_SHARE > pages || runs.len() > OVERLAY_MAX_RUNS {
        return whole(&mut stats);
    }
    let file = new_file()?;
    rustix::fs::ftruncate(&*file, (at * ps) as u64)?;
    for r in &runs {
        let bytes = memory
            .get(r.page * ps..((r.page + r.pages) * ps).min(memory.len()))
            .unwrap_or_default();
        write_at(&file, bytes, (r.at * ps) as u64)?;
    }
    let file =
        Arc::try_unwrap(file).map_err(|_| io::Error::other("the overlay file is still shared"))?;
    #[cfg(target_os = "linux")]
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )?;
    Ok((
        MemoryImage {
            base: Arc::clone(&from.base),
            base_len: from.base_len,
            overlay: Some(Overlay { file, runs }),
            len: memory.len(),
            populate: false,
            globals,
        },
        stats,
    ))
}

pub(super) fn write_at(file: &OwnedFd, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = rustix::io::pwrite(file, bytes, offset)?;
        if n == 0 {
            return Err(io::Error::other("the image file takes no more bytes"));
        }
        bytes = bytes.get(n..).unwrap_or_default();
        offset += n as u64;
    }
    Ok(())
}

/// A new, empty file for an instance to load a snapshot into: a memfd on
/// Linux; elsewhere an unlinked temporary file (the same mappings, without
/// seals).
pub(crate) fn new_file() -> io::Result<Arc<OwnedFd>> {
    #[cfg(target_os = "linux")]
    let fd = rustix::fs::memfd_create(
        "portcullis-snapshot",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    #[cfg(not(target_os = "linux"))]
    let fd = {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("portcullis-image-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        OwnedFd::from(file)
    };
    Ok(Arc::new(fd))
}

/// Seals the file an instance loaded into (after that instance is gone):
/// from now on nothing can write, grow or shrink it, so every mapping of
/// it sees the same image (Linux; elsewhere the file is unlinked and only
/// this process holds it).
pub(crate) fn seal(file: Arc<OwnedFd>, len: usize, globals: Vec<Val>) -> io::Result<MemoryImage> {
    let file = Arc::try_unwrap(file).map_err(|_| {
        io::Error::other("the loading instance still maps the image; it cannot be sealed")
    })?;
    #[cfg(target_os = "linux")]
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )?;
    Ok(MemoryImage {
        base: Arc::new(file),
        base_len: len,
        overlay: None,
        len,
        populate: true,
        globals,
    })
}
