//! Every Rust block of the repository README is compiled by `cargo test`:
//! the package `burn-rlora-pretrained`, which depends on every crate the
//! blocks use, includes the README as doctests (`#[cfg(doctest)]`), and no
//! block opts out with `ignore`. Blocks that need fetched data are
//! `no_run` (compiled, not run).

use std::path::Path;

/// The file that includes the README as doctests, and how it does.
const DOCTEST_HOST: &str = "../burn-rlora-examples/pretrained/src/lib.rs";
const INCLUDE: &str = "#[doc = include_str!(\"../../../README.md\")]";

/// The info strings of the README's fenced Rust blocks, with their lines.
fn rust_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open = false;
    for (i, line) in markdown.lines().enumerate() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            if open {
                open = false;
                continue;
            }
            open = true;
            let info = info.trim();
            let rust = info
                .split(',')
                .any(|w| matches!(w.trim(), "rust" | "no_run" | "ignore" | "compile_fail"));
            if rust {
                out.push((i + 1, info.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_rust_block_of_the_readme_is_compiled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let blocks = rust_blocks(&readme);
    assert!(blocks.len() >= 7, "{blocks:?}");
    for (line, info) in &blocks {
        assert!(
            info == "rust" || info == "rust,no_run",
            "README.md line {line}: a Rust block marked `{info}` is not compiled by `cargo \
             test`; make it compile (hidden `# ` lines for setup) and mark it `rust` or \
             `rust,no_run`"
        );
    }
    let host = std::fs::read_to_string(root.join(DOCTEST_HOST)).unwrap();
    let at = host.find(INCLUDE).unwrap_or_else(|| {
        panic!("{DOCTEST_HOST} does not include the README as doctests ({INCLUDE})")
    });
    // Gated, so that nothing outside the package is read but by doctests.
    let before = &host[host[..at].rfind("\n\n").unwrap_or(0)..at];
    assert!(
        before.contains("#[cfg(doctest)]"),
        "{DOCTEST_HOST}: the README's doctests must be gated by #[cfg(doctest)]"
    );
}
