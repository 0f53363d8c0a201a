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

    assert!(table.contains("| tokens/s |"), "{table}");
    let record = |dir: &std::path::Path| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join("result.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["run"].clone()
    };
    let trained = record(&run_dir);
    assert!(trained["train_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(trained["train_loss"].as_array().unwrap().len(), 1);

    let again = run(&[&TINY[..], &["--out", out, "--resume"]].concat());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    assert!(stdout.contains("finished before, read back"), "{stdout}");

    // Stopped after its last checkpoint, before its result was written: the
    // resumed run trains nothing, so it reports no throughput, and keeps
    // the loss curve of the epoch it trained before.
    std::fs::remove_file(run_dir.join("result.json")).unwrap();
    let resumed = run(&[&TINY[..], &["--out", out, "--resume"]].concat());
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(resumed.status.success(), "{stdout}");
    assert!(stdout.contains("resuming after epoch 1"), "{stdout}");
    assert!(stdout.contains("no epoch left to train"), "{stdout}");
    let finished = record(&run_dir);
    assert_eq!(finished["resumed_after_epoch"], 1);
    assert_eq!(finished["train_tokens_per_second"], serde_json::Value::Null);
    assert_eq!(finished["train_loss"], trained["train_loss"]);
    assert_eq!(finished["valid_loss"], trained["valid_loss"]);
    let table = std::fs::read_to_string(out_dir.join("table.md")).unwrap();
    assert!(
        table.contains("1 of the runs resumed from a checkpoint"),
        "{table}"
    );
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
