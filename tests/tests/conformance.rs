//! The conformance corpus (`tests/conformance/*.json`): one case per seed
//! rule, allow and deny, each citing its seed. Every case runs on the native
//! engine, on the WebAssembly module under wasmtime, and on the naive
//! reference evaluator; all three must agree, and agree with the case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::fs;

use policy_wasm::{Context, Engine, Request, check_reference};
use portcullis_host::module::{InstanceLimits, PolicyModule};
use portcullis_snapshots::source::{Timestamp, build};
use portcullis_snapshots::{decode, encode};
use portcullis_tests::workspace_root;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    seed: String,
    snapshot: String,
    now: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    principal: String,
    action: String,
    resource: String,
    expect: String,
    reason: String,
    rule: String,
    #[serde(default)]
    bulk: bool,
    now: Option<String>,
    acting_as: Option<String>,
    #[serde(default)]
    obligations: Vec<String>,
}

const SEEDS: [&str; 6] = [
    "000_0e07b084e1faa7f7.txt",
    "001_7c3185d16453318d.txt",
    "002_40d201ba234d90f4.txt",
    "003_c73d0bde4f96d656.txt",
    "004_3158f27f6e6e0c88.txt",
    "PRODUCT.md",
];

#[test]
fn conformance_corpus_native_wasm_and_reference_agree_with_every_case() {
    let dir = workspace_root().join("tests").join("conformance");
    let module = PolicyModule::new().expect("compile the policy module");
    let mut failures = Vec::new();
    let mut total = 0;
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let file: CaseFile = serde_json::from_str(&fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            SEEDS.contains(&file.seed.as_str()),
            "{}: unknown seed {}",
            path.display(),
            file.seed
        );
        let text = fs::read_to_string(workspace_root().join(&file.snapshot)).unwrap();
        let (dir, body) = build(&text).unwrap_or_else(|p| panic!("{p}"));
        let bytes = encode(&body, dir.revision.unwrap_or(1), 0).unwrap();
        let native = Engine::load(&bytes).unwrap();
        let snapshot = decode(&bytes).unwrap();
        let mut wasm = module.instantiate(InstanceLimits::default()).unwrap();
        wasm.load_snapshot(&bytes).unwrap();
        let default_now = Timestamp::parse(&file.now).unwrap().0;
        for case in &file.cases {
            total += 1;
            assert!(!case.rule.is_empty() && !case.name.is_empty());
            let now = case
                .now
                .as_deref()
                .map_or(default_now, |s| Timestamp::parse(s).unwrap().0);
            let req = Request {
                principal: &case.principal,
                action: &case.action,
                resource: &case.resource,
                context: Context {
                    now,
                    bulk: case.bulk,
                },
            };
            let n = native.check(&req);
            let w = wasm.check(&req).expect("wasm check");
            let r = check_reference(&snapshot, &req);
            let ex = native.explain(&req);
            let wex = wasm.explain(&req).expect("wasm explain");
            let id = format!(
                "{} [{}]: {}",
                path.file_name().unwrap().to_string_lossy(),
                file.seed,
                case.name
            );
            if n != w || n != r || ex != wex {
                failures.push(format!(
                    "{id}: engines disagree: native {n:?}, wasm {w:?}, reference {r:?}"
                ));
                continue;
            }
            let got = format!("{} {}", ex.decision, ex.reason);
            let want = format!("{} {}", case.expect, case.reason);
            if got != want {
                failures.push(format!("{id}: expected {want}, got {got} — {}", ex.message));
            }
            if case.acting_as.is_some() && ex.acting_as != case.acting_as {
                failures.push(format!(
                    "{id}: acting_as {:?}, expected {:?}",
                    ex.acting_as, case.acting_as
                ));
            }
            if ex.obligations != case.obligations {
                failures.push(format!(
                    "{id}: obligations {:?}, expected {:?}",
                    ex.obligations, case.obligations
                ));
            }
        }
    }
    assert!(
        total >= 60,
        "the corpus must hold at least 60 cases, found {total}"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
