//! Builds the engine's WebAssembly module (policy-wasm for
//! wasm32-unknown-unknown) so the gateway and the CLI embed exactly the
//! engine in this checkout; no prebuilt binary is ever committed.
//!
//! The nested cargo uses its own target directory: sharing the outer one
//! would deadlock on its build lock.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a build script fails the build by panicking, with the message cargo shows; it is never on a request or load path"
)]

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("gateway/ is inside the workspace")
        .to_path_buf();
    for dir in [
        "policy-wasm/src",
        "policy-wasm/Cargo.toml",
        "snapshots/src",
        "snapshots/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = root.join("target").join("wasm-module");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "rustc",
            "-p",
            "policy-wasm",
            "--lib",
            "--release",
            "--locked",
        ])
        .args([
            "--target",
            "wasm32-unknown-unknown",
            "--crate-type",
            "cdylib",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // Small and fast: one codegen unit, LTO, no unwinding, no symbols.
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3");
    // Flags meant for the host build must not leak into the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the wasm module");
    if !status.success() {
        panic!(
            "building the policy-wasm module failed; is the wasm32 target installed? \
             run `rustup target add wasm32-unknown-unknown` (scripts/test and scripts/demo do)"
        );
    }
    let module = target_dir.join("wasm32-unknown-unknown/release/policy_wasm.wasm");
    println!("cargo:rustc-env=POLICY_WASM_MODULE={}", module.display());
}
