//! Standard Hugging Face PEFT LoRA adapters: the layout every LoRA adapter
//! on the Hub and every Python workflow writes.
//!
//! A PEFT adapter directory holds `adapter_config.json` (`peft_type:
//! "LORA"`, `r`, `lora_alpha`, `target_modules`, ...) and
//! `adapter_model.safetensors` (or a `torch.save` `adapter_model.bin`) with
//! two tensors per adapted linear layer:
//!
//! | key | shape | becomes |
//! |---|---|---|
//! | `<module>.lora_A.weight` | `[r, in]` | `lora_a` of a LoRA-preset [`RLoraLinear`] (transposed) |
//! | `<module>.lora_B.weight` | `[out, r]` | its one head, `lora_b` (transposed) |
//!
//! `<module>` is PEFT's name of the layer: `base_model.model.` followed by the
//! module's path in the Python model (`base_model.model.model.layers.0.mlp.up_proj`).
//! The Burn model's layer paths are mapped to these names by
//! [`LoadOptions::naming`]: [`ModuleNaming::peft`] for a model whose
//! field paths follow the Python names (the decoders of `burn-rlora-llm` do).
//!
//! [`load_peft_lora`] puts a LoRA adapter (`RLoraConfig::lora(r, alpha)`,
//! rank-stabilized when `use_rslora`, with `lora_dropout` on the input) on
//! every layer the file names, with PEFT's per-layer rank and alpha
//! (`rank_pattern`, `alpha_pattern`, matched as PEFT's `get_pattern_key`
//! matches them: the first key, in the file's order, that is a regular
//! expression matching the end of the module name on a `.` boundary), and
//! loads `A` and `B`. The layer then computes what PEFT's `lora.Linear`
//! does: `W x + b + s * B A x` with `s = lora_alpha / r` (or
//! `lora_alpha / sqrt(r)`).
//!
//! What loads and what is refused (by the name of the field, before any
//! tensor is read into the model):
//!
//! * **Loads**: `r`, `lora_alpha`, `use_rslora`, `lora_dropout`,
//!   `target_modules` (a list of names or suffixes, or one regex string),
//!   `exclude_modules`, `rank_pattern`, `alpha_pattern`,
//!   `layers_to_transform` with `layers_pattern`, `bias: "none"`, and
//!   `fan_in_fan_out` (it says how the *base* layer stores its weight,
//!   as GPT-2's `Conv1D` does; the LoRA matrices are `[r, in]` and
//!   `[out, r]` either way, and PEFT itself resets it to false on
//!   `nn.Linear`: a warning in the report). `init_lora_weights` `true`,
//!   `false`, `"gaussian"`, `"orthogonal"`, `"eva"` and `"nora"` only
//!   describe how training started. Fields this crate does not know are
//!   ignored (PEFT adds new ones often; those that change the computation
//!   are refused below).
//! * **Refused**: another `peft_type`; `bias` `"all"` or `"lora_only"`
//!   (the file then holds trained base biases); non-empty
//!   `modules_to_save` (whole trained modules, such as a classifier head);
//!   `use_dora`; `lora_bias`; `trainable_token_indices`;
//!   `target_parameters`; `layer_replication`; `alora_invocation_tokens`;
//!   `use_qalora`; the LoRA variants (`use_bdlora`, `arrow_config`,
//!   `kasa_config`, `velora_config`, `monteclora_config`);
//!   `init_lora_weights` `"pissa…"`, `"olora"`, `"corda"`, `"loftq"`,
//!   `"lora_ga"`, `"astra"` and `"mica"` (the adapter then belongs to a
//!   modified base model; PEFT's `save_pretrained(...,
//!   path_initial_model_for_weight_conversion=...)` turns such an adapter
//!   into a plain one that loads). LoRA on embeddings or convolutions
//!   (`lora_embedding_A`, 4-D tensors) is refused by key, and so is a
//!   rank above `min(in, out)` of its layer (which PEFT would take).
//!
//! The regular expressions (`target_modules` as a string,
//! `exclude_modules`, the pattern keys, `layers_pattern`) are compiled with
//! Rust's `regex` crate: Python patterns without look-around or
//! back-references mean the same; others are an error naming the field.
//!
//! Loading checks everything before it changes the model: a key naming a
//! layer the model does not have, a tensor whose shape is not the layer's
//! or not the rank the config gives that module, an `A` without its `B`
//! (or the reverse), a tensor for a module that `target_modules` does not
//! select (PEFT would ignore it) are errors naming the key. Errors of
//! [`load_peft_lora`] name the file too: [`CheckpointError::InFile`] around
//! the error ([`CheckpointError::innermost`] unwraps it), or an I/O or
//! corrupt-file error that holds the path.
//! With [`LoadOptions::with_strict`]`(false)` a tensor of an unknown name, a
//! module the model lacks and a module the config does not select are
//! skipped and reported in [`LoadReport::warnings`] instead.
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::module::Module;
//! use burn::nn::LinearConfig;
//! use burn::tensor::backend::Backend;
//! use burn_rlora::checkpoint::{load_peft_lora, LoadOptions, ModuleNaming};
//! use burn_rlora::{Adapt, RLoraLinear};
//!
//! #[derive(Module, Adapt, Debug)]
//! struct Mlp<B: Backend> {
//!     up_proj: RLoraLinear<B>,
//!     down_proj: RLoraLinear<B>,
//! }
//!
//! // A PEFT adapter on `up_proj`, as `save_pretrained` writes it.
//! let dir = std::env::temp_dir().join(format!("peft-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let config = r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 8, "use_rslora": false,
//!                  "target_modules": ["up_proj"], "bias": "none", "modules_to_save": null}"#;
//! std::fs::write(dir.join("adapter_config.json"), config).unwrap();
//! let a = vec![0.5f32; 2 * 8];
//! let b = vec![0.25f32; 16 * 2];
//! let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
//! let (a, b) = (bytes(&a), bytes(&b));
//! let tensors = safetensors::serialize(
//!     [
//!         ("base_model.model.up_proj.lora_A.weight",
//!          safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 8], &a).unwrap()),
//!         ("base_model.model.up_proj.lora_B.weight",
//!          safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![16, 2], &b).unwrap()),
//!     ],
//!     None,
//! )
//! .unwrap();
//! std::fs::write(dir.join("adapter_model.safetensors"), tensors).unwrap();
//!
//! let device = Default::default();
//! let model = Mlp::<NdArray> {
//!     up_proj: LinearConfig::new(8, 16).init(&device).into(),
//!     down_proj: LinearConfig::new(16, 8).init(&device).into(),
//! };
//! let options = LoadOptions::new().with_naming(ModuleNaming::peft());
//! let (model, report) = load_peft_lora(model, &dir, &options)?;
//! assert!(model.up_proj.is_adapted() && !model.down_proj.is_adapted());
//! assert_eq!(model.up_proj.adapter().unwrap().scaling(), 4.0); // lora_alpha / r
//! assert_eq!(report.modules, [("up_proj".to_string(), "base_model.model.up_proj".to_string())]);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), burn_rlora::checkpoint::CheckpointError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::backend::Backend;
use regex::Regex;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::error::CheckpointError;
use super::file::read_file_limited;
use super::format::{
    check_raw_finite, read_safetensors, AdapterConfig, HostTensor, ModuleTensors, RawTensors,
    TensorRole, CONFIG_FILE, REFERENCE_TENSORS_FILE, TENSORS_FILE,
};
use super::load::{LoadOptions, LoadReport};
use super::model::ApplyTensors;
use super::naming::ModuleNaming;
use super::reference::{tensor_file_in, TensorFormat};
use super::torch::read_torch;
use crate::adapt::{map_layers, visit_layers, Adapt, LayerMapper, LayerVisitor};
use crate::{RLoraConfig, RLoraError, RLoraLinear, RouterKind, TargetModules};

/// The prefix PEFT puts before a module's path in the Python model
/// (`PeftModel.base_model` is the `LoraModel`, whose `model` is the
/// wrapped model).
pub const PEFT_PREFIX: &str = "base_model.model.";

impl ModuleNaming {
    /// PEFT's naming: [`PEFT_PREFIX`] before the model's own paths, for a
    /// model whose field paths are the Python model's module names.
    ///
    /// ```
    /// use burn_rlora::checkpoint::ModuleNaming;
    ///
    /// assert_eq!(ModuleNaming::peft().name("model.layers.0.mlp.up_proj").unwrap(),
    ///            "base_model.model.model.layers.0.mlp.up_proj");
    /// ```
    pub fn peft() -> Self {
        Self::new().with_prefix(PEFT_PREFIX)
    }
}

// ---------------------------------------------------------------------------
// The layout of an adapter directory

/// Which layout an adapter directory is in, as its `adapter_config.json` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdapterLayout {
    /// Written by this crate (`burn_rlora_format` in the config): load with
    /// [`load_adapter`](super::load_adapter).
    BurnRLora,
    /// The multi-head reference fork's (`lora_nums` in the config, tensors
    /// `lora_B{i}`, `lora_route`): [`load_reference`](super::load_reference)
    /// or [`load_adapter`](super::load_adapter).
    Reference,
    /// A standard PEFT adapter (a `peft_type` and no `lora_nums`): tensors
    /// `lora_A.weight` and `lora_B.weight`, [`load_peft_lora`].
    PeftLora,
}

impl AdapterLayout {
    /// The layout of the adapter whose `adapter_config.json` holds `json`:
    /// [`BurnRLora`](Self::BurnRLora) with `burn_rlora_format`, else
    /// [`Reference`](Self::Reference) with `lora_nums`, else
    /// [`PeftLora`](Self::PeftLora) with a `peft_type`, else `Reference`
    /// (whose loader then says what is missing).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::CorruptConfig`] unless `json` is a JSON object.
    pub fn of_config(json: &[u8]) -> Result<Self, CheckpointError> {
        let value: Value = serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(corrupt("not a JSON object".into()));
        };
        Ok(if map.contains_key("burn_rlora_format") {
            Self::BurnRLora
        } else if map.contains_key("lora_nums") {
            Self::Reference
        } else if map.contains_key("peft_type") {
            Self::PeftLora
        } else {
            Self::Reference
        })
    }
}

/// The layout of the adapter directory `dir` (see
/// [`AdapterLayout::of_config`]); reads only its `adapter_config.json`, a
/// regular file of at most `options.max_file_bytes`.
///
/// # Errors
///
/// [`CheckpointError::Io`], [`CheckpointError::NotRegularFile`],
/// [`CheckpointError::FileTooLarge`] or [`CheckpointError::CorruptConfig`],
/// naming the file.
pub fn adapter_layout(
    dir: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<AdapterLayout, CheckpointError> {
    let path = dir.as_ref().join(CONFIG_FILE);
    let json = read_file_limited(&path, options.max_file_bytes)?;
    AdapterLayout::of_config(&json).map_err(|e| in_file(e, &path))
}

// ---------------------------------------------------------------------------
// adapter_config.json

/// A JSON object with its keys in the file's order (`serde_json::Map`
/// sorts them without the `preserve_order` feature, and the order of
/// `rank_pattern` and `alpha_pattern` decides which key wins).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    out.push((key, map.next_value::<Value>()?));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The top level of `adapter_config.json`: the fields, and the two pattern
/// maps in their order.
struct RawConfig {
    fields: BTreeMap<String, Value>,
    rank_pattern: Option<Ordered>,
    alpha_pattern: Option<Ordered>,
}

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawConfig, A::Error> {
                let mut out = RawConfig {
                    fields: BTreeMap::new(),
                    rank_pattern: None,
                    alpha_pattern: None,
                };
                // A repeated key: the last one wins, as in Python's json.
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "rank_pattern" => out.rank_pattern = map.next_value()?,
                        "alpha_pattern" => out.alpha_pattern = map.next_value()?,
                        _ => {
                            let value = map.next_value::<Value>()?;
                            out.fields.insert(key, value);
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

fn corrupt(reason: String) -> CheckpointError {
    CheckpointError::CorruptConfig {
        what: CONFIG_FILE.to_string(),
        reason,
    }
}

fn bad_field(field: &str, expected: &str, found: &Value) -> CheckpointError {
    corrupt(format!(
        "field '{field}': expected {expected}, found {found}"
    ))
}

fn unsupported(field: &str, found: &Value, reason: &str) -> CheckpointError {
    CheckpointError::UnsupportedConfig {
        field: field.to_string(),
        found: found.to_string(),
        reason: reason.to_string(),
    }
}

/// `true`, a non-empty string, list or object: a field that asks for something.
fn is_set(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

/// Fields that change what the adapter computes, refused when set, with the reason.
const REFUSED_WHEN_SET: [(&str, &str); 13] = [
    (
        "use_dora",
        "DoRA rescales every output column by a trained magnitude vector; only plain LoRA loads",
    ),
    (
        "lora_bias",
        "lora_B has a trained bias; only plain LoRA (no bias on B) loads",
    ),
    (
        "modules_to_save",
        "the file holds whole trained modules (such as a classifier head) besides the LoRA \
         tensors, which this loader does not put into the model; merge or drop them with PEFT first",
    ),
    (
        "trainable_token_indices",
        "the file holds trained embedding rows besides the LoRA tensors",
    ),
    (
        "target_parameters",
        "LoRA on bare parameters (such as mixture-of-experts weights) is not LoRA on linear layers",
    ),
    (
        "layer_replication",
        "the adapter belongs to a model whose layers were replicated",
    ),
    (
        "alora_invocation_tokens",
        "activated LoRA (aLoRA) applies the adapter only after the invocation tokens",
    ),
    (
        "use_qalora",
        "QALoRA pools the input before lora_A; only plain LoRA loads",
    ),
    ("use_bdlora", "a LoRA variant (block-diagonal LoRA)"),
    ("arrow_config", "a LoRA variant (Arrow routing)"),
    ("kasa_config", "a LoRA variant (KaSA)"),
    ("velora_config", "a LoRA variant (VeLoRA)"),
    ("monteclora_config", "a LoRA variant (MonteCLoRA)"),
];

/// `init_lora_weights` values that only say how training started.
const HARMLESS_INITS: [&str; 4] = ["gaussian", "orthogonal", "eva", "nora"];

/// The contents of a PEFT LoRA `adapter_config.json` that decide what the
/// adapter computes, parsed and checked (see the [module docs](self) for
/// what is refused).
#[derive(Debug, Clone, PartialEq)]
pub struct PeftLoraConfig {
    /// The default rank.
    pub r: usize,
    /// The default scaling numerator.
    pub lora_alpha: f64,
    /// Dropout on the input of `lora_A` while training.
    pub lora_dropout: f64,
    /// Rank-stabilized scaling: `lora_alpha / sqrt(r)` instead of `lora_alpha / r`.
    pub use_rslora: bool,
    /// The targeted modules: names or suffixes, or one regex that must
    /// match the whole module name (`None` when the file has none: every
    /// module in the file is taken as targeted).
    pub target_modules: Option<TargetModules>,
    /// Modules excluded from `target_modules`, in the same two forms.
    pub exclude_modules: Option<TargetModules>,
    /// Per-module ranks: (pattern, rank), in the file's order.
    pub rank_pattern: Vec<(String, usize)>,
    /// Per-module alphas: (pattern, alpha), in the file's order.
    pub alpha_pattern: Vec<(String, f64)>,
    /// Only the layers of these indices are targeted (with a list of
    /// `target_modules`), as PEFT reads the index after `layers_pattern`.
    pub layers_to_transform: Option<Vec<usize>>,
    /// The names of the layer lists (`layers`, `h`); empty: any.
    pub layers_pattern: Vec<String>,
    /// The base layer stores its weight as `[in, out]` (GPT-2's `Conv1D`);
    /// it does not change the LoRA tensors, and is only reported.
    pub fan_in_fan_out: bool,
    /// The base model PEFT recorded, if any.
    pub base_model_name_or_path: Option<String>,
    /// The PEFT version that wrote the file, if recorded.
    pub peft_version: Option<String>,
}

fn as_usize(field: &str, v: &Value) -> Result<usize, CheckpointError> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| bad_field(field, "a non-negative integer", v))
}

fn as_f64(field: &str, v: &Value) -> Result<f64, CheckpointError> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| bad_field(field, "a finite number", v))
}

fn as_bool(field: &str, v: &Value) -> Result<bool, CheckpointError> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        other => Err(bad_field(field, "true or false", other)),
    }
}

fn as_string(field: &str, v: &Value) -> Result<Option<String>, CheckpointError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(bad_field(field, "a string", other)),
    }
}

/// A list of strings or one string (PEFT's `target_modules` and `exclude_modules`).
fn as_targets(field: &str, v: &Value) -> Result<Option<TargetModules>, CheckpointError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(TargetModules::Regex(s.clone()))),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad_field(field, "a list of strings or one string", v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|names| Some(TargetModules::Names(names))),
        other => Err(bad_field(field, "a list of strings or one string", other)),
    }
}

impl PeftLoraConfig {
    /// Parse and check a PEFT `adapter_config.json`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::CorruptConfig`] for invalid JSON, a missing `r`
    /// or `lora_alpha`, or a field of the wrong type (named);
    /// [`CheckpointError::UnsupportedConfig`] for what is refused (see the
    /// [module docs](self)); [`CheckpointError::ConfigMismatch`] for a zero
    /// rank, a dropout outside `[0, 1)`, or a pattern that is not a regular
    /// expression.
    pub fn from_json(json: &[u8]) -> Result<Self, CheckpointError> {
        let raw: RawConfig = serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
        let null = Value::Null;
        let get = |name: &str| raw.fields.get(name).unwrap_or(&null);

        match get("peft_type") {
            Value::String(s) if s == "LORA" => {}
            Value::Null => {
                return Err(corrupt(
                    "no 'peft_type': not a PEFT adapter config (PEFT writes \"LORA\" for a \
                     LoRA adapter)"
                        .into(),
                ))
            }
            other => {
                return Err(unsupported(
                    "peft_type",
                    other,
                    "only LoRA adapters (\"LORA\") load",
                ))
            }
        }
        match get("bias") {
            Value::Null => {}
            Value::String(s) if s == "none" => {}
            other @ Value::String(_) => {
                return Err(unsupported(
                    "bias",
                    other,
                    "the file then holds trained biases of the base layers; only \"none\" loads",
                ))
            }
            other => {
                return Err(bad_field(
                    "bias",
                    "\"none\", \"all\" or \"lora_only\"",
                    other,
                ))
            }
        }
        for (field, reason) in REFUSED_WHEN_SET {
            let value = get(field);
            if is_set(value) {
                return Err(unsupported(field, value, reason));
            }
        }
        match get("init_lora_weights") {
            Value::Null | Value::Bool(_) => {}
            Value::String(s) if HARMLESS_INITS.contains(&s.as_str()) => {}
            other @ Value::String(_) => {
                return Err(unsupported(
                    "init_lora_weights",
                    other,
                    "this initialization (PiSSA, OLoRA, CorDA, LoftQ, LoRA-GA, Astra) changes the \
                     base weights, or is a LoRA variant (MiCA): the adapter does not belong to the \
                     published base model. Save it with PEFT's save_pretrained(..., \
                     path_initial_model_for_weight_conversion=...) to get a plain LoRA adapter",
                ))
            }
            other => return Err(bad_field("init_lora_weights", "a bool or a string", other)),
        }

        let r = match get("r") {
            Value::Null => return Err(corrupt("missing field 'r'".into())),
            v => as_usize("r", v)?,
        };
        if r == 0 {
            return Err(CheckpointError::mismatch("r", "at least 1", 0));
        }
        let lora_alpha = match get("lora_alpha") {
            Value::Null => return Err(corrupt("missing field 'lora_alpha'".into())),
            v => as_f64("lora_alpha", v)?,
        };
        let lora_dropout = match get("lora_dropout") {
            Value::Null => 0.0,
            v => as_f64("lora_dropout", v)?,
        };
        if RLoraConfig::check_dropout(lora_dropout).is_err() {
            return Err(CheckpointError::mismatch(
                "lora_dropout",
                "a probability in [0, 1)",
                lora_dropout,
            ));
        }
        let rank_pattern = pattern_values(&raw.rank_pattern, "rank_pattern", |key, v| {
            let r = as_usize(&format!("rank_pattern.{key}"), v)?;
            if r == 0 {
                return Err(CheckpointError::mismatch(
                    format!("rank_pattern.{key}"),
                    "at least 1",
                    0,
                ));
            }
            Ok(r)
        })?;
        let alpha_pattern = pattern_values(&raw.alpha_pattern, "alpha_pattern", |key, v| {
            as_f64(&format!("alpha_pattern.{key}"), v)
        })?;
        let layers_to_transform = match get("layers_to_transform") {
            Value::Null => None,
            Value::Array(items) if items.is_empty() => None,
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|i| as_usize("layers_to_transform", i))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            v => Some(vec![as_usize("layers_to_transform", v)?]),
        };
        let layers_pattern = match get("layers_pattern") {
            Value::Null => Vec::new(),
            Value::String(s) if s.is_empty() => Vec::new(),
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad_field("layers_pattern", "a list of strings", i))
                })
                .collect::<Result<Vec<_>, _>>()?,
            other => return Err(bad_field("layers_pattern", "a string or a list", other)),
        };
        let config = Self {
            r,
            lora_alpha,
            lora_dropout,
            use_rslora: as_bool("use_rslora", get("use_rslora"))?,
            target_modules: as_targets("target_modules", get("target_modules"))?,
            exclude_modules: as_targets("exclude_modules", get("exclude_modules"))?,
            rank_pattern,
            alpha_pattern,
            layers_to_transform,
            layers_pattern,
            fan_in_fan_out: as_bool("fan_in_fan_out", get("fan_in_fan_out"))?,
            base_model_name_or_path: as_string(
                "base_model_name_or_path",
                get("base_model_name_or_path"),
            )?,
            peft_version: as_string("peft_version", get("peft_version"))?,
        };
        // Every regular expression compiles before anything is matched.
        Matcher::new(&config)?;
        Ok(config)
    }

    /// The rank and alpha PEFT gives the module `peft_name` (its name in
    /// the Python model, without [`PEFT_PREFIX`]): the first
    /// `rank_pattern` / `alpha_pattern` key that matches, else `r` /
    /// `lora_alpha`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::ConfigMismatch`] for a pattern that is not a
    /// regular expression.
    pub fn rank_and_alpha(&self, peft_name: &str) -> Result<(usize, f64), CheckpointError> {
        let m = Matcher::new(self)?;
        Ok(m.rank_and_alpha(self, peft_name))
    }

    /// Whether PEFT puts a LoRA layer on the module `peft_name` (its name
    /// in the Python model, without [`PEFT_PREFIX`]), as PEFT's
    /// `check_target_module_exists` decides: not excluded, then equal to a
    /// listed name, or ending with `.` and a listed name in one of the
    /// `layers_to_transform`, or matched whole by the regex.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::ConfigMismatch`] for a pattern that is not a
    /// regular expression.
    pub fn targets(&self, peft_name: &str) -> Result<bool, CheckpointError> {
        Ok(Matcher::new(self)?.targets(self, peft_name))
    }

    /// The layer config of a module of rank `r` and alpha `alpha`: LoRA
    /// (one head, no router, dropout on the input) with PEFT's scaling.
    pub fn layer_config(&self, r: usize, alpha: f64) -> RLoraConfig {
        RLoraConfig::lora(r, alpha)
            .with_rank_stabilized(self.use_rslora)
            .with_dropout(self.lora_dropout)
    }

    /// This crate's summary of the config (one head, the default rank and
    /// alpha), for a [`LoadReport`], listing the file's modules.
    pub fn adapter_config(&self, module_names: Vec<String>) -> AdapterConfig {
        let mut summary =
            AdapterConfig::new(&self.layer_config(self.r, self.lora_alpha), module_names);
        summary.burn_rlora_format = None;
        summary.rlora = None;
        summary.base_model_name_or_path = self.base_model_name_or_path.clone();
        if let Some(targets) = &self.target_modules {
            summary.target_modules = targets.targets();
        }
        summary
    }
}

/// The values of a pattern map, in order, each checked by `value`.
fn pattern_values<T>(
    map: &Option<Ordered>,
    field: &str,
    value: impl Fn(&str, &Value) -> Result<T, CheckpointError>,
) -> Result<Vec<(String, T)>, CheckpointError> {
    let Some(Ordered(entries)) = map else {
        return Ok(Vec::new());
    };
    if entries.len() > MAX_PATTERNS {
        return Err(CheckpointError::mismatch(
            field,
            format!("at most {MAX_PATTERNS} keys"),
            entries.len(),
        ));
    }
    let mut out: Vec<(String, T)> = Vec::with_capacity(entries.len());
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, v) in entries {
        let v = value(key, v)?;
        // A repeated key keeps its first place and takes the last value, as a Python dict.
        match index.get(key.as_str()) {
            Some(&i) => out[i].1 = v,
            None => {
                index.insert(key, out.len());
                out.push((key.clone(), v));
            }
        }
    }
    if out.iter().any(|(k, _)| k.is_empty()) {
        return Err(CheckpointError::mismatch(
            field,
            "non-empty keys",
            "an empty key",
        ));
    }
    Ok(out)
}

/// The config's regular expressions, compiled once.
struct Matcher {
    rank: Vec<Regex>,
    alpha: Vec<Regex>,
    target: Option<Regex>,
    exclude: Option<Regex>,
    layer_index: Vec<Regex>,
}

/// The most `rank_pattern` / `alpha_pattern` keys a config may hold (a
/// real one has at most one per module).
const MAX_PATTERNS: usize = 1 << 16;

fn compile(field: &str, pattern: &str, regex: String) -> Result<Regex, CheckpointError> {
    // Caps on the compiled size and the matching cache (the regex crate's
    // defaults are 10 MiB and 2 MiB), so that hostile patterns are an
    // error rather than memory; module names are short.
    regex::RegexBuilder::new(&regex)
        .size_limit(1 << 16)
        .dfa_size_limit(1 << 16)
        .build()
        .map_err(|e| {
            CheckpointError::mismatch(
                field,
                "a regular expression (Rust's regex syntax: no look-around or back-references)",
                format!("'{pattern}': {e}"),
            )
        })
}

impl Matcher {
    fn new(config: &PeftLoraConfig) -> Result<Self, CheckpointError> {
        // PEFT's get_pattern_key: re.match(rf"(.*\.)?({key})$", name).
        let pattern_key =
            |field: &str, key: &str| compile(field, key, format!(r"^(?:(.*\.)?({key})$)"));
        let whole = |field: &str, targets: &Option<TargetModules>| match targets {
            Some(TargetModules::Regex(s)) => compile(field, s, format!("^(?:{s})$")).map(Some),
            _ => Ok(None),
        };
        // PEFT's layer index: the first number after a layers_pattern segment,
        // or after the second segment without one.
        let layer_index = if config.layers_pattern.is_empty() {
            vec![compile(
                "layers_pattern",
                "",
                r"^(?:.*?\.[^.]*\.(?P<idx>\d+)\.)".into(),
            )?]
        } else {
            config
                .layers_pattern
                .iter()
                .map(|p| {
                    compile(
                        "layers_pattern",
                        p,
                        format!(r"^(?:(?:^|.*?\.){p}\.(?P<idx>\d+)\.)"),
                    )
                })
                .collect::<Result<_, _>>()?
        };
        Ok(Self {
            rank: config
                .rank_pattern
                .iter()
                .map(|(k, _)| pattern_key("rank_pattern", k))
                .collect::<Result<_, _>>()?,
            alpha: config
                .alpha_pattern
                .iter()
                .map(|(k, _)| pattern_key("alpha_pattern", k))
                .collect::<Result<_, _>>()?,
            target: whole("target_modules", &config.target_modules)?,
            exclude: whole("exclude_modules", &config.exclude_modules)?,
            layer_index,
        })
    }

    fn rank_and_alpha(&self, config: &PeftLoraConfig, name: &str) -> (usize, f64) {
        // get_pattern_key returns the first matching key, else the name itself
        // (which then hits only a key equal to the name).
        let pick = |regexes: &[Regex], keys: &[&str]| {
            regexes
                .iter()
                .position(|re| re.is_match(name))
                .or_else(|| keys.iter().position(|k| *k == name))
        };
        let rank_keys: Vec<&str> = config
            .rank_pattern
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        let alpha_keys: Vec<&str> = config
            .alpha_pattern
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        let r = pick(&self.rank, &rank_keys).map_or(config.r, |i| config.rank_pattern[i].1);
        let alpha =
            pick(&self.alpha, &alpha_keys).map_or(config.lora_alpha, |i| config.alpha_pattern[i].1);
        (r, alpha)
    }

    fn listed(names: &[String], name: &str) -> bool {
        names.iter().any(|t| {
            name.strip_suffix(t.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
        })
    }

    fn targets(&self, config: &PeftLoraConfig, name: &str) -> bool {
        match (&config.exclude_modules, &self.exclude) {
            (_, Some(re)) if re.is_match(name) => return false,
            (Some(TargetModules::Names(names)), _)
                if names.iter().any(|n| n == name) || Self::listed(names, name) =>
            {
                return false
            }
            _ => {}
        }
        let names = match (&config.target_modules, &self.target) {
            (None, _) => return true,
            // PEFT expands "all-linear" into the list of names before saving.
            (Some(TargetModules::Regex(s)), _) if s == "all-linear" => return true,
            (_, Some(re)) => return re.is_match(name),
            (Some(TargetModules::Names(names)), None) => names,
            (Some(TargetModules::Regex(_)), None) => return false,
        };
        if names.iter().any(|n| n == name) {
            return true;
        }
        if !Self::listed(names, name) {
            return false;
        }
        let Some(indices) = &config.layers_to_transform else {
            return true;
        };
        let index = self.layer_index.iter().find_map(|re| {
            re.captures(name)
                .and_then(|c| c.name("idx"))
                .and_then(|m| m.as_str().parse::<usize>().ok())
        });
        index.is_some_and(|i| indices.contains(&i))
    }
}

// ---------------------------------------------------------------------------
// The tensor file

/// One adapted module of a PEFT LoRA adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct PeftLoraModule {
    /// The module's name in the Python model (the file's name without
    /// [`PEFT_PREFIX`]), which `target_modules` and the patterns match.
    pub peft_name: String,
    /// The module's rank (from `rank_pattern` or `r`).
    pub r: usize,
    /// The module's alpha (from `alpha_pattern` or `lora_alpha`).
    pub lora_alpha: f64,
    /// `lora_A.weight`, `[r, in]`.
    pub a: HostTensor,
    /// `lora_B.weight`, `[out, r]`.
    pub b: HostTensor,
}

impl PeftLoraModule {
    /// `(in, out)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.a.shape[1], self.b.shape[0])
    }
}

/// A parsed, checked PEFT LoRA adapter: its config and the tensors of
/// every module, keyed by the module's name in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct PeftLoraFile {
    /// The config.
    pub config: PeftLoraConfig,
    /// The modules by their name in the file (with [`PEFT_PREFIX`]), sorted.
    pub modules: BTreeMap<String, PeftLoraModule>,
    /// Keys skipped in lenient mode.
    pub ignored_keys: Vec<String>,
    /// Remarks on the file (skipped keys, `fan_in_fan_out`).
    pub warnings: Vec<String>,
    /// The tensor file it was read from, if read from a directory (errors
    /// of [`apply_peft_lora`] name it).
    pub tensor_file: Option<PathBuf>,
}

/// What a key of a PEFT tensor file is.
enum PeftKey<'a> {
    A(&'a str),
    B(&'a str),
    /// A tensor of a PEFT feature that is not loaded: an error even when lenient.
    Refused(&'static str),
    Unknown,
}

fn parse_key(key: &str) -> PeftKey<'_> {
    let module = |suffix: &str| key.strip_suffix(suffix).filter(|m| !m.is_empty());
    if let Some(m) = module(".lora_A.weight") {
        return PeftKey::A(m);
    }
    if let Some(m) = module(".lora_B.weight") {
        return PeftKey::B(m);
    }
    if key.ends_with(".lora_B.bias") {
        return PeftKey::Refused("a bias of lora_B (lora_bias = true): only plain LoRA loads");
    }
    if key.contains(".lora_embedding_A") || key.contains(".lora_embedding_B") {
        return PeftKey::Refused("LoRA on an embedding layer: only LoRA on linear layers loads");
    }
    if key.contains(".lora_magnitude_vector") {
        return PeftKey::Refused("DoRA's magnitude vector: only plain LoRA loads");
    }
    if TensorRole::parse(key).is_some() {
        return PeftKey::Refused(
            "a tensor of the multi-head layout (lora_B{i}, lora_route, rlora_A0/B0) in a plain \
             PEFT adapter: load a multi-head adapter with load_adapter or load_reference",
        );
    }
    PeftKey::Unknown
}

fn a_key(module: &str) -> String {
    format!("{module}.lora_A.weight")
}

fn b_key(module: &str) -> String {
    format!("{module}.lora_B.weight")
}

/// PEFT's name of a module in the Python model: the file's name without [`PEFT_PREFIX`].
fn peft_name(name: &str) -> &str {
    name.strip_prefix(PEFT_PREFIX).unwrap_or(name)
}

impl PeftLoraFile {
    /// Parse and check a PEFT LoRA adapter from the bytes of
    /// `adapter_config.json` and of its tensor file in `format`, without a
    /// model, with the strictness and non-finite rule of `options`.
    ///
    /// # Errors
    ///
    /// As [`PeftLoraConfig::from_json`]; for the tensors:
    /// [`CheckpointError::CorruptTensors`], [`CheckpointError::UnexpectedKey`]
    /// (an unknown key when strict, a refused kind of tensor, a module that
    /// `target_modules` does not select when strict),
    /// [`CheckpointError::MissingKey`] (an `A` without `B` or the reverse),
    /// [`CheckpointError::ShapeMismatch`] (not `[r, in]` / `[out, r]` for
    /// the module's rank), [`CheckpointError::UnsupportedDtype`],
    /// [`CheckpointError::NonFinite`], [`CheckpointError::NoAdapters`].
    pub fn from_bytes(
        config_json: &[u8],
        tensors: &[u8],
        format: TensorFormat,
        options: &LoadOptions,
    ) -> Result<Self, CheckpointError> {
        let config = PeftLoraConfig::from_json(config_json)?;
        Self::from_config(config, tensors, format, options)
    }

    /// Read and check the PEFT LoRA adapter directory `dir`:
    /// `adapter_config.json` and `adapter_model.safetensors` (or
    /// `adapter_model.bin` when there is no safetensors file, PEFT's
    /// precedence), regular files of at most `options.max_file_bytes`.
    ///
    /// # Errors
    ///
    /// As [`from_bytes`](Self::from_bytes), as [`CheckpointError::InFile`]
    /// naming the file; [`CheckpointError::Io`],
    /// [`CheckpointError::NotRegularFile`], [`CheckpointError::FileTooLarge`].
    pub fn read(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, CheckpointError> {
        let dir = dir.as_ref();
        let config_path = dir.join(CONFIG_FILE);
        let tensor_path = tensor_file_in(dir);
        let json = read_file_limited(&config_path, options.max_file_bytes)?;
        let config = PeftLoraConfig::from_json(&json).map_err(|e| in_file(e, &config_path))?;
        let bytes = read_file_limited(&tensor_path, options.max_file_bytes)?;
        let format = TensorFormat::of_path(&tensor_path);
        let mut file = Self::from_config(config, &bytes, format, options)
            .map_err(|e| in_file(e, &tensor_path))?;
        file.tensor_file = Some(tensor_path);
        Ok(file)
    }

    fn from_config(
        config: PeftLoraConfig,
        tensors: &[u8],
        format: TensorFormat,
        options: &LoadOptions,
    ) -> Result<Self, CheckpointError> {
        let raw = match format {
            TensorFormat::Safetensors => read_safetensors(tensors, TENSORS_FILE)?,
            TensorFormat::TorchZip => read_torch(tensors, REFERENCE_TENSORS_FILE)?,
        };
        Self::from_raw(config, raw, options)
    }

    fn from_raw(
        config: PeftLoraConfig,
        raw: RawTensors,
        options: &LoadOptions,
    ) -> Result<Self, CheckpointError> {
        if !options.allow_non_finite {
            check_raw_finite(&raw)?;
        }
        let matcher = Matcher::new(&config)?;
        let mut warnings = Vec::new();
        if config.fan_in_fan_out {
            warnings.push(
                "fan_in_fan_out is true: it says how the base layer stores its weight \
                 ([in, out], GPT-2's Conv1D); the LoRA tensors are [r, in] and [out, r] either \
                 way, so it is ignored (PEFT resets it to false on nn.Linear)"
                    .to_string(),
            );
        }
        let mut ignored_keys = Vec::new();
        // Module -> (A, B), each (key, shape, values).
        type Found = (String, Vec<usize>, Vec<f64>);
        let mut grouped: BTreeMap<String, (Option<Found>, Option<Found>)> = BTreeMap::new();
        for (key, (shape, values)) in raw {
            let (module, is_a) = match parse_key(&key) {
                PeftKey::A(m) => (m.to_string(), true),
                PeftKey::B(m) => (m.to_string(), false),
                PeftKey::Refused(why) => {
                    return Err(CheckpointError::UnexpectedKey {
                        key,
                        expected: format!("nothing: {why}"),
                        found: shape,
                    })
                }
                PeftKey::Unknown => {
                    if options.strict {
                        return Err(CheckpointError::UnexpectedKey {
                            key,
                            expected: "only PEFT LoRA tensors of linear layers \
                                       (<module>.lora_A.weight and <module>.lora_B.weight)"
                                .into(),
                            found: shape,
                        });
                    }
                    warnings.push(format!("skipped '{key}': not a LoRA tensor"));
                    ignored_keys.push(key);
                    continue;
                }
            };
            let values = values.map_err(|found| CheckpointError::UnsupportedDtype {
                key: key.clone(),
                found,
            })?;
            if shape.len() != 2 {
                return Err(CheckpointError::mismatch(
                    key,
                    "a 2-D tensor (LoRA on a linear layer; LoRA on convolutions is not loaded)",
                    format!("shape {shape:?}"),
                ));
            }
            let slot = grouped.entry(module).or_default();
            let entry = (key, shape, values);
            if is_a {
                slot.0 = Some(entry);
            } else {
                slot.1 = Some(entry);
            }
        }
        let mut modules = BTreeMap::new();
        for (module, (a, b)) in grouped {
            let name = peft_name(&module).to_string();
            let (r, lora_alpha) = matcher.rank_and_alpha(&config, &name);
            let (a, b) = match (a, b) {
                (Some(a), Some(b)) => (a, b),
                (Some((_, a_shape, _)), None) => {
                    return Err(CheckpointError::MissingKey {
                        key: b_key(&module),
                        expected: format!(
                            "[out, {r}] (the file holds '{}' of shape {a_shape:?})",
                            a_key(&module)
                        ),
                    })
                }
                (None, Some((_, b_shape, _))) => {
                    return Err(CheckpointError::MissingKey {
                        key: a_key(&module),
                        expected: format!(
                            "[{r}, in] (the file holds '{}' of shape {b_shape:?})",
                            b_key(&module)
                        ),
                    })
                }
                (None, None) => continue,
            };
            let (a_shape, b_shape) = (&a.1, &b.1);
            if a_shape[0] != r || a_shape[1] == 0 {
                return Err(CheckpointError::ShapeMismatch {
                    key: a.0,
                    expected: vec![r, a_shape[1].max(1)],
                    found: a_shape.clone(),
                });
            }
            if b_shape[1] != r || b_shape[0] == 0 {
                return Err(CheckpointError::ShapeMismatch {
                    key: b.0,
                    expected: vec![b_shape[0].max(1), r],
                    found: b_shape.clone(),
                });
            }
            if !matcher.targets(&config, &name) {
                let error = CheckpointError::UnexpectedKey {
                    key: a.0.clone(),
                    expected: format!(
                        "only modules that target_modules selects ({:?}{}): PEFT puts no LoRA \
                         layer on '{name}' and ignores its tensors",
                        config.target_modules.as_ref().map(TargetModules::targets),
                        config
                            .layers_to_transform
                            .as_ref()
                            .map_or(String::new(), |l| format!(", layers_to_transform {l:?}")),
                    ),
                    found: a_shape.clone(),
                };
                if options.strict {
                    return Err(error);
                }
                warnings.push(format!("skipped: {error}"));
                ignored_keys.extend([a.0, b.0]);
                continue;
            }
            modules.insert(
                module,
                PeftLoraModule {
                    peft_name: name,
                    r,
                    lora_alpha,
                    a: HostTensor::new(a.1, a.2),
                    b: HostTensor::new(b.1, b.2),
                },
            );
        }
        if modules.is_empty() {
            return Err(CheckpointError::NoAdapters);
        }
        Ok(Self {
            config,
            modules,
            ignored_keys,
            warnings,
            tensor_file: None,
        })
    }
}

/// `error` as an error about the file `path`: [`CheckpointError::InFile`],
/// or the error itself where it names the file already.
pub(crate) fn in_file(error: CheckpointError, path: &Path) -> CheckpointError {
    match error {
        CheckpointError::CorruptConfig { reason, .. } => CheckpointError::CorruptConfig {
            what: path.display().to_string(),
            reason,
        },
        CheckpointError::CorruptTensors { reason, .. } => CheckpointError::CorruptTensors {
            what: path.display().to_string(),
            reason,
        },
        e @ (CheckpointError::Io { .. }
        | CheckpointError::NotRegularFile { .. }
        | CheckpointError::FileTooLarge { .. }
        | CheckpointError::InFile { .. }) => e,
        other => CheckpointError::InFile {
            path: path.to_path_buf(),
            error: Box::new(other),
        },
    }
}

// ---------------------------------------------------------------------------
// Loading into a model

/// One [`RLoraLinear`] of the model, plain or adapted.
struct Layer {
    path: String,
    d_in: usize,
    d_out: usize,
    /// `(rank, scaling)` of a LoRA-shaped adapter (one head, no router, no
    /// compensation pair); `Some(None)` for an adapter of another shape.
    adapter: Option<Option<(usize, f64)>>,
}

fn model_layers<M: Adapt>(model: &M) -> Vec<Layer> {
    struct Layers(Vec<Layer>);
    impl LayerVisitor for Layers {
        fn visit<B: Backend>(&mut self, path: &str, layer: &RLoraLinear<B>) {
            let [d_in, d_out] = layer.weight.val().dims();
            let adapter = layer.adapter().map(|a| {
                let lora_shaped = a.num_heads() == 1
                    && a.lora_route.is_none()
                    && !a.has_compensation()
                    && a.config().router == RouterKind::Uniform;
                lora_shaped.then(|| (a.rank(), a.scaling()))
            });
            self.0.push(Layer {
                path: path.to_string(),
                d_in,
                d_out,
                adapter,
            });
        }
    }
    let mut layers = Layers(Vec::new());
    visit_layers(model, &mut layers);
    layers.0
}

/// Adapts the listed plain layers and loads every listed layer's tensors.
struct PutLora<'a> {
    configs: BTreeMap<String, RLoraConfig>,
    apply: ApplyTensors<'a>,
}

impl LayerMapper for PutLora<'_> {
    type Error = CheckpointError;

    fn map<B: Backend>(
        &mut self,
        path: &str,
        layer: RLoraLinear<B>,
    ) -> Result<RLoraLinear<B>, CheckpointError> {
        let layer = match self.configs.get(path) {
            Some(config) => layer.adapt(config).map_err(|e| RLoraError::AdaptLayer {
                path: path.to_string(),
                source: Box::new(e),
            })?,
            None => layer,
        };
        self.apply.map(path, layer)
    }
}

/// Load the PEFT LoRA adapter directory `dir` into `model` (see the
/// [module docs](self)): read and check it ([`PeftLoraFile::read`]), then
/// [`apply_peft_lora`].
///
/// # Errors
///
/// As [`PeftLoraFile::read`] and [`apply_peft_lora`]; errors about the
/// contents of a file are [`CheckpointError::InFile`], naming it.
pub fn load_peft_lora<B: Backend, M: Module<B> + Adapt>(
    model: M,
    dir: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<(M, LoadReport), CheckpointError> {
    let file = PeftLoraFile::read(dir, options)?;
    apply_peft_lora(model, &file, options)
}

/// Put the parsed PEFT adapter `file` on `model`: every layer the file
/// names (through `options.naming`) gets a LoRA adapter of the module's
/// rank and alpha ([`PeftLoraConfig::layer_config`]) holding the file's
/// `A` and `B`. The whole model is frozen first and the loaded adapters
/// train, as after [`AdaptConfig::adapt`](crate::AdaptConfig::adapt).
///
/// A layer that already carries an adapter takes the file's tensors when
/// it is LoRA-shaped (one head, no router, no compensation pair) with the
/// module's rank and scaling; otherwise it is an error. Layers the file
/// does not name are left as they are (a layer that `target_modules`
/// selects but the file does not hold gets a warning: PEFT would give it a
/// LoRA layer with `B = 0`, which changes nothing).
///
/// # Errors
///
/// Checked before the model changes: [`CheckpointError::UnexpectedKey`]
/// for a module the model does not have (strict mode; a warning
/// otherwise), [`CheckpointError::ShapeMismatch`] for a tensor whose shape
/// is not the layer's, [`CheckpointError::ConfigMismatch`] for a layer
/// already adapted otherwise, a rank the layer cannot take (above
/// `min(in, out)`) or a config other than `options.expected_config`,
/// [`CheckpointError::InvalidRule`] or
/// [`CheckpointError::DuplicateModuleName`] for the naming. Each is
/// [`CheckpointError::InFile`] naming the tensor file when `file` was read
/// from a directory.
pub fn apply_peft_lora<B: Backend, M: Module<B> + Adapt>(
    model: M,
    file: &PeftLoraFile,
    options: &LoadOptions,
) -> Result<(M, LoadReport), CheckpointError> {
    let wrap = |e: CheckpointError| match &file.tensor_file {
        Some(path) => in_file(e, path),
        None => e,
    };
    let plan = plan(&model, file, options).map_err(wrap)?;
    let tensors: BTreeMap<String, &ModuleTensors> =
        plan.tensors.iter().map(|(p, t)| (p.clone(), t)).collect();
    let mut mapper = PutLora {
        configs: plan.configs,
        apply: ApplyTensors { tensors },
    };
    let model = map_layers(model.no_grad(), &mut mapper).map_err(wrap)?;
    let names: Vec<String> = file.modules.keys().cloned().collect();
    Ok((
        model,
        LoadReport {
            config: file.config.adapter_config(names),
            modules: plan.modules,
            warnings: plan.warnings,
        },
    ))
}

/// What a load will do, all checked.
struct Plan {
    /// Layer path -> the config of the adapter to put on the plain layer.
    configs: BTreeMap<String, RLoraConfig>,
    /// Layer path -> the tensors, PyTorch layout.
    tensors: BTreeMap<String, ModuleTensors>,
    /// `(Burn path, name in the file)` of every loaded layer.
    modules: Vec<(String, String)>,
    warnings: Vec<String>,
}

fn plan<M: Adapt>(
    model: &M,
    file: &PeftLoraFile,
    options: &LoadOptions,
) -> Result<Plan, CheckpointError> {
    let layers = model_layers(model);
    if layers.is_empty() {
        return Err(CheckpointError::NoAdapters);
    }
    let names = options
        .naming
        .names(layers.iter().map(|l| l.path.as_str()))?;
    let by_name: BTreeMap<&str, (usize, &Layer)> = names
        .iter()
        .zip(&layers)
        .enumerate()
        .map(|(i, (n, l))| (n.as_str(), (i, l)))
        .collect();
    let mut plan = Plan {
        configs: BTreeMap::new(),
        tensors: BTreeMap::new(),
        modules: Vec::new(),
        warnings: file.warnings.clone(),
    };
    let mut loaded: Vec<(usize, String)> = Vec::new();
    for (name, module) in &file.modules {
        let Some(&(index, layer)) = by_name.get(name.as_str()) else {
            let shown: Vec<&String> = names.iter().take(8).collect();
            let more = names.len().saturating_sub(shown.len());
            let error = CheckpointError::UnexpectedKey {
                key: a_key(name),
                expected: format!(
                    "a layer of the model named '{name}'; the model's adaptable layers are named \
                     {shown:?}{} (set LoadOptions::naming to map the model's paths to the file's \
                     names)",
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
                found: module.a.shape.clone(),
            };
            if options.strict {
                return Err(error);
            }
            plan.warnings.push(format!("skipped: {error}"));
            continue;
        };
        let (d_in, d_out, r) = (layer.d_in, layer.d_out, module.r);
        for (key, found, expected) in [
            (a_key(name), &module.a.shape, [r, d_in]),
            (b_key(name), &module.b.shape, [d_out, r]),
        ] {
            if found[..] != expected[..] {
                return Err(CheckpointError::ShapeMismatch {
                    key,
                    expected: expected.to_vec(),
                    found: found.clone(),
                });
            }
        }
        let config = file.config.layer_config(r, module.lora_alpha);
        if let Some(want) = &options.expected_config {
            if &config != want {
                return Err(CheckpointError::mismatch(
                    format!("{name} (layer config)"),
                    format!("{want:?} (the expected config)"),
                    format!("{config:?}"),
                ));
            }
        }
        match layer.adapter {
            None => {
                config.validate(d_in, d_out).map_err(|e| {
                    CheckpointError::mismatch(
                        format!("{name} (r = {r})"),
                        format!(
                            "a LoRA config valid for the {d_in}->{d_out} layer '{}'",
                            layer.path
                        ),
                        e,
                    )
                })?;
                plan.configs.insert(layer.path.clone(), config);
            }
            Some(Some((rank, scaling)))
                if rank == r && (scaling - config.scaling()).abs() <= 1e-12 * scaling.abs() => {}
            Some(existing) => {
                return Err(CheckpointError::mismatch(
                    format!("{name} (layer '{}')", layer.path),
                    format!(
                        "a plain layer, or a LoRA adapter of rank {r} and scaling {}",
                        config.scaling()
                    ),
                    match existing {
                        Some((rank, scaling)) => {
                            format!("an adapter of rank {rank} and scaling {scaling}")
                        }
                        None => "a multi-head adapter".to_string(),
                    },
                ))
            }
        }
        plan.tensors.insert(
            layer.path.clone(),
            ModuleTensors {
                a: module.a.clone(),
                heads: vec![module.b.clone()],
                route: None,
                compensation: None,
            },
        );
        loaded.push((index, name.clone()));
    }
    if loaded.is_empty() {
        return Err(CheckpointError::NoAdapters);
    }
    // In the model's field order.
    loaded.sort();
    plan.modules = loaded
        .into_iter()
        .map(|(i, name)| (layers[i].path.clone(), name))
        .collect();
    let matcher = Matcher::new(&file.config)?;
    for (name, layer) in names.iter().zip(&layers) {
        if !file.modules.contains_key(name)
            && layer.adapter.is_none()
            && file.config.target_modules.is_some()
            && matcher.targets(&file.config, peft_name(name))
        {
            plan.warnings.push(format!(
                "layer '{}' ('{name}') is selected by target_modules but the file holds no \
                 tensors for it: left plain (PEFT would give it a LoRA layer with B = 0, which \
                 changes nothing)",
                layer.path
            ));
        }
    }
    Ok(plan)
}
