//! Adapter checkpoints: round trips, whole models, the reference fixture,
//! every load error, atomic saves and merging. Needs the `store` feature.

mod common;
mod suite;

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{backend::Backend, DType, Distribution, Tensor, TensorData};
use burn_rlora::checkpoint::{
    load_adapter, load_reference, merge_into, merge_model, merge_safetensors, read_config,
    read_reference, save_adapter, save_merged, AdapterConfig, AdapterFile, CheckpointError,
    InjectFault, LoadOptions, ModuleNaming, ReferenceOptions, SaveOptions, CONFIG_FILE,
    TENSORS_FILE,
};
use burn_rlora::{Method, RLoraConfig, RLoraError, RLoraLinear};
use safetensors::SafeTensors;
use suite::{max_abs, max_abs_diff, perturb, values};

type NB = NdArray<f32>;

fn dev() -> burn::tensor::Device<NB> {
    Default::default()
}

/// A fresh temporary directory per test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rlora-ckpt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

fn tmp(name: &str) -> TempDir {
    TempDir::new(name)
}

#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    up_proj: RLoraLinear<B>,
    down_proj: RLoraLinear<B>,
    act_free: Linear<B>,
}

#[derive(Module, Debug)]
struct Decoder<B: Backend> {
    layers: Vec<Mlp<B>>,
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.act_free
            .forward(self.down_proj.forward(self.up_proj.forward(x)))
    }
}

impl<B: Backend> Decoder<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.layers.iter().fold(x, |h, l| l.forward(h))
    }
}

fn mlp(config: &RLoraConfig) -> Mlp<NB> {
    let d = dev();
    Mlp {
        up_proj: RLoraLinear::from_linear(LinearConfig::new(8, 12).init(&d), config).unwrap(),
        down_proj: RLoraLinear::from_linear(LinearConfig::new(12, 10).init(&d), config).unwrap(),
        act_free: LinearConfig::new(10, 8).init::<NB>(&d).no_grad(),
    }
}

/// A trained-looking copy: every adapter matrix redrawn.
fn trained(m: Mlp<NB>) -> Mlp<NB> {
    Mlp {
        up_proj: perturb(m.up_proj, 0.3),
        down_proj: perturb(m.down_proj, 0.3),
        act_free: m.act_free,
    }
}

/// The same base with a freshly drawn adapter (what a user builds before loading).
fn fresh_like(m: &Mlp<NB>, config: &RLoraConfig) -> Mlp<NB> {
    let base = |l: &RLoraLinear<NB>| Linear {
        weight: Param::from_tensor(l.weight.val()),
        bias: l.bias.as_ref().map(|b| Param::from_tensor(b.val())),
    };
    let _rng = common::rng_lock();
    NB::seed(&dev(), 999);
    Mlp {
        up_proj: RLoraLinear::from_linear(base(&m.up_proj), config).unwrap(),
        down_proj: RLoraLinear::from_linear(base(&m.down_proj), config).unwrap(),
        act_free: m.act_free.clone(),
    }
}

fn input(d_in: usize) -> Tensor<NB, 2> {
    Tensor::random([5, d_in], Distribution::Normal(0.0, 1.0), &dev())
}

fn save_default(model: &Mlp<NB>, config: &RLoraConfig, dir: &Path) {
    save_adapter(model, dir, &SaveOptions::new(config.clone())).unwrap();
}

fn read_bytes(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(dir.join(CONFIG_FILE)).unwrap(),
        std::fs::read(dir.join(TENSORS_FILE)).unwrap(),
    )
}

/// Rewrite the tensor file through `edit` (name -> (dtype, shape, bytes)) and
/// drop the digest from the config, so that the edit itself is what gets checked.
fn rewrite(
    dir: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let (json, bytes) = read_bytes(dir);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut all);
    let views: Vec<_> = all
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join(TENSORS_FILE),
        safetensors::tensor::serialize(views, None).unwrap(),
    )
    .unwrap();
    edit_config(dir, |c| {
        c.as_object_mut().unwrap().remove("tensor_file");
    });
    let _ = json;
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(CONFIG_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn load_err(model: Mlp<NB>, dir: &Path, options: &LoadOptions) -> CheckpointError {
    match load_adapter(model, dir, options) {
        Ok(_) => panic!("loading {} should have failed", dir.display()),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- round trips

#[test]
fn round_trip_every_preset_is_bit_identical() {
    for method in Method::ALL {
        let _rng = common::rng_lock();
        NB::seed(&dev(), 1);
        let config = method.config(4, 16.0, 3);
        let model = trained(mlp(&config));
        let dir = tmp(&format!("preset-{method}"));
        save_default(&model, &config, &dir);
        let fresh = fresh_like(&model, &config);
        let x = input(8);
        let before = model.forward(x.clone()).into_data();
        assert_ne!(
            fresh.forward(x.clone()).into_data(),
            before,
            "{method}: the fresh model already computes the trained output; the test is vacuous"
        );
        let (loaded, report) = load_adapter(fresh, &dir, &LoadOptions::new()).unwrap();
        assert_eq!(
            loaded.forward(x).into_data(),
            before,
            "{method}: outputs differ"
        );
        assert_eq!(report.modules.len(), 2);
        assert_eq!(report.config.rlora_config(), config);
        for (a, b) in [
            (&loaded.up_proj, &model.up_proj),
            (&loaded.down_proj, &model.down_proj),
        ] {
            assert_eq!(a.lora_a.val().into_data(), b.lora_a.val().into_data());
            assert_eq!(a.lora_b.val().into_data(), b.lora_b.val().into_data());
            assert_eq!(a.lora_a0.is_some(), config.needs_compensation(), "{method}");
            if let (Some(x), Some(y)) = (&a.lora_b0, &b.lora_b0) {
                assert_eq!(x.val().into_data(), y.val().into_data());
            }
            assert_eq!(a.lora_a.is_require_grad(), b.lora_a.is_require_grad());
        }
    }
}

#[test]
fn file_holds_only_adapter_tensors_in_pytorch_layout_with_reference_names() {
    let _rng = common::rng_lock();
    NB::seed(&dev(), 2);
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let model = trained(mlp(&config));
    let dir = tmp("layout");
    let naming = ModuleNaming::new().with_prefix("base_model.model.model.layers.0.mlp.");
    save_adapter(
        &model,
        &dir,
        &SaveOptions::new(config.clone())
            .with_naming(naming)
            .with_base_model("Qwen/Qwen2.5-0.5B"),
    )
    .unwrap();
    let (json, bytes) = read_bytes(&dir);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let up = "base_model.model.model.layers.0.mlp.up_proj";
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    // 2 modules x (A, 3 heads, router, A0, B0).
    assert_eq!(names.len(), 2 * 7, "{names:?}");
    assert!(names
        .iter()
        .all(|n| !n.ends_with(".bias") && !n.contains(".weight.")));
    let a = st.tensor(&format!("{up}.lora_A.weight")).unwrap();
    assert_eq!(a.shape(), [4, 8]);
    let want_a = values(model.up_proj.lora_a.val().transpose());
    let got_a: Vec<f64> = TensorData::from_bytes_vec(a.data().to_vec(), [4, 8], DType::F32)
        .iter::<f64>()
        .collect();
    assert_eq!(got_a, want_a);
    for i in 0..3 {
        let h = st.tensor(&format!("{up}.lora_B{i}.weight")).unwrap();
        assert_eq!(h.shape(), [12, 4]);
        let got: Vec<f64> = TensorData::from_bytes_vec(h.data().to_vec(), [12, 4], DType::F32)
            .iter::<f64>()
            .collect();
        assert_eq!(got, values(model.up_proj.head(i).unwrap()), "head {i}");
    }
    assert_eq!(
        st.tensor(&format!("{up}.lora_route.weight"))
            .unwrap()
            .shape(),
        [3, 8]
    );
    assert_eq!(
        st.tensor(&format!("{up}.rlora_A0.weight")).unwrap().shape(),
        [4, 8]
    );
    assert_eq!(
        st.tensor(&format!("{up}.rlora_B0.weight")).unwrap().shape(),
        [12, 4]
    );

    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["peft_type"], "LORA");
    assert_eq!(v["r"], 4);
    assert_eq!(v["lora_alpha"], 16.0);
    assert_eq!(v["lora_nums"], 3);
    assert_eq!(v["lora_dropout"], 0.1);
    assert_eq!(v["burn_rlora_format"], 1);
    assert_eq!(v["base_model_name_or_path"], "Qwen/Qwen2.5-0.5B");
    assert_eq!(
        v["target_modules"],
        serde_json::json!(["down_proj", "up_proj"])
    );
    assert_eq!(v["target_module_paths"][1], up);
    assert_eq!(v["rlora"]["num_heads"], 3);
    assert_eq!(read_config(&dir).unwrap().rlora_config(), config);
}

#[test]
fn whole_model_round_trip_with_rename_rules() {
    let _rng = common::rng_lock();
    NB::seed(&dev(), 3);
    let config = RLoraConfig::r_lora(2, 8.0, 4);
    let decoder = Decoder {
        layers: (0..3).map(|_| trained(mlp(&config))).collect(),
    };
    let naming = ModuleNaming::new()
        .with_rule(r"^layers\.(\d+)\.", "model.layers.$1.mlp.")
        .with_prefix("base_model.model.");
    let dir = tmp("whole");
    let written = save_adapter(
        &decoder,
        &dir,
        &SaveOptions::new(config.clone()).with_naming(naming.clone()),
    )
    .unwrap();
    assert_eq!(written.target_module_paths.len(), 6);
    assert!(written
        .target_module_paths
        .contains(&"base_model.model.model.layers.2.mlp.down_proj".to_string()));

    let fresh = Decoder {
        layers: decoder
            .layers
            .iter()
            .map(|l| fresh_like(l, &config))
            .collect(),
    };
    let x = input(8);
    let before = decoder.forward(x.clone()).into_data();
    // Without the naming, no module of the model is found in the file.
    let err = load_adapter(fresh.clone(), &dir, &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::MissingKey { key, .. } if key == "layers.0.up_proj.lora_A.weight"),
        "{err}"
    );
    let (loaded, report) =
        load_adapter(fresh, &dir, &LoadOptions::new().with_naming(naming)).unwrap();
    assert_eq!(report.modules.len(), 6);
    assert_eq!(report.modules[0].0, "layers.0.up_proj");
    assert_eq!(loaded.forward(x).into_data(), before);
}

#[test]
fn a_single_layer_round_trips_under_its_prefix_name() {
    let _rng = common::rng_lock();
    NB::seed(&dev(), 9);
    let config = RLoraConfig::hydra_lora_init(2, 8.0, 2);
    let layer = perturb(
        RLoraLinear::from_linear(LinearConfig::new(6, 5).init::<NB>(&dev()), &config).unwrap(),
        0.3,
    );
    for (prefix, name) in [
        ("", "layer"),
        (
            "model.layers.1.mlp.gate_proj.",
            "model.layers.1.mlp.gate_proj",
        ),
    ] {
        let dir = tmp("single");
        let naming = ModuleNaming::new().with_prefix(prefix);
        let written = save_adapter(
            &layer,
            &dir,
            &SaveOptions::new(config.clone()).with_naming(naming.clone()),
        )
        .unwrap();
        assert_eq!(written.target_module_paths, vec![name.to_string()]);
        let fresh = RLoraLinear::from_linear(
            Linear {
                weight: layer.weight.clone(),
                bias: layer.bias.clone(),
            },
            &config,
        )
        .unwrap();
        let (loaded, _) =
            load_adapter(fresh, &dir, &LoadOptions::new().with_naming(naming)).unwrap();
        let x = input(6);
        assert_eq!(
            loaded.forward(x.clone()).into_data(),
            layer.forward(x).into_data()
        );
    }
}

#[test]
fn loading_into_an_autodiff_model_keeps_trainable_and_frozen_flags() {
    type AD = burn::backend::Autodiff<NB>;
    let config = RLoraConfig::r_lora(2, 8.0, 3);
    let make =
        || RLoraLinear::from_linear(LinearConfig::new(6, 5).init::<AD>(&dev()), &config).unwrap();
    let _rng = common::rng_lock();
    AD::seed(&dev(), 10);
    let saved = make();
    let dir = tmp("autodiff");
    save_adapter(&saved, &dir, &SaveOptions::new(config.clone())).unwrap();
    let (loaded, _) = load_adapter(make(), &dir, &LoadOptions::new()).unwrap();
    assert_eq!(
        loaded.lora_b.val().into_data(),
        saved.lora_b.val().into_data()
    );
    assert!(loaded.lora_a.is_require_grad() && loaded.lora_b.is_require_grad());
    assert!(loaded.lora_route.as_ref().unwrap().is_require_grad());
    assert!(
        !loaded.lora_a0.as_ref().unwrap().is_require_grad(),
        "A0 became trainable"
    );
    assert!(
        !loaded.lora_b0.as_ref().unwrap().is_require_grad(),
        "B0 became trainable"
    );
    assert!(
        !loaded.weight.is_require_grad(),
        "the base became trainable"
    );
}

#[test]
fn half_precision_files_are_converted_to_the_model_type() {
    let _rng = common::rng_lock();
    NB::seed(&dev(), 4);
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let model = trained(mlp(&config));
    for dtype in [DType::BF16, DType::F16, DType::F64] {
        let dir = tmp(&format!("half-{dtype:?}"));
        let (file, _) = AdapterFile::from_model(&model, &SaveOptions::new(config.clone())).unwrap();
        file.save(&dir, dtype).unwrap();
        let (loaded, _) =
            load_adapter(fresh_like(&model, &config), &dir, &LoadOptions::new()).unwrap();
        let want = model.up_proj.lora_a.val().into_data().convert_dtype(dtype);
        let got = loaded.up_proj.lora_a.val().into_data();
        assert_eq!(got.dtype, DType::F32, "loaded into an f32 model");
        let want: Vec<f64> = want.iter::<f64>().collect();
        let got: Vec<f64> = got.iter::<f64>().collect();
        assert_eq!(got, want, "{dtype:?}: values are not the rounded originals");
        let exact = values(model.up_proj.lora_a.val());
        if dtype != DType::F64 {
            assert!(
                max_abs_diff(&got, &exact) > 0.0,
                "{dtype:?} was not rounded at all"
            );
        } else {
            assert_eq!(got, exact);
        }
    }
}

// -------------------------------------------------------------- error cases

fn saved(name: &str, config: &RLoraConfig) -> (Mlp<NB>, TempDir) {
    let _rng = common::rng_lock();
    NB::seed(&dev(), 5);
    let model = trained(mlp(config));
    let dir = tmp(name);
    save_default(&model, config, &dir);
    let fresh = fresh_like(&model, config);
    (fresh, dir)
}

#[test]
fn missing_key_is_named() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("missing", &config);
    rewrite(&dir, |all| {
        all.retain(|(n, ..)| n != "up_proj.lora_B1.weight")
    });
    let err = load_err(fresh, &dir, &LoadOptions::new());
    match &err {
        CheckpointError::MissingKey { key, expected } => {
            assert_eq!(key, "up_proj.lora_B1.weight");
            assert!(expected.contains("12, 4"), "{expected}");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("up_proj.lora_B1.weight"));
}

#[test]
fn unexpected_key_fails_strict_and_warns_lenient() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("unexpected", &config);
    rewrite(&dir, |all| {
        all.push((
            "up_proj.lora_magnitude".into(),
            safetensors::Dtype::F32,
            vec![2],
            vec![0; 8],
        ))
    });
    let err = load_err(fresh.clone(), &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::UnexpectedKey { key, found, .. } if key == "up_proj.lora_magnitude" && found == &vec![2]),
        "{err}"
    );
    let (_, report) = load_adapter(fresh, &dir, &LoadOptions::new().with_strict(false)).unwrap();
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].contains("up_proj.lora_magnitude"));
}

#[test]
fn shape_mismatch_in_file_and_against_model() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("shape", &config);
    // A model whose up_proj has 9 inputs does not take an 8-input adapter.
    let d = dev();
    let other = Mlp {
        up_proj: RLoraLinear::from_linear(LinearConfig::new(9, 12).init(&d), &config).unwrap(),
        ..fresh.clone()
    };
    let err = load_err(other, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ShapeMismatch { key, expected, found }
            if key == "up_proj.lora_A.weight" && expected == &vec![4, 9] && found == &vec![4, 8]),
        "{err}"
    );
    // A head whose shape disagrees with the others in the file.
    rewrite(&dir, |all| {
        let h = all
            .iter_mut()
            .find(|(n, ..)| n == "up_proj.lora_B2.weight")
            .unwrap();
        h.2 = vec![6, 8];
    });
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ShapeMismatch { key, expected, found }
            if key == "up_proj.lora_B2.weight" && expected == &vec![12, 4] && found == &vec![6, 8]),
        "{err}"
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("dtype", &config);
    rewrite(&dir, |all| {
        let a = all
            .iter_mut()
            .find(|(n, ..)| n == "down_proj.lora_A.weight")
            .unwrap();
        a.1 = safetensors::Dtype::I32;
    });
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::UnsupportedDtype { key, found } if key == "down_proj.lora_A.weight" && found == "I32"),
        "{err}"
    );
}

#[test]
fn truncated_or_corrupt_files_are_errors() {
    let config = RLoraConfig::lora(4, 8.0);
    let (fresh, dir) = saved("corrupt", &config);
    let (json, bytes) = read_bytes(&dir);
    // The digest in the config catches a truncated tensor file first.
    let cut = &bytes[..bytes.len() - 7];
    let err = AdapterFile::from_bytes(&json, cut, true).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "tensor_file"),
        "{err}"
    );
    // Without a digest, the safetensors reader reports it.
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v.as_object_mut().unwrap().remove("tensor_file");
    let json2 = serde_json::to_vec(&v).unwrap();
    for bad in [cut, &bytes[..5], &[0xff; 64][..], &[][..]] {
        let err = AdapterFile::from_bytes(&json2, bad, true).unwrap_err();
        assert!(
            matches!(err, CheckpointError::CorruptTensors { .. }),
            "{err}"
        );
    }
    // A corrupt config.
    std::fs::write(dir.join(CONFIG_FILE), &json[..json.len() / 2]).unwrap();
    let err = load_err(fresh.clone(), &dir, &LoadOptions::new());
    assert!(
        matches!(err, CheckpointError::CorruptConfig { .. }),
        "{err}"
    );
    // A missing file.
    std::fs::remove_file(dir.join(TENSORS_FILE)).unwrap();
    std::fs::write(dir.join(CONFIG_FILE), &json).unwrap();
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::Io { path, .. } if path.ends_with(TENSORS_FILE)),
        "{err}"
    );
}

#[test]
fn config_disagreeing_with_tensors_is_an_error() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("nums", &config);
    // lora_nums = 2 (and the rlora config with it) but the file has 3 heads.
    edit_config(&dir, |c| {
        c["lora_nums"] = 2.into();
        c["rlora"]["num_heads"] = 2.into();
    });
    let err = load_err(fresh.clone(), &dir, &LoadOptions::new());
    match &err {
        CheckpointError::ConfigMismatch {
            key,
            expected,
            found,
        } => {
            assert_eq!(key, "lora_nums");
            assert!(expected.contains('2'), "{expected}");
            assert!(found.contains("lora_B2"), "{found}");
        }
        other => panic!("wrong error: {other}"),
    }
    // The reference field and the full config disagree.
    edit_config(&dir, |c| {
        c["rlora"]["num_heads"] = 3.into();
    });
    let err = load_err(fresh.clone(), &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "lora_nums"),
        "{err}"
    );
    // The model was built with another config than the file's.
    edit_config(&dir, |c| c["lora_nums"] = 3.into());
    let err = load_err(
        fresh,
        &dir,
        &LoadOptions::new().with_expected_config(config.clone().with_alpha(8.0)),
    );
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "rlora"),
        "{err}"
    );
}

#[test]
fn unknown_format_version_is_an_error() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("version", &config);
    edit_config(&dir, |c| c["burn_rlora_format"] = 7.into());
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::UnknownFormatVersion { expected, found: 7 } if expected == &vec![1]),
        "{err}"
    );
}

#[test]
fn model_and_file_structure_disagreements_are_errors() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("structure", &config);
    // A model with 2 heads per layer.
    let two = RLoraConfig::r_lora(4, 16.0, 2);
    let err = load_err(fresh_like(&fresh, &two), &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "lora_nums"),
        "{err}"
    );
    // A file without compensation pair into a model that has one.
    let lora_dir = tmp("structure-lora");
    let hydra = RLoraConfig::hydra_lora(4, 16.0, 3);
    save_default(&fresh_like(&fresh, &hydra), &hydra, &lora_dir);
    let err = load_err(fresh.clone(), &lora_dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::MissingKey { key, .. } if key == "up_proj.rlora_A0.weight"),
        "{err}"
    );
    // Saving with a config that does not describe the layers.
    let err = save_adapter(&fresh, tmp("structure-save"), &SaveOptions::new(hydra)).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key.contains("compensation")),
        "{err}"
    );
    // A model with no adapted layer.
    let plain = LinearConfig::new(4, 4).init::<NB>(&dev());
    let err = save_adapter(&plain, tmp("structure-none"), &SaveOptions::new(config)).unwrap_err();
    assert!(matches!(err, CheckpointError::NoAdapters), "{err}");
}

#[test]
fn bad_naming_rules_are_errors() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let model = mlp(&config);
    let dir = tmp("naming");
    let err = save_adapter(
        &model,
        &dir,
        &SaveOptions::new(config.clone()).with_naming(ModuleNaming::new().with_rule("(", "x")),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CheckpointError::InvalidRule { pattern, .. } if pattern == "("),
        "{err}"
    );
    let err = save_adapter(
        &model,
        &dir,
        &SaveOptions::new(config).with_naming(ModuleNaming::new().with_rule(".*", "same")),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CheckpointError::DuplicateModuleName { name, .. } if name == "same"),
        "{err}"
    );
}

// ------------------------------------------------------------- atomic saves

#[test]
fn failed_save_leaves_previous_checkpoint_intact() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("atomic", &config);
    let before = read_bytes(&dir);
    let _rng = common::rng_lock();
    NB::seed(&dev(), 77);
    let other = trained(mlp(&config));
    // An I/O error while the new tensor file is written (step 3: after the
    // parent and the temporary directory, creating the file worked).
    let (file, dtype) = AdapterFile::from_model(&other, &SaveOptions::new(config.clone())).unwrap();
    let (result, fired) = file.save_injecting(&*dir, dtype, InjectFault::Error(3));
    assert!(fired);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Io { path, .. } if path.as_path() == &*dir),
        "{err}"
    );
    assert_eq!(read_bytes(&dir), before, "the previous checkpoint changed");
    assert!(load_adapter(fresh, &dir, &LoadOptions::new()).is_ok());
    // A foreign file in the directory: the save refuses rather than drop it.
    std::fs::write(dir.join("notes.txt"), b"x").unwrap();
    let err = save_adapter(&other, &dir, &SaveOptions::new(config.clone())).unwrap_err();
    assert!(
        matches!(err, CheckpointError::WouldLoseData { .. }),
        "{err}"
    );
    assert_eq!(read_bytes(&dir), before);
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    // Then the save goes through and replaces both files, leaving nothing else.
    save_adapter(&other, &dir, &SaveOptions::new(config)).unwrap();
    assert_ne!(read_bytes(&dir).1, before.1);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left: {names:?}");
    let parent = dir.parent().unwrap();
    let prefix = format!(".{}.rlora-", dir.file_name().unwrap().to_string_lossy());
    let hidden: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn config_from_another_save_is_detected() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("digest", &config);
    let old_json = read_bytes(&dir).0;
    let _rng = common::rng_lock();
    NB::seed(&dev(), 78);
    save_default(&trained(mlp(&config)), &config, &dir);
    // As if a crash happened between the two renames.
    std::fs::write(dir.join(CONFIG_FILE), old_json).unwrap();
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "tensor_file"),
        "{err}"
    );
}

// ------------------------------------------------------------------ merging

#[derive(Module, Debug)]
struct PlainMlp<B: Backend> {
    up_proj: Linear<B>,
    down_proj: Linear<B>,
    act_free: Linear<B>,
}

#[test]
fn merge_whole_model_into_plain_type_is_exact() {
    for config in [
        RLoraConfig::lora(4, 8.0),
        RLoraConfig::r_lora_no_router(4, 16.0, 3),
    ] {
        let _rng = common::rng_lock();
        NB::seed(&dev(), 6);
        let model = trained(mlp(&config));
        let x = input(8);
        let want = values(model.forward(x.clone()));
        let d = dev();
        let plain = PlainMlp {
            up_proj: LinearConfig::new(8, 12).init::<NB>(&d),
            down_proj: LinearConfig::new(12, 10).init::<NB>(&d),
            act_free: LinearConfig::new(10, 8).init::<NB>(&d),
        };
        let plain = merge_into(model.clone(), &config, plain).unwrap();
        let y = plain
            .act_free
            .forward(plain.down_proj.forward(plain.up_proj.forward(x)));
        let got = values(y);
        let diff = max_abs_diff(&got, &want);
        assert!(
            diff < 1e-5 * max_abs(&want).max(1.0),
            "merged off by {diff}"
        );
        // The per-layer merge agrees with the whole-model one.
        let layer = model.up_proj.merge().unwrap();
        let w = max_abs_diff(
            &values(layer.weight.val()),
            &values(plain.up_proj.weight.val()),
        );
        assert!(w < 1e-6, "whole-model and per-layer merge differ by {w}");
        // And the merged file holds no adapter tensor.
        let merged_dir = tmp("merged");
        let path = merged_dir.join("merged.safetensors");
        save_merged(model, &config, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.names().len(), 6, "{:?}", st.names());
        assert!(st.names().iter().all(|n| !n.contains("lora")));
    }
}

#[test]
fn merging_a_softmax_router_explains_why_not() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let model = mlp(&config);
    let err = merge_into(model, &config, mlp(&config)).unwrap_err();
    match &err {
        CheckpointError::Layer(RLoraError::NotMergeable { reason }) => {
            assert!(reason.contains("softmax router"), "{reason}");
            assert!(reason.contains("up_proj"), "{reason}");
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn merge_safetensors_matches_layer_merge() {
    let _rng = common::rng_lock();
    NB::seed(&dev(), 8);
    let config = RLoraConfig::r_lora_no_router(4, 16.0, 3);
    let model = trained(mlp(&config));
    let dir = tmp("merge-st");
    save_adapter(
        &model,
        &dir,
        &SaveOptions::new(config.clone())
            .with_naming(ModuleNaming::new().with_prefix("base_model.model.")),
    )
    .unwrap();
    // A PyTorch-layout base file: `<module>.weight` is [out, in].
    let pt = |l: &RLoraLinear<NB>| values(l.weight.val().transpose());
    let f32_bytes = |v: Vec<f64>| {
        v.iter()
            .flat_map(|x| (*x as f32).to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let base = [
        ("up_proj.weight", vec![12, 8], f32_bytes(pt(&model.up_proj))),
        (
            "down_proj.weight",
            vec![10, 12],
            f32_bytes(pt(&model.down_proj)),
        ),
        (
            "lm_head.weight",
            vec![2, 2],
            f32_bytes(vec![1.0, 2.0, 3.0, 4.0]),
        ),
    ];
    let views: Vec<_> = base
        .iter()
        .map(|(n, s, b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let base_bytes = safetensors::tensor::serialize(views, None).unwrap();
    let adapter = AdapterFile::read(&dir, true).unwrap();
    let merged = merge_safetensors(&adapter, &base_bytes, "base_model.model.").unwrap();
    let st = SafeTensors::deserialize(&merged).unwrap();
    let read = |n: &str, shape: [usize; 2]| -> Vec<f64> {
        TensorData::from_bytes_vec(st.tensor(n).unwrap().data().to_vec(), shape, DType::F32)
            .iter::<f64>()
            .collect()
    };
    let want = values(model.up_proj.merge().unwrap().weight.val().transpose());
    let diff = max_abs_diff(&read("up_proj.weight", [12, 8]), &want);
    assert!(diff < 1e-6, "merged weight off by {diff}");
    assert_eq!(read("lm_head.weight", [2, 2]), vec![1.0, 2.0, 3.0, 4.0]);
    // Without stripping the prefix, the base has no such weight.
    let err = merge_safetensors(&adapter, &base_bytes, "").unwrap_err();
    assert!(
        matches!(&err, CheckpointError::MissingKey { key, .. } if key == "base_model.model.down_proj.weight"),
        "{err}"
    );
}

#[test]
fn merging_with_another_layers_config_is_a_typed_error() {
    let config = RLoraConfig::r_lora_no_router(4, 16.0, 3);
    let model = mlp(&config);
    for (other, field, want, found) in [
        (RLoraConfig::r_lora_no_router(2, 16.0, 3), "rank", 2, 4),
        (RLoraConfig::r_lora_no_router(4, 16.0, 2), "num_heads", 2, 3),
    ] {
        let err = merge_model(model.clone(), &other).unwrap_err();
        match &err {
            CheckpointError::MergeConfigMismatch {
                layer,
                field: f,
                config,
                found: got,
            } => {
                assert_eq!(
                    (layer.as_str(), *f, *config, *got),
                    ("up_proj", field, want, found)
                );
            }
            other => panic!("wrong error: {other}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "layer 'up_proj' does not match the merge config: the config has \
                 {field} = {want}, the layer has {found}"
            )
        );
    }
    // The config the layers were built with merges.
    assert!(merge_model(model, &config).is_ok());
}

// ------------------------------------------------------- reference fixture

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

#[derive(Module, Debug)]
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
    let file = read_reference(fixture("trained"), true).unwrap();
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
    let file = read_reference(fixture("bf16"), true).unwrap();
    let config = file.config.rlora_config();
    let (model, _) = load_reference(ref_model(&config), fixture("bf16"), &ref_options()).unwrap();
    assert_matches_pytorch(&model, "reload_bf16");
}

#[test]
fn reference_trained_state_is_reconstructed_from_the_initial_adapter() {
    let config = read_reference(fixture("trained"), true)
        .unwrap()
        .config
        .rlora_config_with_compensation();
    let mut options = ref_options();
    options.initial_adapter = Some(fixture("init"));
    let (model, _) = load_reference(ref_model(&config), fixture("trained"), &options).unwrap();
    assert!(model.up_proj.has_compensation());
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
    let file = read_reference(fixture("trained"), true).unwrap();
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
            if let Ok(file) = AdapterFile::from_bytes(config, tensors, strict) {
                let (json, bytes) = file.encode(DType::F64).unwrap();
                let again = AdapterFile::from_bytes(json.as_bytes(), &bytes, true).unwrap();
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
    let file = read_reference(fixture("trained"), true).unwrap();
    let (_, bytes) = file.encode(DType::BF16).unwrap();
    let dir = tmp("ref-safetensors");
    std::fs::write(dir.join(TENSORS_FILE), bytes).unwrap();
    std::fs::copy(
        fixture("trained/adapter_config.json"),
        dir.join(CONFIG_FILE),
    )
    .unwrap();
    let read = read_reference(&*dir, true).unwrap();
    assert!(read.config.is_reference());
    let (model, _) = load_reference(
        ref_model(&read.config.rlora_config()),
        &*dir,
        &ref_options(),
    )
    .unwrap();
    assert_matches_pytorch(&model, "reload_bf16");
}
