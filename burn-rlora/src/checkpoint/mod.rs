//! Adapter checkpoints (feature `store`): save, load, import and merge.
//!
//! An adapter directory holds two files:
//!
//! * `adapter_model.safetensors`: only the adapter tensors, in PyTorch layout
//!   and with the names of the reference PEFT fork, so that files move
//!   between the Python reference and Burn:
//!
//!   | key | shape | Burn field (of [`RLoraAdapter`](crate::RLoraAdapter)) |
//!   |---|---|---|
//!   | `<module>.lora_A.weight` | `[r, in]` | `lora_a` (transposed) |
//!   | `<module>.lora_B{i}.weight` | `[out, r]` | rows `i*r..(i+1)*r` of `lora_b` (transposed) |
//!   | `<module>.lora_route.weight` | `[N, in]` | `lora_route` (transposed) |
//!   | `<module>.rlora_A0.weight` | `[r, in]` | `lora_a0`: this crate's compensation pair |
//!   | `<module>.rlora_B0.weight` | `[out, r]` | `lora_b0` |
//!
//! * `adapter_config.json`: the full [`RLoraConfig`](crate::RLoraConfig), the
//!   module names, the format version, the base model's name, a digest of the
//!   tensor file, and the reference's fields (`r`, `lora_alpha`,
//!   `lora_dropout`, `lora_nums`, `target_modules`, `peft_type: "LORA"`).
//!
//! `<module>` is the path of the layer in the Burn model (its field names,
//! found by type through [`Adapt`](crate::Adapt), which the model derives),
//! mapped by a [`ModuleNaming`] (prefix and regex rules) to the names of a
//! Python model.
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::module::Module;
//! use burn::nn::LinearConfig;
//! use burn::tensor::{backend::Backend, Tensor};
//! use burn_rlora::checkpoint::{load_adapter, save_adapter, LoadOptions, SaveOptions};
//! use burn_rlora::{Adapt, RLoraConfig, RLoraLinear};
//!
//! #[derive(Module, Adapt, Debug)]
//! struct Block<B: Backend> {
//!     up: RLoraLinear<B>,
//!     down: RLoraLinear<B>,
//! }
//!
//! fn block(config: &RLoraConfig) -> Block<NdArray> {
//!     let device = Default::default();
//!     Block {
//!         up: RLoraLinear::from_linear(LinearConfig::new(8, 16).init(&device), config).unwrap(),
//!         down: RLoraLinear::from_linear(LinearConfig::new(16, 8).init(&device), config).unwrap(),
//!     }
//! }
//!
//! let config = RLoraConfig::r_lora(4, 32.0, 3);
//! let trained = block(&config);
//! let dir = std::env::temp_dir().join(format!("rlora-doc-{}", std::process::id()));
//! save_adapter(&trained, &dir, &SaveOptions::new(config.clone()))?;
//!
//! // The same base with freshly drawn (different) heads: loading restores the saved ones.
//! let fresh = Block {
//!     up: RLoraLinear::from_linear(trained.up.base(), &config).unwrap(),
//!     down: RLoraLinear::from_linear(trained.down.base(), &config).unwrap(),
//! };
//! let heads = |m: &Block<NdArray>| m.up.adapter().unwrap().lora_b.val().into_data();
//! assert_ne!(heads(&fresh), heads(&trained));
//! let (loaded, report) = load_adapter(fresh, &dir, &LoadOptions::new())?;
//! assert_eq!(report.modules.len(), 2);
//! assert_eq!(heads(&loaded), heads(&trained));
//! let x = Tensor::<NdArray, 2>::ones([2, 8], &Default::default());
//! let f = |m: &Block<NdArray>| m.down.forward(m.up.forward(x.clone())).into_data();
//! assert_eq!(f(&loaded), f(&trained));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), burn_rlora::checkpoint::CheckpointError>(())
//! ```
//!
//! How much of this is burn-store: merged models are written and read with
//! `SafetensorsStore`. The adapted layers are found by type (an
//! [`Adapt`](crate::Adapt) walk), and loading puts each tensor into its
//! layer's parameter directly: the shape is checked, the tensor is created on
//! the parameter's device in its dtype, and the parameter keeps its id and
//! trainable/frozen flag. The adapter file itself is encoded with
//! the `safetensors` crate, because one Burn tensor (`lora_b`) becomes `N`
//! tensors (`lora_B{i}`) and burn-store's key remapping is one-to-one, and
//! the transposes are done on the host, because `PyTorchToBurnAdapter`
//! transposes only the `weight` of `Struct:Linear` modules.
//!
//! Saving replaces the adapter directory as one unit (a complete sibling
//! directory is written, synced and swapped in; see [`AdapterFile::save`]),
//! and a config and tensor file from different saves are detected by the
//! digest. Tensors holding NaN or infinities are refused on save and load
//! unless `allow_non_finite` is set.
//!
//! Loading reads only regular files (a device, FIFO or socket is refused on
//! the opened file) of at most [`LoadOptions::max_file_bytes`]
//! ([`DEFAULT_MAX_FILE_BYTES`] by default), checks every number of the
//! config against the tensors before sizing anything from it, validates
//! every key, shape and dtype, and returns a [`CheckpointError`] naming the
//! key, the expected and the found value; it does not panic on bad input
//! (the loaders are fuzzed, see `fuzz/`).
//!
//! Standard PEFT LoRA adapters (`lora_A.weight` and `lora_B.weight`, the
//! layout of LoRA adapters on the Hub): see [`peft`](mod@peft) and
//! [`load_peft_lora`]; [`adapter_layout`] tells the layouts apart.
//!
//! Reference adapters (`adapter_model.bin`): see [`reference`](mod@reference)
//! and the strict `torch.save` reader [`torch`](mod@torch). The file format's
//! own types (the tensors of one module on the host, tensor roles and names,
//! the digest, the format versions) are in [`format`](mod@format). Merging: see
//! [`merge_model`], [`merge_into`], [`save_merged`] and [`merge_safetensors`].

mod atomic;
mod error;
mod file;
pub mod format;
mod load;
mod merge;
mod model;
mod naming;
mod parse;
pub mod peft;
mod pytorch;
pub mod reference;
mod save;
pub mod torch;

#[cfg(feature = "testing")]
pub use atomic::InjectFault;
pub use error::CheckpointError;
pub use file::{read_regular_file, DEFAULT_MAX_FILE_BYTES};
pub use format::{AdapterConfig, AdapterFile, CONFIG_FILE, TENSORS_FILE};
pub use load::{apply_adapter, load_adapter, read_config, LoadOptions, LoadReport};
pub use merge::{merge_into, merge_model, merge_safetensors, save_merged};
pub use naming::ModuleNaming;
pub use peft::{
    adapter_layout, apply_peft_lora, load_peft_lora, AdapterLayout, PeftLoraConfig, PeftLoraFile,
    PeftLoraModule, PEFT_PREFIX,
};
pub use pytorch::PyTorchLayers;
pub use reference::{
    load_reference, read_reference, reference_from_bytes, ReferenceOptions, TensorFormat,
};
pub use save::{save_adapter, SaveOptions};
