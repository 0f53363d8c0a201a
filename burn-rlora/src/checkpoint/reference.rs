//! Importing adapters written by the Python reference (`adapter_model.bin`).
//!
//! # What loading a reference adapter means
//!
//! The reference stores `A`, the heads and the router, but not the offset
//! `s * mean_i(B_i A)` that it subtracted from the frozen base weight **in
//! place** when it initialized the random heads. That offset is in neither
//! the adapter nor the published base model. So:
//!
//! * Loading the adapter onto the *original* base (what the reference itself
//!   does when it reloads) gives `W x + s * sum_i g_i B_i A x`: the layer the
//!   reference *serves*, which differs from the one it *trained* by the lost
//!   offset. [`load_reference`] without an initial adapter reproduces this,
//!   exactly like the reference's reload. Build the model with
//!   [`AdapterConfig::rlora_config`], which has no compensation pair.
//! * To reconstruct the trained state, supply the adapter as it was at
//!   initialization (the reference seeds its init, so it can be saved again
//!   at step 0), together with the original base: its `A` and the mean of its
//!   heads become this crate's frozen compensation pair `(A0, Bbar0)`, which
//!   subtracts exactly the offset the reference folded into the base. Build
//!   the model with [`AdapterConfig::rlora_config_with_compensation`] and set
//!   [`ReferenceOptions::initial_adapter`].
//! * If you kept the reference's modified base weights instead, load them as
//!   the base (burn-store) and load the adapter without an initial adapter.

use std::path::{Path, PathBuf};

use super::error::CheckpointError;
use super::file::read_file_limited;
use super::format::{
    read_safetensors, with_paths, AdapterConfig, AdapterFile, HostTensor, TensorDigest, TensorRole,
    CONFIG_FILE, REFERENCE_TENSORS_FILE, TENSORS_FILE,
};
use super::load::{apply_adapter, LoadOptions, LoadReport};
use super::torch::read_torch;
use crate::init::InitScheme;
use crate::Adapt;
use crate::RLoraConfig;

impl AdapterConfig {
    /// The layer config for a reference adapter whose trained state is to be
    /// reconstructed with an initial adapter: like [`rlora_config`](Self::rlora_config),
    /// but with random heads (so the layers carry a compensation pair) and a zero router init.
    pub fn rlora_config_with_compensation(&self) -> RLoraConfig {
        self.rlora_config()
            .with_init_a(InitScheme::Unit)
            .with_init_b(InitScheme::Unit)
            .with_router_init(None)
    }
}

/// How to load a reference adapter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReferenceOptions {
    /// Naming, strictness, file size cap and non-finite rule, as for
    /// [`load_adapter`](super::load_adapter).
    pub load: LoadOptions,
    /// The reference adapter as it was at initialization (a directory or
    /// file, like the trained one). When set, its `A` and mean head become
    /// the compensation pair; see the [module docs](self).
    pub initial_adapter: Option<PathBuf>,
}

/// The tensor file of an adapter directory, by one rule used everywhere
/// (loading, the CLI's `inspect`, `convert` and `merge`):
/// `adapter_model.safetensors` if present, else `adapter_model.bin`, else
/// the (missing) `adapter_model.safetensors`. This is PEFT's precedence.
pub fn tensor_file_in(dir: &Path) -> PathBuf {
    let safetensors = dir.join(TENSORS_FILE);
    let bin = dir.join(REFERENCE_TENSORS_FILE);
    if !safetensors.exists() && bin.exists() {
        bin
    } else {
        safetensors
    }
}

/// The format of an adapter's tensor file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorFormat {
    /// safetensors (`adapter_model.safetensors`), this crate's format and
    /// PEFT's default.
    Safetensors,
    /// The zip that `torch.save` writes (`adapter_model.bin`), read by this
    /// crate's strict reader (see [`torch`](super::torch)).
    TorchZip,
}

impl TensorFormat {
    /// The format of the tensor file at `path`, by its extension:
    /// `.safetensors` is [`Safetensors`](Self::Safetensors), anything else
    /// [`TorchZip`](Self::TorchZip).
    pub fn of_path(path: &Path) -> Self {
        if path.extension().is_some_and(|e| e == "safetensors") {
            Self::Safetensors
        } else {
            Self::TorchZip
        }
    }
}

/// Read a reference adapter with `options` (strictness, file size cap,
/// non-finite rule; [`LoadOptions::new`] for the defaults): a directory
/// holding `adapter_config.json` and `adapter_model.safetensors` (same
/// layout) or `adapter_model.bin`, chosen by [`tensor_file_in`]; or the path
/// of the tensor file itself, with `adapter_config.json` next to it. bf16,
/// f16 and f64 tensors are converted. Files of this crate's format read too.
///
/// # Errors
///
/// As [`reference_from_bytes`], plus [`CheckpointError::Io`],
/// [`CheckpointError::NotRegularFile`] and [`CheckpointError::FileTooLarge`];
/// errors name the files.
pub fn read_reference(
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<AdapterFile, CheckpointError> {
    let path = path.as_ref();
    let (dir, tensors) = if path.is_dir() {
        (path.to_path_buf(), tensor_file_in(path))
    } else {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, path.to_path_buf())
    };
    let config_path = dir.join(CONFIG_FILE);
    let max = options.max_file_bytes;
    let bytes = read_file_limited(&tensors, max)?;
    let json = read_file_limited(&config_path, max)?;
    reference_from_bytes(&json, &bytes, TensorFormat::of_path(&tensors), options)
        .map_err(|e| with_paths(e, &config_path, &tensors))
}

/// [`read_reference`] on bytes: `adapter_config.json` and a tensor file in
/// `format`. Errors name the files `adapter_config.json` and
/// `adapter_model.safetensors` / `adapter_model.bin`.
///
/// This checks the format version, the tensor file's digest (when the
/// config has one), every key, shape and dtype, that every value is finite
/// (unless `options` allows it), and that the config agrees with the
/// tensors. It never panics on bad input.
///
/// # Errors
///
/// Any [`CheckpointError`] describing the first problem found.
pub fn reference_from_bytes(
    config_json: &[u8],
    tensors: &[u8],
    format: TensorFormat,
    options: &LoadOptions,
) -> Result<AdapterFile, CheckpointError> {
    let config = AdapterConfig::from_json(config_json, CONFIG_FILE)?;
    let raw = match format {
        TensorFormat::Safetensors => {
            if let Some(want) = config.tensor_file {
                let found = TensorDigest::of(tensors);
                if found != want {
                    return Err(CheckpointError::mismatch(
                        "tensor_file",
                        format!("{want:?} (the tensor file saved with this config)"),
                        format!("{found:?}: config and tensors are from different saves"),
                    ));
                }
            }
            read_safetensors(tensors, TENSORS_FILE)?
        }
        TensorFormat::TorchZip => read_torch(tensors, REFERENCE_TENSORS_FILE)?,
    };
    AdapterFile::from_raw(config, raw, options)
}

/// The mean of the initial adapter's heads, `[d_output, r]`, on the host.
///
/// The layer has its own device-side mean of stacked heads (`mean_head` in
/// the crate's `merge` module); this one works on a file's separate host
/// heads in PyTorch layout, in f64, before any model or backend is involved,
/// and becomes the compensation pair that a load then writes into the model.
fn mean_head(heads: &[HostTensor]) -> HostTensor {
    let n = heads.len().max(1) as f64;
    let mut data = vec![0.0; heads[0].data.len()];
    for h in heads {
        data.iter_mut().zip(&h.data).for_each(|(m, v)| *m += v);
    }
    data.iter_mut().for_each(|m| *m /= n);
    HostTensor::new(heads[0].shape.clone(), data)
}

/// Give every module of `file` the compensation pair `(A_init, mean_i B_i,init)`
/// from the initial adapter `initial`.
///
/// # Errors
///
/// [`CheckpointError::MissingKey`] or [`CheckpointError::ShapeMismatch`] when
/// the initial adapter does not cover every module with the same shapes.
pub fn add_reference_compensation(
    file: &mut AdapterFile,
    initial: &AdapterFile,
) -> Result<(), CheckpointError> {
    for (name, m) in file.modules.iter_mut() {
        let Some(init) = initial.modules.get(name) else {
            return Err(CheckpointError::MissingKey {
                key: TensorRole::A.key(name),
                expected: format!("{:?} in the initial adapter", m.a.shape),
            });
        };
        if init.a.shape != m.a.shape || init.heads.len() != m.heads.len() {
            return Err(CheckpointError::ShapeMismatch {
                key: TensorRole::A.key(name),
                expected: m.a.shape.clone(),
                found: init.a.shape.clone(),
            });
        }
        if let Some((i, h)) = init
            .heads
            .iter()
            .enumerate()
            .find(|(i, h)| h.shape != m.heads[*i].shape)
        {
            return Err(CheckpointError::ShapeMismatch {
                key: TensorRole::Head(i).key(name),
                expected: m.heads[i].shape.clone(),
                found: h.shape.clone(),
            });
        }
        m.compensation = Some((init.a.clone(), mean_head(&init.heads)));
    }
    Ok(())
}

/// Load a reference adapter (see [`read_reference`]) into `model`; see the
/// [module docs](self) for what this means and how to reconstruct the trained state.
///
/// # Errors
///
/// As [`read_reference`], [`add_reference_compensation`] and [`apply_adapter`].
pub fn load_reference<M: Adapt>(
    model: M,
    path: impl AsRef<Path>,
    options: &ReferenceOptions,
) -> Result<(M, LoadReport), CheckpointError> {
    let mut file = read_reference(path, &options.load)?;
    if let Some(init) = &options.initial_adapter {
        add_reference_compensation(&mut file, &read_reference(init, &options.load)?)?;
    }
    apply_adapter(model, &file, &options.load)
}
