//! The paper's experiment on a decoder LLM: multi-task instruction tuning of
//! SmolLM2-135M-Instruct with LoRA, HydraLoRA and R-LoRA (adapters on
//! `gate_proj`, `up_proj`, `down_proj` of every block) on five tasks — four
//! classifications answered with a label word and one free-text task (a BBC
//! News headline) — judged by the likelihood of each label and by greedy
//! generation, over paired seeds, through burn-train's `Learner`.
//!
//! ```text
//! bash scripts/fetch-data.sh
//! cargo run --release -p burn-rlora-pretrained --bin smollm-multitask -- --plain
//! cargo run --release -p burn-rlora-pretrained --bin smollm-multitask -- --plain \
//!     --methods base,lora-r,lora,hydralora,hydralora-mt,hydralora-init,rlora --seeds 3
//! ```
//!
//! The report (`table.md`, `results.json`, `samples.md`, plots) goes to
//! `--out` (`report/smollm`), rewritten after every run; `--resume` after a
//! kill finishes the same runs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn_rlora_examples::backend::BackendName;
use burn_rlora_examples::harness::compare::{
    fingerprint, parse_fraction, run_dir, seed_range, training_part, Comparison, RunResult,
    RunSpec, RunTrainer,
};
use burn_rlora_examples::harness::report;
use burn_rlora_examples::options::{exit_on_error, parse_methods, CompareArgs, CompareDefaults};
use burn_rlora_gguf::GgufFile;
use burn_rlora_llm::{DecoderConfig, Tokenizer, TokenizerSpec};
use burn_rlora_pretrained::datasets::default_data_dir;
use burn_rlora_pretrained::smollm::evaluate::Sample;
use burn_rlora_pretrained::smollm::experiment::{
    prepare_tasks, run_smollm, samples_markdown, PreparedTask, SmolLmMethod, SmolLmSource,
    PAPER_TARGETS,
};
use burn_rlora_pretrained::smollm::tasks::{
    instruction_tasks, InstructionEncoder, InstructionSplit, InstructionTask,
};
use burn_rlora_pretrained::smollm::{choose_template, smollm2_path, TemplateSource};
use clap::{FromArgMatches, Parser};

/// Multi-task instruction tuning of SmolLM2-135M-Instruct with LoRA, HydraLoRA and R-LoRA.
#[derive(Parser, Debug)]
#[command(name = "smollm-multitask", version, about)]
struct Args {
    /// Methods, comma-separated: base (zero-shot, no training), lora-r (LoRA at
    /// --rank), lora (LoRA at the rank matching the multi-head parameter count),
    /// hydralora, hydralora-mt, hydralora-init, rlora, rlora-norouter.
    #[arg(long, value_delimiter = ',', default_value = "lora,hydralora,rlora")]
    methods: Vec<String>,
    /// Data directory written by scripts/fetch-data.sh (default: $BURN_RLORA_DATA, else data/).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The GGUF file: any model the decoder library reads (default:
    /// smollm2/SmolLM2-135M-Instruct.Q4_1.gguf in the data directory).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A Jinja chat template file for the prompts, instead of the model's
    /// own. Without one, a model with no template (a base model) is
    /// prompted in Gemma's turn format if its vocabulary has Gemma's turn
    /// tokens, and refused otherwise.
    #[arg(long)]
    chat_template: Option<PathBuf>,
    /// Training examples per task at most (a large number uses all; at least 2).
    /// 10% of them validate.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(2..))]
    train_per_task: u64,
    /// Test examples per task at most (a large number uses all).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..))]
    test_per_task: u64,
    /// Share of each task held out for testing, before subsampling; in (0, 1).
    #[arg(long, default_value_t = 0.2, value_parser = parse_fraction)]
    test_fraction: f64,
    /// Seed of the splits and subsamples (fixed across methods and seeds).
    #[arg(long, default_value_t = 2025)]
    split_seed: u64,
    /// Longest sequence in tokens, prompt and answer; inputs are cut, never answers (32 to 8192).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(32..=8192))]
    max_len: u64,
    /// Tokens generated at most for a free-text answer.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=512))]
    max_new_tokens: u64,
    /// Generations per task kept for the report's samples.
    #[arg(long, default_value_t = 2)]
    samples: u64,
    /// Compute the feed-forward SiLU with the host kernels (flex and ndarray
    /// only; elsewhere Burn's `silu` runs anyway): the training step takes
    /// about 0.85x the time on flex, and its results differ from Burn's
    /// `silu` in the last bits.
    #[arg(long)]
    host_kernels: bool,
    #[command(flatten)]
    common: CompareArgs,
}

/// This binary's defaults of the shared options.
const DEFAULTS: CompareDefaults = CompareDefaults {
    epochs: "1",
    seeds: "1",
    out: "report/smollm",
    rank: "4",
    max_rank: 576,
    alpha: "32",
    lr: "1e-3",
    batch_size: "8",
    trace_every: "10",
};

struct SmolLmRuns {
    tasks: Vec<PreparedTask>,
    source: SmolLmSource,
}

impl RunTrainer for SmolLmRuns {
    type Method = SmolLmMethod;

    fn train<B: AutodiffBackend>(
        &self,
        method: SmolLmMethod,
        run: RunSpec<'_, B>,
    ) -> Result<RunResult> {
        run_smollm::<B>(&self.tasks, &self.source, method, run)
    }
}

fn main() {
    exit_on_error(run)
}

fn parse_args() -> Args {
    let command = DEFAULTS
        .command::<Args>()
        .mut_arg("heads", |a| a.default_value("5"));
    Args::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

fn run() -> Result<()> {
    let args = parse_args();
    let common = &args.common;
    let methods: Vec<SmolLmMethod> = parse_methods(&args.methods)?;
    let backend = BackendName::resolve(common.backend.as_deref())?;
    let seeds =
        seed_range(common.seed, common.seeds).unwrap_or_else(|e| DEFAULTS.usage_error::<Args>(e));
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| smollm2_path(&data_dir));
    let file = match args.model {
        Some(_) => GgufFile::open(&model)?,
        None => GgufFile::open(&model).with_context(|| "run `bash scripts/fetch-data.sh`")?,
    };
    let config = DecoderConfig::from_gguf(&file)?;
    let tokenizer = match args.chat_template {
        // A template of the user's replaces the file's, which is not read.
        Some(_) => {
            let mut spec = TokenizerSpec::from_gguf(&file)?;
            spec.chat_template = None;
            Tokenizer::from_gguf_spec(&file, spec)?
        }
        None => Tokenizer::from_gguf(&file)?,
    };
    drop(file);
    let (chat_template, template_source) =
        choose_template(&tokenizer, args.chat_template.as_deref())?;
    let tokenizer = match &chat_template {
        Some(template) => tokenizer.with_chat_template(Some(template.clone())),
        None => tokenizer,
    };
    if args.max_len as usize > config.max_position_embeddings {
        DEFAULTS.usage_error::<Args>(format!(
            "--max-len {} exceeds the model's {} positions",
            args.max_len, config.max_position_embeddings
        ));
    }
    let settings = common.settings();
    report::prepare_dir(&common.out)?;

    let prep = Instant::now();
    let split = InstructionSplit {
        test_fraction: args.test_fraction,
        train_per_task: usize::try_from(args.train_per_task).unwrap_or(usize::MAX),
        test_per_task: usize::try_from(args.test_per_task).unwrap_or(usize::MAX),
        split_seed: args.split_seed,
    };
    let tasks = instruction_tasks(&data_dir, &split)?;
    let encoder = InstructionEncoder::new(&tokenizer)?;
    let max_len = args.max_len as usize;
    let prepared = prepare_tasks(&tasks, &encoder, max_len, args.max_new_tokens as usize)?;
    let columns: Vec<String> = prepared.iter().flat_map(|t| t.eval.columns()).collect();
    let header = header(&args, backend, config.num_hidden_layers, &tasks, &prepared);
    println!(
        "{header}\n\ndata prepared in {:.1} s\n",
        prep.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let mut setup = serde_json::json!({
        "backend": backend.to_string(),
        "max_len": max_len,
        "max_new_tokens": args.max_new_tokens,
        "split": split,
        "model": model.display().to_string(),
    });
    // Named only when on, so that runs written before the option resume.
    if args.host_kernels {
        setup["host_kernels"] = serde_json::Value::Bool(true);
    }
    if template_source != TemplateSource::ModelFile {
        setup["chat_template"] = serde_json::to_value(&template_source)?;
    }
    let fingerprint = fingerprint(&settings, setup);
    let out = common.out.clone();
    let job = Comparison {
        trainer: SmolLmRuns {
            tasks: prepared,
            source: SmolLmSource {
                model,
                max_new_tokens: args.max_new_tokens as usize,
                samples: args.samples as usize,
                host_kernels: args.host_kernels && backend.keeps_tensors_on_host(),
                chat_template,
                targets: PAPER_TARGETS.map(String::from).to_vec(),
                epoch_size: None,
            },
        },
        methods: methods.clone(),
        seeds: seeds.clone(),
        settings,
        fingerprint,
        out: out.clone(),
        task_names: columns,
        header,
    };
    job.run_and_report(backend, common.devices as usize, start)?;
    write_samples(&out, &methods, seeds[0])
}

/// The report's Markdown header: the model, the settings and each task's data.
fn header(
    args: &Args,
    backend: BackendName,
    blocks: usize,
    tasks: &[InstructionTask],
    prepared: &[PreparedTask],
) -> String {
    let data_lines: Vec<String> = tasks
        .iter()
        .zip(prepared)
        .map(|(t, p)| {
            format!(
                "- {}: {} examples read; {} train ({} validate), {} test; {} tokens per \
                 training sequence",
                t.name,
                t.total,
                t.train.len(),
                t.train.len() - training_part(t.train.len()),
                t.test.len(),
                p.mean_tokens()
            )
        })
        .collect();
    let model = args
        .model
        .as_deref()
        .and_then(std::path::Path::file_stem)
        .map_or_else(|| "SmolLM2-135M-Instruct".into(), |s| s.to_string_lossy());
    format!(
        "# {model} multi-task instruction tuning\n\n\
         Adapters on gate_proj, up_proj and down_proj of all {blocks} blocks; loss on the answer \
         tokens only. {}; sequences of at most {} tokens (inputs cut, never answers); splits: \
         {:.0}% test, split seed {}, at most {} train and {} test examples per task. Columns: \
         `score` is the accuracy of picking the most likely label answer, `gen` the exact match \
         of the greedy answer, and for the headline task `EM`, `ROUGE-L` (F1) and `chrF` of the \
         greedy answer, all in percent; `average` averages the score columns and ROUGE-L. Mean \
         ± sample std over seeds.\n\n{}",
        args.common.training_line(backend),
        args.max_len,
        args.test_fraction * 100.0,
        args.split_seed,
        args.train_per_task,
        args.test_per_task,
        data_lines.join("\n"),
    )
}

/// `samples.md` from the first seed's runs.
fn write_samples(out: &std::path::Path, methods: &[SmolLmMethod], seed: u64) -> Result<()> {
    let mut runs: Vec<(String, Vec<Sample>)> = Vec::new();
    for m in methods {
        let path = run_dir(out, m.name(), seed).join("extras.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        let samples: Vec<Sample> = serde_json::from_value(value["scores"]["samples"].clone())?;
        runs.push((m.name().to_string(), samples));
    }
    let path = out.join("samples.md");
    burn_rlora::write_atomically(&path, samples_markdown(&runs).as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}
