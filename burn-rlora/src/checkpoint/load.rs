//! Loading a parsed adapter into a whole model (the parsing itself is in
//! `parse`).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::DType;

use super::error::CheckpointError;
use super::file::{read_file_limited, DEFAULT_MAX_FILE_BYTES};
use super::format::{AdapterConfig, AdapterFile, ModuleTensors, TensorRole, CONFIG_FILE};
use super::model::{adapted_layers, apply_tensors};
use super::naming::ModuleNaming;
use super::parse::unexpected;
use crate::adapt::Adapt;
use crate::config::RLoraConfig;

/// How to load an adapter into a model.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Maps the model's module paths to the names in the file.
    pub naming: ModuleNaming,
    /// Strict (the default): a tensor in the file that the model does not use
    /// is an error. Lenient: it is skipped and reported in [`LoadReport::warnings`].
    pub strict: bool,
    /// If set, the file's layer config must equal this one (the config the model was built with).
    pub expected_config: Option<RLoraConfig>,
    /// The largest file a load reads, in bytes (default [`DEFAULT_MAX_FILE_BYTES`]);
    /// a larger one is [`CheckpointError::FileTooLarge`].
    pub max_file_bytes: u64,
    /// Accept tensors holding NaN or infinities (default: false, they are
    /// [`CheckpointError::NonFinite`]).
    pub allow_non_finite: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            naming: ModuleNaming::new(),
            strict: true,
            expected_config: None,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            allow_non_finite: false,
        }
    }
}

impl LoadOptions {
    /// Strict loading with the identity naming.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the module naming.
    pub fn with_naming(mut self, naming: ModuleNaming) -> Self {
        self.naming = naming;
        self
    }

    /// Strict or lenient about unused tensors.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Require the file's layer config to equal `config`.
    pub fn with_expected_config(mut self, config: RLoraConfig) -> Self {
        self.expected_config = Some(config);
        self
    }

    /// Set the largest file a load reads, in bytes.
    pub fn with_max_file_bytes(mut self, max: u64) -> Self {
        self.max_file_bytes = max;
        self
    }

    /// Accept (or refuse, the default) tensors holding NaN or infinities.
    pub fn with_allow_non_finite(mut self, allow: bool) -> Self {
        self.allow_non_finite = allow;
        self
    }
}

/// What a load did.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The adapter's config.
    pub config: AdapterConfig,
    /// `(Burn path, name in the file)` of every loaded layer.
    pub modules: Vec<(String, String)>,
    /// Tensors skipped in lenient mode, and other remarks.
    pub warnings: Vec<String>,
}

/// Load the adapter directory `dir` into `model`: every `RLoraLinear` of the
/// model gets `A`, its heads, router and compensation pair from the file.
///
/// Build the model with the file's layer config first
/// ([`read_config`](super::read_config) then [`AdapterConfig::rlora_config`]);
/// the base weights are not touched. The model's float type decides the
/// precision: f16 and bf16 tensors are converted.
///
/// # Errors
///
/// Any [`CheckpointError`]: missing, unexpected or misshapen tensors (named
/// by key), an unsupported dtype, a corrupt file, a config that disagrees with
/// the tensors or the model, or an unknown format version.
pub fn load_adapter<M: Adapt>(
    model: M,
    dir: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<(M, LoadReport), CheckpointError> {
    let file = AdapterFile::read(dir, options)?;
    apply_adapter(model, &file, options)
}

/// Load an already parsed adapter into `model` (see [`load_adapter`]).
///
/// # Errors
///
/// As [`load_adapter`], for the checks that involve the model.
pub fn apply_adapter<M: Adapt>(
    model: M,
    file: &AdapterFile,
    options: &LoadOptions,
) -> Result<(M, LoadReport), CheckpointError> {
    let slots = adapted_layers(&model)?;
    if let Some(want) = &options.expected_config {
        let got = file.config.rlora_config();
        if &got != want {
            return Err(CheckpointError::mismatch(
                "rlora",
                format!("{want:?} (the model's config)"),
                format!("{got:?}"),
            ));
        }
    }
    let paths: Vec<String> = slots.iter().map(|s| s.path.clone()).collect();
    let names = options.naming.names(paths.iter().map(String::as_str))?;
    let mut warnings: Vec<String> = file
        .ignored_keys
        .iter()
        .map(|k| format!("skipped '{k}': not an adapter tensor"))
        .collect();
    let mut to_load = BTreeMap::new();
    let mut report_modules = Vec::new();
    for ((slot, name), path) in slots.iter().zip(&names).zip(&paths) {
        let tensors = module_for_layer(file, slot, name, path, options.strict, &mut warnings)?;
        to_load.insert(path.clone(), tensors);
        report_modules.push((path.clone(), name.clone()));
    }
    for name in file.modules.keys() {
        if !names.contains(name) {
            let e = CheckpointError::UnexpectedKey {
                key: TensorRole::A.key(name),
                expected: format!("a module of the model; the model's names are {names:?}"),
                found: file.modules[name].a.shape.clone(),
            };
            lenient(options.strict, e, &mut warnings)?;
        }
    }
    let model = apply_tensors(model, to_load)?;
    Ok((
        model,
        LoadReport {
            config: file.config.clone(),
            modules: report_modules,
            warnings,
        },
    ))
}

/// The file's tensors of module `name` for the model's layer `slot` at
/// `path`, checked against the layer's shapes and parts (router,
/// compensation pair); lenient findings go to `warnings`.
fn module_for_layer<'f>(
    file: &'f AdapterFile,
    slot: &super::model::Slot,
    name: &str,
    path: &str,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<&'f ModuleTensors, CheckpointError> {
    let (d_in, d_out, r, n) = (slot.d_in, slot.d_out, slot.rank, slot.heads);
    let Some(tensors) = file.modules.get(name) else {
        return Err(CheckpointError::MissingKey {
            key: TensorRole::A.key(name),
            expected: format!("[{r}, {d_in}] for the model's layer '{path}'"),
        });
    };
    check_against_layer(name, tensors, (d_in, d_out, r, n))?;
    let optional = [
        OptionalPart {
            role: TensorRole::Route,
            in_model: slot.has_route,
            in_file: tensors.route.is_some(),
            shape: [n, d_in],
            why_needed: format!("the model's layer '{path}' has a router"),
            why_unused: "the model's layer has no router",
        },
        OptionalPart {
            role: TensorRole::A0,
            in_model: slot.has_compensation,
            in_file: tensors.compensation.is_some(),
            shape: [r, d_in],
            why_needed: format!(
                "the model's layer '{path}' has a compensation pair; a reference adapter \
                 has none: build the model with the file's rlora_config(), or use \
                 load_reference with the initial adapter"
            ),
            why_unused: "the model's layer has no compensation pair",
        },
    ];
    for part in optional {
        part.check(name, strict, warnings)?;
    }
    Ok(tensors)
}

/// A tensor group that a layer may or may not have (the router, the
/// compensation pair): the file must hold it when the model's layer does, and
/// holding it when the layer does not is an unexpected key.
struct OptionalPart {
    /// The group's first tensor, which names it in errors.
    role: TensorRole,
    /// The model's layer has it.
    in_model: bool,
    /// The file has it.
    in_file: bool,
    /// The shape of `role`'s tensor (PyTorch layout).
    shape: [usize; 2],
    /// Why the model needs it, for a missing key.
    why_needed: String,
    /// Why the model cannot take it, for an unexpected key.
    why_unused: &'static str,
}

impl OptionalPart {
    /// A missing group is an error; an unused one an error in strict mode and a warning otherwise.
    fn check(
        self,
        name: &str,
        strict: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), CheckpointError> {
        match (self.in_model, self.in_file) {
            (true, false) => Err(CheckpointError::MissingKey {
                key: self.role.key(name),
                expected: format!("{:?} ({})", self.shape, self.why_needed),
            }),
            (false, true) => {
                let e = unexpected(name, self.role, self.why_unused, self.shape);
                lenient(strict, e, warnings)
            }
            _ => Ok(()),
        }
    }
}

fn lenient(
    strict: bool,
    error: CheckpointError,
    warnings: &mut Vec<String>,
) -> Result<(), CheckpointError> {
    if strict {
        Err(error)
    } else {
        warnings.push(format!("skipped: {error}"));
        Ok(())
    }
}

fn check_against_layer(
    name: &str,
    t: &ModuleTensors,
    (d_in, d_out, r, n): (usize, usize, usize, usize),
) -> Result<(), CheckpointError> {
    if t.heads.len() != n {
        return Err(CheckpointError::mismatch(
            "lora_nums",
            format!("{n} heads (the model's layer for '{name}')"),
            format!("{} heads in the file", t.heads.len()),
        ));
    }
    let check = |role: TensorRole, found: &[usize], expected: [usize; 2]| {
        if found != expected {
            Err(CheckpointError::ShapeMismatch {
                key: role.key(name),
                expected: expected.to_vec(),
                found: found.to_vec(),
            })
        } else {
            Ok(())
        }
    };
    check(TensorRole::A, &t.a.shape, [r, d_in])?;
    for (i, h) in t.heads.iter().enumerate() {
        check(TensorRole::Head(i), &h.shape, [d_out, r])?;
    }
    if let Some(route) = &t.route {
        check(TensorRole::Route, &route.shape, [n, d_in])?;
    }
    if let Some((a0, b0)) = &t.compensation {
        check(TensorRole::A0, &a0.shape, [r, d_in])?;
        check(TensorRole::B0, &b0.shape, [d_out, r])?;
    }
    Ok(())
}

/// Read only `adapter_config.json` of an adapter directory.
///
/// # Errors
///
/// [`CheckpointError::Io`], [`CheckpointError::CorruptConfig`] or
/// [`CheckpointError::UnknownFormatVersion`].
pub fn read_config(dir: impl AsRef<Path>) -> Result<AdapterConfig, CheckpointError> {
    let path = dir.as_ref().join(CONFIG_FILE);
    let bytes = read_file_limited(&path, DEFAULT_MAX_FILE_BYTES)?;
    AdapterConfig::from_json(&bytes, &path.display().to_string())
}

/// The dtype a tensor file is written in for a model of float type `dtype`.
pub(crate) fn storage_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F64 | DType::F16 | DType::BF16 => dtype,
        _ => DType::F32,
    }
}
