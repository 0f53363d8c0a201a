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

mod args;
mod data;
mod job;
mod sizes;
mod training;

use std::rc::Rc;

use anyhow::{bail, Result};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::Adam;
use burn::train::LearningComponentsMarker;
use burn_rlora::distributed::{Exchange, MpiExchange, SingleProcess};
use burn_rlora::method::Method;
use burn_rlora::multitask::{MultiTaskBatch, MultiTaskClassifier, WarmupCosineLr};
use burn_rlora_examples::backend::{run_on, BackendName};
use burn_rlora_examples::harness::compare::{method_config, parse_sampling, TrainSettings};
use burn_rlora_examples::synthetic::{SyntheticBody, D_HIDDEN};
use clap::Parser;

use args::Args;

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
        steps: Default::default(),
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
