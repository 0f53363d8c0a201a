//! The Llama decoder on a tiny configuration: the KV cache, causality,
//! grouped-query attention, loading from GGUF-layout tensors, adaptation by
//! PEFT's target names, generation, and its errors.

use std::collections::HashMap;
use std::ops::ControlFlow;

use burn::backend::NdArray;
use burn::tensor::{Tensor, Tolerance};
use burn_rlora::adapt::adapted_paths;
use burn_rlora::{AdaptConfig, RLoraConfig, TargetModules};
use burn_rlora_llm::{
    generate, load_decoder, CausalLm, DecoderConfig, DecoderError, GenerationConfig, HostTensor,
    Sampling, StopReason, WeightSource,
};

type B = NdArray;

fn tiny() -> DecoderConfig {
    DecoderConfig::new(50, 16, 24, 2, 4, 2, 32).with_rope_theta(500.0)
}

fn model(config: &DecoderConfig) -> CausalLm<B> {
    config.init::<B>(&Default::default()).unwrap()
}

const IDS: [u32; 9] = [3, 17, 42, 8, 8, 0, 49, 21, 5];

fn logits(m: &CausalLm<B>, ids: &[u32]) -> Tensor<B, 3> {
    let tokens = m.tokens(&[ids.to_vec()], &Default::default()).unwrap();
    m.forward(tokens, None).unwrap()
}

fn row(t: Tensor<B, 3>, p: usize) -> Vec<f32> {
    let [_, _, v] = t.dims();
    t.slice([0..1, p..p + 1, 0..v])
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(worst <= tol, "max |difference| {worst} > {tol}");
}

#[test]
fn the_cache_gives_the_logits_of_one_pass() {
    let m = model(&tiny());
    let full = logits(&m, &IDS);
    let device = Default::default();
    let mut cache = m.new_cache();
    let prefill = m.forward(
        m.tokens(&[IDS[..4].to_vec()], &device).unwrap(),
        Some(&mut cache),
    );
    let prefill = prefill.unwrap();
    for p in 0..4 {
        assert_close(&row(prefill.clone(), p), &row(full.clone(), p), 1e-5);
    }
    for (p, &id) in IDS.iter().enumerate().skip(4) {
        let step = m.forward(m.tokens(&[vec![id]], &device).unwrap(), Some(&mut cache));
        assert_close(&row(step.unwrap(), 0), &row(full.clone(), p), 1e-5);
    }
    assert_eq!(cache.len(), IDS.len());
}

/// The cache's buffers are written in place and grow by chunks of 256
/// positions: across a growth, in a cache made with room for fewer
/// positions, every step's logits are a full pass's.
#[test]
fn the_cache_grows_past_its_room_with_the_logits_of_one_pass() {
    let config = DecoderConfig {
        max_position_embeddings: 600,
        ..tiny()
    };
    let m = model(&config);
    let ids: Vec<u32> = (0..300u32).map(|i| (i * 7 + 3) % 50).collect();
    let full = logits(&m, &ids);
    let device = Default::default();
    let mut cache = m.new_cache_with_capacity(10);
    let prefill = m
        .forward(
            m.tokens(&[ids[..250].to_vec()], &device).unwrap(),
            Some(&mut cache),
        )
        .unwrap();
    assert_eq!(cache.capacity(), 256);
    assert_close(&row(prefill, 249), &row(full.clone(), 249), 1e-4);
    for (p, &id) in ids.iter().enumerate().skip(250) {
        let step = m.forward(m.tokens(&[vec![id]], &device).unwrap(), Some(&mut cache));
        assert_close(&row(step.unwrap(), 0), &row(full.clone(), p), 1e-4);
    }
    assert_eq!((cache.len(), cache.capacity()), (300, 512));
    cache.clear();
    assert_eq!((cache.len(), cache.capacity()), (0, 0));
}

#[test]
fn a_later_token_leaves_earlier_logits_unchanged() {
    let m = model(&tiny());
    let mut other = IDS;
    other[6] = 1;
    let (a, b) = (logits(&m, &IDS), logits(&m, &other));
    for p in 0..6 {
        assert_eq!(row(a.clone(), p), row(b.clone(), p));
    }
    assert_ne!(row(a, 6), row(b, 6));
}

/// The tensors of `m` under their GGUF names and in GGUF's layout: `[out, in]`
/// rows, query and key rows of each head in neighbour-pair order.
struct Layout(HashMap<String, HostTensor>);

impl WeightSource for Layout {
    fn file(&self) -> String {
        "test.gguf".into()
    }
    fn tensor(&mut self, name: &str) -> Result<Option<HostTensor>, DecoderError> {
        Ok(self.0.get(name).cloned())
    }
}

/// Row `j * half + i` of each head to row `2i + j` (what GGUF's converter does).
fn permute(rows: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows.len()];
    let half = head_dim / 2;
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let from = (h * head_dim + j * half + i) * cols;
                let to = (h * head_dim + 2 * i + j) * cols;
                out[to..to + cols].copy_from_slice(&rows[from..from + cols]);
            }
        }
    }
    out
}

fn host(shape: Vec<usize>, values: Vec<f32>) -> HostTensor {
    HostTensor { shape, values }
}

fn gguf_layout(m: &CausalLm<B>, c: &DecoderConfig) -> Layout {
    let mut map = HashMap::new();
    let values = |t: Tensor<B, 2>| t.into_data().to_vec::<f32>().unwrap();
    let mut put = |name: String, t: Tensor<B, 2>, rope: Option<usize>| {
        let [d_in, d_out] = t.dims();
        let mut rows = values(t.transpose());
        if let Some(heads) = rope {
            rows = permute(&rows, heads, c.head_dim(), d_in);
        }
        map.insert(name, host(vec![d_out, d_in], rows));
    };
    for (n, l) in m.model.layers.iter().enumerate() {
        let a = &l.self_attn;
        put(
            format!("blk.{n}.attn_q.weight"),
            a.q_proj.weight.val(),
            Some(c.num_attention_heads),
        );
        put(
            format!("blk.{n}.attn_k.weight"),
            a.k_proj.weight.val(),
            Some(c.num_key_value_heads),
        );
        put(
            format!("blk.{n}.attn_v.weight"),
            a.v_proj.weight.val(),
            None,
        );
        put(
            format!("blk.{n}.attn_output.weight"),
            a.o_proj.weight.val(),
            None,
        );
        put(
            format!("blk.{n}.ffn_gate.weight"),
            l.mlp.gate_proj.weight.val(),
            None,
        );
        put(
            format!("blk.{n}.ffn_up.weight"),
            l.mlp.up_proj.weight.val(),
            None,
        );
        put(
            format!("blk.{n}.ffn_down.weight"),
            l.mlp.down_proj.weight.val(),
            None,
        );
    }
    let norm = |t: Tensor<B, 1>| host(t.dims().to_vec(), t.into_data().to_vec::<f32>().unwrap());
    for (n, l) in m.model.layers.iter().enumerate() {
        map.insert(
            format!("blk.{n}.attn_norm.weight"),
            norm(l.input_layernorm.gamma.val()),
        );
        map.insert(
            format!("blk.{n}.ffn_norm.weight"),
            norm(l.post_attention_layernorm.gamma.val()),
        );
    }
    map.insert("output_norm.weight".into(), norm(m.model.norm.gamma.val()));
    let e = m.model.embed_tokens.weight.val();
    map.insert(
        "token_embd.weight".into(),
        host(e.dims().to_vec(), values(e)),
    );
    Layout(map)
}

#[test]
fn loads_tensors_in_gguf_layout() {
    let c = tiny();
    let m = model(&c);
    let mut source = gguf_layout(&m, &c);
    let loaded: CausalLm<B> = load_decoder(&c, &mut source, &Default::default()).unwrap();
    logits(&loaded, &IDS)
        .into_data()
        .assert_eq(&logits(&m, &IDS).into_data(), true);
}

#[test]
fn loading_names_the_missing_misshapen_or_non_finite_tensor() {
    let c = tiny();
    let m = model(&c);
    let load = |source: &mut Layout| load_decoder::<B>(&c, source, &Default::default());
    let mut source = gguf_layout(&m, &c);
    source.0.remove("blk.1.ffn_up.weight");
    let err = load(&mut source).unwrap_err();
    assert!(
        matches!(&err, DecoderError::MissingTensor { name, .. } if name == "blk.1.ffn_up.weight"),
        "{err}"
    );
    let mut source = gguf_layout(&m, &c);
    source.0.get_mut("blk.0.attn_k.weight").unwrap().shape = vec![16, 8];
    let err = load(&mut source).unwrap_err();
    assert!(
        matches!(&err, DecoderError::TensorShape { name, expected, .. } if name == "blk.0.attn_k.weight" && expected == &[8, 16]),
        "{err}"
    );
    let mut source = gguf_layout(&m, &c);
    source.0.get_mut("output_norm.weight").unwrap().values[3] = f32::NAN;
    let err = load(&mut source).unwrap_err();
    assert!(
        matches!(&err, DecoderError::NonFinite { name, .. } if name == "output_norm.weight"),
        "{err}"
    );
    assert!(err.to_string().contains("test.gguf"), "{err}");
}

#[test]
fn grouped_queries_read_their_group_s_keys_and_values() {
    // The same model with every key/value head repeated for its query heads
    // (4 kv heads) computes what the grouped one (2 kv heads) does.
    let grouped_config = tiny();
    let grouped = model(&grouped_config);
    let mut source = gguf_layout(&grouped, &grouped_config);
    let full_config = DecoderConfig {
        num_key_value_heads: 4,
        ..tiny()
    };
    let hd = grouped_config.head_dim();
    for n in 0..2 {
        for p in ["attn_k", "attn_v"] {
            let HostTensor {
                shape,
                values: rows,
            } = source.0[&format!("blk.{n}.{p}.weight")].clone();
            let cols = shape[1];
            let mut repeated = Vec::new();
            for h in 0..4 {
                let g = h / 2;
                repeated.extend_from_slice(&rows[g * hd * cols..(g + 1) * hd * cols]);
            }
            source.0.insert(
                format!("blk.{n}.{p}.weight"),
                host(vec![4 * hd, cols], repeated),
            );
        }
    }
    let full: CausalLm<B> = load_decoder(&full_config, &mut source, &Default::default()).unwrap();
    logits(&full, &IDS).into_data().assert_approx_eq::<f32>(
        &logits(&grouped, &IDS).into_data(),
        Tolerance::absolute(1e-5),
    );
}

#[test]
fn peft_names_adapt_the_feed_forward_and_start_as_the_base() {
    let m = model(&tiny());
    let before = logits(&m, &IDS);
    let config = AdaptConfig::new(
        RLoraConfig::r_lora(4, 32.0, 5),
        TargetModules::names(["gate_proj", "up_proj", "down_proj"]),
    );
    let (adapted, paths) = config.adapt_listed(m).unwrap();
    let want: Vec<String> = (0..2)
        .flat_map(|n| {
            ["gate_proj", "up_proj", "down_proj"].map(|p| format!("model.layers.{n}.mlp.{p}"))
        })
        .collect();
    assert_eq!(paths, want);
    assert_eq!(adapted_paths(&adapted), want);
    logits(&adapted, &IDS)
        .into_data()
        .assert_approx_eq::<f32>(&before.into_data(), Tolerance::rel_abs(1e-5, 1e-5));
    let all = AdaptConfig::new(
        RLoraConfig::lora(2, 4.0),
        TargetModules::names(["q_proj", "k_proj", "v_proj", "o_proj"]),
    );
    let (_, paths) = all.adapt_listed(model(&tiny())).unwrap();
    assert_eq!(paths.len(), 8);
    assert_eq!(paths[1], "model.layers.0.self_attn.k_proj");
}

#[test]
fn greedy_generation_is_the_argmax_of_each_full_pass() {
    let m = model(&tiny());
    let config = GenerationConfig::greedy(6, vec![]);
    let mut streamed = Vec::new();
    let out = generate(&m, &IDS[..3], &config, |t| {
        streamed.push(t);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(out.stop, StopReason::Budget);
    assert_eq!(out.tokens, streamed);
    let mut ids = IDS[..3].to_vec();
    for &t in &out.tokens {
        let last = row(logits(&m, &ids), ids.len() - 1);
        assert_eq!(burn_rlora_llm::generate::argmax(&last), t);
        ids.push(t);
    }
}

#[test]
fn generation_stops_at_a_stop_token_the_caller_or_the_context() {
    let m = model(&tiny());
    let first = generate(&m, &IDS, &GenerationConfig::greedy(1, vec![]), |_| {
        ControlFlow::Continue(())
    })
    .unwrap()
    .tokens[0];
    let out = generate(&m, &IDS, &GenerationConfig::greedy(10, vec![first]), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!((out.tokens, out.stop), (vec![first], StopReason::StopToken));
    let out = generate(&m, &IDS, &GenerationConfig::greedy(10, vec![]), |_| {
        ControlFlow::Break(())
    })
    .unwrap();
    assert_eq!((out.tokens.len(), out.stop), (1, StopReason::Caller));
    let long = [1u32; 30];
    let out = generate(&m, &long, &GenerationConfig::greedy(10, vec![]), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!((out.tokens.len(), out.stop), (3, StopReason::ContextFull));
}

#[test]
fn the_same_seed_samples_the_same_tokens() {
    let m = model(&tiny());
    let run = |seed| {
        let config = GenerationConfig {
            max_new_tokens: 20,
            sampling: Sampling::Sample {
                // The drawn tiny model is sure of itself: flatten its logits.
                temperature: 50.0,
                top_p: 0.95,
                seed,
            },
            stop_tokens: vec![],
        };
        generate(&m, &IDS[..2], &config, |_| ControlFlow::Continue(()))
            .unwrap()
            .tokens
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn bad_configurations_and_inputs_are_errors() {
    let device = Default::default();
    for c in [
        DecoderConfig {
            num_attention_heads: 3,
            ..tiny()
        },
        DecoderConfig {
            num_key_value_heads: 3,
            ..tiny()
        },
        DecoderConfig::new(50, 12, 24, 2, 4, 2, 32),
        DecoderConfig {
            num_hidden_layers: 0,
            ..tiny()
        },
        tiny().with_rms_norm_eps(0.0),
    ] {
        assert!(
            matches!(c.init::<B>(&device), Err(DecoderError::InvalidConfig(_))),
            "{c:?}"
        );
    }
    let m = model(&tiny());
    assert!(matches!(
        m.tokens(&[vec![50]], &device),
        Err(DecoderError::TokenOutOfRange {
            id: 50,
            vocab_size: 50
        })
    ));
    assert!(matches!(
        m.tokens(&[vec![1, 2], vec![3]], &device),
        Err(DecoderError::Shape(_))
    ));
    assert!(matches!(
        m.tokens::<Vec<u32>>(&[], &device),
        Err(DecoderError::Shape(_))
    ));
    let long = m.tokens(&[vec![1; 33]], &device).unwrap();
    assert!(matches!(
        m.forward(long, None),
        Err(DecoderError::TooLong {
            needed: 33,
            max: 32
        })
    ));
    let mut other = model(&DecoderConfig {
        num_hidden_layers: 3,
        ..tiny()
    })
    .new_cache();
    let t = m.tokens(&[vec![1]], &device).unwrap();
    assert!(matches!(
        m.forward(t, Some(&mut other)),
        Err(DecoderError::Shape(_))
    ));
    let empty = generate(&m, &[], &GenerationConfig::greedy(3, vec![]), |_| {
        ControlFlow::Continue(())
    });
    assert!(matches!(empty, Err(DecoderError::Shape(_))));
}

mod adapters {
    use super::*;
    use burn::backend::Autodiff;
    use burn::module::AutodiffModule;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use burn_rlora::checkpoint::{read_config, CheckpointError, TENSORS_FILE};
    use burn_rlora_llm::{
        load_decoder_adapter, save_decoder_adapter, AdapterLoadError, PEFT_PREFIX,
    };

    type AD = Autodiff<B>;

    fn adapter_config() -> RLoraConfig {
        RLoraConfig::r_lora(2, 8.0, 3).with_dropout(0.0)
    }

    fn adapted(m: CausalLm<AD>) -> CausalLm<AD> {
        AdaptConfig::new(
            adapter_config(),
            TargetModules::names(["gate_proj", "up_proj", "down_proj"]),
        )
        .adapt(m)
        .unwrap()
    }

    /// `m` after one Adam step that raises the logit of token 7 everywhere.
    fn trained(m: CausalLm<AD>) -> CausalLm<AD> {
        let device = Default::default();
        let tokens = m.tokens(&[IDS.to_vec()], &device).unwrap();
        let logits = m.forward(tokens, None).unwrap();
        let loss = logits.slice([0..1, 0..IDS.len(), 7..8]).mean().neg();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        AdamConfig::new().init().step(0.05, m, grads)
    }

    fn tensor_names(dir: &std::path::Path) -> Vec<String> {
        let bytes = std::fs::read(dir.join(TENSORS_FILE)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
        names.sort();
        names
    }

    #[test]
    fn a_saved_adapter_has_peft_names_and_loads_back_on_the_plain_model() {
        let config = tiny();
        let base = config.init::<AD>(&Default::default()).unwrap();
        let plain = base.clone().valid();
        let model = trained(adapted(base)).valid();
        let dir = tempdir("saved");
        save_decoder_adapter(&model, &dir, &adapter_config(), "tiny").unwrap();
        let names = tensor_names(&dir);
        assert!(
            names.contains(&format!(
                "{PEFT_PREFIX}model.layers.1.mlp.down_proj.lora_A.weight"
            )),
            "{names:?}"
        );
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("base_model.model.model.layers.")),
            "{names:?}"
        );
        assert_eq!(read_config(&dir).unwrap().target_module_paths.len(), 6);

        let (loaded, _) = load_decoder_adapter(plain.clone(), &dir).unwrap();
        assert_eq!(adapted_paths(&loaded).len(), 6);
        let (got, want, base) = (
            logits(&loaded, &IDS),
            logits(&model, &IDS),
            logits(&plain, &IDS),
        );
        got.clone()
            .into_data()
            .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-6));
        assert_ne!(
            row(got, 3),
            row(base, 3),
            "the trained adapter changes the output"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fresh_adapter_answers_as_the_base() {
        let base = tiny().init::<AD>(&Default::default()).unwrap();
        let plain = base.clone().valid();
        let dir = tempdir("fresh");
        save_decoder_adapter(&adapted(base).valid(), &dir, &adapter_config(), "tiny").unwrap();
        let (loaded, _) = load_decoder_adapter(plain.clone(), &dir).unwrap();
        let config = GenerationConfig::greedy(8, vec![]);
        let answer = |m: &CausalLm<B>| {
            generate(m, &IDS[..4], &config, |_| ControlFlow::Continue(()))
                .unwrap()
                .tokens
        };
        assert_eq!(answer(&loaded), answer(&plain));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_adapter_for_another_shape_is_refused() {
        let base = tiny().init::<AD>(&Default::default()).unwrap();
        let dir = tempdir("other");
        save_decoder_adapter(&adapted(base).valid(), &dir, &adapter_config(), "tiny").unwrap();
        let wider = DecoderConfig {
            intermediate_size: 32,
            ..tiny()
        };
        let err = load_decoder_adapter(model(&wider), &dir).unwrap_err();
        assert!(
            matches!(
                &err,
                AdapterLoadError::Checkpoint(CheckpointError::ShapeMismatch { .. })
            ),
            "{err}"
        );
        let missing = load_decoder_adapter(model(&tiny()), dir.join("nowhere")).unwrap_err();
        assert!(
            matches!(
                missing,
                AdapterLoadError::Checkpoint(CheckpointError::Io { .. })
            ),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("smollm-adapter-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}

// Answer spans are lists of ranges: one-span lists are meant.
#[allow(clippy::single_range_in_vec_init)]
#[test]
fn the_answer_loss_is_the_full_pass_s_at_the_answer_positions() {
    use burn_rlora_llm::{answer_nll, AnswerBatch, AnswerSequence};
    let m = model(&tiny());
    let device = Default::default();
    let seqs = [
        AnswerSequence::new(IDS.to_vec(), 6, 0),
        AnswerSequence::new(IDS[..5].to_vec(), 2, 1),
        // Two assistant turns: tokens 2..4 and 6..8.
        AnswerSequence {
            ids: IDS[..8].to_vec(),
            answers: vec![2..4, 6..8],
            task: 0,
        },
    ];
    let batch = AnswerBatch::<B>::new(&seqs, 0, &device).unwrap();
    assert_eq!(batch.rows, [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]);
    assert_eq!(batch.tasks, [0, 1, 0]);
    let nll = answer_nll(&m, &batch)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    // Hand-listed positions: each predicts the answer token after it.
    let predicting: [&[usize]; 3] = [&[5, 6, 7], &[1, 2, 3], &[1, 2, 5, 6]];
    let mut want = Vec::new();
    for (s, positions) in seqs.iter().zip(predicting) {
        let full = logits(&m, &s.ids);
        for &p in positions {
            let r = row(full.clone(), p);
            let lse = r.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
            want.push((lse - r[s.ids[p + 1] as usize] as f64) as f32);
        }
    }
    assert_close(&nll, &want, 1e-4);
    let spans = |answers: Vec<std::ops::Range<usize>>| {
        vec![AnswerSequence {
            ids: vec![1, 2, 3, 4],
            answers,
            task: 0,
        }]
    };
    for bad in [
        vec![AnswerSequence::new(vec![1, 2], 0, 0)],
        vec![AnswerSequence::new(vec![1, 2], 2, 0)],
        spans(vec![]),
        spans(vec![2..3, 1..2]),
        spans(vec![1..3, 2..4]),
        spans(vec![3..5]),
        spans(vec![2..2]),
        vec![],
    ] {
        assert!(matches!(
            AnswerBatch::<B>::new(&bad, 0, &device),
            Err(DecoderError::Shape(_))
        ));
    }
}

#[test]
fn a_half_precision_base_on_ndarray_is_a_typed_error() {
    use burn::tensor::FloatDType;
    for dtype in [FloatDType::F16, FloatDType::BF16] {
        let err = model(&tiny()).with_base_dtype(dtype).unwrap_err();
        assert!(
            matches!(err, burn_rlora::RLoraError::UnsupportedDtype { dtype: d } if d == dtype),
            "{err}"
        );
    }
}

/// A half-precision base (flex holds f16 and bf16; ndarray does not).
mod half_base {
    use super::*;
    use burn::tensor::{DType, FloatDType};

    type F = burn::backend::Flex;

    fn flex_logits(m: &CausalLm<F>, ids: &[u32]) -> Vec<f32> {
        let tokens = m.tokens(&[ids.to_vec()], &Default::default()).unwrap();
        m.forward(tokens, None)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap()
    }

    fn tiny_flex() -> CausalLm<F> {
        tiny().init::<F>(&Default::default()).unwrap()
    }

    #[test]
    fn the_base_is_half_precision_and_the_rest_is_not() {
        let m = tiny_flex().with_base_dtype(FloatDType::BF16).unwrap();
        assert_eq!(m.model.embed_tokens.weight.val().dtype(), DType::BF16);
        let block = &m.model.layers[0];
        for p in [
            &block.self_attn.q_proj,
            &block.self_attn.o_proj,
            &block.mlp.down_proj,
        ] {
            assert_eq!(p.weight.val().dtype(), DType::BF16);
        }
        assert_eq!(block.input_layernorm.gamma.val().dtype(), DType::F32);
        assert_eq!(m.model.norm.gamma.val().dtype(), DType::F32);
        let tokens = m.tokens(&[IDS.to_vec()], &Default::default()).unwrap();
        assert_eq!(m.forward(tokens, None).unwrap().dtype(), DType::F32);
    }

    #[test]
    fn half_precision_logits_are_the_f32_ones_to_rounding() {
        // One model and its casts (tests share the backend's RNG).
        let m = tiny_flex();
        let full = flex_logits(&m, &IDS);
        let scale = full.iter().map(|v| v.abs()).fold(0.0, f32::max);
        for (dtype, bound) in [(FloatDType::F16, 0.01), (FloatDType::BF16, 0.08)] {
            let half = flex_logits(&m.clone().with_base_dtype(dtype).unwrap(), &IDS);
            let worst = half
                .iter()
                .zip(&full)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst > 0.0,
                "{dtype:?}: identical logits: the base did not change type"
            );
            assert!(
                worst <= bound * scale,
                "{dtype:?}: {worst} against scale {scale}"
            );
        }
    }

    #[test]
    fn a_half_precision_base_adapts_caches_and_generates_as_one_pass() {
        let m = tiny_flex().with_base_dtype(FloatDType::F16).unwrap();
        let before = flex_logits(&m, &IDS);
        let config = AdaptConfig::new(
            RLoraConfig::r_lora(4, 32.0, 5),
            TargetModules::names(["gate_proj", "up_proj", "down_proj"]),
        );
        let adapted = config.adapt(m).unwrap();
        let mlp = &adapted.model.layers[1].mlp;
        assert_eq!(mlp.up_proj.weight.val().dtype(), DType::F16);
        assert_eq!(
            mlp.up_proj.adapter().unwrap().lora_a.val().dtype(),
            DType::F32
        );
        // Identity at init holds in the base's precision too.
        assert_close(&flex_logits(&adapted, &IDS), &before, 1e-4);
        let out = generate(
            &adapted,
            &IDS[..3],
            &GenerationConfig::greedy(5, vec![]),
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
        let mut ids = IDS[..3].to_vec();
        let vocab = adapted.vocab_size();
        for &t in &out.tokens {
            let all = flex_logits(&adapted, &ids);
            let last = &all[(ids.len() - 1) * vocab..];
            assert_eq!(burn_rlora_llm::generate::argmax(last), t);
            ids.push(t);
        }
    }
}
