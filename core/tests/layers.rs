//! The layering of `core/src` (see `docs/architecture.md`): every `crate::` path in a module
//! must name a module its row of [`ALLOWED`] lists, and no two top-level modules may import
//! each other, directly or around a loop. A failure names the file and line of the import.
//!
//! What counts as an import: `use crate::a::…`, grouped `use crate::{a::x, b::{y, z}}`,
//! inline paths (`crate::a::f()`), and the crate root's re-exports (`crate::Engine` is
//! `engine`, as `lib.rs` says). Comments (doc links included) do not count, nor do unit tests:
//! a trailing `#[cfg(test)] mod tests` block and files named `*_tests.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `core/src` and the modules it may import, bottom up. A module
/// missing here fails the test: add its row where it belongs.
#[rustfmt::skip]
const ALLOWED: &[(&str, &[&str])] = &[
    // Foundation: pure helpers, then what every layer may read (counters, log context,
    // configuration and its settings table).
    ("helpers",   &[]),
    ("metrics",   &[]),
    ("log",       &[]),
    ("config",    &["helpers"]),
    ("settings",  &["config", "helpers"]),
    ("endpoints", &["config"]),
    // Codecs: bytes in, values out.
    ("protocol",  &["helpers"]),
    // Engine.IO sessions (generic over what the layer above attaches), WebSocket, polling,
    // the HTTP front door, TLS.
    ("transport", &["protocol", "helpers", "config", "metrics", "log"]),
    // Pure shared state.
    ("hub",       &["helpers"]),
    ("store",     &["helpers", "config", "metrics"]),
    // Access: identity, tokens, room access (personal rooms are `hub`'s), host hook errors.
    ("auth",      &["helpers", "config", "hub"]),
    // The crate's error wraps the errors of the layers below (configuration, keys, TLS,
    // storage); the cluster, the features and the engine return it.
    ("error",     &["config", "auth", "store", "transport"]),
    ("cluster",   &["hub", "store", "helpers", "config", "metrics", "protocol", "error"]),
    // Sessions of the upper protocols: Socket.IO over Engine.IO, and server-sent event streams.
    ("socketio",  &["transport", "protocol", "hub", "cluster", "auth", "helpers", "config", "metrics", "log"]),
    ("sse",       &["hub", "protocol", "transport", "helpers", "config", "metrics", "error"]),
    // Features: chat (the contract over Socket.IO, SSE and the HTTP API) and Yjs documents.
    // They install themselves on the `EngineBuilder` (hence `engine`, which names no
    // feature) and never import each other: the room rule they share is `auth::access`.
    ("chat",      &["auth", "cluster", "config", "engine", "error", "helpers", "hub", "metrics", "protocol", "socketio", "sse", "store", "transport"]),
    ("yjs",       &["auth", "cluster", "config", "engine", "error", "helpers", "hub", "metrics", "protocol", "store", "transport"]),
    // The chat contract as JSON frames at `/ws`: a wire over Socket.IO's `/` namespace.
    ("ws",        &["config", "engine", "helpers", "protocol", "socketio", "transport"]),
    // Composition.
    ("engine",    &["cluster", "config", "error", "helpers", "hub", "log", "metrics", "socketio", "transport"]),
    ("server",    &["engine", "socketio", "auth", "hub", "helpers"]),
    // The engine as a tower `Service`/`Layer` inside a host's axum or hyper app.
    ("tower",     &["engine", "socketio", "transport"]),
    // The one product assembly the bindings and the standalone command start.
    ("host",      &["auth", "chat", "config", "engine", "error", "helpers", "hub", "log", "metrics", "server", "socketio", "sse", "store", "transport", "ws", "yjs"]),
    // What the bindings and the command reach beyond the public API (re-exports only).
    ("bindings",  &["config", "helpers", "log", "settings", "transport"]),
    // The facade the fuzz targets and property tests call: above everything.
    ("testing",   &["auth", "chat", "config", "helpers", "hub", "protocol", "socketio", "sse", "transport", "yjs"]),
];

/// One `crate::` reference from a module to another.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: String,
    to: String,
    file: String,
    line: usize,
}

/// `file` (relative to `core/src`) and its text.
type Source = (String, String);

/// The top-level module a file of `core/src` belongs to (`None`: the crate root, binaries).
fn module_of(file: &str) -> Option<String> {
    let first = file.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "bin")).then(|| name.to_owned())
}

/// The code of a file without comments and without its trailing unit-test module, one entry
/// per line (so line numbers stay right).
fn code_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_tests = false;
    let all: Vec<&str> = text.lines().collect();
    for (i, line) in all.iter().enumerate() {
        let t = line.trim();
        if t == "#[cfg(test)]" && all.get(i + 1).is_some_and(|n| n.trim() == "mod tests {") {
            in_tests = true;
        }
        if in_tests {
            lines.push(String::new());
            continue;
        }
        lines.push(strip_comment(line).to_owned());
    }
    lines
}

/// `line` up to a `//` that is not inside a string literal.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// Whether `c` may be part of an identifier.
fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The first path segment of each item of a `{…}` group starting at `text[open]`, with its
/// byte offset: `{a::x, b::{y, z}, C}` gives `a`, `b`, `C`.
fn group_heads(text: &str, open: usize) -> Vec<(String, usize)> {
    let bytes = text.as_bytes();
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                depth += 1;
                expect_head = depth == 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => expect_head = true,
            c if expect_head && depth == 1 && ident_char(c) => {
                let end = (i..bytes.len())
                    .find(|&j| !ident_char(bytes[j]))
                    .unwrap_or(bytes.len());
                heads.push((text[i..end].to_owned(), i));
                expect_head = false;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// The root re-exports of `lib.rs` (`pub use engine::{Engine, EngineBuilder}` maps both names
/// to `engine`).
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_lines(lib).join("\n");
    for stmt in code.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.split(" as ").last().unwrap_or("").trim();
            let name = name.rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                map.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    map
}

/// Every reference from one top-level module to another in `files`.
fn edges(files: &[Source], reexports: &BTreeMap<String, String>) -> Vec<Edge> {
    let mut out = Vec::new();
    for (file, text) in files {
        if file.ends_with("_tests.rs") {
            continue;
        }
        let Some(from) = module_of(file) else {
            continue;
        };
        let code = code_lines(text).join("\n");
        let line_of = |offset: usize| code[..offset].matches('\n').count() + 1;
        let mut push = |head: &str, offset: usize| {
            let to = reexports
                .get(head)
                .cloned()
                .unwrap_or_else(|| head.to_owned());
            if to != from && to != "self" {
                out.push(Edge {
                    from: from.clone(),
                    to,
                    file: file.clone(),
                    line: line_of(offset),
                });
            }
        };
        let bytes = code.as_bytes();
        for (at, _) in code.match_indices("crate::") {
            // `pub(crate)` has no `::`; `$crate::` is a macro's own path.
            if at > 0 && (ident_char(bytes[at - 1]) || bytes[at - 1] == b'$') {
                continue;
            }
            let start = at + "crate::".len();
            if bytes.get(start) == Some(&b'{') {
                for (head, offset) in group_heads(&code, start) {
                    push(&head, offset);
                }
            } else {
                let end = (start..bytes.len())
                    .find(|&j| !ident_char(bytes[j]))
                    .unwrap_or(bytes.len());
                if end > start {
                    push(&code[start..end], start);
                }
            }
        }
    }
    out
}

/// Import cycles between top-level modules: each strongly connected set of two or more.
fn cycles(edges: &[Edge]) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().insert(&e.to);
    }
    let nodes: Vec<&str> = graph.keys().copied().collect();
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            for &m in graph.get(n).into_iter().flatten() {
                if m == to {
                    return true;
                }
                if seen.insert(m) {
                    stack.push(m);
                }
            }
        }
        false
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    for &n in &nodes {
        if found.iter().any(|c| c.iter().any(|m| m == n)) || !reaches(n, n) {
            continue;
        }
        let set: Vec<String> = nodes
            .iter()
            .filter(|&&m| m == n || (reaches(n, m) && reaches(m, n)))
            .map(|m| m.to_string())
            .collect();
        found.push(set);
    }
    found
}

/// What is wrong with `files` under `allowed`: one message per forbidden import (with file
/// and line), per module missing from the table, and per cycle.
fn check(files: &[Source], allowed: &[(&str, &[&str])]) -> Vec<String> {
    let lib = files
        .iter()
        .find(|(f, _)| f == "lib.rs")
        .map(|(_, t)| t.as_str())
        .unwrap_or("");
    let reexports = root_reexports(lib);
    let table: BTreeMap<&str, &[&str]> = allowed.iter().copied().collect();
    let all = edges(files, &reexports);
    let mut problems = Vec::new();
    let mut missing = BTreeSet::new();
    for (file, _) in files {
        if let Some(m) = module_of(file) {
            if !table.contains_key(m.as_str()) && missing.insert(m.clone()) {
                problems.push(format!(
                    "module `{m}` ({file}) has no row in ALLOWED (tests/layers.rs): add one"
                ));
            }
        }
    }
    for e in &all {
        let ok = table
            .get(e.from.as_str())
            .is_some_and(|deps| deps.contains(&e.to.as_str()));
        if !ok && table.contains_key(e.from.as_str()) {
            problems.push(format!(
                "src/{}:{}: `{}` imports `crate::{}`, which its layer may not use",
                e.file, e.line, e.from, e.to
            ));
        }
    }
    for cycle in cycles(&all) {
        let witnesses: Vec<String> = all
            .iter()
            .filter(|e| cycle.contains(&e.from) && cycle.contains(&e.to))
            .map(|e| format!("src/{}:{} ({} -> {})", e.file, e.line, e.from, e.to))
            .collect();
        problems.push(format!(
            "import cycle between {}: {}",
            cycle.join(", "),
            witnesses.join("; ")
        ));
    }
    problems
}

/// Every `.rs` file under `dir`, relative to `root`.
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("core/src is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under root");
            let rel = rel.to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("source is UTF-8");
            out.push((rel, text));
        }
    }
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&root, &root, &mut files);
    let problems = check(&files, ALLOWED);
    assert!(
        problems.is_empty(),
        "layering broken (see docs/architecture.md):\n{}",
        problems.join("\n")
    );
}

fn files(list: &[(&str, &str)]) -> Vec<Source> {
    list.iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect()
}

const SMALL_TABLE: &[(&str, &[&str])] = &[
    ("helpers", &[]),
    ("transport", &["helpers"]),
    ("socketio", &["transport", "helpers"]),
    ("engine", &["socketio", "transport"]),
];

#[test]
fn the_checker_names_a_forbidden_import_with_its_file_and_line() {
    let set = files(&[
        ("lib.rs", "pub mod engine;\npub use engine::{Engine, EngineBuilder};\n"),
        ("helpers/mod.rs", "pub fn id() {}\n"),
        (
            "transport/session.rs",
            "use crate::helpers::id;\n\npub struct S {\n    sio: crate::socketio::ConnState,\n}\n",
        ),
        (
            "transport/http.rs",
            "use crate::{\n    helpers::id,\n    socketio::{Socket, Namespace},\n};\n/// [`crate::Engine::stop`] is a doc link, not an import\nfn f() { let _ = crate::Engine::new(); }\n",
        ),
        ("socketio/mod.rs", "use crate::transport::S;\npub(crate) fn g() {}\n"),
        ("engine.rs", "use crate::socketio::g;\n#[cfg(test)]\nmod tests {\n    use crate::helpers::id;\n}\n"),
    ]);
    let problems = check(&set, SMALL_TABLE);
    let forbidden: Vec<&String> = problems
        .iter()
        .filter(|p| p.contains("may not use"))
        .collect();
    assert_eq!(
        forbidden,
        [
            "src/transport/session.rs:4: `transport` imports `crate::socketio`, which its layer may not use",
            "src/transport/http.rs:3: `transport` imports `crate::socketio`, which its layer may not use",
            "src/transport/http.rs:6: `transport` imports `crate::engine`, which its layer may not use",
        ],
        "{problems:#?}"
    );
    // transport -> socketio -> transport, and transport -> engine -> socketio -> transport.
    let cycles: Vec<&String> = problems
        .iter()
        .filter(|p| p.starts_with("import cycle"))
        .collect();
    assert_eq!(cycles.len(), 1, "{problems:#?}");
    assert!(cycles[0].starts_with("import cycle between engine, socketio, transport:"));
}

#[test]
fn the_checker_wants_a_row_for_every_module_and_passes_a_clean_tree() {
    let set = files(&[
        ("helpers/ids.rs", "pub fn id() {}\n"),
        ("transport/mod.rs", "use crate::helpers::ids::id;\n"),
        ("socketio/mod.rs", "use crate::{helpers::ids, transport};\n"),
        ("engine.rs", "use crate::socketio;\n"),
        ("bin/switchboard/main.rs", "use switchboard::Engine;\n"),
        ("transport/outbox_tests.rs", "use crate::engine::Engine;\n"),
    ]);
    assert_eq!(check(&set, SMALL_TABLE), Vec::<String>::new());
    let mut with_new = set.clone();
    with_new.push(("host/mod.rs".into(), "use crate::engine;\n".into()));
    assert_eq!(
        check(&with_new, SMALL_TABLE),
        ["module `host` (host/mod.rs) has no row in ALLOWED (tests/layers.rs): add one"]
    );
}
