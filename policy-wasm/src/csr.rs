//! Compressed sparse rows: each key's items, contiguous, built once from
//! (key, item) pairs — the shape of every one-to-many index the engine
//! walks (a node's children, a principal's groups).
#![allow(
    clippy::indexing_slicing,
    reason = "offsets are built here to hold keys + 1 entries, and every key and item comes from a body whose indexes were checked when it was decoded (snapshots::integrity)"
)]

/// Compressed sparse rows: the items of key `k` are `items[offsets[k]..offsets[k+1]]`.
#[derive(Clone)]
pub(crate) struct Csr {
    offsets: Vec<u32>,
    items: Vec<u32>,
}

impl Csr {
    pub(crate) fn build(keys: usize, pairs: impl Iterator<Item = (u32, u32)> + Clone) -> Self {
        let mut offsets = vec![0u32; keys + 1];
        for (k, _) in pairs.clone() {
            offsets[k as usize + 1] += 1;
        }
        for i in 0..keys {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut items = vec![0u32; offsets[keys] as usize];
        for (k, v) in pairs {
            let at = &mut fill[k as usize];
            items[*at as usize] = v;
            *at += 1;
        }
        Csr { offsets, items }
    }

    pub(crate) fn get(&self, k: u32) -> &[u32] {
        let k = k as usize;
        match (self.offsets.get(k), self.offsets.get(k + 1)) {
            (Some(&a), Some(&b)) => &self.items[a as usize..b as usize],
            _ => &[],
        }
    }
}
