//! One training step of SmolLM2-135M-Instruct with adapters on the
//! feed-forward projections, Burn against a PyTorch rendering of the same
//! step (`benches/torch_smollm_step.py`), round by round in one run.
//!
//! ```text
//! cargo build --release -p burn-rlora-benches --bin smollm_step
//! target/release/smollm_step --python /path/to/venv/bin/python --rounds 3 --warmup 1
//! target/release/smollm_step --no-torch --profile --methods rlora   # Burn's phases
//! ```
//!
//! The step: a batch of `--batch` rows of `--seq` synthetic token ids
//! (fixed seed), the decoder over the whole batch, the tied output head at
//! the last `--answer` positions of each row that predict a next token,
//! cross entropy, backward (the frozen base gets no gradient), Adam at
//! lr 2e-4 over the adapters. The adapters sit on `gate_proj`, `up_proj`
//! and `down_proj` of every block: rank 4, alpha 32, rsLoRA scaling
//! (`alpha / sqrt(r)`), dropout 0.1; LoRA (one head), HydraLoRA (5 zero
//! heads, router, one mask on `x`) and R-LoRA (5 random heads, router,
//! multi-head dropout, compensation pair). `frozen` is the plain model's
//! forward and loss without gradients, the baseline.
//!
//! The PyTorch side runs as a child process (`--serve`) that loads the same
//! GGUF file once; each round runs every method's step once on each side,
//! one side at a time, alternating which side goes first. A cell's ratio is
//! the median over rounds of that round's Burn/PyTorch time. Peak memory
//! (`VmHWM`) is measured afterwards in a fresh process per method and side:
//! load, reset the peak, two steps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ElementConversion;
use burn_rlora::{AdaptConfig, RLoraConfig, TargetModules};
use burn_rlora_benches::child::{self, bench_main, cpu, load_avg, peak_line, JsonChild};
use burn_rlora_benches::{keep_freed_memory, median};
use burn_rlora_examples::harness::compare::{peak_rss_mib, reset_peak_rss};
use burn_rlora_llm::{answer_loss, AnswerBatch, AnswerSequence, CausalLm, Llm};
use burn_rlora_pretrained::datasets::default_data_dir;
use burn_rlora_pretrained::smollm::SMOLLM2_FILE;
use clap::Parser;
use serde_json::{json, Value};

type Ad = burn::backend::Autodiff<burn::backend::Flex>;
type Model<B> = CausalLm<B>;

/// The projections that get an adapter, by PEFT's names.
const TARGETS: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];
/// The learning rate of the recipe.
const LR: f64 = 2e-4;

/// Time one SmolLM2 training step per method, Burn against PyTorch.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Methods: rlora, lora, hydralora, frozen (forward only).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rlora,lora,hydralora,frozen"
    )]
    methods: Vec<String>,
    /// Rows per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens per row.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Answer positions per row (the last ones), where the loss is taken.
    #[arg(long, default_value_t = 8)]
    answer: usize,
    /// Timed rounds (each runs every method's step once on each side).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Untimed steps per method and side first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Threads of each side (Burn: `RAYON_NUM_THREADS`, unless already set;
    /// PyTorch: `torch.set_num_threads`).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Adapter rank.
    #[arg(long, default_value_t = 4)]
    rank: usize,
    /// Adapter alpha (scaling `alpha / sqrt(rank)`).
    #[arg(long, default_value_t = 32.0)]
    alpha: f64,
    /// Heads of HydraLoRA and R-LoRA.
    #[arg(long, default_value_t = 5)]
    heads: usize,
    /// Adapter dropout.
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
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
    #[arg(long, default_value = "benches/torch_smollm_step.py")]
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
    /// Instead of the comparison: Burn's step split into its phases
    /// (forward, head and loss, backward, gradients, optimizer), each timed
    /// alone, over `--rounds` steps per method.
    #[arg(long)]
    profile: bool,
    /// Write the inputs for `torch_smollm_step.py --inputs` here and exit.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Leave glibc's allocator at its defaults.
    #[arg(long)]
    system_malloc: bool,
    /// Compute the feed-forward SiLU with the host kernels
    /// (`CausalLm::with_host_ops`) instead of Burn's `silu`.
    #[arg(long)]
    host_kernels: bool,
    /// Internal: print this method's peak RSS over two steps and exit.
    #[arg(long, hide = true)]
    peak_of: Option<String>,
}

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// The plain model's forward and loss, no gradients.
    Frozen,
    /// One head, no router.
    Lora,
    /// Zero heads, router, dropout on `x`.
    HydraLora,
    /// Random heads, router, multi-head dropout.
    RLora,
}

impl Method {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "frozen" => Self::Frozen,
            "lora" => Self::Lora,
            "hydralora" => Self::HydraLora,
            "rlora" => Self::RLora,
            other => bail!("unknown method {other:?} (rlora, lora, hydralora, frozen)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Frozen => "frozen",
            Self::Lora => "lora",
            Self::HydraLora => "hydralora",
            Self::RLora => "rlora",
        }
    }

    /// The adapter of the recipe; `None` for the frozen model.
    fn config(self, a: &Args) -> Option<RLoraConfig> {
        let c = match self {
            Self::Frozen => return None,
            Self::Lora => RLoraConfig::lora(a.rank, a.alpha).with_rank_stabilized(true),
            Self::HydraLora => {
                RLoraConfig::hydra_lora(a.rank, a.alpha, a.heads).with_rank_stabilized(true)
            }
            Self::RLora => RLoraConfig::r_lora(a.rank, a.alpha, a.heads),
        };
        Some(c.with_dropout(a.dropout))
    }

    /// The adapter's settings for the PyTorch rendering.
    fn spec(self, a: &Args) -> Value {
        match self.config(a) {
            None => Value::Null,
            Some(c) => json!({
                "kind": self.name(),
                "rank": c.rank,
                "heads": c.num_heads,
                "dropout": c.dropout,
                "scaling": c.scaling(),
                "stable_gamma": c.stable_gamma,
                "targets": TARGETS,
            }),
        }
    }
}

/// The synthetic batch: token ids and the answer positions.
struct Inputs {
    ids: Vec<Vec<u32>>,
    answer_start: usize,
}

impl Inputs {
    fn new(a: &Args, vocab: usize) -> Self {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Ids above the control tokens, below the vocabulary.
        let ids = (0..a.batch)
            .map(|_| {
                (0..a.seq)
                    .map(|_| (1000 + next() % (vocab as u64 - 1000)) as u32)
                    .collect()
            })
            .collect();
        Self {
            ids,
            answer_start: a.seq - a.answer,
        }
    }

    fn sequences(&self) -> Vec<AnswerSequence> {
        self.ids
            .iter()
            .map(|ids| AnswerSequence::new(ids.clone(), self.answer_start, 0))
            .collect()
    }

    fn batch<B: Backend>(&self, device: &B::Device) -> Result<AnswerBatch<B>> {
        Ok(AnswerBatch::new(&self.sequences(), 0, device)?)
    }

    /// The positions and targets as `AnswerBatch` computes them, flat.
    fn positions_and_targets(&self) -> (Vec<usize>, Vec<u32>) {
        let seq = self.ids[0].len();
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        for (r, ids) in self.ids.iter().enumerate() {
            for p in self.answer_start - 1..seq - 1 {
                positions.push(r * seq + p);
                targets.push(ids[p + 1]);
            }
        }
        (positions, targets)
    }
}

/// One training step: forward, loss, backward, Adam over what has a gradient.
fn train_step<B: AutodiffBackend, O: Optimizer<Model<B>, B>>(
    model: Model<B>,
    optim: &mut O,
    batch: &AnswerBatch<B>,
) -> Model<B> {
    let (loss, _) = answer_loss(&model, batch).expect("the batch fits the model");
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let _: f32 = loss.into_scalar().elem();
    optim.step(LR, model, grads)
}

/// The frozen model's forward and loss.
fn frozen_step<B: Backend>(model: &Model<B>, batch: &AnswerBatch<B>) -> f32 {
    let (loss, _) = answer_loss(model, batch).expect("the batch fits the model");
    loss.into_scalar().elem()
}

/// A method's state on the Burn side.
enum BurnJob {
    Frozen(Box<Model<burn::backend::Flex>>),
    Train {
        model: Option<Box<Model<Ad>>>,
        optim: burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, Model<Ad>, Ad>,
    },
}

/// The Burn model of `method` on `base` (which stays plain).
fn build(method: Method, base: &Model<Ad>, a: &Args) -> Result<BurnJob> {
    let base = &base.clone().with_host_ops(a.host_kernels);
    Ok(match method.config(a) {
        None => BurnJob::Frozen(Box::new(base.valid())),
        Some(c) => {
            let adapted = AdaptConfig::new(c, TargetModules::names(TARGETS)).adapt(base.clone())?;
            BurnJob::Train {
                model: Some(Box::new(adapted)),
                optim: AdamConfig::new().init::<Ad, Model<Ad>>(),
            }
        }
    })
}

impl BurnJob {
    fn step(&mut self, train: &AnswerBatch<Ad>, eval: &AnswerBatch<burn::backend::Flex>) {
        match self {
            BurnJob::Frozen(m) => {
                frozen_step(m, eval);
            }
            BurnJob::Train { model, optim } => {
                let m = model.take().expect("the model is put back after each step");
                *model = Some(Box::new(train_step(*m, optim, train)));
            }
        }
    }
}

/// The PyTorch side, a child process answering `step METHOD` lines.
struct Torch(JsonChild);

fn torch_command(a: &Args, dump: &Path, cache: &Path, data_dir: &Path) -> Command {
    child::torch_command(
        &a.python,
        &a.torch_script,
        dump,
        cache,
        data_dir,
        &a.gguf,
        a.threads,
    )
}

impl Torch {
    fn spawn(mut cmd: Command, methods: &[Method]) -> Result<(Self, Value)> {
        let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
        cmd.args(["--serve", "--methods", &names.join(",")]);
        let (child, ready) = JsonChild::spawn(cmd)?;
        Ok((Self(child), ready))
    }

    /// One step of `method`; its time in milliseconds, as the child measured it.
    fn step(&mut self, method: Method) -> Result<f64> {
        let v = self.0.request(&format!("step {}", method.name()))?;
        v["ms"].as_f64().ok_or_else(|| anyhow!("no time in {v}"))
    }

    fn quit(self) -> Result<()> {
        self.0.quit()
    }
}

fn main() {
    bench_main::<Args>(real_main);
}

fn real_main(a: Args) -> Result<()> {
    let methods = configure(&a)?;
    let data_dir = a.data_dir.clone().unwrap_or_else(default_data_dir);
    let device = Default::default();
    Ad::seed(&device, 0);
    if let Some(m) = &a.peak_of {
        return peak_of(&a, Method::parse(m)?, &data_dir.join(&a.gguf));
    }
    let tmp = std::env::temp_dir().join(format!("burn-rlora-smollm-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let run = Run {
        dump: a.dump.clone().unwrap_or_else(|| tmp.join("inputs.json")),
        cache: a
            .torch_cache
            .clone()
            .unwrap_or_else(|| child::torch_cache_for(&a.gguf)),
        a,
        methods,
        data_dir,
    };
    let result = compare(&run, &device);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// What the parts of a comparison share.
struct Run {
    a: Args,
    methods: Vec<Method>,
    data_dir: PathBuf,
    /// The inputs for the PyTorch side.
    dump: PathBuf,
    /// The PyTorch side's dequantized model.
    cache: PathBuf,
}

/// Threads and allocator for this process, the arguments checked, the methods parsed.
fn configure(a: &Args) -> Result<Vec<Method>> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Before flex's pool exists: it reads this when it starts.
        std::env::set_var("RAYON_NUM_THREADS", a.threads.to_string());
    }
    if !a.system_malloc && !keep_freed_memory() {
        eprintln!("warning: could not set the allocator's parameters");
    }
    if a.rounds == 0 || a.batch == 0 || a.answer == 0 || a.answer >= a.seq {
        bail!("--rounds and --batch must be at least 1, --answer between 1 and --seq - 1");
    }
    a.methods.iter().map(|m| Method::parse(m)).collect()
}

/// The Burn side's batch, for training (autodiff) and for the frozen forward.
type Batches = (AnswerBatch<Ad>, AnswerBatch<burn::backend::Flex>);

/// Load the model, write the inputs, then time (or profile) and report.
fn compare(run: &Run, device: &burn::tensor::Device<Ad>) -> Result<()> {
    let a = &run.a;
    let start = Instant::now();
    let smol = Llm::<Ad>::load(run.data_dir.join(&run.a.gguf), device)?;
    eprintln!(
        "burn: model loaded in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let inputs = Inputs::new(a, smol.config.vocab_size);
    let batches: Batches = (inputs.batch(device)?, inputs.batch(device)?);
    let frozen_loss = frozen_step(&smol.model.valid(), &batches.1);
    write_dump(a, &run.methods, &inputs, frozen_loss, &run.dump)?;
    if a.dump.is_some() {
        eprintln!("wrote {}", run.dump.display());
        return Ok(());
    }
    let mut jobs = run
        .methods
        .iter()
        .map(|&m| build(m, &smol.model, a))
        .collect::<Result<Vec<_>>>()?;
    drop(smol);
    if a.profile {
        return profile(a, &run.methods, &mut jobs, &batches.0);
    }

    let mut torch = None;
    if !a.no_torch {
        let cmd = torch_command(a, &run.dump, &run.cache, &run.data_dir);
        let (t, ready) = Torch::spawn(cmd, &run.methods)?;
        eprintln!("torch ready: {ready} (Burn's frozen loss {frozen_loss:.6})");
        torch = Some((t, ready));
    }
    let cpu = cpu();
    let load_before = load_avg();
    let (burn_ms, torch_ms) =
        time_rounds(run, &mut jobs, &batches, torch.as_mut().map(|t| &mut t.0))?;
    let load_after = load_avg();
    let torch_info = match torch {
        Some((t, ready)) => {
            t.quit()?;
            Some(ready)
        }
        None => None,
    };
    drop(jobs);
    let peaks = measure_peaks(run)?;

    let report = Report {
        a,
        methods: &run.methods,
        burn_ms: &burn_ms,
        torch_ms: &torch_ms,
        peaks: &peaks,
    };
    report.print(&cpu, &load_before, &load_after, torch_info.as_ref());
    if let Some(path) = &a.json {
        let v = report.json(&cpu, &load_before, &load_after, torch_info.as_ref());
        std::fs::write(path, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Each method's step times in milliseconds, one per round.
type Times = Vec<Vec<f64>>;

/// Warm-up steps, then `--rounds` rounds: every method's step once on each
/// side, one side at a time, the methods' order rotating and the side that
/// goes first alternating. Returns each method's Burn and PyTorch times (ms).
fn time_rounds(
    run: &Run,
    jobs: &mut [BurnJob],
    (train, eval): &Batches,
    mut torch: Option<&mut Torch>,
) -> Result<(Times, Times)> {
    let (a, methods) = (&run.a, &run.methods);
    eprintln!(
        "timing: {} rounds after {} warm-up steps; load {}",
        a.rounds,
        a.warmup,
        load_avg()
    );
    for (job, &m) in jobs.iter_mut().zip(methods) {
        for _ in 0..a.warmup {
            job.step(train, eval);
            if let Some(t) = torch.as_deref_mut() {
                t.step(m)?;
            }
        }
    }
    let n = methods.len();
    let mut burn_ms = vec![Vec::new(); n];
    let mut torch_ms = vec![Vec::new(); n];
    for k in 0..a.rounds {
        for j in 0..n {
            let i = (j + k) % n;
            let burn_first = (k + j) % 2 == 0;
            if let (false, Some(t)) = (burn_first, torch.as_deref_mut()) {
                torch_ms[i].push(t.step(methods[i])?);
            }
            let start = Instant::now();
            jobs[i].step(train, eval);
            burn_ms[i].push(start.elapsed().as_secs_f64() * 1e3);
            if let (true, Some(t)) = (burn_first, torch.as_deref_mut()) {
                torch_ms[i].push(t.step(methods[i])?);
            }
            eprintln!(
                "round {k}: {} burn {:.0} ms{}",
                methods[i].name(),
                burn_ms[i].last().copied().unwrap_or(f64::NAN),
                torch_ms[i]
                    .last()
                    .map_or(String::new(), |t| format!(", torch {t:.0} ms"))
            );
        }
    }
    Ok((burn_ms, torch_ms))
}

/// Each method's peak RSS on each side, in fresh processes (unless `--no-peak`).
fn measure_peaks(run: &Run) -> Result<Vec<(Option<f64>, Option<f64>)>> {
    let mut peaks = vec![(None, None); run.methods.len()];
    if run.a.no_peak {
        return Ok(peaks);
    }
    for (peak, &m) in peaks.iter_mut().zip(&run.methods) {
        peak.0 = burn_peak(&run.a, m)?;
        if !run.a.no_torch {
            peak.1 = torch_peak(&run.a, m, &run.dump, &run.cache, &run.data_dir)?;
        }
    }
    Ok(peaks)
}

fn write_dump(
    a: &Args,
    methods: &[Method],
    inputs: &Inputs,
    frozen_loss: f32,
    path: &Path,
) -> Result<()> {
    let (positions, targets) = inputs.positions_and_targets();
    let specs: serde_json::Map<String, Value> = methods
        .iter()
        .map(|m| (m.name().to_string(), m.spec(a)))
        .collect();
    let dump = json!({
        "batch": a.batch, "seq": a.seq, "answer": a.answer, "lr": LR,
        "ids": inputs.ids, "positions": positions, "targets": targets,
        "methods": specs, "burn_frozen_loss": frozen_loss,
    });
    std::fs::write(path, dump.to_string()).with_context(|| format!("writing {}", path.display()))
}

/// In this process: load, reset the peak, two steps of `method`, print the peak.
fn peak_of(a: &Args, method: Method, path: &Path) -> Result<()> {
    let device = Default::default();
    let smol = Llm::<Ad>::load(path, &device)?;
    let inputs = Inputs::new(a, smol.config.vocab_size);
    let train = inputs.batch::<Ad>(&device)?;
    let eval = inputs.batch::<burn::backend::Flex>(&device)?;
    let mut job = build(method, &smol.model, a)?;
    drop(smol);
    reset_peak_rss();
    job.step(&train, &eval);
    job.step(&train, &eval);
    println!("{}", json!({ "peak_rss_mib": peak_rss_mib() }));
    Ok(())
}

fn burn_peak(a: &Args, m: Method) -> Result<Option<f64>> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--peak-of", m.name()]);
    for (flag, v) in [
        ("--batch", a.batch.to_string()),
        ("--seq", a.seq.to_string()),
        ("--answer", a.answer.to_string()),
        ("--threads", a.threads.to_string()),
        ("--rank", a.rank.to_string()),
        ("--alpha", a.alpha.to_string()),
        ("--heads", a.heads.to_string()),
        ("--dropout", a.dropout.to_string()),
    ] {
        cmd.args([flag, &v]);
    }
    if let Some(d) = &a.data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    cmd.args(["--gguf", &a.gguf]);
    if a.system_malloc {
        cmd.arg("--system-malloc");
    }
    if a.host_kernels {
        cmd.arg("--host-kernels");
    }
    peak_line(cmd)
}

fn torch_peak(
    a: &Args,
    m: Method,
    dump: &Path,
    cache: &Path,
    data_dir: &Path,
) -> Result<Option<f64>> {
    let mut cmd = torch_command(a, dump, cache, data_dir);
    cmd.args(["--peak", m.name()]);
    peak_line(cmd)
}

/// The timings and peaks of a run, as a table and as JSON.
struct Report<'a> {
    a: &'a Args,
    methods: &'a [Method],
    burn_ms: &'a [Vec<f64>],
    torch_ms: &'a [Vec<f64>],
    peaks: &'a [(Option<f64>, Option<f64>)],
}

impl Report<'_> {
    fn tokens(&self) -> f64 {
        (self.a.batch * self.a.seq) as f64
    }

    /// Median Burn ms, median PyTorch ms, median paired ratio, for method `i`.
    fn cell(&self, i: usize) -> (f64, Option<f64>, Option<f64>) {
        let b = median(self.burn_ms[i].clone());
        if self.torch_ms[i].is_empty() {
            return (b, None, None);
        }
        let t = median(self.torch_ms[i].clone());
        let ratios = self.burn_ms[i]
            .iter()
            .zip(&self.torch_ms[i])
            .map(|(b, t)| b / t)
            .collect();
        (b, Some(t), Some(median(ratios)))
    }

    fn print(&self, cpu: &str, before: &str, after: &str, torch: Option<&Value>) {
        let a = self.a;
        println!(
            "SmolLM2-135M-Instruct step: batch {} x {} tokens, loss on {} answer positions per row; \
             adapters on {} (r {}, alpha {}, rsLoRA, {} heads, dropout {}); Adam lr {LR}; \
             {} rounds after {} warm-up; {} threads",
            a.batch,
            a.seq,
            a.answer,
            TARGETS.join(", "),
            a.rank,
            a.alpha,
            a.heads,
            a.dropout,
            a.rounds,
            a.warmup,
            a.threads
        );
        println!("CPU: {cpu}; load average before {before}, after {after}");
        if let Some(t) = torch {
            println!(
                "PyTorch {} ({} attention, {} threads); frozen loss {:.6} (difference to Burn's {:.1e})",
                t["torch"].as_str().unwrap_or("?"),
                t["attn"].as_str().unwrap_or("?"),
                t["threads"],
                t["frozen_loss"].as_f64().unwrap_or(f64::NAN),
                t["difference"].as_f64().unwrap_or(f64::NAN),
            );
        }
        println!();
        println!("| method | Burn s/step | PyTorch s/step | time Burn/PyTorch | Burn tokens/s | PyTorch tokens/s | Burn peak RSS MiB | PyTorch peak RSS MiB |");
        println!("|---|---|---|---|---|---|---|---|");
        let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
        for (i, m) in self.methods.iter().enumerate() {
            let (b, t, r) = self.cell(i);
            let label = match m {
                Method::Frozen => "frozen (forward only)",
                other => other.name(),
            };
            println!(
                "| {label} | {:.2} | {} | {} | {:.0} | {} | {} | {} |",
                b / 1e3,
                opt(t, &|t| format!("{:.2}", t / 1e3)),
                opt(r, &|r| format!("{r:.2}")),
                self.tokens() / (b / 1e3),
                opt(t, &|t| format!("{:.0}", self.tokens() / (t / 1e3))),
                opt(self.peaks[i].0, &|p| format!("{p:.0}")),
                opt(self.peaks[i].1, &|p| format!("{p:.0}")),
            );
        }
    }

    fn json(&self, cpu: &str, before: &str, after: &str, torch: Option<&Value>) -> Value {
        let rows: serde_json::Map<String, Value> = self
            .methods
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (b, t, r) = self.cell(i);
                (
                    m.name().to_string(),
                    json!({
                        "burn_ms": b, "torch_ms": t, "ratio": r,
                        "burn_tokens_per_s": self.tokens() / (b / 1e3),
                        "torch_tokens_per_s": t.map(|t| self.tokens() / (t / 1e3)),
                        "burn_peak_rss_mib": self.peaks[i].0, "torch_peak_rss_mib": self.peaks[i].1,
                        "burn_times_ms": self.burn_ms[i], "torch_times_ms": self.torch_ms[i],
                    }),
                )
            })
            .collect();
        json!({"cpu": cpu, "load_before": before, "load_after": after, "torch": torch, "methods": rows})
    }
}

/// Burn's step in phases, each synchronized (flex computes eagerly, so a
/// call's time is its work): the decoder's forward, the head and loss, the
/// backward, the gradients' collection, the optimizer step.
fn profile(
    a: &Args,
    methods: &[Method],
    jobs: &mut [BurnJob],
    train: &AnswerBatch<Ad>,
) -> Result<()> {
    println!("| method | forward (decoder) ms | head + loss ms | backward ms | collect gradients ms | Adam ms | step ms |");
    println!("|---|---|---|---|---|---|---|");
    for (&m, job) in methods.iter().zip(jobs.iter_mut()) {
        let BurnJob::Train { model, optim } = job else {
            continue;
        };
        let mut phases = vec![Vec::new(); 6];
        for k in 0..a.warmup + a.rounds {
            let mut lap = Lap::new();
            let mdl = *model.take().expect("put back");
            let hidden = mdl.hidden(train.tokens.clone(), None)?;
            let t_fwd = lap.next();
            let [b, s, d] = hidden.dims();
            let rows = hidden
                .reshape([b * s, d])
                .select(0, train.positions.clone());
            let logits = mdl.head(rows);
            let log_probs = burn::tensor::activation::log_softmax(logits, 1);
            let nt = train.rows.len();
            let loss = log_probs
                .gather(1, train.targets.clone().reshape([nt, 1]))
                .mean()
                .neg();
            let _: f32 = loss.clone().into_scalar().elem();
            let t_head = lap.next();
            let grads = loss.backward();
            let t_bwd = lap.next();
            let grads = GradientsParams::from_grads(grads, &mdl);
            let t_collect = lap.next();
            *model = Some(Box::new(optim.step(LR, mdl, grads)));
            let t_adam = lap.next();
            if k >= a.warmup {
                let all = [t_fwd, t_head, t_bwd, t_collect, t_adam];
                for (p, v) in phases.iter_mut().zip(all) {
                    p.push(v);
                }
                phases[5].push(all.iter().sum());
            }
        }
        let med: Vec<f64> = phases.into_iter().map(median).collect();
        println!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} |",
            m.name(),
            med[0],
            med[1],
            med[2],
            med[3],
            med[4],
            med[5]
        );
    }
    Ok(())
}

/// Milliseconds between calls.
struct Lap(Instant);

impl Lap {
    fn new() -> Self {
        Self(Instant::now())
    }

    fn next(&mut self) -> f64 {
        let now = Instant::now();
        let ms = (now - self.0).as_secs_f64() * 1e3;
        self.0 = now;
        ms
    }
}
