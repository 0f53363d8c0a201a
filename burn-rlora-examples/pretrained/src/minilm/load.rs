//! Loading the pretrained all-MiniLM-L6-v2 weights from `data/minilm/` with burn-store.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_rlora::checkpoint::PyTorchLayers;
use burn_store::{KeyRemapper, ModuleSnapshot, SafetensorsStore};

use super::config::BertConfig;
use super::encoder::BertModel;
use super::error::MiniLmError;
use super::targets::EncoderAdapterConfig;
use super::tokenize::MiniLmTokenizer;

/// Where `scripts/fetch-data.sh` puts the model, relative to the data directory.
pub const MINILM_SUBDIR: &str = "minilm";

/// The files of the pretrained encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniLmPaths {
    /// `model.safetensors`.
    pub weights: PathBuf,
    /// Hugging Face `config.json`.
    pub config: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
}

impl MiniLmPaths {
    /// The files under `<data_dir>/minilm/`, checked to exist.
    ///
    /// # Errors
    ///
    /// [`DataError::DataMissing`](crate::datasets::DataError::DataMissing) (which says to run `scripts/fetch-data.sh`)
    /// for the first file that is absent.
    pub fn in_data_dir(data_dir: impl AsRef<Path>) -> Result<Self, MiniLmError> {
        let dir = data_dir.as_ref().join(MINILM_SUBDIR);
        let paths = Self {
            weights: dir.join("model.safetensors"),
            config: dir.join("config.json"),
            tokenizer: dir.join("tokenizer.json"),
        };
        for p in [&paths.weights, &paths.config, &paths.tokenizer] {
            if !p.is_file() {
                return Err(MiniLmError::missing(p.clone()));
            }
        }
        Ok(paths)
    }
}

/// Tensors of the checkpoint that the encoder does not use.
fn is_unused_key(key: &str) -> bool {
    key == "embeddings.position_ids" || key.starts_with("pooler.")
}

/// The renames from Hugging Face's `BertModel` names to this crate's module fields.
fn key_remapper() -> Result<KeyRemapper, MiniLmError> {
    let bad = |e: String| MiniLmError::BadConfig(format!("key remapping: {e}"));
    KeyRemapper::new()
        .add_pattern(r"\.LayerNorm\.", ".layer_norm.")
        .map_err(|e| bad(e.to_string()))?
        .add_pattern(r"\.attention\.self\.", ".attention.self_attention.")
        .map_err(|e| bad(e.to_string()))
}

/// Load BERT weights saved by PyTorch (`transformers`' `BertModel` names, no
/// `bert.` prefix) into `model`.
///
/// The linears are loaded in their plain form; call this before
/// [`BertModel::adapt`]. Linear weights are transposed by burn-store's
/// [`PyTorchLayers`] and LayerNorm `weight`/`bias` become
/// `gamma`/`beta`; `embeddings.position_ids` and the pooler are skipped.
///
/// # Errors
///
/// [`DataError::DataMissing`](crate::datasets::DataError::DataMissing) if the file is absent; [`MiniLmError::Weights`]
/// if a tensor of the encoder is missing from the file, has another shape, or
/// the file holds tensors the encoder does not know (a naming mismatch).
pub fn load_bert_weights<B: Backend>(
    mut model: BertModel<B>,
    path: impl AsRef<Path>,
) -> Result<BertModel<B>, MiniLmError> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(MiniLmError::missing(path));
    }
    let weights_err = |reason: String| MiniLmError::Weights {
        path: path.into(),
        reason,
    };
    let mut store = SafetensorsStore::from_file(path)
        .remap(key_remapper()?)
        .with_from_adapter(PyTorchLayers::for_model(&model))
        .allow_partial(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| weights_err(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(weights_err(format!("{:?}", result.errors)));
    }
    // LayerNorm `weight`/`bias` are applied as `gamma`/`beta` through the
    // adapter's alternative names, yet burn-store still lists the file's names
    // as unused: accept them when the Burn name was applied.
    let applied_as_norm = |k: &str| {
        let burn_name = k
            .strip_suffix(".weight")
            .map(|p| format!("{p}.gamma"))
            .or_else(|| k.strip_suffix(".bias").map(|p| format!("{p}.beta")));
        burn_name.is_some_and(|n| result.applied.contains(&n))
    };
    let unexpected: Vec<&String> = result
        .unused
        .iter()
        .filter(|k| !is_unused_key(k) && !applied_as_norm(k))
        .collect();
    if !unexpected.is_empty() {
        return Err(weights_err(format!(
            "tensors in the file that the encoder does not have: {unexpected:?}"
        )));
    }
    Ok(model)
}

/// The pretrained all-MiniLM-L6-v2 encoder and its tokenizer.
#[derive(Debug)]
pub struct PretrainedMiniLm<B: Backend> {
    /// The encoder with the pretrained weights, all linears plain.
    pub model: BertModel<B>,
    /// Its tokenizer, truncating and padding as configured.
    pub tokenizer: MiniLmTokenizer,
    /// The model's config.
    pub config: BertConfig,
}

impl<B: Backend> PretrainedMiniLm<B> {
    /// Load the encoder (plain linears) and tokenizer (`max_len` tokens at most)
    /// from `<data_dir>/minilm/`.
    ///
    /// # Errors
    ///
    /// [`DataError::DataMissing`](crate::datasets::DataError::DataMissing) when `scripts/fetch-data.sh` has not been run;
    /// otherwise any error of the config, weights or tokenizer loading.
    pub fn load(
        data_dir: impl AsRef<Path>,
        max_len: usize,
        device: &B::Device,
    ) -> Result<Self, MiniLmError> {
        let paths = MiniLmPaths::in_data_dir(data_dir)?;
        let config = BertConfig::from_json_file(&paths.config)?;
        let model = load_bert_weights(config.init::<B>(device)?, &paths.weights)?;
        let tokenizer = MiniLmTokenizer::from_file(
            &paths.tokenizer,
            max_len.min(config.max_position_embeddings),
        )?;
        Ok(Self {
            model,
            tokenizer,
            config,
        })
    }

    /// Load as [`load`](Self::load), then put adapters on the targeted linears
    /// and freeze the rest ([`BertModel::adapt`]).
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), plus adapter construction errors.
    pub fn load_adapted(
        data_dir: impl AsRef<Path>,
        max_len: usize,
        adapters: &EncoderAdapterConfig,
        device: &B::Device,
    ) -> Result<Self, MiniLmError> {
        let mut this = Self::load(data_dir, max_len, device)?;
        this.model = this.model.adapt(adapters)?;
        Ok(this)
    }
}
