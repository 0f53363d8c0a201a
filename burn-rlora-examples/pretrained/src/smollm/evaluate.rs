//! Scoring the decoder on instruction tasks: classification by the
//! likelihood of each label's answer and by greedy generation, free text by
//! exact match, ROUGE-L and chrF of the generated answer.

use std::ops::ControlFlow;

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use burn_rlora_llm::{
    answer_nll, generate, stop_tokens, AnswerBatch, AnswerSequence, CausalLm, DecoderError,
    GenerationConfig, Tokenizer,
};

use super::tasks::{InstructionEncoder, InstructionTask, TaskError, TaskKind};
use super::text_metrics::{chrf, exact_match, rouge_l};

/// One test example, ready to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalExample {
    /// The prompt's ids, ending with the generation prompt.
    pub prompt: Vec<u32>,
    /// The reference answer.
    pub reference: String,
    /// For classification, the label's index.
    pub label: Option<usize>,
    /// The user message, for the report's samples.
    pub prompt_text: String,
}

/// A task's test examples, ready to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalTask {
    /// The task's name.
    pub name: String,
    /// The label words and each one's answer ids (`<|im_end|>` last), for
    /// classification.
    pub labels: Option<Vec<(String, Vec<u32>)>>,
    /// The examples.
    pub examples: Vec<EvalExample>,
}

impl EvalTask {
    /// The test examples of `task`, prompts cut to leave room for the
    /// longest answer within `max_len` tokens.
    ///
    /// # Errors
    ///
    /// As [`InstructionEncoder::encode_prompt`].
    pub fn of(
        task: &InstructionTask,
        encoder: &InstructionEncoder<'_>,
        max_len: usize,
        answer_room: usize,
    ) -> Result<Self, TaskError> {
        let labels = match &task.kind {
            TaskKind::Classification { labels } => Some(
                labels
                    .iter()
                    .map(|l| Ok((l.clone(), encoder.answer_ids(l)?)))
                    .collect::<Result<Vec<_>, TaskError>>()?,
            ),
            TaskKind::Generation => None,
        };
        let room = match &labels {
            Some(l) => l.iter().map(|(_, ids)| ids.len()).max().unwrap_or(1),
            None => answer_room,
        };
        let examples = task
            .test
            .iter()
            .map(|e| {
                Ok(EvalExample {
                    prompt: encoder.encode_prompt(&e.prompt, max_len.saturating_sub(room))?,
                    reference: e.answer.clone(),
                    label: e.label,
                    prompt_text: e.prompt.clone(),
                })
            })
            .collect::<Result<Vec<_>, TaskError>>()?;
        Ok(Self {
            name: task.name.clone(),
            labels,
            examples,
        })
    }

    /// The names of the columns [`evaluate`] fills for this task, in order
    /// (none for a task without test examples).
    pub fn columns(&self) -> Vec<String> {
        if self.examples.is_empty() {
            return Vec::new();
        }
        let kinds: &[&str] = match self.labels {
            Some(_) => &["score", "gen"],
            None => &["EM", "ROUGE-L", "chrF"],
        };
        kinds.iter().map(|k| format!("{}:{k}", self.name)).collect()
    }
}

/// One generated answer, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The task.
    pub task: String,
    /// The start of the user message.
    pub prompt: String,
    /// The reference answer.
    pub reference: String,
    /// What the model generated (greedy).
    pub generated: String,
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Every column of every task ([`EvalTask::columns`]), in percent.
    pub columns: Vec<(String, f64)>,
    /// The mean of the primary columns: label scoring for classification,
    /// ROUGE-L for free text.
    pub primary: f64,
    /// The first `samples` generations of each task.
    pub samples: Vec<Sample>,
}

/// Score `model` on `tasks`: classification by which label's answer is the
/// most likely (summed log-likelihood of its tokens) and by exact match of
/// the greedy answer; free text by exact match, ROUGE-L F1 and chrF of the
/// greedy answer (at most `max_new_tokens`, stopping at the end of the
/// turn: [`stop_tokens`]).
/// Keeps the first `samples` generations of each task.
///
/// # Errors
///
/// [`DecoderError`] from the model or the tokenizer.
pub fn evaluate<B: Backend>(
    model: &CausalLm<B>,
    tokenizer: &Tokenizer,
    tasks: &[EvalTask],
    max_new_tokens: usize,
    samples: usize,
) -> Result<Scores, DecoderError> {
    let stop = stop_tokens(tokenizer);
    let config = GenerationConfig::greedy(max_new_tokens, stop.clone());
    let (mut columns, mut primary, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for task in tasks.iter().filter(|t| !t.examples.is_empty()) {
        let mut sums = [0.0f64; 3];
        for (i, example) in task.examples.iter().enumerate() {
            let out = generate(model, &example.prompt, &config, |_| {
                ControlFlow::Continue(())
            })?;
            let text = tokenizer.decode(&out.tokens, true)?;
            let exact = f64::from(u8::from(exact_match(&text, &example.reference)));
            match &task.labels {
                Some(labels) => {
                    let best = most_likely(model, &example.prompt, labels, stop[0])?;
                    sums[0] += f64::from(u8::from(Some(best) == example.label));
                    sums[1] += exact;
                }
                None => {
                    sums[0] += exact;
                    sums[1] += rouge_l(&text, &example.reference).f1;
                    sums[2] += chrf(&text, &example.reference);
                }
            }
            if i < samples {
                kept.push(Sample {
                    task: task.name.clone(),
                    prompt: excerpt(&example.prompt_text, 160),
                    reference: example.reference.clone(),
                    generated: text,
                });
            }
        }
        let n = task.examples.len().max(1) as f64;
        let values: Vec<f64> = sums.iter().map(|s| 100.0 * s / n).collect();
        primary.push(if task.labels.is_some() {
            values[0]
        } else {
            values[1]
        });
        columns.extend(task.columns().into_iter().zip(values));
    }
    Ok(Scores {
        columns,
        // No test example at all: no score (NaN), not 0.
        primary: match primary.len() {
            0 => f64::NAN,
            n => primary.iter().sum::<f64>() / n as f64,
        },
        samples: kept,
    })
}

/// The index of the label whose answer is the most likely after `prompt`
/// (the lowest summed negative log-likelihood; the first on ties).
///
/// # Errors
///
/// As [`answer_nll`].
pub fn most_likely<B: Backend>(
    model: &CausalLm<B>,
    prompt: &[u32],
    labels: &[(String, Vec<u32>)],
    pad: u32,
) -> Result<usize, DecoderError> {
    let sequences: Vec<AnswerSequence> = labels
        .iter()
        .map(|(_, answer)| {
            AnswerSequence::new(
                prompt.iter().chain(answer).copied().collect(),
                prompt.len(),
                0,
            )
        })
        .collect();
    let device = model.model.embed_tokens.weight.device();
    let batch = AnswerBatch::<B>::new(&sequences, pad, &device)?;
    let nll: Vec<f32> = answer_nll(model, &batch)?
        .into_data()
        .convert::<f32>()
        .into_vec()
        .map_err(|e| DecoderError::Shape(format!("reading the scores: {e:?}")))?;
    let mut sums = vec![0.0f64; labels.len()];
    for (&row, &v) in batch.rows.iter().zip(&nll) {
        sums[row] += f64::from(v);
    }
    let mut best = 0;
    for (i, &s) in sums.iter().enumerate() {
        if s < sums[best] {
            best = i;
        }
    }
    Ok(best)
}

/// The first `chars` characters of `text`, with an ellipsis when cut.
fn excerpt(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if text.chars().nth(chars).is_some() {
        out.push('…');
    }
    out
}
