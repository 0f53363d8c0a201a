//! The `rlora-adapter` binary: output on the reference fixture, and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlora-adapter"))
        .args(args)
        .output()
        .expect("run rlora-adapter")
}

fn fixture(sub: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../burn-rlora/tests/fixtures/reference")
        .join(sub)
        .display()
        .to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn inspect_prints_config_shapes_counts_and_similarity() {
    let out = cli(&["inspect", &fixture("trained")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("\"lora_nums\": 3"), "{stdout}");
    assert!(
        stdout.contains("base_model.model.model.layers.0.mlp.up_proj: 8 -> 12, trainable 112"),
        "{stdout}"
    );
    assert!(stdout.contains("3 x [12, 2]"), "{stdout}");
    assert!(
        stdout.contains("head cosine similarity: mean pairwise"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 modules, 220 trainable parameters"),
        "{stdout}"
    );
}

#[test]
fn convert_writes_an_adapter_that_inspects() {
    let dir = std::env::temp_dir().join(format!("rlora-cli-convert-{}", std::process::id()));
    let out = cli(&[
        "convert",
        "--input",
        &fixture("trained"),
        "--output",
        &dir.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli(&["inspect", &dir.display().to_string()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("burn-rlora adapter") && stdout.contains("\"burn_rlora_format\": 1"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let out = cli(&["inspect", "/no/such/adapter"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/no/such/adapter"),
        "{}",
        text(&out.stderr)
    );

    // The fixture has a softmax router: merging it is refused with the reason.
    let base =
        std::env::temp_dir().join(format!("rlora-cli-base-{}.safetensors", std::process::id()));
    std::fs::write(&base, b"not a safetensors file").unwrap();
    let out = cli(&[
        "merge",
        &fixture("trained"),
        "--base",
        &base.display().to_string(),
        "--output",
        "/tmp/unused",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("softmax router") && stderr.contains("down_proj"),
        "{stderr}"
    );
    std::fs::remove_file(&base).unwrap();

    let out = cli(&["merge"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
}
