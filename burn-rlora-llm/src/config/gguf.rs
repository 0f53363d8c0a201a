//! The decoder's configuration from a GGUF file's metadata, checked against
//! the tensors the file holds.
//!
//! Keys are read under the architecture's prefix (`llama.block_count`,
//! `gemma3.attention.key_length`, ...), as llama.cpp's converter writes
//! them. Every size is checked against the tensor infos (their dims are in
//! the file's header, read before any data) before anything is allocated
//! from it: a block count, width or vocabulary that the tensors do not bear
//! out is an error naming the key, not an allocation.

use burn_rlora_gguf::{GgufFile, TensorInfo, Value};

use super::{Architecture, DecoderConfig};
use crate::error::DecoderError;

/// The name of `file`, for error messages.
pub(crate) fn file_name(file: &GgufFile) -> String {
    file.path()
        .map_or_else(|| "<GGUF bytes>".to_string(), |p| p.display().to_string())
}

/// A [`DecoderError::Metadata`] about `key` of `file`.
pub(crate) fn metadata_error(
    file: &GgufFile,
    key: &str,
    reason: impl Into<String>,
) -> DecoderError {
    DecoderError::Metadata {
        file: file_name(file),
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// A metadata value of `file` that must be a non-negative integer, or
/// `None` when absent.
pub(crate) fn optional_count(file: &GgufFile, key: &str) -> Result<Option<usize>, DecoderError> {
    let Some(value) = file.metadata().get(key) else {
        return Ok(None);
    };
    let Some(n) = value.as_integer() else {
        return Err(metadata_error(
            file,
            key,
            format!("{:?} where an integer belongs", value.value_type()),
        ));
    };
    usize::try_from(n)
        .map(Some)
        .map_err(|_| metadata_error(file, key, format!("{n} is not a count")))
}

/// A metadata value of `file` that must be a non-negative integer.
pub(crate) fn count(file: &GgufFile, key: &str) -> Result<usize, DecoderError> {
    optional_count(file, key)?.ok_or_else(|| metadata_error(file, key, "missing"))
}

/// A metadata value of `file` that must be a number, or `None` when absent.
pub(crate) fn number(file: &GgufFile, key: &str) -> Result<Option<f64>, DecoderError> {
    match file.metadata().get(key) {
        None => Ok(None),
        Some(Value::F32(v)) => Ok(Some(f64::from(*v))),
        Some(Value::F64(v)) => Ok(Some(*v)),
        Some(other) => Err(metadata_error(
            file,
            key,
            format!("{:?} where a number belongs", other.value_type()),
        )),
    }
}

/// The tensor info `name` of `file`, if the file has such a tensor.
fn tensor<'f>(file: &'f GgufFile, name: &str) -> Option<&'f TensorInfo> {
    file.tensors().iter().find(|t| t.name() == name)
}

/// The dims of tensor `name` in row-major order (outermost first), if present.
fn dims(file: &GgufFile, name: &str) -> Option<Vec<usize>> {
    tensor(file, name).map(|t| burn_rlora_gguf::row_major_shape(t.dims()))
}

impl DecoderConfig {
    /// The decoder's configuration from the metadata of a GGUF file, checked
    /// against the file's tensor infos.
    ///
    /// The architecture is `general.architecture` (one of
    /// [`Architecture::ALL`]); the sizes come from the keys under its
    /// prefix; the head width from `attention.key_length` when present;
    /// the vocabulary's size from `vocab_size` or, when absent, the number
    /// of tokens; the output head is tied when the file has no
    /// `output.weight`; Qwen2's biases are read from the tensors. What the
    /// metadata does not say is the architecture's own
    /// ([`for_architecture`](Self::for_architecture)).
    ///
    /// # Errors
    ///
    /// [`DecoderError::UnsupportedArchitecture`] naming an architecture
    /// outside the supported set; [`DecoderError::Metadata`] naming the key
    /// that is missing, mistyped, not borne out by the tensors (a block
    /// count with no such blocks, a width the embedding does not have), or
    /// a feature this crate does not build (RoPE scaling, a partial RoPE,
    /// experts); [`DecoderError::InvalidConfig`] for sizes that do not fit
    /// together.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, DecoderError> {
        let name = file
            .metadata()
            .get_str("general.architecture")
            .map_err(|e| metadata_error(file, "general.architecture", e.to_string()))?;
        let arch = Architecture::from_gguf_name(name).ok_or_else(|| {
            DecoderError::UnsupportedArchitecture {
                file: file_name(file),
                architecture: name.to_string(),
            }
        })?;
        let key = |k: &str| format!("{arch}.{k}");
        refuse_unsupported(file, arch)?;
        let heads = count(file, &key("attention.head_count"))?;
        let kv_heads = optional_count(file, &key("attention.head_count_kv"))?.unwrap_or(heads);
        let vocab_size = match optional_count(file, &key("vocab_size"))? {
            Some(v) => v,
            None => file
                .metadata()
                .get_str_array("tokenizer.ggml.tokens")
                .map_err(|e| metadata_error(file, "tokenizer.ggml.tokens", e.to_string()))?
                .len(),
        };
        let mut config = DecoderConfig::new(
            vocab_size,
            count(file, &key("embedding_length"))?,
            count(file, &key("feed_forward_length"))?,
            count(file, &key("block_count"))?,
            heads,
            kv_heads,
            count(file, &key("context_length"))?,
        )
        .with_head_dim(optional_count(file, &key("attention.key_length"))?)
        .with_sliding_window(optional_count(file, &key("attention.sliding_window"))?)
        .for_architecture(arch)
        .with_tie_word_embeddings(tensor(file, "output.weight").is_none());
        if arch == Architecture::Qwen2 {
            config.attention_bias = tensor(file, "blk.0.attn_q.bias").is_some();
        }
        if let Some(theta) = number(file, &key("rope.freq_base"))? {
            config.rope_theta = theta;
        }
        if let Some(eps) = number(file, &key("attention.layer_norm_rms_epsilon"))? {
            config.rms_norm_eps = eps;
        }
        // llama.cpp's keys for what Gemma 3's files usually leave to the
        // architecture's defaults.
        if let Some(theta) = number(file, &key("rope.freq_base_swa"))? {
            config.rope_local_base_freq = Some(theta);
        }
        if let Some(pattern) = optional_count(file, &key("attention.sliding_window_pattern"))? {
            config.sliding_window_pattern = Some(pattern);
        }
        if arch == Architecture::Gemma3 && config.sliding_window.is_none() {
            return Err(metadata_error(
                file,
                &key("attention.sliding_window"),
                "missing",
            ));
        }
        if arch != Architecture::Gemma3 {
            // Sliding windows of other architectures are not built here.
            config.sliding_window = None;
        }
        config.validate().map_err(|e| match e {
            DecoderError::InvalidConfig(reason) => {
                DecoderError::InvalidConfig(format!("{}: {reason}", file_name(file)))
            }
            other => other,
        })?;
        check_head_widths(file, &config)?;
        check_against_tensors(file, &config)?;
        Ok(config)
    }
}

/// Refuses, by name, what the metadata asks for that this crate does not
/// build.
fn refuse_unsupported(file: &GgufFile, arch: Architecture) -> Result<(), DecoderError> {
    let key = |k: &str| format!("{arch}.{k}");
    let scaling = key("rope.scaling.type");
    if file.metadata().contains_key(&scaling) {
        let kind = file
            .metadata()
            .get_str(&scaling)
            .map_err(|e| metadata_error(file, &scaling, e.to_string()))?;
        if kind != "none" {
            return Err(metadata_error(
                file,
                &scaling,
                format!("RoPE scaling {kind:?} is not supported (only unscaled RoPE)"),
            ));
        }
    }
    if tensor(file, "rope_freqs.weight").is_some() {
        return Err(metadata_error(
            file,
            "rope_freqs.weight",
            "per-frequency RoPE factors (Llama 3.1 style) are not supported",
        ));
    }
    for experts in [key("expert_count"), key("expert_used_count")] {
        if optional_count(file, &experts)?.is_some_and(|n| n > 0) {
            return Err(metadata_error(
                file,
                &experts,
                "mixture-of-experts models are not supported",
            ));
        }
    }
    Ok(())
}

/// Checks the head widths the metadata gives against each other.
fn check_head_widths(file: &GgufFile, config: &DecoderConfig) -> Result<(), DecoderError> {
    let arch = config.architecture;
    let head_dim = config.head_dim();
    for k in ["attention.value_length", "rope.dimension_count"] {
        let k = format!("{arch}.{k}");
        if let Some(width) = optional_count(file, &k)? {
            if width != head_dim {
                return Err(metadata_error(
                    file,
                    &k,
                    format!("{width}: only the head width {head_dim} is supported (a whole-head RoPE, values as wide as keys)"),
                ));
            }
        }
    }
    Ok(())
}

/// Checks the sizes of `config` against the dims of the file's tensors, so
/// that nothing is allocated from a size the file does not bear out.
fn check_against_tensors(file: &GgufFile, config: &DecoderConfig) -> Result<(), DecoderError> {
    let arch = config.architecture;
    let key = |k: &str| format!("{arch}.{k}");
    let expect = |name: &str, want: &[usize], key: String| -> Result<(), DecoderError> {
        match dims(file, name) {
            None => Err(DecoderError::MissingTensor {
                file: file_name(file),
                name: name.to_string(),
            }),
            Some(found) if found != want => Err(metadata_error(
                file,
                &key,
                format!("the tensor {name:?} has shape {found:?}, the metadata implies {want:?}"),
            )),
            Some(_) => Ok(()),
        }
    };
    let (d, ff) = (config.hidden_size, config.intermediate_size);
    let q = config.num_attention_heads * config.head_dim();
    let kv = config.num_key_value_heads * config.head_dim();
    // The embedding's rows are the vocabulary, its columns the width.
    let vocab_key = match file.metadata().contains_key(&key("vocab_size")) {
        true => key("vocab_size"),
        false => "tokenizer.ggml.tokens".to_string(),
    };
    match dims(file, "token_embd.weight") {
        Some(found) if found.len() == 2 && found[0] != config.vocab_size => {
            return Err(metadata_error(
                file,
                &vocab_key,
                format!(
                    "a vocabulary of {}, but the tensor \"token_embd.weight\" has {} rows",
                    config.vocab_size, found[0]
                ),
            ))
        }
        _ => expect(
            "token_embd.weight",
            &[config.vocab_size, d],
            key("embedding_length"),
        )?,
    }
    // The blocks: the last one the metadata counts exists, and no later one.
    let last_block = file
        .tensors()
        .iter()
        .filter_map(|t| {
            t.name()
                .strip_prefix("blk.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max();
    if last_block != Some(config.num_hidden_layers - 1) {
        return Err(metadata_error(
            file,
            &key("block_count"),
            format!(
                "{} blocks, but the tensors are of {}",
                config.num_hidden_layers,
                last_block.map_or(0, |b| b + 1)
            ),
        ));
    }
    expect("blk.0.attn_q.weight", &[q, d], key("attention.head_count"))?;
    expect(
        "blk.0.attn_k.weight",
        &[kv, d],
        key("attention.head_count_kv"),
    )?;
    expect(
        "blk.0.ffn_gate.weight",
        &[ff, d],
        key("feed_forward_length"),
    )?;
    Ok(())
}
