//! The repository README shows the crate README's program, which the crate
//! compiles as a doctest: the two must not drift apart.

use std::path::Path;

/// The first fenced Rust block of `markdown`, fences included.
fn first_rust_block(markdown: &str) -> &str {
    let start = markdown.find("```rust").expect("a Rust block");
    let end = start + markdown[start..].find("\n```\n").expect("a closed block") + 5;
    &markdown[start..end]
}

#[test]
fn the_repository_readme_shows_the_compiled_program() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crate_readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let repo_readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let program = first_rust_block(&crate_readme);
    assert!(program.contains("Llm::<Flex>::load"), "{program}");
    assert!(
        repo_readme.contains(program),
        "the README's \"Bring your own model\" program differs from burn-rlora-llm/README.md's"
    );
}
