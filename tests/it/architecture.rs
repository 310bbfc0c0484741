//! The house rules of the layout (docs/architecture.md): every arrow between the layers of
//! `src/` points down, there is no circle, and the layers named there import only what they
//! may. Read from the source: each file's `crate::…` paths name the layers it uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layer of a file under `src/`: its top-level module (`flows/tokens.rs` → `flows`).
fn layer(path: &Path, src: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.strip_suffix(".rs") {
        // The crate root and the binary wire everything together; they are above all layers.
        Some("lib" | "main") => None,
        Some(name) => Some(name.to_owned()),
        None => Some(first),
    }
}

/// Layer → the other layers its files name with `crate::…`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Some(from) = layer(&path, &src) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).expect("read file");
            let uses = graph.entry(from.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let name: String = text[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != from {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn layers_import_only_what_they_may() {
    let graph = imports();
    // docs/architecture.md: records, secret and clock are leaves; the protocol imports neither
    // store nor http; the store imports neither flows, http nor render; renderers import
    // neither http nor store; flows know nothing of HTTP; the state is below http.
    let forbidden: &[(&str, &[&str])] = &[
        ("records", &["*"]),
        ("secret", &["*"]),
        ("clock", &["*"]),
        (
            "oauth",
            &[
                "store", "http", "flows", "render", "state", "settings", "metadata",
            ],
        ),
        ("store", &["http", "render", "flows", "state", "oauth"]),
        ("render", &["http", "store", "state"]),
        ("flows", &["http", "render", "state"]),
        ("state", &["http"]),
        ("settings", &["store", "http", "flows", "render", "state"]),
        ("metadata", &["store", "http", "flows", "render", "state"]),
    ];
    let mut broken = Vec::new();
    for (from, never) in forbidden {
        let uses = graph.get(*from).cloned().unwrap_or_default();
        for to in &uses {
            if never.contains(&"*") || never.contains(&to.as_str()) {
                broken.push(format!("{from} → {to}"));
            }
        }
    }

    assert!(
        broken.is_empty(),
        "imports against the house rules: {broken:?}"
    );
    for layer in [
        "records", "oauth", "store", "flows", "render", "http", "state",
    ] {
        assert!(
            graph.contains_key(layer),
            "the layer {layer} exists: {graph:?}"
        );
    }
}

#[test]
fn no_circle_between_layers() {
    let graph = imports();
    // Depth-first search; a layer met again while still on the path closes a circle.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut circle: Vec<String> = path[at..].iter().map(|s| (*s).to_owned()).collect();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        let circle = visit(node, &graph, &mut Vec::new(), &mut done);

        assert_eq!(circle, None, "a circle between layers");
    }
}

#[test]
fn no_handler_file_is_long() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    for entry in std::fs::read_dir(dir).expect("read src/http") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let code_lines = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .count();

        assert!(
            code_lines <= 250,
            "{} has {code_lines} lines before its tests: a handler reads, calls one flow, renders",
            path.display()
        );
    }
}
