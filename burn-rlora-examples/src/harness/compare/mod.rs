//! Comparing methods: training one method with one seed through burn-train's
//! `Learner`, scoring it on the held-out split, and running every method and
//! seed of a comparison, resumable.
//!
//! Its parts: one run ([`fit_and_test`], [`test_accuracy`]), the splits
//! ([`ComparisonTask`], [`Splits`]), what a run produced ([`RunResult`]) and
//! the command-line value parsers ([`parse_sampling`] and the others).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn_rlora::method::Method;
use burn_rlora::multitask::{DenseCollate, MultiTaskClassifier, SamplingStrategy, TaskHeads};
use burn_rlora::{write_atomically, HeadSimilarity, RLoraConfig};
use serde::Serialize;

use crate::backend::{run_on, BackendJob, BackendName};
use crate::harness::report;
use crate::harness::trace::SimilarityTrace;
use crate::synthetic::{Benchmark, SyntheticBody, D_HIDDEN};

pub(crate) mod curves;
pub(crate) mod fit;
pub(crate) mod parse;
pub(crate) mod result;
pub(crate) mod splits;

pub use fit::{
    fit, fit_and_test, test_accuracy, CheckpointPrecision, Components, Fitted, InnerClassifier,
    ModelCollate, MultiTaskModel, RunStoppedEarly,
};
pub use parse::{
    parse_dropout, parse_fraction, parse_non_negative, parse_positive, parse_sampling, seed_range,
    MAX_TEMPERATURE, MIN_TEMPERATURE,
};
pub use result::{peak_rss_mib, reset_peak_rss, run_dir, RunRecord, RunResult};
pub use splits::{task_dataset, training_part, ComparisonTask, Splits};

/// Hyper-parameters shared by every method of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSettings {
    /// Rank of each R-LoRA/HydraLoRA head.
    pub rank: usize,
    /// Number of heads.
    pub heads: usize,
    /// The scaling numerator (rank-stabilized: `alpha / sqrt(r)` for every method).
    pub alpha: f64,
    /// Adapter dropout.
    pub dropout: f64,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Peak learning rate (3% linear warm-up, cosine decay).
    pub lr: f64,
    /// Router load-balance loss coefficient (0 = off).
    pub balance: f64,
    /// How tasks are mixed in training.
    #[serde(skip)]
    pub sampling: SamplingStrategy,
    /// Number of devices for data-parallel training.
    pub devices: usize,
    /// Record the head similarity every this many steps, where the body
    /// supports it (0 = off; traced on one device only).
    #[serde(skip)]
    pub trace_every: usize,
    /// Use the plain renderer even on a terminal.
    #[serde(skip)]
    pub plain: bool,
    /// Continue from what an earlier invocation left in the output directory
    /// (finished runs are read back, unfinished ones resume from their last
    /// complete epoch) instead of starting every run afresh.
    #[serde(skip)]
    pub resume: bool,
    /// Gradient accumulation and the learning-rate schedule (recorded only
    /// when not the defaults, so that earlier runs' settings are unchanged).
    #[serde(skip_serializing_if = "StepSettings::is_default")]
    pub steps: StepSettings,
}

/// How batches become optimizer steps, and the learning rate over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StepSettings {
    /// Batches whose gradients are summed into one optimizer step
    /// (burn-train's accumulation; 1 = none). With Adam, summing rather than
    /// averaging changes nothing but the epsilon's weight. The caller should
    /// make an epoch a whole number of steps (burn-train drops a last,
    /// incomplete accumulation).
    pub grad_accumulation: usize,
    /// The learning rate's schedule.
    pub schedule: LrSchedule,
}

impl StepSettings {
    /// Whether these are the defaults: no accumulation, warm-up and cosine.
    pub fn is_default(&self) -> bool {
        self.grad_accumulation <= 1 && self.schedule == LrSchedule::Cosine
    }
}

/// The learning rate over a run: a linear warm-up over the first 3% of the
/// batches, then...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// ... a cosine decay to 0 at the last batch (the default).
    #[default]
    Cosine,
    /// ... the peak rate until the end.
    Constant,
}

impl LrSchedule {
    /// The schedule of a run of `batches` batches peaking at `lr` (burn-train
    /// steps the rate once per batch, accumulated or not).
    pub fn scheduler(self, lr: f64, batches: usize) -> burn_rlora::multitask::WarmupCosineLr {
        let warmup = (batches * 3).div_ceil(100);
        let floor = match self {
            Self::Cosine => 0.0,
            Self::Constant => lr,
        };
        burn_rlora::multitask::WarmupCosineLr::new(lr, floor, warmup, batches)
    }
}

impl std::str::FromStr for LrSchedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cosine" => Ok(Self::Cosine),
            "constant" => Ok(Self::Constant),
            other => Err(format!(
                "unknown schedule {other:?} (cosine: 3% warm-up then cosine decay; constant: 3% \
                 warm-up then the peak rate)"
            )),
        }
    }
}

/// One run of a comparison, as [`fit_and_test`] and the trainers take it:
/// everything but the model, the data and the method.
#[derive(Debug, Clone)]
pub struct RunSpec<'a, B: Backend> {
    /// The settings shared by every run of the comparison.
    pub settings: &'a TrainSettings,
    /// The training seed: initial draws, task mix, batch order, dropout masks.
    pub seed: u64,
    /// The run's directory: checkpoints, the Learner's logs, the trained adapter.
    pub dir: PathBuf,
    /// The devices to train on; the first one holds the model.
    pub devices: Vec<B::Device>,
    /// The run's head-similarity trace ([`TrainSettings::similarity_trace`]):
    /// give a clone to the model, which feeds it, and to the [`RunRecord`];
    /// [`fit`] keeps its points in the run's directory so that a resumed run
    /// reports them all.
    pub trace: SimilarityTrace,
}

impl TrainSettings {
    /// The head-similarity trace of a run under these settings: a record
    /// every [`trace_every`](Self::trace_every) steps on one device (only
    /// there is one training forward pass one step), off otherwise.
    pub fn similarity_trace(&self) -> SimilarityTrace {
        if self.devices == 1 {
            SimilarityTrace::every(self.trace_every)
        } else {
            SimilarityTrace::default()
        }
    }
}

impl<'a, B: Backend> RunSpec<'a, B> {
    /// The run of `seed` under `settings` in `dir` on `devices`, with the
    /// trace the settings ask for ([`TrainSettings::similarity_trace`]).
    pub fn new(
        settings: &'a TrainSettings,
        seed: u64,
        dir: PathBuf,
        devices: Vec<B::Device>,
    ) -> Self {
        Self {
            settings,
            seed,
            dir,
            devices,
            trace: settings.similarity_trace(),
        }
    }

    /// This run without a head-similarity trace (for a model with no heads
    /// to compare).
    #[must_use]
    pub fn without_trace(mut self) -> Self {
        self.trace = SimilarityTrace::default();
        self
    }

    /// Start the run: its wall clock, the peak-memory mark reset
    /// ([`reset_peak_rss`]), and the backend seeded with the run's seed on
    /// the first device. Returns the start time and that device.
    pub fn begin(&self) -> (Instant, B::Device) {
        let start = Instant::now();
        reset_peak_rss();
        let device = self.devices[0].clone();
        B::seed(&device, self.seed);
        (start, device)
    }
}

/// LoRA's rank with about as many adapter parameters as `heads` heads of rank
/// `rank` plus a router on a `d_in -> d_out` layer (as the paper compares).
pub fn matched_lora_rank(rank: usize, heads: usize, d_in: usize, d_out: usize) -> usize {
    matched_lora_rank_over(rank, heads, &[(d_in, d_out)])
}

/// LoRA's rank (one rank for every layer) with about as many adapter
/// parameters, summed over the adapted layers `shapes` (`(d_in, d_out)` each),
/// as `heads` heads of rank `rank` plus a router on each of them.
pub fn matched_lora_rank_over(rank: usize, heads: usize, shapes: &[(usize, usize)]) -> usize {
    let multi: usize = shapes
        .iter()
        .map(|&(i, o)| i * rank + heads * rank * o + i * heads)
        .sum();
    let per_rank: usize = shapes.iter().map(|&(i, o)| i + o).sum();
    let max = shapes.iter().map(|&(i, o)| i.min(o)).min().unwrap_or(1);
    ((multi as f64 / per_rank.max(1) as f64).round() as usize).clamp(1, max.max(1))
}

/// The adapter config of `method` under `settings`.
pub fn method_config(method: Method, settings: &TrainSettings) -> (usize, RLoraConfig) {
    method_config_over(method, settings, &[(D_HIDDEN, D_HIDDEN)])
}

/// The adapter config of `method` under `settings` for a body whose adapted
/// layers have the `(d_in, d_out)` `shapes`; LoRA's rank is matched over them
/// ([`matched_lora_rank_over`]).
pub fn method_config_over(
    method: Method,
    settings: &TrainSettings,
    shapes: &[(usize, usize)],
) -> (usize, RLoraConfig) {
    let rank = match method {
        Method::Lora => matched_lora_rank_over(settings.rank, settings.heads, shapes),
        _ => settings.rank,
    };
    let config = method
        .config(rank, settings.alpha, settings.heads)
        .with_rank_stabilized(true)
        .with_dropout(settings.dropout);
    (rank, config)
}

/// Train `method` as `run` says and score it on the test split.
pub fn run_one<B: AutodiffBackend>(
    bench: &Benchmark,
    method: Method,
    run: RunSpec<'_, B>,
) -> Result<RunResult> {
    let (start, device) = run.begin();
    let settings = run.settings;
    let (rank, config) = method_config(method, settings);
    let trace = run.trace.clone();
    let body = SyntheticBody::<B>::new(&bench.base, &config, &device)?.with_trace(trace.clone());
    let classes: Vec<usize> = bench.tasks.iter().map(|t| t.num_classes).collect();
    let model = MultiTaskClassifier::new(body, TaskHeads::new(D_HIDDEN, &classes, &device))
        .with_balance_coef(settings.balance);
    let record = RunRecord::new(method.name(), run.seed, rank, &model, trace, start);

    // 10% of each task's training examples validate; the test split stays unseen.
    let splits = Splits::of(&bench.tasks, settings.sampling, run.seed)?;
    let adapter_dir = run.dir.join("adapter");
    let fitted = fit_and_test(model, DenseCollate, splits, run)?;
    // The trained adapter alone (no frozen base), in the reference's format.
    burn_rlora::checkpoint::save_adapter(
        &fitted.model.body,
        &adapter_dir,
        &burn_rlora::checkpoint::SaveOptions::new(config),
    )
    .context("saving the trained adapter")?;
    let similarity_matrices: Vec<(String, HeadSimilarity)> =
        burn_rlora::head_similarities(&fitted.model.body)?;
    let last = fitted.model.body.mean_head_similarities();
    Ok(RunResult::new(record, fitted, similarity_matrices, last))
}

/// What identifies a run's training: `settings` (all but the renderer and
/// the resume flag) and the binary's own options in `extra` (data, splits).
/// A run is resumed only under the same fingerprint.
pub fn fingerprint(settings: &TrainSettings, extra: serde_json::Value) -> serde_json::Value {
    let mut value = serde_json::to_value(settings).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("sampling".into(), format!("{:?}", settings.sampling).into());
        if let serde_json::Value::Object(extra) = extra {
            map.extend(extra);
        }
    }
    value
}

/// The keys whose values differ between two fingerprints.
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or("none".into(), |v| v.to_string());
            format!("{k}: {} before, {} now", show(a.get(k)), show(b.get(k)))
        })
        .collect();
    keys.dedup();
    keys
}

/// Remove the run directory `dir` as one step: it is renamed aside to a
/// hidden `.<name>.removing-<pid>` beside it (atomic), then deleted. A kill
/// leaves either the old directory whole or none at all (plus the hidden
/// one, which [`remove_leftover_run_dirs`] deletes next time).
fn remove_run_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = dir.with_file_name(format!(".{name}.removing-{}", std::process::id()));
    std::fs::rename(dir, &aside)
        .with_context(|| format!("moving {} aside to remove it", dir.display()))?;
    std::fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))
}

/// Delete what killed removals ([`remove_run_dir`]) left in `runs`.
fn remove_leftover_run_dirs(runs: &Path) {
    for entry in std::fs::read_dir(runs).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".removing-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Every `(method, seed)` run of a comparison, in order, each in its
/// [`run_dir`] under `out`, trained by `train_one(method, seed, dir)`.
///
/// A run directory holds `settings.json` (the [`fingerprint`]) from the
/// moment it starts; a finished run's result is written atomically to
/// `result.json`, which records the fingerprint too, and `after_each` gets
/// every result so far (to rewrite the report). With `settings.resume`,
/// finished runs are read back instead of trained (only if their
/// `result.json` records this fingerprint), and an unfinished one resumes
/// from its checkpoints (in `train_one`); a run directory started under
/// another fingerprint is an error, and one without `settings.json` starts
/// over. Without it, each run directory is removed first, as one step
/// (renamed aside, then deleted): a kill leaves the old run whole or nothing.
///
/// # Errors
///
/// The first run that fails, a settings mismatch, or I/O.
pub fn run_comparison<M: fmt::Display + Copy>(
    out: &Path,
    methods: &[M],
    seeds: &[u64],
    settings: &TrainSettings,
    fingerprint: &serde_json::Value,
    mut train_one: impl FnMut(M, u64, PathBuf) -> Result<RunResult>,
    mut after_each: impl FnMut(&[RunResult]) -> Result<()>,
) -> Result<Vec<RunResult>> {
    remove_leftover_run_dirs(&out.join("runs"));
    let mut runs = Vec::new();
    for &method in methods {
        for &seed in seeds {
            let dir = run_dir(out, &method.to_string(), seed);
            let settings_file = dir.join("settings.json");
            let result_file = dir.join("result.json");
            let mut afresh = !settings.resume;
            if settings.resume {
                match std::fs::read_to_string(&settings_file) {
                    Ok(text) => {
                        let before: serde_json::Value = serde_json::from_str(&text)
                            .with_context(|| format!("parsing {}", settings_file.display()))?;
                        let diff = differing_keys(&before, fingerprint);
                        if !diff.is_empty() {
                            bail!(
                                "{} was started with other settings ({}); run without --resume \
                                 to start over, or choose another --out",
                                dir.display(),
                                diff.join("; ")
                            );
                        }
                    }
                    Err(_) if dir.exists() => {
                        println!(
                            "== {method}, seed {seed}: {} has no settings.json, so what it holds \
                             cannot be told to belong to this comparison; starting it over",
                            dir.display()
                        );
                        afresh = true;
                    }
                    Err(_) => {}
                }
                if !afresh && result_file.exists() {
                    match RunResult::load_for(&result_file, fingerprint) {
                        Ok(run) => {
                            println!(
                                "== {method}, seed {seed}: finished before, read back from {}",
                                result_file.display()
                            );
                            runs.push(run);
                            continue;
                        }
                        Err(e) => println!("== {method}, seed {seed}: {e:#}; training it again"),
                    }
                }
            }
            if afresh {
                remove_run_dir(&dir)?;
            } else if result_file.exists() {
                std::fs::remove_file(&result_file)
                    .with_context(|| format!("removing {}", result_file.display()))?;
            }
            write_atomically(
                &settings_file,
                serde_json::to_string_pretty(fingerprint)?.as_bytes(),
            )?;
            println!("== {method}, seed {seed}");
            let run = train_one(method, seed, dir)
                .with_context(|| format!("training {method} with seed {seed}"))?;
            println!("{}", run.summary_line(settings.epochs));
            run.store(&result_file, fingerprint)?;
            runs.push(run);
            after_each(&runs)?;
        }
    }
    Ok(runs)
}

/// Trains one run of a comparison on any backend: what a binary plugs into
/// [`Comparison`].
pub trait RunTrainer {
    /// The methods it compares.
    type Method: fmt::Display + Copy;

    /// Train `method` as `run` says (seed, settings, directory, devices).
    ///
    /// # Errors
    ///
    /// Whatever stops the run.
    fn train<B: AutodiffBackend>(
        &self,
        method: Self::Method,
        run: RunSpec<'_, B>,
    ) -> Result<RunResult>;
}

/// A whole comparison as a [`BackendJob`]: every method and seed through
/// [`run_comparison`] under `out`, the report rewritten after each run.
pub struct Comparison<T: RunTrainer> {
    /// Trains one run.
    pub trainer: T,
    /// The methods, in the report's order.
    pub methods: Vec<T::Method>,
    /// The seeds, the same for every method (paired).
    pub seeds: Vec<u64>,
    /// The shared training settings.
    pub settings: TrainSettings,
    /// What identifies the comparison for `--resume` ([`fingerprint`]).
    pub fingerprint: serde_json::Value,
    /// The report's directory.
    pub out: PathBuf,
    /// The task names, in the table's column order.
    pub task_names: Vec<String>,
    /// The Markdown header of `table.md`.
    pub header: String,
}

impl<T: RunTrainer> Comparison<T> {
    /// Every run on `backend` with `devices` devices ([`run_on`]), then the
    /// report written and printed ([`report::write_and_print`], the wall
    /// time counted from `start`).
    ///
    /// # Errors
    ///
    /// A backend not compiled in, the first run that fails, or I/O.
    pub fn run_and_report(
        self,
        backend: BackendName,
        devices: usize,
        start: Instant,
    ) -> Result<()> {
        let (out, task_names, header) = (
            self.out.clone(),
            self.task_names.clone(),
            self.header.clone(),
        );
        let runs = run_on(backend, devices, self)??;
        report::write_and_print(&out, &runs, &task_names, &header, start)
    }
}

impl<T: RunTrainer> BackendJob for Comparison<T> {
    type Output = Result<Vec<RunResult>>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output {
        run_comparison(
            &self.out,
            &self.methods,
            &self.seeds,
            &self.settings,
            &self.fingerprint,
            |method, seed, dir| {
                let run = RunSpec::new(&self.settings, seed, dir, devices.clone());
                self.trainer.train::<B>(method, run)
            },
            |runs| report::write(&self.out, runs, &self.task_names, &self.header).map(|_| ()),
        )
    }
}
