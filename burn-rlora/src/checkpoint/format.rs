//! The on-disk format: `adapter_config.json`, tensor names, and the
//! conversion between safetensors / PyTorch tensors and host arrays.
//!
//! Most users need only [`save_adapter`](super::save_adapter),
//! [`load_adapter`](super::load_adapter) and [`AdapterConfig`]; the types
//! here are for tools that read or write adapter files themselves (an
//! [`AdapterFile`] in memory, the [`ModuleTensors`] of one module in
//! PyTorch layout, the name of each [`TensorRole`]).

use std::collections::{BTreeMap, HashMap};

use burn::tensor::{DType, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::error::CheckpointError;
use crate::config::{RLoraConfig, RouterKind};

/// The format version this build writes, stored as `burn_rlora_format`.
pub const FORMAT_VERSION: u32 = 1;
/// The format versions this build reads.
pub const SUPPORTED_VERSIONS: [u32; 1] = [1];
/// The tensor file of an adapter directory.
pub const TENSORS_FILE: &str = "adapter_model.safetensors";
/// The config file of an adapter directory.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The tensor file the reference code writes (a torch pickle).
pub const REFERENCE_TENSORS_FILE: &str = "adapter_model.bin";

/// `target_modules` may be a list or a single string (a regex) in PEFT configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum TargetModules {
    List(Vec<String>),
    One(String),
}

fn target_modules_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<TargetModules>::deserialize(d)? {
        Some(TargetModules::List(v)) => v,
        Some(TargetModules::One(s)) => vec![s],
        None => Vec::new(),
    })
}

fn one() -> usize {
    1
}

fn lora() -> String {
    "LORA".into()
}

/// Length and FNV-1a hash of the tensor file written with a config, so that a
/// config and a tensor file from different saves are detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorDigest {
    /// Length of `adapter_model.safetensors` in bytes.
    pub len: u64,
    /// FNV-1a (64 bit) of its bytes, as 16 hex digits.
    pub fnv1a64: u64,
}

impl TensorDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self {
            len: bytes.len() as u64,
            fnv1a64: h,
        }
    }
}

/// The contents of `adapter_config.json`.
///
/// The reference fields (`r`, `lora_alpha`, `lora_dropout`, `lora_nums`,
/// `target_modules`, `peft_type`, `use_rslora`) are what the Python reference
/// reads and writes. Files written by this crate add `burn_rlora_format`, the
/// full [`RLoraConfig`] under `rlora`, the module paths, and a digest of the
/// tensor file. A file without `burn_rlora_format` is read as a reference
/// adapter. Unknown fields (PEFT writes many) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// The format version (`None` for a reference adapter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rlora_format: Option<u32>,
    /// The full config of every adapted layer (`None` for a reference adapter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rlora: Option<RLoraConfig>,
    /// The names of the adapted modules in the file, in order.
    #[serde(default)]
    pub target_module_paths: Vec<String>,
    /// The base model the adapter was trained on, if the user gave one.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Reference field: the rank.
    pub r: usize,
    /// Reference field: the scaling numerator.
    pub lora_alpha: f64,
    /// Reference field: the dropout probability.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Reference field: the number of heads.
    #[serde(default = "one")]
    pub lora_nums: usize,
    /// Reference field: the short names of the adapted modules (e.g. `up_proj`).
    #[serde(default, deserialize_with = "target_modules_de")]
    pub target_modules: Vec<String>,
    /// Reference field: always `"LORA"`.
    #[serde(default = "lora")]
    pub peft_type: String,
    /// PEFT field: rank-stabilized scaling `alpha / sqrt(r)`.
    #[serde(default)]
    pub use_rslora: bool,
    /// Digest of the tensor file written together with this config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor_file: Option<TensorDigest>,
}

impl AdapterConfig {
    /// The config for a checkpoint of layers built with `config`, at the given module names.
    pub fn new(config: &RLoraConfig, module_names: Vec<String>) -> Self {
        let mut short: Vec<String> = module_names
            .iter()
            .map(|m| m.rsplit('.').next().unwrap_or(m).to_string())
            .collect();
        short.sort();
        short.dedup();
        Self {
            burn_rlora_format: Some(FORMAT_VERSION),
            rlora: Some(config.clone()),
            target_module_paths: module_names,
            base_model_name_or_path: None,
            r: config.rank,
            lora_alpha: config.alpha,
            lora_dropout: config.dropout,
            lora_nums: config.num_heads,
            target_modules: short,
            peft_type: lora(),
            use_rslora: config.rank_stabilized,
            tensor_file: None,
        }
    }

    /// Parse `adapter_config.json` and check its version and internal consistency.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::CorruptConfig`], [`CheckpointError::UnknownFormatVersion`]
    /// or [`CheckpointError::ConfigMismatch`].
    pub fn from_json(bytes: &[u8], what: &str) -> Result<Self, CheckpointError> {
        let config: Self =
            serde_json::from_slice(bytes).map_err(|e| CheckpointError::CorruptConfig {
                what: what.to_string(),
                reason: e.to_string(),
            })?;
        config.check()?;
        Ok(config)
    }

    /// The config as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// True for a file written by the reference code (no `burn_rlora_format`).
    pub fn is_reference(&self) -> bool {
        self.burn_rlora_format.is_none()
    }

    fn check(&self) -> Result<(), CheckpointError> {
        if let Some(v) = self.burn_rlora_format {
            if !SUPPORTED_VERSIONS.contains(&v) {
                return Err(CheckpointError::UnknownFormatVersion {
                    expected: SUPPORTED_VERSIONS.to_vec(),
                    found: v,
                });
            }
            if self.rlora.is_none() {
                return Err(CheckpointError::mismatch(
                    "rlora",
                    "the full RLoraConfig (burn_rlora_format is set)",
                    "nothing",
                ));
            }
        }
        if self.r == 0 {
            return Err(CheckpointError::mismatch("r", "at least 1", 0));
        }
        if self.lora_nums == 0 {
            return Err(CheckpointError::mismatch("lora_nums", "at least 1", 0));
        }
        if let Some(c) = &self.rlora {
            let pairs: [(&str, String, String); 5] = [
                ("r", c.rank.to_string(), self.r.to_string()),
                (
                    "lora_nums",
                    c.num_heads.to_string(),
                    self.lora_nums.to_string(),
                ),
                (
                    "lora_alpha",
                    c.alpha.to_string(),
                    self.lora_alpha.to_string(),
                ),
                (
                    "lora_dropout",
                    c.dropout.to_string(),
                    self.lora_dropout.to_string(),
                ),
                (
                    "use_rslora",
                    c.rank_stabilized.to_string(),
                    self.use_rslora.to_string(),
                ),
            ];
            for (key, want, got) in pairs {
                if want != got {
                    return Err(CheckpointError::mismatch(
                        key,
                        format!("{want} (from the rlora config)"),
                        got,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The layer config to build a model for this adapter with.
    ///
    /// For a file of this crate it is the stored [`RLoraConfig`]. For a
    /// reference adapter it is built from the reference fields: rank, alpha,
    /// `lora_nums` heads, dropout, `alpha/r` scaling (or `alpha/sqrt(r)` with
    /// `use_rslora`), a softmax router for more than one head, and zero heads
    /// at init, so that the layers carry no compensation pair (a reference
    /// adapter has none; see [`load_reference`](super::load_reference)).
    pub fn rlora_config(&self) -> RLoraConfig {
        if let Some(c) = &self.rlora {
            return c.clone();
        }
        let router = if self.lora_nums > 1 {
            RouterKind::Softmax
        } else {
            RouterKind::Uniform
        };
        RLoraConfig::hydra_lora(self.r, self.lora_alpha, self.lora_nums)
            .with_router(router)
            .with_rank_stabilized(self.use_rslora)
            .with_dropout(self.lora_dropout)
    }

    /// True when the file's layers carry the compensation pair.
    pub fn has_compensation(&self) -> bool {
        self.rlora.as_ref().is_some_and(|c| c.needs_compensation())
    }

    /// True when the file's layers carry a router.
    pub fn has_router(&self) -> Option<bool> {
        self.rlora.as_ref().map(|c| c.router == RouterKind::Softmax)
    }
}

/// A tensor on the host in f64 (exact for f16, bf16, f32 and f64 sources).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
}

impl HostTensor {
    /// A `[rows, cols]` tensor.
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Self {
        Self { shape, data }
    }

    /// From Burn tensor data of any float dtype.
    pub fn from_data(data: &TensorData) -> Self {
        Self {
            shape: data.shape.to_vec(),
            data: data.iter::<f64>().collect(),
        }
    }

    /// The transpose of a 2-D tensor.
    pub fn transpose(&self) -> Self {
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut out = vec![0.0; self.data.len()];
        for i in 0..rows {
            for j in 0..cols {
                out[j * rows + i] = self.data[i * cols + j];
            }
        }
        Self::new(vec![cols, rows], out)
    }

    /// Burn tensor data in `dtype`.
    pub fn to_data(&self, dtype: DType) -> TensorData {
        TensorData::new(self.data.clone(), self.shape.clone()).convert_dtype(dtype)
    }
}

/// What a tensor key means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TensorRole {
    /// `lora_A.weight`, `[r, in]`.
    A,
    /// `lora_B{i}.weight`, `[out, r]`.
    Head(usize),
    /// `lora_route.weight`, `[N, in]`.
    Route,
    /// `rlora_A0.weight`, `[r, in]`: the frozen initial `A` of the compensation pair.
    A0,
    /// `rlora_B0.weight`, `[out, r]`: the frozen mean initial head.
    B0,
}

impl TensorRole {
    /// The key of this tensor for module `module`.
    pub fn key(self, module: &str) -> String {
        match self {
            TensorRole::A => format!("{module}.lora_A.weight"),
            TensorRole::Head(i) => format!("{module}.lora_B{i}.weight"),
            TensorRole::Route => format!("{module}.lora_route.weight"),
            TensorRole::A0 => format!("{module}.rlora_A0.weight"),
            TensorRole::B0 => format!("{module}.rlora_B0.weight"),
        }
    }

    /// Split a key into module name and role; `None` for a key of no adapter tensor.
    pub fn parse(key: &str) -> Option<(&str, TensorRole)> {
        let stem = key.strip_suffix(".weight")?;
        let (module, last) = stem.rsplit_once('.')?;
        let role = match last {
            "lora_A" => TensorRole::A,
            "lora_route" => TensorRole::Route,
            "rlora_A0" => TensorRole::A0,
            "rlora_B0" => TensorRole::B0,
            other => {
                let digits = other.strip_prefix("lora_B")?;
                if digits.is_empty()
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || (digits.len() > 1 && digits.starts_with('0'))
                {
                    return None;
                }
                TensorRole::Head(digits.parse().ok()?)
            }
        };
        (!module.is_empty()).then_some((module, role))
    }
}

/// The adapter tensors of one module, in PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleTensors {
    /// `A`, `[r, in]`.
    pub a: HostTensor,
    /// The heads `B_i`, each `[out, r]`.
    pub heads: Vec<HostTensor>,
    /// The router, `[N, in]`.
    pub route: Option<HostTensor>,
    /// The compensation pair `(A0 [r, in], Bbar0 [out, r])`.
    pub compensation: Option<(HostTensor, HostTensor)>,
}

impl ModuleTensors {
    /// Cosine similarity of the flattened heads (the paper's head-diversity measure).
    pub fn head_similarity(&self) -> crate::HeadSimilarity {
        let flat: Vec<f64> = self
            .heads
            .iter()
            .flat_map(|h| h.data.iter().copied())
            .collect();
        crate::HeadSimilarity::of_rows(&flat, self.heads.len())
    }

    /// The number of trainable numbers: `A`, the heads and the router.
    pub fn num_trainable(&self) -> usize {
        self.a.data.len()
            + self.heads.iter().map(|h| h.data.len()).sum::<usize>()
            + self.route.as_ref().map_or(0, |r| r.data.len())
    }

    /// `(d_input, d_output)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.a.shape[1], self.heads[0].shape[0])
    }
}

/// A parsed, validated adapter: its config and the tensors of every module,
/// keyed by module name (as in the file).
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterFile {
    /// The config.
    pub config: AdapterConfig,
    /// The tensors per module name, sorted.
    pub modules: BTreeMap<String, ModuleTensors>,
    /// Keys that are no adapter tensor (only kept in lenient mode; an error in strict mode).
    pub ignored_keys: Vec<String>,
}

/// Tensors by key: shape, and values converted to f64 (or the name of an
/// unsupported dtype).
pub type RawTensors = BTreeMap<String, (Vec<usize>, Result<Vec<f64>, String>)>;

/// The float types a tensor file may hold adapter weights in, as pairs of
/// safetensors' and Burn's names.
const FLOAT_DTYPES: [(Dtype, DType); 4] = [
    (Dtype::F32, DType::F32),
    (Dtype::F64, DType::F64),
    (Dtype::F16, DType::F16),
    (Dtype::BF16, DType::BF16),
];

/// Burn's dtype for a safetensors dtype; `None` unless it is one of the
/// supported float types (F32, F64, F16, BF16).
pub(crate) fn burn_dtype(dtype: Dtype) -> Option<DType> {
    FLOAT_DTYPES
        .iter()
        .find(|(st, _)| *st == dtype)
        .map(|&(_, burn)| burn)
}

/// The safetensors dtype for a Burn dtype; `None` unless it is one of the
/// supported float types (the inverse of [`burn_dtype`]).
pub(crate) fn safetensors_dtype(dtype: DType) -> Option<Dtype> {
    FLOAT_DTYPES
        .iter()
        .find(|(_, burn)| *burn == dtype)
        .map(|&(st, _)| st)
}

/// Read safetensors bytes into host tensors. Unsupported dtypes are kept as
/// errors per key, so that an unused tensor of another type is reported as
/// unexpected rather than unsupported.
pub(crate) fn read_safetensors(bytes: &[u8], what: &str) -> Result<RawTensors, CheckpointError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::CorruptTensors {
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let values = match burn_dtype(view.dtype()) {
            Some(dtype) => {
                let data = TensorData::from_bytes_vec(view.data().to_vec(), shape.clone(), dtype);
                Ok(data.iter::<f64>().collect())
            }
            None => Err(format!("{:?}", view.dtype())),
        };
        out.insert(name, (shape, values));
    }
    Ok(out)
}

/// The first non-finite value of `data`, with its index.
pub(crate) fn first_non_finite(data: &[f64]) -> Option<(usize, f64)> {
    data.iter()
        .copied()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
}

/// [`CheckpointError::NonFinite`] for the first tensor holding NaN or an infinity.
pub(crate) fn check_raw_finite(raw: &RawTensors) -> Result<(), CheckpointError> {
    for (key, (_, values)) in raw {
        if let Some((index, value)) = values.as_ref().ok().and_then(|v| first_non_finite(v)) {
            return Err(CheckpointError::NonFinite {
                key: key.clone(),
                index,
                value,
            });
        }
    }
    Ok(())
}

impl ModuleTensors {
    /// Every tensor of the module with its key under module name `name`.
    pub fn named<'a>(&'a self, name: &str) -> Vec<(String, &'a HostTensor)> {
        let mut out = vec![(TensorRole::A.key(name), &self.a)];
        for (i, h) in self.heads.iter().enumerate() {
            out.push((TensorRole::Head(i).key(name), h));
        }
        if let Some(route) = &self.route {
            out.push((TensorRole::Route.key(name), route));
        }
        if let Some((a0, b0)) = &self.compensation {
            out.push((TensorRole::A0.key(name), a0));
            out.push((TensorRole::B0.key(name), b0));
        }
        out
    }
}

impl AdapterFile {
    /// [`CheckpointError::NonFinite`] for the first tensor holding NaN or an infinity.
    ///
    /// # Errors
    ///
    /// As said.
    pub fn check_finite(&self) -> Result<(), CheckpointError> {
        for (name, m) in &self.modules {
            for (key, t) in m.named(name) {
                if let Some((index, value)) = first_non_finite(&t.data) {
                    return Err(CheckpointError::NonFinite { key, index, value });
                }
            }
        }
        Ok(())
    }
}

/// Encode named host tensors as safetensors bytes, each in its dtype.
pub(crate) fn write_safetensors(
    tensors: &[(String, HostTensor, DType)],
) -> Result<Vec<u8>, CheckpointError> {
    let mut encoded = Vec::with_capacity(tensors.len());
    for (name, t, dtype) in tensors {
        let st_dtype =
            safetensors_dtype(*dtype).ok_or_else(|| CheckpointError::UnsupportedDtype {
                key: name.clone(),
                found: format!("{dtype:?}"),
            })?;
        let bytes = t.to_data(*dtype).as_bytes().to_vec();
        encoded.push((name.clone(), st_dtype, t.shape.clone(), bytes));
    }
    let views = encoded
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CheckpointError::CorruptTensors {
            what: "tensors to write".into(),
            reason: e.to_string(),
        })?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| {
        CheckpointError::CorruptTensors {
            what: "tensors to write".into(),
            reason: e.to_string(),
        }
    })
}

/// Replace the bare file names in `CorruptConfig` / `CorruptTensors` by full paths.
pub(crate) fn with_paths(
    error: CheckpointError,
    config: &std::path::Path,
    tensors: &std::path::Path,
) -> CheckpointError {
    match error {
        CheckpointError::CorruptConfig { what, reason } if what == CONFIG_FILE => {
            CheckpointError::CorruptConfig {
                what: config.display().to_string(),
                reason,
            }
        }
        CheckpointError::CorruptTensors { what, reason }
            if what == TENSORS_FILE || what == REFERENCE_TENSORS_FILE =>
        {
            CheckpointError::CorruptTensors {
                what: tensors.display().to_string(),
                reason,
            }
        }
        other => other,
    }
}
