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
//! wasmtime builds each instance's memory through one [`wasmtime::MemoryCreator`] per
//! engine, which is not told which instance it is building for: the caller
//! names the backing for the next memory on its thread (`backed_by`),
//! and instantiation, which is synchronous, creates the memory on that
//! same thread. The module is rewritten so that instantiation writes no
//! data segments over the image (`image_module.rs`).
//!
//! Three parts: `image` (the files: an image and the overlay a delta
//! makes), `written` (which pages an instance wrote) and `mapping` (the
//! mappings wasmtime runs on — the only unsafe code of the host).

mod image;
mod mapping;
mod written;

use std::io;

use wasmtime::Val;

pub use image::{Derived, MemoryImage};
pub(crate) use image::{new_file, seal};
pub(crate) use mapping::{Backing, Creator, backed_by};

/// The image of `memory` (the linear memory of an instance started from
/// `from`, which applied a delta): `from`'s base with an overlay of every
/// page that differs from it — those the instance wrote (found in the
/// kernel's page tables), and those `from`'s own overlay held; or, when
/// the written pages cannot be known or are too many, the whole memory.
pub(crate) fn derive(
    from: &MemoryImage,
    memory: &[u8],
    globals: Vec<Val>,
) -> io::Result<(MemoryImage, Derived)> {
    let written = written::written_pages(memory, image::page_size(), mapping::scan_anonymous);
    image::derive(from, memory, written, globals)
}
