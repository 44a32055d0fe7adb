//! One loaded snapshot, shared by every worker: the linear memory of an
//! instance that loaded it, kept as a sealed in-memory file and mapped
//! copy-on-write into each worker's instance.
//!
//! Loading a snapshot (decode, verify, index) is the expensive part of a
//! swap, and its result is the same in every instance. So a replica loads
//! once, in an instance whose linear memory is a `memfd` mapped shared,
//! and every other instance maps that file privately: it starts with the
//! loaded engine in place, reads share the file's pages, and only the pages
//! an instance writes (its stack, its result buffers) become its own. A
//! swap costs one load plus a few system calls per worker; a trap costs a
//! fresh mapping of the same image.
//!
//! A delta applied in place changes a few pages of that memory: the
//! instance that applies it starts from the serving image, and the pages it
//! writes become an **overlay** on the same base file (`derive`). Workers
//! do not map the new image afresh (every page would fault in again): the
//! mapping of each gone instance is kept as a **spare** and reset to the
//! next image on its base — only its written pages and the overlays'
//! pages change (`SPARES`).
//!
//! wasmtime builds each instance's memory through one [`MemoryCreator`] per
//! engine, which is not told which instance it is building for: the caller
//! names the backing for the next memory on its thread (`backed_by`),
//! and instantiation, which is synchronous, creates the memory on that
//! same thread. The module is rewritten so that instantiation writes no
//! data segments over the image (`image_module.rs`).
#![allow(
    unsafe_code,
    reason = "wasmtime's host-memory interface hands it raw mappings: each is reserved whole (memory plus guard) at creation, only ever grown in place within its reservation, and unmapped once, when wasmtime drops it"
)]

use std::cell::RefCell;
use std::ffi::c_void;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

#[cfg(target_os = "linux")]
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use wasmtime::{LinearMemory, MemoryCreator, MemoryType, Val};

/// A loaded instance's linear memory and mutable globals, ready to start
/// any number of instances from: a sealed base file, and for an image made
/// by a delta, an overlay of the pages the delta changed.
pub struct MemoryImage {
    base: Arc<OwnedFd>,
    base_len: usize,
    overlay: Option<Overlay>,
    len: usize,
    /// Whether instances map every page up front (full loads), rather than
    /// on first touch (images made by deltas: most of their pages are
    /// already in memory, and a swap must cost little per worker).
    populate: bool,
    /// The module's mutable globals, in the order of `ImageModule::globals`.
    pub(crate) globals: Vec<Val>,
}

/// Pages that replace the base's, in a sealed file of their own.
struct Overlay {
    file: OwnedFd,
    runs: Vec<Run>,
}

/// `pages` pages from page `page` of the memory, at page `at` of the
/// overlay file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    page: usize,
    pages: usize,
    at: usize,
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
    fn overlay_pages(&self) -> impl Iterator<Item = usize> + '_ {
        self.overlay
            .iter()
            .flat_map(|o| o.runs.iter())
            .flat_map(|r| r.page..r.page + r.pages)
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// An overlay bigger than this share of the memory, or in more pieces
/// than this, is not worth its mappings: the image is written whole.
const OVERLAY_MAX_SHARE: usize = 4;
const OVERLAY_MAX_RUNS: usize = 4096;

/// The image of `memory` (the linear memory of an instance started from
/// `from`, which applied a delta): `from`'s base with an overlay of every
/// page that differs from it — those the instance wrote, and those
/// `from`'s own overlay held. Linux finds the written pages in
/// `/proc/self/pagemap` (a private mapping's written page is anonymous);
/// elsewhere, or when the overlay would grow past its bound, the whole
/// memory is written to a new base.
pub(crate) fn derive(
    from: &MemoryImage,
    memory: &[u8],
    globals: Vec<Val>,
) -> io::Result<(MemoryImage, Derived)> {
    let ps = page_size();
    let pages = memory.len().div_ceil(ps);
    let dirty = written_pages(memory, ps);
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

fn write_at(file: &OwnedFd, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
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

/// Which pages of `memory` (a private mapping of an image) its instance
/// wrote: present and anonymous (a written page of a private file mapping
/// is a private copy). Asked of the kernel with the `PAGEMAP_SCAN` ioctl
/// (Linux 6.7+: ranges, a few µs), else read from `/proc/self/pagemap`
/// (bit 63 present, bit 61 file-backed; a walk of every page). `None`
/// where neither can be read.
#[cfg(target_os = "linux")]
fn written_pages(memory: &[u8], ps: usize) -> Option<Vec<bool>> {
    let pages = memory.len().div_ceil(ps);
    let start = memory.as_ptr() as usize;
    let file = std::fs::File::open("/proc/self/pagemap").ok()?;
    if let Ok(ranges) = pagemap_scan::anonymous(&file, start, pages * ps) {
        let mut written = vec![false; pages];
        for (from, to) in ranges {
            let (a, b) = ((from - start) / ps, (to - start).div_ceil(ps));
            for w in written.get_mut(a..b.min(pages)).unwrap_or_default() {
                *w = true;
            }
        }
        return Some(written);
    }
    read_pagemap(&file, memory, ps)
}

/// [`written_pages`] from the entries of `/proc/self/pagemap`.
#[cfg(target_os = "linux")]
fn read_pagemap(file: &std::fs::File, memory: &[u8], ps: usize) -> Option<Vec<bool>> {
    use std::os::unix::fs::FileExt;
    let pages = memory.len().div_ceil(ps);
    let first = memory.as_ptr() as usize / ps;
    let mut raw = vec![0u8; pages * 8];
    file.read_exact_at(&mut raw, (first * 8) as u64).ok()?;
    Some(
        raw.chunks_exact(8)
            .map(|e| {
                let mut b = [0u8; 8];
                b.copy_from_slice(e);
                let e = u64::from_le_bytes(b);
                e & (1 << 63) != 0 && e & (1 << 61) == 0
            })
            .collect(),
    )
}

/// The `PAGEMAP_SCAN` ioctl of `/proc/<pid>/pagemap` (linux/fs.h).
#[cfg(target_os = "linux")]
mod pagemap_scan {
    use std::io;

    use rustix::ioctl::{Opcode, Updater, opcode};

    #[repr(C)]
    struct PmScanArg {
        size: u64,
        flags: u64,
        start: u64,
        end: u64,
        walk_end: u64,
        vec: u64,
        vec_len: u64,
        max_pages: u64,
        category_inverted: u64,
        category_mask: u64,
        category_anyof_mask: u64,
        return_mask: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct PageRegion {
        start: u64,
        end: u64,
        categories: u64,
    }

    const PAGE_IS_FILE: u64 = 1 << 2;
    const PAGE_IS_PRESENT: u64 = 1 << 3;
    const PAGEMAP_SCAN: Opcode = opcode::read_write::<PmScanArg>(b'f', 16);

    /// The ranges of `[start, start + len)` whose pages are present and not
    /// file-backed. An error on kernels without the ioctl.
    pub(super) fn anonymous(
        pagemap: &std::fs::File,
        start: usize,
        len: usize,
    ) -> io::Result<Vec<(usize, usize)>> {
        let mut out = Vec::new();
        let mut regions = vec![PageRegion::default(); 512];
        let end = (start + len) as u64;
        let mut at = start as u64;
        while at < end {
            regions.fill(PageRegion::default());
            let mut arg = PmScanArg {
                size: std::mem::size_of::<PmScanArg>() as u64,
                flags: 0,
                start: at,
                end,
                walk_end: 0,
                vec: regions.as_mut_ptr() as u64,
                vec_len: regions.len() as u64,
                max_pages: 0,
                // "Not file-backed" and "present", both required.
                category_inverted: PAGE_IS_FILE,
                category_mask: PAGE_IS_FILE | PAGE_IS_PRESENT,
                category_anyof_mask: 0,
                return_mask: PAGE_IS_FILE | PAGE_IS_PRESENT,
            };
            // SAFETY: PAGEMAP_SCAN takes a `pm_scan_arg` (laid out above,
            // its size passed in it) and writes at most `vec_len` regions
            // to `vec`, which holds that many.
            unsafe {
                rustix::ioctl::ioctl(pagemap, Updater::<PAGEMAP_SCAN, PmScanArg>::new(&mut arg))?;
            }
            // The regions it filled come first; the rest stay empty.
            out.extend(
                regions
                    .iter()
                    .take_while(|r| r.end > r.start)
                    .map(|r| (r.start as usize, r.end as usize)),
            );
            if arg.walk_end <= at {
                break;
            }
            at = arg.walk_end;
        }
        Ok(out)
    }
}

#[cfg(not(target_os = "linux"))]
fn written_pages(_memory: &[u8], _ps: usize) -> Option<Vec<bool>> {
    None
}

/// What the next memory created on this thread is backed by.
pub(crate) enum Backing {
    /// Zeroed anonymous memory (a fresh instance).
    Fresh,
    /// This file, mapped shared and grown with the memory: the instance
    /// that loads a snapshot writes its image.
    Writable(Arc<OwnedFd>),
    /// A private copy-on-write mapping of an image; its pages mapped up
    /// front if the image asks for it and `lazy` is false (an instance
    /// that runs one call, to apply a delta, touches few of them).
    Image { image: Arc<MemoryImage>, lazy: bool },
}

thread_local! {
    static NEXT: RefCell<Option<Backing>> = const { RefCell::new(None) };
}

/// Runs `instantiate` with the next memory created on this thread backed
/// by `backing`. Anything not created inside (or left unused) is fresh.
pub(crate) fn backed_by<T>(backing: Backing, instantiate: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            NEXT.with_borrow_mut(|n| *n = None);
        }
    }
    NEXT.with_borrow_mut(|n| *n = Some(backing));
    let _reset = Reset;
    instantiate()
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

/// The engine-wide creator of every instance's linear memory.
pub(crate) struct Creator;

// SAFETY: every memory it returns is a reservation of `reserved + guard`
// bytes that never moves, is accessible exactly up to `byte_size`, and
// stays inaccessible (PROT_NONE) beyond, as wasmtime's compiled code
// assumes when it elides bounds checks.
unsafe impl MemoryCreator for Creator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        _maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        let backing = NEXT.with_borrow_mut(Option::take).unwrap_or(Backing::Fresh);
        let reserved = reserved_size_in_bytes
            .ok_or_else(|| "wasmtime asked for a memory without a reservation".to_string())?;
        Mapping::new(backing, minimum, reserved, guard_size_in_bytes)
            .map(|m| Box::new(m) as Box<dyn LinearMemory>)
            .map_err(|e| format!("cannot map the instance's memory: {e}"))
    }
}

/// One instance's linear memory.
struct Mapping {
    base: *mut u8,
    /// Accessible bytes.
    size: usize,
    /// The reservation the memory may grow into without moving.
    capacity: usize,
    /// The whole mapping: capacity plus guard.
    mapped: usize,
    /// The shared file this memory writes through, if any.
    file: Option<Arc<OwnedFd>>,
    /// What it maps, when it maps an image: what makes it reusable for
    /// the next image on the same base.
    reuse: Option<Reuse>,
}

/// An image mapping's base and overlay, for reuse.
struct Reuse {
    /// The base file; dead once no image on it is left.
    base: std::sync::Weak<OwnedFd>,
    base_len: usize,
    /// Where an overlay file is mapped over the base.
    runs: Vec<Run>,
    /// How many instances have used this mapping before.
    uses: u32,
}

/// Mappings of instances that are gone, kept — page tables and all — to
/// start the next instances on images of the same base.
///
/// A delta's image differs from the one before it by a few pages, but a
/// fresh mapping of it has no page mapped: every worker would fault in
/// every page its requests touch again (about 1.3 ms per worker after a
/// one-user delta on the large directory), and unmapping the old ones
/// costs as much again. A spare is reset instead: the pages its instance
/// wrote are dropped (`MADV_DONTNEED` gives a private file mapping its
/// file's pages back), its old overlay is replaced by the base, and the
/// new overlay is mapped over it; every other page stays mapped. Linux
/// only (the written pages come from `/proc/self/pagemap`).
static SPARES: std::sync::Mutex<Vec<Mapping>> = std::sync::Mutex::new(Vec::new());
/// Spares kept at most (beyond, mappings are unmapped).
const MAX_SPARES: usize = 64;
/// Uses of one mapping at most: each overlay splits its mapping's areas,
/// and a mapping unmapped now and then starts whole again.
const MAX_USES: u32 = 64;

fn spares() -> std::sync::MutexGuard<'static, Vec<Mapping>> {
    SPARES.lock().unwrap_or_else(|p| p.into_inner())
}

/// A spare for `image` (same base, same reservation), if any; spares
/// whose base is gone are unmapped on the way.
fn take_spare(image: &MemoryImage, reserved: usize, mapped: usize) -> Option<Mapping> {
    let mut found = None;
    let stale: Vec<Mapping> = {
        let mut all = spares();
        let mut stale = Vec::new();
        let mut i = 0;
        while i < all.len() {
            let base = all
                .get(i)
                .and_then(|m| m.reuse.as_ref())
                .map(|r| r.base.clone());
            let dead = base.as_ref().is_none_or(|b| b.strong_count() == 0);
            let fits = all
                .get(i)
                .is_some_and(|m| m.capacity == reserved && m.mapped == mapped)
                && base.is_some_and(|b| std::sync::Weak::ptr_eq(&b, &Arc::downgrade(&image.base)));
            if dead {
                stale.push(all.swap_remove(i));
            } else if fits && found.is_none() {
                found = Some(all.swap_remove(i));
            } else {
                i += 1;
            }
        }
        stale
    };
    unmap_all(stale);
    found
}

/// Unmaps `mappings` (not kept as spares).
fn unmap_all(mappings: Vec<Mapping>) {
    for mut m in mappings {
        m.reuse = None;
        drop(m);
    }
}
// SAFETY: the mapping is owned by one wasmtime memory; wasmtime serializes
// access to it through its store.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` exposes only sizes and the base address.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(backing: Backing, minimum: usize, reserved: usize, guard: usize) -> io::Result<Self> {
        let mapped = reserved
            .checked_add(guard)
            .ok_or_else(|| io::Error::other("reservation overflows"))?;
        // Not for an instance that applies one delta (`lazy`): it maps
        // few pages, and writes many.
        if let Backing::Image { image, lazy: false } = &backing
            && image.len >= minimum
            && let Some(mut spare) = take_spare(image, reserved, mapped)
        {
            match spare.reset_to(image) {
                Ok(()) => return Ok(spare),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reuse a spare mapping; mapping the image afresh");
                    unmap_all(vec![spare]);
                }
            }
        }
        // SAFETY: a new private reservation at an address the kernel picks;
        // nothing else refers to it.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                mapped,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )?
        };
        let mut memory = Mapping {
            base: base.cast(),
            size: 0,
            capacity: reserved,
            mapped,
            file: None,
            reuse: None,
        };
        match backing {
            Backing::Fresh => memory.grow(minimum)?,
            Backing::Writable(file) => {
                memory.file = Some(file);
                memory.grow(minimum)?;
            }
            Backing::Image { image, lazy } => {
                if image.len < minimum || image.len > reserved {
                    return Err(io::Error::other(format!(
                        "an image of {} bytes does not fit a memory of {minimum}..{reserved} bytes",
                        image.len
                    )));
                }
                let from_base = image.base_len.min(image.len);
                if from_base > 0 {
                    // SAFETY: replaces the start of our own reservation
                    // (MAP_FIXED within it) with a private mapping of the
                    // sealed image.
                    unsafe {
                        rustix::mm::mmap(
                            base,
                            from_base,
                            ProtFlags::READ | ProtFlags::WRITE,
                            MapFlags::PRIVATE | MapFlags::FIXED,
                            &*image.base,
                            0,
                        )?;
                    }
                }
                if image.len > from_base {
                    // Memory the instance grew past the base: zero but for
                    // the overlay's pages.
                    // SAFETY: reserved pages of our own mapping, within it.
                    unsafe {
                        rustix::mm::mprotect(
                            base.cast::<u8>().add(from_base).cast(),
                            image.len - from_base,
                            MprotectFlags::READ | MprotectFlags::WRITE,
                        )?;
                    }
                }
                memory.map_overlay(&image)?;
                if image.populate && !lazy && image.len > 0 {
                    // Map the image's pages now, read-only and shared, on
                    // the installing thread: otherwise each would cost its
                    // first request a page fault. Writes still copy.
                    // Best effort (Linux 5.14 and later).
                    // SAFETY: advice on the mapping just made.
                    #[cfg(target_os = "linux")]
                    let _ = unsafe {
                        rustix::mm::madvise(base, image.len, rustix::mm::Advice::LinuxPopulateRead)
                    };
                }
                memory.size = image.len;
                #[cfg(target_os = "linux")]
                if !lazy {
                    memory.reuse = Some(Reuse::of(&image, 0));
                }
            }
        }
        Ok(memory)
    }

    fn grow(&mut self, new_size: usize) -> io::Result<()> {
        if new_size <= self.size {
            return Ok(());
        }
        if new_size > self.capacity {
            return Err(io::Error::other("memory would outgrow its reservation"));
        }
        let len = new_size - self.size;
        // SAFETY: within the reservation (checked above), past the
        // accessible part.
        let start = unsafe { self.base.add(self.size) }.cast::<c_void>();
        match &self.file {
            // SAFETY: makes reserved pages of our own mapping accessible.
            None => unsafe {
                rustix::mm::mprotect(start, len, MprotectFlags::READ | MprotectFlags::WRITE)?
            },
            Some(file) => {
                rustix::fs::ftruncate(&**file, new_size as u64)?;
                // SAFETY: replaces reserved pages of our own mapping with
                // the file's pages at the same offset.
                unsafe {
                    rustix::mm::mmap(
                        start,
                        len,
                        ProtFlags::READ | ProtFlags::WRITE,
                        MapFlags::SHARED | MapFlags::FIXED | MapFlags::POPULATE,
                        &**file,
                        self.size as u64,
                    )?;
                }
            }
        }
        self.size = new_size;
        Ok(())
    }
}

impl Reuse {
    /// What a mapping of `image` maps, used `uses` times before.
    fn of(image: &MemoryImage, uses: u32) -> Reuse {
        Reuse {
            base: Arc::downgrade(&image.base),
            base_len: image.base_len,
            runs: image
                .overlay
                .as_ref()
                .map(|o| o.runs.clone())
                .unwrap_or_default(),
            uses,
        }
    }
}

impl Mapping {
    /// Maps `image`'s overlay over this mapping's pages.
    fn map_overlay(&self, image: &MemoryImage) -> io::Result<()> {
        let Some(overlay) = &image.overlay else {
            return Ok(());
        };
        let ps = page_size();
        for r in &overlay.runs {
            if (r.page + r.pages) * ps > self.capacity {
                return Err(io::Error::other("an overlay page lies past the memory"));
            }
            // SAFETY: replaces pages of our own reservation (checked
            // above) with a private mapping of the sealed overlay.
            unsafe {
                rustix::mm::mmap(
                    self.base.add(r.page * ps).cast(),
                    r.pages * ps,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE | MapFlags::FIXED,
                    &overlay.file,
                    (r.at * ps) as u64,
                )?;
            }
        }
        Ok(())
    }

    /// Makes this spare (a mapping of an image on the same base) exactly
    /// `image`: see [`SPARES`].
    fn reset_to(&mut self, image: &MemoryImage) -> io::Result<()> {
        let Some(old) = self.reuse.take() else {
            return Err(io::Error::other("not a mapping of an image"));
        };
        if image.len > self.capacity || old.base_len != image.base_len {
            return Err(io::Error::other("the image does not fit this mapping"));
        }
        let ps = page_size();
        let at = |page: usize| -> *mut c_void {
            // SAFETY: callers pass pages within the reservation.
            unsafe { self.base.add(page * ps) }.cast()
        };
        let base_pages = image.base_len / ps;
        // Pages the new overlay maps over whatever is there: nothing to
        // undo under them.
        let mut covered = vec![false; self.size.max(image.len).div_ceil(ps)];
        for r in image.overlay.iter().flat_map(|o| o.runs.iter()) {
            for c in covered
                .get_mut(r.page..r.page + r.pages)
                .unwrap_or_default()
            {
                *c = true;
            }
        }
        let uncovered = |from: usize, to: usize| {
            let mut spans = Vec::new();
            let mut p = from;
            while p < to {
                if covered.get(p).copied().unwrap_or(false) {
                    p += 1;
                    continue;
                }
                let start = p;
                while p < to && !covered.get(p).copied().unwrap_or(false) {
                    p += 1;
                }
                spans.push((start, p));
            }
            spans
        };
        // The old overlay's other pages: the base's again (anonymous
        // zeros past it).
        for r in &old.runs {
            let spans = uncovered(r.page, r.page + r.pages);
            for (from, to, file) in spans
                .into_iter()
                .flat_map(|(a, b)| [(a, b.min(base_pages), true), (a.max(base_pages), b, false)])
            {
                if from >= to || to * ps > self.capacity {
                    continue;
                }
                // SAFETY: pages of our own reservation (checked above),
                // replaced in place (MAP_FIXED).
                unsafe {
                    if file {
                        rustix::mm::mmap(
                            at(from),
                            (to - from) * ps,
                            ProtFlags::READ | ProtFlags::WRITE,
                            MapFlags::PRIVATE | MapFlags::FIXED,
                            &*image.base,
                            (from * ps) as u64,
                        )?;
                    } else {
                        rustix::mm::mmap_anonymous(
                            at(from),
                            (to - from) * ps,
                            ProtFlags::READ | ProtFlags::WRITE,
                            MapFlags::PRIVATE | MapFlags::FIXED,
                        )?;
                    }
                }
            }
        }
        // The pages its instance wrote: the base's (or zeros) again.
        // SAFETY: the accessible part of our own mapping.
        let memory = unsafe { std::slice::from_raw_parts(self.base, self.size) };
        let mut written = written_pages(memory, ps)
            .ok_or_else(|| io::Error::other("cannot read which pages were written"))?;
        for (w, c) in written.iter_mut().zip(&covered) {
            *w &= !c;
        }
        let mut p = 0;
        while p < written.len() {
            if written.get(p).copied().unwrap_or(false) {
                let start = p;
                while written.get(p).copied().unwrap_or(false) {
                    p += 1;
                }
                // SAFETY: accessible pages of our own private mapping;
                // dropping them gives back the file's pages (or zeros).
                unsafe {
                    rustix::mm::madvise(
                        at(start),
                        (p - start) * ps,
                        rustix::mm::Advice::LinuxDontNeed,
                    )?;
                }
            } else {
                p += 1;
            }
        }
        if image.len > self.size {
            // SAFETY: reserved pages of our own mapping (image.len is
            // within the capacity, checked above).
            unsafe {
                rustix::mm::mprotect(
                    self.base.add(self.size).cast(),
                    image.len - self.size,
                    MprotectFlags::READ | MprotectFlags::WRITE,
                )?;
            }
        } else if image.len < self.size {
            // SAFETY: as above; the pages past the image become reserved
            // and empty again.
            unsafe {
                let tail = self.base.add(image.len).cast();
                rustix::mm::madvise(
                    tail,
                    self.size - image.len,
                    rustix::mm::Advice::LinuxDontNeed,
                )?;
                rustix::mm::mprotect(tail, self.size - image.len, MprotectFlags::empty())?;
            }
        }
        self.map_overlay(image)?;
        self.size = image.len;
        self.reuse = Some(Reuse::of(image, old.uses + 1));
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Kept as a spare while its base lives (and it has not been used
        // too often): the next instance on that base starts from it.
        let keep = self
            .reuse
            .as_ref()
            .is_some_and(|r| r.uses < MAX_USES && r.base.strong_count() > 0);
        if keep {
            let mut all = spares();
            if all.len() < MAX_SPARES {
                all.push(Mapping {
                    base: std::mem::replace(&mut self.base, std::ptr::null_mut()),
                    size: self.size,
                    capacity: self.capacity,
                    mapped: self.mapped,
                    file: None,
                    reuse: self.reuse.take(),
                });
                return;
            }
        }
        if self.base.is_null() {
            return;
        }
        if self.reuse.take().is_some() {
            // The last instances of a base going: its spares go too (they
            // keep the base's pages in memory).
            let dead: Vec<Mapping> = {
                let mut all = spares();
                let (dead, live) = std::mem::take(&mut *all)
                    .into_iter()
                    .partition(|m| m.reuse.as_ref().is_none_or(|r| r.base.strong_count() == 0));
                *all = live;
                dead
            };
            unmap_all(dead);
        }
        // SAFETY: the whole mapping made in `new`; wasmtime drops a memory
        // only when no instance can reach it.
        if let Err(e) = unsafe { rustix::mm::munmap(self.base.cast(), self.mapped) } {
            tracing::error!(error = %e, "cannot unmap an instance's memory");
        }
    }
}

// SAFETY: see `Creator`: the base never moves and `byte_size` bytes from it
// are accessible.
unsafe impl LinearMemory for Mapping {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.capacity
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        self.grow(new_size).map_err(wasmtime::Error::from)
    }

    fn as_ptr(&self) -> *mut u8 {
        self.base
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "a test")]
    use super::*;

    /// The pages an instance wrote, found both ways, on a private mapping
    /// of a file: the ones written, not the ones only read.
    #[test]
    fn written_pages_are_the_private_copies() {
        let ps = page_size();
        let file = new_file().unwrap();
        write_at(&file, &vec![7u8; 64 * ps], 0).unwrap();
        // SAFETY: a new private mapping of our own file, unmapped below.
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                64 * ps,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
                &*file,
                0,
            )
            .unwrap()
        }
        .cast::<u8>();
        // SAFETY: within the mapping.
        let memory = unsafe { std::slice::from_raw_parts_mut(base, 64 * ps) };
        let mut sum = 0u64;
        for p in [0, 1, 2, 20, 63] {
            sum += u64::from(memory[p * ps]);
        }
        for p in [3, 10, 11, 12, 40, 63] {
            memory[p * ps + 5] = 1;
        }
        assert_eq!(sum, 35);
        let want: Vec<bool> = (0..64)
            .map(|p| [3, 10, 11, 12, 40, 63].contains(&p))
            .collect();
        assert_eq!(written_pages(memory, ps).unwrap(), want);
        let pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
        assert_eq!(read_pagemap(&pagemap, memory, ps).unwrap(), want);
        // Kernels before 6.7 have no PAGEMAP_SCAN: the read above serves.
        if let Ok(ranges) = pagemap_scan::anonymous(&pagemap, base as usize, 64 * ps) {
            let at = |p: usize| base as usize + p * ps;
            assert_eq!(
                ranges,
                vec![
                    (at(3), at(4)),
                    (at(10), at(13)),
                    (at(40), at(41)),
                    (at(63), at(64))
                ]
            );
        }
        // SAFETY: the mapping made above.
        unsafe { rustix::mm::munmap(base.cast(), 64 * ps).unwrap() };
    }

    fn contents(m: &Mapping) -> Vec<u8> {
        let ps = page_size();
        // SAFETY: the accessible part of the mapping.
        let bytes = unsafe { std::slice::from_raw_parts(m.base, m.size) };
        bytes.chunks(ps).map(|p| p[0]).collect()
    }

    fn write(m: &Mapping, page: usize, value: u8) {
        // SAFETY: within the accessible part of the mapping.
        unsafe { *m.base.add(page * page_size()) = value };
    }

    /// Images made by deltas (an overlay on the base), and spare mappings
    /// reset from one image to another — forward, backward, grown — read
    /// exactly as each image, whatever their last instance wrote.
    #[test]
    fn spare_mappings_reset_to_any_image_on_their_base() {
        let ps = page_size();
        let (reserved, guard) = (64 * ps, 16 * ps);
        let file = new_file().unwrap();
        let pages: Vec<u8> = (0..16u8).flat_map(|i| vec![i; ps]).collect();
        write_at(&file, &pages, 0).unwrap();
        let a = Arc::new(seal(file, 16 * ps, Vec::new()).unwrap());
        let image = |im: &Arc<MemoryImage>| Backing::Image {
            image: Arc::clone(im),
            lazy: false,
        };
        let m = Mapping::new(image(&a), 16 * ps, reserved, guard).unwrap();
        assert_eq!(contents(&m), (0..16).collect::<Vec<u8>>());
        // A "delta": pages 3 and 9 written, the memory grown by 2 pages.
        write(&m, 3, 103);
        write(&m, 9, 109);
        let mut m = m;
        m.grow(18 * ps).unwrap();
        write(&m, 17, 117);
        // SAFETY: the accessible part of the mapping.
        let memory = unsafe { std::slice::from_raw_parts(m.base, m.size) };
        let (b, stats) = derive(&a, memory, Vec::new()).unwrap();
        let b = Arc::new(b);
        assert!(!stats.compacted);
        drop(m);
        let want_b = {
            let mut v: Vec<u8> = (0..18).collect();
            v[3] = 103;
            v[9] = 109;
            v[16] = 0;
            v[17] = 117;
            v
        };
        // A spare (the mapping just dropped) reset to b.
        let m = Mapping::new(image(&b), 16 * ps, reserved, guard).unwrap();
        assert_eq!(contents(&m), want_b);
        write(&m, 5, 205);
        write(&m, 17, 217);
        drop(m);
        // Back to a: the overlay and the writes undone, the growth gone.
        let m = Mapping::new(image(&a), 16 * ps, reserved, guard).unwrap();
        assert_eq!(contents(&m), (0..16).collect::<Vec<u8>>());
        write(&m, 9, 1);
        drop(m);
        // And to b again.
        let m = Mapping::new(image(&b), 16 * ps, reserved, guard).unwrap();
        assert_eq!(contents(&m), want_b);
    }
}
