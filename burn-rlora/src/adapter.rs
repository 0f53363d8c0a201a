//! [`RLoraAdapter`]: the multi-head low-rank adapter of one layer, its
//! initialization and the change it makes to the layer's output.

use burn::module::{Module, Param};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, FloatDType, Tensor};

use crate::config::{DropoutMode, RLoraConfig, RouterKind};
use crate::error::RLoraError;
use crate::init::{InitScheme, Matrix};

/// The adapter an [`RLoraLinear`](crate::RLoraLinear) carries: a shared
/// down-projection `A`, `N` heads `B_i`, an optional router `W_r`, and the
/// optional frozen compensation pair `(A0, Bbar0)`.
///
/// For an input row `x` it adds to the base's output
///
/// ```text
/// z = A x                      (r values, computed once)
/// g = softmax(W_r x)           (N weights; 1/N each without a router)
/// delta = s * sum_i g_i * B_i(Dropout_i(z)) - s * Bbar0 (A0 x)
/// ```
///
/// All heads are applied with one matrix product: the gate-scaled, dropped
/// copies of `z` are laid side by side (`tokens x N*r`) and multiplied by the
/// stacked heads. Dropout is active when the backend records gradients
/// (`B::ad_enabled`), like [`burn::nn::Dropout`].
///
/// The tensors are in Burn's layout (`[d_input, ...]`, the transpose of
/// PyTorch's); the adapter files of [`checkpoint`](crate::checkpoint) store
/// them under the reference's names and layout.
#[derive(Module, Debug)]
pub struct RLoraAdapter<B: Backend> {
    /// Shared down-projection `A`, `[d_input, r]`.
    pub lora_a: Param<Tensor<B, 2>>,
    /// The heads, stacked: `[N * r, d_output]`; rows `i*r..(i+1)*r` are head
    /// `i` (the transpose of PyTorch's `lora_B{i}.weight`).
    pub lora_b: Param<Tensor<B, 2>>,
    /// Router weights `W_r`, `[d_input, N]`; `None` for uniform weighting.
    pub lora_route: Option<Param<Tensor<B, 2>>>,
    /// Frozen copy of the initial `A`, `[d_input, r]`.
    pub lora_a0: Option<Param<Tensor<B, 2>>>,
    /// Frozen mean of the initial heads, `[r, d_output]`.
    pub lora_b0: Option<Param<Tensor<B, 2>>>,
    #[module(skip)]
    pub(crate) config: RLoraConfig,
}

fn frozen<B: Backend, const D: usize>(t: Tensor<B, D>) -> Param<Tensor<B, D>> {
    Param::from_tensor(t).set_require_grad(false)
}

impl<B: Backend> RLoraAdapter<B> {
    /// Draws a fresh adapter for a `d_input -> d_output` layer on `device`,
    /// with the backend's seeded RNG (`B::seed`).
    ///
    /// # Errors
    ///
    /// Any [`RLoraError`] from [`RLoraConfig::validate`] for that shape.
    pub fn new(
        config: &RLoraConfig,
        d_input: usize,
        d_output: usize,
        device: &B::Device,
    ) -> Result<Self, RLoraError> {
        config.validate(d_input, d_output)?;
        let (r, n) = (config.rank, config.num_heads);
        let dims = (d_input, d_output);
        let factor_for = |scheme: &InitScheme| {
            if scheme.is_zero() {
                1.0
            } else {
                config.init_factor(d_output)
            }
        };
        let a = config.init_a.draw::<B>(
            Matrix::A,
            (r, d_input),
            dims,
            factor_for(&config.init_a),
            device,
        );
        let b_factor = factor_for(&config.init_b);
        let heads = if config.init_b == InitScheme::Orthogonal {
            // One joint draw, so that the heads are mutually orthogonal as well.
            config
                .init_b
                .draw::<B>(Matrix::B, (d_output, n * r), dims, b_factor, device)
        } else {
            let each: Vec<Tensor<B, 2>> = (0..n)
                .map(|_| {
                    config
                        .init_b
                        .draw::<B>(Matrix::B, (d_output, r), dims, b_factor, device)
                })
                .collect();
            Tensor::cat(each, 0)
        };
        let route = match config.router {
            RouterKind::Softmax => Some(config.resolved_router_init().draw::<B>(
                Matrix::Router,
                (n, d_input),
                dims,
                1.0,
                device,
            )),
            RouterKind::Uniform => None,
        };
        let (a0, b0) = if config.needs_compensation() {
            let b0 = mean_head(heads.clone(), n);
            (Some(frozen(a.clone())), Some(frozen(b0)))
        } else {
            (None, None)
        };
        Ok(Self {
            lora_a: Param::from_tensor(a),
            lora_b: Param::from_tensor(heads),
            lora_route: route.map(Param::from_tensor),
            lora_a0: a0,
            lora_b0: b0,
            config: config.clone(),
        })
    }

    /// The config this adapter was built with.
    pub fn config(&self) -> &RLoraConfig {
        &self.config
    }

    /// Set the dropout probability, e.g. to turn dropout off for a
    /// deterministic training step. Everything else stays as it is.
    ///
    /// # Errors
    ///
    /// [`RLoraError::InvalidDropout`] unless `0 <= dropout < 1`; the adapter
    /// is then unchanged.
    pub fn set_dropout(&mut self, dropout: f64) -> Result<(), RLoraError> {
        RLoraConfig::check_dropout(dropout)?;
        self.config.dropout = dropout;
        Ok(())
    }

    /// Input features.
    pub fn d_input(&self) -> usize {
        self.lora_a.shape().dims::<2>()[0]
    }

    /// Output features.
    pub fn d_output(&self) -> usize {
        self.lora_b.shape().dims::<2>()[1]
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.config.rank
    }

    /// The number of heads `N`.
    pub fn num_heads(&self) -> usize {
        self.config.num_heads
    }

    /// The scaling `s` of the adapter's output.
    pub fn scaling(&self) -> f64 {
        self.config.scaling()
    }

    /// The number of trainable numbers: `A`, the heads and the router.
    pub fn num_params(&self) -> usize {
        let (r, n) = (self.config.rank, self.config.num_heads);
        let router = if self.lora_route.is_some() {
            self.d_input() * n
        } else {
            0
        };
        self.d_input() * r + n * r * self.d_output() + router
    }

    /// True when the adapter stores (and subtracts) the compensation pair.
    pub fn has_compensation(&self) -> bool {
        self.lora_a0.is_some()
    }

    /// Head `i` in PyTorch layout, `[d_output, r]` (the reference's `lora_B{i}.weight`).
    ///
    /// Returns `None` when `i >= N`.
    pub fn head(&self, i: usize) -> Option<Tensor<B, 2>> {
        let r = self.config.rank;
        (i < self.config.num_heads).then(|| self.lora_b.val().narrow(0, i * r, r).transpose())
    }

    /// The compensation pair `(A0, Bbar0)`, if the adapter has one.
    pub(crate) fn compensation_pair(&self) -> Option<(Tensor<B, 2>, Tensor<B, 2>)> {
        match (&self.lora_a0, &self.lora_b0) {
            (Some(a0), Some(b0)) => Some((a0.val(), b0.val())),
            _ => None,
        }
    }

    /// The adapter's change to the output on rows `x` `[T, d_input]`:
    /// returns `delta` `[T, d_output]` and the router's weights `[T, N]`.
    pub(crate) fn forward_rows(&self, x: Tensor<B, 2>) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
        let cfg = &self.config;
        let training = cfg.dropout > 0.0 && B::ad_enabled(&x.device());
        let keep = 1.0 - cfg.dropout;
        let input_dropout = training && cfg.dropout_mode == DropoutMode::Input;
        let head_dropout = training && cfg.dropout_mode == DropoutMode::PerHead;

        let clean = self.project_clean(x.clone(), !input_dropout);
        let z = match clean.z {
            Some(z) => z,
            // One mask on x, shared by all heads; 1/keep is folded into the gate scale.
            None => drop_out(x, keep).matmul(self.lora_a.val()),
        };
        let gates = clean.logits.map(routing_softmax);

        let s = cfg.scaling();
        let gate_scale = if training { s / keep } else { s };
        let mut act = self.mix_heads(z, gates.as_ref(), gate_scale);
        if head_dropout {
            // Multi-head dropout: every head its own mask on z.
            act = drop_out(act, keep);
        }
        (self.apply_heads(act, clean.z0), gates)
    }

    /// Projects the clean input `x` `[T, d_input]` onto every matrix that reads
    /// it, with one product `x [A | W_r | A0]`, and splits the result into
    /// `z = x A` `[T, r]` (only when `with_a`: input dropout reads a masked `x`
    /// instead), the router logits `x W_r` `[T, N]` and `z0 = x A0` `[T, r]`,
    /// each present when its matrix is.
    fn project_clean(&self, x: Tensor<B, 2>, with_a: bool) -> CleanProjection<B> {
        let (r, n) = (self.config.rank, self.config.num_heads);
        let blocks = [
            (with_a.then(|| self.lora_a.val()), r),
            (self.lora_route.as_ref().map(|p| p.val()), n),
            (self.lora_a0.as_ref().map(|p| p.val()), r),
        ];
        let widths = blocks
            .each_ref()
            .map(|(m, width)| m.is_some().then_some(*width));
        let mut parts: Vec<Tensor<B, 2>> = blocks.into_iter().filter_map(|(m, _)| m).collect();
        let proj = match parts.len() {
            0 => None,
            1 => Some(x.matmul(parts.pop().expect("one part"))),
            _ => Some(x.matmul(Tensor::cat(parts, 1))),
        };
        let [z, logits, z0] = split_columns(proj, widths);
        CleanProjection { z, logits, z0 }
    }

    /// Lays the shared activations `z` `[T, r]` out as the heads' input
    /// `[T, N * r]`: block `i` is `gate_scale * g_i * z` with the router's
    /// weights `gates` `[T, N]`, or `gate_scale / N * z` without a router
    /// (`g_i B_i z = B_i (g_i z)`, so gating before the heads is exact).
    fn mix_heads(
        &self,
        z: Tensor<B, 2>,
        gates: Option<&Tensor<B, 2>>,
        gate_scale: f64,
    ) -> Tensor<B, 2> {
        let (r, n) = (self.config.rank, self.config.num_heads);
        let [tokens, _] = z.dims();
        // Both factors are laid out as contiguous [T, N*r] before the product:
        // a broadcasting [T, 1, r] x [T, N, 1] product (and its backward) runs
        // on a slow strided path on the CPU backends.
        match gates {
            Some(g) => {
                let z = z.unsqueeze_dim::<3>(1).repeat_dim(1, n);
                let g = g
                    .clone()
                    .mul_scalar(gate_scale)
                    .unsqueeze_dim::<3>(2)
                    .expand([tokens, n, r]);
                z.reshape([tokens, n * r]) * g.reshape([tokens, n * r])
            }
            None => z
                .mul_scalar(gate_scale / n as f64)
                .unsqueeze_dim::<3>(1)
                .repeat_dim(1, n)
                .reshape([tokens, n * r]),
        }
    }

    /// The adapter's output `[T, d_output]`: the heads' input `act` `[T, N * r]`
    /// times the stacked heads `[N * r, d_output]`, minus `s * Bbar0 z0` for the
    /// compensation pair, folded into the same product.
    fn apply_heads(&self, act: Tensor<B, 2>, z0: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        match (&self.lora_b0, z0) {
            (Some(b0), Some(z0)) => {
                let act = Tensor::cat(vec![act, z0.mul_scalar(-self.config.scaling())], 1);
                act.matmul(Tensor::cat(vec![self.lora_b.val(), b0.val()], 0))
            }
            _ => act.matmul(self.lora_b.val()),
        }
    }
}

/// The products of the clean input, split by [`RLoraAdapter::project_clean`].
struct CleanProjection<B: Backend> {
    /// `x A`, `[T, r]`.
    z: Option<Tensor<B, 2>>,
    /// The router's logits `x W_r`, `[T, N]`.
    logits: Option<Tensor<B, 2>>,
    /// `x A0`, `[T, r]`.
    z0: Option<Tensor<B, 2>>,
}

/// Splits the columns of `t` into consecutive blocks of the given widths, in
/// order; a block without a width is absent (and takes no columns).
fn split_columns<B: Backend, const K: usize>(
    t: Option<Tensor<B, 2>>,
    widths: [Option<usize>; K],
) -> [Option<Tensor<B, 2>>; K] {
    let mut offset = 0;
    widths.map(|width| {
        let width = width?;
        let block = t
            .clone()
            .expect("the product holds every block with a width")
            .narrow(1, offset, width);
        offset += width;
        Some(block)
    })
}

/// Zero each element with probability `1 - keep` (no rescaling: the caller
/// folds `1/keep` into a scale). A uniform draw compared with `keep` is about
/// twice as fast on the CPU backends as a Bernoulli draw and a product
/// (`breakdown --layouts` in the benches), and the backward keeps a boolean mask.
fn drop_out<B: Backend, const D: usize>(t: Tensor<B, D>, keep: f64) -> Tensor<B, D> {
    let dropped = t
        .random_like(Distribution::Default)
        .greater_equal_elem(keep);
    t.mask_fill(dropped, 0.0)
}

/// Softmax over the last dimension, computed in f32 for half-precision inputs.
fn routing_softmax<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 2> {
    match logits.dtype() {
        DType::F16 | DType::BF16 => {
            let dtype = logits.dtype();
            let g = softmax(logits.cast(FloatDType::F32), 1);
            match dtype {
                DType::F16 => g.cast(FloatDType::F16),
                _ => g.cast(FloatDType::BF16),
            }
        }
        _ => softmax(logits, 1),
    }
}

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
