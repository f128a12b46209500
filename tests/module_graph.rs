//! No import circles among `src/` modules.
//!
//! Reads every `src/**/*.rs`, collects its `crate::…` and `super::…` paths (in `use` items and
//! in expressions, `{…}` groups included; comments and literals skipped), and builds the graph
//! of top-level modules and their direct submodules (`receiver::otlp`, `distributor`,
//! `config`). A file deeper down counts as the submodule it is in (`receiver/otlp/server.rs` is
//! `receiver::otlp`). The test fails listing every circle left once the allowlist's edges are
//! taken out.
//!
//! Run it alone with `cargo test --test module_graph -- --nocapture` (it prints the graph's
//! size and the circles the allowlist still carries).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges that close circles outside the receiver/distributor/config/logs/overrides/api area,
/// each to be cut where it is and then removed from here. `(from, to, why the edge exists)`.
/// The receiver area has none, and must keep none.
const ALLOWED_EDGES: &[(&str, &str, &str)] = &[];

/// A module at the graph's granularity: `a` or `a::b`.
type Node = String;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{dir:?}: {error}"));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/a/b/c.rs` → `[a, b, c]`, `src/a/b/mod.rs` → `[a, b]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("file below src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// Whether `src/<path>` is a module of its own (a file or a folder with `mod.rs`).
fn is_module(src: &Path, path: &[String]) -> bool {
    if path.is_empty() {
        return false;
    }
    let joined: PathBuf = path.iter().collect();
    src.join(&joined).with_extension("rs").is_file() || src.join(&joined).join("mod.rs").is_file()
}

/// The graph node a module path falls in, if it names a module of the crate.
fn node_of(src: &Path, path: &[String]) -> Option<Node> {
    let top = path.first()?;
    if !is_module(src, &path[..1]) {
        return None;
    }
    if path.len() >= 2 && is_module(src, &path[..2]) {
        return Some(format!("{top}::{}", path[1]));
    }
    Some(top.clone())
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// Tokens of Rust source with comments, strings and character literals left out.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let character = chars[index];
        let next = chars.get(index + 1).copied();
        if character == '/' && next == Some('/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if character == '/' && next == Some('*') {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                    depth += 1;
                    index += 2;
                } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    index += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    index += 1;
                }
            }
        } else if character == 'r' && (next == Some('#') || next == Some('"')) && {
            let mut look = index + 1;
            while chars.get(look) == Some(&'#') {
                look += 1;
            }
            chars.get(look) == Some(&'"')
        } {
            // A raw string: r#"…"#, closed by a quote and as many hashes.
            let mut hashes = 0;
            index += 1;
            while chars[index] == '#' {
                hashes += 1;
                index += 1;
            }
            index += 1;
            while index < chars.len() {
                if chars[index] == '"'
                    && (1..=hashes).all(|offset| chars.get(index + offset) == Some(&'#'))
                {
                    index += 1 + hashes;
                    break;
                }
                index += 1;
            }
            tokens.push(Token::Other);
        } else if character == '"' {
            index += 1;
            while index < chars.len() && chars[index] != '"' {
                if chars[index] == '\\' {
                    index += 1;
                }
                index += 1;
            }
            index += 1;
            tokens.push(Token::Other);
        } else if character == '\'' {
            // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if next == Some('\\') {
                index += 2;
                while index < chars.len() && chars[index] != '\'' {
                    index += 1;
                }
                index += 1;
            } else if chars.get(index + 2) == Some(&'\'') {
                index += 3;
            } else {
                index += 1;
                while index < chars.len() && (chars[index].is_alphanumeric() || chars[index] == '_')
                {
                    index += 1;
                }
            }
            tokens.push(Token::Other);
        } else if character.is_alphabetic() || character == '_' {
            let start = index;
            while index < chars.len() && (chars[index].is_alphanumeric() || chars[index] == '_') {
                index += 1;
            }
            tokens.push(Token::Ident(chars[start..index].iter().collect()));
        } else if character.is_whitespace() {
            index += 1;
        } else if character == ':' && next == Some(':') {
            tokens.push(Token::PathSep);
            index += 2;
        } else {
            tokens.push(match character {
                '{' => Token::Open,
                '}' => Token::Close,
                ',' => Token::Comma,
                _ => Token::Other,
            });
            index += 1;
        }
    }
    tokens
}

/// Reads the path that continues at `tokens[at]` after `prefix::`, calling `found` with every
/// full path (a `{a, b::c}` group gives one per item). Returns where the path ends.
fn read_paths(
    tokens: &[Token],
    mut at: usize,
    mut prefix: Vec<String>,
    found: &mut dyn FnMut(&[String]),
) -> usize {
    loop {
        match tokens.get(at) {
            Some(Token::Ident(name)) => {
                prefix.push(name.clone());
                at += 1;
                if tokens.get(at) == Some(&Token::PathSep) {
                    at += 1;
                    continue;
                }
                found(&prefix);
                return at;
            }
            Some(Token::Open) => {
                at += 1;
                loop {
                    match tokens.get(at) {
                        Some(Token::Close) => return at + 1,
                        Some(Token::Comma) => at += 1,
                        None => return at,
                        Some(_) => {
                            let before = at;
                            at = read_paths(tokens, at, prefix.clone(), found);
                            // `*` and the like: step over what is not a path.
                            if at == before {
                                at += 1;
                            }
                            while !matches!(
                                tokens.get(at),
                                Some(Token::Comma) | Some(Token::Close) | None
                            ) {
                                at += 1;
                            }
                        }
                    }
                }
            }
            _ => {
                found(&prefix);
                return at;
            }
        }
    }
}

/// The modules a file's code refers to, as module paths from the crate root.
fn references(
    tokens: &[Token],
    file_module: &[String],
    is_child: &dyn Fn(&[String], &str) -> bool,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // Inline modules (`mod tests { … }`) open at a brace depth; `super` inside one is the file.
    let mut inline_depths: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut index = 0;
    while index < tokens.len() {
        match &tokens[index] {
            Token::Open => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                if inline_depths.last() == Some(&depth) {
                    inline_depths.pop();
                }
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(Token::Ident(_)), Some(Token::Open)) =
                    (tokens.get(index + 1), tokens.get(index + 2))
                {
                    inline_depths.push(depth);
                }
            }
            // A path from a child module of this file's module (`otlp::OtlpConfig` in
            // `receiver/mod.rs`) or from `self`.
            Token::Ident(word)
                if tokens.get(index + 1) == Some(&Token::PathSep)
                    && !matches!(
                        index.checked_sub(1).map(|i| &tokens[i]),
                        Some(Token::PathSep)
                    )
                    && inline_depths.is_empty()
                    && (word == "self" || is_child(file_module, word)) =>
            {
                let mut base = file_module.to_vec();
                let at = if word == "self" { index + 2 } else { index };
                index = read_paths(tokens, at, std::mem::take(&mut base), &mut |path| {
                    out.push(path.to_vec())
                });
                continue;
            }
            Token::Ident(word)
                if (word == "crate" || word == "super")
                    && tokens.get(index + 1) == Some(&Token::PathSep)
                    && !matches!(
                        index.checked_sub(1).map(|i| &tokens[i]),
                        Some(Token::PathSep)
                    ) =>
            {
                let mut base: Vec<String> = if word == "crate" {
                    Vec::new()
                } else {
                    file_module.to_vec()
                };
                let mut at = index;
                let mut supers = 0;
                while let (Some(Token::Ident(part)), Some(Token::PathSep)) =
                    (tokens.get(at), tokens.get(at + 1))
                {
                    if part == "super" {
                        supers += 1;
                    } else if part != "crate" {
                        break;
                    }
                    at += 2;
                }
                // `super` in an inline module names the file's own module first.
                let inline = inline_depths.len().min(supers);
                for _ in inline..supers {
                    base.pop();
                }
                let end = read_paths(tokens, at, base, &mut |path| out.push(path.to_vec()));
                index = end;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    out
}

fn graph(src: &Path) -> (usize, BTreeMap<Node, BTreeSet<Node>>) {
    let mut files = Vec::new();
    source_files(src, &mut files);
    let mut edges: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
    for file in &files {
        let module = module_path(src, file);
        let Some(from) = node_of(src, &module) else {
            continue; // lib.rs, main.rs
        };
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|error| panic!("{file:?}: {error}"));
        let targets = edges.entry(from.clone()).or_default();
        let is_child = |parent: &[String], name: &str| {
            let mut child = parent.to_vec();
            child.push(name.to_string());
            is_module(src, &child)
        };
        for path in references(&tokenize(&text), &module, &is_child) {
            if let Some(to) = node_of(src, &path) {
                if to != from {
                    targets.insert(to);
                }
            }
        }
    }
    (files.len(), edges)
}

/// Strongly connected components of more than one node (Tarjan), each sorted.
fn circles(edges: &BTreeMap<Node, BTreeSet<Node>>) -> Vec<Vec<Node>> {
    struct State<'a> {
        edges: &'a BTreeMap<Node, BTreeSet<Node>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<Node>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        let number = state.index.len();
        state.index.insert(node, number);
        state.low.insert(node, number);
        state.stack.push(node);
        state.on_stack.insert(node);
        if let Some(targets) = state.edges.get(node) {
            for target in targets {
                let target = target.as_str();
                if !state.index.contains_key(target) {
                    visit(state, target);
                    let low = state.low[node].min(state.low[target]);
                    state.low.insert(node, low);
                } else if state.on_stack.contains(target) {
                    let low = state.low[node].min(state.index[target]);
                    state.low.insert(node, low);
                }
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.to_string());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.out.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.out.sort();
    state.out
}

/// One circle through `members`, as `a → b → … → a`, to show where to cut.
fn one_cycle(edges: &BTreeMap<Node, BTreeSet<Node>>, members: &[Node]) -> String {
    let inside: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    let start = members[0].as_str();
    // Breadth-first from the start back to itself, inside the component.
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for target in edges.get(node).into_iter().flatten() {
            let target = target.as_str();
            if !inside.contains(target) {
                continue;
            }
            if target == start {
                let mut path = vec![start];
                let mut at = node;
                while at != start {
                    path.push(at);
                    at = previous[at];
                }
                path.push(start);
                let last = path.len() - 1;
                path[1..last].reverse();
                return path.join(" → ");
            }
            if !previous.contains_key(target) && target != start {
                previous.insert(target, node);
                queue.push_back(target);
            }
        }
    }
    members.join(", ")
}

fn describe(edges: &BTreeMap<Node, BTreeSet<Node>>, found: &[Vec<Node>]) -> String {
    found
        .iter()
        .map(|members| {
            format!(
                "  {{{}}}\n    e.g. {}",
                members.join(", "),
                one_cycle(edges, members)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn src_modules_have_no_import_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (files, mut edges) = graph(&src);
    assert!(files > 100, "read only {files} files below {src:?}");
    let edge_count: usize = edges.values().map(BTreeSet::len).sum();
    println!("{files} files, {} modules, {edge_count} edges", edges.len());
    assert!(edge_count > 100, "found only {edge_count} edges");

    if std::env::var_os("MODULE_GRAPH_EDGES").is_some() {
        for (from, targets) in &edges {
            for to in targets {
                println!("edge {from} {to}");
            }
        }
    }
    let before = circles(&edges);
    if !before.is_empty() {
        println!(
            "circles carried by the allowlist:\n{}",
            describe(&edges, &before)
        );
    }
    for (from, to, _) in ALLOWED_EDGES {
        let removed = edges
            .get_mut(*from)
            .is_some_and(|targets| targets.remove(*to));
        if !removed {
            println!("allowlisted edge {from} → {to} no longer exists: remove it from the list");
        }
    }
    let left = circles(&edges);
    assert!(
        left.is_empty(),
        "import circles among src/ modules (cut an edge, e.g. by moving the shared type down):\n{}",
        describe(&edges, &left)
    );
}

#[test]
fn the_reader_sees_groups_supers_and_skips_text() {
    let text = r#"
        use crate::{a::{b, c::D}, e};
        use super::f::G;
        // crate::commented::out
        let s = "crate::in::a::string";
        fn x<'a>(v: &'a str) -> char { crate::h::i(v); 'c' }
        mod tests { use super::*; use super::super::j; }
        k::L::new(); self::k::M; other::N;
    "#;
    let is_child = |_: &[String], name: &str| name == "k";
    let paths = references(
        &tokenize(text),
        &["m".to_string(), "n".to_string()],
        &is_child,
    );
    let shown: Vec<String> = paths.iter().map(|path| path.join("::")).collect();
    assert_eq!(
        shown,
        [
            "a::b",
            "a::c::D",
            "e",
            "m::f::G",
            "h::i",
            "m::n",
            "m::j",
            "m::n::k::L::new",
            "m::n::k::M"
        ]
    );
}
