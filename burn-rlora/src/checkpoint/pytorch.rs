//! [`PyTorchLayers`]: a burn-store adapter that loads PyTorch files into
//! models with [`RLoraLinear`](crate::RLoraLinear) layers.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::TensorData;
use burn_store::{ModuleAdapter, PyTorchToBurnAdapter, TensorSnapshot};

use crate::adapt::{visit_layers, Adapt, LayerVisitor};
use crate::RLoraLinear;

/// burn-store's [`PyTorchToBurnAdapter`], plus the transpose of the `weight`
/// of every [`RLoraLinear`] of one model (PyTorch `[out, in]` to Burn
/// `[in, out]`).
///
/// burn-store transposes the weights of the modules it knows to be
/// `Linear`; an `RLoraLinear` stores its base under the same names, so a
/// plain PyTorch checkpoint loads into it, but burn-store does not know it
/// for a linear layer. This adapter finds the model's layers by type
/// ([`Adapt`]) and transposes their weights by path.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::module::Module;
/// use burn::nn::LinearConfig;
/// use burn::tensor::backend::Backend;
/// use burn_rlora::checkpoint::PyTorchLayers;
/// use burn_rlora::{Adapt, RLoraLinear};
/// use burn_store::{ModuleSnapshot, SafetensorsStore};
///
/// #[derive(Module, Adapt, Debug)]
/// struct Mlp<B: Backend> {
///     up: RLoraLinear<B>,
/// }
///
/// let device = Default::default();
/// let mut model = Mlp::<NdArray> { up: LinearConfig::new(3, 2).init(&device).into() };
/// // A PyTorch file would be read with, for example, `SafetensorsStore::from_file(path)`.
/// let mut store = SafetensorsStore::from_bytes(None)
///     .with_from_adapter(PyTorchLayers::for_model(&model));
/// # let _ = (&mut model, &mut store);
/// ```
#[derive(Debug, Clone)]
pub struct PyTorchLayers {
    /// The Burn paths (`<layer>.weight`) of the weights to transpose.
    weights: Arc<BTreeSet<String>>,
}

impl PyTorchLayers {
    /// The adapter for the layers of `model`, plain or adapted.
    pub fn for_model<M: Adapt>(model: &M) -> Self {
        struct Weights(BTreeSet<String>);
        impl LayerVisitor for Weights {
            fn visit<B: Backend>(&mut self, path: &str, _: &RLoraLinear<B>) {
                let weight = if path.is_empty() {
                    "weight".to_string()
                } else {
                    format!("{path}.weight")
                };
                self.0.insert(weight);
            }
        }
        let mut weights = Weights(BTreeSet::new());
        visit_layers(model, &mut weights);
        Self {
            weights: Arc::new(weights.0),
        }
    }
}

/// The transpose of a 2-D tensor, of any element type.
fn transpose(data: TensorData) -> TensorData {
    let (rows, cols) = (data.shape[0], data.shape[1]);
    let size = data.dtype.size();
    let src = data.as_bytes();
    let mut out = vec![0u8; src.len()];
    for i in 0..rows {
        for j in 0..cols {
            let (s, d) = ((i * cols + j) * size, (j * rows + i) * size);
            out[d..d + size].copy_from_slice(&src[s..s + size]);
        }
    }
    TensorData::from_bytes_vec(out, [cols, rows], data.dtype)
}

impl ModuleAdapter for PyTorchLayers {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        let snapshot = PyTorchToBurnAdapter.adapt(snapshot);
        if snapshot.shape.len() != 2 || !self.weights.contains(&snapshot.full_path()) {
            return snapshot;
        }
        let data = snapshot.clone_data_fn();
        let shape = [snapshot.shape[1], snapshot.shape[0]];
        TensorSnapshot::from_closure(
            Rc::new(move || data().map(transpose)),
            snapshot.dtype,
            shape.into(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn get_alternative_param_name(&self, param_name: &str, container_type: &str) -> Option<String> {
        PyTorchToBurnAdapter.get_alternative_param_name(param_name, container_type)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}
