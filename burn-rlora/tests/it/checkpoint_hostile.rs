//! Adapter files from anywhere: hostile reference (`.bin`) files, configs
//! whose numbers disagree with the tensors, non-regular files, size caps and
//! non-finite values all end in a typed error, within bounded memory and
//! linear work. Needs the `store` feature. The `.bin` cases are built by
//! `tests/fixtures/hostile/make_hostile.py` (one fault each).

use std::collections::HashMap;
use std::path::PathBuf;

use burn::backend::NdArray;
use burn::module::Param;
use burn::nn::LinearConfig;
use burn::tensor::Tensor;
use burn_rlora::checkpoint::torch::{read_pickle, read_torch};
use burn_rlora::checkpoint::{
    load_adapter, read_reference, save_adapter, AdapterFile, CheckpointError, LoadOptions,
    SaveOptions, DEFAULT_MAX_FILE_BYTES,
};
use burn_rlora::{RLoraConfig, RLoraLinear};

fn hostile(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hostile")
        .join(case)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rlora-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn corrupt_reason(err: &CheckpointError) -> &str {
    match err {
        CheckpointError::CorruptTensors { reason, .. } => reason,
        other => panic!("expected CorruptTensors, got {other:?}"),
    }
}

#[test]
fn hand_built_torch_file_loads_exactly_including_strides() {
    let a: Vec<f64> = (0..8).map(|k| 0.5 * k as f64 - 1.0).collect();
    let b: Vec<f64> = (0..6).map(|k| 0.25 * k as f64 + 0.125).collect();
    let file = read_reference(hostile("valid"), &LoadOptions::new()).unwrap();
    let m = &file.modules["m"];
    assert_eq!(m.a.shape, [2, 4]);
    assert_eq!(m.a.data, a);
    assert_eq!(m.heads[0].data, b);
    // Stride (1, 2): element (i, j) sits at storage index i + 2 j.
    let file = read_reference(hostile("strided"), &LoadOptions::new()).unwrap();
    let want: Vec<f64> = (0..2)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .map(|(i, j)| a[i + 2 * j])
        .collect();
    assert_eq!(file.modules["m"].a.data, want);
}

/// Every hostile `.bin` gives `CorruptTensors` naming the file, the key where
/// there is one, and the problem.
#[test]
fn hostile_torch_files_are_typed_errors_naming_file_key_and_problem() {
    let cases: &[(&str, &[&str])] = &[
        ("deep_tuples", &["nesting deeper than 32"]),
        ("deep_dicts", &["nesting deeper than 32"]),
        ("list", &["refusing opcode 0x5d"]),
        ("huge_string", &["4294967295 bytes wanted", "only 3 left"]),
        ("code_execution", &["refusing global os.system"]),
        (
            "shape_too_large",
            &[
                "'m.lora_A.weight'",
                "1099511627776 elements, its storage only 8",
            ],
        ),
        (
            "storage_size_lies",
            &["'m.lora_A.weight'", "larger than the file"],
        ),
        ("missing_storage", &["'m.lora_B0.weight'", "archive/data/1"]),
        (
            "truncated_storage",
            &[
                "'m.lora_B0.weight'",
                "holds 20 bytes, its tensors need exactly 24",
            ],
        ),
        (
            "offset_past_end",
            &[
                "'m.lora_B0.weight'",
                "offset 4",
                "past the storage's 6 elements",
            ],
        ),
        ("compressed", &["compressed"]),
        ("legacy_pickle", &["not a zip-based torch file"]),
        ("duplicate_key", &["duplicate key 'm.lora_A.weight'"]),
    ];
    for (case, needles) in cases {
        let err = read_reference(hostile(case), &LoadOptions::new()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("{case}/adapter_model.bin")),
            "{case}: the message does not name the file: {message}"
        );
        let reason = corrupt_reason(&err);
        for needle in *needles {
            assert!(
                reason.contains(needle),
                "{case}: '{needle}' not in '{reason}'"
            );
        }
    }
}

#[test]
fn zero_size_dimension_is_a_shape_error() {
    let err = read_reference(hostile("zero_dim"), &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::ShapeMismatch { key, found, .. }
            if key == "m.lora_A.weight" && found == &[0, 4]),
        "{err:?}"
    );
}

#[test]
fn huge_lora_nums_is_checked_against_the_file_before_allocating() {
    // The reference file holds one head; the config claims 10^18.
    let err = read_reference(hostile("huge_lora_nums"), &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::MissingKey { key, expected }
            if key == "m.lora_B1.weight" && expected.contains("lora_nums is 1000000000000000000")),
        "{err:?}"
    );
    // The same in this crate's format (safetensors), through load_adapter.
    let dir = tmp("huge-heads");
    let file = read_reference(hostile("valid"), &LoadOptions::new()).unwrap();
    file.save(&dir, burn::tensor::DType::F32).unwrap();
    let path = dir.join("adapter_config.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["lora_nums"] = serde_json::json!(1_000_000_000_000_000_000u64);
    json["rlora"]["num_heads"] = serde_json::json!(1_000_000_000_000_000_000u64);
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let err = AdapterFile::read(&dir, &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::MissingKey { key, .. } if key == "m.lora_B1.weight"),
        "{err:?}"
    );
    let config = RLoraConfig::lora(2, 4.0);
    let layer = RLoraLinear::<NdArray>::from_linear(
        LinearConfig::new(4, 3).init(&Default::default()),
        &config,
    )
    .unwrap();
    let err = load_adapter(
        layer,
        &dir,
        &LoadOptions::new()
            .with_naming(burn_rlora::checkpoint::ModuleNaming::new().with_prefix("m")),
    )
    .unwrap_err();
    assert!(matches!(err, CheckpointError::MissingKey { .. }), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn non_regular_files_are_refused_on_the_opened_file() {
    let dir = tmp("nonregular");
    std::fs::copy(
        hostile("valid/adapter_config.json"),
        dir.join("adapter_config.json"),
    )
    .unwrap();
    let bin = dir.join("adapter_model.bin");
    std::os::unix::fs::symlink("/dev/zero", &bin).unwrap();
    let err = read_reference(&dir, &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::NotRegularFile { path, kind }
            if path == &bin && *kind == "a character device"),
        "{err:?}"
    );
    std::fs::remove_file(&bin).unwrap();
    // A FIFO: opening it must not block waiting for a writer.
    let made = std::process::Command::new("mkfifo").arg(&bin).status();
    if made.is_ok_and(|s| s.success()) {
        let err = read_reference(&dir, &LoadOptions::new()).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::NotRegularFile { kind, .. } if *kind == "a FIFO"),
            "{err:?}"
        );
    }
    // A symlink to a regular file is followed (hub caches are made of them).
    std::fs::remove_file(&bin).unwrap();
    std::os::unix::fs::symlink(hostile("valid/adapter_model.bin"), &bin).unwrap();
    read_reference(&dir, &LoadOptions::new()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_above_the_size_cap_are_refused_before_reading() {
    assert_eq!(LoadOptions::new().max_file_bytes, DEFAULT_MAX_FILE_BYTES);
    let options = LoadOptions::new().with_max_file_bytes(100);
    let err = read_reference(hostile("valid"), &options).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::FileTooLarge { size, limit: 100, path }
            if *size > 100 && path.ends_with("adapter_model.bin")),
        "{err:?}"
    );
    let raised = LoadOptions::new().with_max_file_bytes(1 << 20);
    read_reference(hostile("valid"), &raised).unwrap();
}

// ------------------------------------------------------------ pickle builder

/// A minimal writer of the pickle opcodes torch emits, for large cases.
struct Pickle(Vec<u8>);

impl Pickle {
    fn new() -> Self {
        Self(vec![0x80, 2])
    }
    fn op(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.op(s.as_bytes())
    }
    fn int(&mut self, v: u32) -> &mut Self {
        self.0.push(b'J');
        self.op(&v.to_le_bytes())
    }
    fn put(&mut self, i: u32) -> &mut Self {
        self.0.push(b'r');
        self.op(&i.to_le_bytes())
    }
    fn get(&mut self, i: u32) -> &mut Self {
        self.0.push(b'j');
        self.op(&i.to_le_bytes())
    }
    /// A float tensor of shape `[rows, cols]` on storage `key` of `numel` elements.
    fn tensor(&mut self, key: &str, numel: u32, rows: u32, cols: u32) -> &mut Self {
        self.op(b"ctorch._utils\n_rebuild_tensor_v2\n((")
            .str("storage")
            .op(b"ctorch\nFloatStorage\n")
            .str(key)
            .str("cpu")
            .int(numel)
            .op(b"tQ")
            .int(0)
            .op(b"(")
            .int(rows)
            .int(cols)
            .op(b"t(")
            .int(cols)
            .int(1)
            .op(b"t\x89ccollections\nOrderedDict\n)RtR")
    }
}

#[test]
fn memo_references_cannot_multiply_a_storage_beyond_the_budget() {
    // One 64 Ki-element tensor, referenced by 1000 keys through the memo:
    // decoding all would need 1000x the storage; the budget (elements <=
    // file bytes) refuses it after a few.
    let numel = 1 << 16;
    let mut p = Pickle::new();
    p.op(b"}(")
        .str("k0")
        .tensor("0", numel, 1 << 8, 1 << 8)
        .put(0);
    for i in 1..1000 {
        p.str(&format!("k{i}")).get(0);
    }
    p.op(b"u.");
    let storage = vec![0u8; numel as usize * 4];
    let size = (p.0.len() + storage.len()) as u64;
    let storages = HashMap::from([("0".to_string(), storage)]);
    let err = read_pickle(&p.0, &storages, size).unwrap_err();
    assert!(
        corrupt_reason(&err).contains("more elements in total than the file has bytes"),
        "{err}"
    );
}

#[test]
fn a_large_setitems_is_linear_work() {
    // 200,000 keys in one SETITEMS (each a 1x1 view of one storage):
    // the machine's work stays within a small multiple of the pickle's length.
    let n = 200_000;
    let mut p = Pickle::new();
    p.op(b"}(").str("k0").tensor("0", 1, 1, 1).put(0);
    for i in 1..n {
        p.str(&format!("k{i}")).get(0);
    }
    p.op(b"u.");
    let storages = HashMap::from([("0".to_string(), vec![0u8; 4])]);
    let (tensors, work) = read_pickle(&p.0, &storages, p.0.len() as u64 + 4).unwrap();
    assert_eq!(tensors.len(), n);
    assert!(
        work <= 2 * p.0.len() as u64,
        "work {work} for a pickle of {} bytes",
        p.0.len()
    );
}

#[test]
fn the_reference_fixture_reads_the_same_through_read_torch() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference/trained/adapter_model.bin");
    let bytes = std::fs::read(&path).unwrap();
    let tensors = read_torch(&bytes, "fixture").unwrap();
    assert_eq!(tensors.len(), 10);
    let (shape, values) = &tensors["base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"];
    assert_eq!(shape, &[2, 8]);
    assert_eq!(values.as_ref().unwrap().len(), 16);
}

// ---------------------------------------------------------------- non-finite

fn layer_with_nan() -> (RLoraLinear<NdArray>, RLoraConfig) {
    let config = RLoraConfig::lora(2, 4.0);
    let mut layer = RLoraLinear::<NdArray>::from_linear(
        LinearConfig::new(4, 3).init(&Default::default()),
        &config,
    )
    .unwrap();
    let mut a = layer
        .adapter
        .as_ref()
        .unwrap()
        .lora_a
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    a[5] = f32::NAN;
    let shape = layer.adapter.as_ref().unwrap().lora_a.val().shape();
    layer.adapter.as_mut().unwrap().lora_a = Param::from_tensor(Tensor::from_data(
        burn::tensor::TensorData::new(a, shape),
        &Default::default(),
    ));
    (layer, config)
}

#[test]
fn non_finite_values_are_refused_on_save_and_load_unless_allowed() {
    let (layer, config) = layer_with_nan();
    let dir = tmp("nan-save");
    let target = dir.join("adapter");
    let err = save_adapter(&layer, &target, &SaveOptions::new(config.clone())).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::NonFinite { key, value, .. }
            if key == "layer.lora_A.weight" && value.is_nan()),
        "{err:?}"
    );
    assert!(!target.exists(), "a refused save wrote something");
    let allow = SaveOptions::new(config.clone()).with_allow_non_finite(true);
    save_adapter(&layer, &target, &allow).unwrap();
    let fresh = || {
        RLoraLinear::<NdArray>::from_linear(
            LinearConfig::new(4, 3).init(&Default::default()),
            &config,
        )
        .unwrap()
    };
    let err = load_adapter(fresh(), &target, &LoadOptions::new()).unwrap_err();
    assert!(matches!(err, CheckpointError::NonFinite { .. }), "{err:?}");
    let (loaded, _) = load_adapter(
        fresh(),
        &target,
        &LoadOptions::new().with_allow_non_finite(true),
    )
    .unwrap();
    let a = loaded
        .adapter
        .as_ref()
        .unwrap()
        .lora_a
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(a.iter().filter(|v| v.is_nan()).count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();

    // The reference path too.
    let err = read_reference(hostile("nan"), &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::NonFinite { key, index: 0, .. } if key == "m.lora_A.weight"),
        "{err:?}"
    );
    let allowed = read_reference(
        hostile("nan"),
        &LoadOptions::new().with_allow_non_finite(true),
    )
    .unwrap();
    assert!(allowed.modules["m"].a.data[0].is_nan());
}

/// Crash inputs found by the `read_torch` fuzz target, run as the target runs
/// them (a raw pickle against ten fixed storages): each is a clean error now.
#[test]
fn read_torch_fuzz_crashes_are_clean_errors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz-read_torch");
    let storages: HashMap<String, Vec<u8>> = [64usize, 96, 96, 96, 96, 96, 64, 64, 64, 144]
        .iter()
        .enumerate()
        .map(|(i, &n)| (i.to_string(), (0..n).map(|b| b as u8).collect()))
        .collect();
    let total: usize = storages.values().map(Vec::len).sum();
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let result = read_pickle(&data, &storages, (data.len() + total) as u64);
        // The first one declares storage "0" with two sizes.
        assert!(result.is_err(), "a crash input now loads");
        seen += 1;
    }
    assert!(seen > 0);
}
