//! Edits of one table, and what they do to the indices of the rows they
//! leave alone.
//!
//! A table's change is a list of [`Splice`]s over its old rows. Rows
//! outside every splice are carried over; their index moves by what the
//! splices before them inserted and removed, and every reference to them
//! elsewhere moves with them ([`Remap`]). Inside a splice, old row
//! `at + k` corresponds to new row `k` of the splice while there is one —
//! a record changed in place is a splice of one row for one, and
//! references to it keep pointing at it.

use serde::{Deserialize, Serialize};

use super::error::DeltaError;

/// At old row `at`, remove `remove` rows and insert `insert` in their place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splice<T> {
    /// Old index of the first row removed (or of the row the insertion
    /// goes before; the table's length for an append).
    pub at: u32,
    /// Old rows removed.
    pub remove: u32,
    /// New rows, in the target's numbering.
    pub insert: Vec<T>,
}

/// Old row index → new row index, as a table's splices move them.
#[derive(Clone, Debug)]
pub struct Remap {
    /// Per splice: where it starts, how many rows it removes and inserts,
    /// and the shift of the rows before it.
    spans: Vec<Span>,
    /// No splice changes the table's length up to its last row: every
    /// old row keeps its index (or maps to the row replacing it).
    identity: bool,
    old_len: u32,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    at: u32,
    remove: u32,
    insert: u32,
    shift_before: i64,
}

impl Remap {
    /// The remap of `splices` over a table of `old_len` rows; refused when
    /// they are out of order, overlap, or reach past the table.
    pub fn new<T>(
        table: &'static str,
        splices: &[Splice<T>],
        old_len: u32,
    ) -> Result<Remap, DeltaError> {
        let mut spans = Vec::with_capacity(splices.len());
        let mut shift = 0i64;
        let mut end = 0u32;
        let mut prev_at = None;
        let mut identity = true;
        for s in splices {
            let insert = u32::try_from(s.insert.len())
                .map_err(|_| DeltaError::apply(table, "a splice inserts too many rows"))?;
            let after =
                s.at.checked_add(s.remove)
                    .filter(|&e| e <= old_len)
                    .ok_or_else(|| DeltaError::apply(table, "a splice reaches past the table"))?;
            // In order, not overlapping; a pure insertion may precede a
            // splice at the same row.
            let ordered =
                s.at >= end && prev_at.is_none_or(|(p, removed)| s.at > p || removed == 0);
            if !ordered {
                return Err(DeltaError::apply(
                    table,
                    "splices overlap or are out of order",
                ));
            }
            if insert != s.remove && s.at < old_len {
                identity = false;
            }
            spans.push(Span {
                at: s.at,
                remove: s.remove,
                insert,
                shift_before: shift,
            });
            shift += i64::from(insert) - i64::from(s.remove);
            end = after;
            prev_at = Some((s.at, s.remove));
        }
        Ok(Remap {
            spans,
            identity,
            old_len,
        })
    }

    /// Whether every old row keeps its index.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// The shift of every old row in `first..=last`, when no splice starts
    /// or reaches into that range (`None` otherwise): what lets a caller
    /// renumber many rows without a search each.
    pub fn uniform_shift(&self, first: u32, last: u32) -> Option<i64> {
        if self.identity {
            return Some(0);
        }
        let k = self.spans.partition_point(|s| s.at <= first);
        if self.spans.get(k).is_some_and(|next| next.at <= last) {
            return None;
        }
        match k.checked_sub(1).and_then(|k| self.spans.get(k)) {
            None => Some(0),
            Some(span) if first >= span.at.saturating_add(span.remove) => {
                Some(span.shift_before + i64::from(span.insert) - i64::from(span.remove))
            }
            Some(_) => None,
        }
    }

    /// Where old row `i` is in the new table; `None` when it was removed
    /// (or never existed).
    pub fn get(&self, i: u32) -> Option<u32> {
        if i >= self.old_len {
            return None;
        }
        if self.identity {
            return Some(i);
        }
        let k = self.spans.partition_point(|s| s.at <= i);
        let Some(span) = k.checked_sub(1).and_then(|k| self.spans.get(k)) else {
            return Some(i);
        };
        let into = i - span.at;
        let moved = |new: i64| u32::try_from(new).ok();
        if into < span.remove {
            // Inside the splice: the row replacing it, if any.
            (into < span.insert).then(|| moved(i64::from(i) + span.shift_before))?
        } else {
            moved(
                i64::from(i) + span.shift_before + i64::from(span.insert) - i64::from(span.remove),
            )
        }
    }
}

/// Applies `splices` to `old`, carrying every row outside them through
/// `carry` (which renumbers its references; `None` refuses the delta).
pub fn apply<T: Clone>(
    table: &'static str,
    old: &[T],
    splices: &[Splice<T>],
    mut carry: impl FnMut(&T) -> Option<T>,
) -> Result<Vec<T>, DeltaError> {
    let grown: usize = splices.iter().map(|s| s.insert.len()).sum();
    let mut out = Vec::with_capacity(old.len() + grown);
    let mut pos = 0usize;
    let mut carry_range = |out: &mut Vec<T>, range: std::ops::Range<usize>| {
        for row in old.get(range).unwrap_or_default() {
            out.push(carry(row).ok_or_else(|| {
                DeltaError::apply(table, "a row it keeps refers to a row it removes")
            })?);
        }
        Ok::<(), DeltaError>(())
    };
    for s in splices {
        let at = s.at as usize;
        carry_range(&mut out, pos..at)?;
        out.extend(s.insert.iter().cloned());
        pos = at + s.remove as usize;
    }
    carry_range(&mut out, pos..old.len())?;
    Ok(out)
}

/// The rows of two versions of a table that correspond — each the same
/// key, in the same order — as many as possible: (old index, new index)
/// pairs, increasing in both. Keys are unique within each table.
pub(crate) fn align<K: std::hash::Hash + Eq>(old: &[K], new: &[K]) -> Vec<(u32, u32)> {
    let at_new: std::collections::HashMap<&K, u32> =
        new.iter().enumerate().map(|(j, k)| (k, j as u32)).collect();
    // Old rows in order with their new position; the longest increasing
    // run of new positions is what can stay (patience sorting).
    let matched: Vec<(u32, u32)> = old
        .iter()
        .enumerate()
        .filter_map(|(i, k)| at_new.get(k).map(|&j| (i as u32, j)))
        .collect();
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; matched.len()];
    for (m, &(_, j)) in matched.iter().enumerate() {
        let t = tails.partition_point(|&t| matched.get(t).is_some_and(|&(_, tj)| tj < j));
        if let Some(p) = prev.get_mut(m) {
            *p = t.checked_sub(1).and_then(|t| tails.get(t).copied());
        }
        if t == tails.len() {
            tails.push(m);
        } else if let Some(slot) = tails.get_mut(t) {
            *slot = m;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut at = tails.last().copied();
    while let Some(m) = at {
        if let Some(&pair) = matched.get(m) {
            out.push(pair);
        }
        at = prev.get(m).copied().flatten();
    }
    out.reverse();
    out
}

/// Splices turning `old` into `new` given the aligned pairs: the rows
/// between aligned pairs are replaced, and an aligned pair whose carried
/// row would differ from the new one (`same` says) is replaced in place.
pub(crate) fn splices<T: Clone>(
    old_len: usize,
    new: &[T],
    pairs: &[(u32, u32)],
    mut same: impl FnMut(u32, u32) -> bool,
) -> Vec<Splice<T>> {
    let mut out = Vec::new();
    let (mut i0, mut j0) = (0u32, 0u32);
    let end = (old_len as u32, new.len() as u32);
    for &(i, j) in pairs.iter().chain(std::iter::once(&end)) {
        if i > i0 || j > j0 {
            out.push(Splice {
                at: i0,
                remove: i - i0,
                insert: new
                    .get(j0 as usize..j as usize)
                    .unwrap_or_default()
                    .to_vec(),
            });
        }
        if (i, j) != end && !same(i, j) {
            out.push(Splice {
                at: i,
                remove: 1,
                insert: new
                    .get(j as usize..=j as usize)
                    .unwrap_or_default()
                    .to_vec(),
            });
        }
        (i0, j0) = (i + 1, j + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(old: &[&str], new: &[&str]) -> usize {
        let pairs = align(old, new);
        let s = splices(old.len(), new, &pairs, |i, j| {
            old[i as usize] == new[j as usize]
        });
        let r = Remap::new("t", &s, old.len() as u32).unwrap_or_else(|e| panic!("{e}"));
        for &(i, j) in &pairs {
            assert_eq!(r.get(i), Some(j));
        }
        // Every range that says it shifts uniformly does, row by row.
        for first in 0..old.len() as u32 {
            for last in first..old.len() as u32 {
                if let Some(shift) = r.uniform_shift(first, last) {
                    for i in first..=last {
                        assert_eq!(r.get(i), u32::try_from(i64::from(i) + shift).ok());
                    }
                }
            }
        }
        let got = apply("t", old, &s, |x| Some(*x)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, new);
        s.iter().map(|s| s.insert.len()).sum()
    }

    #[test]
    fn splices_turn_the_old_table_into_the_new_one() {
        assert_eq!(roundtrip(&["a", "b", "c"], &["a", "b", "c"]), 0);
        assert_eq!(roundtrip(&["a", "b", "c"], &["a", "c"]), 0);
        assert_eq!(
            roundtrip(&["a", "b", "c"], &["x", "a", "b", "y", "c", "z"]),
            3
        );
        assert_eq!(roundtrip(&["a", "b", "c", "d"], &["d", "a", "b", "c"]), 1);
        assert_eq!(roundtrip(&[], &["a"]), 1);
        assert_eq!(roundtrip(&["a"], &[]), 0);
    }

    #[test]
    fn overlapping_splices_are_refused() {
        let s = vec![
            Splice {
                at: 1,
                remove: 2,
                insert: vec![0],
            },
            Splice {
                at: 2,
                remove: 1,
                insert: vec![],
            },
        ];
        assert!(Remap::new("t", &s, 5).is_err());
        let past = vec![Splice {
            at: 4,
            remove: 2,
            insert: vec![0],
        }];
        assert!(Remap::new("t", &past, 5).is_err());
    }
}
