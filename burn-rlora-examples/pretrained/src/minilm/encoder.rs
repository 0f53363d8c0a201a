//! A BERT encoder (post-LayerNorm, exact GELU) whose linear layers can each be
//! a plain [`Linear`](burn::nn::Linear) or an [`RLoraLinear`], with sentence-transformers' mean pooling.
//!
//! The module tree mirrors the names of Hugging Face's `BertModel`
//! (`embeddings.word_embeddings`, `encoder.layer.N.attention.self.query`, ...)
//! so that loading a checkpoint needs only two renames: `LayerNorm` becomes
//! `layer_norm` and `attention.self` becomes `attention.self_attention`
//! (see [`load`](super::load)).

use burn::module::Module;
use burn::nn::{Dropout, Embedding, LayerNorm};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{ElementConversion, Int, Tensor};
use burn_rlora::{Adapt, HeadSimilarity, RLoraLinear};

use super::error::MiniLmError;
use super::targets::{EncoderAdapterConfig, TargetModule};
use burn_rlora_examples::harness::trace::{defined_mean, SimilarityTrace};
use burn_rlora_llm::host_ops;

/// Applies `layer`; an adapted layer with a router also pushes its gates
/// (`[batch, seq, N]`) to `sink` when one is given.
fn forward_collect<B: Backend>(
    layer: &RLoraLinear<B>,
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
    pub query: RLoraLinear<B>,
    /// Key projection.
    pub key: RLoraLinear<B>,
    /// Value projection.
    pub value: RLoraLinear<B>,
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
    pub dense: RLoraLinear<B>,
}

/// A projection followed by dropout, a residual sum and LayerNorm: the
/// attention output (`attention.output`) and the feed-forward down-projection
/// (`output`) of a block.
#[derive(Module, Adapt, Debug)]
pub struct BertOutput<B: Backend> {
    /// The projection (`hidden -> hidden` or `intermediate -> hidden`).
    pub dense: RLoraLinear<B>,
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
    pub(super) host_ops: bool,
    #[module(skip)]
    pub(super) max_position_embeddings: usize,
    #[module(skip)]
    pub(super) vocab_size: usize,
    #[module(skip)]
    pub(super) type_vocab_size: usize,
    /// Head similarity recorded from training forward passes (off by default).
    #[module(skip)]
    pub(super) trace: SimilarityTrace,
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
    /// (`true`; flex and ndarray, where they take about 0.6× the training
    /// step's time, as measured in the benchmarks), or always by Burn's
    /// `gelu` and `Dropout` (`false`, the default).
    pub fn with_host_ops(mut self, enabled: bool) -> Self {
        self.host_ops = enabled;
        self
    }

    /// Whether the host kernels were asked for ([`with_host_ops`](Self::with_host_ops)).
    pub fn host_ops(&self) -> bool {
        self.host_ops
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
                let l = layer.linear(t);
                if l.is_adapted() {
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
                similarity: l
                    .adapter()
                    .expect("adapted_layers lists adapted layers")
                    .head_similarity(),
            })
            .collect()
    }
}

impl<B: Backend> BertLayer<B> {
    /// The linear layer named by `target`.
    pub fn linear(&self, target: TargetModule) -> &RLoraLinear<B> {
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
