//! Data-parallel training of one adapter across processes and machines over
//! MPI (feature `mpi`), on the embedded multi-task data.
//!
//! ```text
//! cargo build --release -p burn-rlora-examples --features mpi --bin multitask-mpi
//! mpirun -np 4 target/release/multitask-mpi --epochs 4 --out report-mpi
//! mpirun -np 8 --hostfile hosts target/release/multitask-mpi --out report-mpi
//! ```
//!
//! Every rank builds the same model, takes rank 0's trainable weights
//! (one `MPI_Bcast`), trains on its own shard of the training set (the seed
//! and the rank choose it; no example is in two shards) and, after every
//! backward pass, sums one flat buffer of its adapter and task-head gradients
//! with the other ranks (one `MPI_Allreduce`); the frozen base sends nothing.
//! The loop is burn-train's Learner with the `DataParallel` training strategy
//! of `burn_rlora::distributed`. Rank 0 prints the metrics, saves
//! the Learner's checkpoints, the trained adapter (`<out>/adapter`) and the
//! report (`<out>/report.json`).
//!
//! `--simulate-ranks N` runs one process without MPI on the combined batches
//! that `N` ranks would train on, step by step: the single-process reference
//! of a data-parallel run.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig};
use burn::record::FullPrecisionSettings;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::renderer::MetricsRenderer;
use burn::train::{
    ExecutionStrategy, Learner, LearningComponentsMarker, SupervisedTraining, TrainingStrategy,
};
use burn_rlora::distributed::flat::{
    broadcast_from_root, masked_values, trainable_mask, GradLayout,
};
use burn_rlora::distributed::shard::{shard_indices, GroupBatcher, GroupedDataset, ShardDataset};
use burn_rlora::distributed::{
    DataParallel, Exchange, LossLog, MpiExchange, SilentRenderer, SingleProcess,
};
use burn_rlora::method::Method;
use burn_rlora::multitask::{
    AtomicMpkRecorder, DenseCollate, HistoryHandle, MultiTaskBatch, MultiTaskBatcher,
    MultiTaskClassifier, MultiTaskDataset, PlainRenderer, RecordingRenderer, TaskAccuracyMetric,
    TaskHeads, TaskItem, TaskLossMetric, WarmupCosineLr,
};
use burn_rlora::{ParamCount, RLoraConfig};
use burn_rlora_examples::backend::{run_on, BackendJob, BackendName};
use burn_rlora_examples::harness::compare::{
    method_config, parse_sampling, test_accuracy, Splits, TrainSettings,
};
use burn_rlora_examples::synthetic::{Benchmark, SyntheticBody, D_HIDDEN, D_IN};
use clap::Parser;
use serde::Serialize;

/// Train one adapter on the embedded multi-task data across MPI ranks.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// Method: lora, hydralora, hydralora-mt, hydralora-init, rlora, rlora-norouter.
    #[arg(long, default_value = "rlora")]
    method: String,
    /// Training epochs.
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// Training seed: weights (rank 0's), shards and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 2025)]
    data_seed: u64,
    /// Multiply the training-set sizes (e.g. 0.1 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    data_scale: f64,
    /// Batch size of each rank (the global batch is this times the ranks).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate (3% linear warm-up, cosine decay).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Rank of each head.
    #[arg(long, default_value_t = 4)]
    rank: usize,
    /// Heads per adapted layer.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Scaling numerator (alpha / sqrt(r)).
    #[arg(long, default_value_t = 8.0)]
    alpha: f64,
    /// Adapter dropout (each rank draws its own masks).
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Router load-balance loss coefficient (0 = off).
    #[arg(long, default_value_t = 0.0)]
    balance: f64,
    /// Task mixing: proportional, uniform, or a temperature such as 2.
    #[arg(long, default_value = "2")]
    sampling: String,
    /// Output directory (written by rank 0).
    #[arg(long, default_value = "report-mpi")]
    out: PathBuf,
    /// Backend: flex or ndarray (or wgpu, cuda when compiled in).
    #[arg(long)]
    backend: Option<String>,
    /// Run one process without MPI on the combined batches of this many ranks.
    #[arg(long)]
    simulate_ranks: Option<usize>,
    /// Every rank writes its trainable weights before training to
    /// `<out>/params-init-rank<r>.f32` and after it to `<out>/params-rank<r>.f32`
    /// (little-endian f32, module order), for comparing runs bit by bit.
    #[arg(long)]
    dump_params: bool,
    /// Testing the failure path: rank `--exit-rank` exits with status 3 after this many steps.
    #[arg(long, hide = true)]
    exit_after_steps: Option<usize>,
    /// The rank that `--exit-after-steps` stops.
    #[arg(long, hide = true, default_value_t = 1)]
    exit_rank: usize,
}

/// What rank 0 writes to `<out>/report.json`.
#[derive(Debug, Serialize)]
struct Report {
    method: String,
    backend: String,
    ranks: usize,
    simulated: bool,
    batch_per_rank: usize,
    global_batch: usize,
    steps: usize,
    examples_per_rank: usize,
    trainable_params: usize,
    total_params: usize,
    bytes_per_step: usize,
    full_finetune_bytes_per_step: usize,
    loss_per_step: Vec<f64>,
    task_names: Vec<String>,
    task_accuracy: Vec<f64>,
    train_seconds: f64,
}

fn main() {
    let args = Args::parse();
    let code = match args.simulate_ranks {
        Some(ranks) => report_error(run(&args, Rc::new(SingleProcess), ranks)),
        None => match MpiExchange::init() {
            Some(exchange) => {
                let exchange = Rc::new(exchange);
                let ranks = exchange.size();
                let code = report_error(run(&args, exchange.clone(), ranks));
                if code != 0 {
                    exchange.abort("stopping every rank")
                }
                code
            }
            None => report_error(Err(anyhow::anyhow!("MPI could not be initialized"))),
        },
    };
    std::process::exit(code);
}

/// The exit status of `result`, printing its error.
fn report_error(result: Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Check the options, prepare rank 0's output directory and run the job on
/// the chosen backend.
fn run<X: Exchange + 'static>(args: &Args, exchange: Rc<X>, data_ranks: usize) -> Result<()> {
    let method: Method = args.method.parse()?;
    let backend = BackendName::resolve(args.backend.as_deref())?;
    if args.epochs == 0 || args.batch_size == 0 || data_ranks == 0 {
        bail!("--epochs, --batch-size and --simulate-ranks must be at least 1");
    }
    if !(args.data_scale.is_finite() && args.data_scale > 0.0) {
        bail!(
            "--data-scale must be a positive number, got {}",
            args.data_scale
        );
    }
    let settings = train_settings(args)?;
    method_config(method, &settings)
        .1
        .validate(D_HIDDEN, D_HIDDEN)?;
    if exchange.rank() == 0 {
        burn_rlora_examples::harness::report::prepare_dir(&args.out)?;
    }
    let job = Job {
        args: args.clone(),
        method,
        backend,
        settings,
        exchange,
        data_ranks,
    };
    run_on(backend, 1, job)?
}

/// The training settings of the options: one device per process, plain
/// console output, no head-similarity trace, no resume.
fn train_settings(args: &Args) -> Result<TrainSettings> {
    Ok(TrainSettings {
        rank: args.rank,
        heads: args.heads,
        alpha: args.alpha,
        dropout: args.dropout,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        balance: args.balance,
        sampling: parse_sampling(&args.sampling).map_err(anyhow::Error::msg)?,
        devices: 1,
        trace_every: 0,
        plain: true,
        resume: false,
    })
}

/// The run on one backend: the checked options and this process's exchange.
struct Job<X> {
    args: Args,
    method: Method,
    backend: BackendName,
    settings: TrainSettings,
    exchange: Rc<X>,
    data_ranks: usize,
}

type Batch<B> = MultiTaskBatch<B, burn::tensor::Tensor<B, 2>>;

/// The trained model: the adapted synthetic body under one head per task.
type Classifier<B> = MultiTaskClassifier<B, SyntheticBody<B>>;

/// The Learner's components: the classifier, Adam and the warm-up cosine
/// learning rate.
type Components<B> = LearningComponentsMarker<
    B,
    WarmupCosineLr,
    Classifier<B>,
    OptimizerAdaptor<Adam, Classifier<B>, B>,
>;

/// A loader of `data` in batches of `batch_size`, shuffled under `shuffle`'s seed if any.
fn loader<B: Backend, I, T>(
    batcher: T,
    data: impl Dataset<I> + 'static,
    batch_size: usize,
    shuffle: Option<u64>,
) -> Arc<dyn DataLoader<B, Batch<B>>>
where
    I: Send + Sync + Clone + std::fmt::Debug + 'static,
    T: Batcher<B, I, Batch<B>> + 'static,
{
    let builder = DataLoaderBuilder::new(batcher).batch_size(batch_size);
    match shuffle {
        Some(seed) => builder.shuffle(seed).build(data),
        None => builder.build(data),
    }
}

/// Scalars of the two base layers that full fine-tuning would train instead
/// of the adapters: the weight and the bias of each.
const BASE_PARAMS: usize = D_IN * D_HIDDEN + D_HIDDEN + D_HIDDEN * D_HIDDEN + D_HIDDEN;
/// Tensors of the two base layers: the weight and the bias of each.
const BASE_TENSORS: usize = 4;
/// Tensors of one task head: its weight and its bias.
const TENSORS_PER_HEAD: usize = 2;
/// The figures that close a gradient buffer after the presence flags: the
/// rank's example count and its loss times that count (see
/// `burn_rlora::distributed::flat`).
const STEP_FIGURES: usize = 2;

/// Bytes one rank would send per step to fully fine-tune the same layers,
/// in the layout of the adapter's gradient buffer ([`GradLayout`]), all `f32`:
/// every trainable value (the base layers' [`BASE_PARAMS`] and the task
/// heads' `head_params`), one presence flag per trainable tensor (the
/// [`BASE_TENSORS`] and [`TENSORS_PER_HEAD`] for each of `num_tasks` heads),
/// then the [`STEP_FIGURES`].
fn full_finetune_bytes_per_step(head_params: usize, num_tasks: usize) -> usize {
    let values = BASE_PARAMS + head_params;
    let flags = BASE_TENSORS + TENSORS_PER_HEAD * num_tasks;
    (values + flags + STEP_FIGURES) * std::mem::size_of::<f32>()
}

/// The sizes rank 0 prints and reports.
struct Sizes {
    /// Trainable and total parameters.
    count: ParamCount,
    /// Bytes a rank sends per step with the adapter.
    bytes_per_step: usize,
    /// The same with full fine-tuning of the adapted layers.
    full_bytes: usize,
}

impl Sizes {
    /// The sizes of `model`, which has `num_tasks` task heads.
    fn of<B: AutodiffBackend>(model: &Classifier<B>, num_tasks: usize) -> Self {
        let count = ParamCount::of(model);
        let adapter: usize = model
            .body
            .adapted()
            .iter()
            .map(|(_, l)| l.num_adapter_params())
            .sum();
        // Full fine-tuning trains the same task heads as the adapter does.
        let heads = count.trainable - adapter;
        Sizes {
            count,
            bytes_per_step: GradLayout::of::<B, _>(model).bytes_per_step(),
            full_bytes: full_finetune_bytes_per_step(heads, num_tasks),
        }
    }
}

/// This rank's loaders.
struct Loaders<B: AutodiffBackend> {
    train: Arc<dyn DataLoader<B, Batch<B>>>,
    valid: Arc<dyn DataLoader<B::InnerBackend, Batch<B::InnerBackend>>>,
}

/// What the run scores and reports besides the model.
struct Plan {
    /// Scored task by task after training.
    test: MultiTaskDataset<Vec<f32>>,
    task_names: Vec<String>,
    /// Training examples of each rank's shard.
    per_rank: usize,
    /// Optimizer steps of the whole run.
    steps: usize,
}

/// A finished run, with the records of its losses.
struct Trained<B: AutodiffBackend> {
    model: Classifier<B::InnerBackend>,
    /// The global loss of every step (data-parallel runs).
    losses: LossLog,
    /// The renderer's record (the loss of every step when simulated).
    history: HistoryHandle,
    train_seconds: f64,
}

impl<X: Exchange + 'static> BackendJob for Job<X> {
    type Output = Result<()>;

    /// Build the same model on every rank, train this rank's shard together
    /// with the other ranks, then dump the weights, score, save and report
    /// as the options say.
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<()> {
        let rank = self.exchange.rank();
        let device = devices[0].clone();
        let (model, config, bench) = self.identical_model::<B>(&device)?;
        let mask = trainable_mask::<B, _>(&model);
        let sizes = Sizes::of(&model, bench.tasks.len());
        let (loaders, plan) = self.rank_data::<B>(&bench)?;
        let artifact_dir = artifact_dir(&self.args.out, rank);
        if rank == 0 {
            self.print_plan(&plan, &sizes);
        }
        if self.args.dump_params {
            let values = masked_values::<B, _>(&model, &mask).map_err(anyhow::Error::msg)?;
            dump_params(&self.args.out, &format!("params-init-rank{rank}"), &values)?;
        }
        let trained = self.train(model, loaders, plan.steps, &device, &artifact_dir)?;
        if self.args.dump_params {
            let values = masked_values::<B::InnerBackend, _>(&trained.model, &mask)
                .map_err(anyhow::Error::msg)?;
            dump_params(&self.args.out, &format!("params-rank{rank}"), &values)?;
        }
        if rank != 0 {
            std::fs::remove_dir_all(&artifact_dir).ok();
            return Ok(());
        }
        self.finish(trained, config, plan, &sizes)
    }
}

impl<X: Exchange + 'static> Job<X> {
    /// Whether one process trains on the combined batches of all ranks.
    fn simulated(&self) -> bool {
        self.args.simulate_ranks.is_some()
    }

    /// Seed this rank's random stream, generate the data, build the model
    /// and give it rank 0's weights, so that every rank starts alike.
    fn identical_model<B: AutodiffBackend>(
        &self,
        device: &B::Device,
    ) -> Result<(Classifier<B>, RLoraConfig, Benchmark)> {
        // Each rank its own random stream (dropout); the weights come from rank 0.
        B::seed(
            device,
            self.args.seed.wrapping_add(self.exchange.rank() as u64),
        );
        let bench = Benchmark::generate(self.args.data_seed, self.args.data_scale)?;
        let (_, config) = method_config(self.method, &self.settings);
        let classes: Vec<usize> = bench.tasks.iter().map(|t| t.num_classes).collect();
        let model = MultiTaskClassifier::new(
            SyntheticBody::<B>::new(&bench.base, &config, device)?,
            TaskHeads::new(D_HIDDEN, &classes, device),
        )
        .with_balance_coef(self.settings.balance);
        // Identical starts: every rank takes rank 0's weights, frozen ones included.
        let model = broadcast_from_root::<B, _, _>(model, self.exchange.as_ref())
            .map_err(anyhow::Error::msg)?;
        Ok((model, config, bench))
    }

    /// Split the data, shard the training set over the ranks and build this
    /// rank's loaders (of every shard, step by step, when simulated).
    fn rank_data<B: AutodiffBackend>(&self, bench: &Benchmark) -> Result<(Loaders<B>, Plan)> {
        let (args, data_ranks) = (&self.args, self.data_ranks);
        // 10% of each task's training examples validate, as in `multitask`.
        let Splits { train, valid, test } =
            Splits::of(&bench.tasks, self.settings.sampling, args.seed)?;
        let train = Arc::new(train);
        let task_names = train.task_names();
        let shards = (0..data_ranks)
            .map(|r| shard_indices(train.len(), data_ranks, r, args.seed))
            .collect::<Result<Vec<_>, _>>()?;
        let per_rank = shards[0].len();
        let steps = per_rank.div_ceil(args.batch_size) * args.epochs;
        let batcher = MultiTaskBatcher::new(DenseCollate);
        let train_loader: Arc<dyn DataLoader<B, Batch<B>>> = if self.simulated() {
            loader::<B, Vec<TaskItem<Vec<f32>>>, _>(
                GroupBatcher(batcher.clone()),
                GroupedDataset::new(train, shards),
                args.batch_size,
                Some(args.seed),
            )
        } else {
            let shard = shards
                .into_iter()
                .nth(self.exchange.rank())
                .context("no shard for this rank")?;
            loader::<B, TaskItem<Vec<f32>>, _>(
                batcher.clone(),
                ShardDataset::new(train, shard),
                args.batch_size,
                Some(args.seed),
            )
        };
        let valid_loader = loader::<B::InnerBackend, TaskItem<Vec<f32>>, _>(
            batcher.clone(),
            valid,
            args.batch_size,
            None,
        );
        let loaders = Loaders {
            train: train_loader,
            valid: valid_loader,
        };
        let plan = Plan {
            test,
            task_names,
            per_rank,
            steps,
        };
        Ok((loaders, plan))
    }

    /// Rank 0's line about the run: ranks, examples and steps per rank,
    /// parameters and the bytes a step sends.
    fn print_plan(&self, plan: &Plan, sizes: &Sizes) {
        println!(
            "{} rank(s){}, {} examples and {} steps of batch {} per rank; \
             {} trainable of {} parameters; {} bytes per step (full fine-tuning of the same layers: {})",
            self.data_ranks,
            if self.simulated() { " simulated in one process" } else { "" },
            plan.per_rank,
            plan.steps,
            self.args.batch_size,
            sizes.count.trainable,
            sizes.count.total,
            sizes.bytes_per_step,
            sizes.full_bytes,
        );
    }

    /// Train `model` for `steps` steps through burn-train's Learner, with the
    /// model's guard attached and the metrics, logs and checkpoints (rank 0
    /// only for validation and checkpoints) under `artifact_dir`.
    ///
    /// # Errors
    ///
    /// When the guard stopped the run (a diverged loss, a failed log write).
    fn train<B: AutodiffBackend>(
        &self,
        model: Classifier<B>,
        loaders: Loaders<B>,
        steps: usize,
        device: &B::Device,
        artifact_dir: &Path,
    ) -> Result<Trained<B>> {
        let rank = self.exchange.rank();
        let lr = WarmupCosineLr::new(self.args.lr, 0.0, (steps * 3).div_ceil(100), steps);
        let (renderer, history) = RecordingRenderer::new(console(rank));
        // The guard's interrupter and checked metric logs: a failed write
        // stops the run and `check` below reports it.
        let guard = model.guard().clone();
        let training = SupervisedTraining::new(artifact_dir, loaders.train, loaders.valid);
        let mut training = guard
            .attach(training, artifact_dir, 2)
            .metric_train_numeric(TaskLossMetric::overall())
            .metric_train_numeric(TaskAccuracyMetric::overall())
            .num_epochs(self.args.epochs)
            .renderer(renderer);
        if rank == 0 {
            training = training
                .metric_valid_numeric(TaskLossMetric::overall())
                .metric_valid_numeric(TaskAccuracyMetric::overall())
                .with_file_checkpointer(AtomicMpkRecorder::<FullPrecisionSettings>::new());
        }
        let losses = LossLog::default();
        training = training.with_training_strategy(self.strategy(device, &losses));
        let start = Instant::now();
        let result = training.launch(Learner::new(model, AdamConfig::new().init(), lr));
        drop(result.renderer);
        if let Err(stopped) = guard.check() {
            bail!("rank {rank}: {stopped}; no adapter was saved and no report written");
        }
        Ok(Trained {
            model: result.model,
            losses,
            history,
            train_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// One device when simulated; else [`DataParallel`] over the exchange,
    /// recording the global loss of every step into `losses` (and stopping
    /// `--exit-rank` with status 3 after `--exit-after-steps` steps).
    fn strategy<B: AutodiffBackend>(
        &self,
        device: &B::Device,
        losses: &LossLog,
    ) -> TrainingStrategy<Components<B>> {
        if self.simulated() {
            return ExecutionStrategy::SingleDevice(device.clone()).into();
        }
        let mut dp =
            DataParallel::<B, X>::new(device.clone(), self.exchange.clone(), losses.clone());
        if let Some(k) = self.args.exit_after_steps {
            let stop = self.args.exit_rank;
            dp = dp.with_step_hook(move |r, done| {
                if r == stop && done == k {
                    eprintln!("rank {r}: exiting after {done} steps (--exit-after-steps)");
                    std::process::exit(3);
                }
            });
        }
        TrainingStrategy::Custom(Arc::new(dp))
    }

    /// Rank 0's end of the run: print and keep the test accuracy of every
    /// task, save the trained adapter to `<out>/adapter` and write the report.
    fn finish<B: AutodiffBackend>(
        &self,
        trained: Trained<B>,
        config: RLoraConfig,
        plan: Plan,
        sizes: &Sizes,
    ) -> Result<()> {
        let (args, data_ranks) = (&self.args, self.data_ranks);
        let loss_per_step = if self.simulated() {
            let history = trained
                .history
                .lock()
                .map(|h| h.clone())
                .unwrap_or_default();
            history
                .train_batches
                .get("Loss")
                .cloned()
                .unwrap_or_default()
        } else {
            trained.losses.values()
        };
        let model = trained.model;
        let task_names = plan.task_names;
        let task_accuracy = test_accuracy(&model, DenseCollate, plan.test, 256, task_names.len());
        for (name, acc) in task_names.iter().zip(&task_accuracy) {
            println!("test accuracy {name}: {acc:.2}%");
        }
        burn_rlora::checkpoint::save_adapter(
            &model.body,
            args.out.join("adapter"),
            &burn_rlora::checkpoint::SaveOptions::new(config),
        )
        .context("saving the trained adapter")?;
        let report = Report {
            method: self.method.name().to_string(),
            backend: self.backend.to_string(),
            ranks: data_ranks,
            simulated: self.simulated(),
            batch_per_rank: args.batch_size,
            global_batch: args.batch_size * data_ranks,
            steps: plan.steps,
            examples_per_rank: plan.per_rank,
            trainable_params: sizes.count.trainable,
            total_params: sizes.count.total,
            bytes_per_step: sizes.bytes_per_step,
            full_finetune_bytes_per_step: sizes.full_bytes,
            loss_per_step,
            task_names,
            task_accuracy,
            train_seconds: trained.train_seconds,
        };
        write_report(&args.out, &report)
    }
}

/// Where burn-train writes this rank's logs and checkpoints: `out` for rank 0,
/// a directory of its own under the temporary directory for the others.
fn artifact_dir(out: &Path, rank: usize) -> PathBuf {
    if rank == 0 {
        out.to_path_buf()
    } else {
        std::env::temp_dir().join(format!("burn-rlora-rank{rank}-{}", std::process::id()))
    }
}

/// The metrics renderer: rank 0 owns the console, the other ranks print nothing.
fn console(rank: usize) -> Box<dyn MetricsRenderer> {
    if rank == 0 {
        Box::new(PlainRenderer::new())
    } else {
        Box::new(SilentRenderer)
    }
}

/// Write trainable weights to `<out>/<stem>.f32` (little-endian `f32`,
/// module order).
fn dump_params(out: &Path, stem: &str, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::create_dir_all(out)?;
    let path = out.join(format!("{stem}.f32"));
    burn_rlora::write_atomically(&path, &bytes)?;
    Ok(())
}

fn write_report(out: &Path, report: &Report) -> Result<()> {
    let path = out.join("report.json");
    burn_rlora::write_atomically(&path, serde_json::to_string_pretty(report)?.as_bytes())?;
    Ok(())
}
