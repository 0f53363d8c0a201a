//! The hyper-parameters of a BERT encoder, read from Hugging Face's
//! `config.json`, and building the encoder from them.

use std::path::Path;

use burn::nn::{DropoutConfig, EmbeddingConfig, LayerNormConfig, LinearConfig};
use burn::tensor::backend::Backend;
use burn_rlora::{RLoraConfig, RLoraLinear};
use serde::{Deserialize, Serialize};

use super::encoder::{
    BertAttention, BertEmbeddings, BertEncoder, BertIntermediate, BertLayer, BertModel, BertOutput,
    BertSelfAttention,
};
use super::error::MiniLmError;
use burn_rlora_examples::harness::trace::SimilarityTrace;

fn default_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.1
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position_type() -> String {
    "absolute".into()
}

/// The hyper-parameters of a BERT encoder, as in Hugging Face's `config.json`
/// (other fields of that file are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block (must divide `hidden_size`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest sequence the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Dropout on embeddings and block outputs (active only on autodiff backends).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities (active only on autodiff backends).
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// The activation; only `"gelu"` (exact, erf-based) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Only `"absolute"` position embeddings are supported.
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

impl BertConfig {
    /// all-MiniLM-L6-v2: 6 layers, hidden size 384, 12 heads, FFN 1536.
    pub fn minilm_l6() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 384,
            num_hidden_layers: 6,
            num_attention_heads: 12,
            intermediate_size: 1536,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            hidden_act: default_act(),
            position_embedding_type: default_position_type(),
        }
    }

    /// A tiny encoder for tests: the given vocabulary, 2 layers, width 16, 4 heads, FFN 32.
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            max_position_embeddings: 64,
            ..Self::minilm_l6()
        }
    }

    /// Read a Hugging Face `config.json` and [`validate`](Self::validate) it.
    ///
    /// # Errors
    ///
    /// [`DataError::DataMissing`](crate::datasets::DataError::DataMissing) if the file is absent, [`MiniLmError::Json`]
    /// if it does not parse, [`MiniLmError::BadConfig`] if it is not supported.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, MiniLmError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| MiniLmError::io(path, e))?;
        let config: Self = serde_json::from_slice(&bytes).map_err(|source| MiniLmError::Json {
            path: path.into(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Check that this encoder can run the config.
    ///
    /// # Errors
    ///
    /// [`MiniLmError::BadConfig`] naming the offending field.
    pub fn validate(&self) -> Result<(), MiniLmError> {
        let bad = |m: String| Err(MiniLmError::BadConfig(m));
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act {:?}: only \"gelu\" (exact) is implemented",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return bad(format!(
                "position_embedding_type {:?}: only \"absolute\" is implemented",
                self.position_embedding_type
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if let Err(e) = RLoraConfig::check_dropout(p) {
                return bad(format!("{name}: {e}"));
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return bad(format!(
                "layer_norm_eps must be positive, got {}",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// Build an encoder with freshly initialized weights and plain linears.
    ///
    /// Burn initializes parameters lazily, and in Burn 0.21 a clone of a
    /// parameter not yet drawn draws its own values: run one forward pass (or
    /// load weights with [`load_bert_weights`](super::load_bert_weights))
    /// before cloning a freshly initialized model.
    ///
    /// # Errors
    ///
    /// [`MiniLmError::BadConfig`] if [`validate`](Self::validate) fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<BertModel<B>, MiniLmError> {
        self.validate()?;
        let h = self.hidden_size;
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let hidden_dropout = || DropoutConfig::new(self.hidden_dropout_prob).init();
        let linear = |i: usize, o: usize| RLoraLinear::from(LinearConfig::new(i, o).init(device));
        let layer = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attention: BertSelfAttention {
                        query: linear(h, h),
                        key: linear(h, h),
                        value: linear(h, h),
                        dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                        num_heads: self.num_attention_heads,
                    },
                    output: BertOutput {
                        dense: linear(h, h),
                        layer_norm: norm(),
                        dropout: hidden_dropout(),
                    },
                },
                intermediate: BertIntermediate {
                    dense: linear(h, self.intermediate_size),
                },
                output: BertOutput {
                    dense: linear(self.intermediate_size, h),
                    layer_norm: norm(),
                    dropout: hidden_dropout(),
                },
            })
            .collect();
        Ok(BertModel {
            embeddings: BertEmbeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h)
                    .init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, h).init(device),
                layer_norm: norm(),
                dropout: hidden_dropout(),
            },
            encoder: BertEncoder { layer },
            host_ops: false,
            max_position_embeddings: self.max_position_embeddings,
            vocab_size: self.vocab_size,
            type_vocab_size: self.type_vocab_size,
            trace: SimilarityTrace::default(),
        })
    }
}
