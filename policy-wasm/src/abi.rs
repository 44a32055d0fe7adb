//! The raw WebAssembly ABI hosted by wasmtime (see `policy-wasm/README.md`).
//!
//! Protocol: the host asks for an input buffer with `pc_input(len)` (its
//! address stays valid for any later input up to that length, until
//! `pc_load` or `pc_release_input`), writes the postcard-encoded input
//! there, and calls a function with the input's length. A non-negative
//! `i64` return packs the output's address (high 32 bits) and length (low
//! 32 bits); a negative one is a [`crate::wire::status`] code. One crossing
//! per check: the boundary must cost little next to the engine. The
//! module holds one engine; `pc_load` replaces it only when the new
//! snapshot loads, so a bad snapshot leaves the old one serving.
//!
//! No clock, no I/O, no imports; nothing here panics on any input.
#![allow(
    unsafe_code,
    reason = "the host calls these exports by name (`#[unsafe(no_mangle)]`); the buffers they hand out are owned here and bounds-checked on every use"
)]

use std::cell::RefCell;

use crate::engine::Engine;
use crate::request::Request;
use crate::wire::{Batch, ListQuery, PermissionsQuery, status};

struct State {
    engine: Option<Engine>,
    input: Vec<u8>,
    result: Vec<u8>,
}

thread_local! {
    static STATE: RefCell<State> = const {
        RefCell::new(State { engine: None, input: Vec::new(), result: Vec::new() })
    };
}

/// Makes the input buffer at least `len` bytes and returns its address.
/// For a snapshot, `pc_release_input` afterwards gives the memory back to
/// the allocator (linear memory itself never shrinks).
#[unsafe(no_mangle)]
pub extern "C" fn pc_input(len: u32) -> *mut u8 {
    STATE.with_borrow_mut(|s| {
        s.input.clear();
        s.input.resize(len as usize, 0);
        s.input.as_mut_ptr()
    })
}

/// Frees the input buffer (after loading a large snapshot).
#[unsafe(no_mangle)]
pub extern "C" fn pc_release_input() {
    STATE.with_borrow_mut(|s| s.input = Vec::new());
}

/// Address of the last result.
#[unsafe(no_mangle)]
pub extern "C" fn pc_result() -> *const u8 {
    STATE.with_borrow(|s| s.result.as_ptr())
}

/// Length of the last result (also returned by the call that produced it;
/// needed after a failed `pc_load`, which returns a status instead).
#[unsafe(no_mangle)]
pub extern "C" fn pc_result_len() -> i32 {
    STATE.with_borrow(|s| s.result.len() as i32)
}

/// The loaded snapshot's revision, or -1.
#[unsafe(no_mangle)]
pub extern "C" fn pc_revision() -> i64 {
    STATE.with_borrow(|s| s.engine.as_ref().map_or(-1, |e| e.revision() as i64))
}

/// Loads the snapshot in the first `len` input bytes. On failure the old
/// engine keeps serving and the result holds the reason as UTF-8.
#[unsafe(no_mangle)]
pub extern "C" fn pc_load(len: u32) -> i32 {
    STATE.with_borrow_mut(|s| load(s, len, false))
}

/// [`pc_load`] for a host that has computed the SHA-256 of the snapshot's
/// body itself, natively (several times faster than here): the input is
/// that digest (32 bytes) followed by the snapshot, `len` bytes in all.
/// Everything else is checked as by `pc_load`, and a digest that does not
/// match the header's refuses the snapshot.
#[unsafe(no_mangle)]
pub extern "C" fn pc_load_hashed(len: u32) -> i32 {
    STATE.with_borrow_mut(|s| load(s, len, true))
}

fn load(s: &mut State, len: u32, hashed: bool) -> i32 {
    let Some(input) = s.input.get(..len as usize) else {
        return status::BAD_INPUT;
    };
    let decoded = if hashed {
        let Some((digest, bytes)) = input.split_first_chunk::<32>() else {
            return status::BAD_INPUT;
        };
        portcullis_snapshots::decode_with_digest(bytes, Default::default(), *digest)
    } else {
        portcullis_snapshots::decode(input)
    };
    match decoded {
        Ok(snapshot) => {
            // The snapshot bytes are no longer needed: free them before
            // indexing so the allocator reuses them (linear memory never
            // shrinks, so the peak is what stays).
            s.input = Vec::new();
            s.engine = Some(Engine::from_snapshot(snapshot));
            0
        }
        Err(e) => {
            s.result = e.to_string().into_bytes();
            status::LOAD_FAILED
        }
    }
}

/// Applies the delta in the first `len` input bytes (a postcard
/// [`crate::wire::PatchInput`]) to the loaded engine in place. On failure
/// (`NOT_APPLIED`, with the reason in the result; `NO_SNAPSHOT`;
/// `MALFORMED_INPUT`) the engine is unchanged: load the delta's target
/// instead. The host checks the delta and its target's hash; this only
/// edits (`policy-wasm/src/patch.rs`).
#[unsafe(no_mangle)]
pub extern "C" fn pc_apply_delta(len: u32) -> i32 {
    STATE.with_borrow_mut(|s| {
        let Some(bytes) = s.input.get(..len as usize) else {
            return status::BAD_INPUT;
        };
        let Ok(input) = postcard::from_bytes::<crate::wire::PatchInput>(bytes) else {
            return status::MALFORMED_INPUT;
        };
        let Some(engine) = s.engine.as_mut() else {
            return status::NO_SNAPSHOT;
        };
        match engine.apply_delta(
            &input.delta,
            &input.removed_grants,
            input.revision,
            input.created_at,
        ) {
            Ok(()) => 0,
            Err(e) => {
                s.result = e.to_string().into_bytes();
                status::NOT_APPLIED
            }
        }
    })
}

/// Runs `f` over the engine and the decoded input, encoding its output.
fn call<'x, I: serde::Deserialize<'x>, O: serde::Serialize>(
    s: &'x mut State,
    len: u32,
    f: impl FnOnce(&Engine, I) -> O,
) -> i64 {
    let State {
        engine,
        input,
        result,
    } = s;
    let Some(engine) = engine.as_ref() else {
        return status::NO_SNAPSHOT.into();
    };
    let Some(bytes) = input.get(..len as usize) else {
        return status::BAD_INPUT.into();
    };
    let Ok(decoded) = postcard::from_bytes::<I>(bytes) else {
        return status::MALFORMED_INPUT.into();
    };
    let out = f(engine, decoded);
    match crate::wire::encode_into(&out, result) {
        Ok(_) => ((result.as_ptr() as usize as i64) << 32) | result.len() as i64,
        Err(_) => status::ENCODE_FAILED.into(),
    }
}

/// `Request` → `Decision`.
#[unsafe(no_mangle)]
pub extern "C" fn pc_check(len: u32) -> i64 {
    STATE.with_borrow_mut(|s| call(s, len, |e, r: Request<'_>| e.check(&r)))
}

/// `Vec<Request>` → `Vec<Decision>`.
#[unsafe(no_mangle)]
pub extern "C" fn pc_check_batch(len: u32) -> i64 {
    STATE.with_borrow_mut(|s| call(s, len, |e, rs: Batch<'_>| e.check_batch(&rs)))
}

/// `Request` → `Explanation`.
#[unsafe(no_mangle)]
pub extern "C" fn pc_explain(len: u32) -> i64 {
    STATE.with_borrow_mut(|s| call(s, len, |e, r: Request<'_>| e.explain(&r)))
}

/// `PermissionsQuery` → `Vec<String>`.
#[unsafe(no_mangle)]
pub extern "C" fn pc_permissions(len: u32) -> i64 {
    STATE.with_borrow_mut(|s| {
        call(s, len, |e, q: PermissionsQuery<'_>| {
            e.permissions(q.principal, q.resource, q.context)
        })
    })
}

/// `ListQuery` → `Result<Vec<String>, Reason>`.
#[unsafe(no_mangle)]
pub extern "C" fn pc_list(len: u32) -> i64 {
    STATE.with_borrow_mut(|s| {
        call(s, len, |e, q: ListQuery<'_>| {
            e.list(q.principal, q.action, q.kind, q.under, q.context)
        })
    })
}
