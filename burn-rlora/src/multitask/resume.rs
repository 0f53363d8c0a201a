//! Checkpoints that survive a kill: [`AtomicMpkRecorder`] writes them
//! atomically, [`last_complete_checkpoint`] finds the newest one that loads.

use std::fs;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use burn::record::{
    FileRecorder, NamedMpkBytesRecorder, PrecisionSettings, Record, Recorder, RecorderError,
};
use burn::tensor::backend::Backend;
use burn::train::{
    LearnerModelRecord, LearnerOptimizerRecord, LearnerSchedulerRecord, LearningComponentsTypes,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// burn's named MessagePack record format (the bytes of `NamedMpkFileRecorder`),
/// written with [`write_atomically`](crate::write_atomically): a kill while saving leaves the previous
/// file, never a truncated one. Use it as the Learner's checkpointer with
/// `SupervisedTraining::with_file_checkpointer`; with
/// `FullPrecisionSettings` a checkpoint restores the weights, the
/// optimizer's moments and the scheduler's step exactly.
#[derive(Debug, Clone, Default)]
pub struct AtomicMpkRecorder<S: PrecisionSettings> {
    _settings: PhantomData<S>,
}

impl<S: PrecisionSettings> AtomicMpkRecorder<S> {
    /// A recorder.
    pub fn new() -> Self {
        Self {
            _settings: PhantomData,
        }
    }
}

fn unknown(e: impl std::fmt::Display) -> RecorderError {
    RecorderError::Unknown(e.to_string())
}

impl<S: PrecisionSettings, B: Backend> Recorder<B> for AtomicMpkRecorder<S> {
    type Settings = S;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, mut file: PathBuf) -> Result<(), RecorderError> {
        file.set_extension(<Self as FileRecorder<B>>::file_extension());
        let bytes = Recorder::<B>::save_item(&NamedMpkBytesRecorder::<S>::default(), item, ())?;
        crate::write_atomically(&file, &bytes).map_err(unknown)
    }

    fn load_item<I: DeserializeOwned>(&self, file: &mut PathBuf) -> Result<I, RecorderError> {
        file.set_extension(<Self as FileRecorder<B>>::file_extension());
        let mut bytes = fs::read(&*file).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => RecorderError::FileNotFound(file.display().to_string()),
            _ => unknown(format!("reading {}: {e}", file.display())),
        })?;
        Recorder::<B>::load_item(&NamedMpkBytesRecorder::<S>::default(), &mut bytes)
    }
}

impl<S: PrecisionSettings, B: Backend> FileRecorder<B> for AtomicMpkRecorder<S> {
    fn file_extension() -> &'static str {
        "mpk"
    }
}

/// A checkpoint [`last_complete_checkpoint`] passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedCheckpoint {
    /// Its epoch.
    pub epoch: usize,
    /// Why: a file missing or unreadable.
    pub reason: String,
}

/// Where a run can resume from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResumePoint {
    /// The newest epoch whose model, optimizer and scheduler checkpoints all
    /// load (`None`: start from scratch).
    pub epoch: Option<usize>,
    /// Newer checkpoints that were incomplete or corrupt, newest first.
    pub rejected: Vec<RejectedCheckpoint>,
}

/// The epochs of the `model-<epoch>.mpk` files in `checkpoint_dir`, newest first.
pub fn checkpoint_epochs(checkpoint_dir: &Path) -> Vec<usize> {
    let mut epochs: Vec<usize> = fs::read_dir(checkpoint_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("model-")?
                .strip_suffix(".mpk")?
                .parse()
                .ok()
        })
        .collect();
    epochs.sort_unstable_by(|a, b| b.cmp(a));
    epochs
}

fn try_load<B: Backend, R: Record<B>, S: PrecisionSettings>(
    dir: &Path,
    name: &str,
    epoch: usize,
    device: &B::Device,
) -> Result<R, String> {
    let path = dir.join(format!("{name}-{epoch}"));
    Recorder::<B>::load::<R>(&AtomicMpkRecorder::<S>::new(), path, device)
        .map_err(|e| format!("{name}-{epoch}.mpk: {e}"))
}

/// The newest epoch of `checkpoint_dir` (burn-train's `<artifact dir>/checkpoint`,
/// written with [`AtomicMpkRecorder`] and settings `S`) from which burn-train
/// can resume, at most `max_epoch`: its model, optimizer and scheduler records
/// all exist and load. Newer epochs that fail (a kill between the three
/// files, a damaged file) are listed in [`ResumePoint::rejected`] and skipped,
/// so that `SupervisedTraining::checkpoint(epoch)`, which panics on a
/// checkpoint it cannot load, is only given one that loads. Leftover
/// temporary files are removed.
pub fn last_complete_checkpoint<LC, S>(
    checkpoint_dir: &Path,
    max_epoch: usize,
    device: &burn::tensor::Device<LC::Backend>,
) -> ResumePoint
where
    LC: LearningComponentsTypes,
    S: PrecisionSettings,
{
    crate::atomic::remove_leftovers_in(checkpoint_dir);
    let mut point = ResumePoint::default();
    for epoch in checkpoint_epochs(checkpoint_dir) {
        if epoch > max_epoch || epoch == 0 {
            continue;
        }
        let loaded = try_load::<LC::Backend, LearnerModelRecord<LC>, S>(
            checkpoint_dir,
            "model",
            epoch,
            device,
        )
        .and_then(|_| {
            try_load::<LC::Backend, LearnerOptimizerRecord<LC>, S>(
                checkpoint_dir,
                "optim",
                epoch,
                device,
            )
        })
        .and_then(|_| {
            try_load::<LC::Backend, LearnerSchedulerRecord<LC>, S>(
                checkpoint_dir,
                "scheduler",
                epoch,
                device,
            )
        });
        match loaded {
            Ok(_) => {
                point.epoch = Some(epoch);
                break;
            }
            Err(reason) => point.rejected.push(RejectedCheckpoint { epoch, reason }),
        }
    }
    point
}
