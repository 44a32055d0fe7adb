//! Per-key lists (a user's groups, a principal's grants) that a delta can
//! edit in place.
//!
//! Built like compressed sparse rows — every list contiguous, in key
//! order — but each key keeps its own `[start, end)` span instead of
//! sharing its neighbours' offsets. A removal closes up within the list; a
//! list that must grow moves to the end of the items (unless it is already
//! there), leaving a hole. So an edit costs the length of one list, not of
//! the directory, and touches a few pages of memory rather than shifting
//! everything after it: what keeps a one-user delta small in every
//! worker's copy-on-write image (`host/src/memory_image/`).
//! Holes are reclaimed by the next full load.
#![allow(
    clippy::indexing_slicing,
    reason = "spans are built from the items and kept within them by every edit; keys are indices checked when the body was decoded"
)]

/// Lists of `T`, one per key; each item may carry a tag (a grant's row)
/// kept apart from the items, so that rewriting every tag touches the
/// tags' pages only.
#[derive(Clone)]
pub(crate) struct Lists<T> {
    spans: Vec<[u32; 2]>,
    items: Vec<T>,
    /// One per item slot when `tagged`, else empty.
    tags: Vec<u32>,
    tagged: bool,
    /// Items in all lists (holes not counted), kept by every edit: asked
    /// on every delta, it must not be a walk of every key.
    len: usize,
}

impl<T: Copy> Lists<T> {
    /// `keys` lists holding `pairs` (key, item), each list in the order of
    /// `pairs`.
    pub(crate) fn build(keys: usize, pairs: impl Iterator<Item = (u32, T)> + Clone) -> Self {
        Self::build_tagged(keys, pairs.map(|(k, v)| (k, v, 0)), false)
    }

    /// [`Lists::build`] with a tag for each item (`tagged`), or none.
    pub(crate) fn build_tagged(
        keys: usize,
        triples: impl Iterator<Item = (u32, T, u32)> + Clone,
        tagged: bool,
    ) -> Self {
        let mut offsets = vec![0u32; keys + 1];
        let mut first = None;
        for (k, v, _) in triples.clone() {
            offsets[k as usize + 1] += 1;
            first.get_or_insert(v);
        }
        for i in 0..keys {
            offsets[i + 1] += offsets[i];
        }
        let total = offsets[keys] as usize;
        // Room for the lists deltas move to the end, so that they rarely
        // reallocate (and rewrite) the whole table.
        let mut items = Vec::with_capacity(total + total / 32 + 64);
        if let Some(fill) = first {
            items.resize(total, fill);
        }
        let mut tags = Vec::new();
        if tagged {
            tags.reserve_exact(items.capacity());
            tags.resize(total, 0);
        }
        let mut fill = offsets.clone();
        for (k, v, tag) in triples {
            let at = &mut fill[k as usize];
            items[*at as usize] = v;
            if tagged {
                tags[*at as usize] = tag;
            }
            *at += 1;
        }
        let spans = offsets.windows(2).map(|w| [w[0], w[1]]).collect();
        Lists {
            spans,
            items,
            tags,
            tagged,
            len: total,
        }
    }

    /// The list of key `k` (empty for a key out of range).
    pub(crate) fn get(&self, k: u32) -> &[T] {
        match self.spans.get(k as usize) {
            Some(&[a, b]) => &self.items[a as usize..b as usize],
            None => &[],
        }
    }

    /// The tags of key `k`'s list (empty for untagged lists).
    pub(crate) fn tags(&self, k: u32) -> &[u32] {
        match self.spans.get(k as usize) {
            Some(&[a, b]) if self.tagged => &self.tags[a as usize..b as usize],
            _ => &[],
        }
    }

    #[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
    /// Inserts `v` (tagged `tag`) at position `at` of key `k`'s list.
    pub(crate) fn insert(&mut self, k: u32, at: usize, v: T, tag: u32) {
        let [a, b] = self.spans[k as usize];
        let (a, b) = (a as usize, b as usize);
        let at = at.min(b - a);
        if b == self.items.len() {
            // The last list grows in place.
            self.items.insert(a + at, v);
            if self.tagged {
                self.tags.insert(a + at, tag);
            }
            self.spans[k as usize][1] += 1;
        } else {
            let start = self.items.len();
            self.items.extend_from_within(a..a + at);
            self.items.push(v);
            self.items.extend_from_within(a + at..b);
            if self.tagged {
                self.tags.extend_from_within(a..a + at);
                self.tags.push(tag);
                self.tags.extend_from_within(a + at..b);
            }
            self.spans[k as usize] = [start as u32, self.items.len() as u32];
        }
        self.len += 1;
    }

    #[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
    /// Removes position `at` of key `k`'s list.
    pub(crate) fn remove(&mut self, k: u32, at: usize) {
        let [a, b] = self.spans[k as usize];
        let (a, b) = (a as usize, b as usize);
        if a + at < b {
            self.items.copy_within(a + at + 1..b, a + at);
            if self.tagged {
                self.tags.copy_within(a + at + 1..b, a + at);
            }
            self.spans[k as usize][1] -= 1;
            self.len -= 1;
        }
    }

    #[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
    /// Adds a key with an empty list (a row appended to the table keyed).
    pub(crate) fn push_key(&mut self) {
        let end = self.items.len() as u32;
        self.spans.push([end, end]);
    }

    #[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
    /// Every tag slot, holes included, for edits that rewrite tags
    /// wherever they are (renumbering rows).
    pub(crate) fn tags_mut(&mut self) -> &mut [u32] {
        &mut self.tags
    }

    /// Items in all lists (holes not counted).
    pub(crate) fn count(&self) -> usize {
        self.len
    }

    /// Number of keys.
    pub(crate) fn keys(&self) -> usize {
        self.spans.len()
    }
}

// The browser build applies no deltas: it never edits lists.
#[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
impl<T: Copy + Ord> Lists<T> {
    /// Adds `v` to key `k`'s sorted list, after any equal item.
    pub(crate) fn insert_sorted(&mut self, k: u32, v: T) {
        let at = self.get(k).partition_point(|x| *x <= v);
        self.insert(k, at, v, 0);
    }

    /// Removes one `v` from key `k`'s sorted list; false if it holds none.
    pub(crate) fn remove_sorted(&mut self, k: u32, v: T) -> bool {
        match self.get(k).binary_search(&v) {
            Ok(at) => {
                self.remove(k, at);
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lists;

    fn all(l: &Lists<u32>) -> Vec<Vec<u32>> {
        (0..l.keys() as u32).map(|k| l.get(k).to_vec()).collect()
    }

    #[test]
    fn edits_in_place_read_like_a_fresh_build() {
        let pairs = [(0, 1), (2, 5), (0, 3), (2, 7), (3, 9)];
        let mut l = Lists::build(4, pairs.iter().copied());
        assert_eq!(all(&l), vec![vec![1, 3], vec![], vec![5, 7], vec![9]]);
        l.insert_sorted(0, 2);
        l.insert_sorted(3, 10);
        l.insert_sorted(1, 4);
        assert!(l.remove_sorted(2, 5));
        assert!(!l.remove_sorted(2, 5));
        l.insert_sorted(0, 0);
        assert_eq!(
            all(&l),
            vec![vec![0, 1, 2, 3], vec![4], vec![7], vec![9, 10]]
        );
        assert_eq!(l.count(), 8);
        let empty: Lists<u32> = Lists::build(2, std::iter::empty());
        assert_eq!(all(&empty), vec![Vec::<u32>::new(), vec![]]);
        let mut empty = empty;
        empty.insert_sorted(1, 3);
        empty.insert_sorted(0, 2);
        assert_eq!(all(&empty), vec![vec![2], vec![3]]);
    }
}
