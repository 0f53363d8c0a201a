//! Standard PEFT LoRA adapters, made by PEFT itself on the tiny Llama and
//! Qwen2 models (`scripts/peft-fixtures.py`: `tests/fixtures/peft_*`),
//! load with `load_decoder_adapter` onto the GGUF-loaded model and give
//! PEFT's logits: every logit of two inputs per adapter, on flex and
//! ndarray, within [`TOLERANCE`].

use std::path::{Path, PathBuf};

use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_rlora::adapt::{visit_layers, LayerVisitor};
use burn_rlora::checkpoint::{AdapterLayout, CheckpointError};
use burn_rlora::RLoraLinear;
use burn_rlora_gguf::GgufFile;
use burn_rlora_llm::{
    load_decoder, load_decoder_adapter, AdapterLoadError, CausalLm, DecoderConfig,
};
use serde_json::Value;

/// The largest absolute logit difference accepted between this crate and
/// PEFT (both float32; the base models alone agree with transformers
/// within 9e-6, and the adapters change the logits by 6 to 10).
const TOLERANCE: f32 = 3e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("peft_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn base<B: Backend>(arch: &str) -> CausalLm<B> {
    let mut file = GgufFile::open(fixtures().join(format!("decoder_tiny_{arch}.gguf"))).unwrap();
    let config = DecoderConfig::from_gguf(&file).unwrap();
    load_decoder::<B>(&config, &mut file, &Default::default()).unwrap()
}

fn logits<B: Backend>(m: &CausalLm<B>, ids: &[u32]) -> Vec<f32> {
    let tokens = m.tokens(&[ids], &Default::default()).unwrap();
    let out: Tensor<B, 3> = m.forward(tokens, None).unwrap();
    out.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// `(path, rank, scaling)` of every adapted layer.
fn adapted<B: Backend>(m: &CausalLm<B>) -> Vec<(String, usize, f64)> {
    struct Found(Vec<(String, usize, f64)>);
    impl LayerVisitor for Found {
        fn visit<B: Backend>(&mut self, path: &str, layer: &RLoraLinear<B>) {
            if let Some(a) = layer.adapter() {
                assert_eq!(a.num_heads(), 1, "{path}");
                self.0.push((path.to_string(), a.rank(), a.scaling()));
            }
        }
    }
    let mut found = Found(Vec::new());
    visit_layers(m, &mut found);
    found.0
}

/// Loads adapter `name` from its directory `adapter[dir_key]` on backend
/// `B`, checks its layers against PEFT's, and returns the largest logit
/// difference from PEFT's logits.
fn max_diff<B: Backend>(name: &str, adapter: &Value, dir_key: &str) -> f32 {
    let arch = adapter["arch"].as_str().unwrap();
    let dir = fixtures().join(adapter[dir_key].as_str().unwrap());
    assert_eq!(
        burn_rlora::checkpoint::adapter_layout(&dir, &Default::default()).unwrap(),
        AdapterLayout::PeftLora
    );
    let (model, report) = load_decoder_adapter(base::<B>(arch), &dir).unwrap();

    // The same layers, ranks and scalings as PEFT's LoRA layers.
    let peft = adapter["modules"].as_object().unwrap();
    let mut got = adapted(&model);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want: Vec<(String, usize, f64)> = peft
        .iter()
        .map(|(path, m)| {
            (
                path.clone(),
                m["r"].as_u64().unwrap() as usize,
                m["scaling"].as_f64().unwrap(),
            )
        })
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), want.len(), "{name}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.0, g.1), (&w.0, w.1), "{name}");
        assert!(
            (g.2 - w.2).abs() < 1e-12,
            "{name} {}: scaling {} vs PEFT's {}",
            g.0,
            g.2,
            w.2
        );
    }
    assert_eq!(report.modules.len(), want.len(), "{name}");
    let fan_in_fan_out = adapter["saved_config_edit"].get("fan_in_fan_out").is_some();
    assert_eq!(
        report.warnings.iter().any(|w| w.contains("fan_in_fan_out")),
        fan_in_fan_out,
        "{name}: {:?}",
        report.warnings
    );

    let mut worst = 0.0f32;
    for case in adapter["cases"].as_array().unwrap() {
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let want: Vec<f32> = case["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        let got = logits(&model, &ids);
        assert_eq!(got.len(), want.len(), "{name}");
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        worst = worst.max(diff);
    }
    worst
}

#[test]
fn peft_adapters_give_pefts_logits() {
    let doc = reference();
    let adapters = doc["adapters"].as_object().unwrap();
    assert_eq!(adapters.len(), 5);
    let mut bins = 0;
    for (name, adapter) in adapters {
        let change = adapter["max_abs_logit_change_over_base"].as_f64().unwrap();
        let flex = max_diff::<Flex>(name, adapter, "dir");
        let ndarray = max_diff::<NdArray<f32>>(name, adapter, "dir");
        eprintln!(
            "{name:22} max |logit - PEFT's|: flex {flex:.2e}, ndarray {ndarray:.2e} \
             (the adapter changes the logits by up to {change:.2})"
        );
        assert!(
            flex <= TOLERANCE && ndarray <= TOLERANCE,
            "{name}: {flex} {ndarray}"
        );
        // The same adapter as a torch.save `adapter_model.bin`: the same logits.
        if adapter["bin_dir"].is_string() {
            assert_eq!(
                max_diff::<Flex>(name, adapter, "bin_dir"),
                flex,
                "{name} (.bin)"
            );
            bins += 1;
        }
    }
    assert_eq!(bins, 1);
}

/// A PEFT directory this crate does not load is an error naming the
/// field and the file.
#[test]
fn unsupported_peft_adapters_are_refused_by_name() {
    let source = fixtures().join("peft_llama_mlp");
    let dir = std::env::temp_dir().join(format!("rlora-peft-llm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        source.join("adapter_model.safetensors"),
        dir.join("adapter_model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string(source.join("adapter_config.json")).unwrap();
    for (from, to, field) in [
        (
            "\"modules_to_save\": null",
            "\"modules_to_save\": [\"lm_head\"]",
            "modules_to_save",
        ),
        ("\"use_dora\": false", "\"use_dora\": true", "use_dora"),
        ("\"bias\": \"none\"", "\"bias\": \"lora_only\"", "bias"),
    ] {
        assert!(config.contains(from), "{from}");
        std::fs::write(dir.join("adapter_config.json"), config.replace(from, to)).unwrap();
        let e = load_decoder_adapter(base::<Flex>("llama"), &dir).unwrap_err();
        let AdapterLoadError::Checkpoint(e) = e else {
            panic!("{e}");
        };
        assert!(
            matches!(e.innermost(), CheckpointError::UnsupportedConfig { field: f, .. } if f == field),
            "{e}"
        );
        assert!(e.to_string().contains("adapter_config.json"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
