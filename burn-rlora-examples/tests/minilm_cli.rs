//! The `minilm-multitask` trainer's command line: clear errors without the
//! data, and (when `data/` has been fetched) a tiny full run that writes the report.

mod common;

use std::process::{Command, Output};

fn run(args: &[&str], data_env: Option<&std::path::Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minilm-multitask"));
    cmd.args(args);
    if let Some(dir) = data_env {
        cmd.env("BURN_RLORA_DATA", dir);
    }
    cmd.output().expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "burn-rlora-minilm-cli-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn unknown_method_is_a_clear_error() {
    let out = run(
        &[
            "--methods",
            "probe,bogus",
            "--out",
            temp("m").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("unknown method \"bogus\"") && err.contains("probe") && err.contains("rlora"),
        "{err}"
    );
}

#[test]
fn missing_data_says_to_run_the_fetch_script() {
    let empty = temp("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out_dir = temp("out");
    // Through the flag, and through the environment variable.
    for out in [
        run(
            &[
                "--data-dir",
                empty.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
            ],
            None,
        ),
        run(&["--out", out_dir.to_str().unwrap()], Some(&empty)),
    ] {
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("fetch-data.sh") && err.contains(empty.to_str().unwrap()),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&empty).ok();
}

#[test]
fn bad_numbers_are_clear_errors() {
    for (args, needle) in [
        (vec!["--epochs", "0"], "at least 1"),
        (vec!["--train-per-task", "1"], "--train-per-task"),
        (vec!["--sampling", "hot"], "--sampling"),
        (vec!["--backend", "tpu"], "unknown backend 'tpu'"),
    ] {
        let mut all = args.clone();
        let out_dir = temp("n");
        all.extend(["--out", out_dir.to_str().unwrap()]);
        let out = run(&all, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_tiny_real_run_writes_the_report() {
    let Some(data) = common::fetched_data_or_skip("a_tiny_real_run_writes_the_report") else {
        return;
    };
    let dir = temp("run");
    let out = run(
        &[
            "--methods",
            "probe,rlora",
            "--seeds",
            "1",
            "--train-per-task",
            "6",
            "--test-per-task",
            "3",
            "--max-len",
            "12",
            "--batch-size",
            "8",
            "--plain",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(
        table.contains("| probe | 0 |") && table.contains("| rlora | 4 |"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        json["tasks"],
        serde_json::json!([
            "bbc_news",
            "rotten_tomatoes",
            "tweet_sentiment",
            "spam_assassin"
        ])
    );
    for run in runs {
        let acc = run["mean_accuracy"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&acc), "accuracy {acc}");
    }
    // 6 blocks x 2 feed-forward projections carry heads in R-LoRA, none in the probe.
    assert_eq!(runs[0]["head_similarity"].as_array().unwrap().len(), 0);
    assert_eq!(runs[1]["head_similarity"].as_array().unwrap().len(), 12);
    for plot in [
        "loss.svg",
        "head_similarity.svg",
        "head_similarity_layers.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.len() > 1000,
            "{plot} is not a drawing"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
