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
use burn::tensor::Tensor;
use burn::train::metric::ItemLazy;
use burn::train::renderer::MetricsRenderer;
use burn::train::{ExecutionStrategy, Learner, MultiDeviceOptim, SupervisedTraining};
use burn_rlora::multitask::{
    DenseCollate, MultiTaskBatch, MultiTaskBatcher, MultiTaskClassifier, MultiTaskDataset,
    PlainRenderer, RecordingRenderer, SamplingStrategy, TaskAccuracyMetric, TaskHeads, TaskId,
    TaskLossMetric, TaskStats, WarmupCosineLr,
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
}

/// LoRA's rank with about as many adapter parameters as `heads` heads of rank
/// `rank` plus a router on a `d_in -> d_out` layer (as the paper compares).
pub fn matched_lora_rank(rank: usize, heads: usize, d_in: usize, d_out: usize) -> usize {
    let multi = d_in * rank + heads * rank * d_out + d_in * heads;
    ((multi as f64 / (d_in + d_out) as f64).round() as usize).clamp(1, d_in.min(d_out))
}

/// The adapter config of `method` under `settings`.
pub fn method_config(method: Method, settings: &TrainSettings) -> (usize, RLoraConfig) {
    let rank = match method {
        Method::Lora => matched_lora_rank(settings.rank, settings.heads, D_HIDDEN, D_HIDDEN),
        _ => settings.rank,
    };
    let config = method
        .config(rank, settings.alpha, settings.heads)
        .with_rank_stabilized(true)
        .with_dropout(settings.dropout);
    (rank, config)
}

type Batch<B> = MultiTaskBatch<B, Tensor<B, 2>>;

fn loader<B: Backend>(
    data: MultiTaskDataset<Vec<f32>>,
    batch_size: usize,
    shuffle: Option<u64>,
) -> Arc<dyn DataLoader<B, Batch<B>>> {
    let builder =
        DataLoaderBuilder::new(MultiTaskBatcher::new(DenseCollate)).batch_size(batch_size);
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
    let train = split_dataset(
        bench,
        |t| t.train[..cut(t)].to_vec(),
        settings.sampling,
        seed,
    )?;
    let valid = split_dataset(
        bench,
        |t| t.train[cut(t)..].to_vec(),
        SamplingStrategy::Proportional,
        seed,
    )?;
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
        loader::<B>(train, settings.batch_size, Some(seed)),
        loader::<B::InnerBackend>(valid, settings.batch_size, None),
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
    let learner = Learner::new(model, AdamConfig::new().init(), lr);
    let result = training.launch(learner);
    drop(result.renderer);
    let model = result.model;

    // Score the held-out split, task by task.
    let test = split_dataset(
        bench,
        |t| t.test.clone(),
        SamplingStrategy::Proportional,
        seed,
    )?;
    let mut totals = vec![TaskStats::default(); names.len()];
    for batch in loader::<B::InnerBackend>(test, 256, None).iter() {
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
    let mean_accuracy = task_accuracy.iter().sum::<f64>() / task_accuracy.len() as f64;

    let similarity_matrices: Vec<(String, HeadSimilarity)> = model
        .body
        .adapted()
        .iter()
        .map(|(name, layer)| (name.to_string(), layer.head_similarity()))
        .collect();
    // The trained adapter alone (no frozen base), in the reference's format.
    burn_rlora::checkpoint::save_adapter(
        &model.body,
        artifact_dir.join("adapter"),
        &burn_rlora::checkpoint::SaveOptions::new(config),
    )
    .context("saving the trained adapter")?;
    let history = history.lock().map(|h| h.clone()).unwrap_or_default();
    Ok(RunResult {
        method: method.name().to_string(),
        seed,
        rank,
        task_accuracy,
        mean_accuracy,
        trainable,
        adapter_params,
        head_similarity: similarity_matrices
            .iter()
            .map(|(n, s)| (n.clone(), s.mean_pairwise))
            .collect(),
        similarity_matrices,
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
        wall_seconds: start.elapsed().as_secs_f64(),
    })
}

/// Sanity check used by the tests: the input width the body expects.
pub const INPUT_WIDTH: usize = D_IN;

/// Keep the inner model type nameable for callers.
pub type Trained<B> = <MultiTaskClassifier<B, SyntheticBody<B>> as AutodiffModule<B>>::InnerModule;
