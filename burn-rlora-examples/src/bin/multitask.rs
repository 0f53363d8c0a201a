//! The main example: LoRA, HydraLoRA, both ablations, R-LoRA and R-LoRA
//! without router, trained from the same seeds and budget on embedded
//! multi-task data (no download), through burn-train's `Learner`.
//!
//! ```text
//! cargo run --release -p burn-rlora-examples --bin multitask
//! cargo run --release -p burn-rlora-examples --bin multitask -- --methods lora,rlora --seeds 5
//! cargo run --release -p burn-rlora-examples --bin multitask -- --setting conflict-cued --seeds 20
//! ```
//!
//! The data generator and its settings (`--setting`: clusters, conflict,
//! conflict-cued, agree) are described in `burn_rlora_examples::synthetic`. The
//! report (Markdown and JSON table, SVG plots) goes to `--out` (`report/`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;
use burn_rlora::multitask::SamplingStrategy;
use burn_rlora::Method;
use burn_rlora_examples::backend::{run_on, BackendJob, BackendName};
use burn_rlora_examples::compare::{
    fingerprint, matched_lora_rank, parse_dropout, parse_non_negative, parse_positive,
    parse_sampling, run_comparison, run_one, seed_range, RunResult, TrainSettings,
};
use burn_rlora_examples::report;
use burn_rlora_examples::synthetic::{Benchmark, Setting, D_HIDDEN, MAX_DATA_SCALE};
use clap::{CommandFactory, Parser};

/// Compare multi-head LoRA methods on embedded multi-task data.
#[derive(Parser, Debug)]
#[command(name = "multitask", version, about)]
struct Args {
    /// Methods to train, comma-separated: lora, hydralora, hydralora-mt, hydralora-init, rlora, rlora-norouter.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lora,hydralora,hydralora-mt,hydralora-init,rlora,rlora-norouter"
    )]
    methods: Vec<String>,
    /// Training epochs per run (1 to 10000).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    epochs: u64,
    /// First training seed; runs use seed, seed+1, ...
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of seeds per method (mean ± std is reported; 1 to 1000).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    seeds: u64,
    /// The data: clusters (tasks in different input regions), conflict (one
    /// input distribution, different changes), conflict-cued (conflict plus a
    /// task cue in the input) or agree (the control: one change for all tasks).
    #[arg(long, default_value = "clusters")]
    setting: Setting,
    /// Seed of the data generator (the "pretrained" base and the tasks).
    #[arg(long, default_value_t = 2025)]
    data_seed: u64,
    /// Multiply the training-set sizes (e.g. 0.25 for a quick run; above 0, at most 100).
    #[arg(long, default_value_t = 1.0, value_parser = parse_data_scale)]
    data_scale: f64,
    /// Output directory for the report.
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Backend: flex, ndarray, wgpu or cuda (each only when compiled in with its feature).
    #[arg(long)]
    backend: Option<String>,
    /// Devices for data-parallel training (Learner multi-device strategy). On a
    /// CPU backend this runs that many workers on copies of the one CPU device.
    /// (1 to 64.)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    devices: u64,
    /// Rank of each head (1 to 64, the layer width).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=D_HIDDEN as u64))]
    rank: u64,
    /// Heads per adapted layer (1 to 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    heads: u64,
    /// Scaling numerator (alpha / sqrt(r) for every method; above 0).
    #[arg(long, default_value_t = 8.0, value_parser = parse_positive)]
    alpha: f64,
    /// Adapter dropout, in [0, 1).
    #[arg(long, default_value_t = 0.1, value_parser = parse_dropout)]
    dropout: f64,
    /// Peak learning rate (above 0).
    #[arg(long, default_value_t = 3e-3, value_parser = parse_positive)]
    lr: f64,
    /// Batch size (1 to 65536).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    batch_size: u64,
    /// Router load-balance loss coefficient (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = parse_non_negative)]
    balance: f64,
    /// Task mixing: proportional, uniform, or a temperature from 0.1 to 100 such as 2.
    #[arg(long, default_value = "2", value_parser = parse_sampling)]
    sampling: SamplingStrategy,
    /// Record both layers' head similarity every this many training steps
    /// (0 = off; one device only), for `head_similarity_trace.svg`.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    trace_every: u64,
    /// Print one line per epoch instead of the terminal dashboard.
    #[arg(long)]
    plain: bool,
    /// Continue the comparison in --out: finished runs are read back, an
    /// unfinished run resumes after its last complete epoch (same settings only).
    #[arg(long)]
    resume: bool,
}

fn parse_data_scale(s: &str) -> Result<f64, String> {
    let v = parse_positive(s)?;
    if v <= MAX_DATA_SCALE {
        Ok(v)
    } else {
        Err(format!("must be at most {MAX_DATA_SCALE}"))
    }
}

struct Compare {
    bench: Benchmark,
    methods: Vec<Method>,
    seeds: Vec<u64>,
    settings: TrainSettings,
    fingerprint: serde_json::Value,
    out: PathBuf,
    task_names: Vec<String>,
    header: String,
}

impl BackendJob for Compare {
    type Output = Result<Vec<RunResult>>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output {
        run_comparison(
            &self.out,
            &self.methods,
            &self.seeds,
            &self.settings,
            &self.fingerprint,
            |method, seed, dir| {
                run_one::<B>(
                    &self.bench,
                    method,
                    seed,
                    &self.settings,
                    dir,
                    devices.clone(),
                )
            },
            |runs| report::write(&self.out, runs, &self.task_names, &self.header).map(|_| ()),
        )
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// A bad argument: clap's usage error, exit status 2.
fn usage_error(message: impl std::fmt::Display) -> ! {
    Args::command()
        .error(clap::error::ErrorKind::ValueValidation, message)
        .exit()
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
    let seeds = seed_range(args.seed, args.seeds).unwrap_or_else(|e| usage_error(e));
    let settings = TrainSettings {
        rank: args.rank as usize,
        heads: args.heads as usize,
        alpha: args.alpha,
        dropout: args.dropout,
        epochs: args.epochs as usize,
        batch_size: args.batch_size as usize,
        lr: args.lr,
        balance: args.balance,
        sampling: args.sampling,
        devices: args.devices as usize,
        trace_every: args.trace_every as usize,
        plain: args.plain,
        resume: args.resume,
    };
    // A bad adapter setting is a bad argument: refused before any training.
    for &m in &methods {
        if let Err(e) = burn_rlora_examples::compare::method_config(m, &settings)
            .1
            .validate(D_HIDDEN, D_HIDDEN)
        {
            usage_error(format!("--rank/--heads/--alpha/--dropout: {e}"));
        }
    }
    report::prepare_dir(&args.out)?;
    let bench = Benchmark::generate_setting(args.setting, args.data_seed, args.data_scale)?;
    let task_names: Vec<String> = bench.tasks.iter().map(|t| t.name.clone()).collect();
    let lora_rank = matched_lora_rank(settings.rank, settings.heads, D_HIDDEN, D_HIDDEN);
    let header = format!(
        "# Multi-task comparison on embedded data: setting `{}`\n\n\
         data seed {}; backend {backend}, {} device(s); {} seeds from {}; {} epochs; batch {}; lr {} (3% warm-up, cosine); \
         rank {} x {} heads, alpha {} (alpha/sqrt(r) for every method); dropout {}; sampling {:?}; \
         train sizes {:?}, {} test examples per task.\n\n\
         LoRA's rank is {lora_rank}, chosen to match the adapter parameters of {} heads of rank {} plus a \
         router, as the paper compares methods at equal parameter budgets. Accuracies are test accuracy in \
         percent, mean ± sample std over seeds. Seeds are paired: every method trains on the same data \
         with the same seeds (initial draws, batch order, task mix).",
        args.setting,
        args.data_seed,
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
        args.sampling,
        bench.tasks.iter().map(|t| t.train.len()).collect::<Vec<_>>(),
        burn_rlora_examples::synthetic::TEST_PER_TASK,
        args.heads,
        args.rank,
    );
    println!("{header}\n");

    let start = Instant::now();
    let fingerprint = fingerprint(
        &settings,
        serde_json::json!({
            "backend": backend.to_string(),
            "data_seed": args.data_seed,
            "setting": args.setting,
            "data_scale": args.data_scale,
        }),
    );
    let job = Compare {
        bench,
        methods,
        seeds,
        settings,
        fingerprint,
        out: args.out.clone(),
        task_names: task_names.clone(),
        header: header.clone(),
    };
    let runs = run_on(backend, args.devices as usize, job)??;
    report::write_and_print(&args.out, &runs, &task_names, &header, start)
}
