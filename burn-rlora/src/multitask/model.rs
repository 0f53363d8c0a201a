//! [`MultiTaskClassifier`]: a shared body with per-task heads, trainable by burn-train.

use burn::module::{AutodiffModule, Module, ModuleDisplay};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use burn::train::{InferenceStep, TrainOutput, TrainStep};

use super::batcher::MultiTaskBatch;
use super::heads::TaskHeads;
use super::output::MultiTaskOutput;
use crate::diagnostics::load_balance_loss;

/// What a [`MultiTaskBody`] returns for a batch.
#[derive(Debug, Clone)]
pub struct BodyOutput<B: Backend> {
    /// The shared representation, `[batch, d_model]`.
    pub features: Tensor<B, 2>,
    /// The router weights of every adapted layer with a router, each `[tokens, N]`
    /// (from [`RLoraLinear::forward_with_routing`](crate::RLoraLinear::forward_with_routing));
    /// used by the optional load-balance loss. May be empty.
    pub gates: Vec<Tensor<B, 2>>,
}

/// The shared, adapted part of a multi-task model: anything that maps a batch
/// input to one feature vector per example.
pub trait MultiTaskBody<B: Backend>: Module<B> + ModuleDisplay {
    /// The batch input, as produced by the batcher's [`Collate`](super::Collate).
    type Input: Clone + Send + 'static;

    /// Features (and router weights) for a batch.
    fn forward(&self, input: Self::Input) -> BodyOutput<B>;
}

/// A shared body `E` with one classification head per task.
///
/// Its loss is the mean cross-entropy over the batch, each example scored by
/// its own task's head, plus `balance_coef` times the sum over adapted layers
/// of [`load_balance_loss`] (off when `balance_coef` is 0, the default).
/// It implements burn-train's [`TrainStep`] and [`InferenceStep`], so it goes
/// straight into a `Learner`.
#[derive(Module, Debug)]
pub struct MultiTaskClassifier<B: Backend, E> {
    /// The shared body (usually with `RLoraLinear` layers inside).
    pub body: E,
    /// One head per task.
    pub heads: TaskHeads<B>,
    #[module(skip)]
    balance_coef: f64,
}

impl<B: Backend, E: MultiTaskBody<B>> MultiTaskClassifier<B, E> {
    /// A classifier over `body` with `heads`, without load-balance loss.
    pub fn new(body: E, heads: TaskHeads<B>) -> Self {
        Self {
            body,
            heads,
            balance_coef: 0.0,
        }
    }

    /// Set the load-balance loss coefficient (0 turns it off).
    pub fn with_balance_coef(mut self, coef: f64) -> Self {
        self.balance_coef = coef;
        self
    }

    /// The load-balance loss coefficient.
    pub fn balance_coef(&self) -> f64 {
        self.balance_coef
    }

    /// Forward pass and loss of a batch.
    pub fn forward_loss(&self, batch: MultiTaskBatch<B, E::Input>) -> MultiTaskOutput<B> {
        let body = self.body.forward(batch.inputs);
        let device = body.features.device();
        let batch_size = batch.tasks.len();
        let groups = self.heads.forward(body.features, &batch.tasks);
        let ce = CrossEntropyLossConfig::new().init(&device);
        let mut per_task = Vec::with_capacity(groups.len());
        let mut total: Option<Tensor<B, 1>> = None;
        for (task, logits, rows) in groups {
            let targets = if rows.len() == batch_size {
                batch.targets.clone()
            } else {
                let idx: Vec<i64> = rows.iter().map(|&i| i as i64).collect();
                let idx =
                    Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [rows.len()]), &device);
                batch.targets.clone().select(0, idx)
            };
            // Sum of this task's cross-entropies, so that the total is a mean over the batch.
            let sum = ce
                .forward(logits.clone(), targets.clone())
                .mul_scalar(rows.len() as f64);
            total = Some(match total {
                Some(t) => t + sum,
                None => sum,
            });
            per_task.push((task, logits, targets));
        }
        let cross_entropy = total
            .map(|t| t.div_scalar(batch_size.max(1) as f64))
            .unwrap_or_else(|| Tensor::zeros([1], &device));
        let mut loss = cross_entropy.clone();
        if self.balance_coef != 0.0 {
            for gates in body.gates {
                loss = loss + load_balance_loss(gates).mul_scalar(self.balance_coef);
            }
        }
        MultiTaskOutput {
            loss,
            cross_entropy,
            per_task,
        }
    }
}

impl<B, E> TrainStep for MultiTaskClassifier<B, E>
where
    B: AutodiffBackend,
    E: MultiTaskBody<B> + AutodiffModule<B>,
    E::InnerModule: ModuleDisplay,
{
    type Input = MultiTaskBatch<B, E::Input>;
    type Output = MultiTaskOutput<B>;

    fn step(&self, batch: Self::Input) -> TrainOutput<Self::Output> {
        let output = self.forward_loss(batch);
        let grads = output.loss.backward();
        TrainOutput::new(self, grads, output)
    }
}

impl<B: Backend, E: MultiTaskBody<B>> InferenceStep for MultiTaskClassifier<B, E> {
    type Input = MultiTaskBatch<B, E::Input>;
    type Output = MultiTaskOutput<B>;

    fn step(&self, batch: Self::Input) -> Self::Output {
        self.forward_loss(batch)
    }
}
