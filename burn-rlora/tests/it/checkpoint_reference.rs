//! Adapters written by the Python reference, and the fuzz target's seeds.
//! Needs the `store` feature.

use crate::{checkpoint_common, suite};

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{backend::Backend, DType, Tensor, TensorData};
use burn_rlora::checkpoint::{
    load_adapter, load_reference, read_config, read_reference, AdapterConfig, AdapterFile,
    CheckpointError, LoadOptions, ModuleNaming, ReferenceOptions, CONFIG_FILE, TENSORS_FILE,
};
use burn_rlora::{Adapt, RLoraConfig, RLoraLinear};
use checkpoint_common::*;
use suite::{max_abs, max_abs_diff, values};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference")
        .join(path)
}

fn json(path: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(path)).unwrap()).unwrap()
}

fn matrix(v: &serde_json::Value) -> (Vec<f32>, [usize; 2]) {
    let rows = v.as_array().unwrap();
    let cols = rows[0].as_array().unwrap().len();
    let data = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    (data, [rows.len(), cols])
}

/// The fixture's original base, as `Linear`s (PyTorch [out, in] transposed to Burn's layout).
fn fixture_base(name: &str) -> Linear<NB> {
    let base = json("base.json");
    let (w, [o, i]) = matrix(&base[name]["weight"]);
    let bias: Vec<f32> = base[name]["bias"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let d = dev();
    Linear {
        weight: Param::from_tensor(
            Tensor::<NB, 2>::from_data(TensorData::new(w, [o, i]), &d).transpose(),
        ),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias, [o]),
            &d,
        ))),
    }
}

#[derive(Module, Adapt, Debug)]
struct RefMlp<B: Backend> {
    up_proj: RLoraLinear<B>,
    down_proj: RLoraLinear<B>,
}

fn ref_model(config: &RLoraConfig) -> RefMlp<NB> {
    RefMlp {
        up_proj: RLoraLinear::from_linear(fixture_base("model.layers.0.mlp.up_proj"), config)
            .unwrap(),
        down_proj: RLoraLinear::from_linear(fixture_base("model.layers.0.mlp.down_proj"), config)
            .unwrap(),
    }
}

fn assert_matches_pytorch(model: &RefMlp<NB>, key: &str) {
    let expected = json("expected.json");
    let (x, shape) = matrix(&expected["input"]);
    let x = Tensor::<NB, 2>::from_data(TensorData::new(x, shape), &dev());
    let got = values(model.down_proj.forward(model.up_proj.forward(x)));
    let (want, _) = matrix(&expected[key]);
    let want: Vec<f64> = want.into_iter().map(f64::from).collect();
    let diff = max_abs_diff(&got, &want);
    assert!(
        diff <= 1e-5 * max_abs(&want),
        "{key}: Burn and PyTorch differ by {diff} (scale {})",
        max_abs(&want)
    );
}

fn ref_options() -> ReferenceOptions {
    let prefix = json("expected.json")["prefix"]
        .as_str()
        .unwrap()
        .to_string();
    ReferenceOptions {
        load: LoadOptions::new().with_naming(ModuleNaming::new().with_prefix(prefix)),
        initial_adapter: None,
    }
}

#[test]
fn reference_bin_loads_and_matches_pytorch_outputs() {
    let file = read_reference(fixture("trained"), &LoadOptions::new()).unwrap();
    assert!(file.config.is_reference());
    assert_eq!(file.modules.len(), 2);
    let config = file.config.rlora_config();
    assert_eq!((config.rank, config.num_heads), (2, 3));
    assert!(!config.needs_compensation());
    let (model, report) =
        load_reference(ref_model(&config), fixture("trained"), &ref_options()).unwrap();
    assert_eq!(report.modules.len(), 2);
    assert_matches_pytorch(&model, "reload");
}

#[test]
fn reference_bf16_bin_is_converted() {
    let file = read_reference(fixture("bf16"), &LoadOptions::new()).unwrap();
    let config = file.config.rlora_config();
    let (model, _) = load_reference(ref_model(&config), fixture("bf16"), &ref_options()).unwrap();
    assert_matches_pytorch(&model, "reload_bf16");
}

#[test]
fn reference_trained_state_is_reconstructed_from_the_initial_adapter() {
    let config = read_reference(fixture("trained"), &LoadOptions::new())
        .unwrap()
        .config
        .rlora_config_with_compensation();
    let mut options = ref_options();
    options.initial_adapter = Some(fixture("init"));
    let (model, _) = load_reference(ref_model(&config), fixture("trained"), &options).unwrap();
    assert!(model.up_proj.adapter().unwrap().has_compensation());
    assert_matches_pytorch(&model, "trained");
    // Without the pair, the model is the reference's reload, not what it trained.
    let expected = json("expected.json");
    assert_ne!(expected["trained"], expected["reload"]);
    // A model with a pair cannot take a reference adapter without the initial one.
    let err = load_reference(ref_model(&config), fixture("trained"), &ref_options()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::MissingKey { key, .. } if key.ends_with("rlora_A0.weight")),
        "{err}"
    );
}

#[test]
fn converted_reference_adapter_round_trips_through_our_format() {
    let file = read_reference(fixture("trained"), &LoadOptions::new()).unwrap();
    let dir = tmp("convert");
    file.save(&dir, DType::F32).unwrap();
    let config = read_config(&dir).unwrap();
    assert!(!config.is_reference());
    let naming = ref_options().load.naming;
    let (model, _) = load_adapter(
        ref_model(&config.rlora_config()),
        &dir,
        &LoadOptions::new().with_naming(naming),
    )
    .unwrap();
    assert_matches_pytorch(&model, "reload");
    let _: AdapterConfig = config;
}

// ---------------------------------------------------------------- fuzz seeds

/// The fuzz target's property on its committed seeds (and any committed
/// crash inputs): loading never panics, and what loads re-encodes and
/// reloads to the same tensors.
#[test]
fn fuzz_inputs_load_or_fail_cleanly_and_round_trip() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let mut accepted = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let len = u16::from_le_bytes([data[0], data[1]]) as usize;
        let (config, tensors) = data[2..].split_at(len.min(data.len() - 2));
        for strict in [true, false] {
            if let Ok(file) =
                AdapterFile::from_bytes(config, tensors, &LoadOptions::new().with_strict(strict))
            {
                let (json, bytes) = file.encode(DType::F64).unwrap();
                let again =
                    AdapterFile::from_bytes(json.as_bytes(), &bytes, &LoadOptions::new()).unwrap();
                assert_eq!(again.modules, file.modules);
                accepted += 1;
            }
        }
    }
    assert!(
        accepted > 0,
        "no seed loads: the seeds exercise only the error paths"
    );
}

#[test]
fn reference_layout_as_bf16_safetensors_loads_like_the_bf16_bin() {
    // The trained reference adapter, stored in the reference layout as bf16
    // safetensors next to the reference's own config (no burn_rlora fields).
    let file = read_reference(fixture("trained"), &LoadOptions::new()).unwrap();
    let (_, bytes) = file.encode(DType::BF16).unwrap();
    let dir = tmp("ref-safetensors");
    std::fs::write(dir.join(TENSORS_FILE), bytes).unwrap();
    std::fs::copy(
        fixture("trained/adapter_config.json"),
        dir.join(CONFIG_FILE),
    )
    .unwrap();
    let read = read_reference(&*dir, &LoadOptions::new()).unwrap();
    assert!(read.config.is_reference());
    let (model, _) = load_reference(
        ref_model(&read.config.rlora_config()),
        &*dir,
        &ref_options(),
    )
    .unwrap();
    assert_matches_pytorch(&model, "reload_bf16");
}
