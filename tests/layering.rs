//! Who may import whom: the relay's modules stay in their layers (shared state low, routes
//! on top, backends knowing nothing of the server), and no crate's modules import each
//! other in a loop. Reads the sources as text: every `crate::`, `super::` and `self::`
//! path, in `use` declarations and in code, is an arrow from its file's module to the
//! deepest module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's modules (by path, `""` for the root) and the arrows between them, with the
/// path text behind each arrow for the failure message.
struct ModuleGraph {
    files: BTreeMap<String, PathBuf>,
    arrows: BTreeMap<(String, String), String>,
}

/// The checkout to read: this workspace, or another one named by `OPSDECK_SOURCE_ROOT`
/// (to see what these checks say of an older tree).
fn workspace() -> PathBuf {
    std::env::var_os("OPSDECK_SOURCE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("tests/ is inside the workspace")
                .to_owned()
        })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `lib.rs`/`main.rs` → `""`, `a/mod.rs` and `a.rs` → `a`, `a/b.rs` → `a::b`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") || !parts.is_empty() && stem != "mod" {
        parts.push(stem.to_owned());
    }
    parts.join("::")
}

/// The text without its `#[cfg(test)] mod` items: a declaration up to its `;`, an inline
/// module up to its matching brace (test code may import from any layer).
fn without_test_modules(text: &str) -> String {
    let marker = "#[cfg(test)]\nmod ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let end = match (item.find(';'), item.find('{')) {
            (Some(semi), Some(brace)) if semi < brace => semi + 1,
            (Some(semi), None) => semi + 1,
            (_, Some(brace)) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (i, c) in item[brace..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = brace + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The code of a file without comments, string contents and its inline test modules.
fn code_of(text: &str) -> String {
    let text = without_test_modules(text);
    let mut out = String::with_capacity(text.len());
    let text = inline_modules_read_as_their_file(&text);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        break;
                    }
                }
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Inside an inline module (`mod defaults { use super::*; }`) `super` is the file's own
/// module: read it as `self`.
fn inline_modules_read_as_their_file(text: &str) -> String {
    let mut text = text.to_owned();
    let mut from = 0;
    while let Some(found) = find_word(&text[from..], "mod") {
        let at = from + found;
        from = at + 3;
        let rest = &text[from..];
        let name_end = rest
            .trim_start()
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(0);
        let after_name = rest.trim_start()[name_end..].trim_start();
        if !after_name.starts_with('{') {
            continue; // `mod child;`: a file of its own
        }
        let open = from + rest.find('{').unwrap_or(0);
        let mut depth = 0;
        let mut close = text.len();
        for (i, c) in text[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = text[open..close].replace("super::", "self::");
        text.replace_range(open..close, &body);
    }
    text
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    // `x as y` names x.
    let mut words: Vec<&str> = tree.split_whitespace().collect();
    while let Some(at) = words.iter().position(|w| *w == "as") {
        let renamed = words.get(at + 1).copied().unwrap_or_default();
        let tail = renamed.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_');
        words.splice(at..(at + 2).min(words.len()), [tail]);
    }
    let tree: String = words.concat();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .flat_map(expand)
        .map(|path| {
            if path == "self" {
                prefix.trim_end_matches("::").to_owned()
            } else {
                format!("{prefix}{path}")
            }
        })
        .collect()
}

/// Every `crate::`/`super::`/`self::` path a file names.
fn paths_in(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code.to_owned();
    // `use` declarations, with their trees.
    while let Some(at) = find_word(&rest, "use") {
        let Some(end) = rest[at..].find(';') else {
            break;
        };
        paths.extend(expand(&rest[at + 3..at + end]));
        rest.replace_range(at..at + end, "");
    }
    // Paths in code.
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(found) = rest[from..].find(root) {
            let at = from + found;
            let before = rest[..at].chars().last();
            from = at + root.len();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let end = rest[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(rest.len(), |n| at + n);
            paths.push(rest[at..end].trim_end_matches(':').to_owned());
        }
    }
    paths
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find(word) {
        let at = from + found;
        let before = text[..at].chars().last();
        let after = text[at + word.len()..].chars().next();
        let alone = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        if alone(before) && after.is_some_and(char::is_whitespace) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

impl ModuleGraph {
    fn read(src: &Path) -> Self {
        let mut paths = Vec::new();
        rust_files(src, &mut paths);
        let files: BTreeMap<String, PathBuf> = paths
            .into_iter()
            // A crate's other binaries (main.rs beside lib.rs) are crates of their own.
            .filter(|p| !(p.ends_with("main.rs") && src.join("lib.rs").exists()))
            .map(|p| (module_of(src, &p), p))
            .collect();
        let mut arrows = BTreeMap::new();
        for (module, file) in &files {
            let code = code_of(&std::fs::read_to_string(file).expect("reading a source"));
            for path in paths_in(&code) {
                if let Some(target) = resolve(module, &path, &files)
                    && target != *module
                {
                    arrows
                        .entry((module.clone(), target))
                        .or_insert_with(|| path.clone());
                }
            }
        }
        Self { files, arrows }
    }

    fn path_of(&self, module: &str) -> String {
        self.files[module]
            .strip_prefix(workspace())
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// Every loop of modules that import each other (strongly connected components).
    fn loops(&self) -> Vec<Vec<String>> {
        let modules: Vec<&String> = self.files.keys().collect();
        let reaches = |from: &str| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.to_owned()];
            while let Some(m) = todo.pop() {
                for (a, b) in self.arrows.keys() {
                    if *a == m && seen.insert(b.clone()) {
                        todo.push(b.clone());
                    }
                }
            }
            seen
        };
        let reach: BTreeMap<&String, BTreeSet<String>> =
            modules.iter().map(|m| (*m, reaches(m))).collect();
        let mut loops: Vec<Vec<String>> = Vec::new();
        for m in &modules {
            if !reach[m].contains(*m) || loops.iter().any(|l| l.contains(*m)) {
                continue;
            }
            let members = modules
                .iter()
                .filter(|o| reach[m].contains(**o) && reach[*o].contains(*m))
                .map(|o| (*o).clone())
                .collect();
            loops.push(members);
        }
        loops
    }

    fn describe_loop(&self, members: &[String]) -> String {
        let arrows: Vec<String> = self
            .arrows
            .iter()
            .filter(|((a, b), _)| members.contains(a) && members.contains(b))
            .map(|((a, _), path)| format!("  {} names {path}", self.path_of(a)))
            .collect();
        arrows.join("\n")
    }
}

/// The deepest module of the crate that `path`, named in `module`, leads to.
fn resolve(module: &str, path: &str, files: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").collect()
    };
    match segments.first().copied() {
        Some("crate") => {
            base.clear();
            segments.remove(0);
        }
        Some("self") => {
            segments.remove(0);
        }
        Some("super") => {
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
        }
        _ => return None,
    }
    let mut best = base.join("::");
    let mut current = base;
    for segment in segments {
        current.push(segment);
        let candidate = current.join("::");
        if files.contains_key(&candidate) {
            best = candidate;
        } else {
            break;
        }
    }
    Some(best)
}

/// The relay's layers, lowest first: a module may name its own layer and those below.
fn relay_layer(module: &str) -> (usize, &'static str) {
    let top = module.split("::").next().unwrap_or_default();
    match top {
        // The decoders are a facade for the fuzz targets: like the root, they may name
        // anything below.
        "" | "decoders" => (7, "the crate root"),
        "server" => (6, "routes"),
        "endpoints" | "api" => (5, "endpoints"),
        "pump" => (4, "the pump"),
        "state" => (3, "shared state"),
        "backend" | "session" | "recording" => {
            (2, "backends, the session registry and its recorder")
        }
        "auth" | "access" | "ldap" | "oidc" => (1, "identity and grants"),
        _ => (0, "config, close values, metrics and links"),
    }
}

#[test]
fn relay_modules_import_only_their_own_layer_and_below() {
    let graph = ModuleGraph::read(&workspace().join("relay/src"));
    let upward: Vec<String> = graph
        .arrows
        .iter()
        .filter_map(|((from, to), path)| {
            let (low, low_name) = relay_layer(from);
            let (high, high_name) = relay_layer(to);
            (high > low).then(|| {
                format!(
                    "{} ({low_name}) names {path} ({high_name})",
                    graph.path_of(from)
                )
            })
        })
        .collect();
    assert!(
        upward.is_empty(),
        "imports that run up the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn backends_know_nothing_of_the_server() {
    let graph = ModuleGraph::read(&workspace().join("relay/src"));
    let forbidden = ["state", "server", "endpoints", "pump", "api"];
    let found: Vec<String> = graph
        .arrows
        .iter()
        .filter(|((from, to), _)| {
            from.starts_with("backend") && forbidden.contains(&to.split("::").next().unwrap_or(""))
        })
        .map(|((from, _), path)| format!("{} names {path}", graph.path_of(from)))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert!(
        graph.files.contains_key("backend::tail") && graph.files.contains_key("state"),
        "the graph was read: {:?}",
        graph.files.keys().collect::<Vec<_>>()
    );
}

#[test]
fn no_crate_has_modules_that_import_each_other_in_a_loop() {
    let mut report = Vec::new();
    for src in ["relay/src", "common/src", "client/src", "frontend/src"] {
        let graph = ModuleGraph::read(&workspace().join(src));
        for members in graph.loops() {
            report.push(format!(
                "{src}: {}\n{}",
                members.join(" <-> "),
                graph.describe_loop(&members)
            ));
        }
    }
    assert!(report.is_empty(), "import loops:\n{}", report.join("\n"));
}

#[test]
fn the_frontend_root_is_imported_by_nothing() {
    let graph = ModuleGraph::read(&workspace().join("frontend/src"));
    let into_root: Vec<String> = graph
        .arrows
        .iter()
        .filter(|((_, to), _)| to.is_empty())
        .map(|((from, _), path)| format!("{} names {path}", graph.path_of(from)))
        .collect();
    assert!(into_root.is_empty(), "{}", into_root.join("\n"));
}

#[test]
fn the_reader_finds_paths_in_use_trees_and_code() {
    let code = code_of(
        "use crate::a::{b, c::{d, e as f}};\nuse super::g;\n// crate::comment\nfn x() { crate::h::i(); let s = \"crate::string\"; }\nmod inline { use super::*; }\n#[cfg(test)]\nmod tests { fn t() { if x { crate::t(); } } }\n#[cfg(test)]\nmod more;\nuse crate::after;",
    );
    let mut paths = paths_in(&code);
    paths.sort();
    assert_eq!(
        paths,
        [
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::e",
            "crate::after",
            "crate::h::i",
            "self::*",
            "super::g"
        ]
    );
    let files: BTreeMap<String, PathBuf> = ["", "a", "a::c", "x", "x::y"]
        .into_iter()
        .map(|m| (m.to_owned(), PathBuf::new()))
        .collect();
    assert_eq!(
        resolve("x::y", "super::Thing", &files).as_deref(),
        Some("x")
    );
    assert_eq!(
        resolve("x", "crate::a::c::d", &files).as_deref(),
        Some("a::c")
    );
    assert_eq!(resolve("x", "self::y::Z", &files).as_deref(), Some("x::y"));
    assert_eq!(resolve("x", "std::io", &files), None);
}
