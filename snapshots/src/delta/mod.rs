//! Deltas: the change from one snapshot to the next, instead of the whole
//! next snapshot.
//!
//! A delta names the snapshot it applies to (base revision and body
//! SHA-256) and the one it makes (target revision, creation time and body
//! SHA-256), and holds, table by table, the [`Splice`]s that turn the
//! base's body into the target's: rows removed, rows inserted, rows
//! changed in place; every row it leaves alone is carried over with its
//! references renumbered. A group's or a team's changed membership is a
//! splice of its member list ([`MemberEdit`]), not the whole group.
//! Applying a delta gives exactly the target's body, or an error: the
//! result is checked against the target's hash. Format: `snapshots/FORMAT.md`
//! ("Deltas").

mod between;
mod body;
mod bytes;
mod compute;
mod error;
mod format;
mod renumber;
mod splice;

pub use body::{DeltaBody, MemberEdit, TableLens, apply, patch};
pub use bytes::{Applied, Layout};
pub use compute::compute;
pub use error::DeltaError;
pub use format::{
    DELTA_HEADER_LEN, DELTA_MAGIC, DELTA_SIGNATURE_CONTEXT, DELTA_VERSION, Delta, DeltaHeader,
    decode_delta, encode_delta, is_delta,
};
pub use splice::{Remap, Splice, apply as apply_splices};
