//! The tasks' examples encoded for training and evaluation.

use std::path::PathBuf;

use burn_rlora_llm::sft::{LongExamples, SftEncodeError, SftEncoder, SftExample};
use burn_rlora_llm::AnswerSequence;
use serde::Serialize;
use thiserror::Error;

use super::data::{Located, TaskExamples};
use crate::smollm::evaluate::{EvalExample, EvalTask};
use crate::smollm::experiment::PreparedTask;

/// How examples are encoded.
#[derive(Debug, Clone, Copy)]
pub struct PrepareOptions {
    /// The longest sequence, in tokens.
    pub max_len: usize,
    /// What happens to a longer example.
    pub long: LongExamples,
    /// Tokens generated at most for a test answer (the test prompts leave
    /// room for them within `max_len`).
    pub max_new_tokens: usize,
    /// A task is scored as classification when its training answers take
    /// at most this many distinct values (and the other conditions of
    /// [`detect_labels`] hold).
    pub max_labels: usize,
}

/// What became of one task's examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskReport {
    /// The task.
    pub task: String,
    /// Training examples encoded.
    pub train: usize,
    /// Validation examples encoded (0: 10% of the training examples validate).
    pub valid: usize,
    /// Test examples scored.
    pub test: usize,
    /// Examples whose input was cut to fit.
    pub truncated: usize,
    /// Input tokens cut, in all.
    pub truncated_tokens: usize,
    /// Training and validation examples skipped for their length.
    pub skipped: usize,
    /// The labels, when the task is scored as classification.
    pub labels: Option<Vec<String>>,
}

/// What can go wrong encoding the examples.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// An example could not be encoded.
    #[error("{}:{line}: {source}", file.display())]
    Encode {
        /// Its file.
        file: PathBuf,
        /// Its line.
        line: usize,
        /// Why.
        source: SftEncodeError,
    },
    /// A task left without a training example (all too long).
    #[error("task {task:?}: no training example fits --max-len {max_len} ({skipped} skipped)")]
    NoTrainingExample {
        /// The task.
        task: String,
        /// The limit.
        max_len: usize,
        /// Examples skipped.
        skipped: usize,
    },
    /// A task with too few training examples to hold some out for
    /// validation.
    #[error("task {task:?}: {train} training example(s) and no validation data: give at least 2, or validation files")]
    TooFewToValidate {
        /// The task.
        task: String,
        /// Its training examples.
        train: usize,
    },
}

/// The labels of a task whose answers come from a small set: every
/// training answer (trimmed) is one of at most `max_labels` distinct
/// values, each a short phrase (at most 5 words and 40 characters), seen
/// on average at least twice, and every test answer is one of them. `None`
/// for free text. Labels in the order they first appear.
pub fn detect_labels(task: &TaskExamples, max_labels: usize) -> Option<Vec<String>> {
    let mut labels: Vec<String> = Vec::new();
    for e in &task.train {
        let answer = e.example.reference().trim();
        if !labels.iter().any(|l| l == answer) {
            labels.push(answer.to_string());
        }
        if labels.len() > max_labels {
            return None;
        }
    }
    let short = |l: &String| l.split_whitespace().count() <= 5 && l.chars().count() <= 40;
    let repeated = task.train.len() >= 2 * labels.len();
    let covers = task
        .test
        .iter()
        .all(|e| labels.iter().any(|l| l == e.example.reference().trim()));
    (labels.len() >= 2 && labels.iter().all(short) && repeated && covers).then_some(labels)
}

/// `tasks` encoded with `encoder`: training and validation sequences (too
/// long ones cut or skipped as `options` say, and counted), test prompts
/// with their references, and what became of each task's examples.
///
/// # Errors
///
/// [`PrepareError`]: an example the template or tokenizer cannot encode
/// (naming its file and line), a task with no training example left, or
/// too few to validate on.
pub fn prepare(
    tasks: &[TaskExamples],
    encoder: &SftEncoder<'_>,
    options: &PrepareOptions,
) -> Result<(Vec<PreparedTask>, Vec<TaskReport>), PrepareError> {
    let mut prepared = Vec::with_capacity(tasks.len());
    let mut reports = Vec::with_capacity(tasks.len());
    for (t, task) in tasks.iter().enumerate() {
        let labels = detect_labels(task, options.max_labels);
        let mut report = TaskReport {
            task: task.name.clone(),
            train: 0,
            valid: 0,
            test: task.test.len(),
            truncated: 0,
            truncated_tokens: 0,
            skipped: 0,
            labels: labels.clone(),
        };
        let label_of = |e: &SftExample| {
            labels
                .as_ref()
                .and_then(|l| l.iter().position(|l| l == e.reference().trim()))
        };
        let mut encode_all =
            |examples: &[Located]| -> Result<Vec<(AnswerSequence, usize)>, PrepareError> {
                let mut out = Vec::with_capacity(examples.len());
                for e in examples {
                    match encoder.encode(&e.example, options.max_len, options.long) {
                        Ok(encoded) => {
                            if encoded.truncated > 0 {
                                report.truncated += 1;
                                report.truncated_tokens += encoded.truncated;
                            }
                            let sequence = AnswerSequence {
                                ids: encoded.ids,
                                answers: encoded.answers,
                                task: t,
                            };
                            out.push((sequence, label_of(&e.example).unwrap_or(0)));
                        }
                        Err(SftEncodeError::TooLong { .. }) => report.skipped += 1,
                        Err(source) => {
                            return Err(PrepareError::Encode {
                                file: e.file.clone(),
                                line: e.line,
                                source,
                            })
                        }
                    }
                }
                Ok(out)
            };
        let train = encode_all(&task.train)?;
        let valid = encode_all(&task.valid)?;
        report.train = train.len();
        report.valid = valid.len();
        if train.is_empty() {
            return Err(PrepareError::NoTrainingExample {
                task: task.name.clone(),
                max_len: options.max_len,
                skipped: report.skipped,
            });
        }
        if valid.is_empty() && train.len() < 2 {
            return Err(PrepareError::TooFewToValidate {
                task: task.name.clone(),
                train: train.len(),
            });
        }
        let eval = eval_task(task, encoder, options, labels.as_deref())?;
        let train_tokens = train.iter().map(|(s, _)| s.ids.len()).sum();
        prepared.push(PreparedTask {
            name: task.name.clone(),
            test: Vec::new(),
            valid: (!valid.is_empty()).then_some(valid),
            eval,
            train,
            train_tokens,
        });
        reports.push(report);
    }
    Ok((prepared, reports))
}

/// The test examples of `task`, ready to score: prompts cut to leave room
/// for the answer (the longest label's, or `max_new_tokens`).
fn eval_task(
    task: &TaskExamples,
    encoder: &SftEncoder<'_>,
    options: &PrepareOptions,
    labels: Option<&[String]>,
) -> Result<EvalTask, PrepareError> {
    let at = |e: &Located, source| PrepareError::Encode {
        file: e.file.clone(),
        line: e.line,
        source,
    };
    let labels = match labels {
        Some(labels) => Some(
            labels
                .iter()
                .map(|l| Ok((l.clone(), encoder.answer_ids(l)?)))
                .collect::<Result<Vec<_>, SftEncodeError>>()
                .map_err(|source| PrepareError::Encode {
                    file: task.train[0].file.clone(),
                    line: task.train[0].line,
                    source,
                })?,
        ),
        None => None,
    };
    let room = match &labels {
        Some(l) => l.iter().map(|(_, ids)| ids.len()).max().unwrap_or(1),
        None => options.max_new_tokens,
    };
    let budget = options.max_len.saturating_sub(room).max(1);
    let examples = task
        .test
        .iter()
        .map(|e| {
            let reference = e.example.reference().trim().to_string();
            Ok(EvalExample {
                prompt: encoder
                    .encode_prompt(&e.example, budget)
                    .map_err(|source| at(e, source))?,
                label: labels
                    .as_ref()
                    .and_then(|l| l.iter().position(|(l, _)| *l == reference)),
                reference,
                prompt_text: e.example.input().to_string(),
            })
        })
        .collect::<Result<Vec<_>, PrepareError>>()?;
    Ok(EvalTask {
        name: task.name.clone(),
        labels,
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(prompt: &str, completion: &str) -> Located {
        Located {
            example: SftExample::Completion {
                prompt: prompt.into(),
                completion: completion.into(),
            },
            file: "t.jsonl".into(),
            line: 1,
        }
    }

    fn task(train: &[&str], test: &[&str]) -> TaskExamples {
        TaskExamples {
            name: "t".into(),
            train: train.iter().map(|a| located("q", a)).collect(),
            valid: Vec::new(),
            test: test.iter().map(|a| located("q", a)).collect(),
        }
    }

    #[test]
    fn labels_are_detected_from_a_small_repeated_set_only() {
        let labels = detect_labels(&task(&["yes", " no", "yes", "no "], &["no"]), 16);
        assert_eq!(labels, Some(vec!["yes".to_string(), "no".to_string()]));
        // A test answer outside the set: free text.
        assert_eq!(
            detect_labels(&task(&["yes", "no", "yes", "no"], &["maybe"]), 16),
            None
        );
        // Each answer seen once: free text.
        assert_eq!(detect_labels(&task(&["a", "b", "c"], &[]), 16), None);
        // Too many distinct answers, or long ones: free text.
        assert_eq!(
            detect_labels(&task(&["a", "b", "c", "a", "b", "c"], &[]), 2),
            None
        );
        let long = "one two three four five six";
        assert_eq!(detect_labels(&task(&[long, "x", long, "x"], &[]), 16), None);
        // One label is not a choice.
        assert_eq!(detect_labels(&task(&["x", "x"], &[]), 16), None);
    }
}
