//! One run through burn-train's `Learner`, and its scoring on the test split.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig};
use burn::record::FullPrecisionSettings;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::metric::store::Split;
use burn::train::metric::ItemLazy;
use burn::train::renderer::MetricsRenderer;
use burn::train::{
    ExecutionStrategy, InferenceStep, Learner, LearningComponentsMarker, MultiDeviceOptim,
    SupervisedTraining, TrainStep,
};
use burn_rlora::multitask::{
    checkpoint_epochs, last_complete_checkpoint, AtomicMpkRecorder, BodyCollate, Collate,
    DivergenceGuard, HistoryHandle, InnerInput, MultiTaskBatch, MultiTaskBatcher, MultiTaskBody,
    MultiTaskClassifier, MultiTaskDataset, MultiTaskOutput, PlainRenderer, RecordingRenderer,
    ResumePoint, RunStopped, SeededEpochLoader, TaskAccuracyMetric, TaskId, TaskLossMetric,
    TaskStats, TrainableBody, WarmupCosineLr,
};

use super::curves::logged_loss_curves;
use super::splits::Splits;
use super::RunSpec;

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
    /// Epochs trained before this invocation (the checkpoint it resumed
    /// from; 0 for a run trained in one go). [`train_seconds`](Self::train_seconds)
    /// covers the others only.
    pub epochs_before: usize,
    /// Optimizer steps of the whole run, all epochs.
    pub total_steps: usize,
}

/// The trained (inner-backend) model of a [`MultiTaskClassifier`] over `E`.
pub type InnerClassifier<B, E> = <MultiTaskClassifier<B, E> as AutodiffModule<B>>::InnerModule;

/// A model that [`fit`] trains through burn-train's `Learner`: its steps
/// take multi-task batches and report per-task outputs, its inner
/// (inference) module validates, and a [`DivergenceGuard`] watches both.
///
/// [`MultiTaskClassifier`] over any [`TrainableBody`] is one; so is the
/// decoder LLM's answer-only model of the SmolLM example.
pub trait MultiTaskModel<B: AutodiffBackend>:
    TrainStep<Input = MultiTaskBatch<B, Self::TrainInput>, Output = MultiTaskOutput<B>>
    + AutodiffModule<
        B,
        InnerModule: InferenceStep<
            Input = MultiTaskBatch<B::InnerBackend, Self::ValidInput>,
            Output = MultiTaskOutput<B::InnerBackend>,
        >,
    > + fmt::Display
    + 'static
{
    /// What a training batch carries besides targets and tasks.
    type TrainInput: Clone + Send + fmt::Debug + 'static;
    /// What a validation batch carries besides targets and tasks.
    type ValidInput: Clone + Send + fmt::Debug + 'static;

    /// The guard watching the model's steps (shared by its clones).
    fn divergence_guard(&self) -> &DivergenceGuard;
}

impl<B: AutodiffBackend, E: TrainableBody<B>> MultiTaskModel<B> for MultiTaskClassifier<B, E> {
    type TrainInput = E::Input;
    type ValidInput = InnerInput<B, E>;

    fn divergence_guard(&self) -> &DivergenceGuard {
        self.guard()
    }
}

/// A [`Collate`] that stacks items' inputs `X` for model `M` on both of a
/// `Learner`'s backends. Every such collate that is `Clone + 'static` is one.
pub trait ModelCollate<B: AutodiffBackend, X, M: MultiTaskModel<B>>:
    Collate<B, X, Output = M::TrainInput>
    + Collate<B::InnerBackend, X, Output = M::ValidInput>
    + Clone
    + 'static
{
}

impl<B, X, M, C> ModelCollate<B, X, M> for C
where
    B: AutodiffBackend,
    M: MultiTaskModel<B>,
    C: Collate<B, X, Output = M::TrainInput>
        + Collate<B::InnerBackend, X, Output = M::ValidInput>
        + Clone
        + 'static,
{
}

/// The Learner's components in [`fit`] for model `M`.
pub type Components<B, M> =
    LearningComponentsMarker<B, WarmupCosineLr, M, OptimizerAdaptor<Adam, M, B>>;

/// The checkpoints' precision: full, so that a resumed run continues exactly.
pub type CheckpointPrecision = FullPrecisionSettings;

/// A run that ended before it trained and stored every epoch: a non-finite
/// loss or gradient, a checkpoint or metric log that could not be written,
/// a final checkpoint that is missing or damaged, or the user's stop.
#[derive(Debug)]
pub struct RunStoppedEarly {
    /// Why, and at which epoch.
    pub stopped: RunStopped,
    /// The run's checkpoint directory.
    pub checkpoint_dir: PathBuf,
    /// The newest complete checkpoint there (the last good state), if any.
    pub last_good_epoch: Option<usize>,
}

impl fmt::Display for RunStoppedEarly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; no adapter was saved and no result written; ",
            self.stopped
        )?;
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
        match self.stopped {
            RunStopped::Diverged(_) => write!(f, ". Try a smaller --lr"),
            _ => write!(f, ". Fix the cause, then run again with --resume"),
        }
    }
}

impl std::error::Error for RunStoppedEarly {}

/// What the checkpoints of a run belong to, stored as
/// `checkpoint/identity.json` before the first one is written and checked
/// before resuming from any of them.
fn checkpoint_identity(run_dir: &Path, settings: &super::TrainSettings, seed: u64) -> String {
    let run = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let value = serde_json::json!({ "run": run, "seed": seed, "settings": settings });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Remove the checkpoints in `dir`, the identity file first, so that a kill
/// in the middle leaves checkpoints no later run will resume from.
fn remove_checkpoints(dir: &Path) -> Result<()> {
    let identity = dir.join("identity.json");
    if identity.exists() {
        std::fs::remove_file(&identity)
            .with_context(|| format!("removing {}", identity.display()))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// Remove the metric logs an earlier run left in `run_dir` (`train/`,
/// `valid/`), so that the loss curves read back are this run's alone.
fn remove_metric_logs(run_dir: &Path) -> Result<()> {
    for split in [Split::Train, Split::Valid] {
        let dir = run_dir.join(split.to_string());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Train `model` on `splits.train` as [`fit`] does, then score `splits.test`
/// task by task ([`test_accuracy`]). `collate` stacks the inputs of `X` for
/// both backends.
///
/// # Errors
///
/// As [`fit`].
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
    let Splits { train, valid, test } = splits;
    let tasks = train.task_names().len();
    let batch_size = run.settings.batch_size.max(64);
    let mut fitted = fit(model, collate.clone(), (train, valid), run)?;
    fitted.task_accuracy = test_accuracy(&fitted.model, collate, test, batch_size, tasks);
    Ok(fitted)
}

/// Train `model` on `train` with burn-train's `Learner` (Adam, 3% warm-up
/// and cosine decay, per-task metrics), validating on `valid` after every
/// epoch; `collate` stacks the inputs of `X` for both backends. The returned
/// [`Fitted::task_accuracy`] is empty: scoring is the caller's.
///
/// With `run.settings.resume`, training continues from the newest checkpoint
/// of `run.dir` that loads and fits the model (skipping damaged and foreign
/// ones), provided the checkpoints were written by this run (same directory
/// name, seed and settings, recorded in `checkpoint/identity.json`);
/// otherwise earlier checkpoints there are removed. Checkpoints are full
/// precision and written atomically; the last two epochs are kept. The
/// metric logs are written by a [`CheckedMetricLogger`](burn_rlora::multitask::CheckedMetricLogger).
///
/// A run is returned only when every epoch trained and the checkpoint of the
/// last one is stored and loads back.
///
/// # Errors
///
/// An empty training split, an I/O error preparing the checkpoint directory,
/// and [`RunStoppedEarly`] when anything stopped the run before that (the
/// weights are then not returned).
pub fn fit<B, M, X, C>(
    model: M,
    collate: C,
    (train, valid): (MultiTaskDataset<X>, MultiTaskDataset<X>),
    run: RunSpec<'_, B>,
) -> Result<Fitted<M::InnerModule>>
where
    B: AutodiffBackend,
    M: MultiTaskModel<B>,
    X: Clone + Send + Sync + fmt::Debug + 'static,
    C: ModelCollate<B, X, M>,
{
    let settings = run.settings;
    if train.is_empty() {
        bail!("the training split is empty: an epoch would train on nothing");
    }
    let steps_per_epoch = train.len().div_ceil(settings.batch_size);
    let steps = steps_per_epoch * settings.epochs;
    let lr = settings.steps.schedule.scheduler(settings.lr, steps);
    let device = run.devices[0].clone();

    let checkpoint_dir = run.dir.join("checkpoint");
    let resume = resume_or_start_afresh(&run, &checkpoint_dir, &model, &device)?;
    let first_epoch = first_epoch(resume.epoch);
    let steps_before = (first_epoch - 1) * steps_per_epoch;
    resume_trace(&run, steps_before)?;
    let guard = model.divergence_guard().clone();
    guard.starting_epoch(first_epoch);

    let (renderer, history) = RecordingRenderer::new(console_renderer(settings.plain));
    let training = supervised_training::<B, M, X, C>(
        &run,
        collate,
        (train, valid),
        &guard,
        renderer,
        resume.epoch,
    );
    let start = Instant::now();
    let template = model.clone();
    let result = training.launch(Learner::new(model, AdamConfig::new().init(), lr));
    drop(result.renderer);
    check_finished(&guard, &checkpoint_dir, settings.epochs, &template, &device)?;
    let train_seconds = start.elapsed().as_secs_f64();
    let (train_loss, valid_loss) = loss_curves(&run, &history, steps_per_epoch, resume.epoch);
    Ok(Fitted {
        model: result.model,
        task_accuracy: Vec::new(),
        train_loss,
        valid_loss,
        train_seconds,
        steps_before,
        epochs_before: first_epoch - 1,
        total_steps: steps,
    })
}

/// The file of `run`'s directory that keeps its head-similarity trace.
const TRACE_FILE: &str = "similarity_trace.jsonl";

/// Continue `run`'s trace at step `steps_before` ([`SimilarityTrace::resume`](crate::harness::trace::SimilarityTrace::resume)),
/// saying on the console when the points before it could not be read back.
fn resume_trace<B: Backend>(run: &RunSpec<'_, B>, steps_before: usize) -> Result<()> {
    let path = run.dir.join(TRACE_FILE);
    let complete = run
        .trace
        .resume(&path, steps_before)
        .with_context(|| format!("writing {}", path.display()))?;
    if !complete {
        println!(
            "   the head-similarity trace starts at step {steps_before}: the points before it \
             are not all in {}",
            path.display()
        );
    }
    Ok(())
}

/// The loss curves of the whole run of `run`: read back from the metric
/// logs of every epoch, so that a run resumed after `resume_epoch` reports
/// the epochs it trained before; where they cannot be read (said on the
/// console), those `history` recorded in this invocation.
fn loss_curves<B: Backend>(
    run: &RunSpec<'_, B>,
    history: &HistoryHandle,
    steps_per_epoch: usize,
    resume_epoch: Option<usize>,
) -> (Vec<f64>, Vec<f64>) {
    match logged_loss_curves(&run.dir, run.settings.epochs, steps_per_epoch) {
        Ok(curves) => curves,
        Err(e) => {
            if let Some(epoch) = resume_epoch {
                println!(
                    "   the loss curves cover the epochs after epoch {epoch} only: the logs of \
                     the earlier ones could not be read back ({e})"
                );
            }
            recorded_loss_curves(history)
        }
    }
}

/// Where the run of `run.dir` starts: with `run.settings.resume` and
/// checkpoints in `checkpoint_dir` that name this run, after the newest one
/// that loads and fits `model` (the damaged and foreign ones skipped, said
/// on the console); otherwise afresh, the old checkpoints removed and this
/// run's identity written before any new one.
fn resume_or_start_afresh<B, M>(
    run: &RunSpec<'_, B>,
    checkpoint_dir: &Path,
    model: &M,
    device: &B::Device,
) -> Result<ResumePoint>
where
    B: AutodiffBackend,
    M: MultiTaskModel<B>,
{
    let settings = run.settings;
    let identity_file = checkpoint_dir.join("identity.json");
    let identity = checkpoint_identity(&run.dir, settings, run.seed);
    let ours = std::fs::read_to_string(&identity_file).is_ok_and(|text| text == identity);
    let resume = if settings.resume && ours {
        last_complete_checkpoint::<Components<B, M>, CheckpointPrecision>(
            checkpoint_dir,
            settings.epochs,
            model,
            device,
        )
    } else {
        if settings.resume && !checkpoint_epochs(checkpoint_dir).is_empty() {
            println!(
                "   not resuming from {}: {} does not name this run, so its checkpoints \
                 may belong to another; starting afresh",
                checkpoint_dir.display(),
                identity_file.display()
            );
        }
        remove_checkpoints(checkpoint_dir)?;
        remove_metric_logs(&run.dir)?;
        burn_rlora::write_atomically(&identity_file, identity.as_bytes())?;
        ResumePoint::default()
    };
    for rejected in &resume.rejected {
        println!(
            "   skipping the checkpoint of epoch {}: {}",
            rejected.epoch, rejected.reason
        );
    }
    if let Some(e) = resume.epoch {
        println!(
            "   resuming after epoch {e} from {}",
            checkpoint_dir.display()
        );
    }
    Ok(resume)
}

/// The first epoch a run trains when it resumes after `resume_epoch`.
fn first_epoch(resume_epoch: Option<usize>) -> usize {
    resume_epoch.map_or(1, |e| e + 1)
}

/// The console's metrics renderer: plain lines with `plain` or when stdout
/// is not a terminal, burn-train's TUI otherwise.
fn console_renderer(plain: bool) -> Box<dyn MetricsRenderer> {
    if plain || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        Box::new(PlainRenderer::new())
    } else {
        Box::new(burn::train::renderer::tui::TuiMetricsRendererWrapper::new(
            Default::default(),
            None,
        ))
    }
}

/// burn-train's training of `run` on `train`, validated on `valid` (both
/// stacked by `collate`): the overall and per-task metrics, `guard`'s
/// interrupter, checked metric logs and checkpointing, atomic checkpoints,
/// `renderer`, continuing after `resume_epoch` when there is one, on every
/// device of `run`.
fn supervised_training<B, M, X, C>(
    run: &RunSpec<'_, B>,
    collate: C,
    (train, valid): (MultiTaskDataset<X>, MultiTaskDataset<X>),
    guard: &DivergenceGuard,
    renderer: RecordingRenderer,
    resume_epoch: Option<usize>,
) -> SupervisedTraining<Components<B, M>>
where
    B: AutodiffBackend,
    M: MultiTaskModel<B>,
    X: Clone + Send + Sync + fmt::Debug + 'static,
    C: ModelCollate<B, X, M>,
{
    let (settings, artifact_dir) = (run.settings, &run.dir);
    let names = train.task_names();
    // Epoch e's order and dropout masks depend on (seed, e) alone.
    let train_loader: Arc<dyn DataLoader<B, MultiTaskBatch<B, M::TrainInput>>> = Arc::new(
        SeededEpochLoader::new(
            MultiTaskBatcher::new(collate.clone()),
            train,
            settings.batch_size,
            run.seed,
        )
        .starting_epoch(first_epoch(resume_epoch)),
    );
    let training = SupervisedTraining::new(
        artifact_dir,
        train_loader,
        loader::<B::InnerBackend, X, C>(collate, valid, settings.batch_size, None),
    );
    let training = with_task_metrics(training, &names);
    // The last two complete epochs are kept; a diverging epoch writes and deletes nothing.
    let mut training = guard
        .attach(training, artifact_dir, 2)
        .with_file_checkpointer(AtomicMpkRecorder::<CheckpointPrecision>::new())
        .num_epochs(settings.epochs)
        .renderer(renderer);
    if settings.steps.grad_accumulation > 1 {
        training = training.grads_accumulation(settings.steps.grad_accumulation);
    }
    if let Some(e) = resume_epoch {
        training = training.checkpoint(e);
    }
    if run.devices.len() > 1 {
        training = training.with_training_strategy(
            ExecutionStrategy::MultiDevice(run.devices.clone(), MultiDeviceOptim::OptimMainDevice)
                .into(),
        );
    }
    training
}

/// `training` with the overall loss and accuracy on both splits, the loss
/// of each task of `names` on both, and its accuracy on the validation
/// split.
fn with_task_metrics<B, M>(
    training: SupervisedTraining<Components<B, M>>,
    names: &[String],
) -> SupervisedTraining<Components<B, M>>
where
    B: AutodiffBackend,
    M: MultiTaskModel<B>,
{
    let mut training = training
        .metric_train_numeric(TaskLossMetric::overall())
        .metric_valid_numeric(TaskLossMetric::overall())
        .metric_train_numeric(TaskAccuracyMetric::overall())
        .metric_valid_numeric(TaskAccuracyMetric::overall());
    for (t, name) in names.iter().enumerate() {
        training = training
            .metric_train_numeric(TaskLossMetric::task(TaskId(t), name))
            .metric_valid_numeric(TaskLossMetric::task(TaskId(t), name))
            .metric_valid_numeric(TaskAccuracyMetric::task(TaskId(t), name));
    }
    training
}

/// Whether the run finished: nothing stopped it (`guard`), and the
/// checkpoint of its last epoch (`epochs`) is in `checkpoint_dir` and loads
/// into `template`.
///
/// # Errors
///
/// [`RunStoppedEarly`], naming the newest complete checkpoint there.
fn check_finished<B, M>(
    guard: &DivergenceGuard,
    checkpoint_dir: &Path,
    epochs: usize,
    template: &M,
    device: &B::Device,
) -> Result<(), RunStoppedEarly>
where
    B: AutodiffBackend,
    M: MultiTaskModel<B>,
{
    let scan = || {
        last_complete_checkpoint::<Components<B, M>, CheckpointPrecision>(
            checkpoint_dir,
            epochs,
            template,
            device,
        )
    };
    let stopped = match guard.check() {
        Err(stopped) => Some((stopped, scan())),
        Ok(()) => {
            let point = scan();
            (point.epoch != Some(epochs)).then(|| {
                let reason = point.rejected.first().map_or_else(
                    || "its checkpoint was not written".to_string(),
                    |r| r.reason.clone(),
                );
                let stopped = RunStopped::Interrupted {
                    epoch: epochs,
                    reason: format!("the last epoch is not stored: {reason}"),
                };
                (stopped, point)
            })
        }
    };
    match stopped {
        Some((stopped, point)) => Err(RunStoppedEarly {
            stopped,
            checkpoint_dir: checkpoint_dir.to_path_buf(),
            last_good_epoch: point.epoch,
        }),
        None => Ok(()),
    }
}

/// The training loss per iteration and the validation loss per epoch that
/// `history` recorded.
fn recorded_loss_curves(history: &HistoryHandle) -> (Vec<f64>, Vec<f64>) {
    let history = history.lock().map(|h| h.clone()).unwrap_or_default();
    let loss =
        |series: &BTreeMap<String, Vec<f64>>| series.get("Loss").cloned().unwrap_or_default();
    (loss(&history.train_batches), loss(&history.valid_epochs))
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
