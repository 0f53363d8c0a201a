//! A Llama decoder and its tokenizer from one GGUF file.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_rlora_gguf::{GgufFile, Value};

use super::config::LlamaConfig;
use super::error::DecoderError;
use super::load::{load_llama, HostTensor, WeightSource};
use super::tokenizer::{SmolTokenizer, TokenizerSpec};
use super::LlamaForCausalLM;

/// Where `scripts/fetch-data.sh` puts the model, under the data directory.
pub const SMOLLM2_FILE: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The SmolLM2 file under `data_dir` (see [`default_data_dir`](crate::minilm::default_data_dir)).
pub fn smollm2_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SMOLLM2_FILE)
}

fn file_name(file: &GgufFile) -> String {
    file.path()
        .map_or_else(|| "<GGUF bytes>".to_string(), |p| p.display().to_string())
}

impl WeightSource for GgufFile {
    fn file(&self) -> String {
        file_name(self)
    }

    fn tensor(&mut self, name: &str) -> Result<Option<HostTensor>, DecoderError> {
        if !self.tensors().iter().any(|t| t.name() == name) {
            return Ok(None);
        }
        let (dims, values) = self.read_f32(name)?;
        Ok(Some(HostTensor {
            shape: burn_rlora_gguf::row_major_shape(&dims),
            values,
        }))
    }
}

/// A metadata value of `file` that must be a non-negative integer.
fn count(file: &GgufFile, key: &str) -> Result<usize, DecoderError> {
    let bad = |reason: String| DecoderError::Metadata {
        file: file_name(file),
        key: key.to_string(),
        reason,
    };
    let value = file
        .metadata()
        .get(key)
        .ok_or_else(|| bad("missing".into()))?;
    let n: i128 = match value {
        Value::U8(v) => (*v).into(),
        Value::U16(v) => (*v).into(),
        Value::U32(v) => (*v).into(),
        Value::U64(v) => (*v).into(),
        Value::I8(v) => (*v).into(),
        Value::I16(v) => (*v).into(),
        Value::I32(v) => (*v).into(),
        Value::I64(v) => (*v).into(),
        other => {
            return Err(bad(format!(
                "{:?} where an integer belongs",
                other.value_type()
            )))
        }
    };
    usize::try_from(n).map_err(|_| bad(format!("{n} is not a count")))
}

/// A metadata value of `file` that must be a number.
fn number(file: &GgufFile, key: &str) -> Result<Option<f64>, DecoderError> {
    match file.metadata().get(key) {
        None => Ok(None),
        Some(Value::F32(v)) => Ok(Some(f64::from(*v))),
        Some(Value::F64(v)) => Ok(Some(*v)),
        Some(other) => Err(DecoderError::Metadata {
            file: file_name(file),
            key: key.to_string(),
            reason: format!("{:?} where a number belongs", other.value_type()),
        }),
    }
}

/// The decoder's shape from the metadata of a `llama` GGUF file.
///
/// The vocabulary's size is `llama.vocab_size` or, when absent, the number
/// of tokens; the output head is tied when the file has no `output.weight`.
///
/// # Errors
///
/// [`DecoderError::Metadata`] for another architecture or a missing or
/// mistyped value, [`DecoderError::InvalidConfig`] for sizes that do not fit.
pub fn llama_config(file: &GgufFile) -> Result<LlamaConfig, DecoderError> {
    let arch = file.metadata().get_str("general.architecture")?;
    if arch != "llama" {
        return Err(DecoderError::Metadata {
            file: file_name(file),
            key: "general.architecture".into(),
            reason: format!("{arch:?}, only \"llama\" is supported"),
        });
    }
    let vocab_size = match file.metadata().contains_key("llama.vocab_size") {
        true => count(file, "llama.vocab_size")?,
        false => file
            .metadata()
            .get_str_array("tokenizer.ggml.tokens")?
            .len(),
    };
    let mut config = LlamaConfig::new(
        vocab_size,
        count(file, "llama.embedding_length")?,
        count(file, "llama.feed_forward_length")?,
        count(file, "llama.block_count")?,
        count(file, "llama.attention.head_count")?,
        count(file, "llama.attention.head_count_kv")?,
        count(file, "llama.context_length")?,
    )
    .with_tie_word_embeddings(!file.tensors().iter().any(|t| t.name() == "output.weight"));
    if let Some(theta) = number(file, "llama.rope.freq_base")? {
        config.rope_theta = theta;
    }
    if let Some(eps) = number(file, "llama.attention.layer_norm_rms_epsilon")? {
        config.rms_norm_eps = eps;
    }
    config.validate()?;
    if file.metadata().contains_key("llama.rope.dimension_count") {
        let rope_dims = count(file, "llama.rope.dimension_count")?;
        if rope_dims != config.head_dim() {
            return Err(DecoderError::Metadata {
                file: file_name(file),
                key: "llama.rope.dimension_count".into(),
                reason: format!(
                    "{rope_dims}: only rotating the whole head ({}) is supported",
                    config.head_dim()
                ),
            });
        }
    }
    Ok(config)
}

/// The tokenizer's description from the `tokenizer.ggml.*` metadata.
///
/// # Errors
///
/// [`DecoderError::Gguf`] or [`DecoderError::Metadata`] for a missing or
/// mistyped value.
pub fn tokenizer_spec(file: &GgufFile) -> Result<TokenizerSpec, DecoderError> {
    let meta = file.metadata();
    let id = |key: &str| -> Result<u32, DecoderError> {
        u32::try_from(count(file, key)?).map_err(|_| DecoderError::Metadata {
            file: file_name(file),
            key: key.to_string(),
            reason: "not a 32-bit token id".into(),
        })
    };
    let pad = match meta.contains_key("tokenizer.ggml.padding_token_id") {
        true => Some(id("tokenizer.ggml.padding_token_id")?),
        false => None,
    };
    let chat_template = match meta.contains_key("tokenizer.chat_template") {
        true => Some(meta.get_str("tokenizer.chat_template")?.to_string()),
        false => None,
    };
    Ok(TokenizerSpec {
        model: meta.get_str("tokenizer.ggml.model")?.to_string(),
        tokens: meta.get_str_array("tokenizer.ggml.tokens")?.to_vec(),
        token_types: meta.get_i32_array("tokenizer.ggml.token_type")?.to_vec(),
        merges: meta.get_str_array("tokenizer.ggml.merges")?.to_vec(),
        bos: id("tokenizer.ggml.bos_token_id")?,
        eos: id("tokenizer.ggml.eos_token_id")?,
        pad,
        pre: meta.get_str("tokenizer.ggml.pre")?.to_string(),
        chat_template,
    })
}

/// A Llama decoder, its tokenizer and its shape, read from one GGUF file.
#[derive(Debug)]
pub struct SmolLm<B: Backend> {
    /// The decoder, its projections plain.
    pub model: LlamaForCausalLM<B>,
    /// The tokenizer of the file's vocabulary.
    pub tokenizer: SmolTokenizer,
    /// The decoder's shape.
    pub config: LlamaConfig,
}

impl<B: Backend> SmolLm<B> {
    /// Read the GGUF file at `path` onto `device`.
    ///
    /// # Errors
    ///
    /// [`DecoderError`]: the file cannot be read or is not a Llama model
    /// this crate can build (each naming the file and the key or tensor).
    pub fn load(path: impl AsRef<Path>, device: &B::Device) -> Result<Self, DecoderError> {
        let mut file = GgufFile::open(path)?;
        let config = llama_config(&file)?;
        let tokenizer = SmolTokenizer::from_spec(tokenizer_spec(&file)?)?;
        if tokenizer.vocab_size() != config.vocab_size {
            return Err(DecoderError::Metadata {
                file: file_name(&file),
                key: "tokenizer.ggml.tokens".into(),
                reason: format!(
                    "{} tokens for a vocabulary of {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            });
        }
        let model = load_llama(&config, &mut file, device)?;
        Ok(Self {
            model,
            tokenizer,
            config,
        })
    }
}
