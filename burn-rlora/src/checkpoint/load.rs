//! Parsing and validating an adapter, and loading it into a whole model.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::DType;

use super::error::CheckpointError;
use super::file::{read_file_limited, DEFAULT_MAX_FILE_BYTES};
use super::format::{
    check_raw_finite, with_paths, AdapterConfig, AdapterFile, HostTensor, ModuleTensors,
    RawTensors, TensorRole, CONFIG_FILE, TENSORS_FILE,
};
use super::model::{adapted_layers, apply_tensors};
use super::naming::ModuleNaming;
use super::reference::TensorFormat;
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

/// The shape a tensor must have: a `None` size is not known yet (any
/// positive size matches, and the tensor then decides it).
type ExpectedShape = [Option<usize>; 2];

/// `[4, ?]` for an expected shape with an unknown size.
fn describe(expected: ExpectedShape) -> String {
    let size = |s: Option<usize>| s.map_or("?".to_string(), |s| s.to_string());
    format!("[{}, {}]", size(expected[0]), size(expected[1]))
}

impl AdapterFile {
    /// Parse and validate an adapter from the bytes of `adapter_config.json`
    /// and `adapter_model.safetensors`, without a model, with the strictness
    /// and the non-finite rule of `options` ([`LoadOptions::new`] for the
    /// defaults).
    ///
    /// This checks the format version, the tensor file's digest (when the
    /// config has one), every key, shape and dtype, that every value is
    /// finite, and that the config agrees with the tensors. It never panics
    /// on bad input. For the reference fork's files (either tensor format)
    /// see [`reference_from_bytes`](super::reference::reference_from_bytes).
    ///
    /// # Errors
    ///
    /// Any [`CheckpointError`] describing the first problem found.
    pub fn from_bytes(
        config_json: &[u8],
        tensors: &[u8],
        options: &LoadOptions,
    ) -> Result<Self, CheckpointError> {
        super::reference::reference_from_bytes(
            config_json,
            tensors,
            TensorFormat::Safetensors,
            options,
        )
    }

    /// Read and validate the adapter directory `dir` (see
    /// [`from_bytes`](Self::from_bytes)) with `options` (strictness, file
    /// size cap, non-finite rule).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] if a file cannot be read,
    /// [`CheckpointError::NotRegularFile`], [`CheckpointError::FileTooLarge`],
    /// otherwise as `from_bytes`; errors name the files.
    pub fn read(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, CheckpointError> {
        let dir = dir.as_ref();
        let read = |name: &str| read_file_limited(&dir.join(name), options.max_file_bytes);
        let config = read(CONFIG_FILE)?;
        let tensors = read(TENSORS_FILE)?;
        Self::from_bytes(&config, &tensors, options)
            .map_err(|e| with_paths(e, &dir.join(CONFIG_FILE), &dir.join(TENSORS_FILE)))
    }

    /// Group raw tensors by module and check them against the config.
    pub(crate) fn from_raw(
        config: AdapterConfig,
        raw: RawTensors,
        options: &LoadOptions,
    ) -> Result<Self, CheckpointError> {
        let strict = options.strict;
        if !options.allow_non_finite {
            check_raw_finite(&raw)?;
        }
        let mut grouped: BTreeMap<String, Found> = BTreeMap::new();
        let mut ignored_keys = Vec::new();
        let listed = &config.target_module_paths;
        for (key, (shape, values)) in raw {
            let parsed = TensorRole::parse(&key)
                .filter(|(module, _)| listed.is_empty() || listed.iter().any(|m| m == module));
            let Some((module, role)) = parsed else {
                if strict {
                    return Err(CheckpointError::UnexpectedKey {
                        key,
                        expected: "only adapter tensors (<module>.lora_A.weight, \
                                   .lora_B{i}.weight, .lora_route.weight, .rlora_A0.weight, \
                                   .rlora_B0.weight) of the modules in target_module_paths"
                            .into(),
                        found: shape,
                    });
                }
                ignored_keys.push(key);
                continue;
            };
            let values = values.map_err(|found| CheckpointError::UnsupportedDtype {
                key: key.clone(),
                found,
            })?;
            if shape.len() != 2 {
                return Err(CheckpointError::mismatch(
                    key,
                    "a 2-D tensor",
                    format!("shape {shape:?}"),
                ));
            }
            grouped
                .entry(module.to_string())
                .or_default()
                .insert(role, (key, shape, values));
        }
        for module in listed {
            if !grouped.contains_key(module) {
                return Err(CheckpointError::MissingKey {
                    key: TensorRole::A.key(module),
                    expected: format!(
                        "[{}, d_input] (module listed in target_module_paths)",
                        config.r
                    ),
                });
            }
        }
        if grouped.is_empty() {
            return Err(CheckpointError::NoAdapters);
        }
        let mut modules: BTreeMap<String, ModuleTensors> = BTreeMap::new();
        for (module, tensors) in grouped {
            let parsed = module_tensors(&config, &module, tensors)?;
            if let Some((first, m)) = modules.iter().next() {
                if m.compensation.is_some() != parsed.compensation.is_some() {
                    return Err(CheckpointError::mismatch(
                        TensorRole::A0.key(&module),
                        format!("the same as module '{first}' (a compensation pair in every module or in none)"),
                        if parsed.compensation.is_some() { "a pair" } else { "none" },
                    ));
                }
            }
            modules.insert(module, parsed);
        }
        Ok(Self {
            config,
            modules,
            ignored_keys,
        })
    }
}

type Found = BTreeMap<TensorRole, (String, Vec<usize>, Vec<f64>)>;

fn take(
    found: &mut Found,
    module: &str,
    role: TensorRole,
    expected: ExpectedShape,
    required: bool,
) -> Result<Option<HostTensor>, CheckpointError> {
    match found.remove(&role) {
        Some((key, shape, data)) => {
            let ok = shape.len() == 2
                && shape
                    .iter()
                    .zip(expected)
                    .all(|(&s, e)| s > 0 && e.is_none_or(|e| s == e));
            if !ok {
                // An unknown size accepts the tensor's own (when positive).
                let expected = expected
                    .iter()
                    .zip(shape.iter().chain(std::iter::repeat(&1)))
                    .map(|(e, &s)| e.unwrap_or(s.max(1)))
                    .collect();
                return Err(CheckpointError::ShapeMismatch {
                    key,
                    expected,
                    found: shape,
                });
            }
            Ok(Some(HostTensor::new(shape, data)))
        }
        None if required => Err(CheckpointError::MissingKey {
            key: role.key(module),
            expected: describe(expected),
        }),
        None => Ok(None),
    }
}

fn module_tensors(
    config: &AdapterConfig,
    module: &str,
    mut found: Found,
) -> Result<ModuleTensors, CheckpointError> {
    let r = config.r;
    check_head_count(config, module, &found)?;
    let a = take(&mut found, module, TensorRole::A, [Some(r), None], true)?
        .ok_or(CheckpointError::NoAdapters)?;
    let d_in = a.shape[1];
    let heads = take_heads(config, module, &mut found)?;
    let d_out = heads.first().map(|h| h.shape[0]).ok_or_else(|| {
        CheckpointError::mismatch(
            "lora_nums",
            "at least 1 head",
            format!("{} heads", config.lora_nums),
        )
    })?;
    let route = take_route(config, module, &mut found, d_in)?;
    let compensation = take_compensation(config, module, &mut found, d_in, d_out)?;
    check_optional_parts(
        config,
        module,
        route.is_some(),
        compensation.is_some(),
        d_in,
    )?;
    let layer_config = match (&config.rlora, &compensation) {
        (Some(rl), _) => rl.clone(),
        (None, Some(_)) => config.rlora_config_with_compensation(),
        (None, None) => config.rlora_config(),
    };
    layer_config.validate(d_in, d_out).map_err(|e| {
        CheckpointError::mismatch(
            format!("{module} (rlora config)"),
            format!("a config valid for a {d_in}->{d_out} layer"),
            e,
        )
    })?;
    Ok(ModuleTensors {
        a,
        heads,
        route,
        compensation,
    })
}

/// The module's heads are exactly `lora_B0..lora_B{lora_nums - 1}`: checked
/// before anything is sized from `lora_nums`.
fn check_head_count(
    config: &AdapterConfig,
    module: &str,
    found: &Found,
) -> Result<(), CheckpointError> {
    let (r, n) = (config.r, config.lora_nums);
    let heads_in_file = found
        .keys()
        .filter(|k| matches!(k, TensorRole::Head(_)))
        .count();
    if let Some((TensorRole::Head(i), (key, _, _))) = found
        .iter()
        .find(|(k, _)| matches!(k, TensorRole::Head(i) if *i >= n))
    {
        return Err(CheckpointError::mismatch(
            "lora_nums",
            format!("{n} heads (lora_B0..lora_B{})", n - 1),
            format!("head {i} ('{key}'), {heads_in_file} heads in module '{module}'"),
        ));
    }
    if let Some(i) = (0..n).find(|i| !found.contains_key(&TensorRole::Head(*i))) {
        let d_out = found
            .iter()
            .find(|(k, _)| matches!(k, TensorRole::Head(_)))
            .and_then(|(_, (_, shape, _))| shape.first())
            .map_or("d_output".to_string(), usize::to_string);
        return Err(CheckpointError::MissingKey {
            key: TensorRole::Head(i).key(module),
            expected: format!(
                "[{d_out}, {r}] (lora_nums is {n}, the file holds {heads_in_file} heads for \
                 module '{module}')"
            ),
        });
    }
    Ok(())
}

/// The `lora_nums` heads, each `[d_out, r]` with the first head's `d_out`.
fn take_heads(
    config: &AdapterConfig,
    module: &str,
    found: &mut Found,
) -> Result<Vec<HostTensor>, CheckpointError> {
    let mut heads = Vec::with_capacity(config.lora_nums);
    // Known from the first head on; every head must agree with it.
    let mut head_rows: Option<usize> = None;
    for i in 0..config.lora_nums {
        let head = take(
            found,
            module,
            TensorRole::Head(i),
            [head_rows, Some(config.r)],
            true,
        )?
        .ok_or(CheckpointError::NoAdapters)?;
        head_rows = Some(head.shape[0]);
        heads.push(head);
    }
    Ok(heads)
}

/// Whether the config says the module has a router: a reference adapter
/// with several heads always has one.
fn route_required(config: &AdapterConfig) -> bool {
    config.has_router().unwrap_or(config.lora_nums > 1)
}

/// The router `[lora_nums, d_in]`, if the module has one. A reference
/// adapter's router of one head is a constant 1 and is dropped.
fn take_route(
    config: &AdapterConfig,
    module: &str,
    found: &mut Found,
    d_in: usize,
) -> Result<Option<HostTensor>, CheckpointError> {
    let n = config.lora_nums;
    let route = take(
        found,
        module,
        TensorRole::Route,
        [Some(n), Some(d_in)],
        route_required(config),
    )?;
    Ok(route.filter(|_| !(config.is_reference() && n == 1)))
}

/// The compensation pair (`rlora_A0` `[r, d_in]`, `rlora_B0` `[d_out, r]`),
/// if the module has one; one without the other is an error.
fn take_compensation(
    config: &AdapterConfig,
    module: &str,
    found: &mut Found,
    d_in: usize,
    d_out: usize,
) -> Result<Option<(HostTensor, HostTensor)>, CheckpointError> {
    let (r, required) = (config.r, config.has_compensation());
    let a0 = take(
        found,
        module,
        TensorRole::A0,
        [Some(r), Some(d_in)],
        required,
    )?;
    let b0 = take(
        found,
        module,
        TensorRole::B0,
        [Some(d_out), Some(r)],
        required || a0.is_some(),
    )?;
    match (a0, b0) {
        (Some(a0), Some(b0)) => Ok(Some((a0, b0))),
        (None, Some(_)) => Err(CheckpointError::MissingKey {
            key: TensorRole::A0.key(module),
            expected: format!("[{r}, {d_in}] (rlora_B0 is present)"),
        }),
        _ => Ok(None),
    }
}

/// With an explicit `rlora` config, a router or compensation pair the config
/// does not have is an error (not silently used).
fn check_optional_parts(
    config: &AdapterConfig,
    module: &str,
    has_route: bool,
    has_compensation: bool,
    d_in: usize,
) -> Result<(), CheckpointError> {
    if config.rlora.is_none() {
        return Ok(());
    }
    if has_route && !route_required(config) {
        return Err(unexpected(
            module,
            TensorRole::Route,
            "no router (uniform weights)",
            [config.lora_nums, d_in],
        ));
    }
    if has_compensation && !config.has_compensation() {
        return Err(unexpected(
            module,
            TensorRole::A0,
            "no compensation pair (zero-initialized heads)",
            [config.r, d_in],
        ));
    }
    Ok(())
}

fn unexpected(
    module: &str,
    role: TensorRole,
    expected: &str,
    shape: [usize; 2],
) -> CheckpointError {
    CheckpointError::UnexpectedKey {
        key: role.key(module),
        expected: format!("nothing: the config says {expected}"),
        found: shape.to_vec(),
    }
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
