//! Training through burn-train's Learner, data-parallel over the exchange.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::data::Loaders;
use crate::{Classifier, Components, Job};
use anyhow::{bail, Result};
use burn::optim::AdamConfig;
use burn::record::FullPrecisionSettings;
use burn::tensor::backend::AutodiffBackend;
use burn::train::renderer::MetricsRenderer;
use burn::train::{ExecutionStrategy, Learner, SupervisedTraining, TrainingStrategy};
use burn_rlora::distributed::{DataParallel, Exchange, LossLog, SilentRenderer};
use burn_rlora::multitask::{
    AtomicMpkRecorder, HistoryHandle, PlainRenderer, RecordingRenderer, TaskAccuracyMetric,
    TaskLossMetric, WarmupCosineLr,
};

/// A finished run, with the records of its losses.
pub(crate) struct Trained<B: AutodiffBackend> {
    pub(crate) model: Classifier<B::InnerBackend>,
    /// The global loss of every step (data-parallel runs).
    pub(crate) losses: LossLog,
    /// The renderer's record (the loss of every step when simulated).
    pub(crate) history: HistoryHandle,
    pub(crate) train_seconds: f64,
}

impl<X: Exchange + 'static> Job<X> {
    /// Train `model` for `steps` steps through burn-train's Learner, with the
    /// model's guard attached and the metrics, logs and checkpoints (rank 0
    /// only for validation and checkpoints) under `artifact_dir`.
    ///
    /// # Errors
    ///
    /// When the guard stopped the run (a diverged loss, a failed log write).
    pub(crate) fn train<B: AutodiffBackend>(
        &self,
        model: Classifier<B>,
        loaders: Loaders<B>,
        steps: usize,
        device: &B::Device,
        artifact_dir: &Path,
    ) -> Result<Trained<B>> {
        let rank = self.exchange.rank();
        let lr = WarmupCosineLr::new(self.args.lr, 0.0, (steps * 3).div_ceil(100), steps);
        let (renderer, history) = RecordingRenderer::new(console(rank));
        // The guard's interrupter and checked metric logs: a failed write
        // stops the run and `check` below reports it.
        let guard = model.guard().clone();
        let training = SupervisedTraining::new(artifact_dir, loaders.train, loaders.valid);
        let mut training = guard
            .attach(training, artifact_dir, 2)
            .metric_train_numeric(TaskLossMetric::overall())
            .metric_train_numeric(TaskAccuracyMetric::overall())
            .num_epochs(self.args.epochs)
            .renderer(renderer);
        if rank == 0 {
            training = training
                .metric_valid_numeric(TaskLossMetric::overall())
                .metric_valid_numeric(TaskAccuracyMetric::overall())
                .with_file_checkpointer(AtomicMpkRecorder::<FullPrecisionSettings>::new());
        }
        let losses = LossLog::default();
        training = training.with_training_strategy(self.strategy(device, &losses));
        let start = Instant::now();
        let result = training.launch(Learner::new(model, AdamConfig::new().init(), lr));
        drop(result.renderer);
        if let Err(stopped) = guard.check() {
            bail!("rank {rank}: {stopped}; no adapter was saved and no report written");
        }
        Ok(Trained {
            model: result.model,
            losses,
            history,
            train_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// One device when simulated; else [`DataParallel`] over the exchange,
    /// recording the global loss of every step into `losses` (and stopping
    /// `--exit-rank` with status 3 after `--exit-after-steps` steps).
    pub(crate) fn strategy<B: AutodiffBackend>(
        &self,
        device: &B::Device,
        losses: &LossLog,
    ) -> TrainingStrategy<Components<B>> {
        if self.simulated() {
            return ExecutionStrategy::SingleDevice(device.clone()).into();
        }
        let mut dp =
            DataParallel::<B, X>::new(device.clone(), self.exchange.clone(), losses.clone());
        if let Some(k) = self.args.exit_after_steps {
            let stop = self.args.exit_rank;
            dp = dp.with_step_hook(move |r, done| {
                if r == stop && done == k {
                    eprintln!("rank {r}: exiting after {done} steps (--exit-after-steps)");
                    std::process::exit(3);
                }
            });
        }
        TrainingStrategy::Custom(Arc::new(dp))
    }
}

/// Where burn-train writes this rank's logs and checkpoints: `out` for rank 0,
/// a directory of its own under the temporary directory for the others.
pub(crate) fn artifact_dir(out: &Path, rank: usize) -> PathBuf {
    if rank == 0 {
        out.to_path_buf()
    } else {
        std::env::temp_dir().join(format!("burn-rlora-rank{rank}-{}", std::process::id()))
    }
}

/// The metrics renderer: rank 0 owns the console, the other ranks print nothing.
pub(crate) fn console(rank: usize) -> Box<dyn MetricsRenderer> {
    if rank == 0 {
        Box::new(PlainRenderer::new())
    } else {
        Box::new(SilentRenderer)
    }
}
