//! Greedy generation with SmolLM2-135M-Instruct: prefill and decode speed
//! and peak memory, Burn (flex) against PyTorch/transformers
//! (`benches/torch_smollm_generate.py`) on the same GGUF file in float32,
//! round by round in one run.
//!
//! ```text
//! cargo build --release -p burn-rlora-benches --bin smollm_generate
//! target/release/smollm_generate --python /path/to/venv/bin/python --rounds 5
//! target/release/smollm_generate --no-torch --prompt 512 --new 32
//! ```
//!
//! The prompt is `--prompt` tokens of a fixed English text; generation is
//! greedy for exactly `--new` tokens (no stop token), through the library's
//! [`generate()`]: the prompt once into the KV cache with the head at its last
//! position, then one token at a time. Prefill is the time to the first
//! token, decode the time of each further token. The PyTorch side does the
//! same with a `DynamicCache`; its first line says how many of its greedy
//! tokens equal Burn's. Each round generates once on each side, one side at
//! a time, alternating which goes first; a figure's ratio is the median
//! over rounds of that round's Burn/PyTorch ratio. Peak memory (`VmHWM`) is
//! measured afterwards in a fresh process per side, with glibc's allocator
//! at its defaults (the timed runs keep freed memory, on both sides): load,
//! reset the peak, one generation.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use burn_rlora_benches::child::{
    self, bench_main, cpu, load_avg, peak_line, JsonChild, MALLOC_ENV,
};
use burn_rlora_benches::{keep_freed_memory, median};
use burn_rlora_examples::harness::compare::{peak_rss_mib, reset_peak_rss};
use burn_rlora_llm::{generate, CausalLm, GenerationConfig, Llm};
use burn_rlora_pretrained::datasets::default_data_dir;
use burn_rlora_pretrained::smollm::SMOLLM2_FILE;
use clap::Parser;
use serde_json::{json, Value};

type B = burn::backend::Flex;

/// The text the prompt is cut from (repeated as needed).
const TEXT: &str = "The history of the printing press begins in the fifteenth century, \
when movable metal type made it possible to reproduce books quickly and cheaply. \
Before that, texts were copied by hand, and a single book could take months to finish. \
Printers spread from one city to the next across Europe, and within fifty years \
millions of volumes had been produced, changing how people learned, argued and prayed. ";

/// Time greedy generation, Burn against PyTorch.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 128)]
    prompt: usize,
    /// Tokens generated per round (at least 2: the first is prefill's).
    #[arg(long, default_value_t = 64)]
    new: usize,
    /// Timed rounds (each generates once on each side).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Untimed generations per side first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Threads of each side (Burn: `RAYON_NUM_THREADS`, unless already set;
    /// PyTorch: `torch.set_num_threads`).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Data directory written by scripts/fetch-data.sh (default: $BURN_RLORA_DATA, else data/).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The model file, under the data directory (any model `burn-rlora-llm`
    /// reads and transformers loads from GGUF; e.g.
    /// gemma3/gemma-3-270m-q4_k_m.gguf).
    #[arg(long, default_value = SMOLLM2_FILE)]
    gguf: String,
    /// The Python that runs the PyTorch side (needs torch, transformers, gguf).
    #[arg(long, default_value = "python3")]
    python: String,
    /// The PyTorch rendering.
    #[arg(long, default_value = "benches/torch_smollm_generate.py")]
    torch_script: PathBuf,
    /// Where the PyTorch side keeps the dequantized model between runs
    /// (default: a folder under the system's temporary directory).
    #[arg(long)]
    torch_cache: Option<PathBuf>,
    /// Time Burn alone.
    #[arg(long)]
    no_torch: bool,
    /// Skip the peak-memory runs.
    #[arg(long)]
    no_peak: bool,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: print Burn's peak RSS over one generation and exit.
    #[arg(long, hide = true)]
    peak_only: bool,
}

/// One generation's timings.
#[derive(Debug, Clone)]
struct Timing {
    /// Milliseconds to the first token.
    prefill_ms: f64,
    /// Milliseconds of each further token.
    decode_ms: Vec<f64>,
}

impl Timing {
    fn from_json(v: &Value) -> Result<Self> {
        let prefill_ms = v["prefill_ms"]
            .as_f64()
            .ok_or_else(|| anyhow!("no prefill time in {v}"))?;
        let decode_ms = v["decode_ms"]
            .as_array()
            .ok_or_else(|| anyhow!("no decode times in {v}"))?
            .iter()
            .map(|x| x.as_f64().ok_or_else(|| anyhow!("a decode time in {v}")))
            .collect::<Result<_>>()?;
        Ok(Self {
            prefill_ms,
            decode_ms,
        })
    }

    fn prefill_tokens_per_s(&self, prompt: usize) -> f64 {
        prompt as f64 / (self.prefill_ms / 1e3)
    }

    fn decode_tokens_per_s(&self) -> f64 {
        self.decode_ms.len() as f64 / (self.decode_ms.iter().sum::<f64>() / 1e3)
    }
}

/// Greedy generation of `new` tokens after `prompt`: the tokens and their timing.
fn burn_generate(model: &CausalLm<B>, prompt: &[u32], new: usize) -> Result<(Vec<u32>, Timing)> {
    let config = GenerationConfig::greedy(new, Vec::new());
    let start = Instant::now();
    let mut last = start;
    let mut prefill_ms = None;
    let mut decode_ms = Vec::with_capacity(new);
    let out = generate(model, prompt, &config, |_| {
        let now = Instant::now();
        let ms = (now - last).as_secs_f64() * 1e3;
        match prefill_ms {
            None => prefill_ms = Some(ms),
            Some(_) => decode_ms.push(ms),
        }
        last = now;
        ControlFlow::Continue(())
    })?;
    if out.tokens.len() != new {
        bail!(
            "generated {} tokens of {new} ({:?})",
            out.tokens.len(),
            out.stop
        );
    }
    let timing = Timing {
        prefill_ms: prefill_ms.context("no token was generated")?,
        decode_ms,
    };
    Ok((out.tokens, timing))
}

fn main() {
    bench_main::<Args>(real_main);
}

fn real_main(a: Args) -> Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Before flex's pool exists: it reads this when it starts.
        std::env::set_var("RAYON_NUM_THREADS", a.threads.to_string());
    }
    // The peak runs leave glibc's allocator at its defaults on both sides:
    // with freed memory kept, the buffers freed while loading would count.
    if !a.peak_only && !keep_freed_memory() {
        eprintln!("warning: could not set the allocator's parameters");
    }
    if a.rounds == 0 || a.prompt == 0 || a.new < 2 {
        bail!("--rounds and --prompt must be at least 1, --new at least 2");
    }
    let data_dir = a.data_dir.clone().unwrap_or_else(default_data_dir);
    let device = Default::default();
    let start = Instant::now();
    let smol = Llm::<B>::load(data_dir.join(&a.gguf), &device)?;
    eprintln!(
        "burn: model loaded in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let prompt = prompt_ids(&smol, a.prompt)?;
    if a.prompt + a.new > smol.config.max_position_embeddings {
        bail!(
            "--prompt + --new = {} is past the model's {} positions",
            a.prompt + a.new,
            smol.config.max_position_embeddings
        );
    }
    if a.peak_only {
        reset_peak_rss();
        burn_generate(&smol.model, &prompt, a.new)?;
        println!("{}", json!({ "peak_rss_mib": peak_rss_mib() }));
        return Ok(());
    }
    let (tokens, _) = burn_generate(&smol.model, &prompt, a.new)?;
    let tmp = std::env::temp_dir().join(format!("burn-rlora-generate-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let dump = tmp.join("inputs.json");
    let result = compare(&a, &smol.model, &prompt, &tokens, &dump, &data_dir);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// `n` tokens of [`TEXT`], repeated as needed.
fn prompt_ids(smol: &Llm<B>, n: usize) -> Result<Vec<u32>> {
    let once = smol.tokenizer.encode(TEXT)?;
    if once.is_empty() {
        bail!("the prompt text has no tokens");
    }
    Ok(once.iter().copied().cycle().take(n).collect())
}

fn torch_command(a: &Args, dump: &Path, data_dir: &Path) -> Command {
    let cache = a
        .torch_cache
        .clone()
        .unwrap_or_else(|| child::torch_cache_for(&a.gguf));
    child::torch_command(
        &a.python,
        &a.torch_script,
        dump,
        &cache,
        data_dir,
        &a.gguf,
        a.threads,
    )
}

/// Both sides' timings per round, then the peaks, then the report.
fn compare(
    a: &Args,
    model: &CausalLm<B>,
    prompt: &[u32],
    tokens: &[u32],
    dump: &Path,
    data_dir: &Path,
) -> Result<()> {
    let inputs = json!({ "prompt": prompt, "new": a.new, "burn_tokens": tokens });
    std::fs::write(dump, inputs.to_string())
        .with_context(|| format!("writing {}", dump.display()))?;
    let mut torch = None;
    if !a.no_torch {
        let mut cmd = torch_command(a, dump, data_dir);
        cmd.arg("--serve");
        let (child, ready) = JsonChild::spawn(cmd)?;
        eprintln!("torch ready: {ready}");
        torch = Some((child, ready));
    }
    let (cpu, before) = (cpu(), load_avg());
    for _ in 0..a.warmup {
        burn_generate(model, prompt, a.new)?;
        if let Some((t, _)) = torch.as_mut() {
            t.request("gen")?;
        }
    }
    let mut burn = Vec::new();
    let mut pytorch = Vec::new();
    for k in 0..a.rounds {
        let burn_first = k % 2 == 0;
        if let (false, Some((t, _))) = (burn_first, torch.as_mut()) {
            pytorch.push(Timing::from_json(&t.request("gen")?)?);
        }
        burn.push(burn_generate(model, prompt, a.new)?.1);
        if let (true, Some((t, _))) = (burn_first, torch.as_mut()) {
            pytorch.push(Timing::from_json(&t.request("gen")?)?);
        }
        eprintln!(
            "round {k}: burn decode {:.1} tok/s{}",
            burn[k].decode_tokens_per_s(),
            pytorch.last().map_or(String::new(), |t| format!(
                ", torch {:.1} tok/s",
                t.decode_tokens_per_s()
            ))
        );
    }
    let after = load_avg();
    let torch_info = match torch {
        Some((t, ready)) => {
            t.quit()?;
            Some(ready)
        }
        None => None,
    };
    let peaks = if a.no_peak {
        (None, None)
    } else {
        measure_peaks(a, dump, data_dir)?
    };
    let report = Report {
        a,
        burn: &burn,
        torch: &pytorch,
        peaks,
    };
    report.print(&cpu, &before, &after, torch_info.as_ref());
    if let Some(path) = &a.json {
        let v = report.json(&cpu, &before, &after, torch_info.as_ref());
        std::fs::write(path, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Each side's peak RSS over one generation, in a fresh process.
fn measure_peaks(a: &Args, dump: &Path, data_dir: &Path) -> Result<(Option<f64>, Option<f64>)> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--peak-only");
    for (flag, v) in [
        ("--prompt", a.prompt.to_string()),
        ("--new", a.new.to_string()),
        ("--threads", a.threads.to_string()),
    ] {
        cmd.args([flag, &v]);
    }
    cmd.arg("--data-dir").arg(data_dir);
    cmd.args(["--gguf", &a.gguf]);
    let burn = peak_line(cmd)?;
    let torch = if a.no_torch {
        None
    } else {
        let mut cmd = torch_command(a, dump, data_dir);
        for (key, _) in MALLOC_ENV {
            cmd.env_remove(key);
        }
        cmd.arg("--peak");
        peak_line(cmd)?
    };
    Ok((burn, torch))
}

/// The timings and peaks of a run, as a table and as JSON.
struct Report<'a> {
    a: &'a Args,
    burn: &'a [Timing],
    torch: &'a [Timing],
    peaks: (Option<f64>, Option<f64>),
}

/// A figure per side and the median paired ratio Burn/PyTorch.
struct Row {
    burn: f64,
    torch: Option<f64>,
    ratio: Option<f64>,
}

impl Report<'_> {
    fn row(&self, figure: impl Fn(&Timing) -> f64) -> Row {
        let burn = median(self.burn.iter().map(&figure).collect());
        if self.torch.is_empty() {
            return Row {
                burn,
                torch: None,
                ratio: None,
            };
        }
        let torch = median(self.torch.iter().map(&figure).collect());
        let ratios = self
            .burn
            .iter()
            .zip(self.torch)
            .map(|(b, t)| figure(b) / figure(t))
            .collect();
        Row {
            burn,
            torch: Some(torch),
            ratio: Some(median(ratios)),
        }
    }

    fn rows(&self) -> [(&'static str, Row); 4] {
        let p = self.a.prompt;
        [
            ("prefill tokens/s", self.row(|t| t.prefill_tokens_per_s(p))),
            ("decode tokens/s", self.row(Timing::decode_tokens_per_s)),
            ("prefill ms", self.row(|t| t.prefill_ms)),
            (
                "decode ms/token (median step)",
                self.row(|t| median(t.decode_ms.clone())),
            ),
        ]
    }

    fn print(&self, cpu: &str, before: &str, after: &str, torch: Option<&Value>) {
        let a = self.a;
        println!(
            "SmolLM2-135M-Instruct greedy generation: prompt {} tokens, {} new tokens; \
             {} rounds after {} warm-up; {} threads",
            a.prompt, a.new, a.rounds, a.warmup, a.threads
        );
        println!("CPU: {cpu}; load average before {before}, after {after}");
        if let Some(t) = torch {
            println!(
                "PyTorch {} ({} attention, {} threads), float32; greedy tokens equal to Burn's: {} of {}",
                t["torch"].as_str().unwrap_or("?"),
                t["attn"].as_str().unwrap_or("?"),
                t["threads"],
                t["agree"],
                t["of"],
            );
        }
        println!();
        println!("| figure | Burn (flex) | PyTorch | Burn/PyTorch |");
        println!("|---|---|---|---|");
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        for (name, r) in self.rows() {
            println!(
                "| {name} | {:.1} | {} | {} |",
                r.burn,
                opt(r.torch, 1),
                opt(r.ratio, 2)
            );
        }
        println!(
            "| peak RSS MiB | {} | {} | {} |",
            opt(self.peaks.0, 0),
            opt(self.peaks.1, 0),
            opt(self.peaks.0.zip(self.peaks.1).map(|(b, t)| b / t), 2)
        );
    }

    fn json(&self, cpu: &str, before: &str, after: &str, torch: Option<&Value>) -> Value {
        let rows: serde_json::Map<String, Value> = self
            .rows()
            .into_iter()
            .map(|(name, r)| {
                (
                    name.to_string(),
                    json!({ "burn": r.burn, "torch": r.torch, "ratio": r.ratio }),
                )
            })
            .collect();
        let times = |ts: &[Timing]| -> Value {
            ts.iter()
                .map(|t| json!({ "prefill_ms": t.prefill_ms, "decode_ms": t.decode_ms }))
                .collect()
        };
        json!({
            "prompt": self.a.prompt, "new": self.a.new, "threads": self.a.threads,
            "cpu": cpu, "load_before": before, "load_after": after, "torch": torch,
            "figures": rows,
            "burn_peak_rss_mib": self.peaks.0, "torch_peak_rss_mib": self.peaks.1,
            "burn_rounds": times(self.burn), "torch_rounds": times(self.torch),
        })
    }
}
