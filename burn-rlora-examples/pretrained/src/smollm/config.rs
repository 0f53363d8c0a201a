//! The decoder's hyper-parameters, as Llama's `config.json` names them.

use burn::config::Config;
use burn::nn::{Embedding, EmbeddingConfig, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::backend::Backend;
use burn_rlora::RLoraLinear;

use super::error::DecoderError;
use super::model::{
    LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMlp, LlamaModel, RopeSettings,
};

/// The shape of a Llama decoder.
///
/// The field names are those of Hugging Face's `LlamaConfig`. SmolLM2-135M
/// is [`LlamaConfig::smollm2_135m`].
///
/// ```
/// use burn::backend::NdArray;
/// use burn_rlora_pretrained::smollm::LlamaConfig;
///
/// let config = LlamaConfig::new(64, 16, 32, 2, 4, 2, 32);
/// let model = config.init::<NdArray>(&Default::default())?;
/// assert_eq!(model.model.layers.len(), 2);
/// # Ok::<(), burn_rlora_pretrained::smollm::DecoderError>(())
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct LlamaConfig {
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
    /// RoPE's base.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// RMSNorm's epsilon.
    #[config(default = 1e-5)]
    pub rms_norm_eps: f64,
    /// Whether the output head is the token embedding (no `lm_head` weights).
    #[config(default = true)]
    pub tie_word_embeddings: bool,
}

impl LlamaConfig {
    /// SmolLM2-135M(-Instruct): 30 blocks of width 576, 9 query and 3
    /// key/value heads of 64, feed-forward 1536, vocabulary 49152, RoPE base
    /// 100000, tied output head.
    pub fn smollm2_135m() -> Self {
        Self::new(49152, 576, 1536, 30, 9, 3, 8192).with_rope_theta(100_000.0)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Checks that the sizes describe a decoder.
    ///
    /// # Errors
    ///
    /// [`DecoderError::InvalidConfig`] naming the first size that does not fit.
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
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{name} is 0"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
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
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return bad(format!(
                "rope_theta {} is not a finite number above 1",
                self.rope_theta
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return bad(format!(
                "rms_norm_eps {} is not a positive number",
                self.rms_norm_eps
            ));
        }
        Ok(())
    }

    /// A decoder with freshly drawn weights and plain projections, on `device`.
    ///
    /// # Errors
    ///
    /// [`DecoderError::InvalidConfig`], as [`validate`](Self::validate).
    pub fn init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<LlamaForCausalLM<B>, DecoderError> {
        self.assemble(&mut DrawnParts { device })
    }

    /// The decoder of this shape with its parts made by `parts`.
    pub(super) fn assemble<B: Backend>(
        &self,
        parts: &mut impl Parts<B>,
    ) -> Result<LlamaForCausalLM<B>, DecoderError> {
        self.validate()?;
        let (d, kv) = (self.hidden_size, self.num_key_value_heads * self.head_dim());
        let ff = self.intermediate_size;
        let mut layers = Vec::with_capacity(self.num_hidden_layers);
        for n in 0..self.num_hidden_layers {
            let mut proj = |p: Projection, d_in, d_out| parts.linear(self, n, p, d_in, d_out);
            let self_attn = LlamaAttention {
                q_proj: proj(Projection::Q, d, d)?,
                k_proj: proj(Projection::K, d, kv)?,
                v_proj: proj(Projection::V, d, kv)?,
                o_proj: proj(Projection::O, d, d)?,
                heads: self.num_attention_heads,
                kv_heads: self.num_key_value_heads,
                head_dim: self.head_dim(),
            };
            let mlp = LlamaMlp {
                gate_proj: proj(Projection::Gate, d, ff)?,
                up_proj: proj(Projection::Up, d, ff)?,
                down_proj: proj(Projection::Down, ff, d)?,
                host_ops: false,
            };
            layers.push(LlamaDecoderLayer {
                self_attn,
                mlp,
                input_layernorm: parts.norm(self, Some((n, NormAt::Attention)))?,
                post_attention_layernorm: parts.norm(self, Some((n, NormAt::FeedForward)))?,
            });
        }
        let model = LlamaModel {
            embed_tokens: parts.embedding(self)?,
            layers,
            norm: parts.norm(self, None)?,
            rope: RopeSettings {
                theta: self.rope_theta,
                head_dim: self.head_dim(),
                max_positions: self.max_position_embeddings,
            },
        };
        let lm_head = match self.tie_word_embeddings {
            true => None,
            false => Some(parts.head(self)?),
        };
        Ok(LlamaForCausalLM { model, lm_head })
    }
}

/// A projection of a decoder block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Projection {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

/// Which RMSNorm of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NormAt {
    Attention,
    FeedForward,
}

/// Where [`LlamaConfig::assemble`] gets the decoder's parts.
pub(super) trait Parts<B: Backend> {
    /// Projection `p` of block `n`, `[d_in, d_out]`.
    fn linear(
        &mut self,
        config: &LlamaConfig,
        n: usize,
        p: Projection,
        d_in: usize,
        d_out: usize,
    ) -> Result<RLoraLinear<B>, DecoderError>;
    /// A block's norm, or the final one (`None`).
    fn norm(
        &mut self,
        config: &LlamaConfig,
        at: Option<(usize, NormAt)>,
    ) -> Result<RmsNorm<B>, DecoderError>;
    /// The token embedding.
    fn embedding(&mut self, config: &LlamaConfig) -> Result<Embedding<B>, DecoderError>;
    /// The untied output head, `[hidden, vocab]`.
    fn head(&mut self, config: &LlamaConfig) -> Result<RLoraLinear<B>, DecoderError>;
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
        _: &LlamaConfig,
        _: usize,
        _: Projection,
        d_in: usize,
        d_out: usize,
    ) -> Result<RLoraLinear<B>, DecoderError> {
        let linear = LinearConfig::new(d_in, d_out)
            .with_bias(false)
            .init(self.device);
        let _drawn = linear.weight.val();
        Ok(linear.into())
    }

    fn norm(
        &mut self,
        c: &LlamaConfig,
        _: Option<(usize, NormAt)>,
    ) -> Result<RmsNorm<B>, DecoderError> {
        let norm = RmsNormConfig::new(c.hidden_size)
            .with_epsilon(c.rms_norm_eps)
            .init(self.device);
        let _drawn = norm.gamma.val();
        Ok(norm)
    }

    fn embedding(&mut self, c: &LlamaConfig) -> Result<Embedding<B>, DecoderError> {
        let embedding = EmbeddingConfig::new(c.vocab_size, c.hidden_size).init(self.device);
        let _drawn = embedding.weight.val();
        Ok(embedding)
    }

    fn head(&mut self, c: &LlamaConfig) -> Result<RLoraLinear<B>, DecoderError> {
        self.linear(c, 0, Projection::O, c.hidden_size, c.vocab_size)
    }
}
