//! The shipped examples are living documentation: every good example
//! compiles, and every broken one fails with exactly the problems written
//! in its `.expected` file (regenerate with `PORTCULLIS_BLESS=1` and review
//! the diff).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::fs;

use portcullis_snapshots::source::build;
use portcullis_tests::{examples_dir, problem_lines};

#[test]
fn good_examples_compile() {
    let mut n = 0;
    for entry in fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = fs::read_to_string(&path).unwrap();
            if let Err(p) = build(&text) {
                panic!("{}", p.render(&path.display().to_string()));
            }
            n += 1;
        }
    }
    assert!(n >= 1, "no examples found");
}

#[test]
fn broken_examples_report_exactly_their_expected_problems() {
    let bless = std::env::var_os("PORTCULLIS_BLESS").is_some();
    let dir = examples_dir().join("broken");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        n += 1;
        let text = fs::read_to_string(&path).unwrap();
        let problems = match build(&text) {
            Ok(_) => panic!("{} should not compile", path.display()),
            Err(p) => p,
        };
        let actual = problem_lines(&problems);
        let expected_path = path.with_extension("expected");
        if bless {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "missing {}; run with PORTCULLIS_BLESS=1",
                expected_path.display()
            )
        });
        assert_eq!(actual, expected, "{}", path.display());
    }
    assert!(n >= 8, "expected the broken examples, found {n}");
}
