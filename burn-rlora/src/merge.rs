//! Folding the adapter into the base weights, where that is exact.

use burn::module::{Param, ParamId};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::config::RouterKind;
use crate::error::RLoraError;
use crate::layer::{mean_head, RLoraLinear};

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
    /// The layer's compensation pair `(A0, Bbar0)`, if it has one.
    fn compensation_pair(&self) -> Option<(Tensor<B, 2>, Tensor<B, 2>)> {
        match (&self.lora_a0, &self.lora_b0) {
            (Some(a0), Some(b0)) => Some((a0.val(), b0.val())),
            _ => None,
        }
    }

    fn with_weight_delta(weight: &Param<Tensor<B, 2>>, delta: Tensor<B, 2>) -> Param<Tensor<B, 2>> {
        // Keep the base's mappers (e.g. `LinearLayout::Col`) but give the new weight its own id.
        let (_, w, mapper) = weight.clone().consume();
        let merged = (w + delta).detach().set_require_grad(false);
        Param::from_mapped_value(ParamId::new(), merged, mapper)
    }

    /// Fold the frozen compensation pair into the base weight:
    /// `W <- W - s * A0 Bbar0`, and drop the pair.
    ///
    /// The layer computes the same function afterwards (to float rounding) and
    /// saves a little work per token. Useful for inference; a folded layer can
    /// no longer load an adapter checkpoint that expects the pair.
    pub fn fold_compensation(self) -> Self {
        let Some((a0, b0)) = self.compensation_pair() else {
            return self;
        };
        let delta = compensation_delta(a0, b0, self.scaling());
        Self {
            weight: Self::with_weight_delta(&self.weight, delta),
            lora_a0: None,
            lora_b0: None,
            ..self
        }
    }

    /// Merge the adapter into a plain [`Linear`], when that is exact.
    ///
    /// That holds when the head weights do not depend on the input: one head,
    /// or the uniform router. Then `W' = W + s * A * mean_i(B_i) - s * A0 Bbar0`.
    /// The merged weight keeps the base's layout and is frozen, like the base.
    ///
    /// # Errors
    ///
    /// [`RLoraError::NotMergeable`] for a softmax router: the weights `g(x)`
    /// change with every token, so no single matrix equals the layer.
    pub fn merge(&self) -> Result<Linear<B>, RLoraError> {
        if self.config().router == RouterKind::Softmax {
            return Err(RLoraError::NotMergeable {
                reason: format!(
                    "the layer has a softmax router over {} heads, so the head weights depend on \
                     the input and no single weight matrix reproduces it; use a uniform router \
                     (or one head) to merge, or keep the adapter at inference",
                    self.num_heads()
                ),
            });
        }
        let delta = merged_weight_delta(
            self.lora_a.val(),
            self.lora_b.val(),
            self.num_heads(),
            self.compensation_pair(),
            self.scaling(),
        );
        Ok(Linear {
            weight: Self::with_weight_delta(&self.weight, delta),
            bias: self.bias.clone(),
        })
    }
}
