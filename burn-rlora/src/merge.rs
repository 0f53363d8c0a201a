//! Folding the adapter into the base weights, where that is exact.

use burn::module::{Param, ParamId};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::config::RouterKind;
use crate::error::RLoraError;
use crate::layer::RLoraLinear;

/// The mean of `n` stacked heads: `heads` is `[n * r, d_output]` (rows
/// `i*r..(i+1)*r` are head `i`), the result `mean_i B_i`, `[r, d_output]`.
pub(crate) fn mean_head<B: Backend>(heads: Tensor<B, 2>, n: usize) -> Tensor<B, 2> {
    let [rows, d_output] = heads.dims();
    let r = rows / n;
    heads
        .reshape([n, r, d_output])
        .mean_dim(0)
        .reshape([r, d_output])
}

impl<B: Backend> RLoraLinear<B> {
    /// The change the compensation pair makes to the base weight: `-s * A0 Bbar0`,
    /// in Burn's layout `[d_input, d_output]`.
    fn compensation_delta(&self) -> Option<Tensor<B, 2>> {
        match (&self.lora_a0, &self.lora_b0) {
            (Some(a0), Some(b0)) => Some(a0.val().matmul(b0.val()).mul_scalar(-self.scaling())),
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
        let Some(delta) = self.compensation_delta() else {
            return self;
        };
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
        let mut delta = self
            .lora_a
            .val()
            .matmul(mean_head(self.lora_b.val(), self.num_heads()))
            .mul_scalar(self.scaling());
        if let Some(comp) = self.compensation_delta() {
            delta = delta + comp;
        }
        Ok(Linear {
            weight: Self::with_weight_delta(&self.weight, delta),
            bias: self.bias.clone(),
        })
    }
}
