//! End-to-end speed on the real job: the MiniLM multi-task training step
//! (forward, loss, backward, Adam over the adapters and heads) and the
//! evaluation forward, with the pretrained all-MiniLM-L6-v2 from `data/`, on
//! batches of real sentences padded to a fixed length.
//!
//! ```text
//! cargo run --release -p burn-rlora-benches --bin e2e -- --rounds 7
//! cargo run --release -p burn-rlora-benches --bin e2e -- --learner     # also through the Learner
//! cargo run --release -p burn-rlora-benches --bin e2e -- --dump e2e.json  # inputs for torch_minilm_step.py
//! ```
//!
//! The methods' steps are interleaved round by round (as in `ratios`), so a
//! shared machine's load hits them alike. `benches/e2e.sh` runs this binary
//! and the PyTorch rendering alternately and prints the paired ratios.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamConfig, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use burn::train::{InferenceStep, TrainStep};
use burn_rlora::multitask::{
    MultiTaskBatch, MultiTaskClassifier, SamplingStrategy, TaskHeads, TaskId,
};
use burn_rlora_benches::child::bench_main;
use burn_rlora_benches::{interleave, keep_freed_memory, Timing};
use burn_rlora_examples::harness::compare::{peak_rss_mib, reset_peak_rss, RunSpec, TrainSettings};
use burn_rlora_pretrained::datasets::default_data_dir;
use burn_rlora_pretrained::minilm::{
    build_classifier, minilm_adapter, prepare_tasks, run_minilm, BertConfig, BertInput, BertModel,
    MiniLmMethod, MiniLmPaths, MiniLmSource, MiniLmTokenizer, PreparedTask, SplitSettings, PAD_ID,
};
use clap::Parser;
use serde_json::{json, Value};

/// Time the MiniLM multi-task training step and evaluation per method.
#[derive(Parser, Debug)]
struct Args {
    /// Backend: flex, ndarray; cuda, cuda-bf16 with `--features cuda`.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Methods: probe, lora, hydralora, rlora (any of minilm-multitask's).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rlora,lora,hydralora,probe"
    )]
    methods: Vec<String>,
    /// Data directory written by scripts/fetch-data.sh (default: $BURN_RLORA_DATA, else data/).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Training batch size.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Evaluation batch size.
    #[arg(long, default_value_t = 64)]
    eval_batch_size: usize,
    /// Tokens per sequence: every batch is padded (or truncated) to this.
    #[arg(long, default_value_t = 64)]
    seq: usize,
    /// How the encoder computes GELU and dropout masks: `host` (its host
    /// kernels on the CPU backends, the default) and/or `burn` (Burn's `gelu`
    /// and `Dropout`); with both, each method is timed both ways, interleaved.
    #[arg(long, value_delimiter = ',', default_value = "host")]
    ops: Vec<String>,
    /// Distinct training batches, used in turn.
    #[arg(long, default_value_t = 6)]
    batches: usize,
    /// Timed rounds (each runs every method's step and evaluation once).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Untimed steps per job first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Also train one epoch through burn-train's Learner (as `minilm-multitask`
    /// does: data loader, metrics, validation, checkpoint) per method.
    #[arg(long)]
    learner: bool,
    /// Training examples per task for `--learner` (10% of them validate).
    #[arg(long, default_value_t = 120)]
    learner_train_per_task: usize,
    /// Write the batches, the methods' adapter settings and the plain
    /// encoder's eval-mode features of the first batch as JSON for
    /// `benches/torch_minilm_step.py`, and exit.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Without the fetched data: randomly initialized all-MiniLM-L6-v2 weights
    /// and random token ids (for a machine without `data/`, such as a GPU server).
    #[arg(long)]
    synthetic: bool,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Leave glibc's allocator at its defaults.
    #[arg(long)]
    system_malloc: bool,
}

type Model<B> = MultiTaskClassifier<B, BertModel<B>>;

/// One batch's rows, before it becomes tensors: ids padded to `seq`, mask, label, task.
#[derive(Debug, Clone)]
struct Rows {
    ids: Vec<Vec<i64>>,
    mask: Vec<Vec<i64>>,
    labels: Vec<i64>,
    tasks: Vec<usize>,
}

impl Rows {
    fn to_batch<B: Backend>(&self, device: &B::Device) -> MultiTaskBatch<B, BertInput<B>> {
        let (batch, seq) = (self.ids.len(), self.ids[0].len());
        let t = |rows: &[Vec<i64>]| {
            Tensor::<B, 2, Int>::from_data(TensorData::new(rows.concat(), [batch, seq]), device)
        };
        MultiTaskBatch {
            inputs: BertInput {
                input_ids: t(&self.ids),
                token_type_ids: Tensor::zeros([batch, seq], device),
                attention_mask: t(&self.mask),
            },
            targets: Tensor::from_data(TensorData::new(self.labels.clone(), [batch]), device),
            tasks: self.tasks.iter().map(|&t| TaskId(t)).collect(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"ids": self.ids, "mask": self.mask, "labels": self.labels, "tasks": self.tasks})
    }
}

/// `count` batches of `size` rows taken round-robin over the tasks' training
/// examples (so every batch mixes the tasks), each padded or cut to `seq`.
fn make_batches(tasks: &[PreparedTask], size: usize, count: usize, seq: usize) -> Vec<Rows> {
    let mut cursors = vec![0usize; tasks.len()];
    let mut next = 0usize;
    (0..count)
        .map(|_| {
            let mut rows = Rows {
                ids: Vec::new(),
                mask: Vec::new(),
                labels: Vec::new(),
                tasks: Vec::new(),
            };
            for _ in 0..size {
                let t = next % tasks.len();
                next += 1;
                let (tokens, label) = &tasks[t].train[cursors[t] % tasks[t].train.len()];
                cursors[t] += 1;
                let n = tokens.len().min(seq);
                let mut ids: Vec<i64> = tokens[..n].iter().map(|&v| v as i64).collect();
                ids.resize(seq, PAD_ID as i64);
                let mut mask = vec![1i64; n];
                mask.resize(seq, 0);
                rows.ids.push(ids);
                rows.mask.push(mask);
                rows.labels.push(*label as i64);
                rows.tasks.push(t);
            }
            rows
        })
        .collect()
}

/// One training step: forward, loss, backward, and an optimizer step over
/// the parameters that require a gradient.
fn train_step<B: AutodiffBackend, O: Optimizer<Model<B>, B>>(
    model: Model<B>,
    optim: &mut O,
    batch: MultiTaskBatch<B, BertInput<B>>,
) -> Model<B> {
    let out = TrainStep::step(&model, batch);
    let _: f32 = out.item.loss.clone().into_scalar().elem();
    optim.step(1e-3, model, out.grads)
}

struct Settings {
    /// `None` with `--synthetic`.
    data_dir: Option<PathBuf>,
    classes: Vec<usize>,
    methods: Vec<MiniLmMethod>,
    train: TrainSettings,
    tasks: Vec<PreparedTask>,
    train_batches: Vec<Rows>,
    eval_batches: Vec<Rows>,
}

fn settings(batch_size: usize) -> TrainSettings {
    TrainSettings {
        rank: 4,
        heads: 4,
        alpha: 16.0,
        dropout: 0.1,
        epochs: 1,
        batch_size,
        lr: 1e-3,
        balance: 0.0,
        sampling: SamplingStrategy::Temperature(2.0),
        devices: 1,
        trace_every: 0,
        plain: true,
        resume: false,
        steps: Default::default(),
    }
}

fn tokens_per_s(rows: usize, seq: usize, ms: f64) -> f64 {
    (rows * seq) as f64 / (ms / 1e3)
}

/// Time every method's training step and evaluation on backend `B`,
/// interleaved round by round, print the table and return its figures (and
/// the Learner's with `--learner`) under the backend's name.
fn run<B: AutodiffBackend>(args: &Args, s: &Settings) -> Result<Value> {
    let device = B::Device::default();
    B::seed(&device, 0);
    let train: Vec<_> = s
        .train_batches
        .iter()
        .map(|r| r.to_batch::<B>(&device))
        .collect();
    let eval: Vec<_> = s
        .eval_batches
        .iter()
        .map(|r| r.to_batch::<B::InnerBackend>(&device))
        .collect();
    let (models, labels) = build_models::<B>(args, s, &device)?;
    let peaks = peak_memory(&models, &train);
    let timings = time_interleaved(args, &models, &train, &eval);
    let mut out = print_timings(args, &labels, &timings, &peaks);
    if args.learner {
        learner::<B>(args, s, &device, &mut out)?;
    }
    Ok(json!({ args.backend.clone(): out }))
}

/// One model per method and `--ops` choice, with its label in the table
/// (the ops named only when there are several).
fn build_models<B: AutodiffBackend>(
    args: &Args,
    s: &Settings,
    device: &B::Device,
) -> Result<(Vec<Model<B>>, Vec<String>)> {
    let mut models = Vec::new();
    let mut labels = Vec::new();
    for &m in &s.methods {
        let model = match &s.data_dir {
            Some(dir) => build_classifier::<B>(dir, m, &s.train, args.seq, &s.tasks, device)?.1,
            None => synthetic_classifier::<B>(m, s, device)?,
        };
        for ops in &args.ops {
            let host = match ops.as_str() {
                "host" => true,
                "burn" => false,
                other => bail!("--ops: unknown {other:?} (host, burn)"),
            };
            let mut model = model.clone();
            model.body = model.body.with_host_ops(host);
            models.push(model);
            labels.push(if args.ops.len() > 1 {
                format!("{m} ({ops} ops)")
            } else {
                m.to_string()
            });
        }
    }
    Ok((models, labels))
}

/// Peak memory of each model alone, a few training steps after a reset.
fn peak_memory<B: AutodiffBackend>(
    models: &[Model<B>],
    train: &[MultiTaskBatch<B, BertInput<B>>],
) -> Vec<Option<f64>> {
    let mut peaks = Vec::new();
    for model in models {
        reset_peak_rss();
        let mut optim = AdamConfig::new().init::<B, Model<B>>();
        let mut m = model.clone();
        for b in train.iter().take(2) {
            m = train_step(m, &mut optim, b.clone());
        }
        peaks.push(peak_rss_mib());
    }
    peaks
}

/// Interleaved timing: every model's training step (on the training
/// batches in turn), then every model's evaluation; the timings of the
/// training steps first, then those of the evaluations, in model order.
fn time_interleaved<B: AutodiffBackend>(
    args: &Args,
    models: &[Model<B>],
    train: &[MultiTaskBatch<B, BertInput<B>>],
    eval: &[MultiTaskBatch<B::InnerBackend, BertInput<B::InnerBackend>>],
) -> Vec<Timing> {
    let mut states: Vec<_> = models
        .iter()
        .map(|m| {
            (
                Some(m.clone()),
                AdamConfig::new().init::<B, Model<B>>(),
                0usize,
            )
        })
        .collect();
    let inner: Vec<_> = models.iter().map(|m| m.valid()).collect();
    let mut jobs: Vec<Box<dyn FnMut() + '_>> = states
        .iter_mut()
        .map(|(model, optim, k)| {
            Box::new(move || {
                let m = model.take().expect("model is put back after each step");
                let batch = train[*k % train.len()].clone();
                *k += 1;
                *model = Some(train_step(m, optim, batch));
            }) as Box<dyn FnMut() + '_>
        })
        .collect();
    for model in &inner {
        let mut k = 0usize;
        jobs.push(Box::new(move || {
            let out = InferenceStep::step(model, eval[k % eval.len()].clone());
            k += 1;
            let _: f32 = out.loss.into_scalar().elem();
        }));
    }
    interleave(&mut jobs, args.rounds, args.warmup)
}

/// Print the table of the models' training and evaluation times (as
/// [`time_interleaved`] orders them) and peak memory; the same figures by
/// label.
fn print_timings(
    args: &Args,
    labels: &[String],
    timings: &[Timing],
    peaks: &[Option<f64>],
) -> BTreeMap<String, Value> {
    let n = labels.len();
    let mut out = BTreeMap::new();
    println!(
        "| backend | method | train step ms | train tokens/s | eval batch ms | eval tokens/s | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, m) in labels.iter().enumerate() {
        let (tr, ev) = (timings[i], timings[n + i]);
        let train_tps = tokens_per_s(args.batch_size, args.seq, tr.median_ms);
        let eval_tps = tokens_per_s(args.eval_batch_size, args.seq, ev.median_ms);
        let peak = peaks[i].map_or("-".into(), |p| format!("{p:.0}"));
        println!(
            "| {} | {m} | {:.1} | {train_tps:.0} | {:.1} | {eval_tps:.0} | {peak} |",
            args.backend, tr.median_ms, ev.median_ms
        );
        out.insert(
            m.clone(),
            json!({
                "train_ms": tr.median_ms, "train_tokens_per_s": train_tps,
                "eval_ms": ev.median_ms, "eval_tokens_per_s": eval_tps,
                "peak_rss_mib": peaks[i],
            }),
        );
    }
    out
}

/// The classifier of `m` on a randomly initialized all-MiniLM-L6-v2.
fn synthetic_classifier<B: AutodiffBackend>(
    m: MiniLmMethod,
    s: &Settings,
    device: &B::Device,
) -> Result<Model<B>> {
    let config = BertConfig::minilm_l6();
    let encoder = config.init::<B>(device)?;
    // Draw the lazily initialized parameters before adapting (see BertConfig::init).
    let _ = encoder.forward(&s.train_batches[0].to_batch::<B>(device).inputs);
    let encoder = match minilm_adapter(m, &s.train, &config) {
        None => encoder.no_grad(),
        Some((_, adapters)) => encoder.adapt(&adapters)?,
    };
    let heads = TaskHeads::new(config.hidden_size, &s.classes, device);
    Ok(MultiTaskClassifier::new(encoder, heads))
}

/// `count` batches of random token ids (all real tokens) for `classes.len()` tasks.
fn synthetic_batches(
    classes: &[usize],
    size: usize,
    count: usize,
    seq: usize,
    vocab: usize,
) -> Vec<Rows> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as i64
    };
    (0..count)
        .map(|_| {
            let tasks: Vec<usize> = (0..size).map(|i| i % classes.len()).collect();
            Rows {
                ids: (0..size)
                    .map(|_| (0..seq).map(|_| 1000 + next(vocab - 1000)).collect())
                    .collect(),
                mask: vec![vec![1; seq]; size],
                labels: tasks.iter().map(|&t| next(classes[t])).collect(),
                tasks,
            }
        })
        .collect()
}

/// One epoch through the Learner per method, as `minilm-multitask` runs it.
fn learner<B: AutodiffBackend>(
    args: &Args,
    s: &Settings,
    device: &B::Device,
    out: &mut BTreeMap<String, Value>,
) -> Result<()> {
    let split = SplitSettings {
        test_fraction: 0.2,
        train_per_task: args.learner_train_per_task,
        test_per_task: 16,
        split_seed: 2025,
    };
    let Some(data_dir) = &s.data_dir else {
        bail!("--learner needs the fetched data (not --synthetic)");
    };
    let paths = MiniLmPaths::in_data_dir(data_dir)?;
    let tokenizer = MiniLmTokenizer::from_file(&paths.tokenizer, args.seq)?;
    let tasks = prepare_tasks(data_dir, &tokenizer, &split)?;
    let train_rows: usize = tasks
        .iter()
        .map(|t| t.train.len() - (t.train.len() / 10).max(1))
        .sum();
    let dir = std::env::temp_dir().join(format!("burn-rlora-e2e-{}", std::process::id()));
    println!();
    println!("| backend | method | Learner epoch s (validation, checkpoint included) | train rows | padded tokens/s |");
    println!("|---|---|---|---|---|");
    for &m in &s.methods {
        let mut settings = settings(args.batch_size);
        settings.sampling = s.train.sampling;
        let run = RunSpec::new(&settings, 0, dir.join(m.name()), vec![device.clone()]);
        let source = MiniLmSource {
            data_dir: data_dir.clone(),
            max_len: args.seq,
            // The Learner's epoch computes as the first of --ops says.
            host_kernels: args.ops.first().is_some_and(|o| o == "host"),
        };
        let r = run_minilm::<B>(&tasks, &source, m, run)?;
        // Upper bound: every batch padded to `seq` (its longest sequence
        // reaches `seq` on this data).
        let tps = (train_rows * args.seq) as f64 / r.train_seconds;
        println!(
            "| {} | {m} | {:.1} | {train_rows} | {tps:.0} |",
            args.backend, r.train_seconds
        );
        if let Some(Value::Object(o)) = out.get_mut(m.name()) {
            o.insert("learner_epoch_s".into(), json!(r.train_seconds));
            o.insert("learner_train_rows".into(), json!(train_rows));
            o.insert("learner_tokens_per_s".into(), json!(tps));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The adapter settings of each method, for the PyTorch rendering.
fn method_specs(s: &Settings, config: &BertConfig) -> Value {
    let mut specs = serde_json::Map::new();
    for &m in &s.methods {
        let spec = match minilm_adapter(m, &s.train, config) {
            None => json!(null),
            Some((rank, a)) => {
                let c = &a.adapter;
                json!({
                    "rank": rank,
                    "heads": c.num_heads,
                    "router": c.router == burn_rlora::RouterKind::Softmax,
                    "compensation": c.needs_compensation(),
                    "per_head_dropout": c.dropout_mode == burn_rlora::DropoutMode::PerHead,
                    "dropout": c.dropout,
                    "scaling": c.scaling(),
                    "targets": a.targets.iter().map(|t| t.hf_path()).collect::<Vec<_>>(),
                })
            }
        };
        specs.insert(m.name().to_string(), spec);
    }
    Value::Object(specs)
}

/// The plain encoder's eval-mode mean-pooled features of `rows`.
fn reference_features(data_dir: &Path, seq: usize, rows: &Rows) -> Result<Vec<Vec<f32>>> {
    type B = burn::backend::Flex;
    let device = Default::default();
    let pretrained =
        burn_rlora_pretrained::minilm::PretrainedMiniLm::<B>::load(data_dir, seq, &device)?;
    let input = rows.to_batch::<B>(&device).inputs;
    let features = pretrained.model.sentence_embedding(&input);
    let [b, h] = features.dims();
    let v: Vec<f32> = features.into_data().to_vec().context("features as f32")?;
    Ok((0..b).map(|i| v[i * h..(i + 1) * h].to_vec()).collect())
}

fn main() {
    bench_main::<Args>(real_main);
}

/// Check the options, load or draw the batches, then write the dump or time
/// the methods on the chosen backend.
fn real_main(args: Args) -> Result<()> {
    if !args.system_malloc && !keep_freed_memory() {
        eprintln!("warning: could not set the allocator's parameters");
    }
    let methods = checked_methods(&args)?;
    let s = if args.synthetic {
        synthetic_settings(&args, methods)
    } else {
        data_settings(&args, methods)?
    };
    if let Some(path) = &args.dump {
        return dump(&args, &s, path);
    }
    let result = match args.backend.as_str() {
        "flex" => run::<burn::backend::Autodiff<burn::backend::Flex>>(&args, &s)?,
        "ndarray" => run::<burn::backend::Autodiff<burn::backend::NdArray>>(&args, &s)?,
        #[cfg(feature = "cuda")]
        "cuda" => run::<burn::backend::Autodiff<burn::backend::Cuda>>(&args, &s)?,
        #[cfg(feature = "cuda")]
        "cuda-bf16" => {
            run::<burn::backend::Autodiff<burn::backend::Cuda<burn::tensor::bf16>>>(&args, &s)?
        }
        other => {
            eprintln!("error: unknown or not compiled backend '{other}' (flex, ndarray; cuda, cuda-bf16 with --features cuda)");
            std::process::exit(2);
        }
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Check the counts and the sequence length, and parse the methods.
fn checked_methods(args: &Args) -> Result<Vec<MiniLmMethod>> {
    if args.rounds == 0 || args.batches == 0 || args.batch_size == 0 || args.seq < 2 {
        bail!("--rounds, --batches and --batch-size must be at least 1, --seq at least 2");
    }
    let methods = args
        .methods
        .iter()
        .map(|m| m.parse::<MiniLmMethod>())
        .collect::<Result<Vec<_>, _>>()?;
    if args.seq > 512 {
        bail!("--seq {} exceeds the model's 512 positions", args.seq);
    }
    Ok(methods)
}

/// `--synthetic`: four tasks of 2, 3, 5 and 2 classes and batches of
/// random token ids, no data directory.
fn synthetic_settings(args: &Args, methods: Vec<MiniLmMethod>) -> Settings {
    let classes = vec![2, 3, 5, 2];
    let vocab = BertConfig::minilm_l6().vocab_size;
    Settings {
        data_dir: None,
        train_batches: synthetic_batches(&classes, args.batch_size, args.batches, args.seq, vocab),
        eval_batches: synthetic_batches(&classes, args.eval_batch_size, 2, args.seq, vocab),
        classes,
        methods,
        train: settings(args.batch_size),
        tasks: Vec::new(),
    }
}

/// The fetched data: the four tasks, tokenized and split as
/// `minilm-multitask` does by default, and batches of their sentences.
fn data_settings(args: &Args, methods: Vec<MiniLmMethod>) -> Result<Settings> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let paths = MiniLmPaths::in_data_dir(&data_dir)?;
    let tokenizer = MiniLmTokenizer::from_file(&paths.tokenizer, args.seq)?;
    let split = SplitSettings {
        test_fraction: 0.2,
        train_per_task: 400,
        test_per_task: 200,
        split_seed: 2025,
    };
    let start = Instant::now();
    let tasks = prepare_tasks(&data_dir, &tokenizer, &split)?;
    eprintln!("tasks prepared in {:.1} s", start.elapsed().as_secs_f64());
    Ok(Settings {
        data_dir: Some(data_dir),
        classes: tasks.iter().map(|t| t.labels.len()).collect(),
        train_batches: make_batches(&tasks, args.batch_size, args.batches, args.seq),
        eval_batches: make_batches(&tasks, args.eval_batch_size, 2, args.seq),
        methods,
        train: settings(args.batch_size),
        tasks,
    })
}

/// `--dump`: write the batches, the methods' adapter settings and the plain
/// encoder's features of the first batch to `path` as JSON.
fn dump(args: &Args, s: &Settings, path: &Path) -> Result<()> {
    let Some(data_dir) = &s.data_dir else {
        bail!("--dump needs the fetched data (not --synthetic)");
    };
    let config = BertConfig::from_json_file(MiniLmPaths::in_data_dir(data_dir)?.config)?;
    let features = reference_features(data_dir, args.seq, &s.train_batches[0])?;
    let dump = json!({
        "seq": args.seq,
        "batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "classes": s.classes,
        "hidden_dropout": config.hidden_dropout_prob,
        "attention_dropout": config.attention_probs_dropout_prob,
        "methods": method_specs(s, &config),
        "train_batches": s.train_batches.iter().map(Rows::to_json).collect::<Vec<_>>(),
        "eval_batches": s.eval_batches.iter().map(Rows::to_json).collect::<Vec<_>>(),
        "reference_features": features,
    });
    std::fs::write(path, dump.to_string())
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
