//! Decoding `Vec`s at their exact length.
//!
//! serde grows a decoded `Vec` by doubling from a cautious 1 MiB hint, so a
//! 12 MB table briefly needs 24 MB and keeps 16 MB. postcard writes each
//! length up front; we trust it up to a budget — every element takes at
//! least one byte, and all preallocations of one decode together may not
//! exceed [`BUDGET_FACTOR`] times the body's size — so a hostile length
//! cannot make the decoder allocate more than a small multiple of its input.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// Preallocation budget, as a multiple of the body's encoded size.
pub const BUDGET_FACTOR: usize = 8;

thread_local! {
    /// (bytes of body, bytes of preallocation left) for the decode under way.
    static BUDGET: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Runs `f` with a preallocation budget for a body of `body_len` bytes.
pub(crate) fn with_budget<R>(body_len: usize, f: impl FnOnce() -> R) -> R {
    let saved = BUDGET.replace((body_len, body_len.saturating_mul(BUDGET_FACTOR)));
    let r = f();
    BUDGET.set(saved);
    r
}

fn capacity_for<T>(announced: usize) -> usize {
    let size = std::mem::size_of::<T>().max(1);
    BUDGET.with(|b| {
        let (body, left) = b.get();
        let n = announced.min(body).min(left / size);
        b.set((body, left - n * size));
        n
    })
}

struct ExactVec<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ExactVec<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut v = Vec::with_capacity(capacity_for::<T>(seq.size_hint().unwrap_or(0)));
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(v)
    }
}

/// `#[serde(deserialize_with = "crate::exact_vec::deserialize")]`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(ExactVec(PhantomData))
}
