//! Ed25519 signatures on snapshots: proof that a snapshot is the
//! operator's. A signed snapshot sets [`FLAG_SIGNED`] in its header and ends
//! with a trailer — the signer's 32-byte public key and a 64-byte signature
//! of `"portcullis snapshot signature v1\0" ‖ header`. The header holds the
//! revision and the body's SHA-256, so the signature covers the whole
//! snapshot; [`verify`] checks the body against that hash as well.
//!
//! Keys are PKCS#8 (private) and SPKI (public) PEM files, as
//! `openssl genpkey -algorithm ed25519` writes them, or made by
//! `portcullis snapshot keygen`.
#![allow(
    clippy::indexing_slicing,
    reason = "slices at offsets `Header::parse` has checked against the input length"
)]

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::codec::body_digest;
use crate::delta::{DELTA_HEADER_LEN, DELTA_SIGNATURE_CONTEXT, DeltaError, DeltaHeader};
use crate::error::DecodeError;
use crate::header::{FLAG_SIGNED, HEADER_LEN, Header};

/// Why a snapshot's signature is not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// Unsigned, where a signature is required.
    #[error(
        "the snapshot is not signed, and signatures are required: sign it with `portcullis snapshot sign` or `snapshot build --sign`"
    )]
    Unsigned,
    /// Signed by a key that is not trusted.
    #[error(
        "the snapshot is signed by key {fingerprint}, which is not trusted: add its public key to snapshot.trusted_keys, or sign with a trusted key"
    )]
    UntrustedKey {
        /// The signer's key fingerprint.
        fingerprint: String,
    },
    /// The signature does not verify.
    #[error(
        "the snapshot's signature does not verify: it was changed after signing or signed wrongly; do not load it"
    )]
    BadSignature,
    /// The bytes are not a snapshot.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The bytes are not a delta.
    #[error(transparent)]
    Delta(#[from] DeltaError),
}

/// Why a key could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not a PEM Ed25519 key of the expected kind.
    #[error("not an Ed25519 {kind} key in PEM ({detail})")]
    Invalid {
        /// `private` or `public`.
        kind: &'static str,
        /// What the parser said.
        detail: String,
    },
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A new random signing key.
#[cfg(feature = "keygen")]
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The private key as PKCS#8 PEM.
pub fn private_pem(key: &SigningKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|p| p.to_string())
        .map_err(|e| KeyError::Invalid {
            kind: "private",
            detail: e.to_string(),
        })
}

/// The public key as SPKI PEM.
pub fn public_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Invalid {
            kind: "public",
            detail: e.to_string(),
        })
}

/// Reads a PKCS#8 PEM private key.
pub fn read_private(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| KeyError::Invalid {
        kind: "private",
        detail: e.to_string(),
    })
}

/// Reads an SPKI PEM public key, or 64 hexadecimal digits of a raw one.
pub fn read_public(text: &str) -> Result<VerifyingKey, KeyError> {
    let text = text.trim();
    let invalid = |detail: String| KeyError::Invalid {
        kind: "public",
        detail,
    };
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(text, &mut raw).map_err(|e| invalid(e.to_string()))?;
        return VerifyingKey::from_bytes(&raw).map_err(|e| invalid(e.to_string()));
    }
    VerifyingKey::from_public_key_pem(text).map_err(|e| invalid(e.to_string()))
}

/// A short name for a public key: the first 16 hex digits of its SHA-256.
pub fn fingerprint(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// `snapshot`, signed by `key` (an existing signature is replaced).
pub fn sign(snapshot: &[u8], key: &SigningKey) -> Result<Vec<u8>, DecodeError> {
    let header = Header::parse(snapshot)?;
    let mut out = snapshot[..header.body_range().end].to_vec();
    let flags = (header.flags | FLAG_SIGNED).to_le_bytes();
    out[10..12].copy_from_slice(&flags);
    let signature = key.sign(&message(&out[..HEADER_LEN]));
    out.extend_from_slice(key.verifying_key().as_bytes());
    out.extend_from_slice(&signature.to_bytes());
    Ok(out)
}

/// The signer's public key, if the snapshot is signed (not verified).
pub fn signer(snapshot: &[u8]) -> Result<Option<VerifyingKey>, DecodeError> {
    let header = Header::parse(snapshot)?;
    if !header.is_signed() {
        return Ok(None);
    }
    let (key, _) = trailer(snapshot, &header);
    Ok(VerifyingKey::from_bytes(&key).ok())
}

/// Verifies a snapshot against `trusted` keys: `Ok(Some(key))` when it is
/// signed by one of them (and its body matches its header), `Ok(None)` when
/// it is not signed at all (the caller decides whether that is allowed),
/// an error when it is signed by an unknown key, or wrongly.
pub fn verify(
    snapshot: &[u8],
    trusted: &[VerifyingKey],
) -> Result<Option<VerifyingKey>, SignatureError> {
    let signer = verify_header(snapshot, trusted)?;
    let header = Header::parse(snapshot)?;
    if signer.is_some() && body_digest(&snapshot[header.body_range()]) != header.body_sha256 {
        return Err(DecodeError::HashMismatch.into());
    }
    Ok(signer)
}

/// [`verify`] without checking the body against the header's hash: for a
/// caller that decodes the snapshot next (decoding checks the hash) and
/// would otherwise hash the body twice — the browser package, which hashes
/// with WebCrypto.
pub fn verify_header(
    snapshot: &[u8],
    trusted: &[VerifyingKey],
) -> Result<Option<VerifyingKey>, SignatureError> {
    let header = Header::parse(snapshot)?;
    if !header.is_signed() {
        return Ok(None);
    }
    let (key, signature) = trailer(snapshot, &header);
    trusted_signer(key, signature, &message(&snapshot[..HEADER_LEN]), trusted).map(Some)
}

/// The trusted key among `trusted` that is `key`, if its `signature` of
/// `message` verifies.
fn trusted_signer(
    key: [u8; 32],
    signature: [u8; 64],
    message: &[u8],
    trusted: &[VerifyingKey],
) -> Result<VerifyingKey, SignatureError> {
    let Some(key) = trusted.iter().find(|k| k.as_bytes() == &key) else {
        let fingerprint = VerifyingKey::from_bytes(&key)
            .map(|k| fingerprint(&k))
            .unwrap_or_else(|_| "(not a valid key)".into());
        return Err(SignatureError::UntrustedKey { fingerprint });
    };
    key.verify(message, &Signature::from_bytes(&signature))
        .map_err(|_| SignatureError::BadSignature)?;
    Ok(*key)
}

/// `delta`, signed by `key` (an existing signature is replaced): the same
/// trailer as a snapshot's, over `"portcullis delta signature v1\0" ‖
/// header`, so a snapshot's signature can never pass for a delta's.
pub fn sign_delta(delta: &[u8], key: &SigningKey) -> Result<Vec<u8>, DeltaError> {
    let header = DeltaHeader::parse(delta)?;
    let mut out = delta[..header.body_range().end].to_vec();
    let flags = (header.flags | FLAG_SIGNED).to_le_bytes();
    out[10..12].copy_from_slice(&flags);
    let signature = key.sign(&[DELTA_SIGNATURE_CONTEXT, &out[..DELTA_HEADER_LEN]].concat());
    out.extend_from_slice(key.verifying_key().as_bytes());
    out.extend_from_slice(&signature.to_bytes());
    Ok(out)
}

/// Verifies a delta's signature against `trusted` keys, as [`verify_header`]
/// does a snapshot's: `Ok(Some(key))` signed by one of them, `Ok(None)`
/// unsigned, an error when signed by another key or wrongly. The delta's
/// body is checked against its hash when it is decoded.
pub fn verify_delta(
    delta: &[u8],
    trusted: &[VerifyingKey],
) -> Result<Option<VerifyingKey>, SignatureError> {
    let Some((key, signature)) = delta_trailer(delta)? else {
        return Ok(None);
    };
    let message = [DELTA_SIGNATURE_CONTEXT, &delta[..DELTA_HEADER_LEN]].concat();
    trusted_signer(key, signature, &message, trusted).map(Some)
}

/// The signer's public key, if the delta is signed (not verified).
pub fn delta_signer(delta: &[u8]) -> Result<Option<VerifyingKey>, DeltaError> {
    Ok(delta_trailer(delta)?.and_then(|(key, _)| VerifyingKey::from_bytes(&key).ok()))
}

/// A signature trailer: the signer's public key and the signature.
type Trailer = ([u8; 32], [u8; 64]);

/// The trailer of a delta whose header says it is signed.
fn delta_trailer(delta: &[u8]) -> Result<Option<Trailer>, DeltaError> {
    let header = DeltaHeader::parse(delta)?;
    if !header.is_signed() {
        return Ok(None);
    }
    // Its length was checked by `DeltaHeader::parse`; refused all the same
    // if it were not there.
    crate::header::trailer_at(delta, header.body_range().end)
        .map(Some)
        .ok_or_else(|| DeltaError::Format("the signature trailer is cut off".into()))
}

fn message(header: &[u8]) -> Vec<u8> {
    crate::header::signed_message(header)
}

/// The trailer of a snapshot whose header says it is signed (its length
/// was checked by `Header::parse`).
fn trailer(snapshot: &[u8], header: &Header) -> ([u8; 32], [u8; 64]) {
    crate::header::signature_trailer(snapshot, header).unwrap_or(([0; 32], [0; 64]))
}
