//! The decoder refuses every kind of bad input with a typed error and never
//! panics: truncated, corrupted, wrong version, oversized, inconsistent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use portcullis_snapshots::body::*;
use portcullis_snapshots::header::{FORMAT_VERSION, HEADER_LEN, Header};
use portcullis_snapshots::{
    DecodeError, DecodeLimits, body_digest, decode, decode_with, decode_with_digest, encode, source,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn example() -> Vec<u8> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.json"))
        .unwrap();
    let (_, body) = source::build(&text).unwrap();
    encode(&body, 42, 1_700_000_000).unwrap()
}

/// Wraps raw body bytes in a header with a correct hash, bypassing the
/// encoder's own checks, to reach the body decoder with anything.
fn wrap(body: &[u8]) -> Vec<u8> {
    let h = Header {
        format_version: FORMAT_VERSION,
        flags: 0,
        revision: 1,
        created_at: 0,
        body_len: body.len() as u64,
        body_sha256: Sha256::digest(body).into(),
    };
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn example_decodes() {
    let snap = decode(&example()).unwrap();
    assert_eq!(snap.header.revision, 42);
    assert_eq!(snap.body.users.len(), 25);
}

#[test]
fn every_truncation_is_refused() {
    let bytes = example();
    for len in 0..bytes.len() {
        let err = decode(&bytes[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::TooShort { .. } | DecodeError::Truncated { .. }
            ),
            "len {len}: {err:?}"
        );
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = example();
    bytes.push(0);
    assert_eq!(
        decode(&bytes).unwrap_err(),
        DecodeError::TrailingBytes { extra: 1 }
    );
}

#[test]
fn corrupted_body_fails_the_hash() {
    let mut bytes = example();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    assert_eq!(decode(&bytes).unwrap_err(), DecodeError::HashMismatch);
}

#[test]
fn piecewise_digest_is_the_plain_sha256() {
    // The body is hashed in 64 KiB pieces; any length must give SHA-256.
    for len in [0, 1, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 300_000] {
        let body: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let plain: [u8; 32] = Sha256::digest(&body).into();
        assert_eq!(body_digest(&body), plain, "len {len}");
    }
}

#[test]
fn a_digest_computed_by_the_caller_is_checked_against_the_header() {
    let bytes = example();
    let digest: [u8; 32] = Sha256::digest(&bytes[HEADER_LEN..]).into();
    let snap = decode_with_digest(&bytes, DecodeLimits::default(), digest).unwrap();
    assert_eq!(snap.header.revision, 42);
    let mut wrong = digest;
    wrong[0] ^= 1;
    assert_eq!(
        decode_with_digest(&bytes, DecodeLimits::default(), wrong).unwrap_err(),
        DecodeError::HashMismatch
    );
}

#[test]
fn wrong_magic_version_and_flags_are_refused() {
    let bytes = example();
    let mut b = bytes.clone();
    b[1] = b'X';
    assert_eq!(decode(&b).unwrap_err(), DecodeError::BadMagic);
    let mut b = bytes.clone();
    b[8] = 2;
    assert_eq!(
        decode(&b).unwrap_err(),
        DecodeError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
    let mut b = bytes.clone();
    b[10] = 4;
    assert!(matches!(
        decode(&b).unwrap_err(),
        DecodeError::UnsupportedFlags { flags: 4 }
    ));
    // The view flag on a whole directory: no view facts follow the body
    // (and the header is covered by no hash, so the flag cannot be
    // trusted to mean anything but "read the facts").
    let mut b = bytes.clone();
    b[10] = 2;
    assert!(matches!(decode(&b).unwrap_err(), DecodeError::Body(_)));
    // The signed flag without its trailer: the body looks truncated.
    let mut b = bytes;
    b[10] = 1;
    assert!(matches!(
        decode(&b).unwrap_err(),
        DecodeError::Truncated { .. }
    ));
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let bytes = example();
    let err = decode_with(&bytes, DecodeLimits { max_bytes: 100 }).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLarge {
            len: bytes.len(),
            limit: 100
        }
    );
}

#[test]
fn inconsistent_bodies_are_refused() {
    let good = decode(&example()).unwrap().body;
    type Mutation = Box<dyn Fn(&mut Body)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "grant to a missing user",
            Box::new(|b| b.grants[0].principal = PrincipalRef::User(9999)),
        ),
        (
            "string out of range",
            Box::new(|b| b.users[0].email = Str(u32::MAX)),
        ),
        (
            "org cycle",
            Box::new(|b| {
                b.orgs[1].parent = Some(2);
                b.orgs[2].parent = Some(1);
            }),
        ),
        ("second root", Box::new(|b| b.orgs[1].parent = None)),
        (
            "admin on a catalog",
            Box::new(|b| {
                b.grants[0] = GrantRec {
                    principal: PrincipalRef::User(0),
                    role: RoleRef::Builtin(portcullis_snapshots::vocabulary::BuiltinRole::Admin),
                    on: NodeRef::Catalog(0),
                }
            }),
        ),
        (
            "group in a group",
            Box::new(|b| b.groups[0].members.push(PrincipalRef::Group(0))),
        ),
        (
            "string split inside a character",
            Box::new(|b| {
                b.strings.blob.push('é');
                let n = b.strings.blob.len() as u32;
                b.strings.ends.push(n - 1);
            }),
        ),
        (
            "object below an environment",
            Box::new(|b| b.objects[0].parent = NodeRef::Env(0)),
        ),
    ];
    for (what, mutate) in cases {
        let mut body = good.clone();
        mutate(&mut body);
        assert!(
            encode(&body, 1, 0).is_err(),
            "{what}: the encoder must refuse it too"
        );
        let err = decode(&wrap(&postcard::to_stdvec(&body).unwrap())).unwrap_err();
        assert!(
            matches!(err, DecodeError::Inconsistent(_)),
            "{what}: {err:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode(&wrap(&bytes));
    }

    #[test]
    fn mutated_bodies_with_valid_hashes_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let bytes = example();
        let mut body = bytes[HEADER_LEN..].to_vec();
        for (at, v) in flips {
            let i = at.index(body.len());
            body[i] = v;
        }
        if let Ok(snap) = decode(&wrap(&body)) {
            // Whatever decodes is consistent enough to walk without panics.
            let _ = source::decompile(&snap.body, None);
        }
    }
}
