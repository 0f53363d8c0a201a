//! Training one method with one seed through burn-train's `Learner`, and
//! scoring it on the held-out split.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::{Dataset, InMemDataset};
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig};
use burn::record::FullPrecisionSettings;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::metric::ItemLazy;
use burn::train::renderer::MetricsRenderer;
use burn::train::{
    ExecutionStrategy, Learner, LearningComponentsMarker, MultiDeviceOptim, SupervisedTraining,
};
use burn_rlora::multitask::{
    last_complete_checkpoint, write_atomically, AtomicMpkRecorder, BodyCollate, Collate,
    DenseCollate, Divergence, MultiTaskBatch, MultiTaskBatcher, MultiTaskBody, MultiTaskClassifier,
    MultiTaskDataset, PlainRenderer, RecordingRenderer, ResumePoint, SamplingStrategy,
    SeededEpochLoader, TaskAccuracyMetric, TaskHeads, TaskId, TaskLossMetric, TaskStats,
    TrainableBody, WarmupCosineLr,
};
use burn_rlora::{HeadSimilarity, Method, ParamCount, RLoraConfig};
use serde::{Deserialize, Serialize};

use crate::backend::{run_on, BackendJob, BackendName};
use crate::report;
use crate::synthetic::{Benchmark, SyntheticBody, D_HIDDEN};
use crate::trace::{SimilarityTrace, TracePoint};

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
    /// Record the head similarity every this many steps, where the body
    /// supports it (0 = off; traced on one device only).
    #[serde(skip)]
    pub trace_every: usize,
    /// Use the plain renderer even on a terminal.
    #[serde(skip)]
    pub plain: bool,
    /// Continue from what an earlier invocation left in the output directory
    /// (finished runs are read back, unfinished ones resume from their last
    /// complete epoch) instead of starting every run afresh.
    #[serde(skip)]
    pub resume: bool,
}

/// One run of a comparison, as [`fit_and_test`] and the trainers take it:
/// everything but the model, the data and the method.
#[derive(Debug, Clone)]
pub struct RunSpec<'a, B: Backend> {
    /// The settings shared by every run of the comparison.
    pub settings: &'a TrainSettings,
    /// The training seed: initial draws, task mix, batch order, dropout masks.
    pub seed: u64,
    /// The run's directory: checkpoints, the Learner's logs, the trained adapter.
    pub dir: PathBuf,
    /// The devices to train on; the first one holds the model.
    pub devices: Vec<B::Device>,
}

impl TrainSettings {
    /// The head-similarity trace of a run under these settings: a record
    /// every [`trace_every`](Self::trace_every) steps on one device (only
    /// there is one training forward pass one step), off otherwise.
    pub fn similarity_trace(&self) -> SimilarityTrace {
        if self.devices == 1 {
            SimilarityTrace::every(self.trace_every)
        } else {
            SimilarityTrace::default()
        }
    }
}

impl<B: Backend> RunSpec<'_, B> {
    /// Start the run: its wall clock, the peak-memory mark reset
    /// ([`reset_peak_rss`]), and the backend seeded with the run's seed on
    /// the first device. Returns the start time and that device.
    pub fn begin(&self) -> (Instant, B::Device) {
        let start = Instant::now();
        reset_peak_rss();
        let device = self.devices[0].clone();
        B::seed(&device, self.seed);
        (start, device)
    }
}

/// What one run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Mean pairwise head similarity per adapted layer over training (empty
    /// when not traced; a resumed run's trace starts where it resumed).
    #[serde(default)]
    pub similarity_trace: Vec<TracePoint>,
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

/// Parse a `--sampling` value: `proportional`, `uniform`, or a temperature
/// in [[`MIN_TEMPERATURE`], [`MAX_TEMPERATURE`]] such as `2` (a clap value parser).
///
/// # Errors
///
/// When the value is none of these.
pub fn parse_sampling(s: &str) -> Result<SamplingStrategy, String> {
    Ok(match s {
        "proportional" => SamplingStrategy::Proportional,
        "uniform" => SamplingStrategy::Uniform,
        t => match t.parse::<f64>() {
            Ok(t) if (MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&t) => {
                SamplingStrategy::Temperature(t)
            }
            _ => {
                return Err(format!(
                    "expected 'proportional', 'uniform' or a temperature from {MIN_TEMPERATURE} \
                     to {MAX_TEMPERATURE}"
                ))
            }
        },
    })
}

/// The smallest sampling temperature accepted (below it nearly every draw goes to the largest task).
pub const MIN_TEMPERATURE: f64 = 0.1;
/// The largest sampling temperature accepted (above it the mix is all but uniform).
pub const MAX_TEMPERATURE: f64 = 100.0;

fn parse_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err("must be a finite number".into())
    }
}

/// A clap value parser: a finite number greater than 0 (learning rates, alpha).
///
/// # Errors
///
/// When the value is not such a number.
pub fn parse_positive(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err("must be greater than 0".into())
    }
}

/// A clap value parser: a finite number, 0 or more (coefficients).
///
/// # Errors
///
/// When the value is not such a number.
pub fn parse_non_negative(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err("must be 0 or more".into())
    }
}

/// A clap value parser: a dropout probability, in `[0, 1)` as the adapters
/// require ([`RLoraConfig::check_dropout`]).
///
/// # Errors
///
/// When the value is not in that range.
pub fn parse_dropout(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    RLoraConfig::check_dropout(v)
        .map(|()| v)
        .map_err(|e| e.to_string())
}

/// A clap value parser: a fraction strictly between 0 and 1.
///
/// # Errors
///
/// When the value is not in that range.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err("must be strictly between 0 and 1".into())
    }
}

/// The seeds `seed, seed + 1, ..., seed + count - 1`.
///
/// # Errors
///
/// When the last one would pass `u64::MAX`, or `count` is 0.
pub fn seed_range(seed: u64, count: u64) -> Result<Vec<u64>, String> {
    if count == 0 {
        return Err("--seeds must be at least 1".into());
    }
    seed.checked_add(count - 1)
        .map(|_| (0..count).map(|k| seed + k).collect())
        .ok_or_else(|| {
            format!(
                "--seed {seed} with --seeds {count} runs past the largest seed {}",
                u64::MAX
            )
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

/// One task of a comparison as the dataset builders read it: the built-in
/// tasks ([`crate::synthetic::TaskData`]) and MiniLM's
/// ([`crate::minilm::PreparedTask`]) both are.
pub trait ComparisonTask {
    /// One example's input.
    type Input: Clone + Send + Sync + 'static;
    /// The task's name.
    fn name(&self) -> &str;
    /// Its number of classes.
    fn num_classes(&self) -> usize;
    /// Training examples (the last 10% of them validate in [`Splits::of`]).
    fn train(&self) -> &[(Self::Input, usize)];
    /// Held-out test examples.
    fn test(&self) -> &[(Self::Input, usize)];
}

/// A multi-task dataset of the examples that `pick` selects from each of
/// `tasks` (its train, validation or test split, or a shard of one), mixed
/// by `sampling` under `seed`.
///
/// # Errors
///
/// When the dataset cannot be built (for example, no task has an example).
pub fn task_dataset<T: ComparisonTask>(
    tasks: &[T],
    pick: impl Fn(&T) -> Vec<(T::Input, usize)>,
    sampling: SamplingStrategy,
    seed: u64,
) -> Result<MultiTaskDataset<T::Input>> {
    let mut builder = MultiTaskDataset::builder(sampling, seed);
    for task in tasks {
        builder = builder.task(
            task.name().to_string(),
            task.num_classes(),
            InMemDataset::new(pick(task)),
        );
    }
    builder.build().context("building the multi-task dataset")
}

/// How many of a task's `n` training examples train; the rest (10%, at
/// least one) validate.
pub fn training_part(n: usize) -> usize {
    n - (n / 10).max(1)
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

impl<X: Clone + Send + Sync + 'static> Splits<X> {
    /// The splits of `tasks`: the first 90% of each task's training
    /// examples train (mixed by `sampling` under `seed`), the rest validate,
    /// and the test examples are scored at the end (both mixed
    /// proportionally).
    ///
    /// # Errors
    ///
    /// As [`task_dataset`].
    pub fn of<T: ComparisonTask<Input = X>>(
        tasks: &[T],
        sampling: SamplingStrategy,
        seed: u64,
    ) -> Result<Self> {
        let part = |t: &T| training_part(t.train().len());
        let proportional = SamplingStrategy::Proportional;
        Ok(Self {
            train: task_dataset(tasks, |t| t.train()[..part(t)].to_vec(), sampling, seed)?,
            valid: task_dataset(tasks, |t| t.train()[part(t)..].to_vec(), proportional, seed)?,
            test: task_dataset(tasks, |t| t.test().to_vec(), proportional, seed)?,
        })
    }
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
    /// Optimizer steps taken before this invocation's training started
    /// (non-zero when it resumed from a checkpoint).
    pub steps_before: usize,
    /// Optimizer steps of the whole run, all epochs.
    pub total_steps: usize,
}

/// The trained (inner-backend) model of a [`MultiTaskClassifier`] over `E`.
pub type InnerClassifier<B, E> = <MultiTaskClassifier<B, E> as AutodiffModule<B>>::InnerModule;

/// The Learner's components in [`fit_and_test`].
pub type Components<B, E> = LearningComponentsMarker<
    B,
    WarmupCosineLr,
    MultiTaskClassifier<B, E>,
    OptimizerAdaptor<Adam, MultiTaskClassifier<B, E>, B>,
>;

/// The checkpoints' precision: full, so that a resumed run continues exactly.
pub type CheckpointPrecision = FullPrecisionSettings;

/// A run stopped by a non-finite loss or gradient.
#[derive(Debug)]
pub struct RunDiverged {
    /// Where and what.
    pub divergence: Divergence,
    /// The run's checkpoint directory.
    pub checkpoint_dir: PathBuf,
    /// The newest complete checkpoint there (the last good state), if any.
    pub last_good_epoch: Option<usize>,
}

impl fmt::Display for RunDiverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; no adapter was saved; ", self.divergence)?;
        match self.last_good_epoch {
            Some(e) => write!(
                f,
                "the last good state is the checkpoint of epoch {e} in {} \
                 (model-{e}.mpk, optim-{e}.mpk, scheduler-{e}.mpk)",
                self.checkpoint_dir.display()
            ),
            None => write!(
                f,
                "no epoch completed before, so there is no checkpoint to go back to"
            ),
        }?;
        write!(f, ". Try a smaller --lr")
    }
}

impl std::error::Error for RunDiverged {}

/// Train `model` on `splits.train` with burn-train's `Learner` (Adam, 3%
/// warm-up and cosine decay, per-task metrics), then score `splits.test`
/// task by task. `collate` stacks the inputs of `X` for both backends.
///
/// With `run.settings.resume`, training continues from the newest checkpoint
/// of `run.dir` that loads (skipping damaged ones); otherwise earlier
/// checkpoints there are removed. Checkpoints are full precision and written
/// atomically; the last two epochs are kept.
///
/// # Errors
///
/// An empty training split, and [`RunDiverged`] when a non-finite loss or
/// gradient stopped the run (the weights are then not returned).
pub fn fit_and_test<B, E, X, C>(
    model: MultiTaskClassifier<B, E>,
    collate: C,
    splits: Splits<X>,
    run: RunSpec<'_, B>,
) -> Result<Fitted<InnerClassifier<B, E>>>
where
    B: AutodiffBackend,
    E: TrainableBody<B>,
    X: Clone + Send + Sync + fmt::Debug + 'static,
    C: BodyCollate<B, X, E>,
{
    let RunSpec {
        settings,
        seed,
        dir: artifact_dir,
        devices,
    } = run;
    let Splits { train, valid, test } = splits;
    if train.is_empty() {
        bail!("the training split is empty: an epoch would train on nothing");
    }
    let names = train.task_names();
    let steps_per_epoch = train.len().div_ceil(settings.batch_size);
    let steps = steps_per_epoch * settings.epochs;
    let lr = WarmupCosineLr::new(settings.lr, 0.0, (steps * 3).div_ceil(100), steps);
    let device = devices[0].clone();

    // Resume from the newest checkpoint that loads, or start afresh.
    let checkpoint_dir = artifact_dir.join("checkpoint");
    let resume = if settings.resume {
        last_complete_checkpoint::<Components<B, E>, CheckpointPrecision>(
            &checkpoint_dir,
            settings.epochs,
            &device,
        )
    } else {
        if checkpoint_dir.exists() {
            std::fs::remove_dir_all(&checkpoint_dir)
                .with_context(|| format!("removing {}", checkpoint_dir.display()))?;
        }
        ResumePoint::default()
    };
    for rejected in &resume.rejected {
        println!(
            "   skipping the checkpoint of epoch {}: {}",
            rejected.epoch, rejected.reason
        );
    }
    let first_epoch = resume.epoch.map_or(1, |e| e + 1);
    if let Some(e) = resume.epoch {
        println!(
            "   resuming after epoch {e} from {}",
            checkpoint_dir.display()
        );
    }
    let guard = model.guard().clone();
    guard.starting_epoch(first_epoch);

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

    // Epoch e's order and dropout masks depend on (seed, e) alone.
    let train_loader: Arc<dyn DataLoader<B, MultiTaskBatch<B, E::Input>>> = Arc::new(
        SeededEpochLoader::new(
            MultiTaskBatcher::new(collate.clone()),
            train,
            settings.batch_size,
            seed,
        )
        .starting_epoch(first_epoch),
    );
    let mut training = SupervisedTraining::new(
        &artifact_dir,
        train_loader,
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
    // The last two complete epochs are kept; a diverging epoch writes and deletes nothing.
    let mut training = guard
        .attach(training, 2)
        .with_file_checkpointer(AtomicMpkRecorder::<CheckpointPrecision>::new())
        .num_epochs(settings.epochs)
        .renderer(renderer);
    if let Some(e) = resume.epoch {
        training = training.checkpoint(e);
    }
    if devices.len() > 1 {
        training = training.with_training_strategy(
            ExecutionStrategy::MultiDevice(devices, MultiDeviceOptim::OptimMainDevice).into(),
        );
    }
    let start = Instant::now();
    let learner = Learner::new(model, AdamConfig::new().init(), lr);
    let result = training.launch(learner);
    drop(result.renderer);
    if let Err(divergence) = guard.check() {
        let last_good_epoch = last_complete_checkpoint::<Components<B, E>, CheckpointPrecision>(
            &checkpoint_dir,
            settings.epochs,
            &device,
        )
        .epoch;
        return Err(RunDiverged {
            divergence,
            checkpoint_dir,
            last_good_epoch,
        }
        .into());
    }
    let model = result.model;
    let train_seconds = start.elapsed().as_secs_f64();

    let task_accuracy = test_accuracy(
        &model,
        collate,
        test,
        settings.batch_size.max(64),
        names.len(),
    );
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
        steps_before: (first_epoch - 1) * steps_per_epoch,
        total_steps: steps,
    })
}

/// Test accuracy per task, in percent: `model` scores `test` in batches of
/// `batch_size` (inputs stacked by `collate`), counted for each of `tasks`
/// tasks (0 for a task with no test example).
pub fn test_accuracy<B, E, X, C>(
    model: &MultiTaskClassifier<B, E>,
    collate: C,
    test: MultiTaskDataset<X>,
    batch_size: usize,
    tasks: usize,
) -> Vec<f64>
where
    B: Backend,
    E: MultiTaskBody<B, Input: fmt::Debug>,
    X: Clone + Send + Sync + fmt::Debug + 'static,
    C: Collate<B, X, Output = E::Input> + 'static,
{
    let mut totals = vec![TaskStats::default(); tasks];
    for batch in loader::<B, X, C>(collate, test, batch_size, None).iter() {
        let stats = model.forward_loss(batch).sync();
        for (total, s) in totals.iter_mut().zip(&stats.tasks) {
            total.count += s.count;
            total.correct += s.correct;
        }
    }
    totals
        .iter()
        .map(|s| 100.0 * s.correct as f64 / s.count.max(1) as f64)
        .collect()
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

/// Train `method` as `run` says and score it on the test split.
pub fn run_one<B: AutodiffBackend>(
    bench: &Benchmark,
    method: Method,
    run: RunSpec<'_, B>,
) -> Result<RunResult> {
    let (start, device) = run.begin();
    let settings = run.settings;
    let (rank, config) = method_config(method, settings);
    let trace = settings.similarity_trace();
    let body = SyntheticBody::<B>::new(&bench.base, &config, &device)?.with_trace(trace.clone());
    let classes: Vec<usize> = bench.tasks.iter().map(|t| t.num_classes).collect();
    let model = MultiTaskClassifier::new(body, TaskHeads::new(D_HIDDEN, &classes, &device))
        .with_balance_coef(settings.balance);
    let record = RunRecord {
        method: method.name().to_string(),
        seed: run.seed,
        rank,
        trainable: ParamCount::of(&model).trainable,
        adapter_params: model
            .body
            .adapted()
            .iter()
            .map(|(_, l)| l.num_adapter_params())
            .sum(),
        trace,
        start,
    };

    // 10% of each task's training examples validate; the test split stays unseen.
    let splits = Splits::of(&bench.tasks, settings.sampling, run.seed)?;
    let adapter_dir = run.dir.join("adapter");
    let fitted = fit_and_test(model, DenseCollate, splits, run)?;
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
    let last = fitted.model.body.mean_head_similarities();
    Ok(RunResult::new(record, fitted, similarity_matrices, last))
}

/// What a run's [`RunResult`] records besides what [`fit_and_test`]
/// returns, all known before training.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The method's name.
    pub method: String,
    /// The training seed.
    pub seed: u64,
    /// The rank used (LoRA's is matched to R-LoRA's parameter count).
    pub rank: usize,
    /// Trainable parameters (adapters and task heads).
    pub trainable: usize,
    /// Trainable parameters of the adapters alone.
    pub adapter_params: usize,
    /// The head similarity the body records during training (off when not traced).
    pub trace: SimilarityTrace,
    /// When the run started: its wall time counts from here.
    pub start: Instant,
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

    /// Assemble a run's result from `record` and what [`fit_and_test`]
    /// returned (`fitted`), with the trained model's head similarity:
    /// `similarity_matrices` per adapted layer, and `last`, their means,
    /// which end the similarity trace ([`with_trace`](Self::with_trace)).
    /// The wall time is measured from `record.start`, the peak memory read now.
    pub fn new<M>(
        record: RunRecord,
        fitted: Fitted<M>,
        similarity_matrices: Vec<(String, HeadSimilarity)>,
        last: Vec<(String, Option<f64>)>,
    ) -> Self {
        let (steps_before, total_steps) = (fitted.steps_before, fitted.total_steps);
        let task_accuracy = fitted.task_accuracy;
        let mean_accuracy = task_accuracy.iter().sum::<f64>() / task_accuracy.len().max(1) as f64;
        Self {
            method: record.method,
            seed: record.seed,
            rank: record.rank,
            mean_accuracy,
            task_accuracy,
            trainable: record.trainable,
            adapter_params: record.adapter_params,
            head_similarity: similarity_matrices
                .iter()
                .map(|(n, s)| (n.clone(), s.mean_pairwise))
                .collect(),
            similarity_matrices,
            train_loss: fitted.train_loss,
            valid_loss: fitted.valid_loss,
            wall_seconds: record.start.elapsed().as_secs_f64(),
            train_seconds: fitted.train_seconds,
            peak_rss_mib: peak_rss_mib(),
            similarity_trace: Vec::new(),
        }
        .with_trace(&record.trace, steps_before, total_steps, last)
    }
}

impl RunResult {
    /// Attach what `trace` recorded during [`fit_and_test`], shifted by
    /// `steps_before` (the [`Fitted::steps_before`] of a resumed run), plus
    /// `last` (the trained model's similarities) at `total_steps`.
    pub fn with_trace(
        mut self,
        trace: &SimilarityTrace,
        steps_before: usize,
        total_steps: usize,
        last: Vec<(String, Option<f64>)>,
    ) -> Self {
        if !trace.is_on() {
            return self;
        }
        let mut points = trace.points();
        for p in &mut points {
            p.step += steps_before;
        }
        if points.last().is_none_or(|p| p.step < total_steps) {
            points.push(TracePoint {
                step: total_steps,
                layers: last,
            });
        }
        self.similarity_trace = points;
        self
    }
}

/// The directory of one run of a comparison: `<out>/runs/<method>-seed<seed>/`,
/// holding `settings.json`, `checkpoint/`, `adapter/` and, once the run has
/// finished, `result.json`.
pub fn run_dir(out: &Path, method: &str, seed: u64) -> PathBuf {
    out.join("runs").join(format!("{method}-seed{seed}"))
}

/// A head-similarity matrix as stored in a run's `result.json`.
#[derive(Serialize, Deserialize)]
struct StoredSimilarity {
    layer: String,
    num_heads: usize,
    matrix: Vec<f64>,
    mean_pairwise: Option<f64>,
}

/// A run's `result.json`: its result and its head-similarity matrices.
#[derive(Serialize, Deserialize)]
struct StoredRun {
    run: RunResult,
    similarity: Vec<StoredSimilarity>,
}

impl RunResult {
    /// Write this result to `path` atomically (JSON, with the similarity matrices).
    ///
    /// # Errors
    ///
    /// Serialization or I/O.
    pub fn store(&self, path: &Path) -> Result<()> {
        let stored = StoredRun {
            run: self.clone(),
            similarity: self
                .similarity_matrices
                .iter()
                .map(|(layer, s)| StoredSimilarity {
                    layer: layer.clone(),
                    num_heads: s.num_heads,
                    matrix: s.matrix.clone(),
                    mean_pairwise: s.mean_pairwise,
                })
                .collect(),
        };
        write_atomically(path, serde_json::to_string_pretty(&stored)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Read a result written by [`store`](Self::store).
    ///
    /// # Errors
    ///
    /// I/O or a file that is not such a result.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let stored: StoredRun =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let mut run = stored.run;
        run.similarity_matrices = stored
            .similarity
            .into_iter()
            .map(|s| {
                (
                    s.layer,
                    HeadSimilarity {
                        matrix: s.matrix,
                        num_heads: s.num_heads,
                        mean_pairwise: s.mean_pairwise,
                    },
                )
            })
            .collect();
        Ok(run)
    }
}

/// What identifies a run's training: `settings` (all but the renderer and
/// the resume flag) and the binary's own options in `extra` (data, splits).
/// A run is resumed only under the same fingerprint.
pub fn fingerprint(settings: &TrainSettings, extra: serde_json::Value) -> serde_json::Value {
    let mut value = serde_json::to_value(settings).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("sampling".into(), format!("{:?}", settings.sampling).into());
        if let serde_json::Value::Object(extra) = extra {
            map.extend(extra);
        }
    }
    value
}

/// The keys whose values differ between two fingerprints.
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or("none".into(), |v| v.to_string());
            format!("{k}: {} before, {} now", show(a.get(k)), show(b.get(k)))
        })
        .collect();
    keys.dedup();
    keys
}

/// Every `(method, seed)` run of a comparison, in order, each in its
/// [`run_dir`] under `out`, trained by `train_one(method, seed, dir)`.
///
/// A finished run's result is written atomically to `result.json` at once,
/// and `after_each` gets every result so far (to rewrite the report). With
/// `settings.resume`, finished runs are read back instead of trained, and an
/// unfinished one resumes from its checkpoints (in `train_one`); a run
/// directory started under another [`fingerprint`] is an error. Without it,
/// each run directory is emptied first.
///
/// # Errors
///
/// The first run that fails, a settings mismatch, or I/O.
pub fn run_comparison<M: fmt::Display + Copy>(
    out: &Path,
    methods: &[M],
    seeds: &[u64],
    settings: &TrainSettings,
    fingerprint: &serde_json::Value,
    mut train_one: impl FnMut(M, u64, PathBuf) -> Result<RunResult>,
    mut after_each: impl FnMut(&[RunResult]) -> Result<()>,
) -> Result<Vec<RunResult>> {
    let mut runs = Vec::new();
    for &method in methods {
        for &seed in seeds {
            let dir = run_dir(out, &method.to_string(), seed);
            let settings_file = dir.join("settings.json");
            let result_file = dir.join("result.json");
            if settings.resume {
                if let Ok(text) = std::fs::read_to_string(&settings_file) {
                    let before: serde_json::Value = serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", settings_file.display()))?;
                    let diff = differing_keys(&before, fingerprint);
                    if !diff.is_empty() {
                        bail!(
                            "{} was started with other settings ({}); run without --resume to \
                             start over, or choose another --out",
                            dir.display(),
                            diff.join("; ")
                        );
                    }
                }
                if result_file.exists() {
                    match RunResult::load(&result_file) {
                        Ok(run) => {
                            println!(
                                "== {method}, seed {seed}: finished before, read back from {}",
                                result_file.display()
                            );
                            runs.push(run);
                            continue;
                        }
                        Err(e) => println!("== {method}, seed {seed}: {e:#}; training it again"),
                    }
                }
            } else if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
            write_atomically(
                &settings_file,
                serde_json::to_string_pretty(fingerprint)?.as_bytes(),
            )
            .with_context(|| format!("writing {}", settings_file.display()))?;
            println!("== {method}, seed {seed}");
            let run = train_one(method, seed, dir)
                .with_context(|| format!("training {method} with seed {seed}"))?;
            println!("{}", run.summary_line(settings.epochs));
            run.store(&result_file)?;
            runs.push(run);
            after_each(&runs)?;
        }
    }
    Ok(runs)
}

/// Trains one run of a comparison on any backend: what a binary plugs into
/// [`Comparison`].
pub trait RunTrainer {
    /// The methods it compares.
    type Method: fmt::Display + Copy;

    /// Train `method` as `run` says (seed, settings, directory, devices).
    ///
    /// # Errors
    ///
    /// Whatever stops the run.
    fn train<B: AutodiffBackend>(
        &self,
        method: Self::Method,
        run: RunSpec<'_, B>,
    ) -> Result<RunResult>;
}

/// A whole comparison as a [`BackendJob`]: every method and seed through
/// [`run_comparison`] under `out`, the report rewritten after each run.
pub struct Comparison<T: RunTrainer> {
    /// Trains one run.
    pub trainer: T,
    /// The methods, in the report's order.
    pub methods: Vec<T::Method>,
    /// The seeds, the same for every method (paired).
    pub seeds: Vec<u64>,
    /// The shared training settings.
    pub settings: TrainSettings,
    /// What identifies the comparison for `--resume` ([`fingerprint`]).
    pub fingerprint: serde_json::Value,
    /// The report's directory.
    pub out: PathBuf,
    /// The task names, in the table's column order.
    pub task_names: Vec<String>,
    /// The Markdown header of `table.md`.
    pub header: String,
}

impl<T: RunTrainer> Comparison<T> {
    /// Every run on `backend` with `devices` devices ([`run_on`]), then the
    /// report written and printed ([`report::write_and_print`], the wall
    /// time counted from `start`).
    ///
    /// # Errors
    ///
    /// A backend not compiled in, the first run that fails, or I/O.
    pub fn run_and_report(
        self,
        backend: BackendName,
        devices: usize,
        start: Instant,
    ) -> Result<()> {
        let (out, task_names, header) = (
            self.out.clone(),
            self.task_names.clone(),
            self.header.clone(),
        );
        let runs = run_on(backend, devices, self)??;
        report::write_and_print(&out, &runs, &task_names, &header, start)
    }
}

impl<T: RunTrainer> BackendJob for Comparison<T> {
    type Output = Result<Vec<RunResult>>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output {
        run_comparison(
            &self.out,
            &self.methods,
            &self.seeds,
            &self.settings,
            &self.fingerprint,
            |method, seed, dir| {
                let run = RunSpec {
                    settings: &self.settings,
                    seed,
                    dir,
                    devices: devices.clone(),
                };
                self.trainer.train::<B>(method, run)
            },
            |runs| report::write(&self.out, runs, &self.task_names, &self.header).map(|_| ()),
        )
    }
}
