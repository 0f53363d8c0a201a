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
//! of `burn_rlora_examples::distributed`. Rank 0 prints the metrics, saves
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
use burn::optim::AdamConfig;
use burn::record::FullPrecisionSettings;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::renderer::MetricsRenderer;
use burn::train::{ExecutionStrategy, Learner, SupervisedTraining, TrainingStrategy};
use burn_rlora::method::Method;
use burn_rlora::multitask::{
    AtomicMpkRecorder, DenseCollate, MultiTaskBatch, MultiTaskBatcher, MultiTaskClassifier,
    PlainRenderer, RecordingRenderer, TaskAccuracyMetric, TaskHeads, TaskItem, TaskLossMetric,
    WarmupCosineLr,
};
use burn_rlora::ParamCount;
use burn_rlora_examples::backend::{run_on, BackendJob, BackendName};
use burn_rlora_examples::compare::{
    method_config, parse_sampling, test_accuracy, Splits, TrainSettings,
};
use burn_rlora_examples::distributed::flat::{
    broadcast_from_root, masked_values, trainable_mask, GradLayout,
};
use burn_rlora_examples::distributed::shard::{
    shard_indices, GroupBatcher, GroupedDataset, ShardDataset,
};
use burn_rlora_examples::distributed::{
    DataParallel, Exchange, LossLog, MpiExchange, SilentRenderer, SingleProcess,
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
    /// Every rank writes its final trainable weights to `<out>/params-rank<r>.f32`
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

fn report_error(result: Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

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
    let settings = TrainSettings {
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
    };
    method_config(method, &settings)
        .1
        .validate(D_HIDDEN, D_HIDDEN)?;
    if exchange.rank() == 0 {
        burn_rlora_examples::report::prepare_dir(&args.out)?;
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

struct Job<X> {
    args: Args,
    method: Method,
    backend: BackendName,
    settings: TrainSettings,
    exchange: Rc<X>,
    data_ranks: usize,
}

type Batch<B> = MultiTaskBatch<B, burn::tensor::Tensor<B, 2>>;

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

impl<X: Exchange + 'static> BackendJob for Job<X> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<()> {
        let Job {
            args,
            method,
            backend,
            settings,
            exchange,
            data_ranks,
        } = self;
        let (rank, simulated) = (exchange.rank(), args.simulate_ranks.is_some());
        let device = devices[0].clone();
        // Each rank its own random stream (dropout); the weights come from rank 0.
        B::seed(&device, args.seed.wrapping_add(rank as u64));
        let bench = Benchmark::generate(args.data_seed, args.data_scale)?;
        let (_, config) = method_config(method, &settings);
        let classes: Vec<usize> = bench.tasks.iter().map(|t| t.num_classes).collect();
        let model = MultiTaskClassifier::new(
            SyntheticBody::<B>::new(&bench.base, &config, &device)?,
            TaskHeads::new(D_HIDDEN, &classes, &device),
        )
        .with_balance_coef(settings.balance);

        // Identical starts: every rank takes rank 0's weights, frozen ones included.
        let model =
            broadcast_from_root::<B, _, _>(model, exchange.as_ref()).map_err(anyhow::Error::msg)?;

        let layout = GradLayout::of::<B, _>(&model);
        let mask = trainable_mask::<B, _>(&model);
        let count = ParamCount::of(&model);
        let adapter: usize = model
            .body
            .adapted()
            .iter()
            .map(|(_, l)| l.num_adapter_params())
            .sum();
        // Full fine-tuning of the same layers: the two base layers' weights
        // and biases instead of the adapters, the same task heads; one flag
        // per tensor and the two figures, as the adapter's buffer has.
        let heads = count.trainable - adapter;
        let base = D_IN * D_HIDDEN + D_HIDDEN + D_HIDDEN * D_HIDDEN + D_HIDDEN;
        let full_bytes = (base + heads + 4 + 2 * classes.len() + 2) * std::mem::size_of::<f32>();

        // 10% of each task's training examples validate, as in `multitask`.
        let Splits { train, valid, test } = Splits::of(&bench.tasks, settings.sampling, args.seed)?;
        let train = Arc::new(train);
        let task_names = train.task_names();
        let shards = (0..data_ranks)
            .map(|r| shard_indices(train.len(), data_ranks, r, args.seed))
            .collect::<Result<Vec<_>, _>>()?;
        let per_rank = shards[0].len();
        let steps = per_rank.div_ceil(args.batch_size) * args.epochs;
        let lr = WarmupCosineLr::new(args.lr, 0.0, (steps * 3).div_ceil(100), steps);
        let batcher = MultiTaskBatcher::new(DenseCollate);
        let train_loader: Arc<dyn DataLoader<B, Batch<B>>> = if simulated {
            loader::<B, Vec<TaskItem<Vec<f32>>>, _>(
                GroupBatcher(batcher.clone()),
                GroupedDataset::new(train, shards),
                args.batch_size,
                Some(args.seed),
            )
        } else {
            let shard = shards
                .into_iter()
                .nth(rank)
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

        // Rank 0 owns the console, the checkpoints and the report; the other
        // ranks keep burn-train's logs in a directory of their own.
        let artifact_dir = if rank == 0 {
            args.out.clone()
        } else {
            std::env::temp_dir().join(format!("burn-rlora-rank{rank}-{}", std::process::id()))
        };
        let inner: Box<dyn MetricsRenderer> = if rank == 0 {
            Box::new(PlainRenderer::new())
        } else {
            Box::new(SilentRenderer)
        };
        let (renderer, history) = RecordingRenderer::new(inner);
        // The guard's interrupter and checked metric logs: a failed write
        // stops the run and `check` below reports it.
        let guard = model.guard().clone();
        let training = SupervisedTraining::new(&artifact_dir, train_loader, valid_loader);
        let mut training = guard
            .attach(training, &artifact_dir, 2)
            .metric_train_numeric(TaskLossMetric::overall())
            .metric_train_numeric(TaskAccuracyMetric::overall())
            .num_epochs(args.epochs)
            .renderer(renderer);
        if rank == 0 {
            training = training
                .metric_valid_numeric(TaskLossMetric::overall())
                .metric_valid_numeric(TaskAccuracyMetric::overall())
                .with_file_checkpointer(AtomicMpkRecorder::<FullPrecisionSettings>::new());
        }
        let losses = LossLog::default();
        let strategy: TrainingStrategy<_> = if simulated {
            ExecutionStrategy::SingleDevice(device.clone()).into()
        } else {
            let mut dp =
                DataParallel::<B, X>::new(device.clone(), exchange.clone(), losses.clone());
            if let Some(k) = args.exit_after_steps {
                let stop = args.exit_rank;
                dp = dp.with_step_hook(move |r, done| {
                    if r == stop && done == k {
                        eprintln!("rank {r}: exiting after {done} steps (--exit-after-steps)");
                        std::process::exit(3);
                    }
                });
            }
            TrainingStrategy::Custom(Arc::new(dp))
        };
        training = training.with_training_strategy(strategy);
        if rank == 0 {
            println!(
                "{} rank(s){}, {} examples and {} steps of batch {} per rank; \
                 {} trainable of {} parameters; {} bytes per step (full fine-tuning of the same layers: {})",
                data_ranks,
                if simulated { " simulated in one process" } else { "" },
                per_rank,
                steps,
                args.batch_size,
                count.trainable,
                count.total,
                layout.bytes_per_step(),
                full_bytes,
            );
        }
        let start = Instant::now();
        let result = training.launch(Learner::new(model, AdamConfig::new().init(), lr));
        drop(result.renderer);
        if let Err(stopped) = guard.check() {
            bail!("rank {rank}: {stopped}; no adapter was saved and no report written");
        }
        let model = result.model;
        let train_seconds = start.elapsed().as_secs_f64();

        if args.dump_params {
            let values =
                masked_values::<B::InnerBackend, _>(&model, &mask).map_err(anyhow::Error::msg)?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::create_dir_all(&args.out)?;
            let path = args.out.join(format!("params-rank{rank}.f32"));
            burn_rlora::write_atomically(&path, &bytes)?;
        }
        if rank != 0 {
            std::fs::remove_dir_all(&artifact_dir).ok();
            return Ok(());
        }

        let loss_per_step = if simulated {
            let history = history.lock().map(|h| h.clone()).unwrap_or_default();
            history
                .train_batches
                .get("Loss")
                .cloned()
                .unwrap_or_default()
        } else {
            losses.values()
        };
        let task_accuracy = test_accuracy(&model, DenseCollate, test, 256, task_names.len());
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
            method: method.name().to_string(),
            backend: backend.to_string(),
            ranks: data_ranks,
            simulated,
            batch_per_rank: args.batch_size,
            global_batch: args.batch_size * data_ranks,
            steps,
            examples_per_rank: per_rank,
            trainable_params: count.trainable,
            total_params: count.total,
            bytes_per_step: layout.bytes_per_step(),
            full_finetune_bytes_per_step: full_bytes,
            loss_per_step,
            task_names,
            task_accuracy,
            train_seconds,
        };
        write_report(&args.out, &report)
    }
}

fn write_report(out: &Path, report: &Report) -> Result<()> {
    let path = out.join("report.json");
    burn_rlora::write_atomically(&path, serde_json::to_string_pretty(report)?.as_bytes())?;
    Ok(())
}
