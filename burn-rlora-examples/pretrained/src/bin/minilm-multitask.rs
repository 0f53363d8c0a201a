//! The real example: multi-task fine-tuning of the pretrained all-MiniLM-L6-v2
//! encoder on four text-classification tasks (BBC news topic, Rotten Tomatoes
//! sentiment, tweet sentiment, SpamAssassin spam), offline, through
//! burn-train's `Learner`. Compares a linear probe (frozen encoder, heads
//! only), LoRA, HydraLoRA, R-LoRA and the two ablations, from the same base,
//! splits, seeds and budget.
//!
//! ```text
//! bash scripts/fetch-data.sh
//! cargo run --release -p burn-rlora-pretrained --bin minilm-multitask
//! cargo run --release -p burn-rlora-pretrained --bin minilm-multitask -- \
//!     --methods probe,hydralora,rlora --seeds 3 --train-per-task 1000000 --max-len 128
//! ```
//!
//! The report (Markdown and JSON table, SVG plots) goes to `--out` (`report/minilm`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use burn_rlora_examples::backend::BackendName;
use burn_rlora_examples::harness::compare::{
    fingerprint, parse_fraction, seed_range, Comparison, RunResult, RunSpec, RunTrainer,
    TrainSettings,
};
use burn_rlora_examples::harness::report;
use burn_rlora_examples::options::{exit_on_error, parse_methods, CompareArgs, CompareDefaults};
use burn_rlora_pretrained::datasets::default_data_dir;
use burn_rlora_pretrained::minilm::{
    adapted_shapes, minilm_adapter, prepare_tasks, run_minilm, BertConfig, MiniLmMethod,
    MiniLmPaths, MiniLmSource, MiniLmTokenizer, PreparedTask, SplitSettings,
};
use clap::Parser;

/// Multi-task fine-tuning of pretrained MiniLM on four real text tasks.
#[derive(Parser, Debug)]
#[command(name = "minilm-multitask", version, about)]
struct Args {
    /// Methods, comma-separated: probe (frozen encoder, heads only), lora,
    /// hydralora, hydralora-mt, hydralora-init, rlora, rlora-norouter.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "probe,lora,hydralora,rlora"
    )]
    methods: Vec<String>,
    /// Data directory written by scripts/fetch-data.sh (default: $BURN_RLORA_DATA, else data/).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Training examples per task at most (stratified subsample; a large
    /// number uses the whole training split; at least 2). 10% of them validate.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(2..))]
    train_per_task: u64,
    /// Test examples per task at most (stratified subsample of the test split; at least 1).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    test_per_task: u64,
    /// Share of each task held out for testing (stratified), before subsampling; in (0, 1).
    #[arg(long, default_value_t = 0.2, value_parser = parse_fraction)]
    test_fraction: f64,
    /// Seed of the train/test splits and subsamples (fixed across methods and seeds).
    #[arg(long, default_value_t = 2025)]
    split_seed: u64,
    /// Longest token sequence, the CLS and SEP markers included (the model allows 512;
    /// 64 keeps a CPU run short, 128 is the tokenizer's usual setting; 3 to 512).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(3..=512))]
    max_len: u64,
    /// Compute GELU and the dropout masks with the encoder's host kernels
    /// (flex and ndarray only; elsewhere Burn's own ops run anyway). They
    /// take about 0.6x the training step's time on flex, and draw other
    /// dropout masks than Burn's own ops.
    #[arg(long)]
    host_kernels: bool,
    #[command(flatten)]
    common: CompareArgs,
}

/// This binary's defaults of the shared options.
const DEFAULTS: CompareDefaults = CompareDefaults {
    epochs: "1",
    seeds: "3",
    out: "report/minilm",
    rank: "4",
    max_rank: 384,
    alpha: "16",
    lr: "1e-3",
    batch_size: "16",
    trace_every: "25",
};

/// MiniLM's runs on the prepared tasks.
struct MiniLm {
    tasks: Vec<PreparedTask>,
    source: MiniLmSource,
}

impl RunTrainer for MiniLm {
    type Method = MiniLmMethod;

    fn train<B: AutodiffBackend>(
        &self,
        method: MiniLmMethod,
        run: RunSpec<'_, B>,
    ) -> Result<RunResult> {
        run_minilm::<B>(&self.tasks, &self.source, method, run)
    }
}

fn main() {
    exit_on_error(run)
}

/// Parse and check the options, prepare the tasks, print the report's
/// header and run the comparison.
fn run() -> Result<()> {
    let args: Args = DEFAULTS.parse();
    let common = &args.common;
    let methods: Vec<MiniLmMethod> = parse_methods(&args.methods)?;
    let backend = BackendName::resolve(common.backend.as_deref())?;
    let seeds =
        seed_range(common.seed, common.seeds).unwrap_or_else(|e| DEFAULTS.usage_error::<Args>(e));
    let max_len = args.max_len as usize;

    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let paths = MiniLmPaths::in_data_dir(&data_dir)?;
    let config = BertConfig::from_json_file(&paths.config)?;
    if max_len > config.max_position_embeddings {
        DEFAULTS.usage_error::<Args>(format!(
            "--max-len {} exceeds the model's {} positions",
            args.max_len, config.max_position_embeddings
        ));
    }
    let settings = common.settings();
    let lora_rank = check_adapters(&methods, &settings, &config);
    report::prepare_dir(&common.out)?;

    let prep = Instant::now();
    let tokenizer = MiniLmTokenizer::from_file(&paths.tokenizer, max_len)?;
    let split = split_settings(&args);
    let tasks = prepare_tasks(&data_dir, &tokenizer, &split)?;
    let task_names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    let header = header(&args, &config, backend, lora_rank, &tasks);
    println!(
        "{header}\n\ndata prepared in {:.1} s\n",
        prep.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let fingerprint = fingerprint(
        &settings,
        serde_json::json!({
            "backend": backend.to_string(),
            "max_len": max_len,
            "host_kernels": args.host_kernels,
            "split": split,
        }),
    );
    let job = Comparison {
        trainer: MiniLm {
            tasks,
            source: MiniLmSource {
                data_dir,
                max_len,
                host_kernels: args.host_kernels && backend.keeps_tensors_on_host(),
            },
        },
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

/// Fail on a bad adapter setting before any training: every adapted layer
/// of every method must accept its adapter, else a usage error exits.
/// Returns LoRA's rank when LoRA is among the `methods`.
fn check_adapters(
    methods: &[MiniLmMethod],
    settings: &TrainSettings,
    config: &BertConfig,
) -> Option<usize> {
    let mut lora_rank = None;
    for &m in methods {
        if let Some((rank, adapters)) = minilm_adapter(m, settings, config) {
            for (d_in, d_out) in adapted_shapes(config, &adapters) {
                if let Err(e) = adapters.adapter.validate(d_in, d_out) {
                    DEFAULTS.usage_error::<Args>(format!("--rank/--heads/--alpha/--dropout: {e}"));
                }
            }
            if m.name() == "lora" {
                lora_rank = Some(rank);
            }
        }
    }
    lora_rank
}

/// The train/test splits and subsamples the options ask for.
fn split_settings(args: &Args) -> SplitSettings {
    SplitSettings {
        test_fraction: args.test_fraction,
        train_per_task: usize::try_from(args.train_per_task).unwrap_or(usize::MAX),
        test_per_task: usize::try_from(args.test_per_task).unwrap_or(usize::MAX),
        split_seed: args.split_seed,
    }
}

/// The report's header: the model, adapters, training settings, splits and
/// the equal-budget rank of LoRA, then one line per task.
fn header(
    args: &Args,
    config: &BertConfig,
    backend: BackendName,
    lora_rank: Option<usize>,
    tasks: &[PreparedTask],
) -> String {
    let common = &args.common;
    let data_lines: Vec<String> = tasks.iter().map(data_line).collect();
    let match_line = match lora_rank {
        Some(r) => format!(
            " LoRA's rank is {r}, chosen to match the adapter parameters of {} heads of rank {} plus a \
             router over the adapted layers, as the paper compares methods at equal parameter budgets.",
            common.heads, common.rank
        ),
        None => String::new(),
    };
    format!(
        "# MiniLM multi-task comparison\n\n\
         all-MiniLM-L6-v2 (6 layers, hidden {}), adapters on the feed-forward projections \
         (intermediate and output dense of every block); per-task linear heads over mean-pooled \
         features. {}; max length {} tokens; splits: {:.0}% test, \
         stratified, split seed {}, then stratified subsamples of at most {} train and {} test \
         examples per task.{match_line} Accuracies are test accuracy in percent, mean ± sample \
         std over seeds. Peak RSS is the process's resident-memory high-water mark (Linux \
         `VmHWM`, reset before each run), which includes the loaded data and the pretrained \
         weights.\n\n{}",
        config.hidden_size,
        common.training_line(backend),
        args.max_len,
        args.test_fraction * 100.0,
        args.split_seed,
        args.train_per_task,
        args.test_per_task,
        data_lines.join("\n"),
    )
}

/// The header's line about one task: classes, examples read and skipped,
/// the split sizes and the mean length of a training example.
fn data_line(t: &PreparedTask) -> String {
    let tokens: usize = t.train.iter().map(|(ids, _)| ids.len()).sum();
    format!(
        "- {}: {} classes, {} examples read ({} corrupt records skipped); {} train \
         ({} validate), {} test; mean {:.0} tokens per training example",
        t.name,
        t.labels.len(),
        t.total,
        t.skipped,
        t.train.len(),
        (t.train.len() / 10).max(1),
        t.test.len(),
        tokens as f64 / t.train.len().max(1) as f64
    )
}
