//! Talk to a decoder LLM from a GGUF file (SmolLM2-135M-Instruct by
//! default), with or without an adapter.
//!
//! ```text
//! bash scripts/fetch-data.sh
//! cargo run --release -p burn-rlora-pretrained --bin smollm-chat -- "What is the capital of France?"
//! cargo run --release -p burn-rlora-pretrained --bin smollm-chat -- --raw "The capital of France is"
//! echo "Name three colours." | cargo run --release -p burn-rlora-pretrained --bin smollm-chat
//! cargo run --release -p burn-rlora-pretrained --bin smollm-chat -- --adapter report/smollm/rlora-seed0/adapter "..."
//! cargo run --release -p burn-rlora-pretrained --bin smollm-chat -- --model data/gemma3/gemma-3-270m-q4_k_m.gguf --raw "def fibonacci(n):"
//! ```
//!
//! Each prompt (from the command line, else one per line of stdin) is
//! answered on its own, the tokens printed as they come. By default the
//! prompt is a user turn of the model's chat template (the file's
//! `tokenizer.chat_template`, or `--chat-template FILE`); `--raw` continues
//! the text as it is (with the beginning-of-sequence token first where the
//! vocabulary asks for it). Greedy unless `--temperature` is above 0.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn_rlora_examples::backend::{run_on, BackendJob, BackendName};
use burn_rlora_examples::options::exit_on_error;
use burn_rlora_llm::{
    generate, load_decoder_adapter, stop_tokens, BasePrecision, CausalLm, ChatTemplate,
    ChatTemplateChoice, ChatTurn, GenerationConfig, Llm, LoadOptions, Sampling, Tokenizer,
};
use burn_rlora_pretrained::datasets::default_data_dir;
use burn_rlora_pretrained::smollm::smollm2_path;
use clap::Parser;

/// Answer prompts with a decoder LLM from a GGUF file (SmolLM2-135M-Instruct
/// by default), optionally with a trained adapter.
#[derive(Parser, Debug)]
#[command(name = "smollm-chat", version, about)]
struct Args {
    /// Prompts; without any, one prompt per line of stdin.
    prompts: Vec<String>,
    /// The GGUF file: any architecture, quantization and vocabulary the
    /// decoder library reads (default: smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    /// under $BURN_RLORA_DATA, else data/).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A Jinja chat template file to use instead of the model's own (for a
    /// model without one, such as a base model).
    #[arg(long, conflicts_with = "raw")]
    chat_template: Option<PathBuf>,
    /// An adapter directory put on the model before answering: one saved by
    /// this project, or a standard PEFT LoRA adapter (adapter_config.json and
    /// adapter_model.safetensors or .bin, as PEFT's save_pretrained writes
    /// them) trained on the same base model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Continue the prompt as plain text instead of answering it as a chat turn.
    #[arg(long)]
    raw: bool,
    /// A system message before the user's turn (chat mode only).
    #[arg(long, conflicts_with = "raw")]
    system: Option<String>,
    /// Tokens to generate at most per prompt.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=8192))]
    max_new_tokens: u64,
    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus sampling's probability mass, in (0, 1] (with --temperature above 0).
    #[arg(long, default_value_t = 0.9)]
    top_p: f64,
    /// Seed of the sampling (the same seed gives the same text on one backend).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend: flex (default), ndarray, wgpu or cuda, as compiled in.
    #[arg(long)]
    backend: Option<String>,
    /// Precision of the frozen base: f32 (default; keep it on a CPU), f16
    /// or bf16 (half the memory, for GPUs: CUDA holds both, wgpu f16 where
    /// the adapter has shader f16; ndarray only f32). Norms, attention,
    /// logits and the adapter stay f32.
    #[arg(long, default_value_t = BasePrecision::F32)]
    base_dtype: BasePrecision,
    /// Print the time to load and the tokens per second to stderr.
    #[arg(long)]
    timings: bool,
}

fn main() {
    exit_on_error(|| {
        let args = Args::parse();
        let backend = BackendName::resolve(args.backend.as_deref())?;
        let sampling = sampling(&args)?;
        let prompts = prompts(&args)?;
        run_on(
            backend,
            1,
            Chat {
                args,
                sampling,
                prompts,
            },
        )?
    })
}

fn sampling(args: &Args) -> Result<Sampling> {
    if !(args.temperature.is_finite() && args.temperature >= 0.0) {
        bail!(
            "--temperature {}: must be 0 (greedy) or above",
            args.temperature
        );
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p {}: must be in (0, 1]", args.top_p);
    }
    Ok(match args.temperature {
        0.0 => Sampling::Greedy,
        t => Sampling::Sample {
            temperature: t,
            top_p: args.top_p,
            seed: args.seed,
        },
    })
}

fn prompts(args: &Args) -> Result<Vec<String>> {
    if !args.prompts.is_empty() {
        return Ok(args.prompts.clone());
    }
    let mut prompts = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading prompts from stdin")?;
        if !line.trim().is_empty() {
            prompts.push(line);
        }
    }
    if prompts.is_empty() {
        bail!("no prompt: give one on the command line or on stdin");
    }
    Ok(prompts)
}

struct Chat {
    args: Args,
    sampling: Sampling,
    prompts: Vec<String>,
}

impl BackendJob for Chat {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<()> {
        chat::<B::InnerBackend>(self, &devices[0])
    }
}

fn chat<B: Backend>(job: Chat, device: &B::Device) -> Result<()> {
    let args = &job.args;
    let path = args
        .model
        .clone()
        .unwrap_or_else(|| smollm2_path(&default_data_dir()));
    if !path.exists() {
        bail!(
            "{}: no such file (run `bash scripts/fetch-data.sh`)",
            path.display()
        );
    }
    if let Some(dir) = &args.adapter {
        if !dir.is_dir() {
            bail!(
                "--adapter {}: not an adapter directory (a directory holding \
                 adapter_config.json and the adapter's tensors)",
                dir.display()
            );
        }
    }
    let mut options = LoadOptions::default();
    if let Some(file) = &args.chat_template {
        let template = ChatTemplate::from_file(file)
            .with_context(|| format!("--chat-template {}", file.display()))?;
        options = options.with_chat_template(ChatTemplateChoice::Given(template));
    }
    let start = Instant::now();
    let Llm {
        mut model,
        tokenizer,
        ..
    } = Llm::<B>::load_with(&path, &options, device)?;
    if !args.raw && tokenizer.chat_template().is_none() {
        bail!(
            "{} has no chat template (a base model): continue text with --raw, \
             or give a template with --chat-template FILE",
            path.display()
        );
    }
    if let Some(dir) = &args.adapter {
        model = load_decoder_adapter(model, dir)
            .with_context(|| format!("loading the adapter in {}", dir.display()))?
            .0;
    }
    if let Some(dtype) = args.base_dtype.dtype() {
        model = model
            .with_base_dtype(dtype)
            .with_context(|| format!("--base-dtype {}", args.base_dtype))?;
    }
    if args.timings {
        eprintln!("loaded in {:.1} s", start.elapsed().as_secs_f64());
    }
    let config = GenerationConfig {
        max_new_tokens: args.max_new_tokens as usize,
        sampling: job.sampling,
        stop_tokens: stop_tokens(&tokenizer),
    };
    let mut out = std::io::stdout().lock();
    for prompt in &job.prompts {
        answer(&model, &tokenizer, &config, args, prompt, &mut out)?;
    }
    Ok(())
}

/// Answer one `prompt` as `args` say (chat turn or raw text), printing the
/// tokens to `out` as they come, and the timings to stderr with `--timings`.
fn answer<B: Backend>(
    model: &CausalLm<B>,
    tokenizer: &Tokenizer,
    config: &GenerationConfig,
    args: &Args,
    prompt: &str,
    out: &mut impl Write,
) -> Result<()> {
    let text = match args.raw {
        true => prompt.to_string(),
        false => {
            let mut turns: Vec<ChatTurn> = args.system.iter().map(ChatTurn::system).collect();
            turns.push(ChatTurn::user(prompt));
            tokenizer.chat_prompt(&turns, true)?
        }
    };
    // The template writes its own special tokens; raw text gets the
    // beginning-of-sequence token where the vocabulary asks for it.
    let ids = match args.raw && tokenizer.add_bos() {
        true => tokenizer.encode_with_bos(&text)?,
        false => tokenizer.encode(&text)?,
    };
    if args.raw {
        write!(out, "{prompt}")?;
    }
    let mut decoder = tokenizer.stream_decoder(true);
    let mut failed = None;
    let begin = Instant::now();
    let answer = generate(model, &ids, config, |id| {
        let piece = match decoder.step(id) {
            Ok(piece) => piece,
            Err(e) => {
                failed = Some(e);
                return ControlFlow::Break(());
            }
        };
        match piece.map(|p| write!(out, "{p}").and_then(|()| out.flush())) {
            Some(Err(_)) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if let Some(rest) = decoder.finish() {
        write!(out, "{rest}")?;
    }
    writeln!(out)?;
    out.flush()?;
    if args.timings {
        let seconds = begin.elapsed().as_secs_f64();
        eprintln!(
            "{} prompt tokens, {} new in {seconds:.2} s ({:.1} tokens/s), stopped: {:?}",
            ids.len(),
            answer.tokens.len(),
            answer.tokens.len() as f64 / seconds,
            answer.stop
        );
    }
    Ok(())
}
