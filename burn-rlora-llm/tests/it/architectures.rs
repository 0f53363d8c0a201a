//! Every supported architecture against transformers.
//!
//! Tiny random-weight models of each architecture (`llama`, `qwen2`,
//! `qwen3`, `gemma3`), built with transformers from small configurations and
//! written as GGUF files the way llama.cpp's converter writes them
//! (`scripts/decoder-tiny-fixtures.py`: `tests/fixtures/decoder_tiny_*.gguf`
//! and the logits transformers computes for them, `decoder_tiny_*.json`);
//! and the real Gemma 3 270M file, against transformers loading the same
//! GGUF in float32 (`scripts/decoder-gemma3-reference.py`:
//! `tests/fixtures/decoder_gemma3_reference.json`). The real file needs
//! `bash scripts/fetch-data.sh`; without it that test prints why and passes
//! without checking, unless `BURN_RLORA_REQUIRE_DATA` is set.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use burn_rlora_gguf::GgufFile;
use burn_rlora_llm::{
    generate, load_decoder, Architecture, CausalLm, DecoderConfig, GenerationConfig, HiddenAct,
};
use serde::Deserialize;

use crate::common;

type B = burn::backend::Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[derive(Deserialize)]
struct Tiny {
    cases: Vec<TinyCase>,
    greedy: TinyGreedy,
}

#[derive(Deserialize)]
struct TinyCase {
    ids: Vec<u32>,
    /// `logits[p]`: transformers' row at position `p`.
    logits: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct TinyGreedy {
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
}

fn load(path: &Path) -> (DecoderConfig, CausalLm<B>) {
    let mut file = GgufFile::open(path).expect("the GGUF file opens");
    let config = DecoderConfig::from_gguf(&file).expect("the configuration reads");
    let model = load_decoder::<B>(&config, &mut file, &Default::default()).expect("it loads");
    (config, model)
}

fn logits(model: &CausalLm<B>, ids: &[u32]) -> Vec<f32> {
    let tokens = model.tokens(&[ids], &Default::default()).unwrap();
    let out: Tensor<B, 3> = model.forward(tokens, None).unwrap();
    out.into_data().to_vec::<f32>().unwrap()
}

/// Transformers' float32 logits against ours, at every position of every
/// case; then the greedy continuation through the KV cache. Returns the
/// largest difference.
fn check_tiny(arch: &str) -> (DecoderConfig, f64) {
    let (config, model) = load(&fixture(&format!("decoder_tiny_{arch}.gguf")));
    let text = std::fs::read_to_string(fixture(&format!("decoder_tiny_{arch}.json")))
        .expect("committed fixture");
    let tiny: Tiny = serde_json::from_str(&text).expect("the fixture parses");
    let vocab = config.vocab_size;
    let mut worst = 0.0f64;
    for case in &tiny.cases {
        let ours = logits(&model, &case.ids);
        assert_eq!(ours.len(), case.ids.len() * vocab);
        for (p, want) in case.logits.iter().enumerate() {
            let row = &ours[p * vocab..(p + 1) * vocab];
            for (&got, &want) in row.iter().zip(want) {
                worst = worst.max((f64::from(got) - want).abs());
            }
        }
    }
    let out = generate(
        &model,
        &tiny.greedy.prompt_ids,
        &GenerationConfig::greedy(tiny.greedy.ids.len(), vec![]),
        |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(out.tokens, tiny.greedy.ids, "{arch}: greedy continuation");
    eprintln!("tiny {arch}: max |logit difference| {worst:.2e}");
    (config, worst)
}

/// The measured worst difference over the four tiny models is in the
/// README; the bound leaves room for other CPUs' summation orders (the
/// logits of these models have a standard deviation of about 1.7).
const TINY_TOLERANCE: f64 = 1e-4;

#[test]
fn tiny_llama_matches_transformers() {
    let (config, worst) = check_tiny("llama");
    assert_eq!(config.architecture, Architecture::Llama);
    assert!(
        !config.tie_word_embeddings,
        "the llama fixture has an output head"
    );
    assert!(worst < TINY_TOLERANCE, "{worst}");
}

#[test]
fn tiny_qwen2_matches_transformers() {
    let (config, worst) = check_tiny("qwen2");
    assert_eq!(config.architecture, Architecture::Qwen2);
    assert!(config.attention_bias && !config.qk_norm);
    assert!(worst < TINY_TOLERANCE, "{worst}");
}

#[test]
fn tiny_qwen3_matches_transformers() {
    let (config, worst) = check_tiny("qwen3");
    assert_eq!(config.architecture, Architecture::Qwen3);
    assert!(config.qk_norm && !config.attention_bias);
    // Its heads are wider than hidden_size / heads.
    assert_eq!((config.head_dim(), config.hidden_size), (12, 32));
    assert!(worst < TINY_TOLERANCE, "{worst}");
}

#[test]
fn tiny_gemma3_matches_transformers() {
    let (config, worst) = check_tiny("gemma3");
    assert_eq!(config.architecture, Architecture::Gemma3);
    assert_eq!(config.hidden_act, HiddenAct::GeluTanh);
    assert_eq!(config.sliding_window, Some(8));
    let sliding: Vec<bool> = (0..7).map(|l| config.is_sliding(l)).collect();
    assert_eq!(sliding, [true, true, true, true, true, false, true]);
    assert!(worst < TINY_TOLERANCE, "{worst}");
}

#[derive(Deserialize)]
struct GemmaReference {
    cases: Vec<GemmaCase>,
}

#[derive(Deserialize)]
struct GemmaCase {
    name: String,
    ids: Vec<u32>,
    positions: Vec<GemmaPosition>,
    greedy: Vec<u32>,
}

#[derive(Deserialize)]
struct GemmaPosition {
    top_ids: Vec<usize>,
    top_logits: Vec<f64>,
    logsumexp: f64,
}

/// The measured worst difference is in the README; this bound leaves room
/// for other CPUs' summation orders.
const GEMMA_TOLERANCE: f64 = 2e-3;

#[test]
fn gemma3_270m_matches_transformers_on_the_same_file() {
    let Some(path) = common::model_or_skip("gemma3 parity", common::GEMMA3) else {
        return;
    };
    let start = std::time::Instant::now();
    let (config, model) = load(&path);
    eprintln!(
        "gemma3 parity: loaded in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(config.architecture, Architecture::Gemma3);
    assert_eq!(
        (
            config.num_hidden_layers,
            config.hidden_size,
            config.head_dim()
        ),
        (18, 640, 256)
    );
    let global: Vec<usize> = (0..18).filter(|&l| !config.is_sliding(l)).collect();
    assert_eq!(global, [5, 11, 17]);
    let text = std::fs::read_to_string(fixture("decoder_gemma3_reference.json"))
        .expect("committed fixture");
    let reference: GemmaReference = serde_json::from_str(&text).expect("the fixture parses");
    assert!(reference.cases.len() >= 6);
    let vocab = config.vocab_size;
    let mut worst = 0.0f64;
    for case in &reference.cases {
        let ours = logits(&model, &case.ids);
        for (p, want) in case.positions.iter().enumerate() {
            let row = &ours[p * vocab..(p + 1) * vocab];
            assert_eq!(
                burn_rlora_llm::generate::argmax(row) as usize,
                want.top_ids[0],
                "{}: argmax at position {p}",
                case.name
            );
            let top = want.top_ids.iter().zip(&want.top_logits);
            worst = top
                .map(|(&id, &logit)| (f64::from(row[id]) - logit).abs())
                .fold(
                    worst.max((common::logsumexp(row) - want.logsumexp).abs()),
                    f64::max,
                );
        }
        let out = generate(
            &model,
            &case.ids,
            &GenerationConfig::greedy(case.greedy.len(), vec![]),
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
        assert_eq!(
            out.tokens, case.greedy,
            "{}: greedy continuation",
            case.name
        );
    }
    eprintln!("gemma3 parity: max |logit difference| {worst:.2e} (top 20 and log-sum-exp)");
    assert!(worst < GEMMA_TOLERANCE, "{worst}");
}
