//! Fine-tune a decoder LLM with R-LoRA (or LoRA, HydraLoRA and the other
//! presets) on your own multi-task data, evaluate it per task, and keep the
//! adapter for `smollm-chat --adapter`.
//!
//! ```text
//! bash scripts/fetch-data.sh
//! cargo run --release -p burn-rlora-pretrained --bin write-task-jsonl -- --out my-data
//! cargo run --release -p burn-rlora-pretrained --bin rlora-finetune -- \
//!     --train my-data/chat/train.jsonl --test my-data/chat/test.jsonl --out my-run
//! cargo run --release -p burn-rlora-pretrained --bin smollm-chat -- --adapter my-run/adapter "..."
//! ```
//!
//! Data: JSONL, one example per line, conversational (`{"messages": [...],
//! "task": "..."}`) or prompt/completion (`{"prompt": "...", "completion":
//! "...", "task": "..."}`); see `burn_rlora_llm::sft`. A bad line stops the
//! command with its file and line (exit 1) before anything is written; bad
//! options exit 2.
//!
//! Output under `--out`: `adapter/` (PEFT's names), `report.md`,
//! `results.json`, `table.md`, `samples.md`, `loss-<task>.svg` per task, and
//! `runs/<method>-seed<seed>/` (checkpoints, logs). `--resume` after a kill
//! finishes the same run; a run that did not finish writes no adapter.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn_rlora_examples::backend::BackendName;
use burn_rlora_examples::harness::compare::{
    fingerprint, run_dir, seed_range, training_part, Comparison, LrSchedule, RunResult, RunSpec,
    RunTrainer, StepSettings,
};
use burn_rlora_examples::harness::report;
use burn_rlora_examples::options::{exit_on_error, CompareArgs, CompareDefaults};
use burn_rlora_gguf::GgufFile;
use burn_rlora_llm::sft::{LongExamples, PromptFormat, SftEncoder, DEFAULT_MAX_LINE_BYTES};
use burn_rlora_llm::{DecoderConfig, Tokenizer, TokenizerSpec};
use burn_rlora_pretrained::datasets::default_data_dir;
use burn_rlora_pretrained::finetune::{prepare, read_tasks, DataFiles, PrepareOptions, TaskReport};
use burn_rlora_pretrained::smollm::evaluate::Sample;
use burn_rlora_pretrained::smollm::experiment::{
    run_smollm, samples_markdown, PreparedTask, SmolLmMethod, SmolLmSource,
};
use burn_rlora_pretrained::smollm::{choose_template, smollm2_path, TemplateSource};
use clap::{FromArgMatches, Parser};

/// Fine-tune a decoder LLM with R-LoRA (or another adapter) on your own
/// multi-task JSONL data, evaluate it per task, and save the adapter.
#[derive(Parser, Debug)]
#[command(name = "rlora-finetune", version, about)]
struct Args {
    /// Training data: JSONL files (conversational or prompt/completion).
    #[arg(long, required = true, num_args = 1..)]
    train: Vec<PathBuf>,
    /// Validation data (default: the last 10% of each task's training examples).
    #[arg(long, num_args = 1..)]
    valid: Vec<PathBuf>,
    /// Test data, scored per task after training (default: none).
    #[arg(long, num_args = 1..)]
    test: Vec<PathBuf>,
    /// An example without a "task" belongs to the task named after its file
    /// (one file per task) instead of the task "default".
    #[arg(long)]
    task_from_file_name: bool,
    /// The GGUF model (default: SmolLM2-135M-Instruct in the data directory).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A Jinja chat template file instead of the model's own (a model
    /// without one that has Gemma's turn tokens is prompted in Gemma's
    /// turn format).
    #[arg(long, conflicts_with = "raw")]
    chat_template: Option<PathBuf>,
    /// Prompt and completion as plain text, without a chat template
    /// (prompt/completion data only).
    #[arg(long)]
    raw: bool,
    /// The method: rlora, lora, hydralora, hydralora-mt, hydralora-init,
    /// rlora-norouter, or lora-r (LoRA at --rank).
    #[arg(long, default_value = "rlora")]
    method: SmolLmMethod,
    /// The projections adapted, by PEFT's names.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "gate_proj,up_proj,down_proj"
    )]
    targets: Vec<String>,
    /// Also score the model without an adapter, zero-shot on the same prompts.
    #[arg(long)]
    baseline: bool,
    /// Optimizer steps in all, instead of whole epochs: the training set
    /// is cycled to give exactly this many (split evenly over --epochs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    steps: Option<u64>,
    /// Batches whose gradients make one optimizer step.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    grad_accum: u64,
    /// The learning rate's schedule: cosine (3% warm-up, then cosine decay
    /// to 0) or constant (3% warm-up, then the peak).
    #[arg(long, default_value = "cosine")]
    schedule: LrSchedule,
    /// Longest sequence in tokens (8 to 32768).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(8..=32768))]
    max_len: u64,
    /// What happens to a longer example: truncate (its input is cut; never
    /// the answer or the template) or skip. The counts are printed either way.
    #[arg(long, default_value = "truncate", value_parser = parse_long)]
    long: LongExamples,
    /// Tokens generated at most for a test answer.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_new_tokens: u64,
    /// Generations per task kept for the report's samples.
    #[arg(long, default_value_t = 3)]
    samples: u64,
    /// The longest line of a data file, in bytes (a longer one is an error).
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES as u64, value_parser = clap::value_parser!(u64).range(64..=(1u64 << 30)))]
    max_line_bytes: u64,
    /// Compute the feed-forward SiLU with the host kernels (flex and ndarray only).
    #[arg(long)]
    host_kernels: bool,
    #[command(flatten)]
    common: CompareArgs,
}

fn parse_long(s: &str) -> Result<LongExamples, String> {
    match s {
        "truncate" => Ok(LongExamples::Truncate),
        "skip" => Ok(LongExamples::Skip),
        other => Err(format!("{other:?}: expected truncate or skip")),
    }
}

/// This binary's defaults of the shared options.
const DEFAULTS: CompareDefaults = CompareDefaults {
    epochs: "1",
    seeds: "1",
    out: "finetune-out",
    rank: "4",
    max_rank: 4096,
    alpha: "32",
    lr: "1e-3",
    batch_size: "8",
    trace_every: "0",
};

struct FinetuneRuns {
    tasks: Vec<PreparedTask>,
    source: SmolLmSource,
}

impl RunTrainer for FinetuneRuns {
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

/// The tokenizer of `file` with the chat template the options choose (or
/// none for the raw format), and where the template comes from.
fn tokenizer(args: &Args, file: &GgufFile) -> Result<(Tokenizer, Option<TemplateSource>)> {
    let mut spec = TokenizerSpec::from_gguf(file)?;
    if args.raw || args.chat_template.is_some() {
        // The file's template is not used: not compiled either.
        spec.chat_template = None;
    }
    let tokenizer = Tokenizer::from_gguf_spec(file, spec)?;
    if args.raw {
        return Ok((tokenizer, None));
    }
    let (template, source) = choose_template(&tokenizer, args.chat_template.as_deref())?;
    let tokenizer = match template {
        Some(t) => tokenizer.with_chat_template(Some(t)),
        None => tokenizer,
    };
    Ok((tokenizer, Some(source)))
}

fn run() -> Result<()> {
    let args = parse_args();
    let common = &args.common;
    let backend = BackendName::resolve(common.backend.as_deref())?;
    let seeds =
        seed_range(common.seed, common.seeds).unwrap_or_else(|e| DEFAULTS.usage_error::<Args>(e));
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| smollm2_path(&default_data_dir()));
    let start = Instant::now();
    // The data first: a bad line is reported before the model is read.
    let files = DataFiles {
        train: args.train.clone(),
        valid: args.valid.clone(),
        test: args.test.clone(),
        task_from_file_name: args.task_from_file_name,
        max_line_bytes: args.max_line_bytes as usize,
    };
    if args.method == SmolLmMethod::Base {
        DEFAULTS.usage_error::<Args>("--method base trains nothing: use --baseline".to_string());
    }
    let examples = read_tasks(&files)?;
    let file = match args.model {
        Some(_) => GgufFile::open(&model)?,
        None => GgufFile::open(&model).with_context(|| "run `bash scripts/fetch-data.sh`")?,
    };
    let config = DecoderConfig::from_gguf(&file)?;
    let (tokenizer, template_source) = tokenizer(&args, &file)?;
    drop(file);
    let max_len = args.max_len as usize;
    if max_len > config.max_position_embeddings {
        DEFAULTS.usage_error::<Args>(format!(
            "--max-len {max_len} exceeds the model's {} positions",
            config.max_position_embeddings
        ));
    }
    let format = match args.raw {
        true => PromptFormat::Raw,
        false => PromptFormat::Chat,
    };
    let encoder = SftEncoder::new(&tokenizer, format)?;
    let options = PrepareOptions {
        max_len,
        long: args.long,
        max_new_tokens: args.max_new_tokens as usize,
        max_labels: 16,
    };
    let (tasks, reports) = prepare(&examples, &encoder, &options)?;
    print_data_report(&reports);

    let mut settings = common.settings();
    settings.steps = StepSettings {
        grad_accumulation: args.grad_accum as usize,
        schedule: args.schedule,
    };
    let epoch_size = epoch_size(&args, &tasks);
    let mut methods = Vec::new();
    if args.baseline {
        methods.push(SmolLmMethod::Base);
    }
    methods.push(args.method);
    let columns: Vec<String> = tasks.iter().flat_map(|t| t.eval.columns()).collect();
    report::prepare_dir(&common.out)?;
    let setup = serde_json::json!({
        "backend": backend.to_string(),
        "model": model.display().to_string(),
        "max_len": max_len,
        "long": format!("{:?}", args.long),
        "max_new_tokens": args.max_new_tokens,
        "targets": args.targets,
        "steps": args.steps,
        "format": format!("{format:?}"),
        "chat_template": template_source,
        "train": args.train,
        "valid": args.valid,
        "test": args.test,
        "task_from_file_name": args.task_from_file_name,
    });
    let header = header(&args, backend, &config, &reports, template_source.as_ref());
    println!("{header}\n");
    let fingerprint = fingerprint(&settings, setup);
    let out = common.out.clone();
    let job = Comparison {
        trainer: FinetuneRuns {
            source: SmolLmSource {
                model,
                max_new_tokens: args.max_new_tokens as usize,
                samples: args.samples as usize,
                host_kernels: args.host_kernels && backend.keeps_tensors_on_host(),
                chat_template: tokenizer.chat_template().cloned(),
                targets: args.targets.clone(),
                epoch_size,
            },
            tasks,
        },
        methods: methods.clone(),
        seeds: seeds.clone(),
        settings: settings.clone(),
        fingerprint,
        out: out.clone(),
        task_names: columns,
        header: header.clone(),
    };
    job.run_and_report(backend, common.devices as usize, start)?;
    finish(&args, &out, &methods, seeds[0], &header, &reports)
}

/// The size of a training epoch: with `--steps`, that many optimizer steps
/// over `--epochs`; with gradient accumulation, rounded up to whole steps
/// (burn-train drops an incomplete accumulation); else `None` (every
/// training example once).
fn epoch_size(args: &Args, tasks: &[PreparedTask]) -> Option<usize> {
    let per_step = args.common.batch_size as usize * args.grad_accum as usize;
    let epochs = args.common.epochs as usize;
    match args.steps {
        Some(steps) => Some((steps as usize).div_ceil(epochs) * per_step),
        None if args.grad_accum > 1 => {
            let examples: usize = tasks
                .iter()
                .map(|t| match t.valid {
                    Some(_) => t.train.len(),
                    None => training_part(t.train.len()),
                })
                .sum();
            Some(examples.div_ceil(per_step) * per_step)
        }
        None => None,
    }
}

/// What became of each task's examples, on the console.
fn print_data_report(reports: &[TaskReport]) {
    for r in reports {
        let kind = match &r.labels {
            Some(l) => format!("classification, labels {}", l.join(", ")),
            None => "free text".to_string(),
        };
        println!(
            "task {}: {} train, {} validation{}, {} test ({kind}); {} cut to fit ({} tokens), {} skipped for their length",
            r.task,
            r.train,
            r.valid,
            if r.valid == 0 { " (10% of train)" } else { "" },
            r.test,
            r.truncated,
            r.truncated_tokens,
            r.skipped
        );
    }
}

/// The report's header: the model, the data and the settings.
fn header(
    args: &Args,
    backend: BackendName,
    config: &DecoderConfig,
    reports: &[TaskReport],
    template: Option<&TemplateSource>,
) -> String {
    let format = match template {
        None => "raw text (prompt, then completion and end-of-sequence)".to_string(),
        Some(TemplateSource::ModelFile) => "the model's chat template".to_string(),
        Some(TemplateSource::GivenFile(f)) => format!("the chat template {f}"),
        Some(TemplateSource::GemmaTurns) => {
            "Gemma's turn format (the model has no template)".to_string()
        }
    };
    let tasks: Vec<String> = reports
        .iter()
        .map(|r| {
            let kind = match &r.labels {
                Some(l) => format!("classification by label likelihood over {} labels ({})", l.len(), l.join(", ")),
                None => "free text".to_string(),
            };
            format!(
                "- {}: {} training, {} validation, {} test examples; {kind}; {} cut to fit, {} skipped",
                r.task, r.train, r.valid, r.test, r.truncated, r.skipped
            )
        })
        .collect();
    format!(
        "# Fine-tuning {} ({}, {} blocks)\n\n\
         Adapter on {} of every block; loss on the answer tokens only; prompts in {format}; \
         sequences of at most {} tokens ({}). {}; {} batch(es) per step; {:?} schedule{}. \
         Scores in percent: `score` picks the most likely label, `gen` is the exact match of \
         the greedy answer, `EM`, `ROUGE-L` (F1) and `chrF` score free text.\n\n{}",
        args.model
            .as_deref()
            .and_then(Path::file_name)
            .map_or_else(|| "SmolLM2-135M-Instruct".into(), |n| n.to_string_lossy()),
        config.architecture,
        config.num_hidden_layers,
        args.targets.join(", "),
        args.max_len,
        match args.long {
            LongExamples::Truncate => "longer inputs cut",
            LongExamples::Skip => "longer examples skipped",
        },
        args.common.training_line(backend),
        args.grad_accum,
        args.schedule,
        args.steps
            .map_or_else(String::new, |s| format!("; {s} steps")),
        tasks.join("\n"),
    )
}

/// After a finished run: the adapter in `<out>/adapter`, `samples.md`,
/// the per-task loss plots and `report.md`.
fn finish(
    args: &Args,
    out: &Path,
    methods: &[SmolLmMethod],
    seed: u64,
    header: &str,
    reports: &[TaskReport],
) -> Result<()> {
    let trained = *methods.last().expect("a method trains");
    let run = run_dir(out, trained.name(), seed);
    copy_adapter(&run.join("adapter"), &out.join("adapter"))?;
    let mut samples: Vec<(String, Vec<Sample>)> = Vec::new();
    for m in methods {
        let path = run_dir(out, m.name(), seed).join("extras.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        samples.push((
            m.name().to_string(),
            serde_json::from_value(value["scores"]["samples"].clone())?,
        ));
    }
    let samples_md = samples_markdown(&samples);
    burn_rlora::write_atomically(out.join("samples.md"), samples_md.as_bytes())?;
    let tasks: Vec<String> = reports.iter().map(|r| r.task.clone()).collect();
    let plots = report::write_task_loss_plots(
        out,
        &[(trained.name().to_string(), run.clone())],
        &tasks,
        args.common.epochs as usize,
    )?;
    let table = std::fs::read_to_string(out.join("table.md")).unwrap_or_default();
    let table = table.strip_prefix(header).unwrap_or(&table).trim();
    let plot_links: Vec<String> = plots
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| format!("![{0}]({0})", n.to_string_lossy()))
        .collect();
    let report_md = format!(
        "{header}\n\n## Scores\n\n{table}\n\n## Loss per task\n\n{}\n\n## Sample generations\n\n{samples_md}\n\nThe adapter: `{}` (PEFT's names; `smollm-chat --adapter {}`).\n",
        plot_links.join("\n"),
        out.join("adapter").display(),
        out.join("adapter").display(),
    );
    burn_rlora::write_atomically(out.join("report.md"), report_md.as_bytes())?;
    println!("wrote {}", out.join("report.md").display());
    println!("the adapter: {}", out.join("adapter").display());
    Ok(())
}

/// A copy of the adapter directory `from` at `to`, written beside it and
/// renamed into place, so that `to` is whole or absent.
fn copy_adapter(from: &Path, to: &Path) -> Result<()> {
    if !from.is_dir() {
        bail!("the run finished without an adapter in {}", from.display());
    }
    let tmp = to.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), tmp.join(entry.file_name()))?;
        }
    }
    let _ = std::fs::remove_dir_all(to);
    std::fs::rename(&tmp, to).with_context(|| format!("writing {}", to.display()))?;
    Ok(())
}
