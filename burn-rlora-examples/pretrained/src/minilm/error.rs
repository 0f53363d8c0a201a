//! The error type of the MiniLM example's loading, tokenizing and data reading.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while loading the MiniLM encoder, its tokenizer
/// or the task data. Every variant names the file or value at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MiniLmError {
    /// A file or directory that `scripts/fetch-data.sh` writes is absent.
    #[error(
        "{} not found: run `bash scripts/fetch-data.sh` from the repository root first \
         (it downloads the model and the task data into data/)",
        path.display()
    )]
    DataMissing {
        /// The missing path.
        path: PathBuf,
    },
    /// An I/O error on a file that exists.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("cannot parse {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A task has no usable example.
    #[error("task {task}: no usable example in {} ({skipped} records skipped)", path.display())]
    EmptyTask {
        /// The task's name.
        task: String,
        /// Where it was read from.
        path: PathBuf,
        /// How many records were skipped as corrupt.
        skipped: usize,
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
    /// Building an adapter failed.
    #[error(transparent)]
    Adapter(#[from] burn_rlora::RLoraError),
}

impl MiniLmError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Self::DataMissing { path }
        } else {
            Self::Io { path, source }
        }
    }
}
