//! `smollm-multitask` end to end on the real data, as small as it gets: one
//! training step of R-LoRA through the Learner, the scoring by likelihood
//! and by generation, the report, and `--resume` reading the finished run
//! back; plus its errors.
//!
//! Needs the fetched data (`bash scripts/fetch-data.sh`); skipped without it
//! unless `BURN_RLORA_REQUIRE_DATA` is set.

#![cfg(feature = "flex")]

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smollm-multitask"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-rlora-smollm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const TINY: [&str; 12] = [
    "--plain",
    "--methods",
    "rlora",
    "--seeds",
    "1",
    "--train-per-task",
    "2",
    "--test-per-task",
    "1",
    "--max-new-tokens",
    "4",
    "--samples=1",
];

#[test]
fn one_step_trains_scores_reports_and_resumes() {
    if common::fetched_data_or_skip("smollm-multitask").is_none()
        || common::smollm2_or_skip("smollm-multitask").is_none()
    {
        return;
    }
    let out_dir = temp("tiny");
    let out = out_dir.to_str().unwrap();
    let first = run(&[&TINY[..], &["--out", out]].concat());
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stdout}\n{stderr}");
    // Five tasks of one training example each (the other validates): one step of 5 rows.
    assert!(stdout.contains("epoch 1/1 train"), "{stdout}");
    let table = std::fs::read_to_string(out_dir.join("table.md")).unwrap();
    for column in [
        "bbc_news:score",
        "spam_assassin:gen",
        "bbc_headline:ROUGE-L",
        "bbc_headline:chrF",
    ] {
        assert!(table.contains(column), "{column} missing from {table}");
    }
    let run_dir = out_dir.join("runs/rlora-seed0");
    let extras: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("extras.json")).unwrap())
            .unwrap();
    let columns = extras["scores"]["columns"].as_array().unwrap();
    assert_eq!(columns.len(), 4 * 2 + 3);
    for c in columns {
        let v = c[1].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&v), "{c}");
    }
    assert_eq!(extras["scores"]["samples"].as_array().unwrap().len(), 5);
    assert!(run_dir.join("adapter/adapter_model.safetensors").is_file());
    let samples = std::fs::read_to_string(out_dir.join("samples.md")).unwrap();
    assert!(samples.contains("- rlora: `"), "{samples}");

    let again = run(&[&TINY[..], &["--out", out, "--resume"]].concat());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    assert!(stdout.contains("finished before, read back"), "{stdout}");
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn bad_options_are_errors_without_a_panic() {
    let out_dir = temp("bad");
    let out = out_dir.to_str().unwrap();
    for args in [
        vec!["--methods", "rlora,bogus", "--out", out],
        vec!["--max-len", "8", "--out", out],
        vec!["--train-per-task", "1", "--out", out],
        vec!["--model", "/nonexistent/model.gguf", "--out", out],
    ] {
        let result = run(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
