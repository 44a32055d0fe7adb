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
/// any number of instances from.
pub struct MemoryImage {
    file: OwnedFd,
    len: usize,
    /// The module's mutable globals, in the order of `ImageModule::globals`.
    pub(crate) globals: Vec<Val>,
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
    /// (pages it never touched take none). Shared by every instance, and
    /// not in any process's RSS once the loading instance is gone.
    pub fn resident_bytes(&self) -> u64 {
        rustix::fs::fstat(&self.file).map_or(0, |st| st.st_blocks as u64 * 512)
    }
}

/// What the next memory created on this thread is backed by.
pub(crate) enum Backing {
    /// Zeroed anonymous memory (a fresh instance).
    Fresh,
    /// This file, mapped shared and grown with the memory: the instance
    /// that loads a snapshot writes its image.
    Writable(Arc<OwnedFd>),
    /// A private copy-on-write mapping of an image.
    Image(Arc<MemoryImage>),
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
    Ok(MemoryImage { file, len, globals })
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
        };
        match backing {
            Backing::Fresh => memory.grow(minimum)?,
            Backing::Writable(file) => {
                memory.file = Some(file);
                memory.grow(minimum)?;
            }
            Backing::Image(image) => {
                if image.len < minimum || image.len > reserved {
                    return Err(io::Error::other(format!(
                        "an image of {} bytes does not fit a memory of {minimum}..{reserved} bytes",
                        image.len
                    )));
                }
                if image.len > 0 {
                    // SAFETY: replaces the start of our own reservation
                    // (MAP_FIXED within it) with a private mapping of the
                    // sealed image.
                    unsafe {
                        rustix::mm::mmap(
                            base,
                            image.len,
                            ProtFlags::READ | ProtFlags::WRITE,
                            MapFlags::PRIVATE | MapFlags::FIXED,
                            &image.file,
                            0,
                        )?;
                    }
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

impl Drop for Mapping {
    fn drop(&mut self) {
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
