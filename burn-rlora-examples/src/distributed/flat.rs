//! A model's trainable parameters and their gradients as one flat `f32`
//! buffer, in the order the module visits its parameters.
//!
//! Parameter ids are random per process (unless a record is loaded), so the
//! ranks of a data-parallel job cannot match gradients by id. They match them
//! by position instead: every rank builds the same module type, and a module
//! visits its fields in declaration order, so the `k`-th trainable parameter
//! is the same tensor on every rank. Frozen parameters (no `require_grad`)
//! are skipped: they get no gradient and never change.
//!
//! The gradient buffer ([`GradLayout::pack`]) holds, in order:
//!
//! 1. every trainable parameter's gradient, multiplied by the rank's batch
//!    size `n` (zeros where the parameter got no gradient this step, e.g. the
//!    head of a task absent from the batch);
//! 2. one presence flag per trainable parameter (1 when it got a gradient);
//! 3. `n`, and the batch's loss times `n`.
//!
//! Summed over the ranks, the buffer gives the gradient of the mean loss over
//! all ranks' examples (`sum n_r g_r / sum n_r`), which parameters got a
//! gradient anywhere, and the global mean loss: all in one all-reduce.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// The trainable parameters of a module: their element counts and shapes, in
/// module order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradLayout {
    shapes: Vec<Vec<usize>>,
}

struct ShapeVisitor {
    shapes: Vec<Vec<usize>>,
}

impl<B: Backend> ModuleVisitor<B> for ShapeVisitor {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        if value.is_require_grad() {
            self.shapes.push(value.dims().to_vec());
        }
    }
}

/// The global figures of one step, read from a summed gradient buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlobalStep {
    /// Examples over all ranks.
    pub examples: f64,
    /// Mean loss over all ranks' examples.
    pub loss: f64,
}

impl GradLayout {
    /// The layout of `module`'s trainable parameters.
    pub fn of<B: Backend, M: Module<B>>(module: &M) -> Self {
        let mut visitor = ShapeVisitor { shapes: Vec::new() };
        module.visit(&mut visitor);
        Self {
            shapes: visitor.shapes,
        }
    }

    /// Number of trainable parameter tensors.
    pub fn num_tensors(&self) -> usize {
        self.shapes.len()
    }

    /// Number of trainable scalars.
    pub fn num_values(&self) -> usize {
        self.shapes.iter().map(|s| s.iter().product::<usize>()).sum()
    }

    /// Length of the gradient buffer: values, flags, count and loss.
    pub fn grad_buffer_len(&self) -> usize {
        self.num_values() + self.num_tensors() + 2
    }

    /// Bytes one rank sends into the all-reduce per step (`f32` buffer).
    pub fn bytes_per_step(&self) -> usize {
        self.grad_buffer_len() * std::mem::size_of::<f32>()
    }

    /// Pack the gradients of `module`'s trainable parameters from `grads`,
    /// weighted by the batch size `n`, with the batch's mean `loss`.
    ///
    /// # Errors
    ///
    /// When a gradient cannot be read back as `f32`.
    pub fn pack<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
        module: &M,
        mut grads: GradientsParams,
        n: usize,
        loss: f64,
    ) -> Result<Vec<f32>, String> {
        let mut visitor = GradPacker::<B> {
            grads: &mut grads,
            values: Vec::with_capacity(self.grad_buffer_len()),
            flags: Vec::with_capacity(self.num_tensors()),
            weight: n as f32,
            error: None,
            _backend: std::marker::PhantomData,
        };
        module.visit(&mut visitor);
        if let Some(e) = visitor.error {
            return Err(e);
        }
        let mut buf = visitor.values;
        if buf.len() != self.num_values() || visitor.flags.len() != self.num_tensors() {
            return Err(format!(
                "the module has {} trainable values in {} tensors, the layout {} in {}",
                buf.len(),
                visitor.flags.len(),
                self.num_values(),
                self.num_tensors()
            ));
        }
        buf.extend(visitor.flags);
        buf.push(n as f32);
        buf.push((loss * n as f64) as f32);
        Ok(buf)
    }

    /// The averaged gradients of a summed buffer (see the module docs), as
    /// [`GradientsParams`] of `module`'s parameter ids, and the step's
    /// global figures. Parameters that got no gradient on any rank get none.
    ///
    /// # Errors
    ///
    /// When `buf` does not have this layout's length.
    pub fn unpack<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
        module: &M,
        buf: &[f32],
    ) -> Result<(GradientsParams, GlobalStep), String> {
        if buf.len() != self.grad_buffer_len() {
            return Err(format!(
                "gradient buffer of {} values, expected {}",
                buf.len(),
                self.grad_buffer_len()
            ));
        }
        let values = self.num_values();
        let examples = buf[values + self.num_tensors()] as f64;
        let loss_sum = buf[values + self.num_tensors() + 1] as f64;
        let mut visitor = GradUnpacker::<B> {
            values: &buf[..values],
            flags: &buf[values..values + self.num_tensors()],
            scale: if examples > 0.0 {
                (1.0 / examples) as f32
            } else {
                0.0
            },
            grads: GradientsParams::new(),
            offset: 0,
            index: 0,
            _backend: std::marker::PhantomData,
        };
        module.visit(&mut visitor);
        Ok((
            visitor.grads,
            GlobalStep {
                examples,
                loss: if examples > 0.0 {
                    loss_sum / examples
                } else {
                    0.0
                },
            },
        ))
    }
}

fn to_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f32>, String> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| format!("reading a tensor back as f32: {e:?}"))
}

struct GradPacker<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    values: Vec<f32>,
    flags: Vec<f32>,
    weight: f32,
    error: Option<String>,
    _backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradPacker<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let numel = value.shape().num_elements();
        match self.grads.remove::<B::InnerBackend, D>(param.id) {
            Some(grad) => match to_f32(grad) {
                Ok(g) => {
                    self.values.extend(g.into_iter().map(|v| v * self.weight));
                    self.flags.push(1.0);
                }
                Err(e) => {
                    self.error.get_or_insert(e);
                    self.values.extend(std::iter::repeat_n(0.0, numel));
                    self.flags.push(0.0);
                }
            },
            None => {
                self.values.extend(std::iter::repeat_n(0.0, numel));
                self.flags.push(0.0);
            }
        }
    }
}

struct GradUnpacker<'a, B: AutodiffBackend> {
    values: &'a [f32],
    flags: &'a [f32],
    scale: f32,
    grads: GradientsParams,
    offset: usize,
    index: usize,
    _backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradUnpacker<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let shape = value.shape();
        let numel = shape.num_elements();
        let slice = &self.values[self.offset..self.offset + numel];
        self.offset += numel;
        let present = self.flags[self.index] > 0.0;
        self.index += 1;
        if present {
            let avg: Vec<f32> = slice.iter().map(|v| v * self.scale).collect();
            let grad = Tensor::<B::InnerBackend, D>::from_data(
                TensorData::new(avg, shape),
                &value.device(),
            );
            self.grads.register::<B::InnerBackend, D>(param.id, grad);
        }
    }
}

/// Which float parameters of `module` are trainable, in module order (all of
/// them, frozen ones included). A module's inner (non-autodiff) copy visits
/// the same parameters in the same order but does not know which were
/// trainable; [`masked_values`] reads it with this mask.
pub fn trainable_mask<B: Backend, M: Module<B>>(module: &M) -> Vec<bool> {
    struct Mask(Vec<bool>);
    impl<B: Backend> ModuleVisitor<B> for Mask {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.val().is_require_grad());
        }
    }
    let mut visitor = Mask(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}

/// The values of the float parameters of `module` that `mask` selects
/// (`mask` as [`trainable_mask`] gives it), in module order.
///
/// # Errors
///
/// When the mask does not have one entry per float parameter, or a parameter
/// cannot be read back as `f32`.
pub fn masked_values<B: Backend, M: Module<B>>(module: &M, mask: &[bool]) -> Result<Vec<f32>, String> {
    struct Values<'a> {
        mask: &'a [bool],
        index: usize,
        out: Vec<f32>,
        error: Option<String>,
    }
    impl<B: Backend> ModuleVisitor<B> for Values<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let selected = self.mask.get(self.index).copied().unwrap_or(false);
            self.index += 1;
            if selected {
                match to_f32(param.val()) {
                    Ok(v) => self.out.extend(v),
                    Err(e) => {
                        self.error.get_or_insert(e);
                    }
                }
            }
        }
    }
    let mut visitor = Values {
        mask,
        index: 0,
        out: Vec::new(),
        error: None,
    };
    module.visit(&mut visitor);
    if visitor.index != mask.len() {
        return Err(format!(
            "the module has {} float parameters, the mask {}",
            visitor.index,
            mask.len()
        ));
    }
    match visitor.error {
        Some(e) => Err(e),
        None => Ok(visitor.out),
    }
}

/// The values of `module`'s trainable parameters, in module order.
///
/// # Errors
///
/// When a parameter cannot be read back as `f32`.
pub fn trainable_values<B: Backend, M: Module<B>>(module: &M) -> Result<Vec<f32>, String> {
    masked_values::<B, M>(module, &trainable_mask::<B, M>(module))
}

/// `module` with its trainable parameters replaced by `values` (in module
/// order, as [`trainable_values`] gives them); ids and frozen parameters are
/// kept.
///
/// # Errors
///
/// When `values` does not have one value per trainable scalar.
pub fn with_trainable_values<B: Backend, M: Module<B>>(
    module: M,
    values: &[f32],
) -> Result<M, String> {
    let expected = GradLayout::of::<B, M>(&module).num_values();
    if values.len() != expected {
        return Err(format!(
            "{} values for {expected} trainable parameters",
            values.len()
        ));
    }
    struct Load<'a> {
        values: &'a [f32],
        offset: usize,
    }
    impl<B: Backend> ModuleMapper<B> for Load<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, value, mapper) = param.consume();
            if !value.is_require_grad() {
                return Param::from_mapped_value(id, value, mapper);
            }
            let shape = value.shape();
            let numel = shape.num_elements();
            let slice = self.values[self.offset..self.offset + numel].to_vec();
            self.offset += numel;
            let loaded = Tensor::<B, D>::from_data(TensorData::new(slice, shape), &value.device())
                .require_grad();
            Param::from_mapped_value(id, loaded, mapper)
        }
    }
    Ok(module.map(&mut Load { values, offset: 0 }))
}
