//! Merging adapters into their base weights: whole models, the refusal for
//! a softmax router, and base files in PyTorch layout. Needs the `store` feature.

use crate::{checkpoint_common, common, suite};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{backend::Backend, DType, TensorData};
use burn_rlora::checkpoint::{
    merge_into, merge_model, merge_safetensors, save_adapter, save_merged, AdapterFile,
    CheckpointError, LoadOptions, ModuleNaming, SaveOptions,
};
use burn_rlora::{RLoraConfig, RLoraError, RLoraLinear};
use checkpoint_common::*;
use safetensors::SafeTensors;
use suite::{max_abs, max_abs_diff, values};

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
    let adapter = AdapterFile::read(&dir, &LoadOptions::new()).unwrap();
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

// ------------------------------------------------------- reference fixture

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
    // The config the layers were built with merges, into plain layers that
    // compute what the adapted ones did.
    let x = input(8);
    let want = values(model.forward(x.clone()));
    let merged = merge_model(model, &config).unwrap();
    assert!(!merged.up_proj.is_adapted() && !merged.down_proj.is_adapted());
    let diff = max_abs_diff(&values(merged.forward(x)), &want);
    assert!(
        diff < 1e-5 * max_abs(&want).max(1.0),
        "merged off by {diff}"
    );
}
