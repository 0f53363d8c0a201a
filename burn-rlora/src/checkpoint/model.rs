//! Finding the adapted layers of a whole model, with burn-store's collector,
//! and moving their tensors in and out.

use std::collections::BTreeMap;

use burn::module::{Module, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::DType;
use burn_store::{ModuleSnapshot, PathFilter, TensorSnapshot};

use super::error::CheckpointError;
use super::format::{HostTensor, ModuleTensors};

/// The container type Burn's derive gives [`RLoraLinear`](crate::RLoraLinear).
const LAYER_TYPE: &str = "Struct:RLoraLinear";

/// The container type Burn's derive gives [`AdaptableLinear`](crate::AdaptableLinear),
/// whose variant name (`Adapted`) is left out of a layer's module name.
const ADAPTABLE_TYPE: &str = "Enum:AdaptableLinear";

/// The fields of `RLoraLinear` that hold adapter tensors.
const FIELDS: [&str; 5] = ["lora_a", "lora_b", "lora_route", "lora_a0", "lora_b0"];

/// One adapted layer found in a model.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// The Burn path of the layer, as a stack of names.
    pub path: Vec<String>,
    /// The layer's module name: its path without the variant of an
    /// enclosing `AdaptableLinear`, as `AdaptConfig` sees it.
    pub name: Vec<String>,
    /// The adapter tensors of the layer, by field name.
    pub tensors: BTreeMap<String, TensorSnapshot>,
}

impl Slot {
    /// The layer's module name, joined by `.` (files and messages use it).
    pub fn path_str(&self) -> String {
        self.name.join(".")
    }

    /// The layer's Burn path, joined by `.` (what a `ModuleVisitor` sees).
    pub fn burn_path_str(&self) -> String {
        self.path.join(".")
    }

    fn dims(&self, field: &str) -> Option<[usize; 2]> {
        self.tensors
            .get(field)
            .and_then(|t| <[usize; 2]>::try_from(t.shape.to_vec()).ok())
    }

    /// `(d_input, d_output, r, N)` from the shapes of `lora_a` and `lora_b`.
    pub fn shape(&self) -> (usize, usize, usize, usize) {
        let [d_in, r] = self.dims("lora_a").unwrap_or([0, 0]);
        let [nr, d_out] = self.dims("lora_b").unwrap_or([0, 0]);
        (d_in, d_out, r, nr.checked_div(r).unwrap_or(0))
    }

    pub fn has(&self, field: &str) -> bool {
        self.tensors.contains_key(field)
    }

    pub fn dtype(&self) -> DType {
        self.tensors
            .get("lora_a")
            .map(|t| t.dtype)
            .unwrap_or(DType::F32)
    }

    fn host(&self, field: &str) -> Result<Option<HostTensor>, CheckpointError> {
        let Some(t) = self.tensors.get(field) else {
            return Ok(None);
        };
        let data = t.to_data().map_err(|e| {
            CheckpointError::model_tensors(format!("{}.{field}", self.path_str()), e)
        })?;
        Ok(Some(HostTensor::from_data(&data)))
    }

    /// The layer's adapter tensors in PyTorch layout.
    pub fn to_module_tensors(&self) -> Result<ModuleTensors, CheckpointError> {
        let (_, d_out, r, n) = self.shape();
        let missing = |f: &str| missing_field(&self.path_str(), f);
        let a = self.host("lora_a")?.ok_or_else(|| missing("lora_a"))?;
        let b = self.host("lora_b")?.ok_or_else(|| missing("lora_b"))?;
        let heads = (0..n)
            .map(|i| {
                let rows = b.data[i * r * d_out..(i + 1) * r * d_out].to_vec();
                HostTensor::new(vec![r, d_out], rows).transpose()
            })
            .collect();
        let compensation = match (self.host("lora_a0")?, self.host("lora_b0")?) {
            (Some(a0), Some(b0)) => Some((a0.transpose(), b0.transpose())),
            _ => None,
        };
        Ok(ModuleTensors {
            a: a.transpose(),
            heads,
            route: self.host("lora_route")?.map(|t| t.transpose()),
            compensation,
        })
    }

    /// Snapshots that put `tensors` into this layer (Burn layout, the layer's dtype).
    pub fn snapshots(&self, tensors: &ModuleTensors) -> Vec<TensorSnapshot> {
        let dtype = self.dtype();
        let snap = |field: &str, t: HostTensor| {
            let mut path = self.path.clone();
            path.push(field.to_string());
            TensorSnapshot::from_data(t.to_data(dtype), path, Vec::new(), ParamId::new())
        };
        let mut out = vec![snap("lora_a", tensors.a.transpose())];
        let stacked: Vec<f64> = tensors
            .heads
            .iter()
            .flat_map(|h| h.transpose().data)
            .collect();
        let (_, d_out) = tensors.dims();
        let rows = stacked.len() / d_out.max(1);
        out.push(snap("lora_b", HostTensor::new(vec![rows, d_out], stacked)));
        if let (Some(route), true) = (&tensors.route, self.has("lora_route")) {
            out.push(snap("lora_route", route.transpose()));
        }
        if let (Some((a0, b0)), true) = (&tensors.compensation, self.has("lora_a0")) {
            out.push(snap("lora_a0", a0.transpose()));
            out.push(snap("lora_b0", b0.transpose()));
        }
        out
    }
}

/// [`CheckpointError::ModelTensors`] for an adapted layer at `path` that lacks `field`.
pub(crate) fn missing_field(path: &str, field: &str) -> CheckpointError {
    CheckpointError::model_tensors(path, format!("the layer has no {field}"))
}

/// Every `RLoraLinear` in `model`, in visiting order, with its adapter tensors
/// (lazy: no data is copied until asked for).
pub(crate) fn adapted_layers<B: Backend, M: Module<B>>(model: &M) -> Vec<Slot> {
    let filter = PathFilter::new().with_predicate(|_, containers| containers.contains(LAYER_TYPE));
    let mut slots: Vec<Slot> = Vec::new();
    for snapshot in model.collect(Some(filter), None, false) {
        if snapshot
            .container_stack
            .as_ref()
            .and_then(|c| c.last())
            .map(String::as_str)
            != Some(LAYER_TYPE)
        {
            continue;
        }
        let Some(mut path) = snapshot.path_stack.clone() else {
            continue;
        };
        let Some(field) = path.pop() else { continue };
        // The collector pushes a path entry and a container entry together.
        let containers = snapshot.container_stack.as_deref().unwrap_or_default();
        let name = path
            .iter()
            .zip(
                containers
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::repeat("")),
            )
            .filter(|(_, container)| *container != ADAPTABLE_TYPE)
            .map(|(segment, _)| segment.clone())
            .collect();
        if !FIELDS.contains(&field.as_str()) {
            continue;
        }
        match slots.last_mut() {
            Some(slot) if slot.path == path => {
                slot.tensors.insert(field, snapshot);
            }
            _ => slots.push(Slot {
                path,
                name,
                tensors: BTreeMap::from([(field, snapshot)]),
            }),
        }
    }
    slots
}
