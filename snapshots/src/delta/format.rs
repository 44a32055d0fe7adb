//! The delta file: a 140-byte header naming the base and the target, the
//! postcard [`DeltaBody`], and an optional Ed25519 signature trailer (the
//! same trailer as a snapshot's, over another context string).

use crate::codec::body_digest;
use crate::header::{FLAG_SIGNED, Header, SIGNATURE_LEN};

use super::body::{DeltaBody, apply};
use super::error::DeltaError;

/// Magic bytes: like a snapshot's, `PCDELT` in the middle.
pub const DELTA_MAGIC: [u8; 8] = [0x89, b'P', b'C', b'D', b'E', b'L', b'T', b'\n'];
/// The delta format version this crate writes and reads.
pub const DELTA_VERSION: u16 = 1;
/// Size of the header in bytes.
pub const DELTA_HEADER_LEN: usize = 140;
/// What a delta's signature signs, before its header.
pub const DELTA_SIGNATURE_CONTEXT: &[u8] = b"portcullis delta signature v1\0";

/// The decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaHeader {
    /// Flag bits: [`FLAG_SIGNED`] or none.
    pub flags: u16,
    /// The revision it applies to.
    pub base_revision: u64,
    /// The body SHA-256 of the snapshot it applies to.
    pub base_sha256: [u8; 32],
    /// The revision it makes.
    pub target_revision: u64,
    /// The creation time of the snapshot it makes (Unix seconds).
    pub target_created_at: i64,
    /// The body SHA-256 of the snapshot it makes.
    pub target_sha256: [u8; 32],
    /// Length of the delta's own body.
    pub body_len: u64,
    /// SHA-256 of the delta's own body.
    pub body_sha256: [u8; 32],
}

/// A decoded delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// Its header.
    pub header: DeltaHeader,
    /// Its edits.
    pub body: DeltaBody,
}

impl DeltaHeader {
    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; DELTA_HEADER_LEN] {
        let mut out = [0u8; DELTA_HEADER_LEN];
        let mut at = 0;
        let mut put = |b: &[u8]| {
            if let Some(dst) = out.get_mut(at..at + b.len()) {
                dst.copy_from_slice(b);
            }
            at += b.len();
        };
        put(&DELTA_MAGIC);
        put(&DELTA_VERSION.to_le_bytes());
        put(&self.flags.to_le_bytes());
        put(&self.base_revision.to_le_bytes());
        put(&self.base_sha256);
        put(&self.target_revision.to_le_bytes());
        put(&self.target_created_at.to_le_bytes());
        put(&self.target_sha256);
        put(&self.body_len.to_le_bytes());
        put(&self.body_sha256);
        out
    }

    /// Decodes and checks the header at the start of `bytes`: magic,
    /// version, flags, and that the body (and trailer) length matches.
    pub fn parse(bytes: &[u8]) -> Result<DeltaHeader, DeltaError> {
        let bad = |m: &str| DeltaError::Format(m.to_string());
        let h = bytes
            .first_chunk::<DELTA_HEADER_LEN>()
            .ok_or_else(|| bad("shorter than the 140-byte delta header"))?;
        if field::<8>(h, 0) != DELTA_MAGIC {
            return Err(bad(
                "bad magic bytes (not a delta; make one with `portcullis snapshot delta`)",
            ));
        }
        fn field<const N: usize>(h: &[u8; DELTA_HEADER_LEN], at: usize) -> [u8; N] {
            h.get(at..at + N)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; N])
        }
        let u16_at = |at: usize| u16::from_le_bytes(field(h, at));
        let u64_at = |at: usize| u64::from_le_bytes(field(h, at));
        let sha_at = |at: usize| field::<32>(h, at);
        let version = u16_at(8);
        if version != DELTA_VERSION {
            return Err(DeltaError::Format(format!(
                "delta format version {version} is not supported (this build reads version {DELTA_VERSION})"
            )));
        }
        let flags = u16_at(10);
        if flags & !FLAG_SIGNED != 0 {
            return Err(DeltaError::Format(format!(
                "unknown header flags {flags:#06x}; written by a newer build"
            )));
        }
        let header = DeltaHeader {
            flags,
            base_revision: u64_at(12),
            base_sha256: sha_at(20),
            target_revision: u64_at(52),
            target_created_at: u64_at(60) as i64,
            target_sha256: sha_at(68),
            body_len: u64_at(100),
            body_sha256: sha_at(108),
        };
        let trailer = if header.is_signed() { SIGNATURE_LEN } else { 0 } as u64;
        let rest = (bytes.len() - DELTA_HEADER_LEN) as u64;
        if rest != header.body_len.saturating_add(trailer) {
            return Err(DeltaError::Format(format!(
                "the header announces {} body bytes{}, {} follow: the file is truncated or has extra bytes; fetch it again",
                header.body_len,
                if trailer > 0 { " and a signature" } else { "" },
                rest
            )));
        }
        Ok(header)
    }

    /// Whether a signature trailer follows the body.
    pub fn is_signed(&self) -> bool {
        self.flags & FLAG_SIGNED != 0
    }

    /// Where the delta's body is.
    pub fn body_range(&self) -> std::ops::Range<usize> {
        DELTA_HEADER_LEN..DELTA_HEADER_LEN + self.body_len as usize
    }

    /// Whether this delta applies to the snapshot with `header`.
    pub fn applies_to(&self, header: &Header) -> bool {
        self.base_revision == header.revision && self.base_sha256 == header.body_sha256
    }

    /// The refusal for a snapshot this delta does not apply to.
    pub fn wrong_base(&self, revision: u64, sha256: &[u8; 32]) -> DeltaError {
        DeltaError::WrongBase {
            base_revision: self.base_revision,
            base_sha256: hex::encode(self.base_sha256),
            revision,
            sha256: hex::encode(sha256),
        }
    }
}

/// Whether `bytes` start like a delta (rather than a snapshot).
pub fn is_delta(bytes: &[u8]) -> bool {
    bytes.starts_with(&DELTA_MAGIC)
}

/// Encodes an unsigned delta from `base` to the snapshot with `target`'s
/// header.
pub fn encode_delta(
    base: &Header,
    target: &Header,
    body: &DeltaBody,
) -> Result<Vec<u8>, DeltaError> {
    let encoded = postcard::to_allocvec(body).map_err(|e| DeltaError::Encode(e.to_string()))?;
    let header = DeltaHeader {
        flags: 0,
        base_revision: base.revision,
        base_sha256: base.body_sha256,
        target_revision: target.revision,
        target_created_at: target.created_at,
        target_sha256: target.body_sha256,
        body_len: encoded.len() as u64,
        body_sha256: body_digest(&encoded),
    };
    let mut out = Vec::with_capacity(DELTA_HEADER_LEN + encoded.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&encoded);
    Ok(out)
}

/// Decodes a delta and checks its body against its SHA-256 (not its
/// signature: `signature::verify_delta` does).
pub fn decode_delta(bytes: &[u8]) -> Result<Delta, DeltaError> {
    let header = DeltaHeader::parse(bytes)?;
    let body = bytes
        .get(header.body_range())
        .ok_or_else(|| DeltaError::Format("truncated".into()))?;
    if body_digest(body) != header.body_sha256 {
        return Err(DeltaError::HashMismatch);
    }
    let body = crate::exact_vec::with_budget(body.len(), || postcard::from_bytes(body))
        .map_err(|e| DeltaError::Format(format!("the delta's body does not decode: {e}")))?;
    Ok(Delta { header, body })
}

impl Delta {
    /// Applies this delta to the snapshot `base` (bytes, checked whole):
    /// the target snapshot's bytes, unsigned — the same body and SHA-256
    /// as the full build of the target.
    pub fn apply_to(&self, base: &[u8]) -> Result<Vec<u8>, DeltaError> {
        let h = Header::parse(base).map_err(DeltaError::Base)?;
        if !self.header.applies_to(&h) {
            return Err(self.header.wrong_base(h.revision, &h.body_sha256));
        }
        if h.is_view() {
            return Err(DeltaError::Base(crate::DecodeError::Inconsistent(
                "a principal's view is not a directory a delta applies to".into(),
            )));
        }
        let snapshot = crate::decode(base).map_err(DeltaError::Base)?;
        let body = apply(&snapshot.body, &self.body)?;
        let out = crate::encode(
            &body,
            self.header.target_revision,
            self.header.target_created_at,
        )
        .map_err(|e| DeltaError::Encode(e.to_string()))?;
        let got = Header::parse(&out).map_err(DeltaError::Base)?.body_sha256;
        if got != self.header.target_sha256 {
            return Err(DeltaError::TargetMismatch {
                want: hex::encode(self.header.target_sha256),
                got: hex::encode(got),
            });
        }
        Ok(out)
    }
}
