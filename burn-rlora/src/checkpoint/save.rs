//! Saving adapters: collecting them from a model, encoding, atomic writes.

use std::path::Path;

use burn::tensor::DType;

use super::atomic::{replace_dir, InjectFault};
use super::error::CheckpointError;
use super::format::{
    write_safetensors, AdapterConfig, AdapterFile, HostTensor, TensorDigest, CONFIG_FILE,
    TENSORS_FILE,
};
use super::load::storage_dtype;
use super::model::adapter_tensors;
use super::naming::ModuleNaming;
use crate::adapt::Adapt;
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
    /// Save tensors holding NaN or infinities (default: false, they are
    /// [`CheckpointError::NonFinite`]).
    pub allow_non_finite: bool,
}

impl SaveOptions {
    /// Options for layers built with `config`, identity naming, no base model name.
    pub fn new(config: RLoraConfig) -> Self {
        Self {
            config,
            naming: ModuleNaming::new(),
            base_model: None,
            allow_non_finite: false,
        }
    }

    /// Accept (or refuse, the default) tensors holding NaN or infinities.
    pub fn with_allow_non_finite(mut self, allow: bool) -> Self {
        self.allow_non_finite = allow;
        self
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
    /// Collect the adapter of every adapted `RLoraLinear` in `model`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::NoAdapters`] for a model without adapted layers;
    /// [`CheckpointError::ConfigMismatch`] when a layer's shapes disagree with
    /// `options.config` (rank, heads, router, compensation pair);
    /// [`CheckpointError::DuplicateModuleName`] or [`CheckpointError::InvalidRule`]
    /// for a bad naming; [`CheckpointError::NonFinite`] for a tensor holding
    /// NaN or an infinity, unless `options.allow_non_finite`.
    pub fn from_model<M: Adapt>(
        model: &M,
        options: &SaveOptions,
    ) -> Result<(Self, DType), CheckpointError> {
        let layers = adapter_tensors(model)?;
        let config = &options.config;
        let paths: Vec<String> = layers.iter().map(|(slot, _)| slot.path.clone()).collect();
        let names = options.naming.names(paths.iter().map(String::as_str))?;
        let mut modules = std::collections::BTreeMap::new();
        let mut dtype = DType::F32;
        for ((slot, tensors), name) in layers.into_iter().zip(&names) {
            let checks = [
                ("rank", config.rank.to_string(), slot.rank.to_string()),
                (
                    "num_heads",
                    config.num_heads.to_string(),
                    slot.heads.to_string(),
                ),
                (
                    "router",
                    (config.router == RouterKind::Softmax).to_string(),
                    slot.has_route.to_string(),
                ),
                (
                    "compensation pair",
                    config.needs_compensation().to_string(),
                    slot.has_compensation.to_string(),
                ),
            ];
            for (what, want, got) in checks {
                if want != got {
                    return Err(CheckpointError::mismatch(
                        format!("{}: {what}", slot.path),
                        format!("{want} (SaveOptions::config)"),
                        format!("{got} (the layer)"),
                    ));
                }
            }
            dtype = storage_dtype(slot.dtype);
            modules.insert(name.clone(), tensors);
        }
        let mut adapter_config = AdapterConfig::new(config, names);
        adapter_config.base_model_name_or_path = options.base_model.clone();
        let file = Self {
            config: adapter_config,
            modules,
            ignored_keys: Vec::new(),
        };
        if !options.allow_non_finite {
            file.check_finite()?;
        }
        Ok((file, dtype))
    }

    /// Encode as `(adapter_config.json, adapter_model.safetensors)` bytes, the
    /// tensors in `dtype` (F32, F64, F16 or BF16). The config gets the format
    /// version and the tensor file's digest.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::UnsupportedDtype`] for another dtype.
    pub fn encode(&self, dtype: DType) -> Result<(String, Vec<u8>), CheckpointError> {
        let tensors: Vec<(String, HostTensor, DType)> = self
            .modules
            .iter()
            .flat_map(|(name, m)| m.named(name))
            .map(|(key, t)| (key, t.clone(), dtype))
            .collect();
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

    /// Write the adapter directory `dir` as one unit: a complete new
    /// directory is written and synced next to it, then swapped in (see
    /// below). A save that fails or is killed at any step leaves `dir` holding
    /// either the previous checkpoint or the new one, complete. `dir` must be
    /// new, empty, or hold only an adapter checkpoint (its two files):
    /// anything else in it would be lost, so that is an error.
    ///
    /// On Linux the swap is one `renameat2(RENAME_EXCHANGE)` (or one rename
    /// when `dir` does not exist yet). Elsewhere, or on a file system without
    /// the exchange, the old directory is renamed aside first, so a kill
    /// between the two renames leaves the previous checkpoint under the hidden
    /// name `.<dir>.rlora-old-*` next to `dir`. Leftovers of killed saves are
    /// hidden siblings (`.<dir>.rlora-*`), removed by the next save.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] naming `dir` if writing fails;
    /// [`CheckpointError::WouldLoseData`] if `dir` is not a directory or holds other files.
    pub fn save(
        &self,
        dir: impl AsRef<Path>,
        dtype: DType,
    ) -> Result<AdapterConfig, CheckpointError> {
        self.save_with(dir.as_ref(), dtype, InjectFault::None).0
    }

    /// [`save`](Self::save) with a failure injected at one step, for tests
    /// (feature `testing`); also returns whether the fault fired.
    #[cfg(feature = "testing")]
    pub fn save_injecting(
        &self,
        dir: impl AsRef<Path>,
        dtype: DType,
        fault: InjectFault,
    ) -> (Result<AdapterConfig, CheckpointError>, bool) {
        self.save_with(dir.as_ref(), dtype, fault)
    }

    fn save_with(
        &self,
        dir: &Path,
        dtype: DType,
        fault: InjectFault,
    ) -> (Result<AdapterConfig, CheckpointError>, bool) {
        let (json, bytes) = match self.encode(dtype) {
            Ok(x) => x,
            Err(e) => return (Err(e), false),
        };
        let files: [(&str, &[u8]); 2] = [(TENSORS_FILE, &bytes), (CONFIG_FILE, json.as_bytes())];
        let (result, fired) = replace_dir(dir, &files, fault);
        let result = result.and_then(|()| AdapterConfig::from_json(json.as_bytes(), CONFIG_FILE));
        (result, fired)
    }
}

/// Save the adapters of every adapted `RLoraLinear` in `model` to the directory
/// `dir`: `adapter_model.safetensors` (adapter tensors only, PyTorch layout,
/// the reference's names) and `adapter_config.json`.
///
/// Returns the config written.
///
/// # Errors
///
/// See [`AdapterFile::from_model`] and [`AdapterFile::save`].
pub fn save_adapter<M: Adapt>(
    model: &M,
    dir: impl AsRef<Path>,
    options: &SaveOptions,
) -> Result<AdapterConfig, CheckpointError> {
    let (file, dtype) = AdapterFile::from_model(model, options)?;
    file.save(dir, dtype)
}
