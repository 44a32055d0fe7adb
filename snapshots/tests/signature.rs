//! Signed snapshots (issue #7): signing, verifying against trusted keys,
//! and every way a signature can be missing, foreign or broken.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use portcullis_snapshots::header::{HEADER_LEN, SIGNATURE_LEN};
use portcullis_snapshots::signature::{
    SignatureError, fingerprint, generate, private_pem, public_pem, read_private, read_public,
    sign, signer, verify,
};
use portcullis_snapshots::{DecodeError, decode, encode, source};

fn example() -> Vec<u8> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.json"))
        .unwrap();
    let (_, body) = source::build(&text).unwrap();
    encode(&body, 7, 1_700_000_000).unwrap()
}

#[test]
fn a_signed_snapshot_verifies_against_its_key_and_still_decodes() {
    let key = generate().unwrap();
    let plain = example();
    let signed = sign(&plain, &key).unwrap();
    assert_eq!(signed.len(), plain.len() + SIGNATURE_LEN);
    assert_eq!(
        verify(&signed, &[key.verifying_key()]).unwrap(),
        Some(key.verifying_key())
    );
    assert_eq!(signer(&signed).unwrap(), Some(key.verifying_key()));
    let decoded = decode(&signed).unwrap();
    assert_eq!(decoded.header.revision, 7);
    assert!(decoded.header.is_signed());
    assert_eq!(decoded.body, decode(&plain).unwrap().body);
    // Signing again replaces the signature instead of stacking another.
    let other = generate().unwrap();
    let resigned = sign(&signed, &other).unwrap();
    assert_eq!(resigned.len(), signed.len());
    assert!(
        verify(&resigned, &[other.verifying_key()])
            .unwrap()
            .is_some()
    );
}

#[test]
fn unsigned_snapshots_are_reported_as_unsigned() {
    let key = generate().unwrap();
    assert_eq!(verify(&example(), &[key.verifying_key()]).unwrap(), None);
    assert_eq!(signer(&example()).unwrap(), None);
}

#[test]
fn a_foreign_key_is_not_trusted() {
    let (ours, theirs) = (generate().unwrap(), generate().unwrap());
    let signed = sign(&example(), &theirs).unwrap();
    let err = verify(&signed, &[ours.verifying_key()]).unwrap_err();
    assert_eq!(
        err,
        SignatureError::UntrustedKey {
            fingerprint: fingerprint(&theirs.verifying_key())
        }
    );
    // Swapping in a trusted public key does not make the signature valid.
    let mut forged = signed.clone();
    let at = forged.len() - SIGNATURE_LEN;
    forged[at..at + 32].copy_from_slice(ours.verifying_key().as_bytes());
    assert_eq!(
        verify(&forged, &[ours.verifying_key()]).unwrap_err(),
        SignatureError::BadSignature
    );
}

#[test]
fn any_change_after_signing_is_refused() {
    let key = generate().unwrap();
    let trusted = [key.verifying_key()];
    let signed = sign(&example(), &key).unwrap();
    // A newer revision number in the header (a replayed body, re-dated).
    let mut b = signed.clone();
    b[12] ^= 1;
    assert_eq!(
        verify(&b, &trusted).unwrap_err(),
        SignatureError::BadSignature
    );
    // The signature itself.
    let mut b = signed.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    assert_eq!(
        verify(&b, &trusted).unwrap_err(),
        SignatureError::BadSignature
    );
    // The body (the header's hash no longer matches it).
    let mut b = signed.clone();
    b[HEADER_LEN + 5] ^= 1;
    assert_eq!(
        verify(&b, &trusted).unwrap_err(),
        SignatureError::Decode(DecodeError::HashMismatch)
    );
    // A cut-off trailer.
    let b = &signed[..signed.len() - 10];
    assert!(matches!(
        verify(b, &trusted).unwrap_err(),
        SignatureError::Decode(DecodeError::Truncated { .. })
    ));
    // The signed flag cleared: it reads as trailing bytes, not as unsigned.
    let mut b = signed;
    b[10] = 0;
    assert!(matches!(
        verify(&b, &trusted).unwrap_err(),
        SignatureError::Decode(DecodeError::TrailingBytes { .. })
    ));
}

#[test]
fn keys_round_trip_through_pem_and_hex() {
    let key = generate().unwrap();
    let private = private_pem(&key).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(read_private(&private).unwrap().to_bytes(), key.to_bytes());
    let public = public_pem(&key.verifying_key()).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(read_public(&public).unwrap(), key.verifying_key());
    let hex = hex::encode(key.verifying_key().as_bytes());
    assert_eq!(read_public(&hex).unwrap(), key.verifying_key());
    assert!(read_public("not a key").is_err());
    assert!(read_private(&public).is_err());
}
