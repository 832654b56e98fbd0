//! The code the documentation shows is the code that is built and booted:
//! every Rust block in `docs/*.md` preceded by `<!-- from: PATH -->` must
//! appear in that file (line by line, indentation aside), so it cannot drift
//! from what the tests compile and run.
#![deny(unsafe_code)]

use std::fs;

use parapet_tests::workspace_root;

/// The trimmed, non-empty lines of `text`.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// `(source path, code)` of every marked block of a Markdown file.
fn marked_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- from: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "a code block must follow `{line}`"
        );
        let code: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        blocks.push((path.to_string(), code.join("\n")));
    }
    blocks
}

#[test]
fn marked_code_blocks_are_taken_from_their_sources() {
    let root = workspace_root();
    let mut checked = 0;
    for entry in fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let markdown = fs::read_to_string(&path).unwrap();
        for (source, code) in marked_blocks(&markdown) {
            let text = fs::read_to_string(root.join(&source))
                .unwrap_or_else(|e| panic!("{}: {source}: {e}", path.display()));
            let want = lines(&code);
            let have = lines(&text);
            let found = have.windows(want.len()).any(|w| w == want.as_slice());
            assert!(
                found,
                "{}: the block marked `from: {source}` is not in that file:\n{code}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "docs/PORTING.md shows code from the examples");
}

#[test]
fn a_block_that_is_not_in_its_source_is_found() {
    let md = "<!-- from: x.rs -->\n```rust\nfn a() {}\n```\n";
    assert_eq!(
        marked_blocks(md),
        [("x.rs".to_string(), "fn a() {}".to_string())]
    );
    let have = lines("fn b() {}\nfn a() {}\n");
    assert!(have.windows(1).any(|w| w == lines("fn a() {}").as_slice()));
    assert!(!have.windows(1).any(|w| w == lines("fn c() {}").as_slice()));
}

/// `(name, number, row)` of every row of the Markdown tables in `markdown`
/// whose first cell is a backticked name in `names`: the first integer
/// (thousands separators allowed) of the cell in the column whose header
/// mentions one of `columns`.
fn table_figures(markdown: &str, names: &[&str], columns: &[&str]) -> Vec<(String, u64, String)> {
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut column: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        if !line.trim_start().starts_with('|') {
            column = None;
            continue;
        }
        let is_header = lines.get(i + 1).is_some_and(|n| {
            n.trim_start().starts_with("| ---") || n.trim_start().starts_with("|---")
        });
        if is_header {
            column = cells(line)
                .iter()
                .position(|c| columns.iter().any(|want| c.contains(want)));
            continue;
        }
        let (Some(col), row) = (column, cells(line)) else {
            continue;
        };
        let Some(name) = row[0].strip_prefix('`').and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        if !names.contains(&name) {
            continue;
        }
        let cell = row.get(col).map(String::as_str).unwrap_or("");
        let digits: String = cell
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(|c| *c != ',')
            .collect();
        let n = digits
            .parse()
            .unwrap_or_else(|_| panic!("no number in the `{}` cell of {line}", columns[0]));
        out.push((name.to_owned(), n, line.to_string()));
    }
    out
}

#[test]
fn instruction_figures_in_the_docs_are_the_baseline() {
    let root = workspace_root();
    let baseline: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("tests/bench-baseline.json")).unwrap())
            .unwrap();
    let figures = baseline["figures"].as_object().unwrap();
    let names: Vec<&str> = figures.keys().map(String::as_str).collect();
    for (doc, columns) in [
        ("README.md", ["Parapet"]),
        ("docs/ipc.md", ["instructions"]),
    ] {
        let text = fs::read_to_string(root.join(doc)).unwrap();
        let found = table_figures(&text, &names, &columns);
        for (name, n, row) in &found {
            let want = figures[name].as_u64().unwrap();
            assert_eq!(
                *n, want,
                "{doc}: `{name}` shows {n}, the baseline (tests/bench-baseline.json) has {want}; \
                 change the row:\n{row}"
            );
        }
        for name in &names {
            assert!(
                found.iter().any(|(n, _, _)| n == name),
                "{doc}: no table row for `{name}` (a figure of tests/bench-baseline.json)"
            );
        }
    }
}

#[test]
fn table_figures_are_read_from_their_column() {
    let md = "text\n\
              | name | path | Parapet | Xen |\n\
              | --- | --- | --- | --- |\n\
              | `a` | x 5 | 1,234 instructions (target 400: missed) | 5,881 |\n\
              | `b` | y | 30 instructions | 417 |\n\
              | `other` | z | 7 | 8 |\n\
              \n\
              | `a` | not a table row after a break | 99 | 1 |\n";
    let got = table_figures(md, &["a", "b"], &["Parapet"]);
    let got: Vec<(&str, u64)> = got.iter().map(|(n, v, _)| (n.as_str(), *v)).collect();
    assert_eq!(got, [("a", 1234), ("b", 30)]);
}
