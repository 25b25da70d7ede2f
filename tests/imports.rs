//! The import graph of `src/` (issue 17): which top-level module names
//! which through `crate::` paths, measured from the source text. It keeps
//! the house rule that the roles meet only in shared modules:
//!
//! - no role (smtpd, qmgr, local, smtp, and the clients sendmail and
//!   mailq) names another role or the supervisor;
//! - the supervisor names a role only to start it (`crate::ROLE::run`);
//! - no shared module names a role or the supervisor;
//! - `config` names only leaf syntax modules: the files under
//!   `src/config/` name nothing of the crate but `crate::config`,
//!   [`wire`] and the files of [`LEAVES`] (the types and parsers of
//!   configuration values that live beside their feature), and those name
//!   only each other and `wire`, never `crate::config` — so the
//!   configuration is out of every import loop (issue 17: it closed one
//!   of 21 modules through `policy`, `maps`, `transport`, …).
//!
//! `cargo test --test imports -- --nocapture` prints the graph and its
//! counts; `POSTERN_SRC=DIR` measures another tree (an older commit's
//! `src/`, for a before/after). Comments are not code: doc links to a role
//! are allowed. Only `crate::` paths count: a top-level module's own
//! `super::` (the crate root) is not followed, and none is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The daemons and the client commands: each a room of its own.
const ROLES: [&str; 6] = ["smtpd", "qmgr", "local", "smtp", "sendmail", "mailq"];
const SUPERVISOR: &str = "supervisor";

/// The leaf syntax modules `config` may name, as `crate::` paths, and
/// their files: each holds only the types and parsers of configuration
/// values, and names nothing of the crate but another leaf (or `wire`).
const LEAVES: [(&str, &str); 6] = [
    ("policy::element", "policy/element.rs"),
    ("maps::spec", "maps/spec.rs"),
    ("transport::syntax", "transport/syntax.rs"),
    ("dkim::key_entry", "dkim/key_entry.rs"),
    ("milter::address", "milter/address.rs"),
    ("rewrite::pattern", "rewrite/pattern.rs"),
];

/// The pure wire formats (`src/wire/`): no I/O, no configuration; a leaf
/// as a whole.
const WIRE: &str = "wire";

/// One `crate::` reference: the file it is in and the path named.
struct Reference {
    file: String,
    path: String,
}

/// Modules by name, each with the references its files make.
type Graph = BTreeMap<String, Vec<Reference>>;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/qmgr/engine/notify.rs` →
/// `qmgr`, `src/ipc.rs` → `ipc`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a line: without its `//` comment (a `//` inside a string
/// literal is rare enough in this crate to be ignored).
fn code(line: &str) -> &str {
    line.split_once("//").map_or(line, |(code, _)| code)
}

/// Every `crate::a::b` path in `text`, and those of `use crate::{a, b::c}`
/// groups (one level of braces, which is all rustfmt leaves).
fn paths(text: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `postern_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item: String = item.trim().chars().take_while(|&c| ident(c)).collect();
                if !item.is_empty() {
                    out.push(item);
                }
            }
            continue;
        }
        let path: String = rest.chars().take_while(|&c| ident(c)).collect();
        out.push(path.trim_end_matches(':').to_string());
    }
    out
}

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    source_files(src, &mut files);
    files.sort();
    let mut graph = Graph::new();
    for file in files {
        let module = module_of(src, &file);
        if matches!(module.as_str(), "main" | "manual" | "lib") {
            continue; // the binary (it uses the library as `postern::`) and the module list
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text.lines().map(|l| format!("{}\n", code(l))).collect();
        let name = file.strip_prefix(src).unwrap().display().to_string();
        let refs = graph.entry(module.clone()).or_default();
        for path in paths(&code) {
            let target = path.split("::").next().unwrap_or_default();
            if target != module && !target.is_empty() {
                refs.push(Reference {
                    file: name.clone(),
                    path,
                });
            }
        }
    }
    graph
}

fn target(r: &Reference) -> &str {
    r.path.split("::").next().unwrap_or_default()
}

/// The references that break the rules of the module documentation.
fn violations(graph: &Graph) -> Vec<String> {
    let room = |m: &str| ROLES.contains(&m) || m == SUPERVISOR;
    let mut out = Vec::new();
    for (module, refs) in graph {
        for r in refs {
            let t = target(r);
            if !room(t) {
                continue;
            }
            let allowed = module == SUPERVISOR
                && ROLES.contains(&t)
                && r.path.strip_prefix(t) == Some("::run");
            if !allowed {
                out.push(format!("{} names crate::{}", r.file, r.path));
            }
        }
    }
    out
}

/// A line of code without the text of its string literals (a test's
/// `"see [`crate::x`]"` names nothing).
fn without_strings(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    let mut inside = false;
    while let Some(c) = chars.next() {
        match (inside, c) {
            (true, '\\') => {
                chars.next();
            }
            (_, '"') => {
                inside = !inside;
                out.push(c);
            }
            (true, _) => {}
            (false, _) => out.push(c),
        }
    }
    out
}

/// Whether `path` (a `crate::` path) is in a leaf: `wire` or one of
/// [`LEAVES`].
fn in_leaf(path: &str) -> bool {
    let within = |m: &str| path == m || path.starts_with(&format!("{m}::"));
    within(WIRE) || LEAVES.iter().any(|(m, _)| within(m))
}

/// The references that break `config`'s rule: a file under `config/`
/// naming more than `config` and the leaves, a leaf naming more than the
/// leaves, a leaf reaching its parent module through `super::`.
fn config_violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    source_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = file.strip_prefix(src).unwrap().display().to_string();
        let in_config = name.starts_with("config/");
        let leaf = name.starts_with("wire/") || LEAVES.iter().any(|(_, f)| *f == name);
        if !in_config && !leaf {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .map(|l| format!("{}\n", without_strings(code(l))))
            .collect();
        for path in paths(&code) {
            let config = path == "config" || path.starts_with("config::");
            let allowed = in_leaf(&path) || (in_config && config);
            if !allowed {
                out.push(format!("{name} names crate::{path}"));
            }
        }
        // A leaf's `super::` is its feature module (or the crate root for
        // `config/mod.rs`); only a test module's `use super::*` is allowed.
        if (leaf && !name.starts_with("wire/")) || name == "config/mod.rs" {
            for (n, line) in code.lines().enumerate() {
                let uses = line.matches("super::").count();
                let tests = line.matches("super::*").count();
                if uses > tests {
                    out.push(format!("{name}:{} names super::", n + 1));
                }
            }
        }
    }
    out
}

/// The sets of modules that import each other in a loop (Tarjan's
/// strongly connected components of more than one module).
fn loops(edges: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            let next: Vec<&str> = self.edges.get(v).into_iter().flatten().copied().collect();
            for w in next {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for &v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.found
}

#[test]
fn roles_meet_only_in_shared_modules() {
    let src = std::env::var_os("POSTERN_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"));
    let graph = graph(&src);
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, refs) in &graph {
        let e = edges.entry(module.as_str()).or_default();
        for r in refs {
            e.insert(target(r));
        }
    }
    let room = |m: &str| ROLES.contains(&m) || m == SUPERVISOR;
    let count = |f: &dyn Fn(&str, &str) -> bool| {
        edges
            .iter()
            .flat_map(|(m, ts)| ts.iter().map(move |t| (*m, *t)))
            .filter(|(m, t)| f(m, t))
            .count()
    };
    let all = count(&|_, _| true);
    let role_to_room = count(&|m, t| room(m) && room(t));
    let shared_to_room = count(&|m, t| !room(m) && room(t));
    let references: usize = graph.values().map(Vec::len).sum();
    let problems = violations(&graph);
    let loops = loops(&edges);
    println!("import graph of {}:", src.display());
    for (module, targets) in &edges {
        let list: Vec<&str> = targets.iter().copied().collect();
        println!("  {module:<10} -> {}", list.join(", "));
    }
    println!("modules: {}", edges.len());
    println!("module edges: {all}");
    println!("crate:: references across modules: {references}");
    println!("edges between roles (and the supervisor): {role_to_room}");
    println!("edges from shared modules to roles: {shared_to_room}");
    for l in &loops {
        println!("import loop of {} modules: {}", l.len(), l.join(", "));
    }
    println!("references against the rules: {}", problems.len());
    for p in &problems {
        println!("  {p}");
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn config_names_only_leaf_syntax_modules() {
    let src = std::env::var_os("POSTERN_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut problems = config_violations(&src);
    for (_, file) in LEAVES {
        if !src.join(file).is_file() {
            problems.push(format!("the leaf {file} is missing"));
        }
    }
    println!("references against config's rule: {}", problems.len());
    for p in &problems {
        println!("  {p}");
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
