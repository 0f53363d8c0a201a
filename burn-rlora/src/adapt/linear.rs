//! [`AdaptableLinear`]: a model field that is a plain `Linear` until adapted.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::{RLoraConfig, RLoraError, RLoraLinear, RoutedOutput};

/// A linear layer that is a plain [`Linear`] until it is adapted, then an
/// [`RLoraLinear`] on the same base.
///
/// Declare the layers that may carry an adapter with this type instead of
/// `Linear<B>`; the model then loads a plain pretrained checkpoint unchanged
/// (both variants keep the base under the names `weight` and `bias`), and
/// [`AdaptConfig::adapt`](crate::AdaptConfig::adapt) adapts the layers whose
/// paths match the target names. One layer can also be adapted by hand with
/// [`adapt`](Self::adapt).
///
/// In a burn-store path the variant appears (`dense.Plain.weight`): load
/// a PyTorch or safetensors file of the plain model with
/// `skip_enum_variants(true)`. The adapter checkpoints of
/// [`checkpoint`](crate::checkpoint) name the layer without the variant
/// (`dense`), as the reference PEFT code does.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::nn::LinearConfig;
/// use burn::tensor::Tensor;
/// use burn_rlora::{AdaptableLinear, RLoraConfig};
///
/// let device = Default::default();
/// let layer: AdaptableLinear<NdArray> = LinearConfig::new(8, 4).init(&device).into();
/// let x = Tensor::<NdArray, 2>::ones([2, 8], &device);
/// let plain = layer.forward(x.clone());
/// assert!(!layer.is_adapted());
///
/// // R-LoRA starts at the base's output (in eval mode, up to rounding).
/// let layer = layer.adapt(&RLoraConfig::r_lora(2, 16.0, 3))?;
/// assert!(layer.is_adapted());
/// let tolerance = burn::tensor::Tolerance::<f32>::absolute(1e-5);
/// layer.forward(x).into_data().assert_approx_eq::<f32>(&plain.into_data(), tolerance);
/// # Ok::<(), burn_rlora::RLoraError>(())
/// ```
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum AdaptableLinear<B: Backend> {
    /// The plain layer.
    Plain(Linear<B>),
    /// The layer with a multi-head adapter.
    Adapted(RLoraLinear<B>),
}

impl<B: Backend> AdaptableLinear<B> {
    /// Applies the layer, plain or adapted.
    ///
    /// # Shapes
    ///
    /// - input: `[..., d_input]`
    /// - output: `[..., d_output]`
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Plain(l) => l.forward(input),
            Self::Adapted(l) => l.forward(input),
        }
    }

    /// Like [`forward`](Self::forward), and also returns the router's
    /// weights per token when the layer is adapted with a router
    /// ([`RLoraLinear::forward_with_routing`]); `gates` is `None` for a plain
    /// layer.
    pub fn forward_with_routing<const D: usize>(&self, input: Tensor<B, D>) -> RoutedOutput<B, D> {
        match self {
            Self::Plain(l) => RoutedOutput {
                output: l.forward(input),
                gates: None,
            },
            Self::Adapted(l) => l.forward_with_routing(input),
        }
    }

    /// Whether the layer carries an adapter.
    pub fn is_adapted(&self) -> bool {
        matches!(self, Self::Adapted(_))
    }

    /// The adapted layer, if the layer carries an adapter.
    pub fn adapted(&self) -> Option<&RLoraLinear<B>> {
        match self {
            Self::Adapted(l) => Some(l),
            Self::Plain(_) => None,
        }
    }

    /// Puts an adapter described by `config` on the plain layer
    /// ([`RLoraLinear::from_linear`]: the base is frozen, the adapter trains).
    ///
    /// # Errors
    ///
    /// Any error of [`RLoraLinear::from_linear`];
    /// [`RLoraError::AlreadyAdapted`] if the layer carries an adapter already.
    pub fn adapt(self, config: &RLoraConfig) -> Result<Self, RLoraError> {
        match self {
            Self::Plain(l) => Ok(Self::Adapted(RLoraLinear::from_linear(l, config)?)),
            Self::Adapted(_) => Err(RLoraError::AlreadyAdapted {
                path: "(this layer)".to_string(),
            }),
        }
    }
}

impl<B: Backend> From<Linear<B>> for AdaptableLinear<B> {
    fn from(linear: Linear<B>) -> Self {
        Self::Plain(linear)
    }
}

impl<B: Backend> From<RLoraLinear<B>> for AdaptableLinear<B> {
    fn from(layer: RLoraLinear<B>) -> Self {
        Self::Adapted(layer)
    }
}
