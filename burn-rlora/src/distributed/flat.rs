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

/// Why a flat buffer could not be built from a module or applied to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlatError {
    /// A parameter or gradient could not be read back as `f32`.
    #[error("reading a tensor back as f32: {reason}")]
    Read {
        /// The backend's reason.
        reason: String,
    },
    /// The module's trainable parameters are not those of the layout.
    #[error(
        "the module has {module_values} trainable values in {module_tensors} tensors, \
         the layout {layout_values} in {layout_tensors}"
    )]
    LayoutMismatch {
        /// Trainable values of the module.
        module_values: usize,
        /// Trainable tensors of the module.
        module_tensors: usize,
        /// Values of the layout.
        layout_values: usize,
        /// Tensors of the layout.
        layout_tensors: usize,
    },
    /// A gradient buffer of another length than the layout's.
    #[error("gradient buffer of {got} values, expected {expected}")]
    BufferLength {
        /// The buffer's length.
        got: usize,
        /// [`GradLayout::grad_buffer_len`].
        expected: usize,
    },
    /// A mask without one entry per float parameter.
    #[error("the module has {params} float parameters, the mask {mask}")]
    MaskLength {
        /// Float parameters of the module.
        params: usize,
        /// Entries of the mask.
        mask: usize,
    },
    /// Values that do not fill the selected parameters exactly.
    #[error(
        "{values} values and a mask of {mask} for {params} float parameters \
         holding {selected} selected values"
    )]
    ValueCount {
        /// The values given.
        values: usize,
        /// Entries of the mask.
        mask: usize,
        /// Float parameters of the module.
        params: usize,
        /// Values the mask selects.
        selected: usize,
    },
    /// This rank's module holds another number of values than rank 0's.
    #[error(
        "rank {rank} has {values} parameter values, rank 0 has {root}: \
         the ranks built different models"
    )]
    RanksDiffer {
        /// This rank.
        rank: usize,
        /// Its parameter values.
        values: usize,
        /// Rank 0's.
        root: usize,
    },
}

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
        self.shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
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
    ) -> Result<Vec<f32>, FlatError> {
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
            return Err(FlatError::LayoutMismatch {
                module_values: buf.len(),
                module_tensors: visitor.flags.len(),
                layout_values: self.num_values(),
                layout_tensors: self.num_tensors(),
            });
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
    ) -> Result<(GradientsParams, GlobalStep), FlatError> {
        if buf.len() != self.grad_buffer_len() {
            return Err(FlatError::BufferLength {
                got: buf.len(),
                expected: self.grad_buffer_len(),
            });
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

fn to_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f32>, FlatError> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| FlatError::Read {
            reason: format!("{e:?}"),
        })
}

struct GradPacker<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    values: Vec<f32>,
    flags: Vec<f32>,
    weight: f32,
    error: Option<FlatError>,
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
pub fn masked_values<B: Backend, M: Module<B>>(
    module: &M,
    mask: &[bool],
) -> Result<Vec<f32>, FlatError> {
    struct Values<'a> {
        mask: &'a [bool],
        index: usize,
        out: Vec<f32>,
        error: Option<FlatError>,
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
        return Err(FlatError::MaskLength {
            params: visitor.index,
            mask: mask.len(),
        });
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
pub fn trainable_values<B: Backend, M: Module<B>>(module: &M) -> Result<Vec<f32>, FlatError> {
    masked_values::<B, M>(module, &trainable_mask::<B, M>(module))
}

/// `module` with the float parameters that `mask` selects (as
/// [`trainable_mask`] orders them) replaced by `values`, in module order, as
/// [`masked_values`] gives them. Ids and whether each parameter requires a
/// gradient are kept.
///
/// # Errors
///
/// When the mask does not have one entry per float parameter, or `values`
/// not one value per selected scalar.
pub fn with_masked_values<B: Backend, M: Module<B>>(
    module: M,
    mask: &[bool],
    values: &[f32],
) -> Result<M, FlatError> {
    struct Sizes<'a> {
        mask: &'a [bool],
        index: usize,
        selected: usize,
    }
    impl<B: Backend> ModuleVisitor<B> for Sizes<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if self.mask.get(self.index).copied().unwrap_or(false) {
                self.selected += param.lazy_shape().num_elements();
            }
            self.index += 1;
        }
    }
    let mut sizes = Sizes {
        mask,
        index: 0,
        selected: 0,
    };
    module.visit(&mut sizes);
    if sizes.index != mask.len() || sizes.selected != values.len() {
        return Err(FlatError::ValueCount {
            values: values.len(),
            mask: mask.len(),
            params: sizes.index,
            selected: sizes.selected,
        });
    }
    struct Load<'a> {
        mask: &'a [bool],
        index: usize,
        values: &'a [f32],
        offset: usize,
    }
    impl<B: Backend> ModuleMapper<B> for Load<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let selected = self.mask.get(self.index).copied().unwrap_or(false);
            self.index += 1;
            let (id, value, mapper) = param.consume();
            if !selected {
                return Param::from_mapped_value(id, value, mapper);
            }
            let shape = value.shape();
            let numel = shape.num_elements();
            let slice = self.values[self.offset..self.offset + numel].to_vec();
            self.offset += numel;
            let mut loaded =
                Tensor::<B, D>::from_data(TensorData::new(slice, shape), &value.device());
            if value.is_require_grad() {
                loaded = loaded.require_grad();
            }
            Param::from_mapped_value(id, loaded, mapper)
        }
    }
    Ok(module.map(&mut Load {
        mask,
        index: 0,
        values,
        offset: 0,
    }))
}

/// Give every rank rank 0's values of all of `module`'s float parameters,
/// trainable and frozen (a frozen part may be random too, such as an
/// adapter's compensation pair): two broadcasts, the count and then the
/// values. Ids stay those of each process.
///
/// # Errors
///
/// When this rank's module holds another number of values than rank 0's.
pub fn broadcast_from_root<B: Backend, M: Module<B>, X: super::Exchange + ?Sized>(
    module: M,
    exchange: &X,
) -> Result<M, FlatError> {
    let mask = vec![true; trainable_mask::<B, M>(&module).len()];
    let mut values = masked_values::<B, M>(&module, &mask)?;
    // f64 would be exact for any count; two f32 halves keep one buffer type.
    let mut count = [
        (values.len() >> 24) as f32,
        (values.len() & 0xff_ffff) as f32,
    ];
    exchange.broadcast_from_root(&mut count);
    let root = ((count[0] as usize) << 24) | count[1] as usize;
    if root != values.len() {
        return Err(FlatError::RanksDiffer {
            rank: exchange.rank(),
            values: values.len(),
            root,
        });
    }
    exchange.broadcast_from_root(&mut values);
    with_masked_values::<B, M>(module, &mask, &values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::SingleProcess;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::{Linear, LinearConfig};

    type B = Autodiff<NdArray>;

    #[derive(Module, Debug)]
    struct Tiny<B: Backend> {
        frozen: Param<Tensor<B, 2>>,
        first: Linear<B>,
        unused: Linear<B>,
        second: Linear<B>,
    }

    fn tiny() -> Tiny<B> {
        let device = Default::default();
        let frozen = Tensor::<B, 2>::from_data(
            TensorData::new(vec![0.5f32, -1.0, 2.0, 0.25, 1.5, -0.75], [3, 2]),
            &device,
        );
        Tiny {
            frozen: Param::from_tensor(frozen).set_require_grad(false),
            first: LinearConfig::new(3, 4).init(&device),
            unused: LinearConfig::new(2, 2).init(&device),
            second: LinearConfig::new(4, 2).init(&device),
        }
    }

    fn input(rows: &[[f32; 2]]) -> Tensor<B, 2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 2]), &Default::default())
    }

    /// Mean over the batch of a scalar per example.
    fn loss(model: &Tiny<B>, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let h = x.matmul(model.frozen.val().transpose());
        let y = model.second.forward(model.first.forward(h).tanh());
        y.powf_scalar(2.0).sum_dim(1).mean()
    }

    fn values(grads: &GradientsParams, param: &Param<Tensor<B, 2>>) -> Vec<f32> {
        grads
            .get::<NdArray, 2>(param.id)
            .expect("a gradient")
            .into_data()
            .to_vec()
            .unwrap()
    }

    #[test]
    fn layout_counts_trainable_values_only() {
        let layout = GradLayout::of::<B, _>(&tiny());
        // first 3x4+4, unused 2x2+2, second 4x2+2; the frozen 3x2 is left out.
        assert_eq!(layout.num_values(), 16 + 6 + 10);
        assert_eq!(layout.num_tensors(), 6);
        assert_eq!(layout.grad_buffer_len(), 32 + 6 + 2);
        assert_eq!(layout.bytes_per_step(), 40 * 4);
    }

    #[test]
    fn summed_buffers_give_the_gradient_of_the_combined_batch() {
        let model = tiny();
        let layout = GradLayout::of::<B, _>(&model);
        let rows = [[1.0, -2.0], [0.5, 0.25], [-1.5, 3.0], [2.0, 1.0]];
        // "Rank 0" has 3 examples, "rank 1" one: unequal batches.
        let mut sum = vec![0.0f32; layout.grad_buffer_len()];
        let mut losses = Vec::new();
        for part in [&rows[..3], &rows[3..]] {
            let l = loss(&model, input(part));
            let value = l.clone().into_scalar() as f64;
            losses.push((part.len(), value));
            let grads = GradientsParams::from_grads(l.backward(), &model);
            let buf = layout
                .pack::<B, _>(&model, grads, part.len(), value)
                .unwrap();
            sum.iter_mut().zip(&buf).for_each(|(s, b)| *s += b);
        }
        let (avg, step) = layout.unpack::<B, _>(&model, &sum).unwrap();

        let combined = loss(&model, input(&rows));
        let expected_loss = combined.clone().into_scalar() as f64;
        let expected = GradientsParams::from_grads(combined.backward(), &model);
        assert_eq!(step.examples, 4.0);
        assert!(
            (step.loss - expected_loss).abs() < 1e-5,
            "{step:?} vs {expected_loss}"
        );
        let weighted = (losses[0].0 as f64 * losses[0].1 + losses[1].1) / 4.0;
        assert!((step.loss - weighted).abs() < 1e-5);
        for param in [&model.first.weight, &model.second.weight] {
            let (a, b) = (values(&avg, param), values(&expected, param));
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
        // Used nowhere, so no gradient on any rank: none after the exchange either.
        assert!(avg.get::<NdArray, 2>(model.unused.weight.id).is_none());
        assert_eq!(avg.len(), expected.len());
    }

    #[test]
    fn a_buffer_of_another_length_is_an_error() {
        let model = tiny();
        let layout = GradLayout::of::<B, _>(&model);
        let err = layout
            .unpack::<B, _>(&model, &vec![0.0; layout.grad_buffer_len() - 1])
            .unwrap_err();
        assert_eq!(
            err,
            FlatError::BufferLength {
                got: 39,
                expected: 40
            }
        );
        assert!(err.to_string().contains("expected 40"), "{err}");
    }

    #[test]
    fn masked_values_round_trip_and_keep_frozen_parameters_frozen() {
        let model = tiny();
        let mask = trainable_mask::<B, _>(&model);
        assert_eq!(mask, vec![false, true, true, true, true, true, true]);
        let all = vec![true; mask.len()];
        let new: Vec<f32> = (0..38).map(|i| i as f32 * 0.5).collect();
        let loaded = with_masked_values::<B, _>(model, &all, &new).unwrap();
        assert_eq!(masked_values::<B, _>(&loaded, &all).unwrap(), new);
        assert!(!loaded.frozen.val().is_require_grad());
        assert!(loaded.first.weight.val().is_require_grad());
        // The trainable ones alone: the frozen 3x2 comes first in module order.
        assert_eq!(
            trainable_values::<B, _>(&loaded).unwrap(),
            new[6..].to_vec()
        );
        let err = with_masked_values::<B, _>(loaded, &all, &new[1..]).unwrap_err();
        assert_eq!(
            err,
            FlatError::ValueCount {
                values: 37,
                mask: 7,
                params: 7,
                selected: 38
            }
        );
        let err = masked_values::<B, _>(&tiny(), &[true; 6]).unwrap_err();
        assert_eq!(err, FlatError::MaskLength { params: 7, mask: 6 });
    }

    #[test]
    fn broadcast_on_one_rank_keeps_the_module() {
        let model = tiny();
        let all = vec![true; 7];
        let before = masked_values::<B, _>(&model, &all).unwrap();
        let after = broadcast_from_root::<B, _, _>(model, &SingleProcess).unwrap();
        assert_eq!(masked_values::<B, _>(&after, &all).unwrap(), before);
    }
}
