//! Checkpoints that survive a kill: [`AtomicMpkRecorder`] writes them
//! atomically, [`last_complete_checkpoint`] finds the newest one that loads
//! and fits the model.

use std::fs;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::record::{
    FileRecorder, NamedMpkBytesRecorder, PrecisionSettings, Record, Recorder, RecorderError,
};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
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
    /// Why: a file missing or unreadable, or a model record that does not
    /// fit the model.
    pub reason: String,
}

/// Where a run can resume from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResumePoint {
    /// The newest epoch whose model, optimizer and scheduler checkpoints all
    /// load and whose model record fits the model (`None`: start from scratch).
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

/// The float parameters of a module: dotted path and shape, in visiting order.
struct ParamShapes {
    path: Vec<String>,
    shapes: Vec<(String, Vec<usize>)>,
}

impl ParamShapes {
    fn of<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
        let mut v = Self {
            path: Vec::new(),
            shapes: Vec::new(),
        };
        module.visit(&mut v);
        v.shapes
    }
}

impl<B: Backend> ModuleVisitor<B> for ParamShapes {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.shapes
            .push((self.path.join("."), param.lazy_shape().dims::<D>().to_vec()));
    }
}

/// Why `loaded` (the model with a checkpoint's record loaded) does not fit
/// `expected` (the model's own parameters), if it does not.
fn misfit(expected: &[(String, Vec<usize>)], loaded: &[(String, Vec<usize>)]) -> Option<String> {
    for (i, (path, shape)) in expected.iter().enumerate() {
        match loaded.get(i) {
            None => return Some(format!("it has no parameter {path}")),
            Some((p, s)) if p == path && s != shape => {
                return Some(format!(
                    "{path} is {s:?} in the checkpoint, {shape:?} in the model"
                ))
            }
            Some((p, _)) if p != path => {
                return Some(format!("it has {p} where the model has {path}"))
            }
            Some(_) => {}
        }
    }
    (loaded.len() > expected.len()).then(|| {
        format!(
            "it has {} parameters, the model {}",
            loaded.len(),
            expected.len()
        )
    })
}

/// The newest epoch of `checkpoint_dir` (burn-train's `<artifact dir>/checkpoint`,
/// written with [`AtomicMpkRecorder`] and settings `S`) from which burn-train
/// can resume `model` (the training model about to be given to the
/// `Learner`), at most `max_epoch`: its model, optimizer and scheduler
/// records all exist and load, and the model record has the parameters of
/// `model` with their shapes (a checkpoint of another method, rank, number of
/// heads or model does not). Newer epochs that fail (a kill between the three
/// files, a damaged file, a checkpoint that is not this model's) are listed
/// in [`ResumePoint::rejected`] and skipped, so that
/// `SupervisedTraining::checkpoint(epoch)`, which panics on a checkpoint it
/// cannot load, is only given one that loads and fits. Leftover temporary
/// files are removed.
///
/// The shapes are compared after loading the record into a copy of `model`,
/// so a record with a tensor the model has no place for (an adapter where
/// the model has a plain layer) is not seen; that the checkpoints belong to
/// the same run (same settings and seed) is for the caller to record and
/// check, for instance with a file written next to them.
pub fn last_complete_checkpoint<LC, S>(
    checkpoint_dir: &Path,
    max_epoch: usize,
    model: &LC::TrainingModel,
    device: &burn::tensor::Device<LC::Backend>,
) -> ResumePoint
where
    LC: LearningComponentsTypes,
    S: PrecisionSettings,
{
    crate::atomic::remove_leftovers_in(checkpoint_dir);
    let expected = ParamShapes::of::<LC::Backend, _>(model);
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
        .and_then(|record| {
            let loaded = ParamShapes::of::<LC::Backend, _>(&model.clone().load_record(record));
            misfit(&expected, &loaded).map_or(Ok(()), |why| {
                Err(format!("model-{epoch}.mpk does not fit the model: {why}"))
            })
        })
        .and_then(|()| {
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
