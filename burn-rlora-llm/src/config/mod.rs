//! The decoder's shape and its architecture's switches, as transformers'
//! configs name them, and the parts a decoder is assembled from.

use std::fmt;

use burn::config::Config;
use burn::nn::{Embedding, EmbeddingConfig, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::backend::Backend;
use burn_rlora::RLoraLinear;
use serde::{Deserialize, Serialize};

use crate::error::DecoderError;
use crate::model::{
    Attention, CausalLm, DecoderLayer, DecoderModel, Mlp, ModelSettings, RopeSettings,
};

mod gguf;

pub(crate) use gguf::file_name;

/// The decoder architectures this crate builds, named as GGUF files name
/// them (`general.architecture`).
///
/// They share one set of modules ([`CausalLm`]); what tells them apart is
/// a handful of switches of [`DecoderConfig`], which
/// [`DecoderConfig::for_architecture`] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama and the models converted as `llama` (SmolLM2, TinyLlama,
    /// Mistral 7B): pre-norm blocks, SwiGLU, no biases.
    #[default]
    Llama,
    /// Qwen2 and Qwen2.5: Llama with biases on the query, key and value
    /// projections.
    Qwen2,
    /// Qwen3: Llama with an RMSNorm on every query and key head, no biases.
    Qwen3,
    /// Gemma 3 (text): per-head query and key norms, norms before and after
    /// attention and feed-forward, a tanh-approximated GELU gate, scaled
    /// embeddings, and sliding-window attention in five blocks of every six.
    Gemma3,
}

impl Architecture {
    /// Every supported architecture.
    pub const ALL: [Architecture; 4] = [Self::Llama, Self::Qwen2, Self::Qwen3, Self::Gemma3];

    /// The name GGUF files give it (`general.architecture`).
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma3 => "gemma3",
        }
    }

    /// The architecture GGUF names `name`, if it is supported.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.gguf_name() == name)
    }

    /// Whether llama.cpp's converter stored the query and key rows of this
    /// architecture reordered for its "NORM" RoPE, which rotates
    /// neighbouring pairs (only `llama`); the others use "NEOX" RoPE,
    /// transformers' rotate-half, and keep the rows as they are.
    pub fn permutes_query_key_rows(self) -> bool {
        matches!(self, Self::Llama)
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.gguf_name())
    }
}

/// The feed-forward block's activation on its gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum HiddenAct {
    /// `x σ(x)` (Llama, Qwen).
    #[default]
    #[serde(rename = "silu")]
    Silu,
    /// GELU with the tanh approximation (transformers' `gelu_pytorch_tanh`;
    /// Gemma).
    #[serde(rename = "gelu_pytorch_tanh")]
    GeluTanh,
}

/// The shape of a decoder and its architecture's switches.
///
/// The field names are those of transformers' configs (`LlamaConfig`,
/// `Qwen2Config`, `Gemma3TextConfig`). [`DecoderConfig::new`] gives a Llama
/// decoder; [`for_architecture`](Self::for_architecture) sets the switches
/// of another architecture to what it always uses.
///
/// ```
/// use burn::backend::NdArray;
/// use burn_rlora_llm::config::{Architecture, DecoderConfig};
///
/// let config = DecoderConfig::new(64, 16, 32, 2, 4, 2, 32);
/// let model = config.init::<NdArray>(&Default::default())?;
/// assert_eq!(model.model.layers.len(), 2);
/// let gemma = DecoderConfig::new(64, 16, 32, 6, 2, 1, 32)
///     .with_head_dim(Some(8))
///     .with_sliding_window(Some(4))
///     .for_architecture(Architecture::Gemma3);
/// assert!(gemma.qk_norm && gemma.is_sliding(0) && !gemma.is_sliding(5));
/// # Ok::<(), burn_rlora_llm::DecoderError>(())
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct DecoderConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the feed-forward block's hidden layer.
    pub intermediate_size: usize,
    /// Decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key and value heads (grouped-query attention: a divisor of the query heads).
    pub num_key_value_heads: usize,
    /// Positions the model was trained for.
    pub max_position_embeddings: usize,
    /// The architecture (informative: the switches below decide the modules).
    #[config(default = "Architecture::Llama")]
    pub architecture: Architecture,
    /// Width of one attention head; `None` for `hidden_size /
    /// num_attention_heads` (Gemma 3's heads are wider than that).
    #[config(default = "None")]
    pub head_dim: Option<usize>,
    /// RoPE's base (of the global-attention blocks, where some slide).
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// RoPE's base in the sliding-window blocks; `None` for `rope_theta`.
    #[config(default = "None")]
    pub rope_local_base_freq: Option<f64>,
    /// RMSNorm's epsilon.
    #[config(default = 1e-5)]
    pub rms_norm_eps: f64,
    /// Whether the output head is the token embedding (no `lm_head` weights).
    #[config(default = true)]
    pub tie_word_embeddings: bool,
    /// Biases on the query, key and value projections (Qwen2).
    #[config(default = false)]
    pub attention_bias: bool,
    /// An RMSNorm over every query and key head before RoPE (Qwen3, Gemma 3).
    #[config(default = false)]
    pub qk_norm: bool,
    /// The feed-forward gate's activation.
    #[config(default = "HiddenAct::Silu")]
    pub hidden_act: HiddenAct,
    /// Norms after attention and after the feed-forward block, before each
    /// is added to the residual stream, and one more before the
    /// feed-forward block (Gemma 2 and 3). Without it a block has the two
    /// norms of Llama.
    #[config(default = false)]
    pub sandwich_norms: bool,
    /// Multiply the token embeddings by `sqrt(hidden_size)` (Gemma).
    #[config(default = false)]
    pub scale_embeddings: bool,
    /// The queries are scaled by `query_pre_attn_scalar^-1/2`; `None` for
    /// `head_dim^-1/2`.
    #[config(default = "None")]
    pub query_pre_attn_scalar: Option<f64>,
    /// Positions a sliding-window block attends to, itself included; `None`
    /// when every block attends to all earlier positions.
    #[config(default = "None")]
    pub sliding_window: Option<usize>,
    /// With a sliding window, block `i` attends globally when `(i + 1)` is a
    /// multiple of this (Gemma 3: 6); `None` when every block slides.
    #[config(default = "None")]
    pub sliding_window_pattern: Option<usize>,
}

impl DecoderConfig {
    /// SmolLM2-135M(-Instruct): 30 blocks of width 576, 9 query and 3
    /// key/value heads of 64, feed-forward 1536, vocabulary 49152, RoPE base
    /// 100000, tied output head.
    pub fn smollm2_135m() -> Self {
        Self::new(49152, 576, 1536, 30, 9, 3, 8192).with_rope_theta(100_000.0)
    }

    /// This configuration with `architecture` and the switches it always
    /// uses, as transformers' config classes and llama.cpp's graphs set
    /// them; sizes, RoPE bases, epsilon and the sliding window are kept.
    ///
    /// | | Llama | Qwen2 | Qwen3 | Gemma 3 |
    /// |---|---|---|---|---|
    /// | `attention_bias` | no | yes | no | no |
    /// | `qk_norm` | no | no | yes | yes |
    /// | `hidden_act` | SiLU | SiLU | SiLU | GELU (tanh) |
    /// | `sandwich_norms`, `scale_embeddings` | no | no | no | yes |
    /// | `query_pre_attn_scalar` | | | | `head_dim` (the value of the 270M to 12B models) |
    /// | `sliding_window_pattern` | | | | 6 |
    /// | `rope_local_base_freq` | | | | 10000 |
    ///
    /// Gemma 3's last three values are not in its GGUF metadata: they are
    /// the defaults of transformers' `Gemma3TextConfig` (`sliding_window_pattern
    /// = 6`, `rope_local_base_freq = 10000`, `query_pre_attn_scalar = 256`,
    /// which is `head_dim` for these models) and the constants of llama.cpp's
    /// gemma3 graph (a sliding-window pattern of 6, a local RoPE base of
    /// 10000, queries scaled by `head_dim^-1/2`).
    pub fn for_architecture(mut self, architecture: Architecture) -> Self {
        self.architecture = architecture;
        self.attention_bias = architecture == Architecture::Qwen2;
        self.qk_norm = matches!(architecture, Architecture::Qwen3 | Architecture::Gemma3);
        let gemma = architecture == Architecture::Gemma3;
        self.hidden_act = match gemma {
            true => HiddenAct::GeluTanh,
            false => HiddenAct::Silu,
        };
        self.sandwich_norms = gemma;
        self.scale_embeddings = gemma;
        self.query_pre_attn_scalar = gemma.then(|| self.head_dim() as f64);
        self.sliding_window_pattern = gemma.then_some(6);
        self.rope_local_base_freq = gemma.then_some(10_000.0);
        self
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Whether block `layer` attends through the sliding window.
    pub fn is_sliding(&self, layer: usize) -> bool {
        match (self.sliding_window, self.sliding_window_pattern) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(_), Some(pattern)) => !(layer + 1).is_multiple_of(pattern.max(1)),
        }
    }

    /// RoPE's base in block `layer`.
    pub fn layer_rope_theta(&self, layer: usize) -> f64 {
        match (self.is_sliding(layer), self.rope_local_base_freq) {
            (true, Some(local)) => local,
            _ => self.rope_theta,
        }
    }

    /// The factor the queries are scaled by before the dot products.
    pub fn attention_scale(&self) -> f64 {
        1.0 / self
            .query_pre_attn_scalar
            .unwrap_or(self.head_dim() as f64)
            .sqrt()
    }

    /// Checks that the sizes and switches describe a decoder.
    ///
    /// # Errors
    ///
    /// [`DecoderError::InvalidConfig`] naming the first value that does not fit.
    pub fn validate(&self) -> Result<(), DecoderError> {
        let bad = |m: String| Err(DecoderError::InvalidConfig(m));
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
            ("head_dim", self.head_dim.unwrap_or(1)),
            ("sliding_window", self.sliding_window.unwrap_or(1)),
            (
                "sliding_window_pattern",
                self.sliding_window_pattern.unwrap_or(1),
            ),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{name} is 0"));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {} (and no head_dim is given)",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "the head width {} is odd: RoPE rotates pairs",
                self.head_dim()
            ));
        }
        let products = [
            (
                "num_attention_heads * head_dim",
                self.num_attention_heads.checked_mul(self.head_dim()),
            ),
            (
                "vocab_size * hidden_size",
                self.vocab_size.checked_mul(self.hidden_size),
            ),
            (
                "hidden_size * intermediate_size",
                self.hidden_size.checked_mul(self.intermediate_size),
            ),
        ];
        if let Some((name, _)) = products.iter().find(|(_, v)| v.is_none()) {
            return bad(format!("{name} overflows"));
        }
        for (name, theta) in [
            ("rope_theta", Some(self.rope_theta)),
            ("rope_local_base_freq", self.rope_local_base_freq),
        ] {
            if let Some(theta) = theta.filter(|t| !(t.is_finite() && *t > 1.0)) {
                return bad(format!("{name} {theta} is not a finite number above 1"));
            }
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return bad(format!(
                "rms_norm_eps {} is not a positive number",
                self.rms_norm_eps
            ));
        }
        if let Some(s) = self
            .query_pre_attn_scalar
            .filter(|s| !(s.is_finite() && *s > 0.0))
        {
            return bad(format!(
                "query_pre_attn_scalar {s} is not a positive number"
            ));
        }
        Ok(())
    }

    /// A decoder with freshly drawn weights and plain projections, on `device`.
    ///
    /// # Errors
    ///
    /// [`DecoderError::InvalidConfig`], as [`validate`](Self::validate).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<CausalLm<B>, DecoderError> {
        self.assemble(&mut DrawnParts { device })
    }

    /// The decoder of this shape with its parts made by `parts`.
    pub(crate) fn assemble<B: Backend>(
        &self,
        parts: &mut impl Parts<B>,
    ) -> Result<CausalLm<B>, DecoderError> {
        self.validate()?;
        let d = self.hidden_size;
        let (q, kv) = (
            self.num_attention_heads * self.head_dim(),
            self.num_key_value_heads * self.head_dim(),
        );
        let ff = self.intermediate_size;
        let mut layers = Vec::with_capacity(self.num_hidden_layers);
        for n in 0..self.num_hidden_layers {
            let mut proj = |p: Projection, d_in, d_out| parts.linear(self, n, p, d_in, d_out);
            let (q_proj, k_proj) = (proj(Projection::Q, d, q)?, proj(Projection::K, d, kv)?);
            let (v_proj, o_proj) = (proj(Projection::V, d, kv)?, proj(Projection::O, q, d)?);
            let (gate_proj, up_proj) =
                (proj(Projection::Gate, d, ff)?, proj(Projection::Up, d, ff)?);
            let down_proj = proj(Projection::Down, ff, d)?;
            let mut norm = |at: NormAt| parts.norm(self, at);
            let (q_norm, k_norm) = match self.qk_norm {
                true => (
                    Some(norm(NormAt::QueryHeads(n))?),
                    Some(norm(NormAt::KeyHeads(n))?),
                ),
                false => (None, None),
            };
            let input_layernorm = norm(NormAt::Input(n))?;
            let post_attention_layernorm = norm(NormAt::PostAttention(n))?;
            let (pre_feedforward_layernorm, post_feedforward_layernorm) = match self.sandwich_norms
            {
                true => (
                    Some(norm(NormAt::PreFeedForward(n))?),
                    Some(norm(NormAt::PostFeedForward(n))?),
                ),
                false => (None, None),
            };
            layers.push(DecoderLayer {
                self_attn: Attention {
                    q_proj,
                    k_proj,
                    v_proj,
                    o_proj,
                    q_norm,
                    k_norm,
                    heads: self.num_attention_heads,
                    kv_heads: self.num_key_value_heads,
                    head_dim: self.head_dim(),
                    sliding_window: self.sliding_window.filter(|_| self.is_sliding(n)),
                },
                mlp: Mlp {
                    gate_proj,
                    up_proj,
                    down_proj,
                    act: self.hidden_act,
                    host_ops: false,
                },
                input_layernorm,
                post_attention_layernorm,
                pre_feedforward_layernorm,
                post_feedforward_layernorm,
            });
        }
        let model = DecoderModel {
            embed_tokens: parts.embedding(self)?,
            layers,
            norm: parts.norm(self, NormAt::Final)?,
            rope: RopeSettings {
                theta: self.rope_theta,
                local_theta: self.rope_local_base_freq,
                head_dim: self.head_dim(),
                max_positions: self.max_position_embeddings,
            },
            settings: ModelSettings {
                embed_scale: self
                    .scale_embeddings
                    .then(|| (self.hidden_size as f64).sqrt()),
                attention_scale: self.attention_scale(),
            },
        };
        let lm_head = match self.tie_word_embeddings {
            true => None,
            false => Some(parts.head(self)?),
        };
        Ok(CausalLm { model, lm_head })
    }
}

/// A projection of a decoder block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Projection {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Projection {
    /// Whether `config` gives this projection a bias.
    pub(crate) fn has_bias(self, config: &DecoderConfig) -> bool {
        config.attention_bias && matches!(self, Self::Q | Self::K | Self::V)
    }
}

/// Which RMSNorm, by its place (transformers' names, in a block `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NormAt {
    /// `input_layernorm`, before attention.
    Input(usize),
    /// `post_attention_layernorm`: before the feed-forward block in Llama's
    /// blocks; on attention's output with sandwich norms.
    PostAttention(usize),
    /// `pre_feedforward_layernorm` (sandwich norms).
    PreFeedForward(usize),
    /// `post_feedforward_layernorm` (sandwich norms).
    PostFeedForward(usize),
    /// `self_attn.q_norm`, over each query head.
    QueryHeads(usize),
    /// `self_attn.k_norm`, over each key head.
    KeyHeads(usize),
    /// The final `norm`.
    Final,
}

impl NormAt {
    /// The width the norm spans.
    pub(crate) fn width(self, config: &DecoderConfig) -> usize {
        match self {
            Self::QueryHeads(_) | Self::KeyHeads(_) => config.head_dim(),
            _ => config.hidden_size,
        }
    }
}

/// Where [`DecoderConfig::assemble`] gets the decoder's parts.
pub(crate) trait Parts<B: Backend> {
    /// Projection `p` of block `n`, `[d_in, d_out]`.
    fn linear(
        &mut self,
        config: &DecoderConfig,
        n: usize,
        p: Projection,
        d_in: usize,
        d_out: usize,
    ) -> Result<RLoraLinear<B>, DecoderError>;
    /// The norm at `at`.
    fn norm(&mut self, config: &DecoderConfig, at: NormAt) -> Result<RmsNorm<B>, DecoderError>;
    /// The token embedding.
    fn embedding(&mut self, config: &DecoderConfig) -> Result<Embedding<B>, DecoderError>;
    /// The untied output head, `[hidden, vocab]`.
    fn head(&mut self, config: &DecoderConfig) -> Result<RLoraLinear<B>, DecoderError>;
}

/// Parts with freshly drawn weights, as Burn's configs initialize them, but
/// drawn at once rather than lazily: clones of the model share one set of
/// values (a lazy parameter draws anew in every clone).
struct DrawnParts<'a, B: Backend> {
    device: &'a B::Device,
}

impl<B: Backend> Parts<B> for DrawnParts<'_, B> {
    fn linear(
        &mut self,
        config: &DecoderConfig,
        _: usize,
        p: Projection,
        d_in: usize,
        d_out: usize,
    ) -> Result<RLoraLinear<B>, DecoderError> {
        let linear = LinearConfig::new(d_in, d_out)
            .with_bias(p.has_bias(config))
            .init(self.device);
        let _drawn = linear.weight.val();
        let _drawn = linear.bias.as_ref().map(|b| b.val());
        Ok(linear.into())
    }

    fn norm(&mut self, c: &DecoderConfig, at: NormAt) -> Result<RmsNorm<B>, DecoderError> {
        let norm = RmsNormConfig::new(at.width(c))
            .with_epsilon(c.rms_norm_eps)
            .init(self.device);
        let _drawn = norm.gamma.val();
        Ok(norm)
    }

    fn embedding(&mut self, c: &DecoderConfig) -> Result<Embedding<B>, DecoderError> {
        let embedding = EmbeddingConfig::new(c.vocab_size, c.hidden_size).init(self.device);
        let _drawn = embedding.weight.val();
        Ok(embedding)
    }

    fn head(&mut self, c: &DecoderConfig) -> Result<RLoraLinear<B>, DecoderError> {
        let linear = LinearConfig::new(c.hidden_size, c.vocab_size)
            .with_bias(false)
            .init(self.device);
        let _drawn = linear.weight.val();
        Ok(linear.into())
    }
}
