//! A BERT encoder (post-LayerNorm, exact GELU) whose linear layers can each be
//! a plain [`Linear`](burn::nn::Linear) or an [`RLoraLinear`], with sentence-transformers' mean pooling.
//!
//! The module tree mirrors the names of Hugging Face's `BertModel`
//! (`embeddings.word_embeddings`, `encoder.layer.N.attention.self.query`, ...)
//! so that loading a checkpoint needs only two renames: `LayerNorm` becomes
//! `layer_norm` and `attention.self` becomes `attention.self_attention`
//! (see [`load`](super::load)).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, LinearConfig,
};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{ElementConversion, Int, Tensor};
use burn_rlora::{
    Adapt, AdaptConfig, AdaptableLinear, HeadSimilarity, RLoraConfig, RLoraLinear, TargetModules,
};
use serde::{Deserialize, Serialize};

use super::error::MiniLmError;
use super::host_ops;
use crate::trace::{defined_mean, SimilarityTrace};

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
    /// [`MiniLmError::DataMissing`] if the file is absent, [`MiniLmError::Json`]
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
        let linear =
            |i: usize, o: usize| AdaptableLinear::from(LinearConfig::new(i, o).init(device));
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
            host_ops: true,
            max_position_embeddings: self.max_position_embeddings,
            vocab_size: self.vocab_size,
            type_vocab_size: self.type_vocab_size,
            trace: SimilarityTrace::default(),
        })
    }
}

/// The linear layers of a BERT block that can be adapted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TargetModule {
    /// `attention.self.query`.
    Query,
    /// `attention.self.key`.
    Key,
    /// `attention.self.value`.
    Value,
    /// `attention.output.dense`.
    AttentionOutput,
    /// `intermediate.dense` (feed-forward up-projection).
    Intermediate,
    /// `output.dense` (feed-forward down-projection).
    Output,
}

impl TargetModule {
    /// All six, in block order.
    pub const ALL: [TargetModule; 6] = [
        Self::Query,
        Self::Key,
        Self::Value,
        Self::AttentionOutput,
        Self::Intermediate,
        Self::Output,
    ];

    /// The default targets: the feed-forward projections, as in the reference.
    pub const FEED_FORWARD: [TargetModule; 2] = [Self::Intermediate, Self::Output];

    /// The short name used on command lines: `query`, `key`, `value`,
    /// `attention_output`, `intermediate`, `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Key => "key",
            Self::Value => "value",
            Self::AttentionOutput => "attention_output",
            Self::Intermediate => "intermediate",
            Self::Output => "output",
        }
    }

    /// The module's path inside a block, in this encoder's field names
    /// (what [`AdaptConfig`](burn_rlora::AdaptConfig) and adapter files see).
    pub fn burn_path(self) -> &'static str {
        match self {
            Self::Query => "attention.self_attention.query",
            Self::Key => "attention.self_attention.key",
            Self::Value => "attention.self_attention.value",
            Self::AttentionOutput => "attention.output.dense",
            Self::Intermediate => "intermediate.dense",
            Self::Output => "output.dense",
        }
    }

    /// The module's path inside a block, in Hugging Face's naming.
    pub fn hf_path(self) -> &'static str {
        match self {
            Self::Query => "attention.self.query",
            Self::Key => "attention.self.key",
            Self::Value => "attention.self.value",
            Self::AttentionOutput => "attention.output.dense",
            Self::Intermediate => "intermediate.dense",
            Self::Output => "output.dense",
        }
    }
}

impl fmt::Display for TargetModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetModule {
    type Err = MiniLmError;

    /// Accepts the short names of [`as_str`](Self::as_str) and the Hugging Face
    /// paths of [`hf_path`](Self::hf_path).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s || t.hf_path() == s)
            .ok_or_else(|| {
                MiniLmError::InvalidArgument(format!(
                    "unknown target module {s:?}; expected one of query, key, value, \
                     attention_output, intermediate, output"
                ))
            })
    }
}

/// Which linears of the encoder get an adapter, and which adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderAdapterConfig {
    /// The adapter put on every targeted linear.
    pub adapter: RLoraConfig,
    /// The targeted modules, in every block.
    pub targets: BTreeSet<TargetModule>,
}

impl EncoderAdapterConfig {
    /// `adapter` on the default targets ([`TargetModule::FEED_FORWARD`]).
    pub fn new(adapter: RLoraConfig) -> Self {
        Self {
            adapter,
            targets: TargetModule::FEED_FORWARD.into_iter().collect(),
        }
    }

    /// Replace the targets.
    pub fn with_targets(mut self, targets: impl IntoIterator<Item = TargetModule>) -> Self {
        self.targets = targets.into_iter().collect();
        self
    }

    /// The same choice as an [`AdaptConfig`]: the targets as one regular
    /// expression over the encoder's paths (`output.dense` alone would also
    /// match `attention.output.dense`).
    pub fn adapt_config(&self) -> AdaptConfig {
        let alternatives: Vec<String> = self
            .targets
            .iter()
            .map(|t| t.burn_path().replace('.', r"\."))
            .collect();
        let pattern = format!(r"encoder\.layer\.\d+\.(?:{})", alternatives.join("|"));
        AdaptConfig::new(self.adapter.clone(), TargetModules::regex(pattern))
    }
}

/// Applies `layer`; an adapted layer with a router also pushes its gates
/// (`[batch, seq, N]`) to `sink` when one is given.
fn forward_collect<B: Backend>(
    layer: &AdaptableLinear<B>,
    x: Tensor<B, 3>,
    index: usize,
    module: TargetModule,
    sink: &mut Sink<'_, B>,
) -> Tensor<B, 3> {
    match sink {
        Some(sink) => {
            let routed = layer.forward_with_routing(x);
            if let Some(gates) = routed.gates {
                sink.push(LayerGates {
                    layer: index,
                    module,
                    gates,
                });
            }
            routed.output
        }
        None => layer.forward(x),
    }
}

/// The router weights of one adapted linear for one batch.
#[derive(Debug, Clone)]
pub struct LayerGates<B: Backend> {
    /// Block index.
    pub layer: usize,
    /// Which linear of the block.
    pub module: TargetModule,
    /// The weights per token, `[batch, seq, N]`, padding tokens included
    /// (weigh by the attention mask if they should not count).
    pub gates: Tensor<B, 3>,
}

/// The head similarity of one adapted linear (the paper's diversity measure).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerHeadSimilarity {
    /// Block index.
    pub layer: usize,
    /// Which linear of the block.
    pub module: TargetModule,
    /// Pairwise cosine similarity of the flattened heads.
    pub similarity: HeadSimilarity,
}

/// The token ids, token types and attention mask of a batch, all `[batch, seq]`.
#[derive(Debug, Clone)]
pub struct BertInput<B: Backend> {
    /// Token ids.
    pub input_ids: Tensor<B, 2, Int>,
    /// Segment ids (all 0 for single sentences).
    pub token_type_ids: Tensor<B, 2, Int>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor<B, 2, Int>,
}

/// What [`BertModel::forward_with_gates`] returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput<B: Backend> {
    /// The last hidden state, `[batch, seq, hidden]`.
    pub hidden: Tensor<B, 3>,
    /// The router weights of every adapted linear with a router, in forward order.
    pub gates: Vec<LayerGates<B>>,
}

/// The embedding layer: word + position + token type, then LayerNorm and dropout.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// Word embeddings `[vocab, hidden]`.
    pub word_embeddings: Embedding<B>,
    /// Absolute position embeddings `[max_positions, hidden]`.
    pub position_embeddings: Embedding<B>,
    /// Token type embeddings `[type_vocab, hidden]`.
    pub token_type_embeddings: Embedding<B>,
    /// LayerNorm after the sum.
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the LayerNorm.
    pub dropout: Dropout,
}

/// Multi-head self-attention projections.
#[derive(Module, Adapt, Debug)]
pub struct BertSelfAttention<B: Backend> {
    /// Query projection.
    pub query: AdaptableLinear<B>,
    /// Key projection.
    pub key: AdaptableLinear<B>,
    /// Value projection.
    pub value: AdaptableLinear<B>,
    /// Dropout on the attention probabilities.
    pub dropout: Dropout,
    /// Number of attention heads.
    #[module(skip)]
    pub num_heads: usize,
}

/// Self-attention and its output projection.
#[derive(Module, Adapt, Debug)]
pub struct BertAttention<B: Backend> {
    /// Q, K, V (`attention.self` in Hugging Face's names).
    pub self_attention: BertSelfAttention<B>,
    /// Output projection and LayerNorm (`attention.output`).
    pub output: BertOutput<B>,
}

/// The feed-forward up-projection.
#[derive(Module, Adapt, Debug)]
pub struct BertIntermediate<B: Backend> {
    /// `hidden -> intermediate`, followed by GELU.
    pub dense: AdaptableLinear<B>,
}

/// A projection followed by dropout, a residual sum and LayerNorm: the
/// attention output (`attention.output`) and the feed-forward down-projection
/// (`output`) of a block.
#[derive(Module, Adapt, Debug)]
pub struct BertOutput<B: Backend> {
    /// The projection (`hidden -> hidden` or `intermediate -> hidden`).
    pub dense: AdaptableLinear<B>,
    /// LayerNorm after the residual.
    pub layer_norm: LayerNorm<B>,
    /// Dropout before the residual.
    pub dropout: Dropout,
}

/// One post-LayerNorm transformer block.
#[derive(Module, Adapt, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention.
    pub attention: BertAttention<B>,
    /// Feed-forward up-projection.
    pub intermediate: BertIntermediate<B>,
    /// Feed-forward down-projection.
    pub output: BertOutput<B>,
}

/// The stack of blocks.
#[derive(Module, Adapt, Debug)]
pub struct BertEncoder<B: Backend> {
    /// The blocks (`encoder.layer.N`).
    pub layer: Vec<BertLayer<B>>,
}

/// A BERT encoder without the pooler, as sentence-transformers uses it.
#[derive(Module, Adapt, Debug)]
pub struct BertModel<B: Backend> {
    /// Embeddings.
    pub embeddings: BertEmbeddings<B>,
    /// Transformer blocks.
    pub encoder: BertEncoder<B>,
    /// Compute GELU and the dropout masks with [`host_ops`] where they apply.
    #[module(skip)]
    host_ops: bool,
    #[module(skip)]
    max_position_embeddings: usize,
    #[module(skip)]
    vocab_size: usize,
    #[module(skip)]
    type_vocab_size: usize,
    /// Head similarity recorded from training forward passes (off by default).
    #[module(skip)]
    trace: SimilarityTrace,
}

type Sink<'a, B> = Option<&'a mut Vec<LayerGates<B>>>;

/// GELU and dropout, by Burn's ops or by [`host_ops`].
#[derive(Debug, Clone, Copy)]
struct Elementwise {
    host: bool,
}

impl Elementwise {
    fn gelu<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        if self.host {
            host_ops::gelu(x)
        } else {
            burn::tensor::activation::gelu(x)
        }
    }

    fn dropout<B: Backend, const D: usize>(self, x: Tensor<B, D>, d: &Dropout) -> Tensor<B, D> {
        if self.host {
            host_ops::dropout(x, d)
        } else {
            d.forward(x)
        }
    }
}

impl<B: Backend> BertSelfAttention<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 4>,
        (layer, ops): (usize, Elementwise),
        sink: &mut Sink<'_, B>,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let heads = self.num_heads;
        let head_dim = hidden / heads;
        let split = |t: Tensor<B, 3>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let q = split(forward_collect(
            &self.query,
            x.clone(),
            layer,
            TargetModule::Query,
            sink,
        ));
        let k = split(forward_collect(
            &self.key,
            x.clone(),
            layer,
            TargetModule::Key,
            sink,
        ));
        let v = split(forward_collect(
            &self.value,
            x,
            layer,
            TargetModule::Value,
            sink,
        ));
        let context = if B::ad_enabled(&q.device()) {
            let scores = q.matmul(k.transpose()).div_scalar((head_dim as f64).sqrt()) + mask_bias;
            let probs = ops.dropout(softmax(scores, 3), &self.dropout);
            probs.matmul(v)
        } else {
            // Evaluation (no dropout): the backend's fused attention, with the
            // same scale 1/sqrt(head_dim) and additive mask.
            attention(
                q,
                k,
                v,
                None,
                Some(mask_bias),
                AttentionModuleOptions::default(),
            )
        };
        context.swap_dims(1, 2).reshape([batch, seq, hidden])
    }
}

impl<B: Backend> BertLayer<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 4>,
        (layer, ops): (usize, Elementwise),
        sink: &mut Sink<'_, B>,
    ) -> Tensor<B, 3> {
        let attn = self
            .attention
            .self_attention
            .forward(x.clone(), mask_bias, (layer, ops), sink);
        let x = self.attention.output.forward(
            attn,
            x,
            (layer, TargetModule::AttentionOutput, ops),
            sink,
        );
        let up = forward_collect(
            &self.intermediate.dense,
            x.clone(),
            layer,
            TargetModule::Intermediate,
            sink,
        );
        self.output
            .forward(ops.gelu(up), x, (layer, TargetModule::Output, ops), sink)
    }
}

impl<B: Backend> BertOutput<B> {
    /// `layer_norm(dropout(dense(x)) + residual)`.
    fn forward(
        &self,
        x: Tensor<B, 3>,
        residual: Tensor<B, 3>,
        (layer, module, ops): (usize, TargetModule, Elementwise),
        sink: &mut Sink<'_, B>,
    ) -> Tensor<B, 3> {
        let y = forward_collect(&self.dense, x, layer, module, sink);
        self.layer_norm
            .forward(ops.dropout(y, &self.dropout) + residual)
    }
}

impl<B: Backend> BertModel<B> {
    /// The number of transformer blocks.
    pub fn num_layers(&self) -> usize {
        self.encoder.layer.len()
    }

    /// Choose how GELU and the dropout masks are computed: by the host
    /// kernels of [`host_ops`] where the backend keeps tensors in host memory
    /// (`true`, the default), or always by Burn's `gelu` and `Dropout`.
    pub fn with_host_ops(mut self, enabled: bool) -> Self {
        self.host_ops = enabled;
        self
    }

    /// Record the head similarity of every adapted linear into `trace` from
    /// the training forward passes of [`MultiTaskBody::forward`](burn_rlora::multitask::MultiTaskBody::forward)
    /// (those of an autodiff backend), named `L<block>.<module>`.
    pub fn with_trace(mut self, trace: SimilarityTrace) -> Self {
        self.trace = trace;
        self
    }

    /// The head similarity trace this model records into.
    pub fn trace(&self) -> &SimilarityTrace {
        &self.trace
    }

    /// The mean pairwise head similarity of every adapted linear, named
    /// `L<block>.<module>`, as [`SimilarityTrace`] records it ([`defined_mean`]).
    pub fn mean_head_similarities(&self) -> Vec<(String, Option<f64>)> {
        self.head_similarities()
            .into_iter()
            .map(|s| {
                (
                    format!("L{}.{}", s.layer, s.module),
                    defined_mean(&s.similarity),
                )
            })
            .collect()
    }

    /// The longest sequence the position embeddings cover.
    pub fn max_position_embeddings(&self) -> usize {
        self.max_position_embeddings
    }

    /// Check a batch's shapes and ids.
    ///
    /// # Errors
    ///
    /// [`MiniLmError::InvalidArgument`] when the three tensors differ in shape,
    /// the sequence is longer than the position embeddings, or an id is out of range.
    pub fn check_input(&self, input: &BertInput<B>) -> Result<(), MiniLmError> {
        let dims = input.input_ids.dims();
        if input.token_type_ids.dims() != dims || input.attention_mask.dims() != dims {
            return Err(MiniLmError::InvalidArgument(format!(
                "input_ids {:?}, token_type_ids {:?} and attention_mask {:?} must have the same shape",
                dims,
                input.token_type_ids.dims(),
                input.attention_mask.dims()
            )));
        }
        if dims[1] > self.max_position_embeddings {
            return Err(MiniLmError::InvalidArgument(format!(
                "sequence length {} exceeds max_position_embeddings {}",
                dims[1], self.max_position_embeddings
            )));
        }
        let range = |t: &Tensor<B, 2, Int>, limit: usize, what: &str| {
            if dims[0] * dims[1] == 0 {
                return Ok(());
            }
            let min: i64 = t.clone().min().into_scalar().elem();
            let max: i64 = t.clone().max().into_scalar().elem();
            if min < 0 || max >= limit as i64 {
                return Err(MiniLmError::InvalidArgument(format!(
                    "{what} must be in [0, {limit}), found values in [{min}, {max}]"
                )));
            }
            Ok(())
        };
        range(&input.input_ids, self.vocab_size, "input_ids")?;
        range(
            &input.token_type_ids,
            self.type_vocab_size,
            "token_type_ids",
        )?;
        range(&input.attention_mask, 2, "attention_mask")
    }

    /// The last hidden state, `[batch, seq, hidden]`.
    ///
    /// # Panics
    ///
    /// On inputs that [`check_input`](Self::check_input) rejects;
    /// [`try_forward`](Self::try_forward) returns an error instead.
    pub fn forward(&self, input: &BertInput<B>) -> Tensor<B, 3> {
        self.forward_inner(input, None)
    }

    /// Like [`forward`](Self::forward), with the input checked first.
    ///
    /// # Errors
    ///
    /// See [`check_input`](Self::check_input).
    pub fn try_forward(&self, input: &BertInput<B>) -> Result<Tensor<B, 3>, MiniLmError> {
        self.check_input(input)?;
        Ok(self.forward(input))
    }

    /// The last hidden state and the router weights of every adapted linear
    /// (for a load-balance loss or router statistics).
    pub fn forward_with_gates(&self, input: &BertInput<B>) -> EncoderOutput<B> {
        let mut gates = Vec::new();
        let hidden = self.forward_inner(input, Some(&mut gates));
        EncoderOutput { hidden, gates }
    }

    /// Sentence embeddings: the mean of the last hidden state over real tokens,
    /// `[batch, hidden]`, not normalized (sentence-transformers' all-MiniLM-L6-v2
    /// adds an L2 normalization after this, see [`l2_normalize`]).
    pub fn sentence_embedding(&self, input: &BertInput<B>) -> Tensor<B, 2> {
        mean_pool(self.forward(input), input.attention_mask.clone())
    }

    fn forward_inner(&self, input: &BertInput<B>, mut sink: Sink<'_, B>) -> Tensor<B, 3> {
        let [batch, seq] = input.input_ids.dims();
        let device = input.input_ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
            .reshape([1, seq])
            .expand([batch, seq]);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(input.input_ids.clone())
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings
                .forward(input.token_type_ids.clone());
        let ops = Elementwise {
            host: self.host_ops,
        };
        let mut x = ops.dropout(e.layer_norm.forward(x), &e.dropout);

        // Additive mask as in BERT: 0 for real tokens, -10000 for padding keys.
        let mut mask_bias = input
            .attention_mask
            .clone()
            .float()
            .sub_scalar(1.0)
            .mul_scalar(10000.0)
            .reshape([batch, 1, 1, seq]);
        if !B::ad_enabled(&device) {
            // The fused attention of evaluation takes a bias with its query
            // dimension laid out; one [batch, 1, seq, seq] copy serves every block.
            mask_bias = Tensor::zeros([batch, 1, seq, seq], &device) + mask_bias;
        }
        for (i, layer) in self.encoder.layer.iter().enumerate() {
            x = layer.forward(x, mask_bias.clone(), (i, ops), &mut sink);
        }
        x
    }

    /// Put `config.adapter` on every targeted linear of every block, and freeze
    /// everything else (embeddings, LayerNorms, untargeted linears).
    ///
    /// Only the adapters' `A`, heads and routers then require gradients. At
    /// init the adapted encoder computes what the plain one did (in eval mode).
    ///
    /// # Errors
    ///
    /// Any [`RLoraError`](burn_rlora::RLoraError) of [`RLoraLinear::from_linear`]
    /// (for example a rank larger than a targeted layer).
    pub fn adapt(self, config: &EncoderAdapterConfig) -> Result<Self, MiniLmError> {
        Ok(config.adapt_config().adapt(self)?)
    }

    /// Every adapted linear, with its block index and module.
    pub fn adapted_layers(&self) -> Vec<(usize, TargetModule, &RLoraLinear<B>)> {
        let mut out = Vec::new();
        for (i, layer) in self.encoder.layer.iter().enumerate() {
            for t in TargetModule::ALL {
                if let Some(l) = layer.linear(t).adapted() {
                    out.push((i, t, l));
                }
            }
        }
        out
    }

    /// The head similarity of every adapted linear (the paper's diversity
    /// measure, lower is more diverse), in block order.
    pub fn head_similarities(&self) -> Vec<LayerHeadSimilarity> {
        self.adapted_layers()
            .into_iter()
            .map(|(layer, module, l)| LayerHeadSimilarity {
                layer,
                module,
                similarity: l.head_similarity(),
            })
            .collect()
    }
}

impl<B: Backend> BertLayer<B> {
    /// The linear layer named by `target`.
    pub fn linear(&self, target: TargetModule) -> &AdaptableLinear<B> {
        match target {
            TargetModule::Query => &self.attention.self_attention.query,
            TargetModule::Key => &self.attention.self_attention.key,
            TargetModule::Value => &self.attention.self_attention.value,
            TargetModule::AttentionOutput => &self.attention.output.dense,
            TargetModule::Intermediate => &self.intermediate.dense,
            TargetModule::Output => &self.output.dense,
        }
    }
}

/// Mean pooling as in sentence-transformers: the average of `hidden`
/// (`[batch, seq, hidden]`) over the positions where `attention_mask`
/// (`[batch, seq]`) is 1; a row with no token gives zeros.
pub fn mean_pool<B: Backend>(
    hidden: Tensor<B, 3>,
    attention_mask: Tensor<B, 2, Int>,
) -> Tensor<B, 2> {
    let [batch, seq, width] = hidden.dims();
    let mask = attention_mask.float().reshape([batch, seq, 1]);
    let summed = (hidden * mask.clone()).sum_dim(1).reshape([batch, width]);
    let counts = mask.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
    summed / counts
}

/// L2-normalize each row of `[batch, width]`, as sentence-transformers' `Normalize` layer.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
