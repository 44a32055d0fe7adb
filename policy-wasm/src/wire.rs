//! The messages of the raw WebAssembly ABI (postcard-encoded both ways),
//! shared by the module and its hosts so they cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::decision::Reason;
use crate::request::{Context, Request};

/// Input of `pc_permissions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionsQuery<'a> {
    /// The principal.
    pub principal: &'a str,
    /// The resource.
    pub resource: &'a str,
    /// Time and bulk flag.
    pub context: Context,
}

/// Input of `pc_list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery<'a> {
    /// The principal.
    pub principal: &'a str,
    /// The action.
    pub action: &'a str,
    /// Node kind to list: `org`, `env`, `catalog`, `object`, `team`.
    pub kind: &'a str,
    /// The node to list below.
    pub under: &'a str,
    /// Time and bulk flag.
    pub context: Context,
}

/// Output of `pc_list`.
pub type ListResult = Result<Vec<String>, Reason>;

/// Input of `pc_check_batch`.
pub type Batch<'a> = Vec<Request<'a>>;

/// Input of `pc_apply_delta`: the delta's target revision and creation
/// time, the base's grants at the rows it removes, and the delta's body
/// ([`crate::Engine::apply_delta`]). A host may encode it as the tuple
/// `(revision, created_at, &[GrantRec], &DeltaBody)`: postcard writes a
/// struct as its fields in order.
#[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchInput {
    /// The target's revision.
    pub revision: u64,
    /// The target's creation time.
    pub created_at: i64,
    /// The base's grants at the rows the delta removes, in order.
    pub removed_grants: Vec<portcullis_snapshots::body::GrantRec>,
    /// The delta.
    pub delta: portcullis_snapshots::delta::DeltaBody,
}

/// Encodes `value` into `buf` (replacing its contents), reusing its
/// capacity. postcard's writer flavours push byte by byte; encoding into a
/// slice is several times faster, and this is on every check's path.
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    let mut cap = buf.capacity().max(256);
    loop {
        buf.clear();
        buf.resize(cap, 0);
        match postcard::to_slice(value, buf) {
            Ok(used) => {
                let n = used.len();
                buf.truncate(n);
                return Ok(());
            }
            Err(postcard::Error::SerializeBufferFull) => cap = cap.saturating_mul(2),
            Err(e) => {
                buf.clear();
                return Err(e);
            }
        }
    }
}

/// Status codes returned by the ABI functions (negative) — a non-negative
/// return is the length of the result in the result buffer.
pub mod status {
    /// No snapshot is loaded.
    pub const NO_SNAPSHOT: i32 = -1;
    /// The input could not be decoded.
    pub const MALFORMED_INPUT: i32 = -2;
    /// The input pointer/length are outside the input buffer.
    pub const BAD_INPUT: i32 = -3;
    /// The snapshot was refused; the result buffer holds the reason (UTF-8).
    pub const LOAD_FAILED: i32 = -4;
    /// The result could not be encoded.
    pub const ENCODE_FAILED: i32 = -5;
    /// `pc_apply_delta` did not apply the delta (the engine is unchanged);
    /// the result buffer holds the reason (UTF-8). Load the target instead.
    pub const NOT_APPLIED: i32 = -6;
}
