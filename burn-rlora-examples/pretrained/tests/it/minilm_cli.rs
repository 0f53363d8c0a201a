//! The `minilm-multitask` trainer's command line: clear errors without the
//! data, and (when `data/` has been fetched) a tiny full run that writes the report.

use crate::common;

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
fn bad_numbers_are_usage_errors_naming_the_option() {
    for (args, option, needle) in [
        (vec!["--epochs", "0"], "--epochs", "0"),
        (vec!["--train-per-task", "1"], "--train-per-task", "2.."),
        (vec!["--test-per-task", "0"], "--test-per-task", "1.."),
        (
            vec!["--test-fraction", "1"],
            "--test-fraction",
            "between 0 and 1",
        ),
        (vec!["--max-len", "100000"], "--max-len", "3..=512"),
        (vec!["--sampling", "hot"], "--sampling", "temperature"),
        (vec!["--lr", "1e400"], "--lr", "finite"),
        (vec!["--alpha", "0"], "--alpha", "greater than 0"),
        (vec!["--dropout=-0.1"], "--dropout", "[0, 1)"),
        (vec!["--rank", "0"], "--rank", "1..=384"),
        (vec!["--heads", "1000"], "--heads", "1..=64"),
        (
            vec!["--seed", "18446744073709551615", "--seeds", "3"],
            "--seed",
            "past the largest seed",
        ),
    ] {
        let mut all = args.clone();
        let out_dir = temp("n");
        all.extend(["--out", out_dir.to_str().unwrap()]);
        let out = run(&all, None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(option) && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    let out = run(
        &["--backend", "tpu", "--out", temp("b").to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown backend 'tpu'"),
        "{}",
        stderr(&out)
    );
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

/// The adapter tensors of a run, by name.
fn adapter_tensors(run: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(run.join("adapter/adapter_model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    tensors.sort();
    tensors
}

#[test]
fn a_killed_real_run_resumes_to_the_same_adapter() {
    let Some(data) = common::fetched_data_or_skip("a_killed_real_run_resumes_to_the_same_adapter")
    else {
        return;
    };
    let args = |dir: &std::path::Path| -> Vec<String> {
        [
            "--methods",
            "rlora",
            "--seeds",
            "1",
            "--epochs",
            "3",
            "--train-per-task",
            "12",
            "--test-per-task",
            "2",
            "--max-len",
            "12",
            "--batch-size",
            "4",
            "--plain",
            "--resume",
            "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            data.display().to_string(),
            "--out".into(),
            dir.display().to_string(),
        ])
        .collect()
    };
    let straight = temp("straight");
    let a = args(&straight);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = adapter_tensors(&straight.join("runs/rlora-seed0"));

    let killed = temp("killed");
    let b = args(&killed);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let checkpoints = killed.join("runs/rlora-seed0/checkpoint");
    let mut child = Command::new(env!("CARGO_BIN_EXE_minilm-multitask"))
        .args(&b)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let saved = |n: &str| checkpoints.join(format!("{n}-1.mpk")).exists();
    while !(saved("model") && saved("optim") && saved("scheduler")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        assert!(start.elapsed().as_secs() < 900, "no checkpoint of epoch 1");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = run(&b, None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout.contains("resuming after epoch"), "{stdout}");
    assert_eq!(adapter_tensors(&killed.join("runs/rlora-seed0")), expected);
    std::fs::remove_dir_all(&straight).ok();
    std::fs::remove_dir_all(&killed).ok();
}
