//! The root (`main.rs`) is imported by nothing: every `crate::` path in the other modules
//! starts with a module, never with something the root defines. Checked on the sources
//! themselves (a new file joins [`SOURCES`]).

/// Every module's source but the root's and this one's.
const SOURCES: &[(&str, &str)] = &[
    ("api.rs", include_str!("api.rs")),
    ("config.rs", include_str!("config.rs")),
    ("conn.rs", include_str!("conn.rs")),
    ("early.rs", include_str!("early.rs")),
    ("feed.rs", include_str!("feed.rs")),
    ("flow.rs", include_str!("flow.rs")),
    ("folders.rs", include_str!("folders.rs")),
    ("layout.rs", include_str!("layout.rs")),
    ("i18n.rs", include_str!("i18n.rs")),
    ("locale.rs", include_str!("locale.rs")),
    ("logbuf.rs", include_str!("logbuf.rs")),
    ("nav.rs", include_str!("nav.rs")),
    ("renderer.rs", include_str!("renderer.rs")),
    ("resume.rs", include_str!("resume.rs")),
    ("route.rs", include_str!("route.rs")),
    ("session.rs", include_str!("session.rs")),
    ("settings.rs", include_str!("settings.rs")),
    ("term.rs", include_str!("term.rs")),
    ("units.rs", include_str!("units.rs")),
    ("ws.rs", include_str!("ws.rs")),
    ("views/mod.rs", include_str!("views/mod.rs")),
    ("views/chat.rs", include_str!("views/chat.rs")),
    ("views/files.rs", include_str!("views/files.rs")),
    ("views/login.rs", include_str!("views/login.rs")),
    ("views/logs.rs", include_str!("views/logs.rs")),
    ("views/picker.rs", include_str!("views/picker.rs")),
    ("views/recordings.rs", include_str!("views/recordings.rs")),
    ("views/replay.rs", include_str!("views/replay.rs")),
    ("views/sessions.rs", include_str!("views/sessions.rs")),
    ("views/settings.rs", include_str!("views/settings.rs")),
    ("views/terminal.rs", include_str!("views/terminal.rs")),
    ("views/workspace.rs", include_str!("views/workspace.rs")),
];

/// The modules the root declares (`mod name;`).
fn modules() -> Vec<&'static str> {
    include_str!("main.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("mod ")?.strip_suffix(';'))
        .collect()
}

/// The first name of each path after `crate::`, including each one of a `crate::{..}` group.
fn crate_paths(source: &str) -> Vec<&str> {
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut names = Vec::new();
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            names.push(&rest[..ident(rest)]);
            continue;
        };
        // Names that start a segment at the group's own level.
        let mut depth = 0;
        let mut start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => start = true,
                c if start && (c.is_alphanumeric() || c == '_') => {
                    names.push(&group[i..i + ident(&group[i..])]);
                    start = false;
                }
                _ => {}
            }
        }
    }
    names
}

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[test]
fn no_module_imports_from_the_root() {
    let modules = modules();
    assert!(modules.contains(&"views") && modules.contains(&"nav"));
    for (file, source) in SOURCES {
        for name in crate_paths(source) {
            assert!(
                modules.contains(&name),
                "{file} uses crate::{name}, which the root defines: move it to a module"
            );
        }
    }
}

#[test]
fn paths_are_read_from_plain_and_grouped_imports() {
    let source = "use crate::a::B;\nuse crate::{c, d::{self, E}, f};\nx = crate::g();";
    assert_eq!(crate_paths(source), ["a", "c", "d", "f", "g"]);
}
