//! The house runs one way (issues #12 and #24): in every crate of the
//! workspace no module imports — directly or through others — from a
//! module that imports it or composes it, and in the gateway no module
//! imports from a layer above its own, with `config` at the bottom.
//!
//! Read with a real parser (syn), not by searching text: every `use` tree
//! with its groups and renames, `crate::`, `super::` and `self::` paths,
//! paths through a child module by its name, and every path in code and
//! types, not only imports. Modules under `#[cfg(test)]` are left out (a
//! test module reads its parent on purpose). The checker itself is tested
//! on planted cycles and a planted climb.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module: its path below the crate root (empty for the root).
type ModPath = Vec<String>;

/// The modules of one crate and what each refers to.
#[derive(Debug, Default)]
struct Graph {
    /// Every module, with the modules it declares (`mod x;`, `mod x {}`).
    children: BTreeMap<ModPath, BTreeSet<String>>,
    /// Every path a module names, as written.
    named: BTreeMap<ModPath, Vec<Vec<String>>>,
}

/// `#[cfg(test)]`, or `#[cfg(all(test, …))]`: compiled for tests only.
fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let syn::Meta::List(list) = &a.meta else {
            return false;
        };
        let tokens = list.tokens.to_string();
        let words: Vec<&str> = tokens
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .collect();
        a.path().is_ident("cfg") && words.contains(&"test") && !words.contains(&"not")
    })
}

/// `#[path = "…"]` on a module declaration.
fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Collects the paths of one module's items (not those of the modules it
/// declares: they are modules of their own).
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl Paths {
    fn use_tree(&mut self, prefix: &[String], tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut next = prefix.to_vec();
                next.push(p.ident.to_string());
                self.use_tree(&next, &p.tree);
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.to_vec();
                // `use a::{self, b}`: `self` is `a` itself.
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.0.push(full);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.to_vec();
                if r.ident != "self" {
                    full.push(r.ident.to_string());
                }
                self.0.push(full);
            }
            syn::UseTree::Glob(_) => self.0.push(prefix.to_vec()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {
        // A module of its own.
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {
        // `pub(super)`, `pub(crate)`: who may see an item, not an import.
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if !is_cfg_test(&u.attrs) {
            let root = if u.leading_colon.is_some() {
                vec!["::".to_string()]
            } else {
                Vec::new()
            };
            self.use_tree(&root, &u.tree);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_cfg_test(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let mut segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if p.leading_colon.is_some() {
            segments.insert(0, "::".into());
        }
        self.0.push(segments);
        syn::visit::visit_path(self, p);
    }
}

/// Reads the module tree of the crate whose root file is `root`.
fn read_crate(root: &Path) -> Graph {
    let mut graph = Graph::default();
    let text = std::fs::read_to_string(root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let dir = root.parent().unwrap().to_path_buf();
    read_items(&mut graph, Vec::new(), &file.items, &dir, root);
    graph
}

/// Reads the items of module `at` (whose own declarations resolve
/// against `dir`), from `file`.
fn read_items(graph: &mut Graph, at: ModPath, items: &[syn::Item], dir: &Path, file: &Path) {
    let mut paths = Paths::default();
    for item in items {
        paths.visit_item(item);
    }
    graph.named.entry(at.clone()).or_default().extend(paths.0);
    graph.children.entry(at.clone()).or_default();
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        if is_cfg_test(&m.attrs) {
            continue;
        }
        let name = m.ident.to_string();
        graph.children.get_mut(&at).unwrap().insert(name.clone());
        let mut child = at.clone();
        child.push(name.clone());
        match &m.content {
            Some((_, inner)) => read_items(graph, child, inner, &dir.join(&name), file),
            None => {
                let found = match path_attr(&m.attrs) {
                    Some(p) => dir.join(p),
                    None => {
                        let flat = dir.join(format!("{name}.rs"));
                        if flat.is_file() {
                            flat
                        } else {
                            dir.join(&name).join("mod.rs")
                        }
                    }
                };
                let text = std::fs::read_to_string(&found).unwrap_or_else(|e| {
                    panic!(
                        "module {name} of {}: {}: {e}",
                        file.display(),
                        found.display()
                    )
                });
                let parsed =
                    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", found.display()));
                // `x.rs` declares its modules in `x/`; `x/mod.rs` in `x/`.
                let child_dir = if found.file_name().is_some_and(|f| f == "mod.rs") {
                    found.parent().unwrap().to_path_buf()
                } else {
                    found.with_extension("")
                };
                read_items(graph, child, &parsed.items, &child_dir, &found);
            }
        }
    }
}

impl Graph {
    /// The module a path named in `at` leads to, if it is one of this
    /// crate's (the longest module its absolute form starts with).
    fn resolve(&self, at: &ModPath, path: &[String]) -> Option<ModPath> {
        let (first, rest) = path.split_first()?;
        let mut absolute: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => at.clone(),
            "super" => {
                let mut base = at.clone();
                base.pop()?;
                let mut rest = rest;
                while let Some((s, r)) = rest.split_first() {
                    if s != "super" {
                        break;
                    }
                    base.pop()?;
                    rest = r;
                }
                base.extend(rest.iter().cloned());
                return self.longest(&base);
            }
            // A child module named by its name.
            name if self.children.get(at).is_some_and(|c| c.contains(name)) => {
                let mut p = at.clone();
                p.push(name.to_string());
                p
            }
            _ => return None,
        };
        absolute.extend(rest.iter().cloned());
        self.longest(&absolute)
    }

    fn longest(&self, absolute: &[String]) -> Option<ModPath> {
        (0..=absolute.len())
            .rev()
            .map(|n| absolute[..n].to_vec())
            .find(|p| self.children.contains_key(p))
    }

    /// Imports between modules: `a` → `b` when `a` names something of
    /// `b` (the crate root, the facade, is nobody's import).
    fn imports(&self) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for (at, paths) in &self.named {
            let out = edges.entry(at.clone()).or_default();
            for p in paths {
                if let Some(to) = self.resolve(at, p)
                    && &to != at
                    && !to.is_empty()
                {
                    out.insert(to);
                }
            }
        }
        edges
    }

    /// A cycle of imports and declarations (a module composes those it
    /// declares: one of them importing it back is a cycle), if any.
    fn cycle(&self) -> Option<Vec<String>> {
        let mut edges = self.imports();
        for (at, children) in &self.children {
            if at.is_empty() {
                continue; // the root composes everything and imports nothing that counts
            }
            for c in children {
                let mut child = at.clone();
                child.push(c.clone());
                edges.entry(at.clone()).or_default().insert(child);
            }
        }
        fn visit(
            m: &ModPath,
            edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
            state: &mut BTreeMap<ModPath, bool>,
            stack: &mut Vec<ModPath>,
        ) -> Option<Vec<String>> {
            match state.get(m) {
                Some(true) => {
                    let at = stack.iter().position(|p| p == m).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[at..].iter().map(|p| p.join("::")).collect();
                    cycle.push(m.join("::"));
                    return Some(cycle);
                }
                Some(false) => return None,
                None => {}
            }
            state.insert(m.clone(), true);
            stack.push(m.clone());
            for next in edges.get(m).into_iter().flatten() {
                if let Some(c) = visit(next, edges, state, stack) {
                    return Some(c);
                }
            }
            stack.pop();
            state.insert(m.clone(), false);
            None
        }
        let mut state = BTreeMap::new();
        for m in self.children.keys() {
            if let Some(c) = visit(m, &edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
        None
    }

    /// Imports that climb: from a module to one of a higher layer
    /// (`layers`, bottom first, by the first segments of module paths;
    /// every module must be placed).
    fn climbs(&self, layers: &[&[&str]]) -> Vec<String> {
        let rank = |m: &ModPath| {
            layers
                .iter()
                .position(|l| l.iter().any(|p| m.first().is_some_and(|f| f == p)))
        };
        let mut found = Vec::new();
        for m in self.children.keys().filter(|m| !m.is_empty()) {
            if rank(m).is_none() {
                found.push(format!("{} is in no layer", m.join("::")));
            }
        }
        for (from, tos) in self.imports() {
            for to in tos {
                if let (Some(a), Some(b)) = (rank(&from), rank(&to))
                    && a < b
                {
                    found.push(format!(
                        "{} (layer {a}) imports {} (layer {b})",
                        from.join("::"),
                        to.join("::")
                    ));
                }
            }
        }
        found
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's crates, as its Cargo.toml lists them: a new crate is
/// checked without anyone remembering to add it here.
fn members() -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members list");
    let list = line.split_once('[').unwrap().1.split_once(']').unwrap().0;
    let members: Vec<String> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() >= 8, "{members:?}");
    members
}

/// Each crate's root source file.
fn crate_roots() -> Vec<String> {
    members()
        .into_iter()
        .map(|m| {
            if workspace().join(&m).join("src/lib.rs").exists() {
                format!("{m}/src/lib.rs")
            } else {
                format!("{m}/src/main.rs")
            }
        })
        .collect()
}

/// The gateway's layers, bottom first: vocabulary (the configuration as
/// written at the very bottom), leaves, compiled state, composition, top.
const GATEWAY_LAYERS: &[&[&str]] = &[
    &["config"],
    &[
        "response",
        "metrics",
        "decision_log",
        "static_site",
        "framing",
    ],
    &["stage", "store", "manifest", "tls"],
    &["compiled", "shared"],
    &["checkpoint", "proxy", "decision", "admin", "sources"],
    &["server"],
];

#[test]
fn no_crate_has_a_module_cycle() {
    let mut read = 0;
    for root in crate_roots() {
        let graph = read_crate(&workspace().join(&root));
        read += graph.children.len();
        if let Some(cycle) = graph.cycle() {
            panic!("{root}: import cycle: {}", cycle.join(" → "));
        }
    }
    assert!(read > 80, "read too few modules: {read}");
}

#[test]
fn the_gateway_imports_only_downwards() {
    let graph = read_crate(&workspace().join("gateway/src/lib.rs"));
    assert!(graph.children.len() > 30, "{:?}", graph.children.keys());
    let climbs = graph.climbs(GATEWAY_LAYERS);
    assert!(climbs.is_empty(), "{climbs:#?}");
}

/// Writes a small crate into a temporary directory: (file, text) pairs.
fn planted(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let root = dir.path().join("lib.rs");
    (dir, root)
}

#[test]
fn the_checker_finds_planted_cycles_and_climbs() {
    // Through `super::` in a `use` group, from a child to its parent.
    let (_d, root) = planted(&[
        ("lib.rs", "mod proxy;"),
        ("proxy/mod.rs", "mod frames;\npub fn answer() {}"),
        (
            "proxy/frames.rs",
            "use super::{answer, self as parent};\nfn f() { answer(); }",
        ),
    ]);
    let c = read_crate(&root)
        .cycle()
        .expect("a child importing its parent");
    assert!(c.contains(&"proxy::frames".to_string()), "{c:?}");
    // Between siblings, one by `crate::` in code, the other by a `use`.
    let (_d, root) = planted(&[
        ("lib.rs", "mod a;\nmod b;"),
        ("a.rs", "pub fn x() { crate::b::y(); }"),
        ("b.rs", "use crate::a::x as z;\npub fn y() {}"),
    ]);
    assert!(read_crate(&root).cycle().is_some());
    // A path in a type, to a nested module.
    let (_d, root) = planted(&[
        ("lib.rs", "mod a;\nmod b;"),
        ("a.rs", "pub struct S(pub crate::b::c::T);"),
        ("b.rs", "pub mod c { pub struct T(crate::a::S); }"),
    ]);
    assert!(read_crate(&root).cycle().is_some());
    // No cycle: one way, and a test module reading its parent.
    let (_d, root) = planted(&[
        ("lib.rs", "mod a;\nmod b;"),
        (
            "a.rs",
            "use crate::b::y;\n#[cfg(test)]\nmod tests { use super::*; }",
        ),
        ("b.rs", "pub fn y() {}"),
    ]);
    assert_eq!(read_crate(&root).cycle(), None);
    // A climb: the bottom layer importing from above it.
    let (_d, root) = planted(&[
        ("lib.rs", "mod config;\nmod stage;"),
        ("config.rs", "use crate::stage::identity::Key;"),
        ("stage/mod.rs", "pub mod identity;"),
        ("stage/identity.rs", "pub struct Key;"),
    ]);
    let climbs = read_crate(&root).climbs(&[&["config"], &["stage"]]);
    assert_eq!(
        climbs,
        vec!["config (layer 0) imports stage::identity (layer 1)"]
    );
    let climbs = read_crate(&root).climbs(&[&["stage"]]);
    assert_eq!(climbs, vec!["config is in no layer"]);
}

/// Counts `unsafe` blocks, functions, impls and traits in a file.
#[derive(Default)]
struct Unsafety(usize);

impl<'ast> Visit<'ast> for Unsafety {
    fn visit_expr_unsafe(&mut self, e: &'ast syn::ExprUnsafe) {
        self.0 += 1;
        syn::visit::visit_expr_unsafe(self, e);
    }

    fn visit_signature(&mut self, s: &'ast syn::Signature) {
        self.0 += usize::from(s.unsafety.is_some());
        syn::visit::visit_signature(self, s);
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        self.0 += usize::from(i.unsafety.is_some());
        syn::visit::visit_item_impl(self, i);
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        self.0 += usize::from(t.unsafety.is_some());
        syn::visit::visit_item_trait(self, t);
    }
}

/// Only the host's mappings hold unsafe code (issue #24): every other
/// source of every crate has none — policy-wasm's raw ABI only marks its
/// exports `#[unsafe(no_mangle)]`, an attribute, not unsafe code. The one
/// exception is test code: the fuzz harness, which plays the wasm host
/// natively and writes into the buffer the ABI hands out, as wasmtime's
/// host does.
#[test]
fn unsafe_code_is_only_in_the_hosts_mappings() {
    let mut found = BTreeMap::new();
    let mut dirs: Vec<PathBuf> = members().iter().map(|c| workspace().join(c)).collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() && name != "target" && name != "node_modules" {
                dirs.push(path);
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let Ok(file) = syn::parse_file(&text) else {
                    continue;
                };
                let mut u = Unsafety::default();
                u.visit_file(&file);
                if u.0 > 0 {
                    let rel = path.strip_prefix(workspace()).unwrap_or(&path);
                    found.insert(rel.to_string_lossy().replace("\\", "/"), u.0);
                }
            }
        }
    }
    let outside: Vec<_> = found
        .keys()
        .filter(|f| {
            !f.ends_with("host/src/memory_image/mapping.rs")
                && f.as_str() != "tests/fuzz/src/lib.rs"
        })
        .collect();
    assert!(
        outside.is_empty(),
        "unsafe code outside the host's mappings: {found:?}"
    );
    assert!(
        found.values().sum::<usize>() > 10,
        "the mappings' unsafe code was not found: {found:?}"
    );
}
