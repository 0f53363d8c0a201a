//! Multi-task training with burn-train (feature `train`).
//!
//! * [`TaskId`] and [`TaskItem`] carry the task of every example through
//!   datasets, items and batches.
//! * [`MultiTaskDataset`] combines named datasets under a [`SamplingStrategy`]
//!   (proportional, temperature-scaled or uniform), deterministic under a seed.
//! * [`MultiTaskBatcher`] turns items into a [`MultiTaskBatch`] on any backend.
//! * [`TaskHeads`] gives each task its own output layer over a shared body,
//!   and [`MultiTaskClassifier`] implements burn-train's `TrainStep` and
//!   `InferenceStep` for any [`MultiTaskBody`], with the router load-balance
//!   loss as an option. Code generic over the body asks for a
//!   [`TrainableBody`] and a [`BodyCollate`], which every suitable body and
//!   collate already is.
//! * [`TaskLossMetric`] and [`TaskAccuracyMetric`] report every task by name
//!   in the Learner's dashboard and logs, plus the overall figures.
//! * [`WarmupCosineLr`] is the reference's schedule (linear warm-up, cosine decay).
//! * With the opt-in feature `renderers`: `PlainRenderer` prints one line per
//!   epoch and split (for logs and CI, where burn-train's terminal dashboard
//!   cannot draw), and `RecordingRenderer` keeps every numeric metric of a run
//!   for a report. They read burn-train's metric display, not adapters, so
//!   they are not part of `train` itself; they are here rather than in the
//!   example trainers because any multi-task run in a log wants them.
//! * [`DivergenceGuard`] (in every classifier) stops a run at the first
//!   non-finite loss or gradient, before it reaches the weights or a
//!   checkpoint, and its `check` reports any early stop as a [`RunStopped`]:
//!   a divergence, a checkpoint or metric log that could not be written
//!   ([`CheckedMetricLogger`]), or the user's stop.
//! * [`SeededEpochLoader`], [`AtomicMpkRecorder`] and
//!   [`last_complete_checkpoint`] make a run resumable after a kill, to the
//!   same weights bit for bit.

mod batcher;
mod dataset;
mod guard;
mod heads;
mod loader;
mod logger;
mod metrics;
mod model;
mod output;
#[cfg(feature = "renderers")]
mod renderer;
mod resume;
mod sampling;
mod schedule;
mod task;

pub use batcher::{Collate, DenseCollate, MultiTaskBatch, MultiTaskBatcher};
pub use dataset::{DatasetError, MultiTaskDataset, MultiTaskDatasetBuilder};
pub use guard::{
    Divergence, DivergenceGuard, GuardedCheckpointing, Phase, RunStopped, USER_STOP_MESSAGE,
};
pub use heads::TaskHeads;
pub use loader::{epoch_seed, SeededEpochLoader};
pub use logger::{metric_log_path, read_metric_log, CheckedMetricLogger};
pub use metrics::{TaskAccuracyMetric, TaskLossMetric};
pub use model::{
    BodyCollate, BodyOutput, InnerInput, MultiTaskBody, MultiTaskClassifier, TrainableBody,
};
pub use output::{MultiTaskOutput, MultiTaskStats, TaskStats};
#[cfg(feature = "renderers")]
pub use renderer::{HistoryHandle, MetricHistory, PlainRenderer, RecordingRenderer};
pub use resume::{
    checkpoint_epochs, last_complete_checkpoint, AtomicMpkRecorder, RejectedCheckpoint, ResumePoint,
};
pub use sampling::{largest_remainder, SamplingStrategy};
pub use schedule::WarmupCosineLr;
pub use task::{TaskId, TaskItem};
