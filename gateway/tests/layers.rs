//! The house runs one way (issue #12): no module of the gateway library
//! imports, directly or through others, from a module that imports it —
//! so no stage reaches back into what composes it. Read from the sources.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `crate::a::b` module paths of every library source file, with the
/// `crate::` paths each one names outside comments.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut graph = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let mut name = rel.with_extension("").to_string_lossy().replace('/', "::");
        if let Some(parent) = name.strip_suffix("::mod") {
            name = parent.to_string();
        }
        // The binary's own modules sit above the library.
        if name == "main" || name == "error" || name.starts_with("cli") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        let mut deps = BTreeSet::new();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let path: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                deps.insert(path.trim_end_matches(':').to_string());
            }
        }
        graph.insert(name, deps);
    }
    graph
}

#[test]
fn no_module_imports_from_what_composes_it() {
    let raw = imports();
    let modules: BTreeSet<String> = raw.keys().cloned().collect();
    // A path names the longest module it starts with.
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let graph: BTreeMap<&String, BTreeSet<String>> = raw
        .iter()
        .map(|(m, deps)| {
            let to = deps
                .iter()
                .filter_map(|d| resolve(d))
                .filter(|d| d != m)
                .collect();
            (m, to)
        })
        .collect();
    assert!(graph.len() > 20, "read too few modules: {graph:?}");
    // Depth-first search for a cycle.
    fn visit<'g>(
        m: &'g String,
        graph: &'g BTreeMap<&String, BTreeSet<String>>,
        state: &mut BTreeMap<&'g String, bool>,
        path: &mut Vec<&'g String>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(true) => {
                let at = path.iter().position(|p| *p == m).unwrap_or(0);
                let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                cycle.push(m.clone());
                return Some(cycle);
            }
            Some(false) => return None,
            None => {}
        }
        state.insert(m, true);
        path.push(m);
        for d in graph.get(m).into_iter().flatten() {
            if let Some((key, _)) = graph.get_key_value(d)
                && let Some(c) = visit(key, graph, state, path)
            {
                return Some(c);
            }
        }
        path.pop();
        state.insert(m, false);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(m, &graph, &mut state, &mut path) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
    // The bottom stays the bottom: the response vocabulary imports nothing
    // of the gateway, and the stages nothing that composes them.
    for (m, deps) in &graph {
        if m.as_str() == "response" {
            assert!(deps.is_empty(), "response imports {deps:?}");
        }
        if m.starts_with("stage") {
            for d in deps {
                assert!(
                    ["stage", "store", "manifest", "config", "response"]
                        .iter()
                        .any(|ok| d.starts_with(ok)),
                    "{m} imports {d}"
                );
            }
        }
    }
}
