//! Text generation with a KV cache: the prompt is computed once, then one
//! token at a time; greedy or sampled (temperature, top-p, seeded).

use std::ops::ControlFlow;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::DecoderError;
use crate::model::CausalLm;
use crate::tokenizer::Tokenizer;

/// The texts of the control tokens that end a turn in the chat formats of
/// the supported models (llama.cpp's "end of generation" tokens): ChatML's
/// `<|im_end|>`, Gemma's `<end_of_turn>`, Llama 3's `<|eot_id|>` and
/// `<|eom_id|>`, and `<|endoftext|>`.
const END_OF_TURN: [&str; 5] = [
    "<|im_end|>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|endoftext|>",
];

/// The tokens generation stops at for `tokenizer`'s vocabulary: its
/// end-of-sequence token, and those of the end-of-turn tokens of the
/// supported chat formats (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`,
/// `<|eom_id|>`, `<|endoftext|>`) that it holds as control tokens, in id
/// order.
pub fn stop_tokens(tokenizer: &Tokenizer) -> Vec<u32> {
    let mut ids: Vec<u32> = END_OF_TURN
        .iter()
        .filter_map(|text| tokenizer.token_to_id(text))
        .filter(|&id| tokenizer.is_special(id))
        .chain([tokenizer.eos()])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token.
    Greedy,
    /// A draw from the softmax of the logits divided by `temperature`, kept
    /// to the most likely tokens whose probabilities reach `top_p` together
    /// (nucleus sampling). The same seed draws the same tokens on one backend.
    Sample {
        /// Divides the logits; above 0.
        temperature: f64,
        /// The nucleus's probability mass, in (0, 1].
        top_p: f64,
        /// Seed of the draws.
        seed: u64,
    },
}

/// What [`generate`] does.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Tokens to generate at most.
    pub max_new_tokens: usize,
    /// How each token is chosen.
    pub sampling: Sampling,
    /// Tokens that end the answer (SmolLM2: eos `<|im_end|>`, id 2); the
    /// stop token is returned but not generated past.
    pub stop_tokens: Vec<u32>,
}

impl GenerationConfig {
    /// Greedy decoding of at most `max_new_tokens`, stopping at `stop_tokens`.
    pub fn greedy(max_new_tokens: usize, stop_tokens: Vec<u32>) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Greedy,
            stop_tokens,
        }
    }

    /// Checks the sampling settings.
    ///
    /// # Errors
    ///
    /// [`DecoderError::InvalidConfig`] for a temperature that is not above
    /// 0 or a `top_p` outside (0, 1].
    pub fn validate(&self) -> Result<(), DecoderError> {
        if let Sampling::Sample {
            temperature, top_p, ..
        } = self.sampling
        {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(DecoderError::InvalidConfig(format!(
                    "temperature {temperature} is not above 0 (use greedy decoding for 0)"
                )));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(DecoderError::InvalidConfig(format!(
                    "top_p {top_p} is not in (0, 1]"
                )));
            }
        }
        Ok(())
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop token was generated (it is the last token).
    StopToken,
    /// `max_new_tokens` were generated.
    Budget,
    /// The model's positions ran out.
    ContextFull,
    /// The caller's callback asked to stop.
    Caller,
}

/// The tokens [`generate`] produced and why it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The new tokens, the stop token included.
    pub tokens: Vec<u32>,
    /// Why it stopped.
    pub stop: StopReason,
}

/// Continue `prompt` (token ids) as `config` says, calling `on_token` with
/// every new token as it comes (return [`ControlFlow::Break`] to stop).
///
/// The prompt is computed once into a KV cache; every further step computes
/// one position. The model runs in whatever mode it is in: call it on an
/// inference backend (or `valid()`) so that dropout is off and no graph is kept.
///
/// # Errors
///
/// [`DecoderError`] for an empty prompt, an id out of the vocabulary, a
/// prompt longer than the model's positions, or invalid sampling settings.
pub fn generate<B: Backend>(
    model: &CausalLm<B>,
    prompt: &[u32],
    config: &GenerationConfig,
    mut on_token: impl FnMut(u32) -> ControlFlow<()>,
) -> Result<Generated, DecoderError> {
    config.validate()?;
    let device = model.model.embed_tokens.weight.device();
    let max = model.model.rope.max_positions;
    // Refused for its length before any work proportional to it.
    if prompt.len() > max {
        return Err(DecoderError::TooLong {
            needed: prompt.len(),
            max,
        });
    }
    // Room for the prompt and the answer, written in place.
    let mut cache = model.new_cache_with_capacity((prompt.len() + config.max_new_tokens).min(max));
    let mut rng = match config.sampling {
        Sampling::Sample { seed, .. } => Some(StdRng::seed_from_u64(seed)),
        Sampling::Greedy => None,
    };
    let mut input = model.tokens(&[prompt], &device)?;
    let mut tokens = Vec::new();
    let stop = loop {
        if tokens.len() == config.max_new_tokens {
            break StopReason::Budget;
        }
        let hidden = model.hidden(input, Some(&mut cache))?;
        let [_, s, d] = hidden.dims();
        // The head at the last position only.
        let logits = model.head(hidden.slice([0..1, s - 1..s, 0..d]).reshape([1, d]));
        let next = match (config.sampling, rng.as_mut()) {
            (
                Sampling::Sample {
                    temperature, top_p, ..
                },
                Some(rng),
            ) => {
                let logits: Vec<f32> = logits
                    .into_data()
                    .convert::<f32>()
                    .into_vec()
                    .map_err(|e| DecoderError::Shape(format!("reading the logits: {e:?}")))?;
                sample(&logits, temperature, top_p, rng.random::<f64>())
            }
            // Greedy: the argmax on the device, only the token id read back.
            _ => device_argmax(logits)?,
        };
        tokens.push(next);
        if on_token(next).is_break() {
            break StopReason::Caller;
        }
        if config.stop_tokens.contains(&next) {
            break StopReason::StopToken;
        }
        if cache.len() >= max {
            break StopReason::ContextFull;
        }
        input = model.tokens(&[[next]], &device)?;
    };
    Ok(Generated { tokens, stop })
}

/// The index of the largest logit of a `[1, vocab]` row, computed where the
/// logits are (the first on ties, as [`argmax`]; a NaN row gives 0).
fn device_argmax<B: Backend>(logits: Tensor<B, 2>) -> Result<u32, DecoderError> {
    let vocab = logits.dims()[1];
    // NaN never wins: replaced by -inf before the argmax.
    let clean = logits.clone().mask_fill(logits.is_nan(), f32::NEG_INFINITY);
    let id = clean
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .map_err(|e| DecoderError::Shape(format!("reading the argmax: {e:?}")))?;
    let id = id.first().copied().unwrap_or(0);
    Ok(u32::try_from(id)
        .ok()
        .filter(|&i| (i as usize) < vocab)
        .unwrap_or(0))
}

/// The index of the largest logit (the first on ties; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// The token that the uniform draw `u` in [0, 1) picks from the nucleus of
/// `top_p` of the softmax of `logits / temperature`.
///
/// Tokens are ranked by probability (ties by id); the nucleus is the
/// shortest prefix whose mass reaches `top_p`, renormalized.
pub fn sample(logits: &[f32], temperature: f64, top_p: f64, u: f64) -> u32 {
    let max = logits
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let p = if v.is_nan() {
                0.0
            } else {
                ((f64::from(v) - f64::from(max)) / temperature).exp()
            };
            (i, p)
        })
        .collect();
    let total: f64 = probs.iter().map(|(_, p)| p).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0.0;
    let mut end = 0;
    while end < probs.len() && (end == 0 || kept < top_p * total) {
        kept += probs[end].1;
        end += 1;
    }
    let mut target = u * kept;
    for &(i, p) in &probs[..end] {
        if target < p {
            return i as u32;
        }
        target -= p;
    }
    probs[end - 1].0 as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_largest() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
    }

    #[test]
    fn sampling_follows_the_probabilities() {
        // Softmax of ln(1), ln(2), ln(3), ln(4) at temperature 1: 0.1 0.2 0.3 0.4.
        let logits: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|v| v.ln()).collect();
        // Ranked 3, 2, 1, 0 with masses 0.4, 0.3, 0.2, 0.1.
        assert_eq!(sample(&logits, 1.0, 1.0, 0.0), 3);
        assert_eq!(sample(&logits, 1.0, 1.0, 0.39), 3);
        assert_eq!(sample(&logits, 1.0, 1.0, 0.41), 2);
        assert_eq!(sample(&logits, 1.0, 1.0, 0.75), 1);
        assert_eq!(sample(&logits, 1.0, 1.0, 0.95), 0);
        // top_p 0.65 keeps 3 and 2 (mass 0.7), renormalized to 4/7 and 3/7.
        assert_eq!(sample(&logits, 1.0, 0.65, 0.56), 3);
        assert_eq!(sample(&logits, 1.0, 0.65, 0.58), 2);
        assert_eq!(sample(&logits, 1.0, 0.65, 0.999), 2);
        // A tiny top_p keeps only the most likely token.
        assert_eq!(sample(&logits, 1.0, 1e-9, 0.999), 3);
    }

    #[test]
    fn a_low_temperature_sharpens_and_a_high_one_flattens() {
        let logits = [0.0f32, 1.0];
        // T = 0.1: p(1) = 1 / (1 + e^-10), so a draw of 0.999 still picks 1.
        assert_eq!(sample(&logits, 0.1, 1.0, 0.999), 1);
        // T = 100: p(1) is about 0.5025, so 0.51 falls on token 0.
        assert_eq!(sample(&logits, 100.0, 1.0, 0.51), 0);
    }

    #[test]
    fn invalid_sampling_settings_are_errors() {
        for (temperature, top_p) in [
            (0.0, 0.9),
            (-1.0, 0.9),
            (f64::NAN, 0.9),
            (1.0, 0.0),
            (1.0, 1.5),
        ] {
            let config = GenerationConfig {
                max_new_tokens: 1,
                sampling: Sampling::Sample {
                    temperature,
                    top_p,
                    seed: 0,
                },
                stop_tokens: vec![],
            };
            assert!(
                matches!(config.validate(), Err(DecoderError::InvalidConfig(_))),
                "{temperature} {top_p}"
            );
        }
    }
}
