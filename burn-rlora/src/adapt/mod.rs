//! Adapting a whole model by target names, as PEFT's `target_modules` does.
//!
//! Three parts:
//!
//! * [`RLoraLinear`]: the field type of a layer that may carry an
//!   adapter. It is a plain `Linear` until adapted, so the model loads its
//!   plain pretrained checkpoint unchanged.
//! * `#[derive(Adapt)]` next to `#[derive(Module)]`: forwards adapting
//!   through the model's fields, knowing each field's path, as
//!   `#[derive(Module)]` forwards parameters. `Vec`, arrays and `Option` of
//!   such modules are walked too. The same walk finds the layers for every
//!   whole-model operation ([`LayerVisitor`], [`LayerMapper`]): saving and
//!   loading adapters, merging, parameter counts and head similarity.
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
//! use burn_rlora::{Adapt, AdaptConfig, RLoraConfig, RLoraLinear, TargetModules};
//!
//! #[derive(Module, Adapt, Debug)]
//! struct Block<B: Backend> {
//!     attention: RLoraLinear<B>,
//!     up: RLoraLinear<B>,
//!     down: RLoraLinear<B>,
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
//!     assert!(!new.attention.is_adapted());
//!     assert_eq!(data(old.attention.weight.val()), data(new.attention.weight.val()));
//!     assert_eq!(data(old.norm.gamma.val()), data(new.norm.gamma.val()));
//!     for (old, new) in [(&old.up, &new.up), (&old.down, &new.down)] {
//!         assert_eq!(data(old.weight.val()), data(new.weight.val())); // frozen base
//!         let (old, new) = (old.adapter().unwrap(), new.adapter().unwrap());
//!         assert_ne!(data(old.lora_a.val()), data(new.lora_a.val())); // trained adapter
//!         assert_ne!(data(old.lora_b.val()), data(new.lora_b.val()));
//!     }
//! }
//! # Ok::<(), burn_rlora::RLoraError>(())
//! ```
//!
//! What it cannot do:
//!
//! * It adapts only fields declared as [`RLoraLinear`]. A `Linear`
//!   inside a module of another crate (Burn's own `MultiHeadAttention`, for
//!   example) has a fixed type and stays plain; a target that reaches only
//!   such layers is an error ([`RLoraError::TargetNotFound`], which lists the
//!   adaptable paths), never a silent no-op.
//! * The derive handles structs with named fields. An enum module, or a
//!   struct with unnamed fields, implements [`Adapt`] by hand, handing each
//!   part to [`Walk::field`] and [`Walk::visit_field`] under its name.
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

mod targets;
mod walk;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::FloatDType;

use crate::{RLoraConfig, RLoraError, RLoraLinear};

use targets::Matcher;
pub use targets::TargetModules;
pub use walk::{LayerMapper, LayerVisitor, Walk};

/// A module whose [`RLoraLinear`] layers can be walked, to adapt, load,
/// merge or inspect them: the trait `#[derive(Adapt)]` implements.
///
/// The derive hands every field to [`Walk::field`] (mapping) and
/// [`Walk::visit_field`] (visiting) under the field's name; [`RLoraLinear`]
/// is where the walk reaches a layer. Implement it by hand in the same way
/// for a module the derive does not handle:
///
/// ```
/// use burn::module::Module;
/// use burn::tensor::backend::Backend;
/// use burn_rlora::adapt::{LayerMapper, LayerVisitor, Walk};
/// use burn_rlora::{Adapt, RLoraLinear};
///
/// #[derive(Module, Debug)]
/// enum Projection<B: Backend> {
///     Shared(RLoraLinear<B>),
///     PerTask(Vec<RLoraLinear<B>>),
/// }
///
/// impl<B: Backend> Adapt for Projection<B> {
///     fn map_layers<M: LayerMapper>(self, walk: &mut Walk<'_, M>) -> Result<Self, M::Error> {
///         Ok(match self {
///             Self::Shared(l) => Self::Shared(walk.field("shared", l)?),
///             Self::PerTask(layers) => Self::PerTask(walk.field("per_task", layers)?),
///         })
///     }
///
///     fn visit_layers<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>) {
///         match self {
///             Self::Shared(l) => walk.visit_field("shared", l),
///             Self::PerTask(layers) => walk.visit_field("per_task", layers),
///         }
///     }
/// }
/// ```
pub trait Adapt: Sized {
    /// Replaces every layer inside `self` by what the walk's mapper returns for it.
    ///
    /// # Errors
    ///
    /// The mapper's first error.
    fn map_layers<M: LayerMapper>(self, walk: &mut Walk<'_, M>) -> Result<Self, M::Error>;

    /// Shows every layer inside `self` to the walk's visitor.
    fn visit_layers<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>);
}

pub use burn_rlora_derive::Adapt;

/// Runs `visitor` over every [`RLoraLinear`] of `model`, in field order.
pub fn visit_layers<M: Adapt, V: LayerVisitor>(model: &M, visitor: &mut V) {
    model.visit_layers(&mut Walk::new(visitor));
}

/// Replaces every [`RLoraLinear`] of `model` by what `mapper` returns for it,
/// in field order.
///
/// # Errors
///
/// The mapper's first error; the model is dropped then.
pub fn map_layers<M: Adapt, F: LayerMapper>(model: M, mapper: &mut F) -> Result<M, F::Error> {
    model.map_layers(&mut Walk::new(mapper))
}

/// The paths of the adapted layers of `model` (those that carry an adapter), in field order.
pub fn adapted_paths<M: Adapt>(model: &M) -> Vec<String> {
    struct Paths(Vec<String>);
    impl LayerVisitor for Paths {
        fn visit<B: Backend>(&mut self, path: &str, layer: &RLoraLinear<B>) {
            if layer.is_adapted() {
                self.0.push(path.to_string());
            }
        }
    }
    let mut paths = Paths(Vec::new());
    visit_layers(model, &mut paths);
    paths.0
}

/// `model` with the base (`weight` and `bias`) of every [`RLoraLinear`],
/// plain or adapted, stored as `dtype`: see
/// [`RLoraLinear::with_base_dtype`]. The model's other modules (embeddings,
/// norms) are left to the caller.
///
/// # Errors
///
/// [`RLoraError::UnsupportedDtype`] when the backend cannot compute in
/// `dtype` on the first layer's device; nothing is cast then, and the
/// model is dropped (ask `B::supports_dtype` first to keep it).
///
/// ```
/// use burn::backend::Flex;
/// use burn::module::Module;
/// use burn::nn::LinearConfig;
/// use burn::tensor::backend::Backend;
/// use burn::tensor::{DType, FloatDType};
/// use burn_rlora::adapt::with_base_dtype;
/// use burn_rlora::{Adapt, RLoraLinear};
///
/// #[derive(Module, Adapt, Debug)]
/// struct Mlp<B: Backend> {
///     up: RLoraLinear<B>,
///     down: RLoraLinear<B>,
/// }
///
/// let device = Default::default();
/// let model = Mlp::<Flex> {
///     up: LinearConfig::new(8, 16).init(&device).into(),
///     down: LinearConfig::new(16, 8).init(&device).into(),
/// };
/// let model = with_base_dtype(model, FloatDType::F16)?;
/// assert_eq!(model.down.weight.val().dtype(), DType::F16);
/// # Ok::<(), burn_rlora::RLoraError>(())
/// ```
pub fn with_base_dtype<M: Adapt>(model: M, dtype: FloatDType) -> Result<M, RLoraError> {
    struct Cast(FloatDType);
    impl LayerMapper for Cast {
        type Error = RLoraError;
        fn map<B: Backend>(
            &mut self,
            _path: &str,
            layer: RLoraLinear<B>,
        ) -> Result<RLoraLinear<B>, RLoraError> {
            layer.with_base_dtype(self.0)
        }
    }
    // The layers of a model share a backend: the first one's answer holds
    // for all, so a refusal comes before anything is cast.
    struct Supported(FloatDType, Option<bool>);
    impl LayerVisitor for Supported {
        fn visit<B: Backend>(&mut self, _path: &str, layer: &RLoraLinear<B>) {
            if self.1.is_none() {
                let dtype = burn::tensor::DType::from(self.0);
                self.1 = Some(B::supports_dtype(&layer.weight.device(), dtype));
            }
        }
    }
    let mut supported = Supported(dtype, None);
    visit_layers(&model, &mut supported);
    if supported.1 == Some(false) {
        return Err(RLoraError::UnsupportedDtype { dtype });
    }
    map_layers(model, &mut Cast(dtype))
}

impl<B: Backend> Adapt for RLoraLinear<B> {
    fn map_layers<M: LayerMapper>(self, walk: &mut Walk<'_, M>) -> Result<Self, M::Error> {
        walk.map_layer(self)
    }

    fn visit_layers<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>) {
        walk.visit_layer(self);
    }
}

impl<T: Adapt> Adapt for Vec<T> {
    /// Each element under its index, as Burn names it.
    fn map_layers<M: LayerMapper>(self, walk: &mut Walk<'_, M>) -> Result<Self, M::Error> {
        self.into_iter()
            .enumerate()
            .map(|(i, item)| walk.field(&i.to_string(), item))
            .collect()
    }

    /// Each element under its index, as Burn names it.
    fn visit_layers<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>) {
        for (i, item) in self.iter().enumerate() {
            walk.visit_field(&i.to_string(), item);
        }
    }
}

impl<T: Adapt, const N: usize> Adapt for [T; N] {
    /// Each element under its index, as Burn names it.
    fn map_layers<M: LayerMapper>(self, walk: &mut Walk<'_, M>) -> Result<Self, M::Error> {
        let mut out = Vec::with_capacity(N);
        for (i, item) in self.into_iter().enumerate() {
            out.push(walk.field(&i.to_string(), item)?);
        }
        match out.try_into() {
            Ok(array) => Ok(array),
            Err(_) => unreachable!("N elements in, N out"),
        }
    }

    /// Each element under its index, as Burn names it.
    fn visit_layers<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>) {
        for (i, item) in self.iter().enumerate() {
            walk.visit_field(&i.to_string(), item);
        }
    }
}

impl<T: Adapt> Adapt for Option<T> {
    /// The content under the option's own path, as Burn names it.
    fn map_layers<M: LayerMapper>(self, walk: &mut Walk<'_, M>) -> Result<Self, M::Error> {
        self.map(|inner| inner.map_layers(walk)).transpose()
    }

    /// The content under the option's own path, as Burn names it.
    fn visit_layers<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>) {
        if let Some(inner) = self {
            inner.visit_layers(walk);
        }
    }
}

/// The mapper of [`AdaptConfig::adapt`]: adapts the targeted plain layers
/// and records what it saw.
struct Adapter<'a> {
    config: &'a RLoraConfig,
    matcher: &'a Matcher,
    adaptable: Vec<String>,
    adapted: Vec<String>,
    hits: Vec<usize>,
}

impl LayerMapper for Adapter<'_> {
    type Error = RLoraError;

    fn map<B: Backend>(
        &mut self,
        path: &str,
        layer: RLoraLinear<B>,
    ) -> Result<RLoraLinear<B>, RLoraError> {
        let mut targeted = false;
        for i in self.matcher.matching(path) {
            self.hits[i] += 1;
            targeted = true;
        }
        self.adaptable.push(path.to_string());
        if !targeted {
            return Ok(layer);
        }
        if layer.is_adapted() {
            return Err(RLoraError::AlreadyAdapted {
                path: path.to_string(),
            });
        }
        let adapted = layer
            .adapt(self.config)
            .map_err(|e| RLoraError::AdaptLayer {
                path: path.to_string(),
                source: Box::new(e),
            })?;
        self.adapted.push(path.to_string());
        Ok(adapted)
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
    /// on every plain [`RLoraLinear`] that
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
        let mut adapter = Adapter {
            config: &self.adapter,
            matcher: &matcher,
            adaptable: Vec::new(),
            adapted: Vec::new(),
            hits: vec![0; matcher.len()],
        };
        let model = map_layers(model.no_grad(), &mut adapter)?;
        let targets = self.target_modules.targets();
        if let Some(i) = adapter.hits.iter().position(|&hits| hits == 0) {
            return Err(RLoraError::TargetNotFound {
                target: targets[i].clone(),
                adaptable: adapter.adaptable,
            });
        }
        Ok((model, adapter.adapted))
    }
}

/// What `#[derive(Adapt)]` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::{Adapt, LayerMapper, LayerVisitor, Walk};

    /// One field on its way through the derive: walked when its type
    /// implements [`Adapt`] ([`MapField`], [`VisitField`], found first by
    /// method lookup), kept as it is otherwise ([`KeepField`], [`SkipField`],
    /// found through one more reference).
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

    /// A field by reference, for visiting.
    pub struct FieldRef<'a, T>(pub &'a T);

    /// The mapping path of a field.
    pub trait MapField<T> {
        /// Maps the field's layers, under `name`.
        fn map_field<M: LayerMapper>(
            &mut self,
            walk: &mut Walk<'_, M>,
            name: &str,
        ) -> Result<T, M::Error>;
    }

    impl<T: Adapt> MapField<T> for Field<T> {
        fn map_field<M: LayerMapper>(
            &mut self,
            walk: &mut Walk<'_, M>,
            name: &str,
        ) -> Result<T, M::Error> {
            walk.field(name, self.take())
        }
    }

    /// The keeping path of a field.
    pub trait KeepField<T> {
        /// Returns the field unchanged.
        fn map_field<M: LayerMapper>(
            &mut self,
            walk: &mut Walk<'_, M>,
            name: &str,
        ) -> Result<T, M::Error>;
    }

    impl<T> KeepField<T> for &mut Field<T> {
        fn map_field<M: LayerMapper>(
            &mut self,
            _: &mut Walk<'_, M>,
            _: &str,
        ) -> Result<T, M::Error> {
            Ok(self.take())
        }
    }

    /// The visiting path of a field.
    pub trait VisitField {
        /// Visits the field's layers, under `name`.
        fn visit_field<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>, name: &str);
    }

    impl<T: Adapt> VisitField for FieldRef<'_, T> {
        fn visit_field<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>, name: &str) {
            walk.visit_field(name, self.0);
        }
    }

    /// The skipping path of a field.
    pub trait SkipField {
        /// Does nothing.
        fn visit_field<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>, name: &str);
    }

    impl<T> SkipField for &FieldRef<'_, T> {
        fn visit_field<V: LayerVisitor>(&self, _: &mut Walk<'_, V>, _: &str) {}
    }
}
