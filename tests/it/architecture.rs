//! The module graph of `src/` against the table in `docs/architecture.md`: every `crate::…`
//! path in code (comments, strings and character literals left out) is allowed by the table,
//! the graph has no cycle, and only `command` and `main.rs` import `cli`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Rust source with comments, string literals and character literals blanked out.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let at = |i: usize, text: &str| {
        text.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    while i < chars.len() {
        if at(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let mut depth = 0;
            loop {
                if at(i, "/*") {
                    depth += 1;
                    i += 2;
                } else if at(i, "*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i >= chars.len() {
                    break;
                } else {
                    i += 1;
                }
            }
        } else if chars[i] == 'r' && (at(i + 1, "\"") || at(i + 1, "#\"") || at(i + 1, "##\"")) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            i += 2 + hashes;
            while i < chars.len() && !at(i, &close) {
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if chars[i] == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if chars.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to (`main` for `main.rs`, `lib` for `lib.rs`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The modules each top-level module names as `crate::<module>` in its code.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = code[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn actual_graph() -> Graph {
    graph_of(&root().join("src"))
}

/// The top-level modules of the crate whose sources are in `src` and what each imports.
fn graph_of(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let module = module_of(src, &file);
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(imports(&code).into_iter().filter(|m| *m != module));
    }
    graph
}

/// The "What each module may import" table of docs/architecture.md.
fn allowed_graph() -> Graph {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let section = doc
        .split("## What each module may import")
        .nth(1)
        .expect("docs/architecture.md has its import table");
    section
        .lines()
        .filter(|line| {
            line.starts_with('|') && !line.contains("---") && !line.contains("may import")
        })
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let allowed = cells[1]
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            (cells[0].to_string(), allowed)
        })
        .collect()
}

fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn comments_strings_and_char_literals_are_not_code() {
    let code = code_only(
        "use crate::a; // crate::b\n/* crate::c /* crate::d */ */ let s = \"crate::e\"; \
         let r = r#\"crate::f\"#; let q = '\"'; let t = crate::g::x; fn f<'a>(_: &'a str) {}",
    );
    assert_eq!(
        imports(&code),
        ["a", "g"].iter().map(|s| s.to_string()).collect()
    );
}

#[test]
fn every_import_is_allowed_by_docs_architecture() {
    let actual = actual_graph();
    let allowed = allowed_graph();
    let mut problems = Vec::new();
    for (module, imports) in &actual {
        if module == "main" || module == "lib" {
            continue;
        }
        let Some(may) = allowed.get(module) else {
            problems.push(format!(
                "module `{module}` has no row in docs/architecture.md"
            ));
            continue;
        };
        for import in imports.difference(may) {
            problems.push(format!(
                "`{module}` imports `crate::{import}`, not in its row"
            ));
        }
    }
    for module in allowed.keys() {
        if !actual.contains_key(module) {
            problems.push(format!(
                "docs/architecture.md names `{module}`, which is not in src/"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn modules_import_each_other_without_cycles() {
    let graph = actual_graph();
    assert_eq!(cycle(&graph), None, "an import cycle");
    // The check above can fail: a graph with a cycle is found as one.
    let mut looped = graph.clone();
    looped
        .entry("inventory".into())
        .or_default()
        .insert("plan".into());
    assert!(cycle(&looped).is_some());
}

#[test]
fn the_test_bed_has_no_import_cycles_either() {
    let graph = graph_of(&root().join("testbed/src"));
    assert!(
        graph.contains_key("standin") && graph.contains_key("lab"),
        "{graph:?}"
    );
    assert_eq!(cycle(&graph), None, "an import cycle in the test bed");
}

#[test]
fn only_command_and_main_import_cli_and_lower_layers_never_import_error() {
    let graph = actual_graph();
    for (module, imports) in &graph {
        if imports.contains("cli") {
            assert!(
                module == "command" || module == "main",
                "`{module}` imports cli"
            );
        }
    }
    for lower in [
        "journal",
        "transport",
        "facts",
        "exec",
        "plan",
        "inventory",
        "procedure",
    ] {
        assert!(
            !graph[lower].contains("error"),
            "`{lower}` imports crate::error"
        );
    }
}
