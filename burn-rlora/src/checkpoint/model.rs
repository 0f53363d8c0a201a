//! The adapted layers of a whole model, found by type through
//! [`Adapt`](crate::Adapt): their shapes, their tensors on the host, and
//! putting a file's tensors into them.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

use super::error::CheckpointError;
use super::format::{HostTensor, ModuleTensors};
use crate::adapt::{map_layers, visit_layers, Adapt, LayerMapper, LayerVisitor};
use crate::{RLoraAdapter, RLoraLinear};

/// One adapted layer of a model: its path and what the checks need of it.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// The layer's path in the model (its module name before any naming).
    pub path: String,
    /// `d_input`.
    pub d_in: usize,
    /// `d_output`.
    pub d_out: usize,
    /// The rank `r`.
    pub rank: usize,
    /// The number of heads `N`.
    pub heads: usize,
    /// The layer has a router.
    pub has_route: bool,
    /// The layer has a compensation pair.
    pub has_compensation: bool,
    /// The float type of the adapter's tensors.
    pub dtype: DType,
}

impl Slot {
    fn of<B: Backend>(path: &str, adapter: &RLoraAdapter<B>) -> Self {
        Self {
            path: path.to_string(),
            d_in: adapter.d_input(),
            d_out: adapter.d_output(),
            rank: adapter.rank(),
            heads: adapter.num_heads(),
            has_route: adapter.lora_route.is_some(),
            has_compensation: adapter.has_compensation(),
            dtype: adapter.lora_a.val().dtype(),
        }
    }
}

/// Every adapted layer of `model`, in field order.
///
/// # Errors
///
/// [`CheckpointError::NoAdapters`] for a model without adapted layers.
pub(crate) fn adapted_layers<M: Adapt>(model: &M) -> Result<Vec<Slot>, CheckpointError> {
    struct Slots(Vec<Slot>);
    impl LayerVisitor for Slots {
        fn visit<B: Backend>(&mut self, path: &str, layer: &RLoraLinear<B>) {
            if let Some(adapter) = layer.adapter() {
                self.0.push(Slot::of(path, adapter));
            }
        }
    }
    let mut slots = Slots(Vec::new());
    visit_layers(model, &mut slots);
    if slots.0.is_empty() {
        return Err(CheckpointError::NoAdapters);
    }
    Ok(slots.0)
}

/// The adapter tensors of every adapted layer of `model`, in PyTorch layout,
/// with the layer's [`Slot`], in field order.
///
/// # Errors
///
/// [`CheckpointError::NoAdapters`] for a model without adapted layers;
/// [`CheckpointError::ModelTensors`] if a tensor cannot be read back.
pub(crate) fn adapter_tensors<M: Adapt>(
    model: &M,
) -> Result<Vec<(Slot, ModuleTensors)>, CheckpointError> {
    struct Collect(Vec<Result<(Slot, ModuleTensors), CheckpointError>>);
    impl LayerVisitor for Collect {
        fn visit<B: Backend>(&mut self, path: &str, layer: &RLoraLinear<B>) {
            if let Some(adapter) = layer.adapter() {
                let tensors = to_module_tensors(path, adapter);
                self.0.push(tensors.map(|t| (Slot::of(path, adapter), t)));
            }
        }
    }
    let mut collect = Collect(Vec::new());
    visit_layers(model, &mut collect);
    if collect.0.is_empty() {
        return Err(CheckpointError::NoAdapters);
    }
    collect.0.into_iter().collect()
}

/// A tensor's values on the host, in Burn's layout.
fn host<B: Backend>(
    path: &str,
    field: &str,
    t: Tensor<B, 2>,
) -> Result<HostTensor, CheckpointError> {
    let data = t
        .try_into_data()
        .map_err(|e| CheckpointError::model_tensors(format!("{path}.{field}"), format!("{e:?}")))?;
    Ok(HostTensor::from_data(&data))
}

/// The adapter's tensors in PyTorch layout.
fn to_module_tensors<B: Backend>(
    path: &str,
    adapter: &RLoraAdapter<B>,
) -> Result<ModuleTensors, CheckpointError> {
    let (r, d_out) = (adapter.rank(), adapter.d_output());
    let optional = |field: &str, p: &Option<Param<Tensor<B, 2>>>| {
        p.as_ref()
            .map(|p| host(path, field, p.val()).map(|t| t.transpose()))
            .transpose()
    };
    let a = host(path, "lora_a", adapter.lora_a.val())?;
    let b = host(path, "lora_b", adapter.lora_b.val())?;
    let heads = (0..adapter.num_heads())
        .map(|i| {
            let rows = b.data[i * r * d_out..(i + 1) * r * d_out].to_vec();
            HostTensor::new(vec![r, d_out], rows).transpose()
        })
        .collect();
    let compensation = match (
        optional("lora_a0", &adapter.lora_a0)?,
        optional("lora_b0", &adapter.lora_b0)?,
    ) {
        (Some(a0), Some(b0)) => Some((a0, b0)),
        _ => None,
    };
    Ok(ModuleTensors {
        a: a.transpose(),
        heads,
        route: optional("lora_route", &adapter.lora_route)?,
        compensation,
    })
}

/// `value` (Burn layout) in place of `param`'s tensor, on its device and in
/// its dtype, keeping its id, mappers and trainable/frozen flag.
fn replace<B: Backend>(
    param: Param<Tensor<B, 2>>,
    value: &HostTensor,
    key: &str,
) -> Result<Param<Tensor<B, 2>>, CheckpointError> {
    let (id, old, mapper) = param.consume();
    let found = old.dims().to_vec();
    if found != value.shape {
        return Err(CheckpointError::ShapeMismatch {
            key: key.to_string(),
            expected: found,
            found: value.shape.clone(),
        });
    }
    let (device, dtype, require_grad) = (old.device(), old.dtype(), old.is_require_grad());
    let new = Tensor::<B, 2>::from_data(value.to_data(dtype), (&device, dtype))
        .set_require_grad(require_grad);
    Ok(Param::from_mapped_value(id, new, mapper))
}

/// Puts the file's tensors (PyTorch layout, by the model's layer paths)
/// into the adapted layers of a model; layers without an entry are kept.
pub(crate) struct ApplyTensors<'a> {
    /// Layer path -> the tensors to load.
    pub tensors: BTreeMap<String, &'a ModuleTensors>,
}

impl LayerMapper for ApplyTensors<'_> {
    type Error = CheckpointError;

    fn map<B: Backend>(
        &mut self,
        path: &str,
        layer: RLoraLinear<B>,
    ) -> Result<RLoraLinear<B>, CheckpointError> {
        let (Some(adapter), Some(t)) = (layer.adapter.clone(), self.tensors.get(path)) else {
            return Ok(layer);
        };
        let key = |field: &str| format!("{path}.adapter.{field}");
        let stacked: Vec<f64> = t.heads.iter().flat_map(|h| h.transpose().data).collect();
        let d_out = t.heads.first().map_or(0, |h| h.shape[0]);
        let rows = stacked.len() / d_out.max(1);
        let heads = HostTensor::new(vec![rows, d_out], stacked);
        let optional =
            |p: Option<Param<Tensor<B, 2>>>, v: Option<&HostTensor>, field: &str| match (p, v) {
                (Some(p), Some(v)) => replace(p, &v.transpose(), &key(field)).map(Some),
                (p, _) => Ok(p),
            };
        let adapter = RLoraAdapter {
            lora_a: replace(adapter.lora_a, &t.a.transpose(), &key("lora_a"))?,
            lora_b: replace(adapter.lora_b, &heads, &key("lora_b"))?,
            lora_route: optional(adapter.lora_route, t.route.as_ref(), "lora_route")?,
            lora_a0: optional(
                adapter.lora_a0,
                t.compensation.as_ref().map(|(a0, _)| a0),
                "lora_a0",
            )?,
            lora_b0: optional(
                adapter.lora_b0,
                t.compensation.as_ref().map(|(_, b0)| b0),
                "lora_b0",
            )?,
            config: adapter.config,
        };
        Ok(RLoraLinear {
            adapter: Some(adapter),
            ..layer
        })
    }
}

/// `model` with `tensors` (by layer path) loaded into its adapted layers.
///
/// # Errors
///
/// [`CheckpointError::ShapeMismatch`] for a tensor whose shape is not the layer's.
pub(crate) fn apply_tensors<M: Adapt>(
    model: M,
    tensors: BTreeMap<String, &ModuleTensors>,
) -> Result<M, CheckpointError> {
    map_layers(model, &mut ApplyTensors { tensors })
}
