//! Parity of the Burn MiniLM encoder with the reference sentence embeddings in
//! `tests/fixtures/minilm_embeddings.json` (written by `scripts/minilm_reference.py`).
//!
//! The test needs the pretrained model in `data/minilm/`; without it, it prints
//! why and passes without checking (run `bash scripts/fetch-data.sh`). CI fetches
//! the data first, so there it runs.
//!
//! Cosine similarity is compared per sentence; it is the same before and after
//! sentence-transformers' L2 normalization. The norm of the mean-pooled
//! (unnormalized) embedding is compared as well.

#![cfg(any(feature = "flex", feature = "ndarray"))]

use burn_rlora::RLoraConfig;
use burn_rlora_pretrained::minilm::{
    l2_normalize, EncoderAdapterConfig, PretrainedMiniLm, TargetModule, DEFAULT_MAX_LEN,
};
use serde::Deserialize;

use crate::common;

#[cfg(feature = "flex")]
type B = burn::backend::Flex;
#[cfg(not(feature = "flex"))]
type B = burn::backend::NdArray<f32>;

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<RefSentence>,
}

#[derive(Deserialize)]
struct RefSentence {
    text: String,
    token_ids: Vec<i64>,
    pooled_norm: f64,
    embedding: Vec<f64>,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_embeddings.json"
    );
    let text = std::fs::read_to_string(path).expect("committed fixture");
    serde_json::from_str(&text).expect("fixture parses")
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn rows(t: burn::tensor::Tensor<B, 2>) -> Vec<Vec<f64>> {
    let [n, d] = t.dims();
    let v: Vec<f64> = t.into_data().convert::<f64>().to_vec().expect("f64 data");
    (0..n).map(|i| v[i * d..(i + 1) * d].to_vec()).collect()
}

#[test]
fn minilm_matches_reference_sentence_embeddings() {
    let Some(dir) = common::fetched_data_or_skip("minilm parity") else {
        return;
    };
    let start = std::time::Instant::now();
    let device = Default::default();
    let reference = reference();
    assert_eq!(reference.sentences.len(), 5);
    let minilm = PretrainedMiniLm::<B>::load(&dir, DEFAULT_MAX_LEN, &device).expect("model loads");
    let texts: Vec<&str> = reference
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    let batch = minilm.tokenizer.encode_batch(&texts).expect("tokenizes");

    // Same tokens as the Python tokenizer, and the batch really is padded.
    for (i, s) in reference.sentences.iter().enumerate() {
        let row = &batch.input_ids[i * batch.seq_len..i * batch.seq_len + batch.len_of(i)];
        assert_eq!(row, s.token_ids.as_slice(), "token ids of {:?}", s.text);
    }
    assert!(
        batch.len_of(0) < batch.seq_len,
        "the batch should need padding"
    );

    let input = batch.to_input::<B>(&device);
    let pooled = minilm.model.sentence_embedding(&input);
    let normalized = rows(l2_normalize(pooled.clone()));
    for ((s, got), raw) in reference
        .sentences
        .iter()
        .zip(&normalized)
        .zip(rows(pooled))
    {
        let c = cosine(got, &s.embedding);
        assert!(c >= 0.9999, "cosine {c} < 0.9999 for {:?}", s.text);
        let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
        let rel = (norm - s.pooled_norm).abs() / s.pooled_norm;
        assert!(
            rel < 1e-3,
            "pooled norm {norm} vs {} for {:?}",
            s.pooled_norm,
            s.text
        );
        println!(
            "cosine {c:.7}, norm {norm:.5} (ref {:.5}): {}",
            s.pooled_norm, s.text
        );
    }

    // Adapted on every linear, the pretrained encoder still computes the same
    // embeddings at init (eval mode: no dropout on a non-autodiff backend).
    let adapters =
        EncoderAdapterConfig::new(RLoraConfig::r_lora(4, 32.0, 3)).with_targets(TargetModule::ALL);
    let adapted = minilm.model.adapt(&adapters).expect("adapts");
    assert_eq!(adapted.adapted_layers().len(), 6 * 6);
    let again = rows(l2_normalize(adapted.sentence_embedding(&input)));
    for ((s, got), plain) in reference.sentences.iter().zip(&again).zip(&normalized) {
        let c = cosine(got, plain);
        assert!(c >= 0.99999, "adapted cosine {c} for {:?}", s.text);
    }
    println!("parity test took {:.1} s", start.elapsed().as_secs_f64());
}
