//! Adapting a whole model by target names, as PEFT's `target_modules` does.
//!
//! Three parts:
//!
//! * [`AdaptableLinear`]: the field type of a layer that may carry an
//!   adapter. It is a plain `Linear` until adapted, so the model loads its
//!   plain pretrained checkpoint unchanged.
//! * `#[derive(Adapt)]` next to `#[derive(Module)]`: forwards adapting
//!   through the model's fields, knowing each field's path, as
//!   `#[derive(Module)]` forwards parameters. `Vec`, arrays and `Option` of
//!   such modules are walked too.
//! * [`AdaptConfig`]: an [`RLoraConfig`] and the [`TargetModules`]; its
//!   [`adapt`](AdaptConfig::adapt) freezes the whole model and puts the
//!   adapter on every targeted layer.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::module::Module;
//! use burn::nn::{LayerNorm, LayerNormConfig, LinearConfig};
//! use burn::optim::{AdamConfig, GradientsParams, Optimizer};
//! use burn::tensor::{backend::Backend, Tensor, TensorData};
//! use burn_rlora::{Adapt, AdaptConfig, AdaptableLinear, RLoraConfig, TargetModules};
//!
//! #[derive(Module, Adapt, Debug)]
//! struct Block<B: Backend> {
//!     attention: AdaptableLinear<B>,
//!     up: AdaptableLinear<B>,
//!     down: AdaptableLinear<B>,
//!     norm: LayerNorm<B>,
//! }
//!
//! #[derive(Module, Adapt, Debug)]
//! struct Model<B: Backend> {
//!     blocks: Vec<Block<B>>,
//! }
//!
//! impl<B: Backend> Block<B> {
//!     fn new(device: &B::Device) -> Self {
//!         let linear = |i, o| LinearConfig::new(i, o).init(device).into();
//!         let norm = LayerNormConfig::new(8).init(device);
//!         Block { attention: linear(8, 8), up: linear(8, 16), down: linear(16, 8), norm }
//!     }
//!
//!     fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
//!         let x = self.norm.forward(x.clone() + self.attention.forward(x));
//!         x.clone() + self.down.forward(self.up.forward(x).tanh())
//!     }
//! }
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let model = Model::<B> { blocks: vec![Block::new(&device), Block::new(&device)] };
//!
//! // R-LoRA on the feed-forward layers of every block; `attention` stays plain.
//! let config = AdaptConfig::new(RLoraConfig::r_lora(2, 16.0, 3), TargetModules::names(["up", "down"]));
//! let (model, adapted) = config.adapt_listed(model)?;
//! assert_eq!(adapted, ["blocks.0.up", "blocks.0.down", "blocks.1.up", "blocks.1.down"]);
//!
//! // One optimizer step changes the targeted layers' adapters and nothing else.
//! let before = model.clone();
//! let x = Tensor::<B, 2>::ones([4, 8], &device);
//! let loss = model.blocks.iter().fold(x, |x, b| b.forward(x)).powi_scalar(2).mean();
//! let grads = GradientsParams::from_grads(loss.backward(), &model);
//! let model = AdamConfig::new().init().step(1e-2, model, grads);
//!
//! fn data<const D: usize>(t: Tensor<B, D>) -> TensorData { t.into_data() }
//! for (old, new) in before.blocks.iter().zip(&model.blocks) {
//!     let AdaptableLinear::Plain(old_attention) = &old.attention else { unreachable!() };
//!     let AdaptableLinear::Plain(new_attention) = &new.attention else { unreachable!() };
//!     assert_eq!(data(old_attention.weight.val()), data(new_attention.weight.val()));
//!     assert_eq!(data(old.norm.gamma.val()), data(new.norm.gamma.val()));
//!     for (old, new) in [(&old.up, &new.up), (&old.down, &new.down)] {
//!         let (old, new) = (old.adapted().unwrap(), new.adapted().unwrap());
//!         assert_eq!(data(old.weight.val()), data(new.weight.val())); // frozen base
//!         assert_ne!(data(old.lora_a.val()), data(new.lora_a.val())); // trained adapter
//!         assert_ne!(data(old.lora_b.val()), data(new.lora_b.val()));
//!     }
//! }
//! # Ok::<(), burn_rlora::RLoraError>(())
//! ```
//!
//! What it cannot do:
//!
//! * It adapts only fields declared as [`AdaptableLinear`]. A `Linear`
//!   inside a module of another crate (Burn's own `MultiHeadAttention`, for
//!   example) has a fixed type and stays plain; a target that reaches only
//!   such layers is an error ([`RLoraError::TargetNotFound`], which lists the
//!   adaptable paths), never a silent no-op.
//! * The derive handles structs with named fields. An enum module, or a
//!   struct with unnamed fields, implements [`Adapt`] by hand, handing each
//!   part to [`AdaptContext::field`] under its name.
//! * In a derived impl, a field whose type does not implement [`Adapt`] is
//!   kept as it is. A field whose type is a bare type parameter (`inner: M`)
//!   gets an `M: Adapt` bound instead, so `Wrapper<B, M>` is [`Adapt`] only
//!   for such `M`. A field whose type merely mentions a type parameter
//!   (`inner: Option<M>`) is kept unchanged, as the compiler cannot tell in
//!   generic code whether it implements [`Adapt`]; a target under it then
//!   reports [`RLoraError::TargetNotFound`].
//! * Paths are those of the model's fields. Map them to another framework's
//!   names with a [`ModuleNaming`](crate::checkpoint::ModuleNaming) when
//!   saving, not here.

mod linear;
mod targets;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;

use crate::{RLoraConfig, RLoraError};

pub use linear::AdaptableLinear;
use targets::Matcher;
pub use targets::TargetModules;

/// A module that can put adapters on its targeted layers: the trait
/// `#[derive(Adapt)]` implements.
///
/// The derive hands every field to [`AdaptContext::field`] under the field's
/// name; [`AdaptableLinear`] is where the adapting happens. Implement it by
/// hand in the same way for a module the derive does not handle:
///
/// ```
/// use burn::module::Module;
/// use burn::tensor::backend::Backend;
/// use burn_rlora::{Adapt, AdaptContext, AdaptableLinear, RLoraError};
///
/// #[derive(Module, Debug)]
/// enum Projection<B: Backend> {
///     Shared(AdaptableLinear<B>),
///     PerTask(Vec<AdaptableLinear<B>>),
/// }
///
/// impl<B: Backend> Adapt for Projection<B> {
///     fn adapt_with(self, cx: &mut AdaptContext<'_>) -> Result<Self, RLoraError> {
///         Ok(match self {
///             Self::Shared(l) => Self::Shared(cx.field("shared", l)?),
///             Self::PerTask(layers) => Self::PerTask(cx.field("per_task", layers)?),
///         })
///     }
/// }
/// ```
pub trait Adapt: Sized {
    /// Adapts every targeted layer inside `self`, whose path `cx` knows.
    ///
    /// # Errors
    ///
    /// What [`AdaptConfig::adapt`] documents.
    fn adapt_with(self, cx: &mut AdaptContext<'_>) -> Result<Self, RLoraError>;
}

pub use burn_rlora_derive::Adapt;

/// The state of one [`AdaptConfig::adapt`] walk: the path of the module
/// being visited, and what was found so far.
#[derive(Debug)]
pub struct AdaptContext<'a> {
    adapter: &'a RLoraConfig,
    matcher: &'a Matcher,
    path: Vec<String>,
    adaptable: Vec<String>,
    adapted: Vec<String>,
    hits: Vec<usize>,
}

impl<'a> AdaptContext<'a> {
    fn new(adapter: &'a RLoraConfig, matcher: &'a Matcher) -> Self {
        Self {
            adapter,
            matcher,
            path: Vec::new(),
            adaptable: Vec::new(),
            adapted: Vec::new(),
            hits: vec![0; matcher.len()],
        }
    }

    /// The path of the module being visited (`""` at the root).
    pub fn path(&self) -> String {
        self.path.join(".")
    }

    /// Adapts `value`, the part of the current module called `name`.
    ///
    /// # Errors
    ///
    /// Whatever adapting `value` returns.
    pub fn field<T: Adapt>(&mut self, name: &str, value: T) -> Result<T, RLoraError> {
        self.path.push(name.to_string());
        let result = value.adapt_with(self);
        self.path.pop();
        result
    }

    fn linear<B: Backend>(
        &mut self,
        layer: AdaptableLinear<B>,
    ) -> Result<AdaptableLinear<B>, RLoraError> {
        let path = self.path();
        let mut targeted = false;
        for i in self.matcher.matching(&path) {
            self.hits[i] += 1;
            targeted = true;
        }
        self.adaptable.push(path.clone());
        if !targeted {
            return Ok(layer);
        }
        let adapted = match layer {
            AdaptableLinear::Plain(_) => {
                layer
                    .adapt(self.adapter)
                    .map_err(|e| RLoraError::AdaptLayer {
                        path: path.clone(),
                        source: Box::new(e),
                    })?
            }
            AdaptableLinear::Adapted(_) => return Err(RLoraError::AlreadyAdapted { path }),
        };
        self.adapted.push(path);
        Ok(adapted)
    }
}

impl<B: Backend> Adapt for AdaptableLinear<B> {
    fn adapt_with(self, cx: &mut AdaptContext<'_>) -> Result<Self, RLoraError> {
        cx.linear(self)
    }
}

impl<T: Adapt> Adapt for Vec<T> {
    /// Each element under its index, as Burn names it.
    fn adapt_with(self, cx: &mut AdaptContext<'_>) -> Result<Self, RLoraError> {
        self.into_iter()
            .enumerate()
            .map(|(i, item)| cx.field(&i.to_string(), item))
            .collect()
    }
}

impl<T: Adapt, const N: usize> Adapt for [T; N] {
    /// Each element under its index, as Burn names it.
    fn adapt_with(self, cx: &mut AdaptContext<'_>) -> Result<Self, RLoraError> {
        let mut out = Vec::with_capacity(N);
        for (i, item) in self.into_iter().enumerate() {
            out.push(cx.field(&i.to_string(), item)?);
        }
        match out.try_into() {
            Ok(array) => Ok(array),
            Err(_) => unreachable!("N elements in, N out"),
        }
    }
}

impl<T: Adapt> Adapt for Option<T> {
    /// The content under the option's own path, as Burn names it.
    fn adapt_with(self, cx: &mut AdaptContext<'_>) -> Result<Self, RLoraError> {
        self.map(|inner| inner.adapt_with(cx)).transpose()
    }
}

/// Which adapter goes on which layers of a model.
///
/// ```
/// use burn_rlora::{AdaptConfig, RLoraConfig, TargetModules};
///
/// let config = AdaptConfig::new(RLoraConfig::lora(8, 16.0), TargetModules::names(["query", "value"]));
/// // As JSON, `target_modules` is a list of names, or one regular expression.
/// let json = burn::config::config_to_json(&config);
/// assert!(json.contains(r#""target_modules": [
///     "query",
///     "value"
///   ]"#));
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct AdaptConfig {
    /// The adapter put on every targeted layer.
    pub adapter: RLoraConfig,
    /// The targeted layers.
    pub target_modules: TargetModules,
}

impl AdaptConfig {
    /// Freezes every parameter of `model` and puts [`adapter`](Self::adapter)
    /// on every [`AdaptableLinear`] that
    /// [`target_modules`](Self::target_modules) targets. Only the adapters'
    /// `A`, heads and routers then train; at init an adapted model computes
    /// what the plain one did (in eval mode, for the presets that start at
    /// the base's output).
    ///
    /// # Errors
    ///
    /// * [`RLoraError::InvalidTarget`] for a malformed target;
    /// * [`RLoraError::TargetNotFound`] for a target that matches no
    ///   adaptable layer;
    /// * [`RLoraError::AlreadyAdapted`] for a targeted layer that carries an
    ///   adapter already;
    /// * [`RLoraError::AdaptLayer`] for a layer the adapter does not fit
    ///   (for example a rank above its width).
    ///
    /// On error the model is dropped: keep a clone (it shares the tensors) if
    /// it is needed afterwards.
    pub fn adapt<B: Backend, M: Module<B> + Adapt>(&self, model: M) -> Result<M, RLoraError> {
        self.adapt_listed(model).map(|(model, _)| model)
    }

    /// Like [`adapt`](Self::adapt), and also returns the paths of the adapted
    /// layers, in the model's field order.
    ///
    /// # Errors
    ///
    /// As [`adapt`](Self::adapt).
    pub fn adapt_listed<B: Backend, M: Module<B> + Adapt>(
        &self,
        model: M,
    ) -> Result<(M, Vec<String>), RLoraError> {
        let matcher = Matcher::new(&self.target_modules)?;
        let mut cx = AdaptContext::new(&self.adapter, &matcher);
        let model = model.no_grad().adapt_with(&mut cx)?;
        let targets = self.target_modules.targets();
        if let Some(i) = cx.hits.iter().position(|&hits| hits == 0) {
            return Err(RLoraError::TargetNotFound {
                target: targets[i].clone(),
                adaptable: cx.adaptable,
            });
        }
        Ok((model, cx.adapted))
    }
}

/// What `#[derive(Adapt)]` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::{Adapt, AdaptContext};
    use crate::RLoraError;

    /// One field on its way through the derive: adapted when its type
    /// implements [`Adapt`] ([`AdaptField`], found first by method lookup),
    /// kept as it is otherwise ([`KeepField`], found through one more `&mut`).
    pub struct Field<T>(Option<T>);

    impl<T> Field<T> {
        /// Wraps a field's value.
        pub fn new(value: T) -> Self {
            Self(Some(value))
        }

        fn take(&mut self) -> T {
            self.0.take().expect("the derive hands each field on once")
        }
    }

    /// The adapting path of a field.
    pub trait AdaptField<T> {
        /// Adapts the field, under `name`.
        fn adapt_field(&mut self, cx: &mut AdaptContext<'_>, name: &str) -> Result<T, RLoraError>;
    }

    impl<T: Adapt> AdaptField<T> for Field<T> {
        fn adapt_field(&mut self, cx: &mut AdaptContext<'_>, name: &str) -> Result<T, RLoraError> {
            cx.field(name, self.take())
        }
    }

    /// The keeping path of a field.
    pub trait KeepField<T> {
        /// Returns the field unchanged.
        fn adapt_field(&mut self, cx: &mut AdaptContext<'_>, name: &str) -> Result<T, RLoraError>;
    }

    impl<T> KeepField<T> for &mut Field<T> {
        fn adapt_field(&mut self, _: &mut AdaptContext<'_>, _: &str) -> Result<T, RLoraError> {
            Ok(self.take())
        }
    }
}
