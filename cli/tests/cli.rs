//! The `portcullis snapshot` commands as an operator runs them: real
//! files, real processes, exit codes and output.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .expect("run portcullis")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../snapshots/examples")
        .join(name)
        .display()
        .to_string()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Builds the acme example into `out`, asserting success.
fn build_example(out: &Path) {
    let o = portcullis(&[
        "snapshot",
        "build",
        &example("acme.json"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// `snapshot inspect --json`, asserting success.
fn inspect_json(path: &Path) -> serde_json::Value {
    let o = portcullis(&["snapshot", "inspect", path.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn build_then_inspect() {
    let out = tmp("acme.snap");
    build_example(&out);
    let v = inspect_json(&out);
    assert_eq!(v["revision"], 1);
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["created_at"], "2026-01-01T00:00:00Z");
    assert_eq!(v["domain"], "org/acme");
    assert_eq!(v["counts"]["users"], 25);
    assert_eq!(v["counts"]["grants"], 23);
    let o = portcullis(&["snapshot", "inspect", out.to_str().unwrap()]);
    assert!(text(&o.stdout).contains("revision    1"));
}

#[test]
fn revision_flag_overrides_the_source() {
    let out = tmp("rev.snap");
    let o = portcullis(&[
        "snapshot",
        "build",
        &example("acme.json"),
        "-o",
        out.to_str().unwrap(),
        "--revision",
        "99",
    ]);
    assert!(o.status.success());
    let v = inspect_json(&out);
    assert_eq!(v["revision"], 99);
}

#[test]
fn builds_are_reproducible() {
    let (a, b) = (tmp("a.snap"), tmp("b.snap"));
    for p in [&a, &b] {
        build_example(p);
    }
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn invalid_directory_exits_1_lists_every_problem_and_writes_nothing() {
    let out = tmp("never.snap");
    let o = portcullis(&[
        "snapshot",
        "build",
        &example("broken/unknown-references.json"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("15 problems in"), "{err}");
    assert!(
        err.contains("unknown-references.json:6:20 at /organizations/1/parent"),
        "{err}"
    );
    assert!(err.contains("help: "), "{err}");
    assert!(!out.exists(), "nothing may be written");
}

#[test]
fn problems_as_json() {
    let o = portcullis(&[
        "snapshot",
        "validate",
        &example("broken/org-cycle.json"),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(v["problems"].as_array().unwrap().len(), 3);
    assert_eq!(v["problems"][0]["pointer"], "/organizations/1/parent");
    assert_eq!(v["problems"][0]["line"], 6);
}

#[test]
fn missing_file_exits_3() {
    let o = portcullis(&["snapshot", "inspect", "/nonexistent/x.snap"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("cannot read /nonexistent/x.snap"));
}

#[test]
fn corrupted_snapshot_exits_1_with_reason() {
    let out = tmp("corrupt.snap");
    build_example(&out);
    let mut bytes = std::fs::read(&out).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 1;
    std::fs::write(&out, &bytes).unwrap();
    let o = portcullis(&["snapshot", "inspect", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("does not match its SHA-256"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(portcullis(&["snapshot", "build"]).status.code(), Some(2));
    assert_eq!(portcullis(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn no_revision_anywhere_is_an_error() {
    let dir = tmp("norev.json");
    std::fs::write(&dir, r#"{"format": 1, "organizations": [{"id": "acme"}]}"#).unwrap();
    let o = portcullis(&[
        "snapshot",
        "build",
        dir.to_str().unwrap(),
        "-o",
        tmp("norev.snap").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--revision"));
}

#[test]
fn diff_shows_what_an_operator_reviews() {
    let old = tmp("old.snap");
    build_example(&old);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("acme.json")).unwrap()).unwrap();
    v["revision"] = 2.into();
    v["users"][9]["status"] = "disabled".into(); // dave
    v["grants"].as_array_mut().unwrap().push(
        serde_json::json!({"principal": "user/pat", "role": "writer", "on": "catalog/sales"}),
    );
    v["environments"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"id": "dev", "organization": "acme"}));
    v["custom_roles"].as_array_mut().unwrap().pop();
    v["grants"]
        .as_array_mut()
        .unwrap()
        .retain(|g| g["role"] != "role/billing-viewer");
    let new_json = tmp("new.json");
    std::fs::write(&new_json, v.to_string()).unwrap();

    let o = portcullis(&[
        "snapshot",
        "diff",
        old.to_str().unwrap(),
        new_json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("revision: 1 → 2"), "{out}");
    assert!(
        out.contains("~ user/dave: status: \"active\" → \"disabled\""),
        "{out}"
    );
    assert!(out.contains("+ user/pat writer on catalog/sales"), "{out}");
    assert!(
        out.contains("- user/kim role/billing-viewer on team/field-ops"),
        "{out}"
    );
    assert!(out.contains("+ env/dev"), "{out}");
    assert!(out.contains("- role/billing-viewer"), "{out}");

    let o = portcullis(&[
        "snapshot",
        "diff",
        old.to_str().unwrap(),
        new_json.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["new_revision"], 2);
    assert!(
        v["sections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["section"] == "users")
    );
}

#[test]
fn generate_is_deterministic_and_valid() {
    let (a, b) = (tmp("gen-a.json"), tmp("gen-b.json"));
    for p in [&a, &b] {
        let o = portcullis(&[
            "snapshot",
            "generate",
            "-o",
            p.to_str().unwrap(),
            "--users",
            "500",
            "--groups",
            "20",
            "--orgs",
            "3",
            "--envs",
            "5",
            "--catalogs",
            "50",
            "--grants",
            "2000",
            "--seed",
            "7",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let o = portcullis(&["snapshot", "validate", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let snap = tmp("gen.snap");
    let o = portcullis(&[
        "snapshot",
        "generate",
        "-o",
        snap.to_str().unwrap(),
        "--users",
        "500",
        "--groups",
        "20",
        "--catalogs",
        "50",
        "--grants",
        "2000",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v = inspect_json(&snap);
    assert_eq!(v["counts"]["grants"], 2000);
}

#[test]
fn help_explains_exit_codes() {
    let o = portcullis(&["--help"]);
    let out = text(&o.stdout);
    assert!(
        out.contains("Exit codes:") && out.contains("snapshot"),
        "{out}"
    );
}

#[test]
fn check_allows_denies_and_explains_through_the_module() {
    let snap = tmp("check.snap");
    build_example(&snap);
    let s = snap.to_str().unwrap();
    let base = ["check", "--snapshot", s, "--now", "2026-11-23T00:00:00Z"];
    let run = |extra: &[&str]| portcullis(&[&base[..], extra].concat());

    let o = run(&[
        "--principal",
        "user/pat",
        "--action",
        "read",
        "--resource",
        "catalog/sales",
        "--explain",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("allow (grant)"), "{out}");
    assert!(
        out.contains("user/pat is a member of group/analysts"),
        "{out}"
    );

    let o = run(&[
        "--principal",
        "user/adam",
        "--action",
        "user:update",
        "--resource",
        "user/olivia",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reason"], "administrator_over_owner");
    assert_eq!(v["revision"], 1);

    // Native and module agree.
    let o = run(&[
        "--principal",
        "user/adam",
        "--action",
        "user:update",
        "--resource",
        "user/olivia",
        "--json",
        "--native",
    ]);
    let n: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(n, v);
}

#[test]
fn check_batch_prints_one_decision_per_line_and_survives_bad_lines() {
    let snap = tmp("batch.snap");
    build_example(&snap);
    let reqs = tmp("requests.jsonl");
    std::fs::write(
        &reqs,
        "{\"principal\":\"user/wendy\",\"action\":\"write\",\"resource\":\"catalog/sales\"}\n\
         not json\n\
         {\"principal\":\"user/eve\",\"action\":\"read\",\"resource\":\"catalog/sales\",\"context\":{\"now\":1700000000}}\n\
         {\"principal\":\"user/olivia\",\"action\":\"user:update_expiry\",\"resource\":\"user/rhea\",\"context\":{\"now\":1790000000,\"bulk\":true}}\n\
         {\"principal\":\"user/eve\",\"action\":\"read\",\"resource\":\"catalog/sales\",\"contxt\":{\"now\":1700000000}}\n\
         {\"principal\":\"user/eve\",\"action\":\"read\",\"resource\":\"catalog/sales\",\"context\":{\"now\":\"2023-11-14T22:13:20Z\"}}\n\
         {\"principal\":\"user/eve\",\"action\":\"read\",\"resource\":\"catalog/sales\",\"context\":{\"bulk\":false}}\n\
         {\"credentials\":{\"api_key\":\"k\"},\"action\":\"read\",\"resource\":\"catalog/sales\"}\n",
    )
    .unwrap();
    let o = portcullis(&[
        "check",
        "--snapshot",
        snap.to_str().unwrap(),
        "--batch",
        reqs.to_str().unwrap(),
        "--now",
        "2026-11-23T00:00:00Z",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = lines
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "grant",
            "malformed_request",
            "grant",
            "bulk_administrator_account",
            // Issue #12: one request format — a misspelt field is an error
            // (it used to be decided at --now), `now` may be RFC 3339, a
            // context without `now` is decided at --now (it used to be
            // 1970), and credentials are for the gateway.
            "malformed_request",
            "grant",
            "account_expired",
            "malformed_request",
        ]
    );
    assert!(
        lines[4]["message"]
            .as_str()
            .is_some_and(|m| m.contains("contxt")),
        "{}",
        lines[4]
    );
    // --now takes integer seconds too, like the request format.
    let o = portcullis(&[
        "check",
        "--snapshot",
        snap.to_str().unwrap(),
        "--principal",
        "user/eve",
        "--action",
        "read",
        "--resource",
        "catalog/sales",
        "--now",
        "1700000000",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn redact_writes_a_snapshot_without_personal_data() {
    let full = tmp("redact-full.snap");
    build_example(&full);
    let out = tmp("redact-me.snap");
    let o = portcullis(&[
        "snapshot",
        "redact",
        full.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let s = String::from_utf8_lossy(&bytes);
    assert!(!s.contains("olivia@acme.example") && !s.contains("Owens"));
    assert_eq!(inspect_json(&out)["revision"], 1);
    let o = portcullis(&[
        "snapshot",
        "redact",
        example("acme.json").as_str(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "a directory is not a snapshot");
}

/// Issue #12: `email_verified` defaults to false (fail closed), so a
/// directory written by hand without it denies its users everything. It
/// builds, with a warning that counts and names them.
#[test]
fn users_without_a_verified_email_are_warned_about() {
    let o = portcullis(&["snapshot", "validate", example("acme.json").as_str()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("warning:")
            && err.contains("1 active user without \"email_verified\": true (uma)"),
        "{err}"
    );
    let out = tmp("unverified.snap");
    let o = portcullis(&[
        "snapshot",
        "build",
        example("acme.json").as_str(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("(uma)"), "{}", text(&o.stderr));
}

/// A reader that stops early (`portcullis snapshot diff … | head`) ends
/// the command quietly with success — it used to panic about a broken
/// pipe.
#[test]
fn output_cut_short_ends_quietly() {
    let generated = tmp("cut-short.snap");
    let o = portcullis(&[
        "snapshot",
        "generate",
        "-o",
        generated.to_str().unwrap(),
        "--users",
        "2000",
        "--groups",
        "50",
        "--orgs",
        "3",
        "--envs",
        "10",
        "--catalogs",
        "100",
        "--grants",
        "5000",
        "--seed",
        "2",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Over 250 KB of differences, far more than a pipe holds.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "snapshot",
            "diff",
            example("acme.json").as_str(),
            generated.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("panicked"), "{}", text(&o.stderr));
}

#[test]
fn deltas_are_made_applied_inspected_and_diffed() {
    let old = tmp("delta-old.snap");
    build_example(&old);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("acme.json")).unwrap()).unwrap();
    v["revision"] = 2.into();
    v["users"][9]["status"] = "disabled".into(); // dave
    v["grants"].as_array_mut().unwrap().push(
        serde_json::json!({"principal": "user/pat", "role": "writer", "on": "catalog/sales"}),
    );
    let new_json = tmp("delta-new.json");
    std::fs::write(&new_json, v.to_string()).unwrap();
    let (new, path, delta) = (
        tmp("delta-new.snap"),
        tmp("delta-new.snap.delta"),
        tmp("d.delta"),
    );
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // build --delta-from writes the snapshot and, next to it, the delta.
    let o = portcullis(&[
        "snapshot",
        "build",
        &s(&new_json),
        "-o",
        &s(&new),
        "--delta-from",
        &s(&old),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("the delta from"),
        "{}",
        text(&o.stderr)
    );
    let built = std::fs::read(&path).unwrap();
    assert!(built.len() < 400, "{} bytes", built.len());

    // snapshot delta makes the same delta from the two snapshots.
    let o = portcullis(&["snapshot", "delta", &s(&old), &s(&new), "-o", &s(&delta)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("revision 1 → 2"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(std::fs::read(&delta).unwrap(), built);

    // apply gives the candidate's snapshot, byte for byte.
    let out = tmp("delta-applied.snap");
    let o = portcullis(&["snapshot", "apply", &s(&old), &s(&delta), "-o", &s(&out)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&new).unwrap());

    // inspect reads a delta; diff reads one as the new side.
    let i = inspect_json(&delta);
    assert_eq!(
        (
            i["delta"].clone(),
            i["base_revision"].clone(),
            i["revision"].clone()
        ),
        (true.into(), 1.into(), 2.into())
    );
    let o = portcullis(&["snapshot", "diff", &s(&old), &s(&delta)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let diff = text(&o.stdout);
    assert!(
        diff.contains("~ user/dave: status: \"active\" → \"disabled\""),
        "{diff}"
    );
    assert!(
        diff.contains("+ user/pat writer on catalog/sales"),
        "{diff}"
    );

    // Applied to another snapshot: refused (exit 1), nothing written.
    let other = tmp("delta-other.snap");
    let gone = tmp("delta-never.snap");
    let o = portcullis(&["snapshot", "apply", &s(&new), &s(&delta), "-o", &s(&gone)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("applies to revision 1"),
        "{}",
        text(&o.stderr)
    );
    assert!(!gone.exists());
    // A corrupted delta: refused with the reason.
    let mut bad = std::fs::read(&delta).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&other, &bad).unwrap();
    let o = portcullis(&["snapshot", "apply", &s(&old), &s(&other), "-o", &s(&gone)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("corrupted"), "{}", text(&o.stderr));
    assert!(!gone.exists());

    // --trust: an unsigned delta is refused; a signed one applies.
    let key = tmp("delta-signing.pem");
    let _ = std::fs::remove_file(&key);
    let o = portcullis(&["snapshot", "keygen", "-o", &s(&key)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let public = format!("{}.pub", s(&key));
    let o = portcullis(&[
        "snapshot",
        "apply",
        &s(&old),
        &s(&delta),
        "-o",
        &s(&gone),
        "--trust",
        &public,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("not signed"),
        "{}",
        text(&o.stderr)
    );
    let signed = tmp("delta-signed.delta");
    let o = portcullis(&[
        "snapshot",
        "delta",
        &s(&old),
        &s(&new),
        "-o",
        &s(&signed),
        "--sign",
        &s(&key),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = portcullis(&[
        "snapshot",
        "apply",
        &s(&old),
        &s(&signed),
        "-o",
        &s(&out),
        "--trust",
        &public,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn publish_writes_the_snapshot_the_delta_and_the_manifest_last() {
    let store = tmp("store");
    let _ = std::fs::remove_dir_all(&store);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let build = |revision: u64| {
        let out = tmp(&format!("publish-{revision}.snap"));
        let o = portcullis(&[
            "snapshot",
            "build",
            &example("acme.json"),
            "-o",
            &s(&out),
            "--revision",
            &revision.to_string(),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        out
    };
    let publish = |snap: &Path, extra: &[&str]| {
        let mut args = vec!["snapshot", "publish"];
        let (snap, dir) = (s(snap), s(&store));
        args.extend([snap.as_str(), "--dir", dir.as_str()]);
        args.extend(extra);
        portcullis(&args)
    };
    let manifest = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(store.join("latest.json")).unwrap()).unwrap()
    };
    let (one, two, three) = (build(1), build(2), build(3));

    let o = publish(&one, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m = manifest();
    assert_eq!(
        (m["revision"].clone(), m["snapshot"].clone()),
        (1.into(), "snapshot-1.snap".into())
    );
    assert_eq!(m["deltas"], serde_json::json!([]));
    assert_eq!(
        std::fs::read(store.join("snapshot-1.snap")).unwrap(),
        std::fs::read(&one).unwrap()
    );

    let o = publish(&two, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("delta-1-2.delta"),
        "{}",
        text(&o.stdout)
    );
    let m = manifest();
    assert_eq!(m["revision"], 2);
    assert_eq!(m["deltas"][0]["from"], 1);
    assert_eq!(m["deltas"][0]["path"], "delta-1-2.delta");
    assert_eq!(m["deltas"][0]["from_sha256"], inspect_json(&one)["sha256"]);
    assert_eq!(m["deltas"][0]["to_sha256"], inspect_json(&two)["sha256"]);
    // The delta applies to revision 1 and gives revision 2 exactly.
    let applied = tmp("publish-applied.snap");
    let o = portcullis(&[
        "snapshot",
        "apply",
        &s(&one),
        &s(&store.join("delta-1-2.delta")),
        "-o",
        &s(&applied),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read(&applied).unwrap(),
        std::fs::read(&two).unwrap()
    );

    // An older (or the same) revision is refused and changes nothing.
    let o = publish(&one, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("not newer"), "{}", text(&o.stderr));
    assert_eq!(manifest()["revision"], 2);

    // --keep bounds the deltas listed.
    let o = publish(&three, &["--keep", "1"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m = manifest();
    assert_eq!(m["deltas"].as_array().unwrap().len(), 1);
    assert_eq!(m["deltas"][0]["path"], "delta-2-3.delta");
}
