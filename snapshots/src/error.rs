//! Errors at the snapshot boundary: what went wrong with the bytes, and what
//! the operator should do about it.

use thiserror::Error;

/// Why a snapshot was refused. A refused snapshot is never half-loaded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the fixed header.
    #[error("not a snapshot: {len} bytes is shorter than the 68-byte header")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// Wrong magic bytes.
    #[error(
        "not a Portcullis snapshot (bad magic bytes); build one with `portcullis snapshot build`"
    )]
    BadMagic,
    /// A format version this build does not read.
    #[error(
        "snapshot format version {found} is not supported (this build reads version {supported}); rebuild it with this version of `portcullis snapshot build`"
    )]
    UnsupportedVersion {
        /// Version in the header.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// Header flag bits this build does not understand.
    #[error("snapshot header has unknown flags {flags:#06x}; it was written by a newer build")]
    UnsupportedFlags {
        /// The flag bits.
        flags: u16,
    },
    /// Larger than the configured limit.
    #[error("snapshot is {len} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is shorter than the header says.
    #[error(
        "snapshot is truncated: the header promises {expected} body bytes, {actual} arrived; copy the file again"
    )]
    Truncated {
        /// Body length in the header.
        expected: u64,
        /// Body bytes present.
        actual: u64,
    },
    /// Bytes after the body.
    #[error("snapshot has {extra} unexpected bytes after the body; copy the file again")]
    TrailingBytes {
        /// Extra bytes.
        extra: u64,
    },
    /// The body does not match its SHA-256.
    #[error("snapshot body does not match its SHA-256: the file is corrupted")]
    HashMismatch,
    /// The body is not valid postcard for this format version.
    #[error("snapshot body does not decode: {0}")]
    Body(String),
    /// The body decodes but breaks an invariant (a reference out of range,
    /// a cycle, …): written by a faulty tool, never by `snapshot build`.
    #[error("snapshot body is inconsistent: {0}")]
    Inconsistent(String),
}

/// Why a body could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// postcard refused the body.
    #[error("could not encode the snapshot body: {0}")]
    Postcard(#[from] postcard::Error),
    /// The body breaks an invariant the decoder checks.
    #[error("refusing to encode an inconsistent body: {0}")]
    Inconsistent(String),
}
