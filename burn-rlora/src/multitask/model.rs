//! [`MultiTaskClassifier`]: a shared body with per-task heads, trainable by burn-train.

use core::fmt::Debug;

use burn::module::{AutodiffModule, Module, ModuleDisplay, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use burn::train::{InferenceStep, TrainOutput, TrainStep};

use super::batcher::{Collate, MultiTaskBatch};
use super::guard::{DivergenceGuard, Phase};
use super::heads::{select_rows, TaskHeads};
use super::output::MultiTaskOutput;
use crate::adapt::Adapt;
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

/// A [`MultiTaskBody`] that a [`MultiTaskClassifier`] can train through
/// burn-train's `Learner`: an autodiff module whose inner (inference) module
/// is a body too, both with inputs that print (`Debug`, which the data
/// loaders require).
///
/// Every such type implements it; a body needs nothing beyond its
/// [`MultiTaskBody`] impl and `#[derive(Module)]`. For `E: TrainableBody<B>`,
/// `MultiTaskClassifier<B, E>` is burn-train's [`TrainStep`] and
/// `AutodiffModule<B>` with `InnerModule = MultiTaskClassifier<B::InnerBackend,
/// E::InnerModule>`, which is its [`InferenceStep`]: all that a `Learner`
/// asks of a model. Pair it with a [`BodyCollate`] for the data.
///
/// ```
/// use burn::module::AutodiffModule;
/// use burn::tensor::backend::AutodiffBackend;
/// use burn::train::{InferenceStep, TrainStep};
/// use burn_rlora::multitask::{InnerInput, MultiTaskBatch, MultiTaskClassifier, TrainableBody};
///
/// // One training step and one validation step, for any trainable body.
/// fn steps<B: AutodiffBackend, E: TrainableBody<B>>(
///     model: &MultiTaskClassifier<B, E>,
///     train: MultiTaskBatch<B, E::Input>,
///     valid: MultiTaskBatch<B::InnerBackend, InnerInput<B, E>>,
/// ) {
///     let _ = TrainStep::step(model, train);
///     let _ = InferenceStep::step(&model.valid(), valid);
/// }
/// ```
pub trait TrainableBody<B: AutodiffBackend>:
    MultiTaskBody<B, Input: Debug>
    + AutodiffModule<B, InnerModule: MultiTaskBody<B::InnerBackend, Input: Debug>>
    + 'static
{
}

impl<B, E> TrainableBody<B> for E
where
    B: AutodiffBackend,
    E: MultiTaskBody<B, Input: Debug>
        + AutodiffModule<B, InnerModule: MultiTaskBody<B::InnerBackend, Input: Debug>>
        + 'static,
{
}

/// The input of the inner (inference) module of a [`TrainableBody`] `E`:
/// what validation and test batches carry.
pub type InnerInput<B, E> = <<E as AutodiffModule<B>>::InnerModule as MultiTaskBody<
    <B as AutodiffBackend>::InnerBackend,
>>::Input;

/// A [`Collate`] that stacks items' inputs `X` into the input of body `E` on
/// both of a `Learner`'s backends: the autodiff backend `B` (training) and its
/// inner backend (validation and testing).
///
/// Every such collate (that is also `Clone + 'static`) implements it; one
/// generic `impl<B: Backend> Collate<B, X> for MyCollate` serves both.
pub trait BodyCollate<B: AutodiffBackend, X, E: TrainableBody<B>>:
    Collate<B, X, Output = E::Input>
    + Collate<B::InnerBackend, X, Output = InnerInput<B, E>>
    + Clone
    + 'static
{
}

impl<B, X, E, C> BodyCollate<B, X, E> for C
where
    B: AutodiffBackend,
    E: TrainableBody<B>,
    C: Collate<B, X, Output = E::Input>
        + Collate<B::InnerBackend, X, Output = InnerInput<B, E>>
        + Clone
        + 'static,
{
}

/// A shared body `E` with one classification head per task.
///
/// Its loss is the mean cross-entropy over the batch, each example scored by
/// its own task's head, plus `balance_coef` times the sum over adapted layers
/// of [`load_balance_loss`] (off when `balance_coef` is 0, the default).
/// It implements burn-train's [`TrainStep`] and [`InferenceStep`], so it goes
/// straight into a `Learner`.
///
/// Every step is watched by the classifier's [`DivergenceGuard`]: a
/// non-finite loss or gradient is never applied to the weights, stops the run,
/// and is reported by [`DivergenceGuard::check`] after `launch`.
#[derive(Module, Adapt, Debug)]
pub struct MultiTaskClassifier<B: Backend, E> {
    /// The shared body (usually with `RLoraLinear` layers inside).
    pub body: E,
    /// One head per task.
    pub heads: TaskHeads<B>,
    #[module(skip)]
    balance_coef: f64,
    #[module(skip)]
    guard: DivergenceGuard,
}

impl<B: Backend, E: MultiTaskBody<B>> MultiTaskClassifier<B, E> {
    /// A classifier over `body` with `heads`, without load-balance loss.
    pub fn new(body: E, heads: TaskHeads<B>) -> Self {
        Self {
            body,
            heads,
            balance_coef: 0.0,
            guard: DivergenceGuard::new(),
        }
    }

    /// Watch the steps with `guard` (for example one shared with other code)
    /// instead of the classifier's own.
    pub fn with_guard(mut self, guard: DivergenceGuard) -> Self {
        self.guard = guard;
        self
    }

    /// The guard watching this classifier's steps (shared by its clones).
    pub fn guard(&self) -> &DivergenceGuard {
        &self.guard
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
    ///
    /// # Panics
    ///
    /// If the batch has not one target and one task per row, or a task has
    /// no head.
    pub fn forward_loss(&self, batch: MultiTaskBatch<B, E::Input>) -> MultiTaskOutput<B> {
        let batch_size = batch.tasks.len();
        assert_eq!(
            batch.targets.dims()[0],
            batch_size,
            "one target per batch row"
        );
        let body = self.body.forward(batch.inputs);
        let device = body.features.device();
        let groups = self.heads.forward(body.features, &batch.tasks);
        let ce = CrossEntropyLossConfig::new().init(&device);
        let mut per_task = Vec::with_capacity(groups.len());
        let mut total: Option<Tensor<B, 1>> = None;
        for (task, logits, rows) in groups {
            let targets = select_rows(batch.targets.clone(), &rows);
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

    /// Forward, loss and backward; no gradients (so no update) when the loss
    /// or a gradient is not finite, or the guard tripped before.
    fn step(&self, batch: Self::Input) -> TrainOutput<Self::Output> {
        let output = self.forward_loss(batch);
        let loss = output.loss.clone();
        self.guard.train_output(self, loss, output)
    }
}

impl DivergenceGuard {
    /// The `TrainOutput` of one training step of `model` with `loss`:
    /// `loss`'s gradients when it and (if [`checks_gradients`](Self::checks_gradients))
    /// every gradient are finite and the guard has not tripped, none (so no
    /// update) otherwise. `item` is what the step reports to the metrics.
    ///
    /// This is the guarded step of [`MultiTaskClassifier`]; a model of its
    /// own that implements `TrainStep` calls it the same way.
    pub fn train_output<B, M, O>(&self, model: &M, loss: Tensor<B, 1>, item: O) -> TrainOutput<O>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
    {
        let grads = GradientsParams::from_grads(loss.backward(), model);
        let loss = loss.inner();
        let values = if self.checks_gradients() {
            let mut sum = GradAbsSum {
                grads: &grads,
                total: None,
            };
            model.visit(&mut sum);
            match sum.total {
                Some(total) => host_values(Tensor::cat(vec![loss.reshape([1]), total], 0)),
                None => host_values(loss),
            }
        } else {
            host_values(loss)
        };
        let loss = values.first().copied().unwrap_or(f64::NAN);
        let grad_sum = values.get(1).copied();
        let grads = match self.observe(Phase::Training, loss, grad_sum) {
            true => grads,
            false => GradientsParams::new(),
        };
        TrainOutput { grads, item }
    }

    /// Watch a validation step's `loss` (a non-finite one trips the guard).
    pub fn observe_validation<B: Backend>(&self, loss: Tensor<B, 1>) {
        let loss = host_values(loss);
        self.observe(
            Phase::Validation,
            loss.first().copied().unwrap_or(f64::NAN),
            None,
        );
    }
}

/// Reads a small tensor back to the host as `f64`s.
fn host_values<B: Backend>(t: Tensor<B, 1>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .unwrap_or_default()
}

/// Sums `|g|` over the gradients of every parameter (one `[1]` tensor).
struct GradAbsSum<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradAbsSum<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s = g.abs().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

impl<B: Backend, E: MultiTaskBody<B>> InferenceStep for MultiTaskClassifier<B, E> {
    type Input = MultiTaskBatch<B, E::Input>;
    type Output = MultiTaskOutput<B>;

    /// Forward and loss; a non-finite loss trips the guard.
    fn step(&self, batch: Self::Input) -> Self::Output {
        let output = self.forward_loss(batch);
        self.guard.observe_validation(output.loss.clone());
        output
    }
}
