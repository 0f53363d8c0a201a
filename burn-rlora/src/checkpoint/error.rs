//! The typed error of saving, loading, importing and merging adapter checkpoints.

use std::path::PathBuf;

use thiserror::Error;

use crate::error::RLoraError;

/// Everything that can go wrong with an adapter checkpoint.
///
/// Every variant that concerns a tensor names its key (as written in the
/// file), what was expected and what was found, so that the message alone
/// is enough to find the problem.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error (in the message, not a separate `source()`,
        /// so that an error chain does not print it twice).
        error: std::io::Error,
    },
    /// The model needs a tensor that the file does not hold.
    #[error("missing key '{key}': expected {expected}, found nothing")]
    MissingKey {
        /// The key in the file's naming.
        key: String,
        /// What the model expects there (shape, in PyTorch layout).
        expected: String,
    },
    /// The file holds a tensor that no adapted module of the model uses (strict mode).
    #[error("unexpected key '{key}': expected {expected}, found a tensor of shape {found:?}")]
    UnexpectedKey {
        /// The key in the file.
        key: String,
        /// What was expected instead, in words.
        expected: String,
        /// The shape of the unexpected tensor.
        found: Vec<usize>,
    },
    /// A tensor's shape differs from what the model or the config requires.
    #[error("shape mismatch for '{key}': expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// The key in the file.
        key: String,
        /// The required shape (PyTorch layout).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a type that cannot hold adapter weights.
    #[error("unsupported dtype for '{key}': expected one of F32, F64, F16, BF16, found {found}")]
    UnsupportedDtype {
        /// The key in the file.
        key: String,
        /// The dtype found.
        found: String,
    },
    /// The tensor file is truncated or not a valid safetensors / PyTorch file.
    #[error("corrupt tensor file {what}: {reason}")]
    CorruptTensors {
        /// Which file or buffer.
        what: String,
        /// Why it could not be read.
        reason: String,
    },
    /// Moving tensors into or out of the model in memory failed (not a
    /// file): a tensor the backend or burn-store would not read or write.
    #[error("could not move the tensors of {what}: {reason}")]
    ModelTensors {
        /// Which model, layer or tensor (Burn path).
        what: String,
        /// What the backend or burn-store reported.
        reason: String,
    },
    /// `adapter_config.json` is not valid JSON or misses required fields.
    #[error("corrupt adapter config {what}: {reason}")]
    CorruptConfig {
        /// Which file or buffer.
        what: String,
        /// Why it could not be parsed.
        reason: String,
    },
    /// The config and the tensors (or the model) disagree.
    #[error("config mismatch for '{key}': expected {expected}, found {found}")]
    ConfigMismatch {
        /// The config field or tensor key concerned.
        key: String,
        /// What the config (or model) says.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The checkpoint was written by a newer (or unknown) version of the format.
    #[error("unknown format version for 'burn_rlora_format': expected one of {expected:?}, found {found}")]
    UnknownFormatVersion {
        /// The versions this build reads.
        expected: Vec<u32>,
        /// The version in the file.
        found: u32,
    },
    /// The model holds no adapted layer, so there is nothing to save or load.
    #[error("the model holds no RLoraLinear layer: nothing to save or load")]
    NoAdapters,
    /// A module name rule (regex) does not compile.
    #[error("invalid module name rule '{pattern}': {reason}")]
    InvalidRule {
        /// The pattern.
        pattern: String,
        /// The regex error.
        reason: String,
    },
    /// Two adapted modules map to the same name in the file.
    #[error("two modules map to the same name '{name}': '{first}' and '{second}'")]
    DuplicateModuleName {
        /// The name both map to.
        name: String,
        /// The first module path (Burn).
        first: String,
        /// The second module path (Burn).
        second: String,
    },
    /// A path that must be a regular file is a device, FIFO, socket or directory.
    #[error("{path} is {kind}, not a regular file: refusing to read it")]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A file is larger than the load's size cap.
    #[error("{path} is {size} bytes, more than the limit of {limit} bytes (raise it with LoadOptions::with_max_file_bytes)")]
    FileTooLarge {
        /// The path.
        path: PathBuf,
        /// Its size (or as much as was read).
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// A tensor holds NaN or an infinity.
    #[error(
        "non-finite value {value} at element {index} of '{key}' (allow it with allow_non_finite)"
    )]
    NonFinite {
        /// The key of the tensor.
        key: String,
        /// The row-major index of the first non-finite element.
        index: usize,
        /// The value.
        value: f64,
    },
    /// An operation would destroy data it was not asked to replace.
    #[error("refusing to {action}: {reason}")]
    WouldLoseData {
        /// What was asked.
        action: String,
        /// What would have been lost.
        reason: String,
    },
    /// A layer of the model was not built with the config it is merged with:
    /// merging it would apply the wrong scaling or head count.
    #[error(
        "layer '{layer}' does not match the merge config: the config has {field} = {config}, \
         the layer has {found}"
    )]
    MergeConfigMismatch {
        /// The Burn path of the layer.
        layer: String,
        /// The config field that differs (`rank` or `num_heads`).
        field: &'static str,
        /// The config's value.
        config: usize,
        /// The layer's value.
        found: usize,
    },
    /// The adapter cannot be merged exactly.
    #[error(transparent)]
    Layer(#[from] RLoraError),
    /// The adapter's config asks for something this crate does not load
    /// (for a PEFT adapter: anything but plain LoRA on linear layers), named
    /// by its field.
    #[error("unsupported adapter config: '{field}' is {found}: {reason}")]
    UnsupportedConfig {
        /// The config field (as written in `adapter_config.json`).
        field: String,
        /// Its value, as JSON.
        found: String,
        /// Why it cannot be loaded, and what to do instead.
        reason: String,
    },
    /// An error about one file of an adapter directory (the inner error
    /// names the key or field). The message includes the inner error's, so
    /// it is not also given as the error's `source()`.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        error: Box<CheckpointError>,
    },
}

impl CheckpointError {
    /// The error itself, or for [`InFile`](Self::InFile) the error inside
    /// (what is wrong, without the file).
    pub fn innermost(&self) -> &CheckpointError {
        match self {
            Self::InFile { error, .. } => error.innermost(),
            other => other,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error: source,
        }
    }

    /// [`Self::ModelTensors`] for `what`, with the backend's or burn-store's `reason`.
    pub(crate) fn model_tensors(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::ModelTensors {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn mismatch(
        key: impl Into<String>,
        expected: impl ToString,
        found: impl ToString,
    ) -> Self {
        Self::ConfigMismatch {
            key: key.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}
