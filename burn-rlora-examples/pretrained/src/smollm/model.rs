//! The Llama decoder as Burn modules: embeddings, RMSNorm, RoPE,
//! grouped-query causal attention, SwiGLU feed-forward, tied output head.
//!
//! Module and field names follow Hugging Face's `LlamaForCausalLM`
//! (`model.layers.N.self_attn.q_proj`, `model.layers.N.mlp.gate_proj`, ...),
//! so PEFT's target names (`q_proj`, `k_proj`, `v_proj`, `o_proj`,
//! `gate_proj`, `up_proj`, `down_proj`) select the same projections through
//! [`AdaptConfig`](burn_rlora::AdaptConfig), and saved adapters carry PEFT's
//! tensor names under the prefix `base_model.model.`.

use burn::module::Module;
use burn::nn::{Embedding, RmsNorm};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData};
use burn_rlora::{Adapt, RLoraError, RLoraLinear};

use super::cache::KvCache;
use super::error::DecoderError;
use super::rope::{RopeTables, TokenRope};
use crate::host_ops;

/// RoPE's settings, shared by every block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeSettings {
    /// RoPE's base.
    pub theta: f64,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Positions the model was trained for.
    pub max_positions: usize,
}

/// Grouped-query self-attention with a causal mask.
#[derive(Module, Adapt, Debug)]
pub struct LlamaAttention<B: Backend> {
    /// Queries, `[hidden, heads * head_dim]`.
    pub q_proj: RLoraLinear<B>,
    /// Keys, `[hidden, kv_heads * head_dim]`.
    pub k_proj: RLoraLinear<B>,
    /// Values, `[hidden, kv_heads * head_dim]`.
    pub v_proj: RLoraLinear<B>,
    /// Output, `[heads * head_dim, hidden]`.
    pub o_proj: RLoraLinear<B>,
    /// Query heads.
    #[module(skip)]
    pub heads: usize,
    /// Key and value heads; each serves `heads / kv_heads` query heads.
    #[module(skip)]
    pub kv_heads: usize,
    /// Width of one head.
    #[module(skip)]
    pub head_dim: usize,
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Adapt, Debug)]
pub struct LlamaMlp<B: Backend> {
    /// Gate projection, `[hidden, intermediate]`.
    pub gate_proj: RLoraLinear<B>,
    /// Up projection, `[hidden, intermediate]`.
    pub up_proj: RLoraLinear<B>,
    /// Down projection, `[intermediate, hidden]`.
    pub down_proj: RLoraLinear<B>,
    /// Compute SiLU with [`host_ops::silu`] where it applies (see
    /// [`LlamaForCausalLM::with_host_ops`]; off by default).
    #[module(skip)]
    pub host_ops: bool,
}

/// One pre-norm decoder block.
#[derive(Module, Adapt, Debug)]
pub struct LlamaDecoderLayer<B: Backend> {
    /// Self-attention.
    pub self_attn: LlamaAttention<B>,
    /// Feed-forward block.
    pub mlp: LlamaMlp<B>,
    /// RMSNorm before the attention.
    pub input_layernorm: RmsNorm<B>,
    /// RMSNorm before the feed-forward block.
    pub post_attention_layernorm: RmsNorm<B>,
}

/// The decoder without its output head.
#[derive(Module, Adapt, Debug)]
pub struct LlamaModel<B: Backend> {
    /// Token embeddings, `[vocab, hidden]`; also the output head when tied.
    pub embed_tokens: Embedding<B>,
    /// The blocks.
    pub layers: Vec<LlamaDecoderLayer<B>>,
    /// The final RMSNorm.
    pub norm: RmsNorm<B>,
    /// RoPE's settings.
    #[module(skip)]
    pub rope: RopeSettings,
}

/// A Llama decoder with its language-modelling head.
#[derive(Module, Adapt, Debug)]
pub struct LlamaForCausalLM<B: Backend> {
    /// The decoder.
    pub model: LlamaModel<B>,
    /// The output head, `[hidden, vocab]`; `None` when it is the token
    /// embedding (tied, as in SmolLM2).
    pub lm_head: Option<RLoraLinear<B>>,
}

/// RoPE of a forward pass: the queries' tables (with attention's scale
/// folded in) and the keys'.
struct Rope<B: Backend> {
    queries: TokenRope<B>,
    keys: TokenRope<B>,
}

impl<B: Backend> LlamaAttention<B> {
    /// Attention of `x` (`[batch, len, hidden]`) over the cached positions and
    /// its own, causally; appends its keys and values to `slot` when given.
    ///
    /// Layouts: the projections stay token-major (`[batch, len, heads *
    /// head_dim]`, contiguous) through RoPE, and the heads are strided views
    /// of them (`permute`, no copy), which flex's batched product reads
    /// directly. Query head `g * rep + r` reads key/value head `g`: the
    /// queries are viewed as `[batch, kv, rep, len, head_dim]` against keys
    /// and values `[batch, kv, 1, ...]`, broadcast over `rep`, instead of
    /// repeating the keys and values. The one copy left in the forward is the
    /// heads' output back to token-major for `o_proj`.
    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &Rope<B>,
        mask: Option<&Tensor<B, 2>>,
        slot: Option<&mut Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (h, kv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let rep = h / kv;
        let q = rope.queries.apply(self.q_proj.forward(x.clone()));
        let k = rope.keys.apply(self.k_proj.forward(x.clone()));
        let v = self.v_proj.forward(x);
        // [batch, len, kv * head_dim] as [batch, kv, 1, len, head_dim] (a view).
        let kv_view = |t: Tensor<B, 3>| t.reshape([b, s, kv, 1, hd]).permute([0, 2, 3, 1, 4]);
        let (k, v) = match slot {
            None => (kv_view(k), kv_view(v)),
            Some(slot) => {
                // The cache holds [batch, kv, positions, head_dim].
                let heads = |t: Tensor<B, 3>| t.reshape([b, s, kv, hd]).swap_dims(1, 2);
                let (mut k4, mut v4) = (heads(k), heads(v));
                if let Some((pk, pv)) = slot.take() {
                    k4 = Tensor::cat(vec![pk, k4], 2);
                    v4 = Tensor::cat(vec![pv, v4], 2);
                }
                *slot = Some((k4.clone(), v4.clone()));
                (k4.unsqueeze_dim::<5>(2), v4.unsqueeze_dim::<5>(2))
            }
        };
        let total = k.dims()[3];
        let q = q.reshape([b, s, kv, rep, hd]).permute([0, 2, 3, 1, 4]);
        let scores = q.matmul(k.swap_dims(3, 4));
        let scores = match mask {
            // [batch * heads, len * total] + a row shared by all of them:
            // flex's fast broadcast.
            Some(mask) => {
                (scores.reshape([b * h, s * total]) + mask.clone()).reshape([b, kv, rep, s, total])
            }
            None => scores,
        };
        let out = softmax(scores, 4).matmul(v);
        self.o_proj
            .forward(out.permute([0, 3, 1, 2, 4]).reshape([b, s, h * hd]))
    }
}

impl<B: Backend> LlamaMlp<B> {
    /// `down(silu(gate(x)) * up(x))`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = self.gate_proj.forward(x.clone());
        let gate = if self.host_ops {
            host_ops::silu(gate)
        } else {
            silu(gate)
        };
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}

impl<B: Backend> LlamaDecoderLayer<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &Rope<B>,
        mask: Option<&Tensor<B, 2>>,
        slot: Option<&mut Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    ) -> Tensor<B, 3> {
        let attn =
            self.self_attn
                .forward(self.input_layernorm.forward(x.clone()), rope, mask, slot);
        let x = x + attn;
        let ff = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        x + ff
    }
}

/// The additive causal mask of `len` new positions after `past` cached
/// ones, `[1, len * (past + len)]` (rows of `len x (past + len)`): 0 where a
/// query may look, -inf after it.
fn causal_mask<B: Backend>(past: usize, len: usize, device: &B::Device) -> Tensor<B, 2> {
    let total = past + len;
    let mut values = vec![0.0f32; len * total];
    for i in 0..len {
        for j in past + i + 1..total {
            values[i * total + j] = f32::NEG_INFINITY;
        }
    }
    Tensor::from_data(TensorData::new(values, [1, len * total]), device)
}

/// `t` as `dtype` (unchanged if it is already).
fn cast_to<B: Backend, const D: usize>(t: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if t.dtype() == dtype {
        t
    } else {
        t.cast(FloatDType::from(dtype))
    }
}

impl<B: Backend> LlamaModel<B> {
    /// The final hidden states (after the last RMSNorm), `[batch, len, hidden]`,
    /// of `tokens` (`[batch, len]`) following the positions in `cache`, if any,
    /// which then holds these positions too.
    ///
    /// Rows share positions: pad a batch on the right (a causal model's
    /// earlier positions never see the padding).
    ///
    /// # Errors
    ///
    /// [`DecoderError::Shape`] for a cache of another model or an empty
    /// input, [`DecoderError::TooLong`] past `max_position_embeddings`.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        mut cache: Option<&mut KvCache<B>>,
    ) -> Result<Tensor<B, 3>, DecoderError> {
        let [_, len] = tokens.dims();
        let past = cache.as_ref().map_or(0, |c| c.len);
        self.check_input(len, past, cache.as_deref())?;
        let device = tokens.device();
        let tables = RopeTables::new(past, len, self.rope.head_dim, self.rope.theta, &device);
        let (heads, kv_heads) = self
            .layers
            .first()
            .map_or((1, 1), |l| (l.self_attn.heads, l.self_attn.kv_heads));
        let rope = Rope {
            queries: tables.for_tokens(heads, 1.0 / (self.rope.head_dim as f64).sqrt()),
            keys: tables.for_tokens(kv_heads, 1.0),
        };
        let mask = (len > 1).then(|| causal_mask::<B>(past, len, &device));
        // With a half-precision base the table's rows come out in its
        // precision; the blocks compute in the norms'.
        let mut x = cast_to(
            self.embed_tokens.forward(tokens),
            self.norm.gamma.val().dtype(),
        );
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(x, &rope, mask.as_ref(), slot);
        }
        if let Some(cache) = cache {
            cache.len += len;
        }
        Ok(self.norm.forward(x))
    }

    fn check_input(
        &self,
        len: usize,
        past: usize,
        cache: Option<&KvCache<B>>,
    ) -> Result<(), DecoderError> {
        if len == 0 {
            return Err(DecoderError::Shape("the input has no positions".into()));
        }
        if let Some(c) = cache {
            if c.layers.len() != self.layers.len() {
                return Err(DecoderError::Shape(format!(
                    "the cache is for {} blocks, the model has {}",
                    c.layers.len(),
                    self.layers.len()
                )));
            }
        }
        if past + len > self.rope.max_positions {
            return Err(DecoderError::TooLong {
                needed: past + len,
                max: self.rope.max_positions,
            });
        }
        Ok(())
    }
}

impl<B: Backend> LlamaForCausalLM<B> {
    /// Logits over the vocabulary at every position, `[batch, len, vocab]`.
    ///
    /// The output head is most of a small model's work at long inputs: when
    /// only some positions need logits, call [`hidden`](Self::hidden) and
    /// [`head`](Self::head) on those rows.
    ///
    /// # Errors
    ///
    /// As [`LlamaModel::forward`].
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: Option<&mut KvCache<B>>,
    ) -> Result<Tensor<B, 3>, DecoderError> {
        let hidden = self.hidden(tokens, cache)?;
        let [b, s, d] = hidden.dims();
        let logits = self.head(hidden.reshape([b * s, d]));
        let vocab = logits.dims()[1];
        Ok(logits.reshape([b, s, vocab]))
    }

    /// The final hidden states, as [`LlamaModel::forward`].
    ///
    /// # Errors
    ///
    /// As [`LlamaModel::forward`].
    pub fn hidden(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: Option<&mut KvCache<B>>,
    ) -> Result<Tensor<B, 3>, DecoderError> {
        self.model.forward(tokens, cache)
    }

    /// The output head on rows of final hidden states, `[n, hidden]` to
    /// `[n, vocab]`.
    pub fn head(&self, hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                let table = self.model.embed_tokens.weight.val();
                let dtype = hidden.dtype();
                let logits = cast_to(hidden, table.dtype()).matmul(table.transpose());
                cast_to(logits, dtype)
            }
        }
    }

    /// The model with its frozen base stored as `dtype` (`F16` or `BF16` to
    /// halve a GPU's memory for it): every projection's weight (see
    /// [`RLoraLinear::with_base_dtype`]) and the token embedding, which is
    /// also the tied output head. The norms, RoPE, attention's softmax, the
    /// residual stream, the logits and any adapter stay in the backend's
    /// float type; each base product casts its input to `dtype` and its
    /// result back. Call it before or after adapting.
    ///
    /// On the CPU keep `F32`: flex holds half precision but computes it
    /// more slowly than `f32`.
    ///
    /// # Errors
    ///
    /// [`RLoraError::UnsupportedDtype`] when the backend cannot compute in
    /// `dtype` on the model's device (ndarray holds only `f32` and `f64`;
    /// wgpu's `F16` needs an adapter with shader `f16`); nothing is cast
    /// then, and the model is dropped (ask `B::supports_dtype` first to keep it).
    pub fn with_base_dtype(self, dtype: FloatDType) -> Result<Self, RLoraError> {
        let embed = &self.model.embed_tokens.weight;
        if !B::supports_dtype(&embed.device(), DType::from(dtype)) {
            return Err(RLoraError::UnsupportedDtype { dtype });
        }
        let mut model = burn_rlora::adapt::with_base_dtype(self, dtype)?;
        let embed = &mut model.model.embed_tokens;
        embed.weight = embed.weight.clone().map(|w| w.cast(dtype));
        Ok(model)
    }

    /// Choose how the feed-forward blocks compute SiLU: by
    /// [`host_ops::silu`] where the backend keeps tensors in host memory
    /// (`true`; flex and ndarray, f32: value and derivative in one
    /// vectorized pass over both cores, and a backward pass that recomputes
    /// no sigmoid), or always by Burn's `silu` (`false`, the default). The
    /// two agree to within a few ulps; a training run with one is not
    /// bit-identical to a run with the other.
    pub fn with_host_ops(mut self, enabled: bool) -> Self {
        for layer in &mut self.model.layers {
            layer.mlp.host_ops = enabled;
        }
        self
    }

    /// Whether the host kernels were asked for
    /// ([`with_host_ops`](Self::with_host_ops)).
    pub fn host_ops(&self) -> bool {
        self.model.layers.iter().any(|l| l.mlp.host_ops)
    }

    /// An empty [`KvCache`] for this model.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.model.layers.len())
    }

    /// Tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.model.embed_tokens.weight.dims()[0]
    }

    /// `ids` (rows of equal length) as the `[batch, len]` input of
    /// [`forward`](Self::forward), on `device`.
    ///
    /// # Errors
    ///
    /// [`DecoderError::TokenOutOfRange`] for an id past the vocabulary,
    /// [`DecoderError::Shape`] for no rows, empty rows or rows of different lengths.
    pub fn tokens<R: AsRef<[u32]>>(
        &self,
        ids: &[R],
        device: &B::Device,
    ) -> Result<Tensor<B, 2, Int>, DecoderError> {
        let len = ids.first().map_or(0, |r| r.as_ref().len());
        if len == 0 || ids.iter().any(|r| r.as_ref().len() != len) {
            return Err(DecoderError::Shape(
                "token rows must be non-empty and of one length".into(),
            ));
        }
        let vocab_size = self.vocab_size();
        let mut flat = Vec::with_capacity(ids.len() * len);
        for &id in ids.iter().flat_map(|r| r.as_ref()) {
            if id as usize >= vocab_size {
                return Err(DecoderError::TokenOutOfRange { id, vocab_size });
            }
            flat.push(i64::from(id));
        }
        Ok(Tensor::from_data(
            TensorData::new(flat, [ids.len(), len]),
            device,
        ))
    }
}
