//! Batches of instruction examples for training on the answer tokens only.
//!
//! The output head is 49,152 columns wide for SmolLM2 and 262,144 for
//! Gemma 3: computed at every position it is most of a step's time and
//! memory. A batch therefore lists the positions whose next token belongs to
//! an answer, and the loss runs the head on those rows alone.

use std::ops::Range;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::DecoderError;
use crate::model::CausalLm;

/// One training sequence: its token ids and which of them are answer
/// tokens, the ones trained on (a multi-turn conversation has one span per
/// assistant turn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerSequence {
    /// Prompt and answers (each answer's closing token included).
    pub ids: Vec<u32>,
    /// The spans of `ids` that are answer tokens: non-empty, in order, not
    /// overlapping, none starting at 0 (a first token has nothing before it
    /// to predict it from).
    pub answers: Vec<Range<usize>>,
    /// The sequence's task.
    pub task: usize,
}

impl AnswerSequence {
    /// A prompt and one answer: `ids[answer_start..]` is the answer.
    pub fn new(ids: Vec<u32>, answer_start: usize, task: usize) -> Self {
        let answers = std::iter::once(answer_start..ids.len()).collect();
        Self { ids, answers, task }
    }

    /// Index in `ids` of the first answer token (`ids.len()` without any).
    pub fn answer_start(&self) -> usize {
        self.answers.first().map_or(self.ids.len(), |a| a.start)
    }

    /// The number of answer tokens.
    pub fn answer_tokens(&self) -> usize {
        self.answers.iter().map(|a| a.len()).sum()
    }

    /// Checks the spans against the ids.
    fn check(&self) -> Result<(), String> {
        if self.answers.is_empty() {
            return Err("no answer span".into());
        }
        let mut end = 1;
        for a in &self.answers {
            if a.start < end || a.end <= a.start || a.end > self.ids.len() {
                return Err(format!(
                    "answer span {a:?} is empty, out of order, or not inside its {} tokens \
                     (after the first)",
                    self.ids.len()
                ));
            }
            end = a.end;
        }
        Ok(())
    }
}

/// Sequences padded on the right to the longest, with the positions that
/// predict answer tokens.
#[derive(Debug, Clone)]
pub struct AnswerBatch<B: Backend> {
    /// Token ids, `[batch, len]`, padded on the right.
    pub tokens: Tensor<B, 2, Int>,
    /// Flat indices (`row * len + position`) of the positions whose next
    /// token is an answer token, `[n]`.
    pub positions: Tensor<B, 1, Int>,
    /// The answer token each of those positions predicts, `[n]`.
    pub targets: Tensor<B, 1, Int>,
    /// The row of each of the `n` positions.
    pub rows: Vec<usize>,
    /// The task of each row.
    pub tasks: Vec<usize>,
}

impl<B: Backend> AnswerBatch<B> {
    /// The batch of `sequences`, padded with `pad`, on `device`.
    ///
    /// # Errors
    ///
    /// [`DecoderError::Shape`] for no sequences, or a sequence whose answer
    /// spans are empty, out of order, or not inside its ids after the first.
    pub fn new(
        sequences: &[AnswerSequence],
        pad: u32,
        device: &B::Device,
    ) -> Result<Self, DecoderError> {
        if sequences.is_empty() {
            return Err(DecoderError::Shape("a batch needs a sequence".into()));
        }
        let len = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
        let mut tokens = Vec::with_capacity(sequences.len() * len);
        let (mut positions, mut targets, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        for (r, s) in sequences.iter().enumerate() {
            s.check()
                .map_err(|e| DecoderError::Shape(format!("sequence {r}: {e}")))?;
            tokens.extend(s.ids.iter().map(|&t| i64::from(t)));
            tokens.extend(std::iter::repeat_n(i64::from(pad), len - s.ids.len()));
            // Position p predicts token p + 1.
            for p in s.answers.iter().flat_map(|a| a.start - 1..a.end - 1) {
                positions.push((r * len + p) as i64);
                targets.push(i64::from(s.ids[p + 1]));
                rows.push(r);
            }
        }
        let n = positions.len();
        Ok(Self {
            tokens: Tensor::from_data(TensorData::new(tokens, [sequences.len(), len]), device),
            positions: Tensor::from_data(TensorData::new(positions, [n]), device),
            targets: Tensor::from_data(TensorData::new(targets, [n]), device),
            rows,
            tasks: sequences.iter().map(|s| s.task).collect(),
        })
    }

    /// Rows in the batch.
    pub fn num_rows(&self) -> usize {
        self.tasks.len()
    }
}

/// The negative log-likelihood of every answer token of `batch`, `[n]`:
/// the decoder over the whole batch, the output head at the answer
/// positions only.
///
/// # Errors
///
/// As [`CausalLm::hidden`], and [`DecoderError::TokenOutOfRange`]
/// is not checked here: build batches from ids below the vocabulary.
pub fn answer_nll<B: Backend>(
    model: &CausalLm<B>,
    batch: &AnswerBatch<B>,
) -> Result<Tensor<B, 1>, DecoderError> {
    let hidden = model.hidden(batch.tokens.clone(), None)?;
    let [b, s, d] = hidden.dims();
    let rows = hidden
        .reshape([b * s, d])
        .select(0, batch.positions.clone());
    let logits = model.head(rows);
    let log_probs = burn::tensor::activation::log_softmax(logits, 1);
    let n = batch.rows.len();
    let picked = log_probs.gather(1, batch.targets.clone().reshape([n, 1]));
    Ok(picked.reshape([n]).neg())
}

/// The mean negative log-likelihood over the answer tokens of `batch` (the
/// training loss), with the per-token values.
///
/// # Errors
///
/// As [`answer_nll`].
pub fn answer_loss<B: Backend>(
    model: &CausalLm<B>,
    batch: &AnswerBatch<B>,
) -> Result<(Tensor<B, 1>, Tensor<B, 1>), DecoderError> {
    let nll = answer_nll(model, batch)?;
    Ok((nll.clone().mean(), nll))
}
