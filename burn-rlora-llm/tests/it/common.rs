//! Shared by the tests that need a fetched model file.

use std::io::Write;
use std::path::PathBuf;

/// The data directory: `$BURN_RLORA_DATA` if set, else `data/` at the
/// repository root (where `scripts/fetch-data.sh` writes).
pub fn data_dir() -> PathBuf {
    std::env::var_os("BURN_RLORA_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data"))
}

/// The model file `relative` (under the data directory) when
/// `scripts/fetch-data.sh` has fetched it; otherwise `None` after printing
/// why `test` is skipped. With `BURN_RLORA_REQUIRE_DATA` set (as `.ci/run`
/// does after fetching), a missing file fails the test instead.
pub fn model_or_skip(test: &str, relative: &str) -> Option<PathBuf> {
    let path = data_dir().join(relative);
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
    // Straight to stderr, so that the harness does not capture the skip.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {problem}");
    None
}

/// Gemma 3 270M (Q4_K_M), under the data directory.
pub const GEMMA3: &str = "gemma3/gemma-3-270m-q4_k_m.gguf";

/// SmolLM2-135M-Instruct (Q4_1), as [`model_or_skip`].
pub fn smollm2_or_skip(test: &str) -> Option<PathBuf> {
    model_or_skip(test, "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The log-sum-exp of a row of logits, in f64.
pub fn logsumexp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
}
