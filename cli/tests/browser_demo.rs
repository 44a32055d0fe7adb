//! The demo page in a real browser: headless Debian Chromium driven by
//! playwright-core (`tests/browser/demo-page.mjs`) against
//! `portcullis demo`, with the browser package built by
//! `scripts/build-browser`. `scripts/test` installs Chromium and
//! playwright-core and builds the package before the tests run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::path::Path;
use std::process::Command;

/// Runs a Node script, asserts it succeeded, and returns its stdout.
fn node(script: &Path, args: &[&Path]) -> String {
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .expect("node runs (Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_demo_page_shows_what_the_engine_allows_and_follows_a_push() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pkg = root.join("target/browser-pkg");
    assert!(
        pkg.join("portcullis_bg.wasm").is_file(),
        "{} is missing: run scripts/build-browser (scripts/test does)",
        pkg.display()
    );
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is missing: run `npm ci --prefix tests/browser` (scripts/test does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: `apt-get install chromium` (scripts/test does) or set CHROMIUM"
    );
    let shot =
        std::env::temp_dir().join(format!("portcullis-demo-page-{}.png", std::process::id()));
    let stdout = node(
        &root.join("tests/browser/demo-page.mjs"),
        &[Path::new(env!("CARGO_BIN_EXE_portcullis")), &pkg, &shot],
    );
    assert!(stdout.contains("every check passed"), "{stdout}");
}

/// Every case of the conformance corpus (`tests/conformance/*.json`, on the
/// full example directory, API keys included) answered in Chromium by the
/// browser package, compared with the native engine: decision, reason and
/// message.
#[test]
fn the_package_in_chromium_decides_the_conformance_corpus_like_the_native_engine() {
    use policy_wasm::{Context, Engine, Request};
    use portcullis_snapshots::source::{Timestamp, build};
    use serde_json::{Value, json};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("snapshots/examples/acme.json")).expect("example");
    let (_, body) = build(&text).expect("builds");
    let bytes = portcullis_snapshots::encode(&body, 1, 1_767_225_600).expect("encodes");
    let engine = Engine::load(&bytes).expect("loads");
    let mut checks = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root.join("tests/conformance"))
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for file in files {
        let corpus: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
        assert_eq!(corpus["snapshot"], "snapshots/examples/acme.json");
        let time = |v: &Value| v.as_str().map(|s| Timestamp::parse(s).expect("time").0);
        let file_now = time(&corpus["now"]).expect("now");
        for case in corpus["cases"].as_array().expect("cases") {
            let now = time(&case["now"]).unwrap_or(file_now);
            let bulk = case["bulk"].as_bool().unwrap_or(false);
            let s = |k: &str| case[k].as_str().expect(k).to_string();
            let (principal, action, resource) = (s("principal"), s("action"), s("resource"));
            let e = engine.explain(&Request {
                principal: &principal,
                action: &action,
                resource: &resource,
                context: Context { now, bulk },
            });
            checks.push(json!({"principal": principal, "action": action, "resource": resource,
                "now": now, "bulk": bulk, "allowed": e.allowed, "reason": e.reason, "message": e.message}));
        }
    }
    assert!(checks.len() >= 130, "{}", checks.len());
    let dir = std::env::temp_dir().join(format!("portcullis-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("acme.snap"), &bytes).expect("write");
    // The same snapshot signed, for `loadAsync(bytes, trustedKeys)`: the
    // page's WebCrypto verifies Ed25519 (no Ed25519 code in the package).
    let key = portcullis_snapshots::signature::generate().expect("key");
    let other = portcullis_snapshots::signature::generate().expect("key");
    let signed = portcullis_snapshots::signature::sign(&bytes, &key).expect("signs");
    let hex_key =
        |k: &portcullis_snapshots::signature::SigningKey| hex::encode(k.verifying_key().as_bytes());
    std::fs::write(
        dir.join("cases.json"),
        json!({"checks": checks, "signing": {
            "snapshot": hex::encode(&signed), "key": hex_key(&key), "otherKey": hex_key(&other)}})
        .to_string(),
    )
    .expect("write");
    let stdout = node(
        &root.join("tests/browser/engine-in-chromium.mjs"),
        &[
            &root.join("target/browser-pkg"),
            &dir.join("acme.snap"),
            &dir.join("cases.json"),
        ],
    );
    // One report per load method: `load` (hashing in WebAssembly) and
    // `loadAsync` (hashing with the page's WebCrypto).
    let reports: Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
    let methods: Vec<&str> = reports
        .as_array()
        .expect("a report per load method")
        .iter()
        .filter_map(|r| r["method"].as_str())
        .collect();
    assert_eq!(methods, ["load", "loadAsync"], "{reports}");
    for report in reports.as_array().into_iter().flatten() {
        assert_eq!(report["badCount"], 0, "{report}");
        if report["method"] == "loadAsync" {
            assert_eq!(
                report["signatures"], "trusted loads, untrusted refused",
                "{report}"
            );
        }
        assert_eq!(report["checked"].as_u64(), Some(checks.len() as u64));
        assert_eq!(report["revision"], 1);
    }
}
