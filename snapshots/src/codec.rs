//! Snapshot bytes ⇄ [`Snapshot`]: header, SHA-256, postcard body, and the
//! integrity checks that let the engine index a body without bounds worries.

use sha2::{Digest, Sha256};

use crate::body::Body;
use crate::error::{DecodeError, EncodeError};
use crate::header::{FORMAT_VERSION, HEADER_LEN, Header};
use crate::integrity::check_body;

/// A decoded, verified snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The header.
    pub header: Header,
    /// The body, every reference checked.
    pub body: Body,
}

/// Limits applied while decoding untrusted bytes.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Largest accepted snapshot, header included.
    pub max_bytes: usize,
}

impl Default for DecodeLimits {
    /// 256 MiB: ten times the large benchmark directory.
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 256 << 20,
        }
    }
}

/// Encodes `body` as a complete snapshot. Refuses a body that the decoder
/// would refuse, so a tool bug cannot produce an unloadable file.
pub fn encode(body: &Body, revision: u64, created_at: i64) -> Result<Vec<u8>, EncodeError> {
    check_body(body).map_err(|e| match e {
        DecodeError::Inconsistent(m) => EncodeError::Inconsistent(m),
        other => EncodeError::Inconsistent(other.to_string()),
    })?;
    let body_bytes = postcard::to_stdvec(body)?;
    let header = Header {
        format_version: FORMAT_VERSION,
        flags: 0,
        revision,
        created_at,
        body_len: body_bytes.len() as u64,
        body_sha256: Sha256::digest(&body_bytes).into(),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body_bytes.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&body_bytes);
    Ok(out)
}

/// Decodes and verifies a snapshot with the default [`DecodeLimits`].
pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    decode_with(bytes, DecodeLimits::default())
}

/// Decodes and verifies a snapshot: size limit, header, SHA-256 of the body,
/// postcard, then every reference and the acyclicity of the org tree.
pub fn decode_with(bytes: &[u8], limits: DecodeLimits) -> Result<Snapshot, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let header = Header::parse(bytes)?;
    let body_bytes = &bytes[HEADER_LEN..];
    let digest: [u8; 32] = Sha256::digest(body_bytes).into();
    if digest != header.body_sha256 {
        return Err(DecodeError::HashMismatch);
    }
    let (body, rest): (Body, &[u8]) =
        crate::exact_vec::with_budget(body_bytes.len(), || postcard::take_from_bytes(body_bytes))
            .map_err(|e| DecodeError::Body(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Body(format!(
            "{} bytes left over after the body",
            rest.len()
        )));
    }
    check_body(&body)?;
    Ok(Snapshot { header, body })
}
