//! Shared helpers for Portcullis end-to-end tests.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The example directories shipped in `snapshots/examples/`.
pub fn examples_dir() -> PathBuf {
    workspace_root().join("snapshots").join("examples")
}

/// One problem per line, `line:column pointer message`: the form the
/// `.expected` files of the broken examples hold.
pub fn problem_lines(problems: &portcullis_snapshots::source::Problems) -> String {
    problems
        .0
        .iter()
        .map(|p| format!("{}:{} {} {}\n", p.line, p.column, p.pointer, p.message))
        .collect()
}
