//! Adapter checkpoints that round-trip: every preset, the file layout,
//! whole models with rename rules, single layers, autodiff models and half
//! precision. Needs the `store` feature.

use crate::{checkpoint_common, common, suite};

use burn::nn::{Linear, LinearConfig};
use burn::tensor::{backend::Backend, DType, TensorData};
use burn_rlora::checkpoint::{
    load_adapter, read_config, save_adapter, AdapterFile, CheckpointError, LoadOptions,
    ModuleNaming, SaveOptions,
};
use burn_rlora::method::Method;
use burn_rlora::{RLoraConfig, RLoraLinear};
use checkpoint_common::*;
use safetensors::SafeTensors;
use suite::{max_abs_diff, perturb, values};

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
            assert_eq!(
                a.adapter.as_ref().unwrap().lora_a.val().into_data(),
                b.adapter.as_ref().unwrap().lora_a.val().into_data()
            );
            assert_eq!(
                a.adapter.as_ref().unwrap().lora_b.val().into_data(),
                b.adapter.as_ref().unwrap().lora_b.val().into_data()
            );
            assert_eq!(
                a.adapter.as_ref().unwrap().lora_a0.is_some(),
                config.needs_compensation(),
                "{method}"
            );
            if let (Some(x), Some(y)) = (
                &a.adapter.as_ref().unwrap().lora_b0,
                &b.adapter.as_ref().unwrap().lora_b0,
            ) {
                assert_eq!(x.val().into_data(), y.val().into_data());
            }
            assert_eq!(
                a.adapter.as_ref().unwrap().lora_a.is_require_grad(),
                b.adapter.as_ref().unwrap().lora_a.is_require_grad()
            );
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
    let want_a = values(
        model
            .up_proj
            .adapter
            .as_ref()
            .unwrap()
            .lora_a
            .val()
            .transpose(),
    );
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
        assert_eq!(
            got,
            values(model.up_proj.adapter().unwrap().head(i).unwrap()),
            "head {i}"
        );
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
        loaded.adapter.as_ref().unwrap().lora_b.val().into_data(),
        saved.adapter.as_ref().unwrap().lora_b.val().into_data()
    );
    assert!(
        loaded.adapter.as_ref().unwrap().lora_a.is_require_grad()
            && loaded.adapter.as_ref().unwrap().lora_b.is_require_grad()
    );
    assert!(loaded
        .adapter
        .as_ref()
        .unwrap()
        .lora_route
        .as_ref()
        .unwrap()
        .is_require_grad());
    assert!(
        !loaded
            .adapter
            .as_ref()
            .unwrap()
            .lora_a0
            .as_ref()
            .unwrap()
            .is_require_grad(),
        "A0 became trainable"
    );
    assert!(
        !loaded
            .adapter
            .as_ref()
            .unwrap()
            .lora_b0
            .as_ref()
            .unwrap()
            .is_require_grad(),
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
        let want = model
            .up_proj
            .adapter
            .as_ref()
            .unwrap()
            .lora_a
            .val()
            .into_data()
            .convert_dtype(dtype);
        let got = loaded
            .up_proj
            .adapter
            .as_ref()
            .unwrap()
            .lora_a
            .val()
            .into_data();
        assert_eq!(got.dtype, DType::F32, "loaded into an f32 model");
        let want: Vec<f64> = want.iter::<f64>().collect();
        let got: Vec<f64> = got.iter::<f64>().collect();
        assert_eq!(got, want, "{dtype:?}: values are not the rounded originals");
        let exact = values(model.up_proj.adapter.as_ref().unwrap().lora_a.val());
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

// ------------------------------------------------------- earlier versions

#[derive(burn::module::Module, burn_rlora::Adapt, Debug)]
struct Pair<B: Backend> {
    up_proj: RLoraLinear<B>,
    down_proj: RLoraLinear<B>,
}

/// The values the fixture's tensors were filled with, in Burn's layout.
fn fixture_values(rows: usize, cols: usize, k: usize) -> Vec<f64> {
    (0..rows * cols)
        .map(|i| (((i * 7 + k) % 13) as f32 / 13.0 - 0.5) as f64)
        .collect()
}

/// `tests/fixtures/previous-version` was written by the version before
/// `RLoraLinear` carried its adapter as an optional field (an R-LoRA adapter
/// on a 6->4 and a 4->6 layer, rank 2, 3 heads, with router and
/// compensation pair, every tensor filled with known values).
#[test]
fn an_adapter_saved_by_the_previous_version_loads() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/previous-version");
    let config = RLoraConfig::r_lora(2, 8.0, 3);
    let layer = |i, o| RLoraLinear::from_linear(LinearConfig::new(i, o).init(&dev()), &config);
    let fresh = Pair::<NB> {
        up_proj: layer(6, 4).unwrap(),
        down_proj: layer(4, 6).unwrap(),
    };
    let options = LoadOptions::new().with_expected_config(config.clone());
    let (loaded, report) = load_adapter(fresh, &dir, &options).unwrap();
    assert_eq!(
        report.modules,
        [
            ("up_proj".to_string(), "up_proj".to_string()),
            ("down_proj".to_string(), "down_proj".to_string())
        ]
    );
    assert_eq!(
        report.config.base_model_name_or_path.as_deref(),
        Some("fixture/tiny-mlp")
    );
    for (layer, (i, o, k)) in [(&loaded.up_proj, (6, 4, 0)), (&loaded.down_proj, (4, 6, 5))] {
        let a = layer.adapter().unwrap();
        assert_eq!(values(a.lora_a.val()), fixture_values(i, 2, k));
        assert_eq!(values(a.lora_b.val()), fixture_values(3 * 2, o, k + 1));
        let route = a.lora_route.as_ref().unwrap().val();
        assert_eq!(values(route), fixture_values(i, 3, k + 2));
        assert_eq!(
            values(a.lora_a0.as_ref().unwrap().val()),
            fixture_values(i, 2, k + 3)
        );
        assert_eq!(
            values(a.lora_b0.as_ref().unwrap().val()),
            fixture_values(2, o, k + 4)
        );
    }
}
