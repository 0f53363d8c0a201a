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
fn bad_numbers_are_clear_errors() {
    for (args, needle) in [
        (vec!["--epochs", "0"], "at least 1"),
        (vec!["--sampling", "hot"], "--sampling"),
        (vec!["--rank", "0"], "rank must be at least 1"),
        (vec!["--dropout", "1.5"], "dropout must be in [0, 1)"),
    ] {
        let mut all = args.clone();
        let out_dir = temp("n");
        all.extend(["--out", out_dir.to_str().unwrap()]);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
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
