//! The decoder as Burn modules: embeddings, RMSNorm, RoPE, grouped-query
//! causal attention (optionally with per-head query and key norms and a
//! sliding window), a gated feed-forward block (SwiGLU or tanh-GELU), and
//! the output head, tied or not. One set of modules serves every supported
//! architecture ([`Architecture`](crate::config::Architecture)): the
//! optional parts are `None` where an architecture has no such part.
//!
//! Module and field names follow transformers' `LlamaForCausalLM`,
//! `Qwen2ForCausalLM`, `Qwen3ForCausalLM` and `Gemma3ForCausalLM`
//! (`model.layers.N.self_attn.q_proj`, `model.layers.N.mlp.gate_proj`, ...),
//! so PEFT's target names (`q_proj`, `k_proj`, `v_proj`, `o_proj`,
//! `gate_proj`, `up_proj`, `down_proj`) select the same projections through
//! [`AdaptConfig`](burn_rlora::AdaptConfig), and saved adapters carry PEFT's
//! tensor names under the prefix `base_model.model.`.

use burn::module::Module;
use burn::nn::{Embedding, RmsNorm};
use burn::tensor::activation::{gelu_approximate, silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData};
use burn_rlora::{Adapt, RLoraError, RLoraLinear};

use crate::cache::KvCache;
use crate::config::HiddenAct;
use crate::error::DecoderError;
use crate::host_ops;
use crate::rope::{rotate_half_matrix, RopeTables, TokenRope};

/// RoPE's settings, shared by every block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeSettings {
    /// RoPE's base (of the global-attention blocks where some slide).
    pub theta: f64,
    /// RoPE's base in the sliding-window blocks, where it differs.
    pub local_theta: Option<f64>,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Positions the model was trained for.
    pub max_positions: usize,
}

/// The rest of the settings the blocks share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSettings {
    /// The factor the token embeddings are multiplied by (Gemma:
    /// `sqrt(hidden_size)`); `None` for none.
    pub embed_scale: Option<f64>,
    /// The factor the queries are scaled by before the dot products.
    pub attention_scale: f64,
}

/// Grouped-query self-attention with a causal mask.
#[derive(Module, Adapt, Debug)]
pub struct Attention<B: Backend> {
    /// Queries, `[hidden, heads * head_dim]`.
    pub q_proj: RLoraLinear<B>,
    /// Keys, `[hidden, kv_heads * head_dim]`.
    pub k_proj: RLoraLinear<B>,
    /// Values, `[hidden, kv_heads * head_dim]`.
    pub v_proj: RLoraLinear<B>,
    /// Output, `[heads * head_dim, hidden]`.
    pub o_proj: RLoraLinear<B>,
    /// RMSNorm over each query head before RoPE (Qwen3, Gemma 3).
    pub q_norm: Option<RmsNorm<B>>,
    /// RMSNorm over each key head before RoPE (Qwen3, Gemma 3).
    pub k_norm: Option<RmsNorm<B>>,
    /// Query heads.
    #[module(skip)]
    pub heads: usize,
    /// Key and value heads; each serves `heads / kv_heads` query heads.
    #[module(skip)]
    pub kv_heads: usize,
    /// Width of one head.
    #[module(skip)]
    pub head_dim: usize,
    /// Positions a query attends to, itself included, in a sliding-window
    /// block; `None` where it attends to every earlier position.
    #[module(skip)]
    pub sliding_window: Option<usize>,
}

/// The gated feed-forward block: `down(act(gate(x)) * up(x))`, with SiLU
/// (SwiGLU) or the tanh-approximated GELU (Gemma) as `act`.
#[derive(Module, Adapt, Debug)]
pub struct Mlp<B: Backend> {
    /// Gate projection, `[hidden, intermediate]`.
    pub gate_proj: RLoraLinear<B>,
    /// Up projection, `[hidden, intermediate]`.
    pub up_proj: RLoraLinear<B>,
    /// Down projection, `[intermediate, hidden]`.
    pub down_proj: RLoraLinear<B>,
    /// The gate's activation.
    #[module(skip)]
    pub act: HiddenAct,
    /// Compute SiLU with [`host_ops::silu`] where it applies (see
    /// [`CausalLm::with_host_ops`]; off by default).
    #[module(skip)]
    pub host_ops: bool,
}

/// One decoder block.
///
/// Llama's block (two norms): `x + attn(input_layernorm(x))`, then
/// `x + mlp(post_attention_layernorm(x))`. With the two further norms
/// (Gemma's "sandwich"): `x + post_attention_layernorm(attn(input_layernorm(x)))`,
/// then `x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))`.
/// The names are transformers'; in Llama's block its
/// `post_attention_layernorm` is the norm before the feed-forward block.
#[derive(Module, Adapt, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Feed-forward block.
    pub mlp: Mlp<B>,
    /// RMSNorm before the attention.
    pub input_layernorm: RmsNorm<B>,
    /// RMSNorm before the feed-forward block (Llama), or on the attention's
    /// output (with the sandwich norms).
    pub post_attention_layernorm: RmsNorm<B>,
    /// RMSNorm before the feed-forward block (sandwich norms only).
    pub pre_feedforward_layernorm: Option<RmsNorm<B>>,
    /// RMSNorm on the feed-forward block's output (sandwich norms only).
    pub post_feedforward_layernorm: Option<RmsNorm<B>>,
}

/// The decoder without its output head.
#[derive(Module, Adapt, Debug)]
pub struct DecoderModel<B: Backend> {
    /// Token embeddings, `[vocab, hidden]`; also the output head when tied.
    pub embed_tokens: Embedding<B>,
    /// The blocks.
    pub layers: Vec<DecoderLayer<B>>,
    /// The final RMSNorm.
    pub norm: RmsNorm<B>,
    /// RoPE's settings.
    #[module(skip)]
    pub rope: RopeSettings,
    /// The embedding scale and the query scaling.
    #[module(skip)]
    pub settings: ModelSettings,
}

/// A decoder with its language-modelling head: transformers'
/// `*ForCausalLM`.
#[derive(Module, Adapt, Debug)]
pub struct CausalLm<B: Backend> {
    /// The decoder.
    pub model: DecoderModel<B>,
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

/// What the blocks of one forward pass share: the RoPE of the global and
/// of the sliding-window blocks (where their bases differ), and the masks.
struct Shared<B: Backend> {
    rope: Rope<B>,
    local_rope: Option<Rope<B>>,
    /// The causal mask (`None` for a single new position).
    mask: Option<Tensor<B, 2>>,
    /// The causal mask cut to the sliding window (`None` where it would
    /// mask nothing more than `mask`).
    sliding_mask: Option<Tensor<B, 2>>,
}

impl<B: Backend> Attention<B> {
    /// Attention of `x` (`[batch, len, hidden]`) over the cached positions and
    /// its own, causally; with `cache` (the cache and this block's index in
    /// it), writes its keys and values there.
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
        shared: &Shared<B>,
        cache: Option<(&mut KvCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (h, kv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let rep = h / kv;
        let (rope, mask) = match self.sliding_window {
            Some(_) => (
                shared.local_rope.as_ref().unwrap_or(&shared.rope),
                shared.sliding_mask.as_ref().or(shared.mask.as_ref()),
            ),
            None => (&shared.rope, shared.mask.as_ref()),
        };
        let per_head = |norm: &Option<RmsNorm<B>>, t: Tensor<B, 3>, heads: usize| match norm {
            Some(norm) => norm
                .forward(t.reshape([b, s, heads, hd]))
                .reshape([b, s, heads * hd]),
            None => t,
        };
        let q = per_head(&self.q_norm, self.q_proj.forward(x.clone()), h);
        let k = per_head(&self.k_norm, self.k_proj.forward(x.clone()), kv);
        let q = rope.queries.apply(q);
        let k = rope.keys.apply(k);
        let v = self.v_proj.forward(x);
        // [batch, len, kv * head_dim] as [batch, kv, 1, len, head_dim] (a view).
        let kv_view = |t: Tensor<B, 3>| t.reshape([b, s, kv, 1, hd]).permute([0, 2, 3, 1, 4]);
        let (k, v) = match cache {
            None => (kv_view(k), kv_view(v)),
            Some((cache, layer)) => {
                // The cache holds [batch, kv, positions, head_dim].
                let heads = |t: Tensor<B, 3>| t.reshape([b, s, kv, hd]).swap_dims(1, 2);
                let past = cache.len;
                let (k4, v4) = cache.append(layer, past, heads(k), heads(v));
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

impl<B: Backend> Mlp<B> {
    /// `down(act(gate(x)) * up(x))`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = self.gate_proj.forward(x.clone());
        let gate = match (self.act, self.host_ops) {
            (HiddenAct::Silu, true) => host_ops::silu(gate),
            (HiddenAct::Silu, false) => silu(gate),
            (HiddenAct::GeluTanh, _) => gelu_approximate(gate),
        };
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}

impl<B: Backend> DecoderLayer<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        shared: &Shared<B>,
        cache: Option<(&mut KvCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let attn = self
            .self_attn
            .forward(self.input_layernorm.forward(x.clone()), shared, cache);
        match (
            &self.pre_feedforward_layernorm,
            &self.post_feedforward_layernorm,
        ) {
            (Some(pre), Some(post)) => {
                let x = x + self.post_attention_layernorm.forward(attn);
                let ff = self.mlp.forward(pre.forward(x.clone()));
                x + post.forward(ff)
            }
            _ => {
                let x = x + attn;
                let ff = self
                    .mlp
                    .forward(self.post_attention_layernorm.forward(x.clone()));
                x + ff
            }
        }
    }
}

/// The additive causal mask of `len` new positions after `past` cached
/// ones, `[1, len * (past + len)]` (rows of `len x (past + len)`): 0 where a
/// query may look, -inf after it and, with a `window`, -inf at the
/// positions `window` or more before it (a query at `i` sees `j` when
/// `i - window < j <= i`, as transformers' and llama.cpp's sliding
/// windows). `None` when it would mask nothing.
fn causal_mask<B: Backend>(
    past: usize,
    len: usize,
    window: Option<usize>,
    device: &B::Device,
) -> Option<Tensor<B, 2>> {
    let total = past + len;
    let reaches_back = |i: usize| window.map_or(0, |w| (past + i + 1).saturating_sub(w));
    if len == 1 && reaches_back(0) == 0 {
        return None;
    }
    let mut values = vec![0.0f32; len * total];
    for i in 0..len {
        let row = &mut values[i * total..(i + 1) * total];
        row[..reaches_back(i)].fill(f32::NEG_INFINITY);
        row[past + i + 1..].fill(f32::NEG_INFINITY);
    }
    Some(Tensor::from_data(
        TensorData::new(values, [1, len * total]),
        device,
    ))
}

/// `t` as `dtype` (unchanged if it is already).
fn cast_to<B: Backend, const D: usize>(t: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if t.dtype() == dtype {
        t
    } else {
        t.cast(FloatDType::from(dtype))
    }
}

impl<B: Backend> DecoderModel<B> {
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
        let (heads, kv_heads) = self
            .layers
            .first()
            .map_or((1, 1), |l| (l.self_attn.heads, l.self_attn.kv_heads));
        let hd = self.rope.head_dim;
        let window = self.layers.iter().find_map(|l| l.self_attn.sliding_window);
        let local_theta = self
            .rope
            .local_theta
            .filter(|&t| t != self.rope.theta && window.is_some());
        // The tables and the rotation: a generation's cache keeps them.
        let (tables, local_tables, rotate) = match cache.as_deref_mut() {
            Some(c) => (
                c.rope(self.rope.theta, hd, past, len),
                local_theta.map(|t| c.rope(t, hd, past, len)),
                c.rotate(hd, &device),
            ),
            None => (
                RopeTables::new(past, len, hd, self.rope.theta),
                local_theta.map(|t| RopeTables::new(past, len, hd, t)),
                rotate_half_matrix::<B>(hd, &device),
            ),
        };
        let rope_of = |tables: RopeTables| Rope {
            queries: tables.for_tokens(heads, self.settings.attention_scale, rotate.clone()),
            keys: tables.for_tokens(kv_heads, 1.0, rotate.clone()),
        };
        let shared = Shared {
            rope: rope_of(tables),
            local_rope: local_tables.map(rope_of),
            mask: causal_mask::<B>(past, len, None, &device),
            sliding_mask: window.and_then(|w| {
                (past + len > w).then(|| causal_mask::<B>(past, len, Some(w), &device))?
            }),
        };
        // With a half-precision base the table's rows come out in its
        // precision; the blocks compute in the norms'.
        let mut x = cast_to(
            self.embed_tokens.forward(tokens),
            self.norm.gamma.val().dtype(),
        );
        if let Some(scale) = self.settings.embed_scale {
            // As transformers: the scale rounded to the embedding's precision.
            x = x.mul_scalar(scale as f32);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(x, &shared, slot);
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

impl<B: Backend> CausalLm<B> {
    /// Logits over the vocabulary at every position, `[batch, len, vocab]`.
    ///
    /// The output head is most of a small model's work at long inputs: when
    /// only some positions need logits, call [`hidden`](Self::hidden) and
    /// [`head`](Self::head) on those rows.
    ///
    /// # Errors
    ///
    /// As [`DecoderModel::forward`].
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

    /// The final hidden states, as [`DecoderModel::forward`].
    ///
    /// # Errors
    ///
    /// As [`DecoderModel::forward`].
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

    /// An empty [`KvCache`] for this model whose buffers start with room for
    /// `positions` (see [`KvCache::with_capacity`]).
    pub fn new_cache_with_capacity(&self, positions: usize) -> KvCache<B> {
        KvCache::with_capacity(self.model.layers.len(), positions)
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
