//! The real example: multi-task fine-tuning of the pretrained all-MiniLM-L6-v2
//! encoder on four text-classification tasks (BBC news topic, Rotten Tomatoes
//! sentiment, tweet sentiment, SpamAssassin spam), offline, through
//! burn-train's `Learner`. Compares a linear probe (frozen encoder, heads
//! only), LoRA, HydraLoRA, R-LoRA and the two ablations, from the same base,
//! splits, seeds and budget.
//!
//! ```text
//! bash scripts/fetch-data.sh
//! cargo run --release -p burn-rlora-examples --bin minilm-multitask
//! cargo run --release -p burn-rlora-examples --bin minilm-multitask -- \
//!     --methods probe,hydralora,rlora --seeds 3 --train-per-task 1000000 --max-len 128
//! ```
//!
//! The report (Markdown and JSON table, SVG plots) goes to `--out` (`report/minilm`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn_rlora_examples::backend::{run_on, BackendJob, BackendName};
use burn_rlora_examples::compare::{parse_sampling, RunResult, TrainSettings};
use burn_rlora_examples::minilm::{
    adapted_shapes, default_data_dir, minilm_adapter, prepare_tasks, run_minilm, BertConfig,
    MiniLmMethod, MiniLmPaths, MiniLmTokenizer, PreparedTask, SplitSettings,
};
use burn_rlora_examples::report;
use clap::Parser;

/// Multi-task fine-tuning of pretrained MiniLM on four real text tasks.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Methods, comma-separated: probe (frozen encoder, heads only), lora,
    /// hydralora, hydralora-mt, hydralora-init, rlora, rlora-norouter.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "probe,lora,hydralora,rlora"
    )]
    methods: Vec<String>,
    /// Training epochs per run.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// First training seed; runs use seed, seed+1, ...
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of seeds per method (mean ± std is reported).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Data directory written by scripts/fetch-data.sh (default: $BURN_RLORA_DATA, else data/).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Training examples per task at most (stratified subsample; a large
    /// number uses the whole training split). 10% of them validate.
    #[arg(long, default_value_t = 400)]
    train_per_task: usize,
    /// Test examples per task at most (stratified subsample of the test split).
    #[arg(long, default_value_t = 200)]
    test_per_task: usize,
    /// Share of each task held out for testing (stratified), before subsampling.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Seed of the train/test splits and subsamples (fixed across methods and seeds).
    #[arg(long, default_value_t = 2025)]
    split_seed: u64,
    /// Longest token sequence, [CLS] and [SEP] included (the model allows 512;
    /// 64 keeps a CPU run short, 128 is the tokenizer's usual setting).
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    /// Output directory for the report.
    #[arg(long, default_value = "report/minilm")]
    out: PathBuf,
    /// Backend: flex, ndarray, wgpu or cuda (each only when compiled in with its feature).
    #[arg(long)]
    backend: Option<String>,
    /// Devices for data-parallel training (Learner multi-device strategy).
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Rank of each head (LoRA's rank is matched to the multi-head parameter count).
    #[arg(long, default_value_t = 4)]
    rank: usize,
    /// Heads per adapted layer.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Scaling numerator (alpha / sqrt(r) for every method).
    #[arg(long, default_value_t = 16.0)]
    alpha: f64,
    /// Adapter dropout.
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Peak learning rate (adapters and heads; 3% warm-up, cosine decay).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
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
    tasks: Vec<PreparedTask>,
    data_dir: PathBuf,
    methods: Vec<MiniLmMethod>,
    seeds: Vec<u64>,
    settings: TrainSettings,
    max_len: usize,
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
                let run = run_minilm::<B>(
                    &self.tasks,
                    &self.data_dir,
                    method,
                    seed,
                    &self.settings,
                    self.max_len,
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
        .map(|m| m.parse::<MiniLmMethod>())
        .collect::<Result<Vec<_>, _>>()?;
    if methods.is_empty() {
        bail!("--methods is empty");
    }
    let backend = BackendName::resolve(args.backend.as_deref())?;
    if args.epochs == 0 || args.seeds == 0 || args.batch_size == 0 || args.devices == 0 {
        bail!("--epochs, --seeds, --batch-size and --devices must be at least 1");
    }
    if args.train_per_task < 2 || args.test_per_task == 0 {
        bail!("--train-per-task must be at least 2 and --test-per-task at least 1");
    }
    let sampling = parse_sampling(&args.sampling)?;

    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let paths = MiniLmPaths::in_data_dir(&data_dir)?;
    let config = BertConfig::from_json_file(&paths.config)?;
    if args.max_len > config.max_position_embeddings {
        bail!(
            "--max-len {} exceeds the model's {} positions",
            args.max_len,
            config.max_position_embeddings
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
        sampling,
        devices: args.devices,
        plain: args.plain,
    };
    // Fail on a bad adapter setting before any training.
    let mut lora_rank = None;
    for &m in &methods {
        if let Some((rank, adapters)) = minilm_adapter(m, &settings, &config) {
            for (d_in, d_out) in adapted_shapes(&config, &adapters) {
                adapters.adapter.validate(d_in, d_out)?;
            }
            if m.name() == "lora" {
                lora_rank = Some(rank);
            }
        }
    }
    report::prepare_dir(&args.out)?;

    let prep = Instant::now();
    let tokenizer = MiniLmTokenizer::from_file(&paths.tokenizer, args.max_len)?;
    let split = SplitSettings {
        test_fraction: args.test_fraction,
        train_per_task: args.train_per_task,
        test_per_task: args.test_per_task,
        split_seed: args.split_seed,
    };
    let tasks = prepare_tasks(&data_dir, &tokenizer, &split)?;
    let task_names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    let data_lines: Vec<String> = tasks
        .iter()
        .map(|t| {
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
        })
        .collect();
    let match_line = match lora_rank {
        Some(r) => format!(
            " LoRA's rank is {r}, chosen to match the adapter parameters of {} heads of rank {} plus a \
             router over the adapted layers, as the paper compares methods at equal parameter budgets.",
            args.heads, args.rank
        ),
        None => String::new(),
    };
    let header = format!(
        "# MiniLM multi-task comparison\n\n\
         all-MiniLM-L6-v2 (6 layers, hidden {}), adapters on the feed-forward projections \
         (intermediate and output dense of every block); per-task linear heads over mean-pooled \
         features. backend {backend}, {} device(s); {} seed(s) from {}; {} epoch(s); batch {}; \
         lr {} (3% warm-up, cosine); rank {} x {} heads, alpha {} (alpha/sqrt(r) for every \
         method); dropout {}; sampling {:?}; max length {} tokens; splits: {:.0}% test, \
         stratified, split seed {}, then stratified subsamples of at most {} train and {} test \
         examples per task.{match_line} Accuracies are test accuracy in percent, mean ± sample \
         std over seeds. Peak RSS is the process's resident-memory high-water mark (Linux \
         `VmHWM`, reset before each run), which includes the loaded data and the pretrained \
         weights.\n\n{}",
        config.hidden_size,
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
        args.max_len,
        args.test_fraction * 100.0,
        args.split_seed,
        args.train_per_task,
        args.test_per_task,
        data_lines.join("\n"),
    );
    println!(
        "{header}\n\ndata prepared in {:.1} s\n",
        prep.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let job = Compare {
        tasks,
        data_dir,
        methods,
        seeds: (args.seed..args.seed + args.seeds).collect(),
        settings,
        max_len: args.max_len,
        out: args.out.clone(),
    };
    let runs = run_on(backend, args.devices, job)??;
    report::write_and_print(&args.out, &runs, &task_names, &header, start)
}
