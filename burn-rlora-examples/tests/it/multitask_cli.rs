//! The `multitask` trainer's command line: clear errors, and a tiny full run.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_multitask"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `options`, then `--out dir`, then `extra`, as owned arguments.
fn with_out(options: &[&str], dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    options
        .iter()
        .map(|s| s.to_string())
        .chain(["--out".to_string(), dir.display().to_string()])
        .chain(extra.iter().map(|s| s.to_string()))
        .collect()
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-rlora-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn unknown_method_is_a_clear_error() {
    let out = run(&[
        "--methods",
        "lora,bogus",
        "--out",
        temp("m").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("unknown method 'bogus'") && err.contains("hydralora-mt"),
        "{err}"
    );
}

#[test]
fn unknown_or_missing_backend_is_a_clear_error() {
    let out = run(&["--backend", "tpu", "--out", temp("b1").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown backend 'tpu'"),
        "{}",
        stderr(&out)
    );
    #[cfg(not(feature = "cuda"))]
    {
        let out = run(&["--backend", "cuda", "--out", temp("b2").to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("not compiled") && err.contains("--features cuda"),
            "{err}"
        );
    }
}

#[test]
fn an_unwritable_output_directory_is_a_clear_error() {
    let dir = temp("o");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = run(&["--out", file.join("report").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot create output directory"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_numbers_are_usage_errors_naming_the_option() {
    for (args, option, needle) in [
        (vec!["--epochs", "0"], "--epochs", "0"),
        (vec!["--sampling", "hot"], "--sampling", "temperature"),
        (vec!["--sampling", "1e-300"], "--sampling", "0.1"),
        (vec!["--rank", "0"], "--rank", "1..=64"),
        (vec!["--rank", "65"], "--rank", "1..=64"),
        (vec!["--heads", "0"], "--heads", "1..=64"),
        (vec!["--dropout", "1.5"], "--dropout", "[0, 1)"),
        (vec!["--lr", "0"], "--lr", "greater than 0"),
        (vec!["--lr", "nan"], "--lr", "finite"),
        (vec!["--lr=-1e-3"], "--lr", "greater than 0"),
        (vec!["--alpha", "inf"], "--alpha", "finite"),
        (vec!["--balance=-1"], "--balance", "0 or more"),
        (vec!["--data-scale", "1e30"], "--data-scale", "at most 100"),
        (vec!["--data-scale", "0"], "--data-scale", "greater than 0"),
        (vec!["--batch-size", "0"], "--batch-size", "0"),
        (vec!["--devices", "0"], "--devices", "0"),
        (vec!["--seeds", "0"], "--seeds", "0"),
        (
            vec!["--seed", "18446744073709551615", "--seeds", "2"],
            "--seed",
            "past the largest seed",
        ),
    ] {
        let mut all = args.clone();
        let out_dir = temp("n");
        all.extend(["--out", out_dir.to_str().unwrap()]);
        let out = run(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(option) && err.contains(needle),
            "{args:?}: {err}"
        );
        assert!(!out_dir.exists(), "{args:?} created {}", out_dir.display());
    }
}

#[test]
fn a_diverging_run_exits_non_zero_naming_the_iteration_and_saves_no_adapter() {
    let dir = temp("diverge");
    let out = run(&[
        "--methods",
        "rlora",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--lr",
        "1e30",
        "--data-scale",
        "0.02",
        "--plain",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("training diverged: non-finite")
            && err.contains("at epoch 1, iteration ")
            && err.contains("no adapter was saved")
            && err.contains("no epoch completed"),
        "{err}"
    );
    let run_dir = dir.join("runs/rlora-seed0");
    assert!(!run_dir.join("adapter").exists(), "an adapter was saved");
    assert!(!run_dir.join("result.json").exists());
    assert!(!dir.join("table.md").exists(), "a report of a diverged run");
    std::fs::remove_dir_all(&dir).ok();
}

/// The tensors of a saved adapter, by name.
fn adapter_tensors(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(dir.join("adapter/adapter_model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    tensors.sort();
    tensors
}

/// The `run` record of `<dir>/runs/rlora-seed3/result.json`.
fn run_record(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("runs/rlora-seed3/result.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["run"].clone()
}

/// Whether all three checkpoint files of `epoch` are there (each is written atomically).
fn epoch_saved(checkpoints: &std::path::Path, epoch: usize) -> bool {
    ["model", "optim", "scheduler"]
        .iter()
        .all(|n| checkpoints.join(format!("{n}-{epoch}.mpk")).exists())
}

/// Start `args`, wait until `ready` holds (polling), then SIGKILL it.
fn kill_when(args: &[&str], ready: impl Fn() -> bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_multitask"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    let start = std::time::Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed");
        }
        assert!(start.elapsed().as_secs() < 600, "the run never got there");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

#[test]
fn a_killed_run_resumes_to_the_same_adapter_bit_for_bit() {
    let args = |dir: &std::path::Path| -> Vec<String> {
        [
            "--methods",
            "rlora",
            "--seeds",
            "1",
            "--seed",
            "3",
            "--epochs",
            "3",
            "--data-scale",
            "0.1",
            "--batch-size",
            "16",
            "--plain",
            "--resume",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.display().to_string()])
        .collect()
    };
    let straight = temp("straight");
    let a = args(&straight);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = adapter_tensors(&straight.join("runs/rlora-seed3"));

    // Killed in epoch 2, after epoch 1's checkpoint is complete.
    let killed = temp("killed");
    let b = args(&killed);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let checkpoints = killed.join("runs/rlora-seed3/checkpoint");
    kill_when(&b, || epoch_saved(&checkpoints, 1));
    assert!(
        !checkpoints.join("model-2.mpk").exists(),
        "killed too late: epoch 2 was done"
    );
    let out = run(&b);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout.contains("resuming after epoch 1"), "{stdout}");
    assert_eq!(
        adapter_tensors(&killed.join("runs/rlora-seed3")),
        expected,
        "the resumed run ended on other weights"
    );
    // Its report has the whole run's loss curves and head-similarity trace,
    // and says it resumed.
    let (straight_run, killed_run) = (run_record(&straight), run_record(&killed));
    assert!(straight_run["similarity_trace"].as_array().unwrap().len() > 3);
    let epoch_log = straight.join("runs/rlora-seed3/train/epoch-1/Loss.log");
    let per_epoch = std::fs::read_to_string(epoch_log).unwrap().lines().count();
    assert!(per_epoch > 0);
    assert_eq!(
        straight_run["train_loss"].as_array().unwrap().len(),
        3 * per_epoch
    );
    assert_eq!(straight_run["valid_loss"].as_array().unwrap().len(), 3);
    for curve in ["train_loss", "valid_loss", "similarity_trace"] {
        assert_eq!(killed_run[curve], straight_run[curve], "{curve}");
    }
    assert_eq!(straight_run["resumed_after_epoch"], serde_json::Value::Null);
    assert_eq!(killed_run["resumed_after_epoch"], 1);
    let table = std::fs::read_to_string(killed.join("table.md")).unwrap();
    assert!(
        table.contains("1 of the runs resumed from a checkpoint"),
        "{table}"
    );
    assert!(!std::fs::read_to_string(straight.join("table.md"))
        .unwrap()
        .contains("resumed"));

    // Killed in epoch 3 with epoch 2's model file then truncated: epoch 2 is
    // skipped, epoch 1 resumed from, and the weights are still the same.
    let damaged = temp("damaged");
    let c = args(&damaged);
    let c: Vec<&str> = c.iter().map(String::as_str).collect();
    let checkpoints = damaged.join("runs/rlora-seed3/checkpoint");
    kill_when(&c, || epoch_saved(&checkpoints, 2));
    assert!(
        !checkpoints.join("model-3.mpk").exists(),
        "killed too late: epoch 3 was done"
    );
    let model2 = checkpoints.join("model-2.mpk");
    let bytes = std::fs::read(&model2).unwrap();
    std::fs::write(&model2, &bytes[..bytes.len() / 3]).unwrap();
    let out = run(&c);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout.contains("skipping the checkpoint of epoch 2")
            && stdout.contains("resuming after epoch 1"),
        "{stdout}"
    );
    assert_eq!(adapter_tensors(&damaged.join("runs/rlora-seed3")), expected);
    let damaged_run = run_record(&damaged);
    for curve in ["train_loss", "valid_loss", "similarity_trace"] {
        assert_eq!(damaged_run[curve], straight_run[curve], "{curve}");
    }
    for d in [straight, killed, damaged] {
        std::fs::remove_dir_all(&d).ok();
    }
}

#[test]
fn a_resumed_comparison_reads_finished_runs_back_and_refuses_other_settings() {
    let dir = temp("compare");
    let args = |extra: &[&str]| -> Vec<String> {
        with_out(
            &[
                "--methods",
                "lora,rlora",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--data-scale",
                "0.02",
                "--plain",
                "--resume",
            ],
            &dir,
            extra,
        )
    };
    let first = args(&[]);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let out = run(&first);
    assert!(out.status.success(), "{}", stderr(&out));
    for run_name in ["lora-seed0", "rlora-seed0"] {
        assert!(dir.join("runs").join(run_name).join("result.json").exists());
    }
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    // Remove the report: the rerun writes it again from the stored results.
    std::fs::remove_file(dir.join("table.md")).unwrap();
    let out = run(&first);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout.matches("finished before, read back").count(),
        2,
        "{stdout}"
    );
    assert!(
        !stdout.contains("epoch 1/1 train"),
        "a finished run trained again: {stdout}"
    );
    let again = std::fs::read_to_string(dir.join("table.md")).unwrap();
    let rows = |t: &str| {
        t.lines()
            // The rows of the accuracy table, not of the paired differences.
            .filter(|l| l.starts_with("| lora") || l.starts_with("| rlora"))
            .filter(|l| l.split('|').count() > 8)
            .map(|l| {
                // The accuracy columns; the wall time differs between the two writes.
                l.split('|').take(8).collect::<Vec<_>>().join("|")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&again), rows(&table));
    assert_eq!(rows(&again).len(), 2);

    let other = args(&["--lr", "0.01"]);
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    let out = run(&other);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("other settings") && err.contains("lr"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_tiny_comparison_writes_the_report() {
    let dir = temp("run");
    let out = run(&[
        "--methods",
        "lora,rlora",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--data-scale",
        "0.02",
        "--plain",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(
        table.contains("| lora | 12 |") && table.contains("| rlora | 4 |"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 4);
    assert_eq!(json["tasks"].as_array().unwrap().len(), 4);
    for run in json["runs"].as_array().unwrap() {
        let acc = run["mean_accuracy"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&acc), "accuracy {acc}");
    }
    // Each run saved its trained adapter alone, in the reference's format.
    let adapter = dir.join("runs/rlora-seed1/adapter");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["lora_nums"], 4);
    assert_eq!(config["r"], 4);
    let tensors = std::fs::metadata(adapter.join("adapter_model.safetensors"))
        .unwrap()
        .len();
    // Two adapted 64x64 layers: A, 4 heads, router and the pair, in f32: far below the base.
    assert!(
        tensors > 4 * 2 * (64 * 4 + 4 * 4 * 64 + 64 * 4) as u64,
        "adapter file of {tensors} bytes"
    );
    for plot in ["loss.svg", "head_similarity.svg"] {
        let svg = std::fs::read_to_string(dir.join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.len() > 1000,
            "{plot} is not a drawing"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unknown_setting_is_a_usage_error() {
    let out = run(&["--setting", "bogus", "--out", temp("s").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--setting") && err.contains("conflict-cued"),
        "{err}"
    );
}

#[test]
fn a_paired_comparison_reports_intervals_and_the_similarity_trace() {
    let dir = temp("paired");
    let out = run(&[
        "--setting",
        "conflict-cued",
        "--methods",
        "lora,hydralora,rlora",
        "--seeds",
        "3",
        "--epochs",
        "1",
        "--data-scale",
        "0.05",
        "--trace-every",
        "2",
        "--plain",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(table.contains("setting `conflict-cued`"), "{table}");
    assert!(
        table.contains("| method | vs LoRA | vs HydraLoRA | pairs |"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let accuracy = |method: &str| -> Vec<(u64, f64)> {
        json["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == method)
            .map(|r| {
                (
                    r["seed"].as_u64().unwrap(),
                    r["mean_accuracy"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    // The reported difference is the mean of the per-seed differences.
    let (rlora, lora) = (accuracy("rlora"), accuracy("lora"));
    let want = rlora
        .iter()
        .map(|(s, a)| a - lora.iter().find(|(t, _)| t == s).unwrap().1)
        .sum::<f64>()
        / 3.0;
    let summary = json["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "rlora")
        .unwrap();
    let vs_lora = &summary["vs_lora"];
    assert_eq!(vs_lora["pairs"], 3);
    assert!((vs_lora["mean"].as_f64().unwrap() - want).abs() < 1e-9);
    let ci = vs_lora["ci95"].as_array().unwrap();
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(lo <= want && want <= hi, "{lo} {want} {hi}");
    // The trace: before the first step, every 2 steps, and after the last.
    let hydra = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "hydralora")
        .unwrap();
    let trace = hydra["similarity_trace"].as_array().unwrap();
    assert!(trace.len() >= 3, "{trace:?}");
    assert_eq!(trace[0]["step"], 0);
    assert_eq!(trace[1]["step"], 2);
    // Zero-initialized heads have no defined similarity before the first step.
    assert!(trace[0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l[1].is_null()));
    let svg = std::fs::read_to_string(dir.join("head_similarity_trace.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("hydralora"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_run_is_never_reported_finished_unless_it_stored_every_epoch() {
    let dir = temp("never-lies");
    let args = with_out(
        &[
            "--methods",
            "rlora",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--data-scale",
            "0.02",
            "--plain",
            "--resume",
        ],
        &dir,
        &[],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_dir = dir.join("runs/rlora-seed0");
    let checkpoints = run_dir.join("checkpoint");
    let stdout = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();

    // A restart killed after its settings.json was gone, with the old
    // result.json still there: that result is not read back as this run's.
    std::fs::remove_file(run_dir.join("settings.json")).unwrap();
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("has no settings.json") && !text.contains("finished before"),
        "{text}"
    );
    assert!(run_dir.join("result.json").is_file());

    // Epoch 2's checkpoint cannot be written (a directory holds its name):
    // exit 1 naming the file, no result and no adapter, the last good
    // checkpoint kept.
    for name in ["model-2.mpk", "optim-2.mpk", "scheduler-2.mpk"] {
        std::fs::remove_file(checkpoints.join(name)).unwrap();
    }
    std::fs::remove_file(run_dir.join("result.json")).unwrap();
    std::fs::remove_dir_all(run_dir.join("adapter")).unwrap();
    std::fs::create_dir(checkpoints.join("model-2.mpk")).unwrap();
    let out = run(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("training was interrupted at epoch 2")
            && err.contains("model-2.mpk")
            && err.contains("no adapter was saved and no result written")
            && err.contains("checkpoint of epoch 1")
            && !err.contains("panicked"),
        "{err}"
    );
    assert!(!run_dir.join("result.json").exists());
    assert!(!run_dir.join("adapter").exists());
    assert!(epoch_saved(&checkpoints, 1));

    // With the fault gone, --resume trains epoch 2 from checkpoint 1.
    std::fs::remove_dir(checkpoints.join("model-2.mpk")).unwrap();
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("resuming after epoch 1"),
        "{}",
        stdout(&out)
    );
    assert!(run_dir.join("result.json").is_file());

    // Checkpoints that do not name this run are not resumed from.
    std::fs::remove_file(run_dir.join("result.json")).unwrap();
    std::fs::write(checkpoints.join("identity.json"), b"{\"run\": \"another\"}").unwrap();
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("not resuming from") && !text.contains("resuming after"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
