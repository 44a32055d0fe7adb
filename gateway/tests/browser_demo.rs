//! The demo page in a real browser: headless Debian Chromium driven by
//! playwright-core (`tests/browser/demo-page.mjs`) against
//! `portcullis demo`, with the browser package built by
//! `scripts/build-browser`. `scripts/test` installs Chromium and
//! playwright-core and builds the package before the tests run.

use std::path::Path;
use std::process::Command;

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
    let out = Command::new("node")
        .arg(root.join("tests/browser/demo-page.mjs"))
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .arg(&pkg)
        .arg(&shot)
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("every check passed"), "{stdout}");
}
