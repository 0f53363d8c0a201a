//! Adapters of the decoder in and out, under PEFT's names.
//!
//! The decoder's module paths are those of Hugging Face's
//! `CausalLm` (`model.layers.3.mlp.gate_proj`); in the files they
//! carry PEFT's prefix, `base_model.model.`, so an adapter directory reads
//! like one PEFT writes (`base_model.model.model.layers.3.mlp.gate_proj.lora_A...`).

use std::path::Path;

use burn::tensor::backend::Backend;
use burn_rlora::checkpoint::{
    apply_adapter, save_adapter, AdapterConfig, AdapterFile, CheckpointError, LoadOptions,
    LoadReport, ModuleNaming, SaveOptions,
};
use burn_rlora::{AdaptConfig, RLoraConfig, RLoraError, TargetModules};

use crate::model::CausalLm;

/// The prefix PEFT puts before the model's own module paths.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// PEFT's naming of the decoder's modules.
pub fn peft_naming() -> ModuleNaming {
    ModuleNaming::new().with_prefix(PEFT_PREFIX)
}

/// What can go wrong putting a saved adapter on the decoder.
#[derive(Debug, thiserror::Error)]
pub enum AdapterLoadError {
    /// The adapter directory could not be read or does not fit the model.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The adapter's layers could not be put on the model.
    #[error(transparent)]
    Adapt(#[from] RLoraError),
}

/// Save the adapters of `model` (built with `config`) to `dir` under PEFT's
/// names, the base model named `base_model`; returns the config written.
///
/// # Errors
///
/// As [`save_adapter`]: a model with no adapted layer, non-finite values,
/// or a file that cannot be written (nothing is left half-written).
pub fn save_decoder_adapter<B: Backend>(
    model: &CausalLm<B>,
    dir: impl AsRef<Path>,
    config: &RLoraConfig,
    base_model: &str,
) -> Result<AdapterConfig, CheckpointError> {
    let options = SaveOptions::new(config.clone())
        .with_naming(peft_naming())
        .with_base_model(base_model);
    save_adapter(model, dir, &options)
}

/// The plain decoder `model` with the adapter saved in `dir` put on the
/// layers the file names, its tensors loaded.
///
/// A file written by this crate lists its module paths, and exactly those
/// layers are adapted; a reference (PEFT) file lists only short names
/// (`target_modules`), and every layer of those names is.
///
/// # Errors
///
/// [`AdapterLoadError`]: the directory cannot be read, names a layer the
/// model does not have, or holds tensors of other shapes.
pub fn load_decoder_adapter<B: Backend>(
    model: CausalLm<B>,
    dir: impl AsRef<Path>,
) -> Result<(CausalLm<B>, LoadReport), AdapterLoadError> {
    let options = LoadOptions::new().with_naming(peft_naming());
    let file = AdapterFile::read(dir, &options)?;
    let targets: Vec<String> = match file.config.target_module_paths.is_empty() {
        false => file
            .config
            .target_module_paths
            .iter()
            .map(|p| p.strip_prefix(PEFT_PREFIX).unwrap_or(p).to_string())
            .collect(),
        true => file.config.target_modules.clone(),
    };
    let adapt = AdaptConfig::new(file.config.rlora_config(), TargetModules::names(targets));
    let model = adapt.adapt(model)?;
    Ok(apply_adapter(model, &file, &options)?)
}
