//! Parity of the Burn decoder with the reference logits and greedy
//! continuations of SmolLM2-135M-Instruct in
//! `tests/fixtures/smollm_reference.json` (written by
//! `scripts/smollm-reference.py` with transformers loading the same GGUF).
//!
//! Needs `data/smollm2/` (`bash scripts/fetch-data.sh`); without it the test
//! prints why and passes without checking, unless `BURN_RLORA_REQUIRE_DATA`
//! is set (as in CI), where it fails.

use std::ops::ControlFlow;

use burn_rlora_gguf::GgufFile;
use burn_rlora_llm::{generate, load_decoder, DecoderConfig, GenerationConfig};
use serde::Deserialize;

use crate::common;

type B = burn::backend::Flex;

#[derive(Deserialize)]
struct Reference {
    fixed_ids: Vec<usize>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    prompt: String,
    ids: Vec<u32>,
    positions: Vec<Position>,
    greedy: Vec<u32>,
}

#[derive(Deserialize)]
struct Position {
    argmax: usize,
    logsumexp: f64,
    top_ids: Vec<usize>,
    top_logits: Vec<f64>,
    fixed_logits: Vec<f64>,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/smollm_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("committed fixture"))
        .expect("fixture parses")
}

/// The largest logit difference of one position, over the reference's top
/// logits, its fixed ids and the log-sum-exp of the whole row.
fn max_difference(row: &[f32], p: &Position, fixed_ids: &[usize]) -> f64 {
    let top = p.top_ids.iter().zip(&p.top_logits);
    let fixed = fixed_ids.iter().zip(&p.fixed_logits);
    top.chain(fixed)
        .map(|(&id, &want)| (row[id] as f64 - want).abs())
        .fold((common::logsumexp(row) - p.logsumexp).abs(), f64::max)
}

/// The measured worst difference is recorded in the README; this bound
/// leaves room for other CPUs' summation orders.
const TOLERANCE: f64 = 2e-3;

#[test]
fn smollm2_matches_the_reference_logits_and_greedy_continuations() {
    let Some(path) = common::smollm2_or_skip("smollm2 parity") else {
        return;
    };
    let device = Default::default();
    // The decoder alone: the tokenizer has its own reference test.
    let start = std::time::Instant::now();
    let mut file = GgufFile::open(&path).expect("the GGUF file opens");
    let config = DecoderConfig::from_gguf(&file).expect("a llama configuration");
    let model = load_decoder::<B>(&config, &mut file, &device).expect("model loads");
    eprintln!(
        "smollm2 parity: loaded in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let reference = reference();
    let mut worst = 0.0f64;
    for case in &reference.cases {
        let tokens = model.tokens(&[&case.ids], &device).unwrap();
        let logits = model.forward(tokens, None).unwrap();
        let vocab = config.vocab_size;
        let values = logits.into_data().to_vec::<f32>().unwrap();
        assert_eq!(values.len(), case.ids.len() * vocab);
        for (i, p) in case.positions.iter().enumerate() {
            let row = &values[i * vocab..(i + 1) * vocab];
            let argmax = burn_rlora_llm::generate::argmax(row) as usize;
            assert_eq!(
                argmax, p.argmax,
                "argmax at position {i} of {:?}",
                case.prompt
            );
            worst = worst.max(max_difference(row, p, &reference.fixed_ids));
        }
        let config = GenerationConfig::greedy(case.greedy.len(), vec![]);
        let out = generate(&model, &case.ids, &config, |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(
            out.tokens, case.greedy,
            "greedy continuation of {:?}",
            case.prompt
        );
    }
    eprintln!("smollm2 parity: max |logit difference| {worst:.2e}");
    assert!(
        worst < TOLERANCE,
        "max |logit difference| {worst} >= {TOLERANCE}"
    );
}

/// A half-precision base (flex holds f16 and bf16), against the f32 model
/// on the reference prompts: how far the logits move and how often the
/// most likely token changes. Bounds from the measured figures (README).
#[test]
fn smollm2_with_a_half_precision_base_stays_close_to_f32() {
    use burn::tensor::FloatDType;
    let Some(path) = common::smollm2_or_skip("smollm2 half-precision base") else {
        return;
    };
    let device = Default::default();
    let mut file = GgufFile::open(&path).expect("the GGUF file opens");
    let config = DecoderConfig::from_gguf(&file).expect("a llama configuration");
    let full = load_decoder::<B>(&config, &mut file, &device).expect("model loads");
    let reference = reference();
    let vocab = config.vocab_size;
    for (dtype, max_logit, min_agree) in
        [(FloatDType::F16, 1.5, 0.95), (FloatDType::BF16, 3.5, 0.9)]
    {
        let half = full.clone().with_base_dtype(dtype).unwrap();
        let (mut worst, mut agree, mut positions) = (0.0f32, 0, 0);
        for case in &reference.cases {
            let rows = |m: &burn_rlora_llm::CausalLm<B>| {
                let tokens = m.tokens(&[&case.ids], &device).unwrap();
                m.forward(tokens, None)
                    .unwrap()
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap()
            };
            let (a, b) = (rows(&full), rows(&half));
            for (ra, rb) in a.chunks(vocab).zip(b.chunks(vocab)) {
                let argmax = burn_rlora_llm::generate::argmax;
                agree += usize::from(argmax(ra) == argmax(rb));
                positions += 1;
                worst = ra
                    .iter()
                    .zip(rb)
                    .map(|(x, y)| (x - y).abs())
                    .fold(worst, f32::max);
            }
        }
        let share = agree as f64 / positions as f64;
        eprintln!(
            "smollm2 {dtype:?} base: max |logit difference| {worst:.3}, argmax equal at {agree} of {positions} positions"
        );
        assert!(
            worst > 0.0,
            "{dtype:?}: identical logits: the base did not change type"
        );
        assert!(
            worst <= max_logit,
            "{dtype:?}: max |logit difference| {worst}"
        );
        assert!(
            share >= min_agree,
            "{dtype:?}: argmax equal at {agree} of {positions}"
        );
    }
}
