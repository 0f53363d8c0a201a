//! [`RLoraLinear`]: a linear layer that carries an optional adapter; its
//! construction, adaptation and forward pass.

use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::module::linear;
use burn::tensor::{DType, FloatDType, Tensor};

use crate::adapter::RLoraAdapter;
use crate::config::{RLoraConfig, RouterKind};
use crate::error::RLoraError;

/// A drop-in replacement for [`burn::nn::Linear`] that may carry a
/// multi-head low-rank adapter ([`RLoraAdapter`]).
///
/// Without an adapter the layer is a `Linear`: the same `weight` and `bias`
/// under the same names and in the same layout (`[d_input, d_output]`), so a
/// plain pretrained checkpoint loads into it unchanged and it computes
/// `W x + b`. Declare a model's layers with this type, and adapt them one by
/// one ([`from_linear`](Self::from_linear), [`adapt`](Self::adapt)) or by
/// target names ([`AdaptConfig`](crate::AdaptConfig)). With an adapter it computes
///
/// ```text
/// z = A x                      (r values, computed once)
/// g = softmax(W_r x)           (N weights; 1/N each without a router)
/// y = W x + b + s * sum_i g_i * B_i(Dropout_i(z)) - s * Bbar0 (A0 x)
/// ```
///
/// * `weight` and `bias` are the base; adapting freezes them (they never get
///   a gradient).
/// * `adapter` holds `A` (`lora_a`, `[d_input, r]`), the `N` stacked heads
///   (`lora_b`, `[N * r, d_output]`), the router (`lora_route`,
///   `[d_input, N]`, absent without a router) and the frozen compensation
///   pair (`lora_a0`, `lora_b0`): a copy of the initial `A` and the mean of
///   the initial heads, which make the output at step 0 equal to the base's
///   exactly; they are absent when the heads start at zero.
///
/// One type for both states, rather than an enum of `Linear` and an adapted
/// layer: a model's field keeps one type whatever its state, the base keeps
/// its path (`dense.weight`) and the adapter has one (`dense.adapter.lora_a`)
/// in every Burn record and store, and model-wide operations find adapted
/// layers by type ([`Adapt`](crate::Adapt)).
///
/// # Example
///
/// ```
/// use burn::backend::NdArray;
/// use burn::nn::LinearConfig;
/// use burn::tensor::Tensor;
/// use burn_rlora::{RLoraConfig, RLoraLinear};
///
/// let device = Default::default();
/// let base = LinearConfig::new(16, 8).init::<NdArray>(&device);
/// let x = Tensor::<NdArray, 3>::ones([2, 3, 16], &device);
/// let expected = base.forward(x.clone());
///
/// let layer = RLoraLinear::from_linear(base, &RLoraConfig::r_lora(4, 32.0, 3)).unwrap();
/// assert!(layer.is_adapted());
/// let y = layer.forward(x);
/// assert_eq!(y.dims(), [2, 3, 8]);
/// // At init the adapted layer computes exactly what the base did.
/// y.into_data().assert_approx_eq::<f32>(&expected.into_data(), burn::tensor::Tolerance::default());
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct RLoraLinear<B: Backend> {
    /// Base weight, `[d_input, d_output]` (same name and layout as
    /// `Linear::weight`); frozen once adapted.
    pub weight: Param<Tensor<B, 2>>,
    /// Base bias, `[d_output]`; frozen once adapted.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The adapter; `None` for a plain layer.
    pub adapter: Option<RLoraAdapter<B>>,
}

/// The output of [`RLoraLinear::forward_with_routing`].
#[derive(Debug, Clone)]
pub struct RoutedOutput<B: Backend, const D: usize> {
    /// The layer's output, `[..., d_output]`.
    pub output: Tensor<B, D>,
    /// The router weights per token, `[..., N]`, summing to 1 over the last
    /// dimension; `None` for a uniform router.
    pub gates: Option<Tensor<B, D>>,
}

impl RLoraConfig {
    /// Build an adapted layer on top of `base`. Same as [`RLoraLinear::from_linear`].
    ///
    /// # Errors
    ///
    /// As [`RLoraLinear::from_linear`].
    pub fn init<B: Backend>(&self, base: Linear<B>) -> Result<RLoraLinear<B>, RLoraError> {
        RLoraLinear::from_linear(base, self)
    }
}

/// The parameter with its values drawn, if it was still lazily initialized,
/// so that clones of the layer share one set of values.
fn materialize<B: Backend, const D: usize>(p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
    let _drawn: Tensor<B, D> = p.val();
    p
}

impl<B: Backend> From<Linear<B>> for RLoraLinear<B> {
    /// The plain layer: `linear`'s parameters as they are, no adapter.
    fn from(linear: Linear<B>) -> Self {
        Self {
            weight: linear.weight,
            bias: linear.bias,
            adapter: None,
        }
    }
}

impl<B: Backend> RLoraLinear<B> {
    /// Wrap a (trained) `Linear` in an adapter described by `config`: the
    /// same as `RLoraLinear::from(base).adapt(config)`.
    ///
    /// # Errors
    ///
    /// Any [`RLoraError`] from [`RLoraConfig::validate`] for the base's shape.
    pub fn from_linear(base: Linear<B>, config: &RLoraConfig) -> Result<Self, RLoraError> {
        Self::from(base).adapt(config)
    }

    /// Puts an adapter described by `config` on the plain layer.
    ///
    /// The base's parameters are kept as they are (layout, mappers, ids),
    /// frozen, and initialized if they were still lazy. The adapter's
    /// matrices are drawn on the base's device with the backend's seeded RNG
    /// (`B::seed`).
    ///
    /// # Errors
    ///
    /// Any [`RLoraError`] from [`RLoraConfig::validate`] for the base's
    /// shape; [`RLoraError::AlreadyAdapted`] (with an empty path: the layer
    /// itself) if the layer carries an adapter already.
    pub fn adapt(self, config: &RLoraConfig) -> Result<Self, RLoraError> {
        if self.adapter.is_some() {
            return Err(RLoraError::AlreadyAdapted {
                path: String::new(),
            });
        }
        // Materialize a lazily initialized base first: a clone of an uninitialized
        // `Param` draws its values again (so clones of the model would disagree),
        // and a lazy `LinearLayout::Col` weight reports its pre-transpose shape.
        let lazy = self.weight.lazy_shape();
        if lazy.num_elements() == 0 {
            // Drawing an empty layer's Kaiming init would divide by zero inside
            // Burn; the rank check rejects it without touching the values.
            let [rows, cols] = lazy.dims();
            config.validate(rows, cols)?;
        }
        let weight = self.weight.set_require_grad(false);
        let bias = self.bias.map(|b| b.set_require_grad(false));
        // Reading a lazy `Param` draws its values once and keeps them: the
        // weight through `dims` here, the bias through `materialize`.
        let [d_input, d_output] = weight.val().dims();
        let bias = bias.map(materialize);
        let adapter = RLoraAdapter::new(config, d_input, d_output, &weight.device())?;
        Ok(Self {
            weight,
            bias,
            adapter: Some(adapter),
        })
    }

    /// The base as a plain [`Linear`] (sharing its tensors), without the adapter.
    pub fn base(&self) -> Linear<B> {
        Linear {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
        }
    }

    /// The layer with its base (`weight` and `bias`) stored as `dtype`, for
    /// example [`FloatDType::BF16`] or [`FloatDType::F16`] to halve the
    /// memory of a frozen pretrained model on a GPU. The adapter keeps its
    /// own precision (the backend's float type), and so do the layer's
    /// inputs and outputs: the base product casts the input to `dtype`, runs
    /// in `dtype`, and casts its result back, so the layer still takes and
    /// returns the input's type. Whether the base trains is left as it was
    /// (an adapted layer's base stays frozen). Call it before or after
    /// adapting; [`merge`](Self::merge) keeps the base's `dtype`.
    ///
    /// # Errors
    ///
    /// [`RLoraError::UnsupportedDtype`] when the backend cannot compute in
    /// `dtype` on the layer's device (`Backend::supports_dtype`: ndarray
    /// holds only `f32` and `f64`; flex, CUDA and wgpu with shader `f16`
    /// hold `F16`). The layer is dropped then: ask `B::supports_dtype`
    /// first to keep it.
    ///
    /// # Example
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use burn::nn::LinearConfig;
    /// use burn::tensor::{DType, FloatDType, Tensor};
    /// use burn_rlora::{RLoraConfig, RLoraLinear};
    ///
    /// let device = Default::default();
    /// let base = LinearConfig::new(16, 8).init::<Flex>(&device);
    /// let layer = RLoraLinear::from_linear(base, &RLoraConfig::r_lora(4, 32.0, 3))?
    ///     .with_base_dtype(FloatDType::BF16)?;
    /// assert_eq!(layer.weight.val().dtype(), DType::BF16);
    /// let y = layer.forward(Tensor::<Flex, 2>::ones([2, 16], &device));
    /// assert_eq!(y.dtype(), DType::F32);
    /// # Ok::<(), burn_rlora::RLoraError>(())
    /// ```
    pub fn with_base_dtype(self, dtype: FloatDType) -> Result<Self, RLoraError> {
        if !B::supports_dtype(&self.weight.device(), DType::from(dtype)) {
            return Err(RLoraError::UnsupportedDtype { dtype });
        }
        Ok(Self {
            weight: self.weight.map(|w| w.cast(dtype)),
            bias: self.bias.map(|b| b.map(|b| b.cast(dtype))),
            adapter: self.adapter,
        })
    }

    /// `W x + b` for `[tokens, d_input]` rows, in the base's precision and
    /// returned in the input's.
    fn base_rows(&self, rows: Tensor<B, 2>) -> Tensor<B, 2> {
        let weight = self.weight.val();
        let bias = self.bias.as_ref().map(|b| b.val());
        let (input, base) = (rows.dtype(), weight.dtype());
        if input == base {
            return linear(rows, weight, bias);
        }
        linear(rows.cast(FloatDType::from(base)), weight, bias).cast(FloatDType::from(input))
    }

    /// The adapter, if the layer carries one.
    pub fn adapter(&self) -> Option<&RLoraAdapter<B>> {
        self.adapter.as_ref()
    }

    /// Whether the layer carries an adapter.
    pub fn is_adapted(&self) -> bool {
        self.adapter.is_some()
    }

    /// The config of the layer's adapter; `None` for a plain layer.
    pub fn config(&self) -> Option<&RLoraConfig> {
        self.adapter.as_ref().map(RLoraAdapter::config)
    }

    /// Set the adapter's dropout probability, e.g. to turn dropout off for a
    /// deterministic training step. Everything else stays as it is; a plain
    /// layer has no dropout to set and is left unchanged. (Build-time
    /// dropout is [`RLoraConfig::with_dropout`], checked when the layer is
    /// built.)
    ///
    /// # Errors
    ///
    /// [`RLoraError::InvalidDropout`] unless `0 <= dropout < 1`; the layer is
    /// then unchanged.
    pub fn set_dropout(&mut self, dropout: f64) -> Result<(), RLoraError> {
        RLoraConfig::check_dropout(dropout)?;
        if let Some(adapter) = &mut self.adapter {
            adapter.set_dropout(dropout)?;
        }
        Ok(())
    }

    /// Input features.
    pub fn d_input(&self) -> usize {
        self.weight.shape().dims::<2>()[0]
    }

    /// Output features.
    pub fn d_output(&self) -> usize {
        self.weight.shape().dims::<2>()[1]
    }

    /// The number of trainable numbers of the adapter (`A`, the heads and the
    /// router); 0 for a plain layer.
    pub fn num_adapter_params(&self) -> usize {
        self.adapter.as_ref().map_or(0, RLoraAdapter::num_params)
    }

    /// Applies the layer to `[..., d_input]` and returns `[..., d_output]`,
    /// exactly like [`Linear::forward`].
    ///
    /// # Shapes
    ///
    /// - input: `[..., d_input]`
    /// - output: `[..., d_output]`
    ///
    /// # Panics
    ///
    /// If the last dimension of `input` is not `d_input`, as `Linear` does;
    /// [`try_forward`](Self::try_forward) returns an error instead.
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        self.forward_with_routing(input).output
    }

    /// Like [`forward`](Self::forward), but returns an error instead of
    /// panicking when the input's last dimension is not `d_input`.
    ///
    /// # Errors
    ///
    /// [`RLoraError::ShapeMismatch`] for an input whose last dimension is not `d_input`.
    pub fn try_forward<const D: usize>(
        &self,
        input: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, RLoraError> {
        self.check_input(&input)?;
        Ok(self.forward(input))
    }

    /// Applies the layer and also returns the router's weights per token,
    /// for a load-balance loss ([`load_balance_loss`](crate::load_balance_loss))
    /// or diagnostics ([`RouterStats`](crate::RouterStats)); `gates` is
    /// `None` for a plain layer or one without a router.
    ///
    /// # Shapes
    ///
    /// - input: `[..., d_input]`
    /// - output: `[..., d_output]`, gates `[..., N]`
    ///
    /// # Panics
    ///
    /// If the last dimension of `input` is not `d_input`.
    pub fn forward_with_routing<const D: usize>(&self, input: Tensor<B, D>) -> RoutedOutput<B, D> {
        if let Err(e) = self.check_input(&input) {
            panic!("RLoraLinear::forward: {e}");
        }
        let dims = input.dims();
        let d_input = dims[D - 1];
        let tokens = dims[..D - 1].iter().product::<usize>();
        let rows = input.reshape([tokens, d_input]);
        let base = self.base_rows(rows.clone());
        let (out, gates) = match &self.adapter {
            Some(adapter) => {
                let (delta, gates) = adapter.forward_rows(rows);
                (base + delta, gates)
            }
            None => (base, None),
        };
        let mut out_shape = dims;
        out_shape[D - 1] = self.d_output();
        let gates = gates.map(|g| {
            let mut g_shape = dims;
            g_shape[D - 1] = g.dims()[1];
            g.reshape(g_shape)
        });
        RoutedOutput {
            output: out.reshape(out_shape),
            gates,
        }
    }

    fn check_input<const D: usize>(&self, input: &Tensor<B, D>) -> Result<(), RLoraError> {
        let dims = input.dims();
        let d_input = self.d_input();
        if D == 0 || dims[D - 1] != d_input {
            return Err(RLoraError::ShapeMismatch {
                what: "RLoraLinear input".into(),
                expected: format!("[..., {d_input}]"),
                found: format!("{dims:?}"),
            });
        }
        Ok(())
    }
}

impl<B: Backend> ModuleDisplay for RLoraLinear<B> {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let content = content
            .add("d_input", &self.d_input())
            .add("d_output", &self.d_output());
        let Some(adapter) = &self.adapter else {
            return content.add("adapter", &"none".to_string()).optional();
        };
        let config = adapter.config();
        let router = match config.router {
            RouterKind::Softmax => "softmax",
            RouterKind::Uniform => "uniform",
        };
        content
            .add("rank", &config.rank)
            .add("heads", &config.num_heads)
            .add("router", &router.to_string())
            .add("dropout", &config.dropout)
            .add("trainable", &adapter.num_params())
            .optional()
    }
}
