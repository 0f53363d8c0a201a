//! Shared by the tests that need the fetched data.

use std::io::Write;
use std::path::PathBuf;

use burn_rlora_pretrained::datasets::default_data_dir;
use burn_rlora_pretrained::minilm::MiniLmPaths;

/// The data directory when `scripts/fetch-data.sh` has filled it; otherwise
/// `None` after printing why `test` is skipped. With `BURN_RLORA_REQUIRE_DATA`
/// set (as `.ci/run` does after fetching), missing data fails the test instead.
pub fn fetched_data_or_skip(test: &str) -> Option<PathBuf> {
    let dir = default_data_dir();
    let problem = match MiniLmPaths::in_data_dir(&dir) {
        Err(e) => e.to_string(),
        Ok(_) if !dir.join("tasks").is_dir() => format!(
            "{} not found: run `bash scripts/fetch-data.sh`",
            dir.join("tasks").display()
        ),
        Ok(_) => return Some(dir),
    };
    if std::env::var_os("BURN_RLORA_REQUIRE_DATA").is_some() {
        panic!("{test}: BURN_RLORA_REQUIRE_DATA is set but the data is missing: {problem}");
    }
    // Written to stderr directly, not through `eprintln!`, so that the test
    // harness does not capture it: the skip shows in a plain `cargo test`.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {problem}");
    None
}

/// The SmolLM2 GGUF file when `scripts/fetch-data.sh` has fetched it;
/// otherwise as [`fetched_data_or_skip`].
pub fn smollm2_or_skip(test: &str) -> Option<PathBuf> {
    model_or_skip(
        test,
        burn_rlora_pretrained::smollm::smollm2_path(&default_data_dir()),
    )
}

/// The Gemma 3 270M GGUF file when `scripts/fetch-data.sh` has fetched it;
/// otherwise as [`fetched_data_or_skip`].
pub fn gemma3_or_skip(test: &str) -> Option<PathBuf> {
    model_or_skip(
        test,
        default_data_dir().join("gemma3/gemma-3-270m-q4_k_m.gguf"),
    )
}

/// `path` if it is a file; otherwise as [`fetched_data_or_skip`].
fn model_or_skip(test: &str, path: PathBuf) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path);
    }
    let problem = format!(
        "{} not found: run `bash scripts/fetch-data.sh`",
        path.display()
    );
    if std::env::var_os("BURN_RLORA_REQUIRE_DATA").is_some() {
        panic!("{test}: BURN_RLORA_REQUIRE_DATA is set but the data is missing: {problem}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {problem}");
    None
}
