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
}
