//! The decoder's weights from tensors under llama.cpp's GGUF names.
//!
//! GGUF stores a projection as the PyTorch `[out, in]` matrix (its dims
//! list `in` first); for the `llama` architecture it also stores the query
//! and key projections with the rows of each head reordered for rotating
//! neighbouring pairs. The loader transposes to Burn's `[in, out]` and, for
//! `llama`, puts the rows back in the "rotate half" order
//! ([`unpermute_rows`]), so the loaded projections are those of the Hugging
//! Face checkpoint and adapters on them interoperate with PEFT's.
//!
//! The norms are loaded as the file stores them. For Gemma, whose RMSNorm
//! multiplies by `1 + w` in transformers, llama.cpp's converter stored
//! `1 + w`, which is what a plain RMSNorm multiplies by.

use burn::module::Param;
use burn::nn::{Embedding, RmsNorm};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_rlora::RLoraLinear;
use burn_rlora_gguf::GgufFile;

use crate::config::{Architecture, DecoderConfig, NormAt, Parts, Projection};
use crate::error::DecoderError;
use crate::model::CausalLm;
use crate::rope::unpermute_rows;

/// A tensor's values in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Row-major shape, outermost first.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f32>,
}

/// Tensors by their GGUF name, dequantized to f32.
pub trait WeightSource {
    /// The file the tensors come from, for error messages.
    fn file(&self) -> String;

    /// The tensor `name`, or `None` when there is no such tensor.
    ///
    /// # Errors
    ///
    /// Whatever reading the tensor failed with.
    fn tensor(&mut self, name: &str) -> Result<Option<HostTensor>, DecoderError>;
}

impl WeightSource for GgufFile {
    fn file(&self) -> String {
        crate::config::file_name(self)
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

/// The decoder `config` describes with its weights from `source`, on `device`.
///
/// The projections are plain (adapt them afterwards); the output head is the
/// token embedding when `config.tie_word_embeddings`, `output.weight` otherwise.
///
/// # Errors
///
/// [`DecoderError::InvalidConfig`], [`DecoderError::MissingTensor`],
/// [`DecoderError::TensorShape`], [`DecoderError::NonFinite`], or what the
/// source failed with.
pub fn load_decoder<B: Backend>(
    config: &DecoderConfig,
    source: &mut impl WeightSource,
    device: &B::Device,
) -> Result<CausalLm<B>, DecoderError> {
    config.assemble(&mut FileParts { source, device })
}

/// The GGUF name (without `.weight` or `.bias`) of projection `p` of block `n`.
fn projection_name(n: usize, p: Projection) -> String {
    let short = match p {
        Projection::Q => "attn_q",
        Projection::K => "attn_k",
        Projection::V => "attn_v",
        Projection::O => "attn_output",
        Projection::Gate => "ffn_gate",
        Projection::Up => "ffn_up",
        Projection::Down => "ffn_down",
    };
    format!("blk.{n}.{short}")
}

/// The GGUF name of the norm at `at` in a decoder of `architecture`.
fn norm_name(architecture: Architecture, at: NormAt) -> String {
    let gemma = architecture == Architecture::Gemma3;
    let (n, short) = match at {
        NormAt::Input(n) => (n, "attn_norm"),
        NormAt::PostAttention(n) if gemma => (n, "post_attention_norm"),
        NormAt::PostAttention(n) | NormAt::PreFeedForward(n) => (n, "ffn_norm"),
        NormAt::PostFeedForward(n) => (n, "post_ffw_norm"),
        NormAt::QueryHeads(n) => (n, "attn_q_norm"),
        NormAt::KeyHeads(n) => (n, "attn_k_norm"),
        NormAt::Final => return "output_norm.weight".to_string(),
    };
    format!("blk.{n}.{short}.weight")
}

/// `rows x cols` row-major values, transposed.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = values[r * cols + c];
                }
            }
        }
    }
    out
}

struct FileParts<'a, S, B: Backend> {
    source: &'a mut S,
    device: &'a B::Device,
}

impl<S: WeightSource, B: Backend> FileParts<'_, S, B> {
    /// The values of `name`, checked to have `shape` and finite values.
    fn values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, DecoderError> {
        let file = self.source.file();
        let tensor = self.source.tensor(name)?;
        let HostTensor {
            shape: found,
            values,
        } = tensor.ok_or_else(|| DecoderError::MissingTensor {
            file: file.clone(),
            name: name.to_string(),
        })?;
        if found != shape || values.len() != shape.iter().product::<usize>() {
            return Err(DecoderError::TensorShape {
                file,
                name: name.to_string(),
                expected: shape.to_vec(),
                found,
            });
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(DecoderError::NonFinite {
                file,
                name: name.to_string(),
            });
        }
        Ok(values)
    }

    /// The `[d_out, d_in]` matrix `{name}.weight` as a plain `[d_in, d_out]`
    /// layer, with the bias `{name}.bias` when `bias`, its rows first
    /// reordered per head of `rope_heads` when given.
    fn projection(
        &mut self,
        name: &str,
        (d_in, d_out): (usize, usize),
        bias: bool,
        rope_heads: Option<(usize, usize)>,
    ) -> Result<RLoraLinear<B>, DecoderError> {
        let mut rows = self.values(&format!("{name}.weight"), &[d_out, d_in])?;
        let mut bias = match bias {
            true => Some(self.values(&format!("{name}.bias"), &[d_out])?),
            false => None,
        };
        if let Some((heads, head_dim)) = rope_heads {
            rows = unpermute_rows(&rows, heads, head_dim, d_in);
            bias = bias.map(|b| unpermute_rows(&b, heads, head_dim, 1));
        }
        let weight = transpose(&rows, d_out, d_in);
        Ok(RLoraLinear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(weight, [d_in, d_out]),
                self.device,
            )),
            bias: bias.map(|b| {
                Param::from_tensor(Tensor::from_data(TensorData::new(b, [d_out]), self.device))
            }),
            adapter: None,
        })
    }
}

impl<S: WeightSource, B: Backend> Parts<B> for FileParts<'_, S, B> {
    fn linear(
        &mut self,
        config: &DecoderConfig,
        n: usize,
        p: Projection,
        d_in: usize,
        d_out: usize,
    ) -> Result<RLoraLinear<B>, DecoderError> {
        let permuted = config.architecture.permutes_query_key_rows();
        let rope_heads = match p {
            Projection::Q if permuted => Some((config.num_attention_heads, config.head_dim())),
            Projection::K if permuted => Some((config.num_key_value_heads, config.head_dim())),
            _ => None,
        };
        let name = projection_name(n, p);
        self.projection(&name, (d_in, d_out), p.has_bias(config), rope_heads)
    }

    fn norm(&mut self, config: &DecoderConfig, at: NormAt) -> Result<RmsNorm<B>, DecoderError> {
        let name = norm_name(config.architecture, at);
        let d = at.width(config);
        let gamma = self.values(&name, &[d])?;
        Ok(RmsNorm {
            gamma: Param::from_tensor(Tensor::from_data(TensorData::new(gamma, [d]), self.device)),
            epsilon: config.rms_norm_eps,
        })
    }

    fn embedding(&mut self, config: &DecoderConfig) -> Result<Embedding<B>, DecoderError> {
        let shape = [config.vocab_size, config.hidden_size];
        let weight = self.values("token_embd.weight", &shape)?;
        Ok(Embedding {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(weight, shape),
                self.device,
            )),
        })
    }

    fn head(&mut self, config: &DecoderConfig) -> Result<RLoraLinear<B>, DecoderError> {
        self.projection(
            "output",
            (config.hidden_size, config.vocab_size),
            false,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transposes_across_tiles() {
        let (rows, cols) = (33, 70);
        let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let t = transpose(&values, rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(t[c * rows + r], values[r * cols + c]);
            }
        }
    }
}
