//! The fixed 68-byte snapshot header (see `snapshots/FORMAT.md`).
//!
//! The header is read without touching the body, so a gateway can refuse an
//! old revision or a wrong format before it spends time on decoding.

use crate::error::DecodeError;

/// Magic bytes: a non-ASCII first byte (catches text-mode transfers, as
/// PNG does), `PCSNAP`, and a line feed (catches CRLF conversion).
pub const MAGIC: [u8; 8] = [0x89, b'P', b'C', b'S', b'N', b'A', b'P', b'\n'];
/// The snapshot format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the header in bytes.
pub const HEADER_LEN: usize = 68;
/// Flag: the body is followed by an Ed25519 signature trailer
/// ([`SIGNATURE_LEN`] bytes: the signer's public key, then the signature of
/// the header; see `crate::signature`).
pub const FLAG_SIGNED: u16 = 1;
/// Header flag: the body is a principal's view, and its
/// [`crate::view::ViewFacts`] follow the body's tables (within `body_len`).
pub const FLAG_VIEW: u16 = 2;
/// Size of the signature trailer in bytes.
pub const SIGNATURE_LEN: usize = 32 + 64;
/// What a signature signs, before the 68 header bytes (FORMAT.md): domain
/// separation, so a signature over a snapshot header means nothing
/// anywhere else.
pub const SIGNATURE_CONTEXT: &[u8] = b"portcullis snapshot signature v1\0";

/// The bytes a snapshot's signature signs: the context, then its header.
/// (Here rather than in `signature` so that a verifier without this
/// crate's Ed25519 — the browser package, which verifies with WebCrypto —
/// signs-checks the same bytes.)
pub fn signed_message(header: &[u8]) -> Vec<u8> {
    [SIGNATURE_CONTEXT, header].concat()
}

/// The signer's public key and the signature of a signed snapshot, if its
/// trailer is there.
pub fn signature_trailer(snapshot: &[u8], header: &Header) -> Option<([u8; 32], [u8; 64])> {
    trailer_at(snapshot, header.body_range().end)
}

/// The signer's public key and the signature in the trailer starting at
/// byte `at` (a snapshot's or a delta's), if it is there.
pub fn trailer_at(bytes: &[u8], at: usize) -> Option<([u8; 32], [u8; 64])> {
    let t = bytes.get(at..at.checked_add(SIGNATURE_LEN)?)?;
    let (k, s) = t.split_first_chunk::<32>()?;
    Some((*k, *s.first_chunk::<64>()?))
}

/// The decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version (always [`FORMAT_VERSION`] once decoded).
    pub format_version: u16,
    /// Flag bits: [`FLAG_SIGNED`], [`FLAG_VIEW`], or none.
    pub flags: u16,
    /// Monotonically increasing revision chosen by the operator.
    pub revision: u64,
    /// Unix seconds when the snapshot was built.
    pub created_at: i64,
    /// Length of the postcard body in bytes.
    pub body_len: u64,
    /// SHA-256 of the body.
    pub body_sha256: [u8; 32],
}

impl Header {
    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.format_version.to_le_bytes());
        out[10..12].copy_from_slice(&self.flags.to_le_bytes());
        out[12..20].copy_from_slice(&self.revision.to_le_bytes());
        out[20..28].copy_from_slice(&self.created_at.to_le_bytes());
        out[28..36].copy_from_slice(&self.body_len.to_le_bytes());
        out[36..68].copy_from_slice(&self.body_sha256);
        out
    }

    /// Whether a signature trailer follows the body.
    pub fn is_signed(&self) -> bool {
        self.flags & FLAG_SIGNED != 0
    }

    /// Whether the body is a principal's view.
    pub fn is_view(&self) -> bool {
        self.flags & FLAG_VIEW != 0
    }

    /// Where the body is in the snapshot's bytes.
    pub fn body_range(&self) -> std::ops::Range<usize> {
        HEADER_LEN..HEADER_LEN + self.body_len as usize
    }

    /// Decodes and checks the header at the start of `bytes`: magic,
    /// version, flags, and that the body length matches what follows.
    pub fn parse(bytes: &[u8]) -> Result<Header, DecodeError> {
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::TooShort { len: bytes.len() });
        };
        if h[0..8] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let format_version = u16::from_le_bytes([h[8], h[9]]);
        if format_version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: format_version,
                supported: FORMAT_VERSION,
            });
        }
        let flags = u16::from_le_bytes([h[10], h[11]]);
        if flags & !(FLAG_SIGNED | FLAG_VIEW) != 0 {
            return Err(DecodeError::UnsupportedFlags { flags });
        }
        let trailer = if flags & FLAG_SIGNED != 0 {
            SIGNATURE_LEN as u64
        } else {
            0
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            if let Some(field) = h.get(at..at + 8) {
                b.copy_from_slice(field);
            }
            b
        };
        let revision = u64::from_le_bytes(u64_at(12));
        let created_at = i64::from_le_bytes(u64_at(20));
        let body_len = u64::from_le_bytes(u64_at(28));
        let mut body_sha256 = [0u8; 32];
        body_sha256.copy_from_slice(&h[36..68]);
        // The body, and the signature trailer when the header announces one.
        let actual = ((bytes.len() - HEADER_LEN) as u64).saturating_sub(trailer);
        if ((bytes.len() - HEADER_LEN) as u64) < trailer || actual < body_len {
            return Err(DecodeError::Truncated {
                expected: body_len,
                actual,
            });
        }
        if actual > body_len {
            return Err(DecodeError::TrailingBytes {
                extra: actual - body_len,
            });
        }
        Ok(Header {
            format_version,
            flags,
            revision,
            created_at,
            body_len,
            body_sha256,
        })
    }
}
