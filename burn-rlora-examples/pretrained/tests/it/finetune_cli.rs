//! `rlora-finetune` end to end on a tiny random Llama model (the GGUF
//! fixture of `burn-rlora-llm`, 3 blocks of width 32, a byte-level
//! vocabulary of 300 tokens): every kind of bad line exits 1 naming its file
//! and line before anything is written, bad options exit 2, a run trains,
//! scores and reports per task, and a run killed after a checkpoint resumes
//! to the uninterrupted run's adapter, bit for bit. Needs no fetched data.

#![cfg(feature = "flex")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../burn-rlora-llm/tests/fixtures/decoder_tiny_llama.gguf")
}

/// A template for the tiny vocabulary, whose only closing token is
/// `<|endoftext|>` (its end-of-sequence token).
const TEMPLATE: &str = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|endoftext|>{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}";

fn temp(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("burn-rlora-finetune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlora-finetune"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Prompt/completion lines of two tasks: `yes`/`no` answers (a label task)
/// and free text.
fn completions(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        let label = if i.is_multiple_of(2) { "yes" } else { "no" };
        text.push_str(&format!(
            "{{\"prompt\": \"is {i} even?\", \"completion\": \"{label}\", \"task\": \"even\"}}\n"
        ));
        text.push_str(&format!(
            "{{\"prompt\": \"spell {i}\", \"completion\": \"digit {i} spelled\", \"task\": \"spell\"}}\n"
        ));
    }
    text
}

fn base_args<'a>(dir: &'a Path, out: &'a str) -> Vec<String> {
    vec![
        "--model".into(),
        tiny_model().display().to_string(),
        "--train".into(),
        dir.join("train.jsonl").display().to_string(),
        "--out".into(),
        out.into(),
        "--plain".into(),
        "--max-len".into(),
        "48".into(),
        "--max-new-tokens".into(),
        "4".into(),
        "--batch-size".into(),
        "4".into(),
    ]
}

#[test]
fn every_bad_line_exits_1_naming_its_file_and_line_before_writing() {
    let dir = temp("bad");
    let good = "{\"prompt\": \"a\", \"completion\": \"b\"}\n";
    let long = format!(
        "{{\"prompt\": \"{}\", \"completion\": \"b\"}}",
        "x".repeat(200)
    );
    let cases: [(&[u8], &str); 10] = [
        (b"{\"prompt\": \"a\"", "invalid JSON"),
        (
            b"{\"prompt\": \"\xff\", \"completion\": \"b\"}",
            "not valid UTF-8",
        ),
        (b"{\"prompt\": \"a\"}", "missing field \"completion\""),
        (b"{\"prompt\": 1, \"completion\": \"b\"}", "not a string"),
        (
            b"{\"messages\": [{\"role\": \"robot\", \"content\": \"a\"}]}",
            "role \"robot\"",
        ),
        (
            b"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}",
            "no assistant turn",
        ),
        (
            b"{\"prompt\": \"a\", \"completion\": \"\"}",
            "completion is empty",
        ),
        (b"[1]", "not an object"),
        (b"{\"text\": \"a\"}", "no \"messages\""),
        (long.as_bytes(), "longer than 128 bytes"),
    ];
    for (bad, says) in cases {
        let mut data = good.repeat(2).into_bytes();
        data.extend_from_slice(bad);
        data.push(b'\n');
        std::fs::write(dir.join("train.jsonl"), &data).unwrap();
        let out_dir = dir.join("out");
        let out = out_dir.to_str().unwrap();
        let mut args = base_args(&dir, out);
        args.extend(["--raw".into(), "--max-line-bytes".into(), "128".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = run(&args);
        let err = stderr(&result);
        assert_eq!(result.status.code(), Some(1), "{says}: {err}");
        assert!(err.contains("train.jsonl:3"), "{says}: {err}");
        assert!(err.contains(says), "{says}: {err}");
        assert!(!out_dir.exists(), "{says}: an output directory was made");
    }
    // A test example of a task training never saw.
    std::fs::write(dir.join("train.jsonl"), completions(2)).unwrap();
    std::fs::write(
        dir.join("test.jsonl"),
        "{\"prompt\": \"a\", \"completion\": \"b\", \"task\": \"even\"}\n\
         {\"prompt\": \"a\", \"completion\": \"b\", \"task\": \"translate\"}\n",
    )
    .unwrap();
    let out_dir = dir.join("out");
    let mut args = base_args(&dir, out_dir.to_str().unwrap());
    args.extend([
        "--raw".into(),
        "--test".into(),
        dir.join("test.jsonl").display().to_string(),
    ]);
    let result = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{err}");
    assert!(
        err.contains("test.jsonl:2") && err.contains("\"translate\""),
        "{err}"
    );
    assert!(!out_dir.exists());
    // A directory for data, and a missing file.
    let args = base_args(&dir, out_dir.to_str().unwrap());
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let train = dir.display().to_string();
    args[3] = &train;
    let result = run(&args);
    assert_eq!(result.status.code(), Some(1), "{}", stderr(&result));
    assert!(stderr(&result).contains("not a regular file"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_options_exit_2() {
    let dir = temp("options");
    std::fs::write(dir.join("train.jsonl"), completions(2)).unwrap();
    let out = dir.join("out").display().to_string();
    for extra in [
        &["--long", "sometimes"][..],
        &["--schedule", "linear"],
        &["--max-len", "4"],
        &["--grad-accum", "0"],
        &["--method", "dora"],
        &["--method", "base"],
    ] {
        let mut args = base_args(&dir, &out);
        args.extend(extra.iter().map(|s| s.to_string()));
        let result = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            result.status.code(),
            Some(2),
            "{extra:?}: {}",
            stderr(&result)
        );
    }
    let result = run(&["--out", &out]);
    assert_eq!(
        result.status.code(),
        Some(2),
        "no --train: {}",
        stderr(&result)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_trains_scores_each_task_and_reports() {
    let dir = temp("run");
    let chat = |i: usize| {
        format!(
            "{{\"messages\": [{{\"role\": \"user\", \"content\": \"is {i} even?\"}}, {{\"role\": \"assistant\", \"content\": \"{}\"}}], \"task\": \"even\"}}\n",
            if i.is_multiple_of(2) { "yes" } else { "no" }
        )
    };
    let train: String = (0..8).map(chat).collect::<String>() + &completions(4);
    std::fs::write(dir.join("train.jsonl"), train).unwrap();
    std::fs::write(dir.join("valid.jsonl"), completions(2)).unwrap();
    std::fs::write(dir.join("test.jsonl"), completions(2)).unwrap();
    std::fs::write(dir.join("template.jinja"), TEMPLATE).unwrap();
    let out_dir = dir.join("out");
    let mut args = base_args(&dir, out_dir.to_str().unwrap());
    for (flag, file) in [
        ("--valid", "valid.jsonl"),
        ("--test", "test.jsonl"),
        ("--chat-template", "template.jinja"),
    ] {
        args.push(flag.into());
        args.push(dir.join(file).display().to_string());
    }
    args.extend(["--baseline".into(), "--steps".into(), "3".into()]);
    let result = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{stdout}\n{}", stderr(&result));
    assert!(
        stdout
            .contains("task even: 12 train, 2 validation, 2 test (classification, labels yes, no)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("task spell: 4 train, 2 validation, 2 test (free text)"),
        "{stdout}"
    );
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for column in [
        "even:score",
        "even:gen",
        "spell:EM",
        "spell:ROUGE-L",
        "spell:chrF",
    ] {
        assert!(report.contains(column), "{column}: {report}");
    }
    assert!(
        report.contains("| base |") && report.contains("| rlora |"),
        "{report}"
    );
    for file in [
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "results.json",
        "samples.md",
        "loss-even.svg",
        "loss-spell.svg",
    ] {
        assert!(out_dir.join(file).is_file(), "{file}");
    }
    // Three steps of 4 examples: the training loss log has 3 iterations.
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("runs/rlora-seed0/result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(result["run"]["train_loss"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn adapter_tensors(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
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
fn a_killed_run_resumes_to_the_uninterrupted_runs_adapter() {
    let dir = temp("resume");
    std::fs::write(dir.join("train.jsonl"), completions(12)).unwrap();
    let args = |out: &Path| -> Vec<String> {
        let mut a = base_args(&dir, out.to_str().unwrap());
        a.extend(
            ["--raw", "--epochs", "12", "--resume"]
                .iter()
                .map(|s| s.to_string()),
        );
        a
    };
    let straight = dir.join("straight");
    let a = args(&straight);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = adapter_tensors(&straight.join("adapter"));

    let killed = dir.join("killed");
    let b = args(&killed);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let checkpoints = killed.join("runs/rlora-seed0/checkpoint");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlora-finetune"))
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
        assert!(start.elapsed().as_secs() < 600, "no checkpoint of epoch 1");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // An interrupted run is not reported as finished.
    assert!(!killed.join("adapter").exists());
    assert!(!killed.join("report.md").exists());
    let out = run(&b);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout.contains("resuming after epoch"), "{stdout}");
    assert_eq!(adapter_tensors(&killed.join("adapter")), expected);
    std::fs::remove_dir_all(&dir).unwrap();
}
