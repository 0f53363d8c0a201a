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
        .join("tests/fixtures/reference")
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

// ------------------------------------------------------- hostile inputs

fn hostile(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hostile")
        .join(case)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rlora-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit status 1, the message names `needles`, and nothing panicked.
fn assert_fails(out: &Output, needles: &[&str]) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "'{needle}' not in: {stderr}");
    }
}

#[test]
fn every_hostile_file_exits_1_naming_the_file_without_panicking() {
    let cases = [
        ("deep_tuples", "nesting deeper"),
        ("deep_dicts", "nesting deeper"),
        ("list", "refusing opcode"),
        ("huge_string", "only 3 left"),
        ("code_execution", "refusing global os.system"),
        ("shape_too_large", "m.lora_A.weight"),
        ("storage_size_lies", "larger than the file"),
        ("missing_storage", "m.lora_B0.weight"),
        ("truncated_storage", "truncated"),
        ("offset_past_end", "past the storage"),
        ("zero_dim", "m.lora_A.weight"),
        ("compressed", "compressed"),
        ("legacy_pickle", "not a zip-based torch file"),
        ("duplicate_key", "duplicate key"),
        ("huge_lora_nums", "m.lora_B1.weight"),
        ("nan", "non-finite"),
    ];
    for (case, needle) in cases {
        let dir = hostile(case);
        let dir = dir.display().to_string();
        let out = cli(&["inspect", &dir]);
        assert_fails(&out, &[needle, &dir]);
        let output = tmp(&format!("hostile-{case}"));
        let target = output.join("out").display().to_string();
        let out = cli(&["convert", "--input", &dir, "--output", &target]);
        assert_fails(&out, &[needle]);
        assert!(!output.join("out").exists(), "{case}: convert wrote output");
        std::fs::remove_dir_all(&output).unwrap();
    }
    let out = cli(&["inspect", &hostile("valid").display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[cfg(unix)]
#[test]
fn a_tensor_file_linked_to_dev_zero_is_refused() {
    let dir = tmp("dev-zero");
    std::fs::copy(
        hostile("valid/adapter_config.json"),
        dir.join("adapter_config.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("adapter_model.bin")).unwrap();
    let out = cli(&["inspect", &dir.display().to_string()]);
    assert_fails(&out, &["not a regular file", "adapter_model.bin"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A base safetensors file with `m.weight` `[3, 4]`, `other` and a metadata entry.
fn write_base(path: &std::path::Path) -> Vec<u8> {
    use safetensors::tensor::TensorView;
    let w: Vec<u8> = (0..12).flat_map(|k| (k as f32).to_le_bytes()).collect();
    let o: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        (
            "m.weight",
            TensorView::new(safetensors::Dtype::F32, vec![3, 4], &w).unwrap(),
        ),
        (
            "other",
            TensorView::new(safetensors::Dtype::F32, vec![2], &o).unwrap(),
        ),
    ];
    let meta = std::collections::HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("provenance".to_string(), "base-model-v1".to_string()),
    ]);
    let bytes = safetensors::tensor::serialize(views, Some(meta)).unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn merge_refuses_to_overwrite_its_inputs_and_keeps_the_base_metadata() {
    let dir = tmp("merge-inputs");
    let base = dir.join("base.safetensors");
    let bytes = write_base(&base);
    let adapter = hostile("valid").display().to_string();
    let base_s = base.display().to_string();
    // --output is --base (also through another spelling of the path).
    let other_spelling = dir.join(".").join("base.safetensors").display().to_string();
    for output in [&base_s, &other_spelling] {
        let out = cli(&["merge", &adapter, "--base", &base_s, "--output", output]);
        assert_fails(&out, &["base model", "overwritten"]);
        assert_eq!(std::fs::read(&base).unwrap(), bytes, "the base was touched");
    }
    // --output is a file of the adapter.
    let adapter_bin = hostile("valid/adapter_model.bin").display().to_string();
    let out = cli(&[
        "merge",
        &adapter,
        "--base",
        &base_s,
        "--output",
        &adapter_bin,
    ]);
    assert_fails(&out, &["file of the adapter"]);
    // A good merge keeps the base's __metadata__, and removes what a killed
    // earlier merge of the same output left (but not a live writer's file).
    let merged = dir.join("merged.safetensors");
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let dead = dir.join(format!(".merged.safetensors.rlora-file-{dead_pid}-3"));
    let live = dir.join(format!(
        ".merged.safetensors.rlora-file-{}-4",
        std::process::id()
    ));
    std::fs::write(&dead, vec![0u8; 4096]).unwrap();
    std::fs::write(&live, b"in progress").unwrap();
    let out = cli(&[
        "merge",
        &adapter,
        "--base",
        &base_s,
        "--output",
        &merged.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let merged = std::fs::read(&merged).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&merged).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(
        meta.get("provenance").map(String::as_str),
        Some("base-model-v1")
    );
    assert!(!dead.exists(), "a killed merge's temporary file was left");
    assert!(live.exists(), "a live writer's temporary file was removed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn merge_refuses_two_modules_that_collide_after_strip_prefix() {
    use burn_rlora::checkpoint::{read_reference, AdapterFile, LoadOptions};
    let dir = tmp("merge-collide");
    let mut file: AdapterFile = read_reference(hostile("valid"), &LoadOptions::new()).unwrap();
    let m = file.modules["m"].clone();
    file.modules.insert("p.m".into(), m);
    let adapter = dir.join("adapter");
    file.save(&adapter, burn::tensor::DType::F32).unwrap();
    let base = dir.join("base.safetensors");
    write_base(&base);
    let output = dir.join("merged.safetensors");
    let out = cli(&[
        "merge",
        &adapter.display().to_string(),
        "--base",
        &base.display().to_string(),
        "--output",
        &output.display().to_string(),
        "--strip-prefix",
        "p.",
    ]);
    assert_fails(
        &out,
        &["'m' and 'p.m'", "both map to 'm.weight'", "dropped"],
    );
    assert!(!output.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn convert_refuses_to_overwrite_its_input() {
    let dir = tmp("convert-self");
    for f in ["adapter_config.json", "adapter_model.bin"] {
        std::fs::copy(hostile("valid").join(f), dir.join(f)).unwrap();
    }
    let before = std::fs::read(dir.join("adapter_config.json")).unwrap();
    let d = dir.display().to_string();
    let out = cli(&["convert", "--input", &d, "--output", &d]);
    assert_fails(&out, &["is the input", "adapter_config.json"]);
    assert_eq!(
        std::fs::read(dir.join("adapter_config.json")).unwrap(),
        before
    );
    // The same through the tensor file's path.
    let bin = dir.join("adapter_model.bin").display().to_string();
    let out = cli(&["convert", "--input", &bin, "--output", &d]);
    assert_fails(&out, &["is the input"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_directory_with_both_tensor_files_is_read_from_safetensors_by_every_command() {
    use burn_rlora::checkpoint::{read_reference, AdapterFile, LoadOptions};
    let dir = tmp("both");
    let adapter = dir.join("adapter");
    // Our safetensors holds A + 1; the .bin next to it holds A.
    let mut file: AdapterFile = read_reference(hostile("valid"), &LoadOptions::new()).unwrap();
    let bin_a = file.modules["m"].a.data.clone();
    file.modules
        .get_mut("m")
        .unwrap()
        .a
        .data
        .iter_mut()
        .for_each(|v| *v += 1.0);
    file.save(&adapter, burn::tensor::DType::F32).unwrap();
    std::fs::copy(
        hostile("valid/adapter_model.bin"),
        adapter.join("adapter_model.bin"),
    )
    .unwrap();
    let out = cli(&["inspect", &adapter.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("burn-rlora adapter"),
        "{}",
        text(&out.stdout)
    );
    let converted = dir.join("converted");
    let out = cli(&[
        "convert",
        "--input",
        &adapter.display().to_string(),
        "--output",
        &converted.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let a = AdapterFile::read(&converted, &LoadOptions::new())
        .unwrap()
        .modules["m"]
        .a
        .data
        .clone();
    let want: Vec<f64> = bin_a.iter().map(|v| v + 1.0).collect();
    assert_eq!(a, want, "convert did not read the safetensors file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_bounds_the_head_similarity() {
    use burn_rlora::checkpoint::format::HostTensor;
    use burn_rlora::checkpoint::{read_reference, AdapterFile, LoadOptions};
    let dir = tmp("many-heads");
    let mut file: AdapterFile = read_reference(hostile("valid"), &LoadOptions::new()).unwrap();
    let n = 300;
    let m = file.modules.get_mut("m").unwrap();
    m.heads = (0..n)
        .map(|i| HostTensor::new(vec![3, 2], (0..6).map(|k| (i * 6 + k) as f64).collect()))
        .collect();
    file.config.lora_nums = n;
    file.config.burn_rlora_format = Some(1);
    file.config.rlora = Some(
        burn_rlora::RLoraConfig::lora(2, 4.0)
            .with_num_heads(n)
            .with_dropout(0.0),
    );
    let adapter = dir.join("adapter");
    file.save(&adapter, burn::tensor::DType::F32).unwrap();
    let out = cli(&["inspect", &adapter.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("over the first 64 of 300 heads"),
        "{}",
        text(&out.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
