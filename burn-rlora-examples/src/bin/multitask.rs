//! The main example: LoRA, HydraLoRA, both ablations, R-LoRA and R-LoRA
//! without router, trained from the same seeds and budget on embedded
//! multi-task data (no download), through burn-train's `Learner`.
//!
//! ```text
//! cargo run --release -p burn-rlora-examples --bin multitask
//! cargo run --release -p burn-rlora-examples --bin multitask -- --methods lora,rlora --seeds 5
//! ```
//!
//! The data generator is described in `burn_rlora_examples::synthetic`. The
//! report (Markdown and JSON table, SVG plots) goes to `--out` (`report/`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn_rlora::Method;
use burn_rlora_examples::backend::{run_on, BackendJob, BackendName};
use burn_rlora_examples::compare::{
    matched_lora_rank, parse_sampling, run_one, RunResult, TrainSettings,
};
use burn_rlora_examples::report;
use burn_rlora_examples::synthetic::{Benchmark, D_HIDDEN};
use clap::Parser;

/// Compare multi-head LoRA methods on embedded multi-task data.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Methods to train, comma-separated: lora, hydralora, hydralora-mt, hydralora-init, rlora, rlora-norouter.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lora,hydralora,hydralora-mt,hydralora-init,rlora,rlora-norouter"
    )]
    methods: Vec<String>,
    /// Training epochs per run.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// First training seed; runs use seed, seed+1, ...
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of seeds per method (mean ± std is reported).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Seed of the data generator (the "pretrained" base and the tasks).
    #[arg(long, default_value_t = 2025)]
    data_seed: u64,
    /// Multiply the training-set sizes (e.g. 0.25 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    data_scale: f64,
    /// Output directory for the report.
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Backend: flex, ndarray, wgpu or cuda (each only when compiled in with its feature).
    #[arg(long)]
    backend: Option<String>,
    /// Devices for data-parallel training (Learner multi-device strategy). On a
    /// CPU backend this runs that many workers on copies of the one CPU device.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Rank of each head.
    #[arg(long, default_value_t = 4)]
    rank: usize,
    /// Heads per adapted layer.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Scaling numerator (alpha / sqrt(r) for every method).
    #[arg(long, default_value_t = 8.0)]
    alpha: f64,
    /// Adapter dropout.
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Router load-balance loss coefficient (0 = off).
    #[arg(long, default_value_t = 0.0)]
    balance: f64,
    /// Task mixing: proportional, uniform, or a temperature such as 2.
    #[arg(long, default_value = "2")]
    sampling: String,
    /// Print one line per epoch instead of the terminal dashboard.
    #[arg(long)]
    plain: bool,
}

struct Compare {
    bench: Benchmark,
    methods: Vec<Method>,
    seeds: Vec<u64>,
    settings: TrainSettings,
    out: PathBuf,
}

impl BackendJob for Compare {
    type Output = Result<Vec<RunResult>>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output {
        let mut runs = Vec::new();
        for &method in &self.methods {
            for &seed in &self.seeds {
                println!("== {method}, seed {seed}");
                let dir = self.out.join("runs").join(format!("{method}-seed{seed}"));
                let run = run_one::<B>(
                    &self.bench,
                    method,
                    seed,
                    &self.settings,
                    dir,
                    devices.clone(),
                )
                .with_context(|| format!("training {method} with seed {seed}"))?;
                println!("{}", run.summary_line(self.settings.epochs));
                runs.push(run);
            }
        }
        Ok(runs)
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let methods = args
        .methods
        .iter()
        .map(|m| m.parse::<Method>())
        .collect::<Result<Vec<_>, _>>()?;
    if methods.is_empty() {
        bail!("--methods is empty");
    }
    let backend = BackendName::resolve(args.backend.as_deref())?;
    if args.epochs == 0 || args.seeds == 0 || args.batch_size == 0 || args.devices == 0 {
        bail!("--epochs, --seeds, --batch-size and --devices must be at least 1");
    }
    if !(args.data_scale.is_finite() && args.data_scale > 0.0) {
        bail!(
            "--data-scale must be a positive number, got {}",
            args.data_scale
        );
    }
    let sampling = parse_sampling(&args.sampling)?;
    report::prepare_dir(&args.out)?;

    let settings = TrainSettings {
        rank: args.rank,
        heads: args.heads,
        alpha: args.alpha,
        dropout: args.dropout,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        balance: args.balance,
        sampling,
        devices: args.devices,
        plain: args.plain,
    };
    // Fail on a bad adapter setting before any training.
    for &m in &methods {
        burn_rlora_examples::compare::method_config(m, &settings)
            .1
            .validate(D_HIDDEN, D_HIDDEN)?;
    }
    let bench = Benchmark::generate(args.data_seed, args.data_scale);
    let task_names: Vec<String> = bench.tasks.iter().map(|t| t.name.clone()).collect();
    let lora_rank = matched_lora_rank(args.rank, args.heads, D_HIDDEN, D_HIDDEN);
    let header = format!(
        "# Multi-task comparison on embedded data\n\n\
         backend {backend}, {} device(s); {} seeds from {}; {} epochs; batch {}; lr {} (3% warm-up, cosine); \
         rank {} x {} heads, alpha {} (alpha/sqrt(r) for every method); dropout {}; sampling {:?}; \
         train sizes {:?}, {} test examples per task.\n\n\
         LoRA's rank is {lora_rank}, chosen to match the adapter parameters of {} heads of rank {} plus a \
         router, as the paper compares methods at equal parameter budgets. Accuracies are test accuracy in \
         percent, mean ± sample std over seeds.",
        args.devices,
        args.seeds,
        args.seed,
        args.epochs,
        args.batch_size,
        args.lr,
        args.rank,
        args.heads,
        args.alpha,
        args.dropout,
        sampling,
        bench.tasks.iter().map(|t| t.train.len()).collect::<Vec<_>>(),
        burn_rlora_examples::synthetic::TEST_PER_TASK,
        args.heads,
        args.rank,
    );
    println!("{header}\n");

    let start = Instant::now();
    let job = Compare {
        bench,
        methods,
        seeds: (args.seed..args.seed + args.seeds).collect(),
        settings,
        out: args.out.clone(),
    };
    let runs = run_on(backend, args.devices, job)??;
    report::write_and_print(&args.out, &runs, &task_names, &header, start)
}
