//! Training one method with one seed through burn-train's `Learner`, and
//! scoring it on the held-out split.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::{Dataset, InMemDataset};
use burn::module::AutodiffModule;
use burn::optim::AdamConfig;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::metric::ItemLazy;
use burn::train::renderer::MetricsRenderer;
use burn::train::{
    ExecutionStrategy, InferenceStep, Learner, MultiDeviceOptim, SupervisedTraining, TrainStep,
};
use burn_rlora::multitask::{
    Collate, DenseCollate, MultiTaskBatch, MultiTaskBatcher, MultiTaskBody, MultiTaskClassifier,
    MultiTaskDataset, MultiTaskOutput, PlainRenderer, RecordingRenderer, SamplingStrategy,
    TaskAccuracyMetric, TaskHeads, TaskId, TaskLossMetric, TaskStats, WarmupCosineLr,
};
use burn_rlora::{HeadSimilarity, Method, ParamCount, RLoraConfig};
use serde::Serialize;

use crate::synthetic::{Benchmark, SyntheticBody, D_HIDDEN, D_IN};

/// Hyper-parameters shared by every method of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSettings {
    /// Rank of each R-LoRA/HydraLoRA head.
    pub rank: usize,
    /// Number of heads.
    pub heads: usize,
    /// The scaling numerator (rank-stabilized: `alpha / sqrt(r)` for every method).
    pub alpha: f64,
    /// Adapter dropout.
    pub dropout: f64,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Peak learning rate (3% linear warm-up, cosine decay).
    pub lr: f64,
    /// Router load-balance loss coefficient (0 = off).
    pub balance: f64,
    /// How tasks are mixed in training.
    #[serde(skip)]
    pub sampling: SamplingStrategy,
    /// Number of devices for data-parallel training.
    pub devices: usize,
    /// Use the plain renderer even on a terminal.
    pub plain: bool,
}

/// What one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The method.
    pub method: String,
    /// The training seed.
    pub seed: u64,
    /// The rank used (LoRA's is matched to R-LoRA's parameter count).
    pub rank: usize,
    /// Test accuracy per task, in percent.
    pub task_accuracy: Vec<f64>,
    /// Mean of the per-task accuracies.
    pub mean_accuracy: f64,
    /// Trainable parameters (adapters and task heads).
    pub trainable: usize,
    /// Trainable parameters of the adapters alone.
    pub adapter_params: usize,
    /// Mean pairwise head cosine similarity per adapted layer (`None` for one head).
    pub head_similarity: Vec<(String, Option<f64>)>,
    /// Full similarity matrices per layer.
    #[serde(skip)]
    pub similarity_matrices: Vec<(String, HeadSimilarity)>,
    /// Training loss per iteration.
    pub train_loss: Vec<f64>,
    /// Validation loss per epoch.
    pub valid_loss: Vec<f64>,
    /// Wall time of training and evaluation, in seconds.
    pub wall_seconds: f64,
    /// Wall time of the Learner's training (all epochs, validation included), in seconds.
    pub train_seconds: f64,
    /// Peak resident memory of the process during this run, in MiB (Linux
    /// `VmHWM`, reset before the run; `None` where it cannot be read).
    pub peak_rss_mib: Option<f64>,
}

/// LoRA's rank with about as many adapter parameters as `heads` heads of rank
/// `rank` plus a router on a `d_in -> d_out` layer (as the paper compares).
pub fn matched_lora_rank(rank: usize, heads: usize, d_in: usize, d_out: usize) -> usize {
    matched_lora_rank_over(rank, heads, &[(d_in, d_out)])
}

/// LoRA's rank (one rank for every layer) with about as many adapter
/// parameters, summed over the adapted layers `shapes` (`(d_in, d_out)` each),
/// as `heads` heads of rank `rank` plus a router on each of them.
pub fn matched_lora_rank_over(rank: usize, heads: usize, shapes: &[(usize, usize)]) -> usize {
    let multi: usize = shapes
        .iter()
        .map(|&(i, o)| i * rank + heads * rank * o + i * heads)
        .sum();
    let per_rank: usize = shapes.iter().map(|&(i, o)| i + o).sum();
    let max = shapes.iter().map(|&(i, o)| i.min(o)).min().unwrap_or(1);
    ((multi as f64 / per_rank.max(1) as f64).round() as usize).clamp(1, max.max(1))
}

/// Parse a `--sampling` value: `proportional`, `uniform`, or a positive temperature such as `2`.
///
/// # Errors
///
/// When the value is none of these.
pub fn parse_sampling(s: &str) -> Result<SamplingStrategy> {
    Ok(match s {
        "proportional" => SamplingStrategy::Proportional,
        "uniform" => SamplingStrategy::Uniform,
        t => match t.parse::<f64>() {
            Ok(t) if t.is_finite() && t > 0.0 => SamplingStrategy::Temperature(t),
            _ => anyhow::bail!(
                "--sampling must be 'proportional', 'uniform' or a positive temperature, got '{s}'"
            ),
        },
    })
}

/// The adapter config of `method` under `settings`.
pub fn method_config(method: Method, settings: &TrainSettings) -> (usize, RLoraConfig) {
    method_config_over(method, settings, &[(D_HIDDEN, D_HIDDEN)])
}

/// The adapter config of `method` under `settings` for a body whose adapted
/// layers have the `(d_in, d_out)` `shapes`; LoRA's rank is matched over them
/// ([`matched_lora_rank_over`]).
pub fn method_config_over(
    method: Method,
    settings: &TrainSettings,
    shapes: &[(usize, usize)],
) -> (usize, RLoraConfig) {
    let rank = match method {
        Method::Lora => matched_lora_rank_over(settings.rank, settings.heads, shapes),
        _ => settings.rank,
    };
    let config = method
        .config(rank, settings.alpha, settings.heads)
        .with_rank_stabilized(true)
        .with_dropout(settings.dropout);
    (rank, config)
}

/// A data loader of multi-task batches stacked by `collate`.
fn loader<B, X, C>(
    collate: C,
    data: MultiTaskDataset<X>,
    batch_size: usize,
    shuffle: Option<u64>,
) -> Arc<dyn DataLoader<B, MultiTaskBatch<B, C::Output>>>
where
    B: Backend,
    X: Clone + Send + Sync + std::fmt::Debug + 'static,
    C: Collate<B, X> + 'static,
    C::Output: std::fmt::Debug,
{
    let builder = DataLoaderBuilder::new(MultiTaskBatcher::new(collate)).batch_size(batch_size);
    let builder = match shuffle {
        Some(seed) => builder.shuffle(seed),
        None => builder,
    };
    builder.num_workers(1).build(data)
}

fn split_dataset(
    bench: &Benchmark,
    pick: impl Fn(&crate::synthetic::TaskData) -> Vec<(Vec<f32>, usize)>,
    sampling: SamplingStrategy,
    seed: u64,
) -> Result<MultiTaskDataset<Vec<f32>>> {
    let mut builder = MultiTaskDataset::builder(sampling, seed);
    for task in &bench.tasks {
        builder = builder.task(
            task.name.clone(),
            task.num_classes,
            InMemDataset::new(pick(task)),
        );
    }
    builder.build().context("building the multi-task dataset")
}

/// The three splits of a multi-task comparison.
pub struct Splits<X> {
    /// Mixed by the training sampling strategy.
    pub train: MultiTaskDataset<X>,
    /// Scored after every epoch (the Learner's validation).
    pub valid: MultiTaskDataset<X>,
    /// Scored once, task by task, after training.
    pub test: MultiTaskDataset<X>,
}

/// What [`fit_and_test`] returns.
pub struct Fitted<M> {
    /// The trained model (inner backend).
    pub model: M,
    /// Test accuracy per task, in percent.
    pub task_accuracy: Vec<f64>,
    /// Training loss per iteration.
    pub train_loss: Vec<f64>,
    /// Validation loss per epoch.
    pub valid_loss: Vec<f64>,
    /// Wall time of the Learner (training and validation), in seconds.
    pub train_seconds: f64,
}

/// The trained (inner-backend) model of a [`MultiTaskClassifier`] over `E`.
pub type InnerClassifier<B, E> = <MultiTaskClassifier<B, E> as AutodiffModule<B>>::InnerModule;

/// Train `model` on `splits.train` with burn-train's `Learner` (Adam, 3%
/// warm-up and cosine decay, per-task metrics), then score `splits.test`
/// task by task. `collate` stacks the inputs of `X` for both backends.
///
/// # Errors
///
/// None today besides those of the data; kept fallible for callers.
#[allow(clippy::too_many_arguments)]
pub fn fit_and_test<B, E, X, C>(
    model: MultiTaskClassifier<B, E>,
    collate: C,
    splits: Splits<X>,
    settings: &TrainSettings,
    seed: u64,
    artifact_dir: PathBuf,
    devices: Vec<B::Device>,
) -> Result<Fitted<InnerClassifier<B, E>>>
where
    B: AutodiffBackend,
    E: MultiTaskBody<B> + AutodiffModule<B> + 'static,
    E::InnerModule: MultiTaskBody<B::InnerBackend>,
    MultiTaskClassifier<B, E>: AutodiffModule<B, InnerModule = MultiTaskClassifier<B::InnerBackend, E::InnerModule>>
        + TrainStep<Input = MultiTaskBatch<B, E::Input>, Output = MultiTaskOutput<B>>
        + std::fmt::Display,
    MultiTaskClassifier<B::InnerBackend, E::InnerModule>: InferenceStep<
        Input = MultiTaskBatch<
            B::InnerBackend,
            <E::InnerModule as MultiTaskBody<B::InnerBackend>>::Input,
        >,
        Output = MultiTaskOutput<B::InnerBackend>,
    >,
    X: Clone + Send + Sync + std::fmt::Debug + 'static,
    C: Collate<B, X, Output = E::Input>
        + Collate<
            B::InnerBackend,
            X,
            Output = <E::InnerModule as MultiTaskBody<B::InnerBackend>>::Input,
        > + Clone
        + 'static,
    E::Input: std::fmt::Debug,
    <E::InnerModule as MultiTaskBody<B::InnerBackend>>::Input: std::fmt::Debug,
{
    let Splits { train, valid, test } = splits;
    let names = train.task_names();
    let steps = train.len().div_ceil(settings.batch_size) * settings.epochs;
    let lr = WarmupCosineLr::new(settings.lr, 0.0, (steps * 3).div_ceil(100), steps);

    let inner: Box<dyn MetricsRenderer> =
        if settings.plain || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            Box::new(PlainRenderer::new())
        } else {
            Box::new(burn::train::renderer::tui::TuiMetricsRendererWrapper::new(
                Default::default(),
                None,
            ))
        };
    let (renderer, history) = RecordingRenderer::new(inner);

    let mut training = SupervisedTraining::new(
        &artifact_dir,
        loader::<B, X, C>(collate.clone(), train, settings.batch_size, Some(seed)),
        loader::<B::InnerBackend, X, C>(collate.clone(), valid, settings.batch_size, None),
    )
    .metric_train_numeric(TaskLossMetric::overall())
    .metric_valid_numeric(TaskLossMetric::overall())
    .metric_train_numeric(TaskAccuracyMetric::overall())
    .metric_valid_numeric(TaskAccuracyMetric::overall());
    for (t, name) in names.iter().enumerate() {
        training = training
            .metric_valid_numeric(TaskLossMetric::task(TaskId(t), name))
            .metric_valid_numeric(TaskAccuracyMetric::task(TaskId(t), name));
    }
    let mut training = training
        .with_file_checkpointer(NamedMpkFileRecorder::<FullPrecisionSettings>::new())
        .num_epochs(settings.epochs)
        .renderer(renderer);
    if devices.len() > 1 {
        training = training.with_training_strategy(
            ExecutionStrategy::MultiDevice(devices, MultiDeviceOptim::OptimMainDevice).into(),
        );
    }
    let start = Instant::now();
    let learner = Learner::new(model, AdamConfig::new().init(), lr);
    let result = training.launch(learner);
    drop(result.renderer);
    let model = result.model;
    let train_seconds = start.elapsed().as_secs_f64();

    // Score the held-out split, task by task.
    let mut totals = vec![TaskStats::default(); names.len()];
    for batch in
        loader::<B::InnerBackend, X, C>(collate, test, settings.batch_size.max(64), None).iter()
    {
        let stats = model.forward_loss(batch).sync();
        for (total, s) in totals.iter_mut().zip(&stats.tasks) {
            total.count += s.count;
            total.correct += s.correct;
        }
    }
    let task_accuracy: Vec<f64> = totals
        .iter()
        .map(|s| 100.0 * s.correct as f64 / s.count.max(1) as f64)
        .collect();
    let history = history.lock().map(|h| h.clone()).unwrap_or_default();
    Ok(Fitted {
        model,
        task_accuracy,
        train_loss: history
            .train_batches
            .get("Loss")
            .cloned()
            .unwrap_or_default(),
        valid_loss: history
            .valid_epochs
            .get("Loss")
            .cloned()
            .unwrap_or_default(),
        train_seconds,
    })
}

/// Peak resident set size of this process in MiB (`VmHWM` of
/// `/proc/self/status`); `None` off Linux or when unreadable.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Reset the peak resident set size (`VmHWM`) to the current size, so that
/// [`peak_rss_mib`] measures from now on (Linux: `5` into `/proc/self/clear_refs`).
/// Returns false where that is not possible; the peak is then process-wide.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// Train `method` with `seed` and score it on the test split.
pub fn run_one<B: AutodiffBackend>(
    bench: &Benchmark,
    method: Method,
    seed: u64,
    settings: &TrainSettings,
    artifact_dir: PathBuf,
    devices: Vec<B::Device>,
) -> Result<RunResult> {
    let start = Instant::now();
    reset_peak_rss();
    let device = devices[0].clone();
    B::seed(&device, seed);
    let (rank, config) = method_config(method, settings);
    let body = SyntheticBody::<B>::new(&bench.base, &config, &device)?;
    let classes: Vec<usize> = bench.tasks.iter().map(|t| t.num_classes).collect();
    let model = MultiTaskClassifier::new(body, TaskHeads::new(D_HIDDEN, &classes, &device))
        .with_balance_coef(settings.balance);
    let trainable = ParamCount::of(&model).trainable;
    let adapter_params = model
        .body
        .adapted()
        .iter()
        .map(|(_, l)| l.num_adapter_params())
        .sum();

    // 10% of each task's training examples validate; the test split stays unseen.
    let cut = |t: &crate::synthetic::TaskData| t.train.len() - (t.train.len() / 10).max(1);
    let splits = Splits {
        train: split_dataset(
            bench,
            |t| t.train[..cut(t)].to_vec(),
            settings.sampling,
            seed,
        )?,
        valid: split_dataset(
            bench,
            |t| t.train[cut(t)..].to_vec(),
            SamplingStrategy::Proportional,
            seed,
        )?,
        test: split_dataset(
            bench,
            |t| t.test.clone(),
            SamplingStrategy::Proportional,
            seed,
        )?,
    };
    let adapter_dir = artifact_dir.join("adapter");
    let fitted = fit_and_test(
        model,
        DenseCollate,
        splits,
        settings,
        seed,
        artifact_dir,
        devices,
    )?;
    // The trained adapter alone (no frozen base), in the reference's format.
    burn_rlora::checkpoint::save_adapter(
        &fitted.model.body,
        &adapter_dir,
        &burn_rlora::checkpoint::SaveOptions::new(config),
    )
    .context("saving the trained adapter")?;
    let similarity_matrices: Vec<(String, HeadSimilarity)> = fitted
        .model
        .body
        .adapted()
        .iter()
        .map(|(name, layer)| (name.to_string(), layer.head_similarity()))
        .collect();
    Ok(RunResult::new(
        method.name(),
        seed,
        rank,
        trainable,
        adapter_params,
        similarity_matrices,
        fitted,
        start,
    ))
}

impl RunResult {
    /// One line for the console: test accuracy, per task, wall time, time per
    /// epoch and peak memory.
    pub fn summary_line(&self, epochs: usize) -> String {
        format!(
            "   test accuracy {:.2}% (per task {:?}); {:.1} s in all, {:.1} s per epoch; peak RSS {}",
            self.mean_accuracy,
            self.task_accuracy
                .iter()
                .map(|a| format!("{a:.1}"))
                .collect::<Vec<_>>(),
            self.wall_seconds,
            self.train_seconds / epochs.max(1) as f64,
            self.peak_rss_mib
                .map_or("n/a".into(), |m| format!("{m:.0} MiB")),
        )
    }

    /// Assemble a run's result from what [`fit_and_test`] returned; the
    /// wall time is measured from `start`, the peak memory read now.
    #[allow(clippy::too_many_arguments)]
    pub fn new<M>(
        method: &str,
        seed: u64,
        rank: usize,
        trainable: usize,
        adapter_params: usize,
        similarity_matrices: Vec<(String, HeadSimilarity)>,
        fitted: Fitted<M>,
        start: Instant,
    ) -> Self {
        let task_accuracy = fitted.task_accuracy;
        let mean_accuracy = task_accuracy.iter().sum::<f64>() / task_accuracy.len().max(1) as f64;
        Self {
            method: method.to_string(),
            seed,
            rank,
            mean_accuracy,
            task_accuracy,
            trainable,
            adapter_params,
            head_similarity: similarity_matrices
                .iter()
                .map(|(n, s)| (n.clone(), s.mean_pairwise))
                .collect(),
            similarity_matrices,
            train_loss: fitted.train_loss,
            valid_loss: fitted.valid_loss,
            wall_seconds: start.elapsed().as_secs_f64(),
            train_seconds: fitted.train_seconds,
            peak_rss_mib: peak_rss_mib(),
        }
    }
}

/// Sanity check used by the tests: the input width the body expects.
pub const INPUT_WIDTH: usize = D_IN;

/// Keep the inner model type nameable for callers.
pub type Trained<B> = <MultiTaskClassifier<B, SyntheticBody<B>> as AutodiffModule<B>>::InnerModule;
