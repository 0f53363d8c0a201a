//! Walking the [`RLoraLinear`] layers of a model by type: the
//! [`LayerVisitor`] and [`LayerMapper`] traits and the [`Walk`] that carries
//! them and the current path through a model's fields.

use burn::tensor::backend::Backend;

use super::Adapt;
use crate::RLoraLinear;

/// Looks at every [`RLoraLinear`] of a model, plain or adapted, with its
/// path; run it with [`visit_layers`](super::visit_layers).
///
/// The method is generic over the backend, so one visitor serves every
/// model. This is how this crate's whole-model operations (saving adapters,
/// counting their parameters, head similarity) find the layers: by type,
/// through [`Adapt`], never by names of types or fields.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::module::Module;
/// use burn::nn::LinearConfig;
/// use burn::tensor::backend::Backend;
/// use burn_rlora::adapt::{visit_layers, LayerVisitor};
/// use burn_rlora::{Adapt, RLoraConfig, RLoraLinear};
///
/// #[derive(Module, Adapt, Debug)]
/// struct Mlp<B: Backend> {
///     up: RLoraLinear<B>,
///     down: RLoraLinear<B>,
/// }
///
/// /// The paths of the adapted layers and their ranks.
/// struct Ranks(Vec<(String, usize)>);
///
/// impl LayerVisitor for Ranks {
///     fn visit<B: Backend>(&mut self, path: &str, layer: &RLoraLinear<B>) {
///         if let Some(adapter) = layer.adapter() {
///             self.0.push((path.to_string(), adapter.rank()));
///         }
///     }
/// }
///
/// let device = Default::default();
/// let up = LinearConfig::new(8, 16).init::<NdArray>(&device);
/// let model = Mlp {
///     up: RLoraLinear::from_linear(up, &RLoraConfig::lora(4, 8.0))?,
///     down: LinearConfig::new(16, 8).init(&device).into(),
/// };
/// let mut ranks = Ranks(Vec::new());
/// visit_layers(&model, &mut ranks);
/// assert_eq!(ranks.0, [("up".to_string(), 4)]);
/// # Ok::<(), burn_rlora::RLoraError>(())
/// ```
pub trait LayerVisitor {
    /// Called once per layer, in the model's field order, with the layer's
    /// path (field names and indices joined by `.`; `""` for a model that is
    /// one layer).
    fn visit<B: Backend>(&mut self, path: &str, layer: &RLoraLinear<B>);
}

/// Replaces every [`RLoraLinear`] of a model, plain or adapted, knowing its
/// path; run it with [`map_layers`](super::map_layers).
///
/// Adapting by target names, loading adapters and merging them are mappers.
pub trait LayerMapper {
    /// What a failed replacement returns; the walk stops at the first one.
    type Error;

    /// Called once per layer, in the model's field order, with the layer's
    /// path; returns the layer to put in its place.
    ///
    /// # Errors
    ///
    /// Whatever the mapper finds wrong with the layer.
    fn map<B: Backend>(
        &mut self,
        path: &str,
        layer: RLoraLinear<B>,
    ) -> Result<RLoraLinear<B>, Self::Error>;
}

/// One walk through a model: the [`LayerVisitor`] or [`LayerMapper`] and the
/// path of the module being walked.
///
/// `#[derive(Adapt)]` hands every field to [`field`](Self::field) (mapping)
/// and [`visit_field`](Self::visit_field) (visiting) under the field's name;
/// implement [`Adapt`] by hand in the same way.
#[derive(Debug)]
pub struct Walk<'a, Op> {
    op: &'a mut Op,
    path: Vec<String>,
}

impl<'a, Op> Walk<'a, Op> {
    /// A walk from a model's root with `op`.
    pub fn new(op: &'a mut Op) -> Self {
        Self {
            op,
            path: Vec::new(),
        }
    }

    /// The path of the module being walked (`""` at the root).
    pub fn path(&self) -> String {
        self.path.join(".")
    }

    fn under<R>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(name.to_string());
        let result = f(self);
        self.path.pop();
        result
    }
}

impl<Op: LayerMapper> Walk<'_, Op> {
    /// Maps the layers inside `value`, the part of the current module called `name`.
    ///
    /// # Errors
    ///
    /// The mapper's first error.
    pub fn field<T: Adapt>(&mut self, name: &str, value: T) -> Result<T, Op::Error> {
        self.under(name, |walk| value.map_layers(walk))
    }

    /// Hands the layer at the current path to the mapper.
    pub(crate) fn map_layer<B: Backend>(
        &mut self,
        layer: RLoraLinear<B>,
    ) -> Result<RLoraLinear<B>, Op::Error> {
        let path = self.path();
        self.op.map(&path, layer)
    }
}

impl<Op: LayerVisitor> Walk<'_, Op> {
    /// Visits the layers inside `value`, the part of the current module called `name`.
    pub fn visit_field<T: Adapt>(&mut self, name: &str, value: &T) {
        self.under(name, |walk| value.visit_layers(walk));
    }

    /// Hands the layer at the current path to the visitor.
    pub(crate) fn visit_layer<B: Backend>(&mut self, layer: &RLoraLinear<B>) {
        let path = self.path();
        self.op.visit(&path, layer);
    }
}
