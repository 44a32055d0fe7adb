//! Portcullis snapshots: the directory source format operators write, its
//! validation, and the compact binary snapshot the engine loads.
//!
//! ```text
//! directory.json ──parse──▶ Directory ──compile──▶ Body ──encode──▶ snapshot bytes
//!                 (every problem, located)     (indices, interned strings, header + SHA-256)
//! snapshot bytes ──decode──▶ Snapshot { Header, Body }   (checked: never panics on bad bytes)
//! ```
//!
//! The decoding half ([`decode`], [`body`], [`header`]) has no JSON
//! dependencies and builds for `wasm32-unknown-unknown`; the `source`
//! feature (on by default) adds the directory source, the compiler, the
//! diff and the benchmark generator. The formats are specified in
//! `snapshots/FORMAT.md`.

pub mod body;
mod candidate;
mod codec;
pub mod delta;
mod error;
mod exact_vec;
pub mod fingerprint;
pub mod header;
pub mod integrity;
pub mod view;
pub mod vocabulary;

#[cfg(feature = "source")]
pub mod diff;
#[cfg(feature = "source")]
pub mod generate;
#[cfg(feature = "source")]
pub mod scope;
#[cfg(feature = "signing")]
pub mod signature;
#[cfg(feature = "source")]
pub mod source;

pub use candidate::Candidate;
pub use codec::{
    DecodeLimits, Snapshot, body_digest, decode, decode_with, decode_with_digest, encode,
    encode_view,
};
pub use error::{DecodeError, EncodeError};
pub use header::Header;
