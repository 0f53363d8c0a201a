//! The decoder as a multi-task model for burn-train's `Learner`: trained
//! on the answer tokens of instruction examples, with per-task loss and
//! (teacher-forced) answer-token accuracy in the Learner's metrics.

use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use burn_rlora::multitask::{Collate, DivergenceGuard, MultiTaskBatch, MultiTaskOutput, TaskId};
use burn_rlora::Adapt;

use burn_rlora_examples::harness::compare::MultiTaskModel;
use burn_rlora_examples::harness::trace::{defined_mean, SimilarityTrace};
use burn_rlora_llm::{AnswerBatch, AnswerSequence, CausalLm};

/// A decoder trained on the answers of multi-task instruction examples.
///
/// Its loss is the mean negative log-likelihood over every answer token of
/// the batch; the per-task outputs are the logits at each task's answer
/// positions with the tokens they should predict, so that burn-train's
/// per-task metrics read the loss per answer token and the share of answer
/// tokens predicted right (teacher forcing). A [`DivergenceGuard`] watches
/// every step.
#[derive(Module, Adapt, Debug)]
pub struct MultiTaskLm<B: Backend> {
    /// The decoder (adapt it before training).
    pub lm: CausalLm<B>,
    #[module(skip)]
    guard: DivergenceGuard,
    #[module(skip)]
    trace: SimilarityTrace,
}

impl<B: Backend> MultiTaskLm<B> {
    /// `lm` watched by a fresh guard.
    pub fn new(lm: CausalLm<B>) -> Self {
        Self {
            lm,
            guard: DivergenceGuard::new(),
            trace: SimilarityTrace::default(),
        }
    }

    /// Record the adapters' head similarity into `trace` from training
    /// forward passes (off by default).
    pub fn with_trace(mut self, trace: SimilarityTrace) -> Self {
        self.trace = trace;
        self
    }

    /// The guard watching the steps (shared by clones).
    pub fn guard(&self) -> &DivergenceGuard {
        &self.guard
    }

    /// The loss and per-task outputs of `batch`.
    ///
    /// # Panics
    ///
    /// If the batch was not built from ids below the vocabulary or its
    /// tasks do not match its rows (batches made by [`AnswerCollate`] are).
    pub fn forward_loss(&self, batch: MultiTaskBatch<B, AnswerBatch<B>>) -> MultiTaskOutput<B> {
        if self.trace.is_on() && B::ad_enabled(&batch.targets.device()) {
            self.trace.on_training_forward(|| {
                burn_rlora::head_similarities(&self.lm)
                    .unwrap_or_default()
                    .iter()
                    .map(|(name, s)| (short_layer_name(name), defined_mean(s)))
                    .collect()
            });
        }
        let answers = batch.inputs;
        let hidden = self
            .lm
            .hidden(answers.tokens.clone(), None)
            .expect("a batch of this model's vocabulary and length");
        let [b, s, d] = hidden.dims();
        let rows = hidden
            .reshape([b * s, d])
            .select(0, answers.positions.clone());
        let logits = self.lm.head(rows);
        let n = answers.rows.len();
        let log_probs = burn::tensor::activation::log_softmax(logits.clone(), 1);
        let nll = log_probs
            .gather(1, answers.targets.clone().reshape([n, 1]))
            .reshape([n])
            .neg();
        let loss = nll.mean();
        let per_task = per_task(&logits, &answers, &batch.tasks);
        MultiTaskOutput {
            loss: loss.clone(),
            cross_entropy: loss,
            per_task,
        }
    }
}

/// The logits and targets of each task's answer positions, tasks in the
/// order they first appear in the batch.
fn per_task<B: Backend>(
    logits: &Tensor<B, 2>,
    answers: &AnswerBatch<B>,
    tasks: &[TaskId],
) -> Vec<(TaskId, Tensor<B, 2>, Tensor<B, 1, Int>)> {
    let device = logits.device();
    let mut order: Vec<TaskId> = Vec::new();
    for t in tasks {
        if !order.contains(t) {
            order.push(*t);
        }
    }
    order
        .into_iter()
        .filter_map(|task| {
            let picked: Vec<i64> = (0..answers.rows.len())
                .filter(|&i| tasks[answers.rows[i]] == task)
                .map(|i| i as i64)
                .collect();
            if picked.is_empty() {
                return None;
            }
            let len = picked.len();
            let index = Tensor::<B, 1, Int>::from_data(TensorData::new(picked, [len]), &device);
            Some((
                task,
                logits.clone().select(0, index.clone()),
                answers.targets.clone().select(0, index),
            ))
        })
        .collect()
}

impl<B: AutodiffBackend> TrainStep for MultiTaskLm<B> {
    type Input = MultiTaskBatch<B, AnswerBatch<B>>;
    type Output = MultiTaskOutput<B>;

    /// Forward, loss and backward, guarded as
    /// [`DivergenceGuard::train_output`] says.
    fn step(&self, batch: Self::Input) -> TrainOutput<Self::Output> {
        let output = self.forward_loss(batch);
        let loss = output.loss.clone();
        self.guard.train_output(self, loss, output)
    }
}

impl<B: Backend> InferenceStep for MultiTaskLm<B> {
    type Input = MultiTaskBatch<B, AnswerBatch<B>>;
    type Output = MultiTaskOutput<B>;

    /// Forward and loss; a non-finite loss trips the guard.
    fn step(&self, batch: Self::Input) -> Self::Output {
        let output = self.forward_loss(batch);
        self.guard.observe_validation(output.loss.clone());
        output
    }
}

impl<B: AutodiffBackend> MultiTaskModel<B> for MultiTaskLm<B> {
    type TrainInput = AnswerBatch<B>;
    type ValidInput = AnswerBatch<B::InnerBackend>;

    fn divergence_guard(&self) -> &DivergenceGuard {
        &self.guard
    }
}

/// Stacks [`AnswerSequence`]s into an [`AnswerBatch`], padded with `pad`.
#[derive(Debug, Clone, Copy)]
pub struct AnswerCollate {
    /// The padding token.
    pub pad: u32,
}

impl<B: Backend> Collate<B, AnswerSequence> for AnswerCollate {
    type Output = AnswerBatch<B>;

    /// # Panics
    ///
    /// If a sequence's answer does not start inside it: the encoder of the
    /// instruction examples never makes one.
    fn collate(&self, inputs: Vec<AnswerSequence>, device: &B::Device) -> AnswerBatch<B> {
        AnswerBatch::new(&inputs, self.pad, device)
            .expect("answer sequences are checked when they are encoded")
    }
}

/// `model.layers.3.mlp.gate_proj` as `L3.gate_proj`.
pub fn short_layer_name(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    match (parts.iter().position(|p| *p == "layers"), parts.last()) {
        (Some(i), Some(last)) if i + 1 < parts.len() => format!("L{}.{last}", parts[i + 1]),
        _ => path.to_string(),
    }
}
