//! [`DivergenceGuard`]: stop a run at the first non-finite loss or gradient,
//! before it reaches the weights or a checkpoint, and tell afterwards why a
//! run stopped early ([`RunStopped`]).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use burn::train::checkpoint::{CheckpointingAction, CheckpointingStrategy, KeepLastNCheckpoints};
use burn::train::metric::store::EventStoreClient;
use burn::train::{Interrupter, LearningComponentsTypes, SupervisedTraining};
use thiserror::Error;

use super::CheckedMetricLogger;

/// Where a non-finite value was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A training step (forward, loss, backward).
    Training,
    /// A validation step.
    Validation,
}

/// A run stopped by its [`DivergenceGuard`]: the first non-finite loss or
/// gradient, with the epoch and iteration where it appeared.
#[derive(Debug, Clone, PartialEq, Error)]
pub struct Divergence {
    /// Training or validation.
    pub phase: Phase,
    /// The epoch (1-based, counted as burn-train does).
    pub epoch: usize,
    /// The iteration within the epoch's phase (1-based).
    pub iteration: usize,
    /// The batch's loss.
    pub loss: f64,
    /// The sum of the absolute values of every trainable parameter's gradient
    /// (`None` in validation, or when gradients are not checked).
    pub grad_abs_sum: Option<f64>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match (self.phase, self.grad_abs_sum) {
            (Phase::Validation, _) => format!("non-finite validation loss ({})", self.loss),
            (Phase::Training, Some(g)) if self.loss.is_finite() => {
                format!(
                    "non-finite gradient (sum of |gradient| {g}, loss {})",
                    self.loss
                )
            }
            (Phase::Training, _) => format!("non-finite training loss ({})", self.loss),
        };
        write!(
            f,
            "training diverged: {what} at epoch {}, iteration {}",
            self.epoch, self.iteration
        )
    }
}

/// The message with which burn-train's terminal dashboard stops a run when
/// its user quits; [`DivergenceGuard::stop_by_user`] uses it too.
pub const USER_STOP_MESSAGE: &str = "Stopping training from user input.";

/// Why a run ended before training every epoch it was given, as
/// [`DivergenceGuard::check`] reports it.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RunStopped {
    /// A non-finite loss or gradient.
    #[error(transparent)]
    Diverged(Divergence),
    /// Something else stopped the run through the shared interrupter: a
    /// checkpoint or metric-log write that failed (storage full, an I/O
    /// error), or any other component of burn-train that stops a run on an
    /// error. `reason` is its message, which names the file for the writers
    /// of this crate.
    #[error("training was interrupted at epoch {epoch}: {reason}")]
    Interrupted {
        /// The epoch being trained, validated or checkpointed when it stopped.
        epoch: usize,
        /// What stopped it.
        reason: String,
    },
    /// The user stopped the run (the dashboard's quit, or
    /// [`DivergenceGuard::stop_by_user`]).
    #[error("training was stopped by the user at epoch {epoch}")]
    ByUser {
        /// The epoch being trained when it stopped.
        epoch: usize,
    },
}

impl RunStopped {
    /// The epoch at which the run stopped.
    pub fn epoch(&self) -> usize {
        match self {
            Self::Diverged(d) => d.epoch,
            Self::Interrupted { epoch, .. } | Self::ByUser { epoch } => *epoch,
        }
    }
}

#[derive(Debug)]
struct GuardState {
    epoch: usize,
    phase: Option<Phase>,
    iteration: usize,
    check_gradients: bool,
    divergence: Option<Divergence>,
}

/// Watches the losses (and gradients) of a
/// [`MultiTaskClassifier`](super::MultiTaskClassifier) and stops the run at
/// the first non-finite value.
///
/// Every classifier carries one, shared by its clones (the Learner's copies,
/// the validation model). On a non-finite training loss or gradient the step
/// returns **no gradients**, so the optimizer leaves the weights as they were
/// (the last good state), and every later step does the same. The guard then
/// asks burn-train to stop through its [`Interrupter`], and its checkpointing
/// strategy ([`GuardedCheckpointing`]) neither saves nor deletes a checkpoint
/// once it has tripped, so the last good checkpoint survives. A non-finite
/// validation loss (weights blown up by the epoch's last update) trips it too.
///
/// burn-train cannot return an error from a step: after `launch`, call
/// [`check`](Self::check). It reports a divergence, and also **any other
/// stop** through the same interrupter: burn-train stops a run, and returns
/// from `launch` as if it had finished, when a checkpoint cannot be written
/// (storage full, an I/O error); so does this crate's
/// [`CheckedMetricLogger`](super::CheckedMetricLogger) when a metric log
/// cannot be written. A run for which `check` is `Ok` trained every epoch.
///
/// **Cost.** Each training step reads two scalars back to the host (the loss
/// and the sum of `|gradient|` over the trainable parameters, one reduction per
/// trainable tensor), each validation step one (the loss): a device
/// synchronisation per step on an accelerator, nothing measurable on a CPU
/// backend. [`without_gradient_check`](Self::without_gradient_check) drops
/// the gradient reduction.
///
/// Epochs are counted from [`starting_epoch`](Self::starting_epoch) (1 by
/// default; set it to `n + 1` when resuming from checkpoint `n`), moving on
/// when training follows validation.
#[derive(Clone)]
pub struct DivergenceGuard {
    state: Arc<Mutex<GuardState>>,
    interrupter: Interrupter,
}

impl fmt::Debug for DivergenceGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DivergenceGuard")
            .field("divergence", &self.divergence())
            .finish()
    }
}

impl Default for DivergenceGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl DivergenceGuard {
    /// A guard that checks losses and gradients, starting at epoch 1.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(GuardState {
                epoch: 1,
                phase: None,
                iteration: 0,
                check_gradients: true,
                divergence: None,
            })),
            interrupter: Interrupter::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GuardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Check the loss only (no reduction over the gradients).
    pub fn without_gradient_check(self) -> Self {
        self.lock().check_gradients = false;
        self
    }

    /// Whether gradients are checked.
    pub fn checks_gradients(&self) -> bool {
        self.lock().check_gradients
    }

    /// Count epochs from `epoch` (the first epoch the run will train).
    pub fn starting_epoch(&self, epoch: usize) {
        let mut s = self.lock();
        s.epoch = epoch.max(1);
        s.phase = None;
        s.iteration = 0;
    }

    /// The interrupter the guard stops the run with; give it to burn-train
    /// with `SupervisedTraining::with_interrupter` (or use [`attach`](Self::attach)).
    pub fn interrupter(&self) -> Interrupter {
        self.interrupter.clone()
    }

    /// The first divergence seen, if any.
    pub fn divergence(&self) -> Option<Divergence> {
        self.lock().divergence.clone()
    }

    /// `Ok` when nothing stopped the run early; call it after `launch`.
    ///
    /// # Errors
    ///
    /// [`RunStopped::Diverged`] with the first divergence seen;
    /// [`RunStopped::ByUser`] when the interrupter was stopped with the user's
    /// message ([`USER_STOP_MESSAGE`]); [`RunStopped::Interrupted`] for any
    /// other stop, with its message ("reason unknown" when it gave none).
    pub fn check(&self) -> Result<(), RunStopped> {
        if let Some(d) = self.divergence() {
            return Err(RunStopped::Diverged(d));
        }
        if !self.interrupter.should_stop() {
            return Ok(());
        }
        let epoch = self.lock().epoch;
        Err(match self.interrupter.get_message() {
            Some(m) if m == USER_STOP_MESSAGE => RunStopped::ByUser { epoch },
            Some(reason) => RunStopped::Interrupted { epoch, reason },
            None => RunStopped::Interrupted {
                epoch,
                reason: "reason unknown".into(),
            },
        })
    }

    /// Stop the run as its user would (from a Ctrl-C handler, say):
    /// [`check`](Self::check) then reports [`RunStopped::ByUser`].
    pub fn stop_by_user(&self) {
        self.interrupter.stop(Some(USER_STOP_MESSAGE));
    }

    /// Stop the run because of `reason` (a failed write, a lost worker):
    /// [`check`](Self::check) then reports [`RunStopped::Interrupted`] with
    /// it, unless the run had diverged or been stopped before.
    pub fn interrupt(&self, reason: &str) {
        if !self.interrupter.should_stop() {
            self.interrupter.stop(Some(reason));
        }
    }

    /// Wire the guard into `training`: its interrupter, a checkpointing
    /// strategy that keeps the last `keep_last` epochs
    /// ([`KeepLastNCheckpoints`]) and stops saving and deleting once the run
    /// is stopping, and a [`CheckedMetricLogger`] writing burn-train's metric
    /// logs under `artifact_dir` (the directory given to
    /// `SupervisedTraining::new`), whose write errors stop the run instead of
    /// aborting the process (burn-train's default file logger is then not
    /// registered). Replaces any interrupter or checkpointing strategy set
    /// before.
    pub fn attach<LC: LearningComponentsTypes>(
        &self,
        training: SupervisedTraining<LC>,
        artifact_dir: impl AsRef<Path>,
        keep_last: usize,
    ) -> SupervisedTraining<LC> {
        training
            .with_interrupter(self.interrupter())
            .with_checkpointing_strategy(
                self.checkpointing(KeepLastNCheckpoints::new(keep_last.max(1))),
            )
            .with_metric_logger(self.metric_logger(artifact_dir))
    }

    /// A [`CheckedMetricLogger`] under `artifact_dir` that stops the run
    /// through this guard's interrupter when it cannot write, and numbers
    /// its first epoch as the guard counts it now (see
    /// [`starting_epoch`](Self::starting_epoch): set that first when resuming).
    pub fn metric_logger(&self, artifact_dir: impl AsRef<Path>) -> CheckedMetricLogger {
        let epoch = self.lock().epoch;
        CheckedMetricLogger::new(artifact_dir, self.interrupter()).starting_epoch(epoch)
    }

    /// `strategy`, silenced once the guard has tripped.
    pub fn checkpointing<S: CheckpointingStrategy>(&self, strategy: S) -> GuardedCheckpointing<S> {
        GuardedCheckpointing {
            guard: self.clone(),
            inner: strategy,
        }
    }

    /// Whether the guard has tripped.
    pub fn tripped(&self) -> bool {
        self.lock().divergence.is_some()
    }

    /// Record one step of `phase`; returns whether its update may be applied
    /// (false once a non-finite value has been seen, in this step or before).
    pub(crate) fn observe(&self, phase: Phase, loss: f64, grad_abs_sum: Option<f64>) -> bool {
        let mut s = self.lock();
        match (s.phase, phase) {
            (Some(Phase::Validation), Phase::Training) => {
                s.epoch += 1;
                s.iteration = 0;
            }
            (Some(Phase::Training), Phase::Validation) => s.iteration = 0,
            _ => {}
        }
        s.phase = Some(phase);
        s.iteration += 1;
        if s.divergence.is_some() {
            return false;
        }
        let finite = loss.is_finite() && grad_abs_sum.is_none_or(f64::is_finite);
        if finite {
            return true;
        }
        let divergence = Divergence {
            phase,
            epoch: s.epoch,
            iteration: s.iteration,
            loss,
            grad_abs_sum,
        };
        let message = divergence.to_string();
        s.divergence = Some(divergence);
        drop(s);
        self.interrupter.stop(Some(&message));
        false
    }
}

/// A checkpointing strategy that does nothing (no save, no delete) once its
/// [`DivergenceGuard`] has tripped or the run is stopping for any other
/// reason, so that a diverging or interrupted epoch can neither write a
/// checkpoint nor push the last good one out.
pub struct GuardedCheckpointing<S> {
    guard: DivergenceGuard,
    inner: S,
}

impl<S: CheckpointingStrategy> CheckpointingStrategy for GuardedCheckpointing<S> {
    fn checkpointing(
        &mut self,
        epoch: usize,
        store: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        if self.guard.tripped() || self.guard.interrupter.should_stop() {
            return Vec::new();
        }
        self.inner.checkpointing(epoch, store)
    }
}
