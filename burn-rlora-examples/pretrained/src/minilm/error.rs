//! The error type of the MiniLM example's loading and tokenizing.

use std::path::PathBuf;

use thiserror::Error;

use crate::datasets::DataError;

/// Everything that can go wrong while loading the MiniLM encoder or its
/// tokenizer, or preparing the task data for it. Every variant names the file or value at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MiniLmError {
    /// A JSON file could not be parsed.
    #[error("cannot parse {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A file has the wrong structure (for example a CSV without the expected columns).
    #[error("{}: {reason}", path.display())]
    BadFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The model's `config.json` describes a model this encoder cannot run.
    #[error("unsupported BERT config: {0}")]
    BadConfig(String),
    /// The safetensors file does not match the encoder.
    #[error("cannot load weights from {}: {reason}", path.display())]
    Weights {
        /// The safetensors file.
        path: PathBuf,
        /// What went wrong (missing tensors, shape mismatches, I/O).
        reason: String,
    },
    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An invalid argument (for example a test fraction outside `(0, 1)`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A file that `scripts/fetch-data.sh` writes (the model's or the task
    /// data's) is absent or cannot be read, or the task data cannot be split.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Building an adapter failed.
    #[error(transparent)]
    Adapter(#[from] burn_rlora::RLoraError),
}

impl MiniLmError {
    /// An I/O error on `path` ([`DataError::io`]).
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Data(DataError::io(path, source))
    }

    /// `path`, which the fetch script writes, is absent.
    pub(crate) fn missing(path: impl Into<PathBuf>) -> Self {
        Self::Data(DataError::DataMissing { path: path.into() })
    }
}
