//! Architecture checks: the module structure of `src/`, read as text.
//!
//! Dependencies point one way. Each top-level module (`event`, `config`, `ingest`, `correlate`,
//! `publish`, `replay`, ...) is a room with one job, and data moves forward only; a cycle
//! between two rooms (`ingest` uses `config` and `config` uses `ingest`) means neither can be
//! understood, tested or changed without the other. The cycle test names every edge of every
//! cycle with the `file:line` places that create it, so the reader knows what to cut.
//!
//! One room, one job, also at the file level: a non-test source file stays under
//! [`MAX_LINES`] lines and opens with a `//!` comment saying what it is for.
//!
//! The checks do not use the `sluice` library: a small tokenizer drops comments, strings and
//! char literals, then a scanner looks for module paths (`crate::a`, `$crate::a`, `super::a`,
//! `use crate::{a::X, b::Y}`). Test-only code (modules declared under `#[cfg(test)]`, inline
//! `#[cfg(test)]` items) may import from anywhere and is skipped. The scanner has its own unit
//! tests at the bottom of this file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Most lines a non-test source file may have (lines of inline `#[cfg(test)]` modules aside).
const MAX_LINES: usize = 600;

/// Generated tables allowed above [`MAX_LINES`], as `src/...` paths, each with a comment saying
/// what generates it. Empty today: every file above the limit is hand-written and should split.
const SIZE_ALLOWLIST: &[&str] = &[];

/// One token of Rust source: an identifier (also `$crate`, numbers), `::`, or one punctuation
/// character. Comments, strings and char literals produce no token.
#[derive(Clone, Debug)]
struct Token {
    text: String,
    line: usize,
}

fn tokenize(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < c.len() {
        let start = line;
        let push = |out: &mut Vec<Token>, text: String| out.push(Token { text, line: start });
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                match (c[i], at(i + 1)) {
                    ('/', '*') => (depth, i) = (depth + 1, i + 2),
                    ('*', '/') => (depth, i) = (depth - 1, i + 2),
                    (ch, _) => (line, i) = (line + usize::from(ch == '\n'), i + 1),
                }
                if depth == 0 {
                    break;
                }
            }
        } else if c[i] == '"' {
            i = skip_string(&c, i + 1, None, &mut line);
        } else if c[i] == '\'' {
            i = skip_char_or_lifetime(&c, i);
        } else if ident(c[i]) || (c[i] == '$' && ident(at(i + 1))) {
            let s = i;
            i += 1;
            while i < c.len() && ident(c[i]) {
                i += 1;
            }
            let word: String = c[s..i].iter().collect();
            // A literal's prefix: `b"..."`, `b'x'`, `c"..."`, `r#"..."#`, `br"..."`.
            let raw = matches!(word.as_str(), "r" | "br" | "cr")
                .then(|| raw_hashes(&c, i))
                .flatten();
            match (word.as_str(), at(i), raw) {
                (_, _, Some(h)) => i = skip_string(&c, i + h + 1, raw, &mut line),
                ("b" | "c", '"', _) => i = skip_string(&c, i + 1, None, &mut line),
                ("b", '\'', _) => i = skip_char_or_lifetime(&c, i),
                _ => push(&mut out, word),
            }
        } else if c[i] == ':' && at(i + 1) == ':' {
            push(&mut out, "::".to_string());
            i += 2;
        } else {
            line += usize::from(c[i] == '\n');
            if !c[i].is_whitespace() {
                push(&mut out, c[i].to_string());
            }
            i += 1;
        }
    }
    out
}

/// `Some(n)` if `c[i..]` is `n` hashes then `"`: the opening of a raw string after `r`.
fn raw_hashes(c: &[char], i: usize) -> Option<usize> {
    let n = c[i..].iter().take_while(|&&ch| ch == '#').count();
    (c.get(i + n) == Some(&'"')).then_some(n)
}

/// Skips a string body from `i` (just after the opening quote); returns the index after it.
/// `raw` is the number of hashes of a raw string (no escapes), `None` for a normal string.
fn skip_string(c: &[char], mut i: usize, raw: Option<usize>, line: &mut usize) -> usize {
    let hashes = raw.unwrap_or(0);
    while i < c.len() {
        match c[i] {
            '\\' if raw.is_none() => i += 1,
            '"' if c
                .get(i + 1..i + 1 + hashes)
                .is_some_and(|h| h.iter().all(|&ch| ch == '#')) =>
            {
                return i + 1 + hashes;
            }
            _ => {}
        }
        *line += usize::from(c.get(i) == Some(&'\n'));
        i += 1;
    }
    i
}

/// At a `'`: skips a char literal (`'x'`, `'\''`, `'\u{7f}'`) or just the quote of a lifetime.
fn skip_char_or_lifetime(c: &[char], i: usize) -> usize {
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        (i + 3..c.len())
            .find(|&j| c[j] == '\'')
            .map_or(c.len(), |j| j + 1)
    } else if at(i + 2) == '\'' {
        i + 3
    } else {
        i + 1
    }
}

/// Index of the bracket closing the one at `open` (all of `(`, `[`, `{` counted together).
fn matching(toks: &[Token], open: usize) -> usize {
    let mut depth = 0;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match t.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return k;
        }
    }
    toks.len() - 1
}

/// A file's tokens with `#[cfg(test)]` items removed.
struct Stripped {
    kept: Vec<Token>,
    /// `x` of every `#[cfg(test)] mod x;`: a child module file that is test code.
    test_children: Vec<String>,
    /// First and last line of every inline `#[cfg(test)] mod x { ... }`.
    test_blocks: Vec<(usize, usize)>,
}

fn strip_test_code(toks: &[Token]) -> Stripped {
    let t = |i: usize| toks.get(i).map_or("", |t| t.text.as_str());
    let mut s = Stripped {
        kept: Vec::new(),
        test_children: Vec::new(),
        test_blocks: Vec::new(),
    };
    let mut i = 0;
    while i < toks.len() {
        if (i..i + 7)
            .map(t)
            .ne(["#", "[", "cfg", "(", "test", ")", "]"])
        {
            s.kept.push(toks[i].clone());
            i += 1;
            continue;
        }
        let first_line = toks[i].line;
        let mut j = i + 7;
        // More attributes, and a visibility such as `pub(crate)`.
        loop {
            match (t(j), t(j + 1)) {
                ("#", _) | ("pub", "(") => j = matching(toks, j + 1) + 1,
                ("pub", _) => j += 1,
                _ => break,
            }
        }
        // The item ends at its first `;` or `,`, or at the `}` closing its first `{`.
        let (mut end, mut block) = (j, false);
        loop {
            match t(end) {
                "" | ";" | "," | "}" => break,
                "{" => {
                    (end, block) = (matching(toks, end), true);
                    break;
                }
                "(" | "[" => end = matching(toks, end) + 1,
                _ => end += 1,
            }
        }
        if t(j) == "mod" && t(j + 2) == ";" {
            s.test_children.push(t(j + 1).to_string());
        }
        if t(j) == "mod" && block {
            s.test_blocks.push((first_line, toks[end].line));
        }
        // An unmatched `}` closes the enclosing block, not this item: keep it.
        i = if t(end) == "}" && !block {
            end
        } else {
            end + 1
        };
    }
    s
}

/// Every module path named in the non-test code of a file of module `module` (`a::b`, `""` for
/// the crate root), resolved from the crate root up to its first named segment, with its line:
/// `super::super::x::Y` in `a::b::c` gives `a::x`; `use crate::{a::X, b::Y}` gives `a` and `b`.
fn references(module: &str, src: &str) -> Vec<(String, usize)> {
    let toks = strip_test_code(&tokenize(src)).kept;
    let t = |i: usize| toks.get(i).map_or("", |t| t.text.as_str());
    let mut out = Vec::new();
    // Inline `mod x { ... }` blocks open around the current token, with the depth inside them.
    let (mut inline, mut depth): (Vec<(&str, usize)>, usize) = (Vec::new(), 0);
    for i in 0..toks.len() {
        match t(i) {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|m| depth < m.1) {
                    inline.pop();
                }
            }
            "mod" if t(i + 2) == "{" => inline.push((t(i + 1), depth + 1)),
            _ => {}
        }
        if t(i + 1) != "::" || (i > 0 && t(i - 1) == "::") {
            continue;
        }
        let (mut base, mut j): (Vec<&str>, usize) = (Vec::new(), i + 2);
        match t(i) {
            "crate" | "$crate" => {}
            "super" => {
                base = module.split("::").filter(|s| !s.is_empty()).collect();
                base.extend(inline.iter().map(|m| m.0));
                j = i;
                while t(j) == "super" && t(j + 1) == "::" && base.pop().is_some() {
                    j += 2;
                }
            }
            _ => continue,
        }
        let names = if t(j) == "{" {
            group_items(&toks, j)
        } else {
            vec![t(j)]
        };
        for name in names {
            let mut path = base.clone();
            if name.starts_with(|c: char| c.is_alphabetic() || c == '_') && name != "self" {
                path.push(name);
            }
            if !path.is_empty() {
                out.push((path.join("::"), toks[i].line));
            }
        }
    }
    out
}

/// The first token of each top-level item of the `{ ... }` group opening at `open`.
fn group_items(toks: &[Token], open: usize) -> Vec<&str> {
    let (mut items, mut depth, mut expect) = (Vec::new(), 0, true);
    for tok in &toks[open + 1..] {
        let s = tok.text.as_str();
        if depth == 0 && expect {
            items.push(s);
            expect = false;
        }
        match s {
            "{" | "(" | "[" => depth += 1,
            "}" | ")" | "]" if depth == 0 => break,
            "}" | ")" | "]" => depth -= 1,
            "," if depth == 0 => expect = true,
            _ => {}
        }
    }
    items
}

struct SourceFile {
    /// `src/ingest/mod.rs`.
    path: String,
    /// `ingest`; empty for the crate roots `lib.rs` and `main.rs`.
    module: String,
    text: String,
    is_test: bool,
}

fn source_files() -> Vec<SourceFile> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (mut paths, mut dirs) = (Vec::new(), vec![src.clone()]);
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/") {
            let p = entry.expect("read src/").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    let mut files: Vec<SourceFile> = paths
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src/").with_extension("");
            let mut segments: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if segments.last().is_some_and(|s| s == "mod")
                || segments == ["lib"]
                || segments == ["main"]
            {
                segments.pop();
            }
            let name = segments.last().cloned().unwrap_or_default();
            SourceFile {
                path: format!("src/{}", p.strip_prefix(&src).unwrap().display()),
                module: segments.join("::"),
                text: std::fs::read_to_string(p).expect("read source file"),
                is_test: name == "tests" || name.ends_with("_tests"),
            }
        })
        .collect();
    // Modules declared `#[cfg(test)] mod x;`, and everything below them, are test code.
    let mut test_modules = BTreeSet::new();
    for f in &files {
        for child in strip_test_code(&tokenize(&f.text)).test_children {
            test_modules.insert(if f.module.is_empty() {
                child
            } else {
                format!("{}::{child}", f.module)
            });
        }
    }
    for f in &mut files {
        let under = |m: &String| f.module == *m || f.module.starts_with(&format!("{m}::"));
        f.is_test |= test_modules.iter().any(under);
    }
    files
}

fn is_root(f: &SourceFile) -> bool {
    f.path == "src/lib.rs" || f.path == "src/main.rs"
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let files = source_files();
    let top = |m: &str| m.split("::").next().unwrap_or_default().to_string();
    let modules: BTreeSet<String> = files
        .iter()
        .filter(|f| !is_root(f))
        .map(|f| top(&f.module))
        .collect();
    let mut edges = Edges::new();
    for f in files.iter().filter(|f| !is_root(f) && !f.is_test) {
        for (path, line) in references(&f.module, &f.text) {
            let (from, to) = (top(&f.module), top(&path));
            if from != to && modules.contains(&to) {
                edges
                    .entry((from, to))
                    .or_default()
                    .push(format!("{}:{line}", f.path));
            }
        }
    }
    let found = cycles(&edges);
    let mut report = String::new();
    for cycle in &found {
        report += &format!("  {} -> {}\n", cycle.join(" -> "), cycle[0]);
    }
    report += "the edges of these cycles, with the places that create them:\n";
    let on_cycle = |(from, to): &(String, String)| shortest_path(&edges, to, from).is_some();
    for ((from, to), places) in edges.iter().filter(|(edge, _)| on_cycle(edge)) {
        report += &format!("  {from} -> {to}: {} place(s)\n", places.len());
        for place in places.iter().take(3) {
            report += &format!("      {place}\n");
        }
        if places.len() > 3 {
            report += &format!("      ... and {} more\n", places.len() - 3);
        }
    }
    assert!(
        found.is_empty(),
        "{} import cycle(s) between top-level modules of src/ (the shortest through each \
         edge); dependencies must point one way, cut one edge of each:\n{report}",
        found.len()
    );
}

/// (from, to) -> the `file:line` places that create the edge.
type Edges = BTreeMap<(String, String), Vec<String>>;

/// The shortest cycle through each edge that lies on one, shortest first, each starting at its
/// smallest module. Every edge of a strongly connected component is on one of them.
fn cycles(edges: &Edges) -> Vec<Vec<&str>> {
    let mut found = BTreeSet::new();
    for (from, to) in edges.keys() {
        if let Some(mut cycle) = shortest_path(edges, to, from) {
            let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
            cycle.rotate_left(first);
            found.insert((cycle.len(), cycle));
        }
    }
    found.into_iter().map(|(_, cycle)| cycle).collect()
}

/// The modules on a shortest way `from` -> ... -> `to` along `edges`, both ends included.
fn shortest_path<'a>(edges: &'a Edges, from: &'a str, to: &str) -> Option<Vec<&'a str>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(m) = queue.pop_front() {
        if m == to {
            let mut path = vec![m];
            while let Some(&prev) = came_from.get(path[path.len() - 1]) {
                path.push(prev);
            }
            path.reverse();
            return Some(path);
        }
        for (_, next) in edges.keys().filter(|(a, _)| a == m) {
            if next != from && !came_from.contains_key(next.as_str()) {
                came_from.insert(next, m);
                queue.push_back(next);
            }
        }
    }
    None
}

#[test]
fn no_source_file_above_600_lines() {
    let mut offenders = Vec::new();
    for f in source_files() {
        if f.is_test || SIZE_ALLOWLIST.contains(&f.path.as_str()) {
            continue;
        }
        let blocks = strip_test_code(&tokenize(&f.text)).test_blocks;
        let test_lines: usize = blocks.iter().map(|(a, b)| b - a + 1).sum();
        let lines = f.text.lines().count() - test_lines;
        if lines > MAX_LINES {
            offenders.push(format!("  {}: {lines} lines (tests aside)", f.path));
        }
    }
    assert!(
        offenders.is_empty(),
        "{} source file(s) above {MAX_LINES} lines; split them by job (one room, one job):\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}

#[test]
fn every_module_file_has_a_doc_header() {
    let offenders: Vec<String> = source_files()
        .into_iter()
        .filter(|f| !f.is_test)
        .filter(|f| {
            !f.text
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_start().starts_with("//!"))
        })
        .map(|f| format!("  {}", f.path))
        .collect();
    assert!(
        offenders.is_empty(),
        "source file(s) not opening with a `//!` comment saying what the module is for:\n{}",
        offenders.join("\n")
    );
}

// ---- the scanner itself ----

fn refs(module: &str, src: &str) -> Vec<String> {
    references(module, src)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn scanner_finds_use_and_inline_paths_with_lines() {
    let src =
        "use crate::event::Event;\n\nfn f() -> crate::config::Config { crate::time::now() }\n";
    let got = references("ingest::router", src);
    assert_eq!(
        got,
        [
            ("event".into(), 1),
            ("config".into(), 3),
            ("time".into(), 3)
        ]
    );
}

#[test]
fn scanner_ignores_crate_paths_in_strings() {
    // A quote char literal must not open a string that swallows the `use` after it.
    let src = r#"let s = "crate::event::X \" crate::config"; let c = '"'; use crate::time;"#;
    assert_eq!(refs("ingest", src), ["time"]);
    let src = "let b = b\"crate::event\"; let q = b'\"'; let e = '\\''; use crate::time;";
    assert_eq!(refs("ingest", src), ["time"]);
}

#[test]
fn scanner_ignores_comments() {
    let src = "//! see crate::event\n/// and crate::config\n// crate::replay\n/* a /* nested */ crate::x */ fn f() {}";
    assert!(refs("ingest", src).is_empty());
}

#[test]
fn scanner_ignores_raw_strings() {
    let src =
        "let s = r#\"crate::event \"quoted\" \\\"#; let t = r\"crate::config\\\"; use crate::time;";
    assert_eq!(refs("ingest", src), ["time"]);
}

#[test]
fn scanner_counts_each_item_of_a_brace_group() {
    let src =
        "use crate::{event::{Event, Field}, config::Config, self, time};\nuse super::{a, b::C};";
    assert_eq!(
        refs("ingest::router", src),
        ["event", "config", "time", "ingest::a", "ingest::b"]
    );
}

#[test]
fn scanner_resolves_super_against_the_module_path() {
    let src = "use super::fields; let t: super::super::endpoint::Target; use super::super::super::event::E;";
    let got = refs("ingest::integrations::opsgenie", src);
    assert_eq!(
        got,
        ["ingest::integrations::fields", "ingest::endpoint", "event"]
    );
    // In a top-level file, `super` is the crate root; inside an inline `mod`, one level more.
    assert_eq!(refs("event", "use super::ingest::X;"), ["ingest"]);
    assert_eq!(
        refs(
            "config",
            "pub mod defaults { use super::X; } use super::time;"
        ),
        ["config::X", "time"]
    );
}

#[test]
fn scanner_follows_dollar_crate_and_macro_invocations() {
    let src = "macro_rules! m { () => { $crate::event::Event::new() }; }\ncrate::ingest::integrations::registry!(m);";
    assert_eq!(refs("publish", src), ["event", "ingest"]);
}

#[test]
fn scanner_skips_cfg_test_code() {
    let src = "use crate::event;\n#[cfg(test)]\nmod tests {\n    use crate::config;\n    fn f() { let _ = \"}\"; }\n}\n\
               #[cfg(test)]\n#[allow(dead_code)]\npub(crate) mod golden;\n#[cfg(test)] use crate::replay;\nuse crate::time;";
    assert_eq!(refs("ingest", src), ["event", "time"]);
    let s = strip_test_code(&tokenize(src));
    assert_eq!(s.test_children, ["golden"]);
    assert_eq!(s.test_blocks, [(2, 6)]);
}

#[test]
fn scanner_keeps_lifetimes_and_pub_crate_apart_from_paths() {
    let src = "pub(crate) fn f<'a>(x: &'a str) -> &'a str { x }\npub(super) use crate::event::E;";
    let got = references("ingest::router", src);
    assert_eq!(got, [("event".into(), 2)]);
}

#[test]
fn cycles_are_found_shortest_first_and_only_where_they_exist() {
    let mut edges = Edges::new();
    for (from, to) in [
        ("a", "b"),
        ("b", "a"),
        ("b", "c"),
        ("c", "d"),
        ("d", "b"),
        ("d", "e"),
    ] {
        edges.insert((from.into(), to.into()), vec![]);
    }
    assert_eq!(cycles(&edges), [vec!["a", "b"], vec!["b", "c", "d"]]);
    edges.remove(&("b".to_string(), "a".to_string()));
    edges.remove(&("d".to_string(), "b".to_string()));
    assert!(cycles(&edges).is_empty());
}
