//! The typed error of reading a GGUF file.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::dequant::SUPPORTED;
use crate::ggml_type::GgmlType;
use crate::value::ValueType;

/// Why a GGUF file (or a value or tensor in it) could not be read.
///
/// It names the file when the input was a path ([`GgufError::file`]) and
/// carries the reason as a [`GgufErrorKind`], whose variants name the key or
/// tensor concerned. Its message is `"<file>: <reason>"`.
///
/// ```
/// use burn_rlora_gguf::{GgufErrorKind, GgufFile};
///
/// let err = GgufFile::from_bytes(b"GGUF\x01\0\0\0".to_vec()).unwrap_err();
/// assert!(matches!(err.kind(), GgufErrorKind::UnsupportedVersion { version: 1 }));
/// assert_eq!(err.file(), None);
/// ```
#[derive(Debug)]
pub struct GgufError {
    file: Option<PathBuf>,
    kind: GgufErrorKind,
}

impl GgufError {
    /// The file that was being read, or `None` for bytes read from memory or
    /// from a reader.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// What went wrong.
    pub fn kind(&self) -> &GgufErrorKind {
        &self.kind
    }

    /// What went wrong, by value.
    pub fn into_kind(self) -> GgufErrorKind {
        self.kind
    }

    pub(crate) fn in_file(file: Option<&Path>, kind: GgufErrorKind) -> Self {
        Self {
            file: file.map(Path::to_path_buf),
            kind,
        }
    }
}

impl From<GgufErrorKind> for GgufError {
    fn from(kind: GgufErrorKind) -> Self {
        Self { file: None, kind }
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(path) => write!(f, "{}: {}", path.display(), self.kind),
            None => write!(f, "GGUF bytes: {}", self.kind),
        }
    }
}

/// No `source`: the message already holds the I/O error's own message (so
/// that a chain-printing reporter such as `anyhow`'s `{:#}` does not repeat
/// it); the [`std::io::Error`] itself is in [`GgufErrorKind::Io`].
impl std::error::Error for GgufError {}

/// The reasons a GGUF file is refused.
///
/// Where a field is called `what`, it says which part of the file was being
/// read, naming the key or tensor (for example ``"value of key
/// `tokenizer.ggml.tokens`"`` or ``"info of tensor #3 `blk.0.attn_q.weight`"``).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GgufErrorKind {
    /// Reading failed for a reason other than the end of the file.
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    /// The path is a directory, a device, a FIFO or a socket.
    #[error("not a regular file: {kind}")]
    NotRegularFile {
        /// What it is instead, in words ("a directory", "a character device", ...).
        kind: &'static str,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: the magic is \"{}\", expected \"GGUF\"", found.escape_ascii())]
    BadMagic {
        /// The first four bytes (fewer if the file is shorter).
        found: Vec<u8>,
    },
    /// The format version is not 2 or 3.
    #[error("GGUF version {version} is not supported (only versions 2 and 3 are)")]
    UnsupportedVersion {
        /// The version in the header.
        version: u32,
    },
    /// The file ends before something it declares.
    #[error("truncated: {what} needs {needed} bytes at offset {offset}, only {available} remain")]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts in the file.
        offset: u64,
        /// The bytes it needs.
        needed: u64,
        /// The bytes left in the file from `offset`.
        available: u64,
    },
    /// A count or length could not fit in the rest of the file, even if each
    /// item took its smallest possible size. Nothing is allocated for it.
    #[error(
        "{what} is {count}, but each takes at least {min_bytes_each} bytes and only {available} remain"
    )]
    CountTooLarge {
        /// The count or length ("number of tensors", "length of key `k`", ...).
        what: String,
        /// The declared count.
        count: u64,
        /// The smallest size of one item.
        min_bytes_each: u64,
        /// The bytes left in the file.
        available: u64,
    },
    /// A string (a key, a tensor name or a value) is not UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which string.
        what: String,
    },
    /// A boolean value is neither 0 nor 1.
    #[error("value of key `{key}`: boolean byte {byte} is neither 0 nor 1")]
    InvalidBool {
        /// The key.
        key: String,
        /// The byte found.
        byte: u8,
    },
    /// A metadata value has a type id outside 0..=12.
    #[error("value of key `{key}`: unknown value type {id}")]
    UnknownValueType {
        /// The key.
        key: String,
        /// The type id found.
        id: u32,
    },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`](crate::MAX_ARRAY_DEPTH).
    #[error("value of key `{key}`: arrays nested deeper than {max} levels")]
    NestingTooDeep {
        /// The key.
        key: String,
        /// The deepest nesting accepted.
        max: usize,
    },
    /// Two metadata entries have the same key.
    #[error("duplicate metadata key `{key}`")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// Two tensors have the same name.
    #[error("duplicate tensor name `{tensor}`")]
    DuplicateTensor {
        /// The name.
        tensor: String,
    },
    /// `general.alignment` is not a `u32` power of two.
    #[error("`general.alignment` must be a u32 power of two, found {found}")]
    InvalidAlignment {
        /// The value found, in words.
        found: String,
    },
    /// A tensor has more dimensions than [`MAX_DIMS`](crate::MAX_DIMS).
    #[error("tensor `{tensor}` has {n_dims} dimensions, at most {max} are allowed")]
    TooManyDims {
        /// The tensor.
        tensor: String,
        /// The declared number of dimensions.
        n_dims: u32,
        /// The most accepted.
        max: u32,
    },
    /// A tensor's element count or byte size overflows (64-bit, or `i64` as
    /// ggml stores dimensions).
    #[error("tensor `{tensor}`: the shape {dims:?} overflows")]
    ShapeOverflow {
        /// The tensor.
        tensor: String,
        /// Its dimensions (GGUF order).
        dims: Vec<u64>,
    },
    /// A tensor's type id is not a ggml type.
    #[error("tensor `{tensor}`: unknown ggml type id {id}")]
    UnknownTensorType {
        /// The tensor.
        tensor: String,
        /// The type id found.
        id: u32,
    },
    /// A tensor's type is a ggml type this crate does not dequantize (see
    /// [`GgmlType::is_supported`]).
    #[error("tensor `{tensor}`: type {ty} is not supported (supported: {SUPPORTED})")]
    UnsupportedTensorType {
        /// The tensor.
        tensor: String,
        /// Its type.
        ty: GgmlType,
    },
    /// A tensor's row length (`dims[0]`) is not a multiple of its type's block size.
    #[error("tensor `{tensor}`: row length {row_len} is not a multiple of the {ty} block size {block_size}")]
    PartialBlock {
        /// The tensor.
        tensor: String,
        /// Its type.
        ty: GgmlType,
        /// `dims[0]`.
        row_len: u64,
        /// The type's block size (values per block).
        block_size: u64,
    },
    /// A tensor's data offset is not a multiple of the file's alignment.
    #[error(
        "tensor `{tensor}`: data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    Misaligned {
        /// The tensor.
        tensor: String,
        /// Its offset, relative to the start of the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// A tensor's data reaches past the end of the file.
    #[error(
        "tensor `{tensor}`: {size} bytes at data offset {offset} reach past the end of the data section ({data_len} bytes)"
    )]
    DataOutOfBounds {
        /// The tensor.
        tensor: String,
        /// Its offset, relative to the start of the data section.
        offset: u64,
        /// Its size in bytes, from its type and shape.
        size: u64,
        /// The length of the data section.
        data_len: u64,
    },
    /// A tensor's data starts before the end of the previous tensor's (they
    /// overlap, or are out of order).
    #[error(
        "tensor `{tensor}`: data at offset {offset} starts before the end ({previous_end}) of the previous tensor `{previous}` (tensor data must be in order and must not overlap)"
    )]
    Overlap {
        /// The tensor.
        tensor: String,
        /// Its offset, relative to the start of the data section.
        offset: u64,
        /// The tensor before it in the file's list.
        previous: String,
        /// Where the previous tensor's data ends.
        previous_end: u64,
    },
    /// No metadata entry has this key.
    #[error("no metadata key `{key}`")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata value has another type than the one asked for.
    #[error(
        "metadata key `{key}`: expected {}, found {}",
        describe(*expected, *expected_element),
        describe(*found, *found_element)
    )]
    WrongType {
        /// The key.
        key: String,
        /// The type asked for ([`ValueType::Array`] for an array).
        expected: ValueType,
        /// For an array: the element type asked for.
        expected_element: Option<ValueType>,
        /// The type found.
        found: ValueType,
        /// For an array: the type of its elements.
        found_element: Option<ValueType>,
    },
    /// No tensor has this name.
    #[error("no tensor `{tensor}`")]
    NoSuchTensor {
        /// The name.
        tensor: String,
    },
}

fn describe(ty: ValueType, element: Option<ValueType>) -> String {
    match element {
        Some(e) => format!("{ty} of {e}"),
        None => ty.to_string(),
    }
}

impl GgufErrorKind {
    pub(crate) fn truncated(what: impl Into<String>, offset: u64, needed: u64, len: u64) -> Self {
        Self::Truncated {
            what: what.into(),
            offset,
            needed,
            available: len.saturating_sub(offset),
        }
    }
}
