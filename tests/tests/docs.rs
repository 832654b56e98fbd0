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
