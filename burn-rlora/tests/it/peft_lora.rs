//! Standard PEFT LoRA adapters (`lora_A.weight`, `lora_B.weight`) on a small
//! `#[derive(Adapt)]` model: the output PEFT's `lora.Linear` computes, the
//! config's per-module ranks and targets as PEFT matches them, and every
//! refusal and layout error, by name. The decoders' logits against PEFT
//! itself are in burn-rlora-llm's `peft_decoders` tests.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::nn::LinearConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_rlora::checkpoint::{
    adapter_layout, load_adapter, load_peft_lora, AdapterLayout, CheckpointError, LoadOptions,
    ModuleNaming, PeftLoraConfig, PeftLoraFile,
};
use burn_rlora::{Adapt, RLoraConfig, RLoraLinear};

type NB = NdArray<f32>;

#[derive(Module, Adapt, Debug)]
struct Attn<B: Backend> {
    q_proj: RLoraLinear<B>,
    v_proj: RLoraLinear<B>,
}

#[derive(Module, Adapt, Debug)]
struct Block<B: Backend> {
    self_attn: Attn<B>,
    mlp_up: RLoraLinear<B>,
}

#[derive(Module, Adapt, Debug)]
struct Inner<B: Backend> {
    layers: Vec<Block<B>>,
}

/// Paths as in a Hugging Face model: `model.layers.0.self_attn.q_proj`, `head`.
#[derive(Module, Adapt, Debug)]
struct Net<B: Backend> {
    model: Inner<B>,
    head: RLoraLinear<B>,
}

const WIDTH: usize = 8;
const UP: usize = 12;

fn net() -> Net<NB> {
    net_on()
}

fn net_on<B: Backend>() -> Net<B> {
    let device = Default::default();
    let linear = |i, o| LinearConfig::new(i, o).init::<B>(&device).into();
    Net {
        model: Inner {
            layers: (0..3)
                .map(|_| Block {
                    self_attn: Attn {
                        q_proj: linear(WIDTH, WIDTH),
                        v_proj: linear(WIDTH, 4),
                    },
                    mlp_up: linear(WIDTH, UP),
                })
                .collect(),
        },
        head: linear(UP, 6),
    }
}

fn peft() -> LoadOptions {
    LoadOptions::new().with_naming(ModuleNaming::peft())
}

/// A fresh directory per test, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rlora-peft-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl AsRef<Path> for Dir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// Deterministic values in about [-0.5, 0.5].
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// A tensor file: (key, shape, values), f32.
fn safetensors(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((k, shape, _), b)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .unwrap();
            (k.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// `lora_A` `[r, in]` and `lora_B` `[out, r]` of `module` (Python name, without the prefix).
fn lora(module: &str, r: usize, d_in: usize, d_out: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let seed = module
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    vec![
        (
            format!("base_model.model.{module}.lora_A.weight"),
            vec![r, d_in],
            values(r * d_in, seed),
        ),
        (
            format!("base_model.model.{module}.lora_B.weight"),
            vec![d_out, r],
            values(d_out * r, seed + 1),
        ),
    ]
}

fn write(dir: &Dir, config: &str, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    std::fs::write(dir.0.join("adapter_config.json"), config).unwrap();
    std::fs::write(
        dir.0.join("adapter_model.safetensors"),
        safetensors(tensors),
    )
    .unwrap();
}

/// A PEFT config as `save_pretrained` writes it (sorted keys, every field), with `extra` fields replacing.
fn config(extra: &[(&str, &str)]) -> String {
    let mut fields: Vec<(String, String)> = [
        ("alora_invocation_tokens", "null"),
        ("alpha_pattern", "{}"),
        ("arrow_config", "null"),
        ("base_model_name_or_path", "\"tiny\""),
        ("bias", "\"none\""),
        ("eva_config", "null"),
        ("exclude_modules", "null"),
        ("fan_in_fan_out", "false"),
        ("inference_mode", "true"),
        ("init_lora_weights", "true"),
        ("layer_replication", "null"),
        ("layers_pattern", "null"),
        ("layers_to_transform", "null"),
        ("loftq_config", "{}"),
        ("lora_alpha", "8"),
        ("lora_bias", "false"),
        ("lora_dropout", "0.05"),
        ("megatron_config", "null"),
        ("megatron_core", "\"megatron.core\""),
        ("modules_to_save", "null"),
        ("peft_type", "\"LORA\""),
        ("peft_version", "\"0.22.0\""),
        ("r", "4"),
        ("rank_pattern", "{}"),
        ("revision", "null"),
        ("target_modules", "[\"q_proj\", \"mlp_up\"]"),
        ("target_parameters", "null"),
        ("task_type", "\"CAUSAL_LM\""),
        ("trainable_token_indices", "null"),
        ("use_dora", "false"),
        ("use_qalora", "false"),
        ("use_rslora", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        match fields.iter_mut().find(|(f, _)| f == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => fields.push((k.to_string(), v.to_string())),
        }
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("  \"{k}\": {v}"))
        .collect();
    format!("{{\n{}\n}}", body.join(",\n"))
}

/// The q_proj and mlp_up LoRA tensors of the three blocks, rank 4.
fn q_and_up(r: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    (0..3)
        .flat_map(|i| {
            let mut t = lora(
                &format!("model.layers.{i}.self_attn.q_proj"),
                r,
                WIDTH,
                WIDTH,
            );
            t.extend(lora(&format!("model.layers.{i}.mlp_up"), r, WIDTH, UP));
            t
        })
        .collect()
}

fn data<const D: usize>(t: Tensor<NB, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// `W x + b + s * B A x`, as PEFT's `lora.Linear` computes it, in f64 on the host.
fn peft_forward(
    layer: &RLoraLinear<NB>,
    a: &[f32],
    b: &[f32],
    r: usize,
    s: f64,
    x: &[f32],
) -> Vec<f64> {
    let w = data(layer.weight.val()); // [in, out]
    let bias = data(layer.bias.as_ref().unwrap().val());
    let d_out = bias.len();
    let d_in = w.len() / d_out;
    let rows = x.len() / d_in;
    let mut out = Vec::new();
    for row in x.chunks(d_in) {
        let z: Vec<f64> = (0..r)
            .map(|k| {
                (0..d_in)
                    .map(|i| a[k * d_in + i] as f64 * row[i] as f64)
                    .sum()
            })
            .collect();
        for o in 0..d_out {
            let base: f64 = (0..d_in)
                .map(|i| w[i * d_out + o] as f64 * row[i] as f64)
                .sum::<f64>()
                + bias[o] as f64;
            let delta: f64 = (0..r).map(|k| b[o * r + k] as f64 * z[k]).sum();
            out.push(base + s * delta);
        }
    }
    assert_eq!(out.len(), rows * d_out);
    out
}

fn max_diff(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max)
}

fn check_layer(
    layer: &RLoraLinear<NB>,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    module: &str,
    s: f64,
) {
    let find = |suffix: &str| {
        tensors
            .iter()
            .find(|(k, _, _)| *k == format!("base_model.model.{module}.{suffix}"))
            .unwrap()
    };
    let (a, b) = (find("lora_A.weight"), find("lora_B.weight"));
    let r = a.1[0];
    let adapter = layer.adapter().expect("adapted");
    assert_eq!((adapter.rank(), adapter.num_heads()), (r, 1), "{module}");
    assert!(
        (adapter.scaling() - s).abs() < 1e-12,
        "{module}: {} vs {s}",
        adapter.scaling()
    );
    let d_in = a.1[1];
    let x = values(3 * d_in, 99);
    let want = peft_forward(layer, &a.2, &b.2, r, s, &x);
    let got = data(layer.forward(Tensor::<NB, 2>::from_data(
        TensorData::new(x, [3, d_in]),
        &Default::default(),
    )));
    let diff = max_diff(&got, &want);
    assert!(diff < 1e-5, "{module}: max |diff| {diff}");
}

#[test]
fn peft_lora_loads_and_computes_what_peft_computes() {
    let dir = Dir::new("plain");
    let tensors = q_and_up(4);
    write(&dir, &config(&[]), &tensors);
    assert_eq!(
        adapter_layout(&dir, &LoadOptions::new()).unwrap(),
        AdapterLayout::PeftLora
    );
    let before = net();
    let head_before = data(before.head.weight.val());
    let (model, report) = load_peft_lora(before, &dir, &peft()).unwrap();
    assert_eq!(report.modules.len(), 6);
    assert_eq!(
        report.modules[0],
        (
            "model.layers.0.self_attn.q_proj".to_string(),
            "base_model.model.model.layers.0.self_attn.q_proj".to_string()
        )
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        (
            report.config.r,
            report.config.lora_alpha,
            report.config.lora_nums
        ),
        (4, 8.0, 1)
    );
    for (i, block) in model.model.layers.iter().enumerate() {
        check_layer(
            &block.self_attn.q_proj,
            &tensors,
            &format!("model.layers.{i}.self_attn.q_proj"),
            2.0,
        );
        check_layer(
            &block.mlp_up,
            &tensors,
            &format!("model.layers.{i}.mlp_up"),
            2.0,
        );
        assert!(!block.self_attn.v_proj.is_adapted());
        // Dropout on x, PEFT's lora_dropout.
        assert_eq!(block.mlp_up.adapter().unwrap().config().dropout, 0.05);
    }
    assert!(!model.head.is_adapted());
    assert_eq!(data(model.head.weight.val()), head_before);

    // With autodiff: the whole model is frozen, and the loaded adapters train.
    let (model, _) = load_peft_lora(net_on::<Autodiff<NB>>(), &dir, &peft()).unwrap();
    assert!(!model.head.weight.is_require_grad());
    for block in &model.model.layers {
        let adapter = block.mlp_up.adapter().unwrap();
        assert!(adapter.lora_a.is_require_grad() && adapter.lora_b.is_require_grad());
        assert!(!block.mlp_up.weight.is_require_grad());
        assert!(!block.self_attn.v_proj.weight.is_require_grad());
    }
}

#[test]
fn use_rslora_scales_by_alpha_over_sqrt_r() {
    let dir = Dir::new("rslora");
    let tensors = q_and_up(4);
    write(
        &dir,
        &config(&[("use_rslora", "true"), ("lora_alpha", "6")]),
        &tensors,
    );
    let (model, _) = load_peft_lora(net(), &dir, &peft()).unwrap();
    let block = &model.model.layers[1];
    check_layer(
        &block.self_attn.q_proj,
        &tensors,
        "model.layers.1.self_attn.q_proj",
        3.0,
    );
    assert!(block.mlp_up.adapter().unwrap().config().rank_stabilized);
    // The same tensors with alpha / r.
    let dir2 = Dir::new("rslora-off");
    write(&dir2, &config(&[("lora_alpha", "6")]), &tensors);
    let (model, _) = load_peft_lora(net(), &dir2, &peft()).unwrap();
    check_layer(
        &model.model.layers[1].self_attn.q_proj,
        &tensors,
        "model.layers.1.self_attn.q_proj",
        1.5,
    );
}

/// The per-module ranks and alphas, and the targeted modules, as PEFT
/// 0.22.0's `get_pattern_key` and `check_target_module_exists` give them
/// for the same configs (computed with PEFT; see the report of the change).
#[test]
fn patterns_and_targets_match_peft() {
    let names: Vec<String> = (0..3)
        .flat_map(|i| {
            ["self_attn.q_proj", "self_attn.v_proj", "mlp_up"]
                .map(|m| format!("model.layers.{i}.{m}"))
        })
        .chain(["head".to_string()])
        .collect();
    // Order matters: "q_proj" comes first, so layers.1's q_proj has rank 2, not 5.
    let json = config(&[
        (
            "rank_pattern",
            r#"{"q_proj": 2, "layers.1.self_attn.q_proj": 5, "model\\.layers\\.[12]\\.mlp_up": 3, "^model.layers.0.self_attn.v_proj": 6, "d": 7}"#,
        ),
        ("alpha_pattern", r#"{"v_proj": 3.5, "head": 1}"#),
    ]);
    let c = PeftLoraConfig::from_json(json.as_bytes()).unwrap();
    let got: Vec<(usize, f64)> = names.iter().map(|n| c.rank_and_alpha(n).unwrap()).collect();
    let peft = [
        (2, 8.0),
        (6, 3.5),
        (4, 8.0),
        (2, 8.0),
        (4, 3.5),
        (3, 8.0),
        (2, 8.0),
        (4, 3.5),
        (3, 8.0),
        (4, 1.0),
    ];
    assert_eq!(got, peft);

    let targets = |extra: &[(&str, &str)]| -> Vec<String> {
        let c = PeftLoraConfig::from_json(config(extra).as_bytes()).unwrap();
        names
            .iter()
            .filter(|n| c.targets(n).unwrap())
            .cloned()
            .collect()
    };
    let l = |i: usize, m: &str| format!("model.layers.{i}.{m}");
    assert_eq!(
        targets(&[("layers_to_transform", "[0, 2]")]),
        [
            l(0, "self_attn.q_proj"),
            l(0, "mlp_up"),
            l(2, "self_attn.q_proj"),
            l(2, "mlp_up")
        ]
    );
    assert_eq!(
        targets(&[
            ("layers_to_transform", "1"),
            ("layers_pattern", "\"layers\"")
        ]),
        [l(1, "self_attn.q_proj"), l(1, "mlp_up")]
    );
    // An exact name is targeted whatever layers_to_transform says.
    assert_eq!(
        targets(&[
            ("target_modules", r#"["q_proj", "head"]"#),
            ("layers_to_transform", "[1]"),
            ("layers_pattern", r#"["blocks"]"#),
        ]),
        ["head"]
    );
    assert_eq!(
        targets(&[
            (
                "target_modules",
                r#"["model.layers.0.self_attn.q_proj", "v_proj"]"#
            ),
            ("layers_to_transform", "[2]"),
        ]),
        [l(0, "self_attn.q_proj"), l(2, "self_attn.v_proj")]
    );
    assert_eq!(
        targets(&[("target_modules", r#""model\\.layers\\.[01]\\..*_proj""#)]),
        [
            l(0, "self_attn.q_proj"),
            l(0, "self_attn.v_proj"),
            l(1, "self_attn.q_proj"),
            l(1, "self_attn.v_proj")
        ]
    );
    assert_eq!(
        targets(&[
            ("target_modules", r#"["q_proj", "v_proj", "head"]"#),
            (
                "exclude_modules",
                r#"["layers.1.self_attn.q_proj", "head"]"#
            ),
        ]),
        [
            l(0, "self_attn.q_proj"),
            l(0, "self_attn.v_proj"),
            l(1, "self_attn.v_proj"),
            l(2, "self_attn.q_proj"),
            l(2, "self_attn.v_proj")
        ]
    );
    assert_eq!(
        targets(&[
            ("target_modules", r#"["q_proj", "v_proj"]"#),
            ("exclude_modules", r#"".*\\.1\\..*""#),
        ]),
        [
            l(0, "self_attn.q_proj"),
            l(0, "self_attn.v_proj"),
            l(2, "self_attn.q_proj"),
            l(2, "self_attn.v_proj")
        ]
    );
    // Without a `model.` segment before `layers`, PEFT's default layer
    // pattern finds no index, so layers_to_transform selects nothing.
    let c =
        PeftLoraConfig::from_json(config(&[("layers_to_transform", "[0, 2]")]).as_bytes()).unwrap();
    assert!(!c.targets("layers.0.self_attn.q_proj").unwrap());
}

#[test]
fn rank_pattern_and_alpha_pattern_load_per_layer() {
    let dir = Dir::new("patterns");
    let mut tensors = Vec::new();
    for i in 0..3 {
        let r_q = if i == 1 { 3 } else { 4 };
        tensors.extend(lora(
            &format!("model.layers.{i}.self_attn.q_proj"),
            r_q,
            WIDTH,
            WIDTH,
        ));
        tensors.extend(lora(&format!("model.layers.{i}.mlp_up"), 2, WIDTH, UP));
    }
    let json = config(&[
        (
            "rank_pattern",
            r#"{"layers.1.self_attn.q_proj": 3, "mlp_up": 2}"#,
        ),
        ("alpha_pattern", r#"{"model\\.layers\\.[02]\\.mlp_up": 5}"#),
    ]);
    write(&dir, &json, &tensors);
    let (model, report) = load_peft_lora(net(), &dir, &peft()).unwrap();
    assert_eq!(report.modules.len(), 6);
    let layers = &model.model.layers;
    check_layer(
        &layers[0].self_attn.q_proj,
        &tensors,
        "model.layers.0.self_attn.q_proj",
        2.0,
    );
    check_layer(
        &layers[1].self_attn.q_proj,
        &tensors,
        "model.layers.1.self_attn.q_proj",
        8.0 / 3.0,
    );
    check_layer(&layers[0].mlp_up, &tensors, "model.layers.0.mlp_up", 2.5);
    check_layer(&layers[1].mlp_up, &tensors, "model.layers.1.mlp_up", 4.0);
    check_layer(&layers[2].mlp_up, &tensors, "model.layers.2.mlp_up", 2.5);
}

#[test]
fn a_regex_target_and_layers_to_transform_load() {
    let dir = Dir::new("regex");
    let tensors: Vec<_> = [0, 2]
        .iter()
        .flat_map(|i| lora(&format!("model.layers.{i}.self_attn.v_proj"), 2, WIDTH, 4))
        .collect();
    let json = config(&[
        ("target_modules", "[\"v_proj\"]"),
        ("layers_to_transform", "[0, 2]"),
        ("r", "2"),
    ]);
    write(&dir, &json, &tensors);
    let (model, report) = load_peft_lora(net(), &dir, &peft()).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let adapted: Vec<bool> = model
        .model
        .layers
        .iter()
        .map(|b| b.self_attn.v_proj.is_adapted())
        .collect();
    assert_eq!(adapted, [true, false, true]);

    let json = config(&[("target_modules", r#"".*\\.v_proj""#), ("r", "2")]);
    write(&dir, &json, &tensors);
    let (model, report) = load_peft_lora(net(), &dir, &peft()).unwrap();
    assert_eq!(report.modules.len(), 2);
    // Block 1's v_proj is targeted but not in the file: left plain, reported.
    assert!(!model.model.layers[1].self_attn.v_proj.is_adapted());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("model.layers.1.self_attn.v_proj"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn fan_in_fan_out_changes_nothing_and_is_reported() {
    let dir = Dir::new("fan");
    let tensors = q_and_up(4);
    write(&dir, &config(&[("fan_in_fan_out", "true")]), &tensors);
    let (model, report) = load_peft_lora(net(), &dir, &peft()).unwrap();
    check_layer(
        &model.model.layers[2].mlp_up,
        &tensors,
        "model.layers.2.mlp_up",
        2.0,
    );
    assert!(
        report.warnings.iter().any(|w| w.contains("fan_in_fan_out")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn unknown_harmless_fields_are_ignored() {
    let dir = Dir::new("unknown");
    let json = config(&[
        ("some_future_field", "{\"a\": [1, 2]}"),
        ("init_lora_weights", "\"gaussian\""),
        ("megatron_config", "{\"x\": 1}"),
        ("loftq_config", "{\"loftq_bits\": 4}"),
    ]);
    write(&dir, &json, &q_and_up(4));
    load_peft_lora(net(), &dir, &peft()).unwrap();
}

/// The error of loading `config` (and the standard tensors), looked through `InFile`.
fn refusal(name: &str, extra: &[(&str, &str)]) -> (CheckpointError, String) {
    let dir = Dir::new(name);
    write(&dir, &config(extra), &q_and_up(4));
    let e = load_peft_lora(net(), &dir, &peft()).unwrap_err();
    let text = e.to_string();
    match &e {
        CheckpointError::InFile { path, .. } => {
            assert!(path.ends_with("adapter_config.json"), "{text}")
        }
        CheckpointError::CorruptConfig { what, .. } => {
            assert!(what.ends_with("adapter_config.json"), "{text}")
        }
        other => panic!("{name}: not an error about the config file: {other}"),
    }
    (e, text)
}

fn assert_unsupported(name: &str, extra: &[(&str, &str)], field: &str) {
    let (e, text) = refusal(name, extra);
    match e.innermost() {
        CheckpointError::UnsupportedConfig { field: f, .. } => assert_eq!(f, field, "{text}"),
        other => panic!("{name}: expected UnsupportedConfig for '{field}', got {other}"),
    }
}

#[test]
fn unsupported_configs_are_refused_by_name() {
    assert_unsupported(
        "mts",
        &[("modules_to_save", "[\"head\"]")],
        "modules_to_save",
    );
    assert_unsupported("bias-all", &[("bias", "\"all\"")], "bias");
    assert_unsupported("bias-lora", &[("bias", "\"lora_only\"")], "bias");
    assert_unsupported("dora", &[("use_dora", "true")], "use_dora");
    assert_unsupported("lora-bias", &[("lora_bias", "true")], "lora_bias");
    assert_unsupported("ia3", &[("peft_type", "\"IA3\"")], "peft_type");
    assert_unsupported(
        "pissa",
        &[("init_lora_weights", "\"pissa_niter_4\"")],
        "init_lora_weights",
    );
    assert_unsupported(
        "olora",
        &[("init_lora_weights", "\"olora\"")],
        "init_lora_weights",
    );
    assert_unsupported(
        "replication",
        &[("layer_replication", "[[0, 2], [1, 3]]")],
        "layer_replication",
    );
    assert_unsupported(
        "tokens",
        &[("trainable_token_indices", "[1, 2]")],
        "trainable_token_indices",
    );
    assert_unsupported(
        "params",
        &[("target_parameters", "[\"experts.w\"]")],
        "target_parameters",
    );
    assert_unsupported(
        "alora",
        &[("alora_invocation_tokens", "[5]")],
        "alora_invocation_tokens",
    );
    let (_, text) = refusal(
        "mts-text",
        &[("modules_to_save", "[\"classifier\", \"score\"]")],
    );
    assert!(
        text.contains("modules_to_save") && text.contains("adapter_config.json"),
        "{text}"
    );
    // Empty is not set.
    let dir = Dir::new("mts-empty");
    write(&dir, &config(&[("modules_to_save", "[]")]), &q_and_up(4));
    load_peft_lora(net(), &dir, &peft()).unwrap();
}

#[test]
fn malformed_configs_are_errors_naming_the_field() {
    for (name, extra, needle) in [
        ("no-r", vec![("r", "null")], "'r'"),
        ("zero-r", vec![("r", "0")], "'r'"),
        ("float-r", vec![("r", "2.5")], "'r'"),
        ("dora-string", vec![("use_dora", "\"yes\"")], "use_dora"),
        ("dropout", vec![("lora_dropout", "1.0")], "lora_dropout"),
        (
            "rank-zero",
            vec![("rank_pattern", "{\"q_proj\": 0}")],
            "rank_pattern.q_proj",
        ),
        (
            "bad-regex",
            vec![("rank_pattern", "{\"q_proj(\": 2}")],
            "rank_pattern",
        ),
        (
            "lookahead",
            vec![("target_modules", "\"(?=q).*\"")],
            "target_modules",
        ),
    ] {
        let (_, text) = refusal(name, &extra);
        assert!(text.contains(needle), "{name}: {text}");
    }
}

/// The error of loading `tensors` (with the default config), which must be about the tensor file.
fn tensor_error(
    name: &str,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    options: &LoadOptions,
) -> CheckpointError {
    let dir = Dir::new(name);
    write(&dir, &config(&[]), tensors);
    let e = load_peft_lora(net(), &dir, options).unwrap_err();
    let CheckpointError::InFile { path, error } = e else {
        panic!("{name}: not InFile: {e}");
    };
    assert!(
        path.ends_with("adapter_model.safetensors"),
        "{name}: {}",
        path.display()
    );
    *error
}

#[test]
fn a_key_for_a_module_the_model_lacks_is_an_error_naming_it() {
    let mut tensors = q_and_up(4);
    tensors.extend(lora("model.layers.7.mlp_up", 4, WIDTH, UP));
    let e = tensor_error("missing-module", &tensors, &peft());
    match &e {
        CheckpointError::UnexpectedKey { key, expected, .. } => {
            assert_eq!(key, "base_model.model.model.layers.7.mlp_up.lora_A.weight");
            assert!(
                expected.contains("model.layers.0.self_attn.q_proj"),
                "{expected}"
            );
        }
        other => panic!("{other}"),
    }
    // Lenient: skipped, reported, the rest loaded.
    let dir = Dir::new("missing-module-lenient");
    write(&dir, &config(&[]), &tensors);
    let (model, report) = load_peft_lora(net(), &dir, &peft().with_strict(false)).unwrap();
    assert_eq!(report.modules.len(), 6);
    assert!(
        report.warnings.iter().any(|w| w.contains("layers.7")),
        "{:?}",
        report.warnings
    );
    assert!(model.model.layers[0].mlp_up.is_adapted());
    // Without PEFT's prefix in the naming, no module is found.
    let e = tensor_error("no-prefix", &q_and_up(4), &LoadOptions::new());
    assert!(matches!(e, CheckpointError::UnexpectedKey { .. }), "{e}");
}

#[test]
fn shape_mismatches_are_errors_naming_the_key() {
    // B of the wrong output width for the model's layer.
    let mut tensors = q_and_up(4);
    let b = tensors
        .iter_mut()
        .find(|(k, _, _)| k.ends_with("layers.1.mlp_up.lora_B.weight"))
        .unwrap();
    *b = (b.0.clone(), vec![UP + 1, 4], values((UP + 1) * 4, 3));
    match tensor_error("shape-b", &tensors, &peft()) {
        CheckpointError::ShapeMismatch {
            key,
            expected,
            found,
        } => {
            assert_eq!(key, "base_model.model.model.layers.1.mlp_up.lora_B.weight");
            assert_eq!((expected, found), (vec![UP, 4], vec![UP + 1, 4]));
        }
        other => panic!("{other}"),
    }
    // A of another rank than the config's r (no rank_pattern for it).
    let mut tensors = q_and_up(4);
    tensors.retain(|(k, _, _)| !k.contains("layers.2.self_attn.q_proj"));
    tensors.extend(lora("model.layers.2.self_attn.q_proj", 3, WIDTH, WIDTH));
    match tensor_error("shape-rank", &tensors, &peft()) {
        CheckpointError::ShapeMismatch {
            key,
            expected,
            found,
        } => {
            assert_eq!(
                key,
                "base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight"
            );
            assert_eq!((expected, found), (vec![4, WIDTH], vec![3, WIDTH]));
        }
        other => panic!("{other}"),
    }
    // A of the wrong input width.
    let mut tensors = q_and_up(4);
    let a = tensors
        .iter_mut()
        .find(|(k, _, _)| k.ends_with("layers.0.mlp_up.lora_A.weight"))
        .unwrap();
    *a = (a.0.clone(), vec![4, WIDTH + 2], values(4 * (WIDTH + 2), 5));
    match tensor_error("shape-a", &tensors, &peft()) {
        CheckpointError::ShapeMismatch { key, expected, .. } => {
            assert_eq!(key, "base_model.model.model.layers.0.mlp_up.lora_A.weight");
            assert_eq!(expected, vec![4, WIDTH]);
        }
        other => panic!("{other}"),
    }
    // A 4-D (convolution) LoRA tensor.
    let mut tensors = q_and_up(4);
    let a = tensors
        .iter_mut()
        .find(|(k, _, _)| k.ends_with("layers.0.mlp_up.lora_A.weight"))
        .unwrap();
    *a = (a.0.clone(), vec![4, WIDTH, 1, 1], values(4 * WIDTH, 5));
    let e = tensor_error("conv", &tensors, &peft());
    assert!(e.to_string().contains("2-D"), "{e}");
}

#[test]
fn a_missing_half_of_a_pair_is_an_error() {
    let mut tensors = q_and_up(4);
    tensors
        .retain(|(k, _, _)| k != "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight");
    match tensor_error("missing-b", &tensors, &peft()) {
        CheckpointError::MissingKey { key, expected } => {
            assert_eq!(
                key,
                "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"
            );
            assert!(expected.contains("lora_A.weight"), "{expected}");
        }
        other => panic!("{other}"),
    }
    let mut tensors = q_and_up(4);
    tensors.retain(|(k, _, _)| k != "base_model.model.model.layers.2.mlp_up.lora_A.weight");
    match tensor_error("missing-a", &tensors, &peft()) {
        CheckpointError::MissingKey { key, .. } => {
            assert_eq!(key, "base_model.model.model.layers.2.mlp_up.lora_A.weight")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn other_keys_are_refused_or_skipped() {
    // An unknown key: an error when strict, skipped when lenient.
    let mut tensors = q_and_up(4);
    tensors.push((
        "base_model.model.model.norm.weight".into(),
        vec![WIDTH],
        vec![1.0; WIDTH],
    ));
    let e = tensor_error("unknown-key", &tensors, &peft());
    assert!(
        matches!(&e, CheckpointError::UnexpectedKey { key, .. } if key == "base_model.model.model.norm.weight"),
        "{e}"
    );
    let dir = Dir::new("unknown-key-lenient");
    write(&dir, &config(&[]), &tensors);
    let (_, report) = load_peft_lora(net(), &dir, &peft().with_strict(false)).unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("model.norm.weight")),
        "{:?}",
        report.warnings
    );

    // Tensors of refused features: errors even when lenient.
    for (name, key, shape) in [
        (
            "lora-b-bias",
            "base_model.model.model.layers.0.mlp_up.lora_B.bias",
            vec![UP],
        ),
        (
            "embedding",
            "base_model.model.model.embed_tokens.lora_embedding_A",
            vec![4, 30],
        ),
        (
            "dora",
            "base_model.model.model.layers.0.mlp_up.lora_magnitude_vector",
            vec![UP],
        ),
        (
            "multi-head",
            "base_model.model.model.layers.0.mlp_up.lora_B1.weight",
            vec![UP, 4],
        ),
    ] {
        let mut tensors = q_and_up(4);
        let n = shape.iter().product();
        tensors.push((key.to_string(), shape, vec![0.1; n]));
        let e = tensor_error(name, &tensors, &peft().with_strict(false));
        assert!(
            matches!(&e, CheckpointError::UnexpectedKey { key: k, .. } if k == key),
            "{name}: {e}"
        );
    }

    // A module that target_modules does not select: PEFT ignores it; strict refuses it.
    let mut tensors = q_and_up(4);
    tensors.extend(lora("model.layers.0.self_attn.v_proj", 4, WIDTH, 4));
    let e = tensor_error("not-targeted", &tensors, &peft());
    match &e {
        CheckpointError::UnexpectedKey { key, expected, .. } => {
            assert_eq!(
                key,
                "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"
            );
            assert!(expected.contains("target_modules"), "{expected}");
        }
        other => panic!("{other}"),
    }
    let dir = Dir::new("not-targeted-lenient");
    write(&dir, &config(&[]), &tensors);
    let (model, _) = load_peft_lora(net(), &dir, &peft().with_strict(false)).unwrap();
    assert!(!model.model.layers[0].self_attn.v_proj.is_adapted());
}

#[test]
fn non_finite_values_and_ranks_the_layer_cannot_take_are_refused() {
    let mut tensors = q_and_up(4);
    tensors[3].2[1] = f32::NAN;
    let e = tensor_error("nan", &tensors, &peft());
    assert!(matches!(e, CheckpointError::NonFinite { .. }), "{e}");
    // r = 6 on the 8 -> 4 v_proj: PEFT would take it; a rank above min(in, out) is refused here.
    let dir = Dir::new("rank-too-large");
    let tensors = lora("model.layers.0.self_attn.v_proj", 6, WIDTH, 4);
    write(
        &dir,
        &config(&[("r", "6"), ("target_modules", "[\"v_proj\"]")]),
        &tensors,
    );
    let e = load_peft_lora(net(), &dir, &peft()).unwrap_err();
    assert!(
        matches!(e.innermost(), CheckpointError::ConfigMismatch { .. }),
        "{e}"
    );
}

#[test]
fn a_layer_already_adapted_takes_the_tensors_only_when_it_is_the_same_lora() {
    let dir = Dir::new("pre-adapted");
    let tensors = q_and_up(4);
    write(&dir, &config(&[]), &tensors);
    let adapt = |config: &RLoraConfig| {
        let mut m = net();
        let up = m.model.layers[0].mlp_up.clone();
        m.model.layers[0].mlp_up = up.adapt(config).unwrap();
        m
    };
    let (model, _) = load_peft_lora(adapt(&RLoraConfig::lora(4, 8.0)), &dir, &peft()).unwrap();
    check_layer(
        &model.model.layers[0].mlp_up,
        &tensors,
        "model.layers.0.mlp_up",
        2.0,
    );
    let e = load_peft_lora(adapt(&RLoraConfig::lora(4, 16.0)), &dir, &peft()).unwrap_err();
    assert!(
        matches!(e.innermost(), CheckpointError::ConfigMismatch { .. }),
        "{e}"
    );
    let e = load_peft_lora(adapt(&RLoraConfig::r_lora(4, 8.0, 2)), &dir, &peft()).unwrap_err();
    assert!(e.to_string().contains("multi-head"), "{e}");
}

#[test]
fn the_layouts_are_told_apart_and_load_adapter_points_to_peft() {
    let peft_json = config(&[]);
    assert_eq!(
        AdapterLayout::of_config(peft_json.as_bytes()).unwrap(),
        AdapterLayout::PeftLora
    );
    let reference = r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "lora_nums": 3}"#;
    assert_eq!(
        AdapterLayout::of_config(reference.as_bytes()).unwrap(),
        AdapterLayout::Reference
    );
    let ours = r#"{"burn_rlora_format": 1, "r": 2, "lora_alpha": 4}"#;
    assert_eq!(
        AdapterLayout::of_config(ours.as_bytes()).unwrap(),
        AdapterLayout::BurnRLora
    );
    assert!(AdapterLayout::of_config(b"[1]").is_err());

    let dir = Dir::new("load-adapter");
    write(&dir, &peft_json, &q_and_up(4));
    let model = burn_rlora::AdaptConfig::new(
        RLoraConfig::lora(4, 8.0),
        burn_rlora::TargetModules::names(["q_proj", "mlp_up"]),
    )
    .adapt(net())
    .unwrap();
    let e = load_adapter(model, &dir, &peft()).unwrap_err();
    assert!(e.to_string().contains("load_peft_lora"), "{e}");

    // The parsed file, without a model.
    let file = PeftLoraFile::read(&dir, &LoadOptions::new()).unwrap();
    assert_eq!(file.modules.len(), 6);
    let m = &file.modules["base_model.model.model.layers.2.mlp_up"];
    assert_eq!(
        (m.peft_name.as_str(), m.r, m.lora_alpha, m.dims()),
        ("model.layers.2.mlp_up", 4, 8.0, (WIDTH, UP))
    );
    assert!(file
        .tensor_file
        .as_ref()
        .unwrap()
        .ends_with("adapter_model.safetensors"));
}
