//! Parsing and validating an adapter file without a model:
//! [`AdapterFile::read`] and [`AdapterFile::from_bytes`] check every tensor's
//! key, role, dtype and shape against the config.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::CheckpointError;
use super::file::read_file_limited;
use super::format::{
    check_raw_finite, with_paths, AdapterConfig, AdapterFile, HostTensor, ModuleTensors,
    RawTensors, TensorRole, CONFIG_FILE, TENSORS_FILE,
};
use super::load::LoadOptions;
use super::reference::TensorFormat;

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
                    // A standard PEFT adapter's `B` has no head index.
                    let hint = if key.ends_with(".lora_B.weight") {
                        " (this is the layout of a standard PEFT LoRA adapter: load it with \
                         checkpoint::load_peft_lora)"
                    } else {
                        ""
                    };
                    return Err(CheckpointError::UnexpectedKey {
                        key,
                        expected: format!(
                            "only adapter tensors (<module>.lora_A.weight, .lora_B{{i}}.weight, \
                             .lora_route.weight, .rlora_A0.weight, .rlora_B0.weight) of the \
                             modules in target_module_paths{hint}"
                        ),
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

pub(super) fn unexpected(
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
