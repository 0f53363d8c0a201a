//! Adapters of the decoder in and out, under PEFT's names.
//!
//! The decoder's module paths are those of Hugging Face's
//! `CausalLm` (`model.layers.3.mlp.gate_proj`); in the files they
//! carry PEFT's prefix, `base_model.model.`, so an adapter directory reads
//! like one PEFT writes (`base_model.model.model.layers.3.mlp.gate_proj.lora_A...`),
//! and a standard PEFT LoRA adapter trained in Python on the same model
//! (from the Hub, or `save_pretrained`) loads with [`load_decoder_adapter`].

use std::path::Path;

use burn::tensor::backend::Backend;
use burn_rlora::checkpoint::{
    adapter_layout, apply_adapter, load_peft_lora, save_adapter, AdapterConfig, AdapterFile,
    AdapterLayout, CheckpointError, LoadOptions, LoadReport, ModuleNaming, SaveOptions,
};
use burn_rlora::{AdaptConfig, RLoraConfig, RLoraError, TargetModules};

use crate::model::CausalLm;

/// The prefix PEFT puts before the model's own module paths.
pub const PEFT_PREFIX: &str = burn_rlora::checkpoint::PEFT_PREFIX;

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
/// Three layouts load, told apart by `adapter_config.json`
/// ([`adapter_layout`]):
///
/// * a file written by this crate ([`save_decoder_adapter`]) lists its
///   module paths, and exactly those layers are adapted with its config;
/// * a standard PEFT LoRA adapter (`peft_type` and no `lora_nums`: tensors
///   `lora_A.weight` / `lora_B.weight`, as `save_pretrained` writes them,
///   `adapter_model.safetensors` or `adapter_model.bin`) is loaded by
///   [`load_peft_lora`]: every layer the file holds gets LoRA with PEFT's
///   rank, alpha and scaling for that module (`rank_pattern`,
///   `alpha_pattern`, `use_rslora`), so the logits are PEFT's; what is
///   refused is listed in [`burn_rlora::checkpoint::peft`];
/// * a multi-head reference file (`lora_nums`) lists only short names
///   (`target_modules`), and every layer of those names is adapted.
///
/// # Errors
///
/// [`AdapterLoadError`]: the directory cannot be read, names a layer the
/// model does not have, holds tensors of other shapes, or a PEFT config
/// this crate does not load
/// ([`CheckpointError::UnsupportedConfig`], naming the field).
pub fn load_decoder_adapter<B: Backend>(
    model: CausalLm<B>,
    dir: impl AsRef<Path>,
) -> Result<(CausalLm<B>, LoadReport), AdapterLoadError> {
    let options = LoadOptions::new().with_naming(peft_naming());
    let dir = dir.as_ref();
    if adapter_layout(dir, &options)? == AdapterLayout::PeftLora {
        return Ok(load_peft_lora(model, dir, &options)?);
    }
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
