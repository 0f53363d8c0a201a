//! Merging the adapters of a whole model into its base weights, where exact.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::TensorData;
use burn_store::{ModuleSnapshot, SafetensorsStore};
use safetensors::SafeTensors;

use super::atomic::write_file;
use super::error::CheckpointError;
use super::format::{burn_dtype, AdapterFile, HostTensor, ModuleTensors};
use super::model::adapted_layers;
use crate::adapt::{map_layers, Adapt, LayerMapper};
use crate::config::{RLoraConfig, RouterKind};
use crate::error::RLoraError;
use crate::RLoraLinear;

fn not_mergeable(what: &str, heads: usize) -> CheckpointError {
    CheckpointError::Layer(RLoraError::NotMergeable {
        reason: format!(
            "{what} has a softmax router over {heads} heads, so the head weights depend on the \
             input and no single weight matrix reproduces it; merge only adapters with one head \
             or the uniform router, or keep the adapter at inference"
        ),
    })
}

/// The change the adapter makes to the base weight, in PyTorch layout
/// `[out, in]`: `s * mean_i(B_i) A - s * Bbar0 A0`.
///
/// This is the host-side counterpart of the layer's merge, for adapter files:
/// [`merge_safetensors`] merges a file into a base file with no model and no
/// backend (this crate's `store` feature enables none), in f64 from the
/// file's values. A model in memory is merged on its device by
/// [`merge_model`] with the layer's own math.
pub(crate) fn weight_delta(m: &ModuleTensors, scaling: f64) -> HostTensor {
    let (d_in, d_out) = m.dims();
    let r = m.a.shape[0];
    let n = m.heads.len() as f64;
    let mut mean = vec![0.0; d_out * r];
    for h in &m.heads {
        mean.iter_mut().zip(&h.data).for_each(|(a, b)| *a += b / n);
    }
    let mut delta = vec![0.0; d_out * d_in];
    let mut add = |b: &[f64], a: &[f64], sign: f64| {
        for o in 0..d_out {
            for k in 0..r {
                let bk = sign * scaling * b[o * r + k];
                if bk == 0.0 {
                    continue;
                }
                let row = &a[k * d_in..(k + 1) * d_in];
                delta[o * d_in..(o + 1) * d_in]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(d, x)| *d += bk * x);
            }
        }
    };
    add(&mean, &m.a.data, 1.0);
    if let Some((a0, b0)) = &m.compensation {
        add(&b0.data, &a0.data, -1.0);
    }
    HostTensor::new(vec![d_out, d_in], delta)
}

/// The mapper of [`merge_model`]: every adapted layer becomes the plain
/// layer of its merged base.
struct Merge;

impl LayerMapper for Merge {
    type Error = CheckpointError;

    fn map<B: Backend>(
        &mut self,
        path: &str,
        layer: RLoraLinear<B>,
    ) -> Result<RLoraLinear<B>, CheckpointError> {
        let merged = layer.merge().map_err(|e| match e {
            RLoraError::NotMergeable { .. } => not_mergeable(
                &format!("layer '{path}'"),
                layer.adapter().map_or(0, |a| a.num_heads()),
            ),
            other => CheckpointError::Layer(other),
        })?;
        Ok(RLoraLinear::from(merged))
    }
}

/// [`CheckpointError::MergeConfigMismatch`] unless the layer at `path`, of
/// rank `rank` with `heads` heads, was built with `config`.
fn check_layer_against(
    path: &str,
    (rank, heads): (usize, usize),
    config: &RLoraConfig,
) -> Result<(), CheckpointError> {
    for (field, layer, expected) in [
        ("rank", rank, config.rank),
        ("num_heads", heads, config.num_heads),
    ] {
        if layer != expected {
            return Err(CheckpointError::MergeConfigMismatch {
                layer: path.to_string(),
                field,
                config: expected,
                found: layer,
            });
        }
    }
    Ok(())
}

/// Fold every adapter of `model` into its base weight, where exact (every
/// layer has one head or the uniform router); `config` is the config the
/// layers were built with, checked against each of them.
///
/// Returns the same model type in which every adapted `RLoraLinear` is a
/// plain layer holding the merged weight `W + s * A mean_i(B_i) - s * A0
/// Bbar0` (frozen, in the base's layout), so it computes the same function as
/// before (to float rounding). The delta is computed on the model's device by
/// [`RLoraLinear::merge`]. To get a model type with `Linear` layers, use
/// [`merge_into`]; to write the merged base, [`save_merged`].
///
/// # Errors
///
/// [`CheckpointError::Layer`] with [`RLoraError::NotMergeable`] for a softmax
/// router; [`CheckpointError::MergeConfigMismatch`] when a layer's rank or
/// number of heads differs from `config`'s; [`CheckpointError::NoAdapters`]
/// for a model without adapted layers.
pub fn merge_model<M: Adapt>(model: M, config: &RLoraConfig) -> Result<M, CheckpointError> {
    for slot in adapted_layers(&model)? {
        if config.router == RouterKind::Softmax || slot.has_route {
            return Err(not_mergeable(&format!("layer '{}'", slot.path), slot.heads));
        }
        check_layer_against(&slot.path, (slot.rank, slot.heads), config)?;
    }
    map_layers(model, &mut Merge)
}

/// The merged model's tensors as safetensors bytes, in Burn's names and
/// layout: the merged layers are plain, so the file holds the base tensors
/// only and loads with burn-store into the plain model type (the same model
/// with `Linear` in place of `RLoraLinear`).
///
/// # Errors
///
/// As [`merge_model`], plus [`CheckpointError::ModelTensors`] if burn-store fails.
pub(crate) fn merged_bytes<B: Backend, M: Module<B> + Adapt>(
    model: M,
    config: &RLoraConfig,
) -> Result<Vec<u8>, CheckpointError> {
    let merged = merge_model(model, config)?;
    let mut store = SafetensorsStore::from_bytes(None);
    let fail = |e: burn_store::SafetensorsStoreError| {
        CheckpointError::model_tensors("the merged model", e)
    };
    merged.save_into(&mut store).map_err(fail)?;
    store.get_bytes().map_err(fail)
}

/// Merge (see [`merge_model`]) and save the merged base weights of the whole
/// model to `path` as safetensors (Burn names and layout, written
/// atomically): a layer `dense` is saved as `dense.weight` and `dense.bias`,
/// the names of a plain `Linear`.
///
/// # Errors
///
/// As [`merge_model`], plus [`CheckpointError::ModelTensors`] if burn-store
/// fails and [`CheckpointError::Io`].
pub fn save_merged<B: Backend, M: Module<B> + Adapt>(
    model: M,
    config: &RLoraConfig,
    path: impl AsRef<Path>,
) -> Result<(), CheckpointError> {
    let bytes = merged_bytes(model, config)?;
    write_file(path.as_ref(), |f| f.write_all(&bytes))
}

/// Merge `model` and load the result into `plain`, the same model with
/// `Linear` in place of every `RLoraLinear`: this returns the plain model type.
/// `plain` can also be the same model type with its `RLoraLinear` layers plain.
///
/// # Errors
///
/// As [`merge_model`], plus [`CheckpointError::ModelTensors`] if burn-store
/// fails; [`CheckpointError::ConfigMismatch`] if `plain` does
/// not take every tensor (its structure differs).
pub fn merge_into<B: Backend, M: Module<B> + Adapt, P: Module<B>>(
    model: M,
    config: &RLoraConfig,
    mut plain: P,
) -> Result<P, CheckpointError> {
    let bytes = merged_bytes(model, config)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = plain
        .load_from(&mut store)
        .map_err(|e| CheckpointError::model_tensors("the plain model", e))?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(CheckpointError::mismatch(
            "plain model",
            "the adapted model's structure with Linear in place of RLoraLinear",
            format!(
                "errors {:?}, missing {:?}, unused {:?}",
                result
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>(),
                result.missing,
                result.unused
            ),
        ));
    }
    Ok(plain)
}

/// The base tensor `key` of `st` plus module `m`'s delta (times `scaling`),
/// in the base tensor's dtype: its dtype, shape and bytes.
fn merged_weight(
    st: &SafeTensors<'_>,
    key: &str,
    m: &ModuleTensors,
    scaling: f64,
) -> Result<(safetensors::Dtype, Vec<usize>, Vec<u8>), CheckpointError> {
    let (d_in, d_out) = m.dims();
    let view = st.tensor(key).map_err(|_| CheckpointError::MissingKey {
        key: key.to_string(),
        expected: format!("{:?} in the base model", [d_out, d_in]),
    })?;
    if view.shape() != [d_out, d_in] {
        return Err(CheckpointError::ShapeMismatch {
            key: key.to_string(),
            expected: vec![d_out, d_in],
            found: view.shape().to_vec(),
        });
    }
    let Some(dtype) = burn_dtype(view.dtype()) else {
        return Err(CheckpointError::UnsupportedDtype {
            key: key.to_string(),
            found: format!("{:?}", view.dtype()),
        });
    };
    let w = TensorData::from_bytes_vec(view.data().to_vec(), vec![d_out, d_in], dtype);
    let delta = weight_delta(m, scaling);
    let merged: Vec<f64> = w
        .iter::<f64>()
        .zip(&delta.data)
        .map(|(w, d)| w + d)
        .collect();
    let bytes = TensorData::new(merged, vec![d_out, d_in])
        .convert_dtype(dtype)
        .as_bytes()
        .to_vec();
    Ok((view.dtype(), vec![d_out, d_in], bytes))
}

/// Merge an adapter file into a base model's safetensors file, in PyTorch
/// names and layout: for every adapted module `m`, `<m>.weight` `[out, in]`
/// (after removing `strip_prefix` from the adapter's module name) gets
/// `s * mean_i(B_i) A - s * Bbar0 A0`. Other tensors and the base file's
/// `__metadata__` are copied unchanged. This is what the CLI's `merge` does.
///
/// # Errors
///
/// [`CheckpointError::NotMergeable`](RLoraError::NotMergeable) for a softmax
/// router; [`CheckpointError::MissingKey`] / [`CheckpointError::ShapeMismatch`]
/// when the base lacks a module's weight; [`CheckpointError::CorruptTensors`]
/// for a bad base file; [`CheckpointError::WouldLoseData`] when two modules
/// map to the same base weight after removing `strip_prefix`.
pub fn merge_safetensors(
    adapter: &AdapterFile,
    base: &[u8],
    strip_prefix: &str,
) -> Result<Vec<u8>, CheckpointError> {
    let config = adapter.config.rlora_config();
    let corrupt = |e: safetensors::SafeTensorError| CheckpointError::CorruptTensors {
        what: "base model".into(),
        reason: e.to_string(),
    };
    if let Some((name, m)) = adapter
        .modules
        .iter()
        .find(|(_, m)| config.router == RouterKind::Softmax || m.route.is_some())
    {
        return Err(not_mergeable(&format!("module '{name}'"), m.heads.len()));
    }
    let st = SafeTensors::deserialize(base).map_err(corrupt)?;
    let (_, header) = SafeTensors::read_metadata(base).map_err(corrupt)?;
    let mut replaced: BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let mut sources: BTreeMap<String, &str> = BTreeMap::new();
    for (name, m) in &adapter.modules {
        let key = format!("{}.weight", name.strip_prefix(strip_prefix).unwrap_or(name));
        if let Some(first) = sources.insert(key.clone(), name) {
            return Err(CheckpointError::WouldLoseData {
                action: format!("merge modules '{first}' and '{name}'"),
                reason: format!(
                    "both map to '{key}' after removing the prefix '{strip_prefix}', so one \
                     module's delta would be dropped"
                ),
            });
        }
        let merged = merged_weight(&st, &key, m, config.scaling())?;
        replaced.insert(key, merged);
    }
    let mut all: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        match replaced.remove(&name) {
            Some((dtype, shape, bytes)) => all.push((name, dtype, shape, bytes)),
            None => all.push((
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )),
        }
    }
    let views = all
        .iter()
        .map(|(n, d, s, b)| {
            safetensors::tensor::TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt)?;
    // The base's own `__metadata__` (format, provenance) is kept.
    safetensors::tensor::serialize(views, header.metadata().clone()).map_err(corrupt)
}
