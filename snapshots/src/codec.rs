//! Snapshot bytes ⇄ [`Snapshot`]: header, SHA-256, postcard body, and the
//! integrity checks that let the engine index a body without bounds worries.

use sha2::{Digest, Sha256};

use crate::body::Body;
use crate::error::{DecodeError, EncodeError};
use crate::header::{FLAG_VIEW, FORMAT_VERSION, HEADER_LEN, Header};
use crate::integrity::check_body;
use crate::view::ViewFacts;

/// A decoded, verified snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The header.
    pub header: Header,
    /// The body, every reference checked.
    pub body: Body,
    /// For a principal's view: the facts it states (see [`crate::view`]).
    pub view: Option<ViewFacts>,
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
    encode_with(body, None, revision, created_at)
}

/// Encodes a principal's view: `body` and the `facts` it states, with
/// [`FLAG_VIEW`] set.
pub fn encode_view(
    body: &Body,
    facts: &ViewFacts,
    revision: u64,
    created_at: i64,
) -> Result<Vec<u8>, EncodeError> {
    encode_with(body, Some(facts), revision, created_at)
}

fn encode_with(
    body: &Body,
    view: Option<&ViewFacts>,
    revision: u64,
    created_at: i64,
) -> Result<Vec<u8>, EncodeError> {
    let inconsistent = |e: DecodeError| match e {
        DecodeError::Inconsistent(m) => EncodeError::Inconsistent(m),
        other => EncodeError::Inconsistent(other.to_string()),
    };
    check_body(body).map_err(inconsistent)?;
    // Serialized straight after room for the header, into a buffer sized
    // for the body, so a large body is neither regrown nor copied.
    let estimate = HEADER_LEN
        + body.strings.blob.len()
        + 4 * body.strings.ends.len()
        + 48 * (body.users.len() + body.objects.len() + body.catalogs.len())
        + 16 * (body.grants.len() + body.permissions.len());
    let mut out = Vec::with_capacity(estimate);
    out.resize(HEADER_LEN, 0);
    let mut out = postcard::to_extend(body, out)?;
    if let Some(facts) = view {
        facts.check(body).map_err(inconsistent)?;
        out = postcard::to_extend(facts, out)?;
    }
    let (head, body_bytes) = out.split_at_mut(HEADER_LEN);
    let header = Header {
        format_version: FORMAT_VERSION,
        flags: if view.is_some() { FLAG_VIEW } else { 0 },
        revision,
        created_at,
        body_len: body_bytes.len() as u64,
        body_sha256: body_digest(body_bytes),
    };
    head.copy_from_slice(&header.to_bytes());
    Ok(out)
}

/// SHA-256 of a body, fed to the hasher in 64 KiB pieces. The digest is the
/// same as hashing it whole; the pieces are for the browser: WebAssembly
/// engines first run code in a baseline tier and only switch a function to
/// optimized code on its next call, so one call over 7 MB ran entirely in
/// the slow tier (75% of a first load in Chromium), while a hundred calls
/// switch after the first few.
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for piece in body.chunks(8 * 1024) {
        absorb(&mut h, piece);
    }
    h.finalize().into()
}

#[inline(never)]
fn absorb(h: &mut Sha256, piece: &[u8]) {
    h.update(piece);
}

/// Decodes and verifies a snapshot with the default [`DecodeLimits`].
pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    decode_with(bytes, DecodeLimits::default())
}

/// Decodes and verifies a snapshot: size limit, header, SHA-256 of the body,
/// postcard, then every reference and the acyclicity of the org tree.
pub fn decode_with(bytes: &[u8], limits: DecodeLimits) -> Result<Snapshot, DecodeError> {
    decode_checked(bytes, limits, body_digest)
}

/// [`decode_with`] for a caller that has already computed the SHA-256 of
/// the body (`bytes` after the header) with a faster implementation than
/// this crate's, such as the browser's native WebCrypto. Everything else is
/// checked as usual, and a digest that does not match the header's is
/// [`DecodeError::HashMismatch`].
pub fn decode_with_digest(
    bytes: &[u8],
    limits: DecodeLimits,
    body_sha256: [u8; 32],
) -> Result<Snapshot, DecodeError> {
    decode_checked(bytes, limits, |_| body_sha256)
}

fn decode_checked(
    bytes: &[u8],
    limits: DecodeLimits,
    digest: impl FnOnce(&[u8]) -> [u8; 32],
) -> Result<Snapshot, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let header = Header::parse(bytes)?;
    // The signature trailer, if any, is checked by `signature::verify`.
    let body_bytes = bytes
        .get(header.body_range())
        .ok_or(DecodeError::Truncated {
            expected: header.body_len,
            actual: bytes.len().saturating_sub(HEADER_LEN) as u64,
        })?;
    if digest(body_bytes) != header.body_sha256 {
        return Err(DecodeError::HashMismatch);
    }
    let (body, rest): (Body, &[u8]) =
        crate::exact_vec::with_budget(body_bytes.len(), || postcard::take_from_bytes(body_bytes))
            .map_err(|e| DecodeError::Body(e.to_string()))?;
    let (view, rest) = if header.is_view() {
        let (facts, rest): (ViewFacts, &[u8]) =
            crate::exact_vec::with_budget(rest.len(), || postcard::take_from_bytes(rest))
                .map_err(|e| DecodeError::Body(format!("view facts: {e}")))?;
        (Some(facts), rest)
    } else {
        (None, rest)
    };
    if !rest.is_empty() {
        return Err(DecodeError::Body(format!(
            "{} bytes left over after the body",
            rest.len()
        )));
    }
    check_body(&body)?;
    if let Some(facts) = &view {
        facts.check(&body)?;
    }
    Ok(Snapshot { header, body, view })
}
