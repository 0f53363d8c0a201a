//! Folding the adapter into the base weights, where that is exact.

use burn::module::{Param, ParamId};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};

use crate::adapter::{mean_head, RLoraAdapter};
use crate::config::RouterKind;
use crate::error::RLoraError;
use crate::layer::RLoraLinear;

/// The change the compensation pair `(A0, Bbar0)` makes to the base weight,
/// `-s * A0 Bbar0`, in Burn's layout `[d_input, d_output]`.
fn compensation_delta<B: Backend>(
    a0: Tensor<B, 2>,
    b0: Tensor<B, 2>,
    scaling: f64,
) -> Tensor<B, 2> {
    a0.matmul(b0).mul_scalar(-scaling)
}

/// The change a layer with a head-independent weighting (one head or the
/// uniform router) makes to its base weight, in Burn's layout
/// `[d_input, d_output]`: `s * A mean_i(B_i) - s * A0 Bbar0`.
///
/// `a` is `A` `[d_input, r]`, `heads` the `num_heads` heads stacked
/// `[N * r, d_output]`, `compensation` the pair `(A0, Bbar0)` if the layer
/// has one. This is the one place the merge math lives: [`RLoraLinear::merge`]
/// and the whole-model merge of the checkpoint module both call it.
pub(crate) fn merged_weight_delta<B: Backend>(
    a: Tensor<B, 2>,
    heads: Tensor<B, 2>,
    num_heads: usize,
    compensation: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    scaling: f64,
) -> Tensor<B, 2> {
    let delta = a.matmul(mean_head(heads, num_heads)).mul_scalar(scaling);
    match compensation {
        Some((a0, b0)) => delta + compensation_delta(a0, b0, scaling),
        None => delta,
    }
}

impl<B: Backend> RLoraLinear<B> {
    fn with_weight_delta(weight: &Param<Tensor<B, 2>>, delta: Tensor<B, 2>) -> Param<Tensor<B, 2>> {
        // Keep the base's mappers (e.g. `LinearLayout::Col`) but give the new weight its own id.
        let (_, w, mapper) = weight.clone().consume();
        // A base stored in a lower precision than the adapter
        // (`with_base_dtype`) is summed in the adapter's and stored back in its own.
        let (base, adapter) = (w.dtype(), delta.dtype());
        let merged = if base == adapter {
            w + delta
        } else {
            (w.cast(FloatDType::from(adapter)) + delta).cast(FloatDType::from(base))
        };
        let merged = merged.detach().set_require_grad(false);
        Param::from_mapped_value(ParamId::new(), merged, mapper)
    }

    /// Fold the adapter's frozen compensation pair into the base weight:
    /// `W <- W - s * A0 Bbar0`, and drop the pair.
    ///
    /// The layer computes the same function afterwards (to float rounding) and
    /// saves a little work per token. Useful for inference; a folded layer can
    /// no longer load an adapter checkpoint that expects the pair. A layer
    /// without the pair (or without an adapter) is returned unchanged.
    pub fn fold_compensation(self) -> Self {
        let Some(adapter) = self.adapter else {
            return self;
        };
        let Some((a0, b0)) = adapter.compensation_pair() else {
            return Self {
                adapter: Some(adapter),
                ..self
            };
        };
        let delta = compensation_delta(a0, b0, adapter.scaling());
        Self {
            weight: Self::with_weight_delta(&self.weight, delta),
            bias: self.bias,
            adapter: Some(RLoraAdapter {
                lora_a0: None,
                lora_b0: None,
                ..adapter
            }),
        }
    }

    /// Merge the adapter into a plain [`Linear`], when that is exact.
    ///
    /// That holds when the head weights do not depend on the input: one head,
    /// or the uniform router. Then `W' = W + s * A * mean_i(B_i) - s * A0 Bbar0`.
    /// The merged weight keeps the base's layout and is frozen, like the base.
    /// A plain layer merges to its base.
    ///
    /// # Errors
    ///
    /// [`RLoraError::NotMergeable`] for a softmax router: the weights `g(x)`
    /// change with every token, so no single matrix equals the layer.
    pub fn merge(&self) -> Result<Linear<B>, RLoraError> {
        let Some(adapter) = &self.adapter else {
            return Ok(self.base());
        };
        if adapter.config().router == RouterKind::Softmax {
            return Err(RLoraError::NotMergeable {
                reason: format!(
                    "the layer has a softmax router over {} heads, so the head weights depend on \
                     the input and no single weight matrix reproduces it; use a uniform router \
                     (or one head) to merge, or keep the adapter at inference",
                    adapter.num_heads()
                ),
            });
        }
        let delta = merged_weight_delta(
            adapter.lora_a.val(),
            adapter.lora_b.val(),
            adapter.num_heads(),
            adapter.compensation_pair(),
            adapter.scaling(),
        );
        Ok(Linear {
            weight: Self::with_weight_delta(&self.weight, delta),
            bias: self.bias.clone(),
        })
    }
}
