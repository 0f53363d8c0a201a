//! What can go wrong reading the task data.

use std::path::PathBuf;

use thiserror::Error;

/// An error reading or splitting the task data. Every variant names the file
/// or value at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
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
    /// An invalid argument (for example a test fraction outside `(0, 1)`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl DataError {
    /// An I/O error on `path`: [`DataError::DataMissing`] when it does not
    /// exist, [`DataError::Io`] otherwise.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Self::DataMissing { path }
        } else {
            Self::Io { path, source }
        }
    }
}
