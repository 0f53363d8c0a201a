//! Saving adapters: collecting them from a model, encoding, atomic writes.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::DType;

use super::error::CheckpointError;
use super::format::{
    write_safetensors, AdapterConfig, AdapterFile, HostTensor, TensorDigest, TensorRole,
    CONFIG_FILE, TENSORS_FILE,
};
use super::load::storage_dtype;
use super::model::adapted_layers;
use super::naming::ModuleNaming;
use crate::config::{RLoraConfig, RouterKind};

/// How to save an adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct SaveOptions {
    /// The config every adapted layer of the model was built with. It is
    /// written to `adapter_config.json` and checked against the tensors.
    pub config: RLoraConfig,
    /// Maps the model's module paths to names in the file.
    pub naming: ModuleNaming,
    /// The base model's name, written as `base_model_name_or_path`.
    pub base_model: Option<String>,
}

impl SaveOptions {
    /// Options for layers built with `config`, identity naming, no base model name.
    pub fn new(config: RLoraConfig) -> Self {
        Self {
            config,
            naming: ModuleNaming::new(),
            base_model: None,
        }
    }

    /// Set the module naming.
    pub fn with_naming(mut self, naming: ModuleNaming) -> Self {
        self.naming = naming;
        self
    }

    /// Set the base model name.
    pub fn with_base_model(mut self, name: impl Into<String>) -> Self {
        self.base_model = Some(name.into());
        self
    }
}

impl AdapterFile {
    /// Collect the adapter of every `RLoraLinear` in `model`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::NoAdapters`] for a model without adapted layers;
    /// [`CheckpointError::ConfigMismatch`] when a layer's shapes disagree with
    /// `options.config` (rank, heads, router, compensation pair);
    /// [`CheckpointError::DuplicateModuleName`] or [`CheckpointError::InvalidRule`]
    /// for a bad naming.
    pub fn from_model<B: Backend, M: Module<B>>(
        model: &M,
        options: &SaveOptions,
    ) -> Result<(Self, DType), CheckpointError> {
        let slots = adapted_layers(model);
        if slots.is_empty() {
            return Err(CheckpointError::NoAdapters);
        }
        let config = &options.config;
        let paths: Vec<String> = slots.iter().map(|s| s.path_str()).collect();
        let names = options.naming.names(paths.iter().map(String::as_str))?;
        let mut modules = std::collections::BTreeMap::new();
        let mut dtype = DType::F32;
        for ((slot, name), path) in slots.iter().zip(&names).zip(&paths) {
            let (_, _, r, n) = slot.shape();
            let checks = [
                ("rank", config.rank.to_string(), r.to_string()),
                ("num_heads", config.num_heads.to_string(), n.to_string()),
                (
                    "router",
                    (config.router == RouterKind::Softmax).to_string(),
                    slot.has("lora_route").to_string(),
                ),
                (
                    "compensation pair",
                    config.needs_compensation().to_string(),
                    slot.has("lora_a0").to_string(),
                ),
            ];
            for (what, want, got) in checks {
                if want != got {
                    return Err(CheckpointError::mismatch(
                        format!("{path}: {what}"),
                        format!("{want} (SaveOptions::config)"),
                        format!("{got} (the layer)"),
                    ));
                }
            }
            dtype = storage_dtype(slot.dtype());
            modules.insert(name.clone(), slot.to_module_tensors()?);
        }
        let mut adapter_config = AdapterConfig::new(config, names);
        adapter_config.base_model_name_or_path = options.base_model.clone();
        Ok((
            Self {
                config: adapter_config,
                modules,
                ignored_keys: Vec::new(),
            },
            dtype,
        ))
    }

    /// Encode as `(adapter_config.json, adapter_model.safetensors)` bytes, the
    /// tensors in `dtype` (F32, F64, F16 or BF16). The config gets the format
    /// version and the tensor file's digest.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::UnsupportedDtype`] for another dtype.
    pub fn encode(&self, dtype: DType) -> Result<(String, Vec<u8>), CheckpointError> {
        let mut tensors: Vec<(String, HostTensor, DType)> = Vec::new();
        for (name, m) in &self.modules {
            tensors.push((TensorRole::A.key(name), m.a.clone(), dtype));
            for (i, h) in m.heads.iter().enumerate() {
                tensors.push((TensorRole::Head(i).key(name), h.clone(), dtype));
            }
            if let Some(route) = &m.route {
                tensors.push((TensorRole::Route.key(name), route.clone(), dtype));
            }
            if let Some((a0, b0)) = &m.compensation {
                tensors.push((TensorRole::A0.key(name), a0.clone(), dtype));
                tensors.push((TensorRole::B0.key(name), b0.clone(), dtype));
            }
        }
        let bytes = write_safetensors(&tensors)?;
        let mut config = self.config.clone();
        if config.burn_rlora_format.is_none() || config.rlora.is_none() {
            // A converted reference adapter: record the config it is loaded with.
            let with_pair = self.modules.values().any(|m| m.compensation.is_some());
            config.rlora = Some(if with_pair {
                config.rlora_config_with_compensation()
            } else {
                config.rlora_config()
            });
            config.burn_rlora_format = Some(super::format::FORMAT_VERSION);
        }
        config.target_module_paths = self.modules.keys().cloned().collect();
        config.tensor_file = Some(TensorDigest::of(&bytes));
        Ok((config.to_json(), bytes))
    }

    /// Write the adapter directory `dir` (created if needed): first the
    /// tensor file, then the config, each atomically. A config and a tensor
    /// file from different saves are detected on load by the digest.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] if writing fails; the previous files are then intact.
    pub fn save(
        &self,
        dir: impl AsRef<Path>,
        dtype: DType,
    ) -> Result<AdapterConfig, CheckpointError> {
        let dir = dir.as_ref();
        let (json, bytes) = self.encode(dtype)?;
        std::fs::create_dir_all(dir).map_err(|e| CheckpointError::io(dir, e))?;
        atomic_write(&dir.join(TENSORS_FILE), |f| f.write_all(&bytes))?;
        atomic_write(&dir.join(CONFIG_FILE), |f| f.write_all(json.as_bytes()))?;
        AdapterConfig::from_json(json.as_bytes(), CONFIG_FILE)
    }
}

/// Save the adapters of every `RLoraLinear` in `model` to the directory
/// `dir`: `adapter_model.safetensors` (adapter tensors only, PyTorch layout,
/// the reference's names) and `adapter_config.json`.
///
/// Returns the config written.
///
/// # Errors
///
/// See [`AdapterFile::from_model`] and [`AdapterFile::save`].
pub fn save_adapter<B: Backend, M: Module<B>>(
    model: &M,
    dir: impl AsRef<Path>,
    options: &SaveOptions,
) -> Result<AdapterConfig, CheckpointError> {
    let (file, dtype) = AdapterFile::from_model(model, options)?;
    file.save(dir, dtype)
}

/// Write `bytes` to `path` atomically (temporary file in the same directory,
/// synced, then renamed): after a failure `path` is untouched.
///
/// # Errors
///
/// [`CheckpointError::Io`] naming the file that failed.
pub fn write_atomically(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), CheckpointError> {
    atomic_write(path.as_ref(), |f| f.write_all(bytes))
}

/// Write a file atomically: `write` fills a temporary file in the same
/// directory, which is synced and then renamed over `path`. If `write` or
/// any step fails, the temporary file is removed and `path` is untouched.
pub(crate) fn atomic_write(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), CheckpointError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = File::create(&tmp)
        .and_then(|mut f| {
            write(&mut f)?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(CheckpointError::io(&tmp, e));
    }
    if let Some(dir) = path.parent() {
        // Persist the rename; not every platform can sync a directory.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_previous_file_and_no_temp() {
        let dir = std::env::temp_dir().join(format!("rlora-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file.bin");
        atomic_write(&path, |f| f.write_all(b"previous")).unwrap();
        let err = atomic_write(&path, |f| {
            f.write_all(b"half of the new con")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"previous");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file was not removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
