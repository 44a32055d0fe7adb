//! The browser package (`scripts/build-browser` → `target/browser-pkg`),
//! run in Node, answers exactly like the native engine on the redacted
//! example snapshot a browser gets: checks with messages, permissions,
//! lists, and a refused snapshot. `scripts/test` builds the package first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::process::Command;

use policy_wasm::action::Action;
use policy_wasm::{Context, Engine, Request};
use portcullis_snapshots::encode;
use portcullis_snapshots::scope::redact;
use portcullis_snapshots::source::{build, compile};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

#[test]
fn the_browser_package_agrees_with_the_native_engine() {
    let root = portcullis_tests::workspace_root();
    let pkg = root.join("target/browser-pkg");
    assert!(
        pkg.join("portcullis_bg.wasm").is_file(),
        "{} is missing: run scripts/build-browser (scripts/test does)",
        pkg.display()
    );
    let text = std::fs::read_to_string(portcullis_tests::examples_dir().join("acme.json"))
        .expect("example");
    let (dir, _) = build(&text).expect("example builds");
    let bytes =
        encode(&compile(&redact(&dir)).expect("compiles"), 3, 1_767_225_600).expect("encodes");
    let engine = Engine::load(&bytes).expect("loads");

    let principals = portcullis_tests::directory_principals(&dir);
    let resources = portcullis_tests::directory_resources(&dir);
    let actions: Vec<String> = Action::all().map(Action::name).collect();
    let now = 1_790_000_000;
    let context = Context { now, bulk: false };

    let rng = &mut ChaCha8Rng::seed_from_u64(9);
    let mut checks = Vec::new();
    for _ in 0..8_000 {
        let (p, a, r) = (
            &principals[rng.random_range(0..principals.len())],
            &actions[rng.random_range(0..actions.len())],
            &resources[rng.random_range(0..resources.len())],
        );
        let bulk = rng.random_bool(0.1);
        let e = engine.explain(&Request {
            principal: p,
            action: a,
            resource: r,
            context: Context { now, bulk },
        });
        checks.push(
            json!({"principal": p, "action": a, "resource": r, "now": now, "bulk": bulk,
            "allowed": e.allowed, "reason": e.reason, "message": e.message}),
        );
    }
    // Reads a grant allows, so the sample holds allows too.
    for g in dir
        .grants
        .iter()
        .filter(|g| g.principal.starts_with("user/"))
    {
        let e = engine.explain(&Request {
            principal: &g.principal,
            action: "read",
            resource: &g.on,
            context,
        });
        checks.push(json!({"principal": g.principal, "action": "read", "resource": g.on, "now": now, "bulk": false,
            "allowed": e.allowed, "reason": e.reason, "message": e.message}));
    }
    let allows = checks.iter().filter(|c| c["allowed"] == true).count();
    assert!(allows > 100, "{allows}");
    let mut permissions = Vec::new();
    let mut lists = Vec::new();
    for p in &principals {
        for r in &resources {
            permissions.push(json!({"principal": p, "resource": r, "now": now,
                "actions": engine.permissions(p, r, context)}));
        }
        for (action, kind) in [
            ("read", "catalog"),
            ("write", "catalog"),
            ("env:open", "env"),
            ("read", "object"),
            ("team:view", "team"),
        ] {
            let expected: Value = match engine.list(p, action, kind, "org/acme", context) {
                Ok(nodes) => json!({"ok": nodes}),
                Err(reason) => json!({"err": reason.code()}),
            };
            lists.push(json!({"principal": p, "action": action, "kind": kind, "under": "org/acme", "now": now, "expected": expected}));
        }
    }
    let dir_out = std::env::temp_dir().join(format!("portcullis-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir_out).expect("mkdir");
    let snap = dir_out.join("me.snap");
    std::fs::write(&snap, &bytes).expect("write");
    // Signed as the gateway signs /-/snapshot/me (snapshot.browser_signing_key).
    let key = portcullis_snapshots::signature::generate().expect("key");
    let other = portcullis_snapshots::signature::generate().expect("key");
    let signed = dir_out.join("me-signed.snap");
    std::fs::write(
        &signed,
        portcullis_snapshots::signature::sign(&bytes, &key).expect("sign"),
    )
    .expect("write");
    let signing = json!({
        "snapshot": signed,
        "key": hex::encode(key.verifying_key().as_bytes()),
        "keyPem": portcullis_snapshots::signature::public_pem(&key.verifying_key()).expect("pem"),
        "otherKey": hex::encode(other.verifying_key().as_bytes()),
    });
    let cases = dir_out.join("cases.json");
    let total = checks.len() + permissions.len() + lists.len();
    std::fs::write(
        &cases,
        json!({"revision": 3, "checks": checks, "permissions": permissions, "lists": lists, "signing": signing})
            .to_string(),
    )
    .expect("write");
    let out = Command::new("node")
        .arg(root.join("tests/browser/agree.mjs"))
        .arg(&pkg)
        .arg(&snap)
        .arg(&cases)
        .output()
        .expect("node runs (Node.js 18 or later)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
    assert_eq!(report["bad"], 0);
    assert_eq!(report["checked"].as_u64(), Some(total as u64 + 1));
    // loadAsync: revision, up to 500 checks, two tampered loads, garbage.
    assert!(report["asyncChecked"].as_u64() > Some(4), "{report}");
}
