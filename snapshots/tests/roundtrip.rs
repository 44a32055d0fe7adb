//! Property: directory source → snapshot → decode → source is the identity,
//! for random directories that use every field of the format.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use portcullis_snapshots::generate::random_directory;
use portcullis_snapshots::source::*;
use portcullis_snapshots::{decode, encode};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn source_to_snapshot_and_back_is_identity(seed in any::<u64>(), n in 1usize..12, created in any::<i64>()) {
        let dir = random_directory(seed, n);
        let body = compile(&dir).map_err(|p| TestCaseError::fail(format!("{p:#?}")))?;
        let revision = dir.revision.unwrap_or(7);
        let bytes = encode(&body, revision, created).unwrap();
        let snap = decode(&bytes).unwrap();
        prop_assert_eq!(snap.header.revision, revision);
        prop_assert_eq!(snap.header.created_at, created);
        prop_assert_eq!(&snap.body, &body);
        let back = decompile(&snap.body, dir.revision);
        prop_assert_eq!(&back, &dir);
        // Encoding is deterministic: the same directory, the same bytes.
        prop_assert_eq!(encode(&compile(&back).unwrap(), revision, created).unwrap(), bytes);
    }

    #[test]
    fn json_text_round_trips_through_the_parser(seed in any::<u64>(), n in 1usize..8) {
        let dir = random_directory(seed, n);
        let text = serde_json::to_string_pretty(&dir).unwrap();
        let (parsed, _) = build(&text).map_err(|p| TestCaseError::fail(p.to_string()))?;
        prop_assert_eq!(parsed, dir);
    }
}

#[test]
fn example_directory_round_trips() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.json"))
        .unwrap();
    let (dir, body) = build(&text).unwrap();
    let snap = decode(&encode(&body, 1, 0).unwrap()).unwrap();
    assert_eq!(decompile(&snap.body, dir.revision), dir);
}
