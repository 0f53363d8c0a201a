//! What one run produced, stored as `result.json` and read back on resume,
//! and the memory figures it records.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_rlora::{write_atomically, HeadSimilarity, ParamCount};
use serde::{Deserialize, Serialize};

use super::fit::Fitted;
use crate::harness::trace::{SimilarityTrace, TracePoint};

/// What one run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The method.
    pub method: String,
    /// The training seed.
    pub seed: u64,
    /// The rank used (LoRA's is matched to R-LoRA's parameter count).
    pub rank: usize,
    /// Test accuracy per task, in percent.
    pub task_accuracy: Vec<f64>,
    /// Mean of the per-task accuracies.
    pub mean_accuracy: f64,
    /// Trainable parameters (adapters and task heads).
    pub trainable: usize,
    /// Trainable parameters of the adapters alone.
    pub adapter_params: usize,
    /// Mean pairwise head cosine similarity per adapted layer (`None` for one head).
    pub head_similarity: Vec<(String, Option<f64>)>,
    /// Full similarity matrices per layer.
    #[serde(skip)]
    pub similarity_matrices: Vec<(String, HeadSimilarity)>,
    /// Training loss per iteration.
    pub train_loss: Vec<f64>,
    /// Validation loss per epoch.
    pub valid_loss: Vec<f64>,
    /// Wall time of training and evaluation, in seconds.
    pub wall_seconds: f64,
    /// Wall time of the Learner's training (all epochs, validation included), in seconds.
    pub train_seconds: f64,
    /// Peak resident memory of the process during this run, in MiB (Linux
    /// `VmHWM`, reset before the run; `None` where it cannot be read).
    pub peak_rss_mib: Option<f64>,
    /// Mean pairwise head similarity per adapted layer over training (empty
    /// when not traced; a resumed run's holds the points of the epochs
    /// before its checkpoint where their file was whole, and starts at the
    /// checkpoint otherwise, as the console says).
    #[serde(default)]
    pub similarity_trace: Vec<TracePoint>,
    /// The epoch whose checkpoint the run resumed from, when it did: its
    /// wall time, training time and peak memory are then those of the last
    /// invocation, which trained the later epochs only (its loss curves
    /// cover every epoch).
    #[serde(default)]
    pub resumed_after_epoch: Option<usize>,
    /// Training tokens per second of the Learner's wall time (validation
    /// and checkpoints included), over the epochs the last invocation
    /// trained; `None` where the trainer counts no tokens or that
    /// invocation trained no epoch.
    #[serde(default)]
    pub train_tokens_per_second: Option<f64>,
}

/// Peak resident set size of this process in MiB (`VmHWM` of
/// `/proc/self/status`); `None` off Linux or when unreadable.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Reset the peak resident set size (`VmHWM`) to the current size, so that
/// [`peak_rss_mib`] measures from now on (Linux: `5` into `/proc/self/clear_refs`).
/// Returns false where that is not possible; the peak is then process-wide.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// What a run's [`RunResult`] records besides what [`fit_and_test`](super::fit_and_test)
/// returns, all known before training.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The method's name.
    pub method: String,
    /// The training seed.
    pub seed: u64,
    /// The rank used (LoRA's is matched to R-LoRA's parameter count).
    pub rank: usize,
    /// Trainable parameters (adapters and task heads).
    pub trainable: usize,
    /// Trainable parameters of the adapters alone.
    pub adapter_params: usize,
    /// The head similarity the body records during training (off when not traced).
    pub trace: SimilarityTrace,
    /// When the run started: its wall time counts from here.
    pub start: Instant,
}

impl RunRecord {
    /// The record of a run of `method` (its name) that starts at `start`,
    /// with the trainable and adapter parameters counted on `model`.
    pub fn new<B: Backend, M: Module<B> + burn_rlora::Adapt>(
        method: &str,
        seed: u64,
        rank: usize,
        model: &M,
        trace: SimilarityTrace,
        start: Instant,
    ) -> Self {
        Self {
            method: method.to_string(),
            seed,
            rank,
            trainable: ParamCount::of(model).trainable,
            adapter_params: ParamCount::adapters_of(model).unwrap_or(0),
            trace,
            start,
        }
    }
}

impl RunResult {
    /// One line for the console: test accuracy, per task, wall time, time per
    /// epoch (of the `epochs` of the run, those this invocation trained) and
    /// peak memory.
    pub fn summary_line(&self, epochs: usize) -> String {
        let trained = epochs.saturating_sub(self.resumed_after_epoch.unwrap_or(0));
        let per_epoch = match trained {
            0 => "no epoch left to train".to_string(),
            n => format!("{:.1} s per epoch", self.train_seconds / n as f64),
        };
        let resumed = self
            .resumed_after_epoch
            .map_or(String::new(), |e| format!(" (resumed after epoch {e})"));
        format!(
            "   test accuracy {:.2}% (per task {:?}); {:.1} s in all{resumed}, {per_epoch}; peak RSS {}",
            self.mean_accuracy,
            self.task_accuracy
                .iter()
                .map(|a| format!("{a:.1}"))
                .collect::<Vec<_>>(),
            self.wall_seconds,
            self.peak_rss_mib
                .map_or("n/a".into(), |m| format!("{m:.0} MiB")),
        )
    }

    /// Assemble a run's result from `record` and what [`fit_and_test`](super::fit_and_test)
    /// returned (`fitted`), with the trained model's head similarity:
    /// `similarity_matrices` per adapted layer, and `last`, their means,
    /// which end the similarity trace ([`with_trace`](Self::with_trace)).
    /// The wall time is measured from `record.start`, the peak memory read now.
    pub fn new<M>(
        record: RunRecord,
        fitted: Fitted<M>,
        similarity_matrices: Vec<(String, HeadSimilarity)>,
        last: Vec<(String, Option<f64>)>,
    ) -> Self {
        let total_steps = fitted.total_steps;
        let resumed_after_epoch = (fitted.epochs_before > 0).then_some(fitted.epochs_before);
        let task_accuracy = fitted.task_accuracy;
        let mean_accuracy = task_accuracy.iter().sum::<f64>() / task_accuracy.len().max(1) as f64;
        Self {
            method: record.method,
            seed: record.seed,
            rank: record.rank,
            mean_accuracy,
            task_accuracy,
            trainable: record.trainable,
            adapter_params: record.adapter_params,
            head_similarity: similarity_matrices
                .iter()
                .map(|(n, s)| (n.clone(), s.mean_pairwise))
                .collect(),
            similarity_matrices,
            train_loss: fitted.train_loss,
            valid_loss: fitted.valid_loss,
            wall_seconds: record.start.elapsed().as_secs_f64(),
            train_seconds: fitted.train_seconds,
            peak_rss_mib: peak_rss_mib(),
            similarity_trace: Vec::new(),
            resumed_after_epoch,
            train_tokens_per_second: None,
        }
        .with_trace(&record.trace, total_steps, last)
    }
}

impl RunResult {
    /// Attach what `trace` recorded during [`fit_and_test`](super::fit_and_test)
    /// (steps counted from the run's start, the epochs before a resume
    /// included: see [`SimilarityTrace::resume`]), plus `last` (the trained
    /// model's similarities) at `total_steps`.
    pub fn with_trace(
        mut self,
        trace: &SimilarityTrace,
        total_steps: usize,
        last: Vec<(String, Option<f64>)>,
    ) -> Self {
        if !trace.is_on() {
            return self;
        }
        let mut points = trace.points();
        if points.last().is_none_or(|p| p.step < total_steps) {
            points.push(TracePoint {
                step: total_steps,
                layers: last,
            });
        }
        self.similarity_trace = points;
        self
    }
}

/// The directory of one run of a comparison: `<out>/runs/<method>-seed<seed>/`,
/// holding `settings.json`, `checkpoint/`, `adapter/` and, once the run has
/// finished, `result.json`.
pub fn run_dir(out: &Path, method: &str, seed: u64) -> PathBuf {
    out.join("runs").join(format!("{method}-seed{seed}"))
}

/// A head-similarity matrix as stored in a run's `result.json`.
#[derive(Serialize, Deserialize)]
struct StoredSimilarity {
    layer: String,
    num_heads: usize,
    matrix: Vec<f64>,
    mean_pairwise: Option<f64>,
}

/// A run's `result.json`: its result, its head-similarity matrices and the
/// settings fingerprint it was trained under.
#[derive(Serialize, Deserialize)]
struct StoredRun {
    run: RunResult,
    similarity: Vec<StoredSimilarity>,
    #[serde(default)]
    settings: Option<serde_json::Value>,
}

impl RunResult {
    /// Write this result to `path` atomically (JSON, with the similarity
    /// matrices and `settings`, the fingerprint the run was trained under).
    ///
    /// # Errors
    ///
    /// Serialization or I/O.
    pub fn store(&self, path: &Path, settings: &serde_json::Value) -> Result<()> {
        let stored = StoredRun {
            settings: Some(settings.clone()),
            run: self.clone(),
            similarity: self
                .similarity_matrices
                .iter()
                .map(|(layer, s)| StoredSimilarity {
                    layer: layer.clone(),
                    num_heads: s.num_heads,
                    matrix: s.matrix.clone(),
                    mean_pairwise: s.mean_pairwise,
                })
                .collect(),
        };
        write_atomically(path, serde_json::to_string_pretty(&stored)?.as_bytes())?;
        Ok(())
    }

    /// Read a result written by [`store`](Self::store) under the settings
    /// fingerprint `settings`.
    ///
    /// # Errors
    ///
    /// I/O, a file that is not such a result, or one that records other
    /// settings, or none.
    pub fn load_for(path: &Path, settings: &serde_json::Value) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let stored: StoredRun =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        match &stored.settings {
            None => bail!("{} records no settings", path.display()),
            Some(s) if s != settings => bail!(
                "{} was written by a run with other settings",
                path.display()
            ),
            Some(_) => {}
        }
        let mut run = stored.run;
        run.similarity_matrices = stored
            .similarity
            .into_iter()
            .map(|s| {
                (
                    s.layer,
                    HeadSimilarity {
                        matrix: s.matrix,
                        num_heads: s.num_heads,
                        mean_pairwise: s.mean_pairwise,
                    },
                )
            })
            .collect();
        Ok(run)
    }
}
