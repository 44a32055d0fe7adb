//! Shared helpers for Portcullis end-to-end tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "support for the end-to-end tests"
)]

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

/// Every user and service account of `dir`, and `support`: the principals
/// a browser or a gateway caller can be.
pub fn directory_principals(dir: &portcullis_snapshots::source::Directory) -> Vec<String> {
    let mut p: Vec<String> = dir
        .users
        .iter()
        .map(|u| format!("user/{}", u.username))
        .collect();
    p.extend(
        dir.service_accounts
            .iter()
            .map(|s| format!("service/{}", s.id)),
    );
    p.push("support".into());
    p
}

/// Every resource of `dir`: nodes, teams and their members, users,
/// service accounts, and the entity types.
pub fn directory_resources(dir: &portcullis_snapshots::source::Directory) -> Vec<String> {
    let mut r: Vec<String> = dir
        .organizations
        .iter()
        .map(|o| format!("org/{}", o.id))
        .collect();
    r.extend(dir.environments.iter().map(|x| format!("env/{}", x.id)));
    r.extend(dir.catalogs.iter().map(|x| format!("catalog/{}", x.id)));
    r.extend(dir.objects.iter().map(|x| format!("object/{}", x.id)));
    r.extend(dir.teams.iter().map(|x| format!("team/{}", x.id)));
    for t in &dir.teams {
        r.push(format!("team/{}/member/{}", t.id, t.owner));
        r.extend(
            t.members
                .iter()
                .map(|m| format!("team/{}/member/{m}", t.id)),
        );
    }
    r.extend(dir.users.iter().map(|u| format!("user/{}", u.username)));
    r.extend(
        dir.service_accounts
            .iter()
            .map(|s| format!("service/{}", s.id)),
    );
    r.extend(
        portcullis_snapshots::vocabulary::EntityType::ALL
            .iter()
            .map(|e| format!("entity/{}", e.name())),
    );
    r
}
