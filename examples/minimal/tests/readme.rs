//! The README's "Embed it" section and the app cannot drift apart: its wiring block is
//! the block between `// embed-it:start` and `// embed-it:end` in `src/wiring.rs`, line
//! for line; each line of its `main` block is a line of `src/main.rs`; and the line count
//! it states is the count of those lines (at most 40).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fenced block that follows the HTML comment `marker` in `text`.
fn fenced_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"));
    let mut lines = text[at..].lines().skip_while(|l| !l.starts_with("```"));
    lines.next().expect("an opening fence");
    lines.take_while(|l| !l.starts_with("```")).collect()
}

/// Lines that are code: not blank, not only a comment.
fn code_lines(lines: &[&str]) -> usize {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
        .count()
}

#[test]
fn the_readme_shows_the_wiring_verbatim_and_counts_it() {
    let readme = read("../../README.md");
    let wiring_rs = read("src/wiring.rs");
    let main_rs = read("src/main.rs");

    let shown = fenced_after(&readme, "<!-- embed-it:wiring -->");
    let source: Vec<&str> = wiring_rs
        .lines()
        .skip_while(|l| l.trim() != "// embed-it:start")
        .skip(1)
        .take_while(|l| l.trim() != "// embed-it:end")
        .collect();
    assert!(source.len() > 10, "src/wiring.rs has its markers");
    assert_eq!(
        shown.join("\n"),
        source.join("\n"),
        "README.md's wiring block differs from src/wiring.rs (copy it over)"
    );

    let main_shown = fenced_after(&readme, "<!-- embed-it:main -->");
    let main_lines: Vec<&str> = main_rs.lines().map(str::trim).collect();
    for line in main_shown.iter().filter(|l| !l.trim().is_empty()) {
        assert!(
            main_lines.contains(&line.trim()),
            "README.md shows `{line}`, which src/main.rs does not have"
        );
    }

    let count = code_lines(&shown) + code_lines(&main_shown);
    assert!(
        count <= 40,
        "{count} lines of SDK wiring: the promise is at most 40"
    );
    let stated = format!("**{count} lines**");
    assert!(
        readme.contains(&stated),
        "README.md should state the wiring's line count as {stated}"
    );
}
