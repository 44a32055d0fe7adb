//! The mappings wasmtime runs the module on: every instance's linear
//! memory is a reservation the host maps — fresh, written through to an
//! image file, or an image mapped copy-on-write, a gone instance's
//! mapping kept as a spare and reset to the next image on its base — and
//! hands wasmtime through its host-memory interface. **All of the host's
//! unsafe code is here** (`docs/SECURITY.md`, "The unsafe code"): each
//! site says why it holds; what they all rest on is checked where
//! mappings are made (the backing an instance was meant to map is the one
//! it maps; every byte past a memory's size stays inaccessible).
#![allow(
    unsafe_code,
    reason = "wasmtime's host-memory interface hands it raw mappings: each is reserved whole (memory plus guard) at creation, only ever grown in place within its reservation, and unmapped once, when wasmtime drops it"
)]

use std::cell::RefCell;
use std::ffi::c_void;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

use super::image::{MemoryImage, Run, page_size};
use super::written::written_pages;

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
    /// Where the memory made for `NEXT` starts, once made.
    static MADE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `instantiate` with the next memory created on this thread backed
/// by `backing`, and says where that memory starts (`None` if none was
/// made): the caller checks that the instance maps exactly it. A memory
/// created with no backing named is an error, never a silent fresh one.
pub(crate) fn backed_by<T>(
    backing: Backing,
    instantiate: impl FnOnce() -> T,
) -> (T, Option<usize>) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            NEXT.with_borrow_mut(|n| *n = None);
            MADE.set(None);
        }
    }
    NEXT.with_borrow_mut(|n| *n = Some(backing));
    MADE.set(None);
    let _reset = Reset;
    let out = instantiate();
    (out, MADE.take())
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
        let backing = NEXT.with_borrow_mut(Option::take).ok_or_else(|| {
            "no backing was named for this memory (instances are made through `backed_by`), or the module has a second memory".to_string()
        })?;
        let reserved = reserved_size_in_bytes
            .ok_or_else(|| "wasmtime asked for a memory without a reservation".to_string())?;
        let memory = Mapping::new(backing, minimum, reserved, guard_size_in_bytes)
            .map_err(|e| format!("cannot map the instance's memory: {e}"))?;
        MADE.set(Some(memory.base as usize));
        Ok(Box::new(memory))
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
            match spare.reset_to(image).and_then(|()| spare.check_tail()) {
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
        memory.check_tail()?;
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

impl Mapping {
    /// The invariant the module's compiled code rests on: every byte from
    /// `size` to the end of the mapping (the rest of the reservation, and
    /// the guard) is inaccessible, so an access past the memory faults
    /// (wasmtime elides bounds checks on it). Read back from the kernel
    /// (`/proc/self/maps`) where mappings are made, in debug builds — the
    /// test suites: it costs a walk of the process's mappings.
    fn check_tail(&self) -> io::Result<()> {
        #[cfg(all(target_os = "linux", debug_assertions))]
        {
            let (from, to) = (
                self.base as usize + self.size,
                self.base as usize + self.mapped,
            );
            let maps = std::fs::read_to_string("/proc/self/maps")?;
            for line in maps.lines() {
                let mut fields = line.split_whitespace();
                let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
                    continue;
                };
                let Some((a, b)) = range.split_once('-') else {
                    continue;
                };
                let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                else {
                    continue;
                };
                if a < to && b > from && perms.get(..3) != Some("---") {
                    return Err(io::Error::other(format!(
                        "{a:#x}-{b:#x} ({perms}) lies past the memory's {} bytes and is accessible",
                        self.size
                    )));
                }
            }
        }
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
            // Within the image: a page past it must stay inaccessible.
            if (r.page + r.pages) * ps > image.len.next_multiple_of(ps).min(self.capacity) {
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
        let mut written = written_pages(memory, ps, scan_anonymous)
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

/// The `PAGEMAP_SCAN` ioctl of `/proc/<pid>/pagemap` (linux/fs.h).
#[cfg(target_os = "linux")]
pub(super) mod pagemap_scan {
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

/// [`pagemap_scan::anonymous`], as `written::written_pages` takes it.
#[cfg(target_os = "linux")]
pub(super) fn scan_anonymous(
    pagemap: &std::fs::File,
    start: usize,
    len: usize,
) -> io::Result<Vec<(usize, usize)>> {
    pagemap_scan::anonymous(pagemap, start, len)
}

/// No `PAGEMAP_SCAN` but on Linux.
#[cfg(not(target_os = "linux"))]
pub(super) fn scan_anonymous(
    _pagemap: &std::fs::File,
    _start: usize,
    _len: usize,
) -> io::Result<Vec<(usize, usize)>> {
    Err(io::Error::other("no PAGEMAP_SCAN here"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "a test")]
    use super::super::derive;
    use super::super::image::{new_file, seal, write_at};
    use super::super::written::read_pagemap;
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
        assert_eq!(written_pages(memory, ps, scan_anonymous).unwrap(), want);
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

    /// The check made where mappings are made: a page past the memory's
    /// size made accessible is found.
    #[test]
    #[cfg(debug_assertions)]
    fn an_accessible_tail_is_found() {
        let ps = page_size();
        let m = Mapping::new(Backing::Fresh, 4 * ps, 64 * ps, 16 * ps).unwrap();
        m.check_tail().unwrap();
        // SAFETY: a reserved page of the mapping, past its size.
        unsafe {
            rustix::mm::mprotect(
                m.base.add(40 * ps).cast(),
                ps,
                MprotectFlags::READ | MprotectFlags::WRITE,
            )
            .unwrap();
        }
        let e = m.check_tail().unwrap_err();
        assert!(e.to_string().contains("is accessible"), "{e}");
    }

    fn bytes(m: &Mapping) -> Vec<u8> {
        // SAFETY: the accessible part of the mapping.
        unsafe { std::slice::from_raw_parts(m.base, m.size) }.to_vec()
    }

    /// One "delta": pages written (page, offset in it, value), and pages
    /// grown by.
    type Change = (Vec<(usize, usize, u8)>, usize);

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Instances started from an image — a loaded base, or a base and
        /// the overlay a chain of deltas made — read exactly the bytes the
        /// instance that made the image had, whether their mapping is
        /// fresh or a spare reset from the image before; and every byte
        /// past their size stays inaccessible (`check_tail`, in each
        /// `Mapping::new`).
        #[test]
        fn images_and_overlays_read_exactly_what_was_written(
            base_pages in 48usize..160,
            fill in proptest::prelude::any::<u8>(),
            chain in proptest::collection::vec(
                (proptest::collection::vec((0usize..200, 0usize..4096, proptest::prelude::any::<u8>()), 0..6), 0usize..3),
                1..6,
            ),
        ) {
            let chain: Vec<Change> = chain;
            let ps = page_size();
            let (reserved, guard) = (256 * ps, 16 * ps);
            let file = new_file().unwrap();
            let content: Vec<u8> = (0..base_pages * ps).map(|i| fill.wrapping_add((i / 7) as u8)).collect();
            write_at(&file, &content, 0).unwrap();
            let mut image = Arc::new(seal(file, base_pages * ps, Vec::new()).unwrap());
            let backing = |im: &Arc<MemoryImage>, lazy| Backing::Image { image: Arc::clone(im), lazy };
            // A reader of the base: read, then dropped into the spares.
            let reader = Mapping::new(backing(&image, false), ps, reserved, guard).unwrap();
            proptest::prop_assert_eq!(bytes(&reader), content.clone());
            drop(reader);
            for (writes, grow) in chain {
                // The instance that applies the delta: started lazily from
                // the image, writes, maybe grows.
                let mut patcher = Mapping::new(backing(&image, true), ps, reserved, guard).unwrap();
                patcher.grow(patcher.size + grow * ps).unwrap();
                let pages = patcher.size / ps;
                for (page, at, value) in writes {
                    let (page, at) = (page % pages, at % ps);
                    // SAFETY: within the accessible part of the mapping.
                    unsafe { *patcher.base.add(page * ps + at) = value };
                }
                let want = bytes(&patcher);
                // The mapping itself (its written pages are its private
                // copies), not a copy of it.
                // SAFETY: the accessible part of the mapping.
                let memory = unsafe { std::slice::from_raw_parts(patcher.base, patcher.size) };
                let (next, derived) = derive(&image, memory, Vec::new()).unwrap();
                drop(patcher);
                image = Arc::new(next);
                // A spare (the reader of the image before) reset to it —
                // unless the overlay outgrew its bound and the image was
                // written whole (a new base: no spare fits it).
                let reused = Mapping::new(backing(&image, false), ps, reserved, guard).unwrap();
                if !derived.compacted {
                    proptest::prop_assert!(
                        reused.reuse.as_ref().is_some_and(|r| r.uses >= 1),
                        "a spare was reset"
                    );
                }
                proptest::prop_assert_eq!(bytes(&reused), want.clone());
                // A fresh mapping of it, while the spare is in use.
                let fresh = Mapping::new(backing(&image, false), ps, reserved, guard).unwrap();
                proptest::prop_assert_eq!(bytes(&fresh), want.clone());
                // Their own writes are theirs, and undone for the next.
                // SAFETY: the first byte of both mappings.
                unsafe {
                    *reused.base = want[0].wrapping_add(1);
                    *fresh.base = want[0].wrapping_add(2);
                }
                drop(fresh);
                drop(reused);
            }
        }
    }
}
