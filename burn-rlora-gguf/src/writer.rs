//! Writing GGUF files: [`GgufWriter`] and the tensor encoders
//! ([`encode_f32`], [`quantize_q8_0`]).
//!
//! The writer produces GGUF version 3 as llama.cpp's `gguf` library and
//! its Python `gguf` package write it: the header, the metadata entries in
//! the order they were added, the tensor infos in the order the tensors
//! were added, then each tensor's data at the next multiple of the
//! alignment (32 bytes unless [`GgufWriter::set_alignment`] says otherwise,
//! in which case `general.alignment` is written). Everything the reader
//! refuses is refused here first, with a [`WriteError`] naming the key or
//! tensor: duplicate keys or tensor names, arrays nested deeper than
//! [`MAX_ARRAY_DEPTH`], more than [`MAX_DIMS`] dimensions, shapes that
//! overflow, row lengths that are not a whole number of blocks, and data
//! of another size than the type and shape need. So a file this writer
//! produces always opens with [`GgufFile`](crate::GgufFile), and every
//! value and tensor reads back as written.
//!
//! ```
//! use burn_rlora_gguf::{GgmlType, GgufFile, GgufWriter, Value};
//!
//! let mut writer = GgufWriter::new();
//! writer.add_metadata("general.architecture", Value::String("llama".into()))?;
//! writer.add_metadata("adapter.lora.alpha", Value::F32(16.0))?;
//! // A [rows = 2, row length = 32] tensor, quantized to Q8_0 as llama.cpp does.
//! let values: Vec<f32> = (0..64).map(|i| i as f32 / 8.0 - 4.0).collect();
//! writer.add_tensor("blk.0.attn_q.weight.lora_a", &[32, 2], GgmlType::Q8_0, &values)?;
//!
//! let file = GgufFile::from_bytes(writer.to_bytes())?;
//! assert_eq!(file.metadata().get_str("general.architecture")?, "llama");
//! let (dims, read) = file.read_f32("blk.0.attn_q.weight.lora_a")?;
//! assert_eq!(dims, [32, 2]);
//! assert!(read.iter().zip(&values).all(|(r, v)| (r - v).abs() <= 4.0 / 127.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`GgufWriter::write_file`] writes a file atomically: a temporary file
//! in the same directory, synced, then renamed over the target, so the
//! target holds its previous content or the whole new file, never a part.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use half::{bf16, f16};
use thiserror::Error;

use crate::ggml_type::GgmlType;
use crate::header::DEFAULT_ALIGNMENT;
use crate::kv::MAX_ARRAY_DEPTH;
use crate::tensor::MAX_DIMS;
use crate::value::{Array, Value};

/// The GGUF version the writer writes.
pub const WRITE_VERSION: u32 = 3;

/// The tensor types [`encode_f32`] (and so [`GgufWriter::add_tensor`]) can
/// produce from `f32` values: F32, F16, BF16 and Q8_0.
pub const ENCODABLE_TYPES: [GgmlType; 4] =
    [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0];

/// Why values could not be encoded as a tensor type ([`encode_f32`]).
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The type is not one of [`ENCODABLE_TYPES`].
    #[error("type {0} cannot be encoded (encodable: F32, F16, BF16, Q8_0)")]
    Unsupported(GgmlType),
    /// The number of values is not a whole number of the type's blocks.
    #[error("{len} values are not a whole number of {ty} blocks of {block_size}")]
    PartialBlock {
        /// The type.
        ty: GgmlType,
        /// The number of values.
        len: usize,
        /// The type's block size.
        block_size: u64,
    },
    /// A value to quantize is NaN or infinite (a block's scale would be
    /// meaningless; llama.cpp's reference quantizer gives no defined result).
    #[error("value #{index} ({value}) is not finite and cannot be quantized to {ty}")]
    NonFinite {
        /// The type.
        ty: GgmlType,
        /// The index of the value.
        index: usize,
        /// The value.
        value: f32,
    },
}

/// Why a GGUF file could not be built or written by [`GgufWriter`].
///
/// Its message holds the whole reason, the underlying error's included, so
/// it has no [`source`](std::error::Error::source) (a chain-printing
/// reporter such as `anyhow`'s `{:#}` would repeat it).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A metadata key was added twice.
    #[error("duplicate metadata key `{key}`")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// `general.alignment` was added as metadata: it decides where the data
    /// lies, so it is set with [`GgufWriter::set_alignment`].
    #[error("metadata key `{key}` is set with GgufWriter::set_alignment, not as metadata")]
    ReservedKey {
        /// The key.
        key: String,
    },
    /// An alignment that is not a power of two.
    #[error("alignment {alignment} is not a power of two")]
    InvalidAlignment {
        /// The alignment asked for.
        alignment: u32,
    },
    /// A metadata value holds arrays nested deeper than [`MAX_ARRAY_DEPTH`].
    #[error("value of key `{key}`: arrays nested deeper than {max} levels")]
    NestingTooDeep {
        /// The key.
        key: String,
        /// The deepest nesting a reader accepts.
        max: usize,
    },
    /// A tensor name was added twice.
    #[error("duplicate tensor name `{tensor}`")]
    DuplicateTensor {
        /// The name.
        tensor: String,
    },
    /// A tensor has no dimension or more than [`MAX_DIMS`].
    #[error("tensor `{tensor}` has {n_dims} dimensions, 1 to {max} are allowed")]
    BadDimCount {
        /// The tensor.
        tensor: String,
        /// The number of dimensions given.
        n_dims: usize,
        /// The most accepted.
        max: u32,
    },
    /// A tensor's element count or byte size overflows (`i64`, as ggml
    /// stores dimensions).
    #[error("tensor `{tensor}`: the shape {dims:?} overflows")]
    ShapeOverflow {
        /// The tensor.
        tensor: String,
        /// Its dimensions (GGUF order).
        dims: Vec<usize>,
    },
    /// A tensor's row length (`dims[0]`) is not a multiple of its type's
    /// block size.
    #[error("tensor `{tensor}`: row length {row_len} is not a multiple of the {ty} block size {block_size}")]
    PartialBlock {
        /// The tensor.
        tensor: String,
        /// Its type.
        ty: GgmlType,
        /// `dims[0]`.
        row_len: usize,
        /// The type's block size.
        block_size: u64,
    },
    /// A tensor's data has another length than its type and shape need.
    #[error("tensor `{tensor}`: {found} {unit} given, its type and shape need {expected}")]
    DataLength {
        /// The tensor.
        tensor: String,
        /// What the lengths count ("bytes" or "values").
        unit: &'static str,
        /// The length the type and shape need.
        expected: u64,
        /// The length given.
        found: u64,
    },
    /// A tensor's values could not be encoded in its type.
    #[error("tensor `{tensor}`: {error}")]
    Encode {
        /// The tensor.
        tensor: String,
        /// Why.
        error: EncodeError,
    },
    /// The target path exists and is not a regular file (a directory, a
    /// FIFO, a device, a socket).
    #[error("{}: not a regular file: {kind}", path.display())]
    NotRegularFile {
        /// The target.
        path: PathBuf,
        /// What it is instead, in words.
        kind: &'static str,
    },
    /// Writing failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The target.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
}

/// A tensor waiting to be written.
#[derive(Debug, Clone)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// Builds a GGUF file (version 3) in memory and writes it.
///
/// Entries and tensors are written in the order they are added. Every
/// addition is checked at once (see the [module documentation](self)), so
/// a writer that holds something always serializes to a file the reader
/// accepts. Dims are in GGUF order, the row length first (a PyTorch
/// `[out, in]` weight has dims `[in, out]`); values and bytes are in
/// row-major order of the reversed dims, as the reader returns them.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    alignment: u32,
    kvs: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

const ALIGNMENT_KEY: &str = "general.alignment";

impl GgufWriter {
    /// An empty file: no metadata, no tensors, the default alignment
    /// ([`DEFAULT_ALIGNMENT`], 32 bytes).
    pub fn new() -> Self {
        Self {
            alignment: DEFAULT_ALIGNMENT as u32,
            kvs: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// The alignment of tensor data in bytes.
    pub fn alignment(&self) -> u64 {
        u64::from(self.alignment)
    }

    /// Aligns tensor data to `alignment` bytes (a power of two). Any
    /// alignment other than the default 32 is recorded as the metadata
    /// entry `general.alignment` (`u32`), placed where it was first set.
    ///
    /// # Errors
    ///
    /// [`WriteError::InvalidAlignment`] for 0 or a number that is not a
    /// power of two.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self, WriteError> {
        if !alignment.is_power_of_two() {
            return Err(WriteError::InvalidAlignment { alignment });
        }
        self.alignment = alignment;
        let default = u64::from(alignment) == DEFAULT_ALIGNMENT;
        match self.kvs.iter().position(|(k, _)| k == ALIGNMENT_KEY) {
            Some(i) if default => {
                self.kvs.remove(i);
                self.keys.remove(ALIGNMENT_KEY);
            }
            Some(i) => self.kvs[i].1 = Value::U32(alignment),
            None if default => {}
            None => {
                self.keys.insert(ALIGNMENT_KEY.to_string());
                self.kvs
                    .push((ALIGNMENT_KEY.to_string(), Value::U32(alignment)));
            }
        }
        Ok(self)
    }

    /// Adds the metadata entry `key` = `value` (any of the thirteen value
    /// types, arrays of arrays included).
    ///
    /// # Errors
    ///
    /// [`WriteError::DuplicateKey`], [`WriteError::ReservedKey`] for
    /// `general.alignment` (use [`set_alignment`](Self::set_alignment)),
    /// [`WriteError::NestingTooDeep`] for arrays nested deeper than
    /// [`MAX_ARRAY_DEPTH`].
    pub fn add_metadata(
        &mut self,
        key: impl Into<String>,
        value: Value,
    ) -> Result<&mut Self, WriteError> {
        let key = key.into();
        if key == ALIGNMENT_KEY {
            return Err(WriteError::ReservedKey { key });
        }
        if self.keys.contains(&key) {
            return Err(WriteError::DuplicateKey { key });
        }
        if let Value::Array(a) = &value {
            if array_depth(a) > MAX_ARRAY_DEPTH {
                return Err(WriteError::NestingTooDeep {
                    key,
                    max: MAX_ARRAY_DEPTH,
                });
            }
        }
        self.keys.insert(key.clone());
        self.kvs.push((key, value));
        Ok(self)
    }

    /// The metadata entries added so far, in order (`general.alignment`
    /// included when set).
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.kvs.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The tensors added so far: name, dims (GGUF order) and type, in order.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &[u64], GgmlType)> {
        self.tensors
            .iter()
            .map(|t| (t.name.as_str(), t.dims.as_slice(), t.ty))
    }

    /// Adds the tensor `name` of dims `dims` (GGUF order, the row length
    /// first) holding `values` (row-major for the reversed dims), encoded
    /// as `ty` by [`encode_f32`]: F32, F16 and BF16 round to nearest even,
    /// Q8_0 is quantized as llama.cpp's reference quantizer does.
    ///
    /// # Errors
    ///
    /// As [`add_tensor_bytes`](Self::add_tensor_bytes), plus
    /// [`WriteError::DataLength`] when `values` does not hold one value per
    /// element and [`WriteError::Encode`] for a type other than
    /// [`ENCODABLE_TYPES`] or non-finite values to quantize.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[usize],
        ty: GgmlType,
        values: &[f32],
    ) -> Result<&mut Self, WriteError> {
        let name = name.into();
        let (n, _) = self.check_tensor(&name, dims, ty)?;
        if values.len() as u64 != n {
            return Err(WriteError::DataLength {
                tensor: name,
                unit: "values",
                expected: n,
                found: values.len() as u64,
            });
        }
        let data = encode_f32(ty, values).map_err(|error| WriteError::Encode {
            tensor: name.clone(),
            error,
        })?;
        self.push(name, dims, ty, data);
        Ok(self)
    }

    /// Adds the tensor `name` of dims `dims` (GGUF order) and type `ty`
    /// (any ggml type) with its data as the file stores it.
    ///
    /// # Errors
    ///
    /// [`WriteError::DuplicateTensor`], [`WriteError::BadDimCount`],
    /// [`WriteError::ShapeOverflow`], [`WriteError::PartialBlock`], and
    /// [`WriteError::DataLength`] when `data` is not exactly the bytes the
    /// type and dims need.
    pub fn add_tensor_bytes(
        &mut self,
        name: impl Into<String>,
        dims: &[usize],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> Result<&mut Self, WriteError> {
        let name = name.into();
        let (_, n_bytes) = self.check_tensor(&name, dims, ty)?;
        if data.len() as u64 != n_bytes {
            return Err(WriteError::DataLength {
                tensor: name,
                unit: "bytes",
                expected: n_bytes,
                found: data.len() as u64,
            });
        }
        self.push(name, dims, ty, data);
        Ok(self)
    }

    fn push(&mut self, name: String, dims: &[usize], ty: GgmlType, data: Vec<u8>) {
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor {
            name,
            dims: dims.iter().map(|&d| d as u64).collect(),
            ty,
            data,
        });
    }

    /// Checks a new tensor's name and shape; returns its element count and
    /// byte size.
    fn check_tensor(
        &self,
        name: &str,
        dims: &[usize],
        ty: GgmlType,
    ) -> Result<(u64, u64), WriteError> {
        if self.names.contains(name) {
            return Err(WriteError::DuplicateTensor {
                tensor: name.to_string(),
            });
        }
        if dims.is_empty() || dims.len() > MAX_DIMS as usize {
            return Err(WriteError::BadDimCount {
                tensor: name.to_string(),
                n_dims: dims.len(),
                max: MAX_DIMS,
            });
        }
        let overflow = || WriteError::ShapeOverflow {
            tensor: name.to_string(),
            dims: dims.to_vec(),
        };
        let mut n: u64 = 1;
        for &d in dims {
            n = n.checked_mul(d as u64).ok_or_else(overflow)?;
            if d as u64 > i64::MAX as u64 || n > i64::MAX as u64 {
                return Err(overflow());
            }
        }
        if !(dims[0] as u64).is_multiple_of(ty.block_size()) {
            return Err(WriteError::PartialBlock {
                tensor: name.to_string(),
                ty,
                row_len: dims[0],
                block_size: ty.block_size(),
            });
        }
        let n_bytes = (n / ty.block_size())
            .checked_mul(ty.block_bytes())
            .filter(|&b| b <= i64::MAX as u64)
            .ok_or_else(overflow)?;
        Ok((n, n_bytes))
    }

    /// Writes the file to `out`: header, metadata, tensor infos, padding,
    /// then every tensor's data, each padded to the alignment. Returns the
    /// number of bytes written.
    ///
    /// # Errors
    ///
    /// What `out` fails with.
    pub fn write_to<W: Write>(&self, out: &mut W) -> io::Result<u64> {
        let mut head = Vec::new();
        head.extend_from_slice(b"GGUF");
        head.extend_from_slice(&WRITE_VERSION.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (key, value) in &self.kvs {
            put_str(key, &mut head);
            head.extend_from_slice(&value.value_type().id().to_le_bytes());
            encode_value(value, &mut head);
        }
        let align = u64::from(self.alignment);
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&t.name, &mut head);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            t.dims
                .iter()
                .for_each(|d| head.extend_from_slice(&d.to_le_bytes()));
            head.extend_from_slice(&t.ty.id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + t.data.len() as u64).next_multiple_of(align);
        }
        let padded = (head.len() as u64).next_multiple_of(align);
        head.resize(padded as usize, 0);
        out.write_all(&head)?;
        let mut written = padded;
        let zeros = vec![0u8; self.alignment as usize];
        for t in &self.tensors {
            out.write_all(&t.data)?;
            let len = t.data.len() as u64;
            let pad = len.next_multiple_of(align) - len;
            out.write_all(&zeros[..pad as usize])?;
            written += len + pad;
        }
        Ok(written)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("writing to a Vec does not fail");
        out
    }

    /// Writes the file to `path` atomically: into a new hidden temporary
    /// file in the same directory (`.<name>.gguf-tmp-<pid>-<n>`), synced to
    /// disk, then renamed over `path`, and the directory synced. `path`
    /// holds either its previous content or the whole new file, even if the
    /// process is killed; on an error the temporary file is removed.
    ///
    /// # Errors
    ///
    /// [`WriteError::NotRegularFile`] when `path` exists and is not a
    /// regular file (checked before anything is written);
    /// [`WriteError::Io`] naming `path`.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), WriteError> {
        let path = path.as_ref();
        write_atomically(path, |f| self.write_to(f).map(|_| ()))
    }
}

/// The nesting depth of an array: 1 for an array of scalars or strings,
/// one more per level of arrays of arrays.
fn array_depth(a: &Array) -> usize {
    match a {
        Array::Array(inner) => 1 + inner.iter().map(array_depth).max().unwrap_or(0),
        _ => 1,
    }
}

fn put_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends the bytes of `value` (without its type id) to `out`.
pub(crate) fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => put_str(s, out),
        Value::Array(a) => encode_array(a, out),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}

fn encode_array(a: &Array, out: &mut Vec<u8>) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    fn each<T: Copy, const N: usize>(v: &[T], bytes: fn(T) -> [u8; N], out: &mut Vec<u8>) {
        v.iter().for_each(|&x| out.extend_from_slice(&bytes(x)));
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each(v, i8::to_le_bytes, out),
        Array::U16(v) => each(v, u16::to_le_bytes, out),
        Array::I16(v) => each(v, i16::to_le_bytes, out),
        Array::U32(v) => each(v, u32::to_le_bytes, out),
        Array::I32(v) => each(v, i32::to_le_bytes, out),
        Array::F32(v) => each(v, f32::to_le_bytes, out),
        Array::Bool(v) => v.iter().for_each(|&b| out.push(u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| put_str(s, out)),
        Array::Array(v) => v.iter().for_each(|inner| encode_array(inner, out)),
        Array::U64(v) => each(v, u64::to_le_bytes, out),
        Array::I64(v) => each(v, i64::to_le_bytes, out),
        Array::F64(v) => each(v, f64::to_le_bytes, out),
    }
}

/// `values` encoded as tensor data of type `ty`, one of
/// [`ENCODABLE_TYPES`]:
///
/// * F32: the values as they are;
/// * F16, BF16: each value rounded to the nearest representable one, ties
///   to even (as numpy's `astype(float16)` and the `gguf` package's BF16
///   conversion do; NaN stays NaN);
/// * Q8_0: [`quantize_q8_0`].
///
/// # Errors
///
/// [`EncodeError::Unsupported`] for another type; for Q8_0,
/// [`EncodeError::PartialBlock`] and [`EncodeError::NonFinite`].
pub fn encode_f32(ty: GgmlType, values: &[f32]) -> Result<Vec<u8>, EncodeError> {
    match ty {
        GgmlType::F32 => Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        GgmlType::F16 => Ok(values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect()),
        GgmlType::BF16 => Ok(values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect()),
        GgmlType::Q8_0 => quantize_q8_0(values),
        other => Err(EncodeError::Unsupported(other)),
    }
}

/// `values` quantized to Q8_0 blocks as ggml's reference quantizer
/// (`quantize_row_q8_0_ref`, which llama.cpp's converters reproduce bit for
/// bit) does it: per block of 32 values, the scale `d = amax / 127` in f32
/// (`amax` the largest absolute value), stored as f16 (rounded to nearest
/// even), and each value as `round(x * (1 / d))` (halves away from zero),
/// computed with the f32 scale before it is rounded to f16; a block of
/// zeros has `d = 0` and all-zero values.
///
/// ```
/// use burn_rlora_gguf::{dequantize, quantize_q8_0, GgmlType};
///
/// let values: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
/// let block = quantize_q8_0(&values)?;
/// assert_eq!(block.len(), 34); // f16 scale + 32 signed bytes
/// assert_eq!(block[2] as i8, -127); // -16 is the largest magnitude
/// let back = dequantize(GgmlType::Q8_0, &block).unwrap();
/// assert!((back[0] + 16.0).abs() < 1e-2);
/// # Ok::<(), burn_rlora_gguf::EncodeError>(())
/// ```
///
/// # Errors
///
/// [`EncodeError::PartialBlock`] unless the number of values is a multiple
/// of 32; [`EncodeError::NonFinite`] for a NaN or an infinity.
pub fn quantize_q8_0(values: &[f32]) -> Result<Vec<u8>, EncodeError> {
    const BLOCK: usize = 32;
    if !values.len().is_multiple_of(BLOCK) {
        return Err(EncodeError::PartialBlock {
            ty: GgmlType::Q8_0,
            len: values.len(),
            block_size: BLOCK as u64,
        });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(EncodeError::NonFinite {
            ty: GgmlType::Q8_0,
            index,
            value,
        });
    }
    let mut out = Vec::with_capacity(values.len() / BLOCK * 34);
    for block in values.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        // `round` is C's `roundf` (halves away from zero); the products lie
        // within [-127, 127] up to rounding, so the cast does not saturate.
        out.extend(block.iter().map(|&x| (x * id).round() as i8 as u8));
    }
    Ok(out)
}

static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Writes `path` through a temporary sibling, synced and renamed over it.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> io::Result<()>,
) -> Result<(), WriteError> {
    let io = |error| WriteError::Io {
        path: path.to_path_buf(),
        error,
    };
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(WriteError::NotRegularFile {
                path: path.to_path_buf(),
                kind: crate::file::file_kind(&meta),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let name = path.file_name().ok_or_else(|| {
        io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not end in a file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".gguf-tmp-{}-{}",
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let result = File::create_new(&tmp).and_then(|mut file| {
        let mut buffered = BufWriter::with_capacity(1 << 20, &mut file);
        write(&mut buffered)?;
        buffered.flush()?;
        drop(buffered);
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    // Persist the rename where a directory can be synced.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
