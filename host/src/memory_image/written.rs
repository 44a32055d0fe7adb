//! Which pages of a private mapping of an image its instance wrote: the
//! pages that became private copies. Asked of the kernel with the
//! `PAGEMAP_SCAN` ioctl (Linux 6.7+, through `mapping::scan_anonymous`,
//! where the unsafe code is), else read from `/proc/self/pagemap`. Safe
//! code.

/// The kernel's scan of a range for present, anonymous pages: their
/// `(start, end)` ranges, or an error where it has none.
pub(super) type Scan = fn(&std::fs::File, usize, usize) -> std::io::Result<Vec<(usize, usize)>>;

/// Which pages of `memory` (a private mapping of an image) its instance
/// wrote: present and anonymous (a written page of a private file mapping
/// is a private copy). Asked of the kernel with the `PAGEMAP_SCAN` ioctl
/// (Linux 6.7+: ranges, a few µs), else read from `/proc/self/pagemap`
/// (bit 63 present, bit 61 file-backed; a walk of every page). `None`
/// where neither can be read.
#[cfg(target_os = "linux")]
pub(super) fn written_pages(memory: &[u8], ps: usize, scan: Scan) -> Option<Vec<bool>> {
    let pages = memory.len().div_ceil(ps);
    let start = memory.as_ptr() as usize;
    let file = std::fs::File::open("/proc/self/pagemap").ok()?;
    if let Ok(ranges) = scan(&file, start, pages * ps) {
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
pub(super) fn read_pagemap(file: &std::fs::File, memory: &[u8], ps: usize) -> Option<Vec<bool>> {
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

#[cfg(not(target_os = "linux"))]
pub(super) fn written_pages(_memory: &[u8], _ps: usize, _scan: Scan) -> Option<Vec<bool>> {
    None
}
