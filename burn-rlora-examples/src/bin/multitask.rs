//! The main example: LoRA, HydraLoRA, both ablations, R-LoRA and R-LoRA
//! without router, trained from the same seeds and budget on embedded
//! multi-task data (no download), through burn-train's `Learner`.
//!
//! ```text
//! cargo run -p burn-rlora-examples --bin multitask
//! cargo run -p burn-rlora-examples --bin multitask -- --methods lora,rlora --seeds 5
//! cargo run -p burn-rlora-examples --bin multitask -- --setting conflict-cued --seeds 20
//! ```
//!
//! The data generator and its settings (`--setting`: clusters, conflict,
//! conflict-cued, agree) are described in `burn_rlora_examples::synthetic`. The
//! report (Markdown and JSON table, SVG plots) goes to `--out` (`report/`).

use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use burn_rlora::method::Method;
use burn_rlora_examples::backend::BackendName;
use burn_rlora_examples::harness::compare::{
    fingerprint, matched_lora_rank, parse_positive, run_one, seed_range, Comparison, RunResult,
    RunSpec, RunTrainer,
};
use burn_rlora_examples::harness::report;
use burn_rlora_examples::options::{exit_on_error, parse_methods, CompareArgs, CompareDefaults};
use burn_rlora_examples::synthetic::{Benchmark, Setting, D_HIDDEN, MAX_DATA_SCALE};
use clap::Parser;

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
    #[command(flatten)]
    common: CompareArgs,
}

fn parse_data_scale(s: &str) -> Result<f64, String> {
    let v = parse_positive(s)?;
    if v <= MAX_DATA_SCALE {
        Ok(v)
    } else {
        Err(format!("must be at most {MAX_DATA_SCALE}"))
    }
}

/// The built-in data's runs.
struct BuiltIn {
    bench: Benchmark,
}

impl RunTrainer for BuiltIn {
    type Method = Method;

    fn train<B: AutodiffBackend>(&self, method: Method, run: RunSpec<'_, B>) -> Result<RunResult> {
        run_one::<B>(&self.bench, method, run)
    }
}

fn main() {
    exit_on_error(run)
}

/// This binary's defaults of the shared options.
const DEFAULTS: CompareDefaults = CompareDefaults {
    epochs: "8",
    seeds: "3",
    out: "report",
    rank: "4",
    max_rank: D_HIDDEN as u64,
    alpha: "8",
    lr: "3e-3",
    batch_size: "32",
    trace_every: "50",
};

fn run() -> Result<()> {
    let args: Args = DEFAULTS.parse();
    let common = &args.common;
    let methods: Vec<Method> = parse_methods(&args.methods)?;
    let backend = BackendName::resolve(common.backend.as_deref())?;
    let seeds =
        seed_range(common.seed, common.seeds).unwrap_or_else(|e| DEFAULTS.usage_error::<Args>(e));
    let settings = common.settings();
    // A bad adapter setting is a bad argument: refused before any training.
    for &m in &methods {
        if let Err(e) = burn_rlora_examples::harness::compare::method_config(m, &settings)
            .1
            .validate(D_HIDDEN, D_HIDDEN)
        {
            DEFAULTS.usage_error::<Args>(format!("--rank/--heads/--alpha/--dropout: {e}"));
        }
    }
    report::prepare_dir(&common.out)?;
    let bench = Benchmark::generate_setting(args.setting, args.data_seed, args.data_scale)?;
    let task_names: Vec<String> = bench.tasks.iter().map(|t| t.name.clone()).collect();
    let lora_rank = matched_lora_rank(settings.rank, settings.heads, D_HIDDEN, D_HIDDEN);
    let header = format!(
        "# Multi-task comparison on embedded data: setting `{}`\n\n\
         data seed {}; {}; train sizes {:?}, {} test examples per task.\n\n\
         LoRA's rank is {lora_rank}, chosen to match the adapter parameters of {} heads of rank {} plus a \
         router, as the paper compares methods at equal parameter budgets. Accuracies are test accuracy in \
         percent, mean ± sample std over seeds. Seeds are paired: every method trains on the same data \
         with the same seeds (initial draws, batch order, task mix).",
        args.setting,
        args.data_seed,
        common.training_line(backend),
        bench.tasks.iter().map(|t| t.train.len()).collect::<Vec<_>>(),
        burn_rlora_examples::synthetic::TEST_PER_TASK,
        common.heads,
        common.rank,
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
    let job = Comparison {
        trainer: BuiltIn { bench },
        methods,
        seeds,
        settings,
        fingerprint,
        out: common.out.clone(),
        task_names,
        header,
    };
    job.run_and_report(backend, common.devices as usize, start)
}
