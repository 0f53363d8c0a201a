//! [`GgufFile`]: a parsed GGUF file and reads of its tensors.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Cursor, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::dequant::{dequantize, DequantizeError};
use crate::error::{GgufError, GgufErrorKind};
use crate::header::{parse, Parsed};
use crate::metadata::Metadata;
use crate::reader::Bounded;
use crate::tensor::TensorInfo;

trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// A GGUF file whose header, metadata and tensor infos have been read and
/// checked; tensor data is read on demand with [`read_f32`](Self::read_f32)
/// or [`read_raw`](Self::read_raw).
///
/// Opening checks the whole layout: every count and length against the
/// bytes that remain, unique keys and tensor names, each tensor's byte size
/// against its type and dims, and that the tensors' data is aligned, in
/// order, non-overlapping and inside the file. So a tensor read fails only
/// if the file changes (or an unsupported type is asked for as `f32`).
pub struct GgufFile {
    file: Option<PathBuf>,
    parsed: Parsed,
    source: Mutex<Box<dyn ReadSeek>>,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("file", &self.file)
            .field("version", &self.parsed.version)
            .field("metadata_entries", &self.parsed.metadata.len())
            .field("tensors", &self.parsed.tensors.len())
            .finish_non_exhaustive()
    }
}

impl GgufFile {
    /// Opens and parses the GGUF file at `path` (symlinks are followed).
    ///
    /// Only a regular file is read: a directory, a device, a FIFO or a
    /// socket is refused (the check is made on the opened file; a FIFO is
    /// opened without blocking). The header, metadata and tensor infos are
    /// read through a buffer; nothing is allocated from a count or length
    /// before it is checked against the bytes left in the file.
    ///
    /// # Errors
    ///
    /// A [`GgufError`] naming `path`: [`GgufErrorKind::Io`],
    /// [`GgufErrorKind::NotRegularFile`], or any of the format errors of
    /// [`GgufErrorKind`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let err = |kind| GgufError::in_file(Some(path), kind);
        let file = open_regular(path).map_err(err)?;
        let len = file
            .metadata()
            .map_err(|e| err(GgufErrorKind::Io(e)))?
            .len();
        Self::parse_from(file, len, Some(path))
    }

    /// Parses GGUF bytes held in memory.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), without a file name.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GgufError> {
        let len = bytes.len() as u64;
        Self::parse_from(Cursor::new(bytes), len, None)
    }

    /// Parses a GGUF input from a reader, read from its start (position 0)
    /// to its end (found by seeking).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), without a file name.
    pub fn from_reader<R: Read + Seek + Send + 'static>(mut reader: R) -> Result<Self, GgufError> {
        let io = |e| GgufError::from(GgufErrorKind::Io(e));
        let len = reader.seek(SeekFrom::End(0)).map_err(io)?;
        reader.seek(SeekFrom::Start(0)).map_err(io)?;
        Self::parse_from(reader, len, None)
    }

    fn parse_from<R: Read + Seek + Send + 'static>(
        reader: R,
        len: u64,
        file: Option<&Path>,
    ) -> Result<Self, GgufError> {
        let mut r = Bounded::new(BufReader::with_capacity(1 << 16, reader), len);
        let mut parsed = parse(&mut r).map_err(|k| GgufError::in_file(file, k))?;
        parsed.metadata.set_file(file.map(Path::to_path_buf));
        Ok(Self {
            file: file.map(Path::to_path_buf),
            parsed,
            source: Mutex::new(Box::new(r.into_inner().into_inner())),
        })
    }

    /// The file's path, for a file opened with [`open`](Self::open).
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.parsed.version
    }

    /// The metadata entries, with typed getters.
    pub fn metadata(&self) -> &Metadata {
        &self.parsed.metadata
    }

    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.parsed.tensors
    }

    /// The alignment of tensor data (`general.alignment`, 32 if absent).
    pub fn alignment(&self) -> u64 {
        self.parsed.alignment
    }

    /// Where the data section starts, in bytes from the start of the file;
    /// a tensor's data starts at this plus its [`TensorInfo::offset`].
    pub fn data_offset(&self) -> u64 {
        self.parsed.data_start
    }

    /// The length of the data section in bytes (to the end of the file):
    /// every tensor's data lies inside it.
    pub fn data_len(&self) -> u64 {
        self.parsed.data_len
    }

    /// The info of the tensor `name`.
    ///
    /// # Errors
    ///
    /// [`GgufErrorKind::NoSuchTensor`].
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        match self.parsed.index.get(name) {
            Some(&i) => Ok(&self.parsed.tensors[i]),
            None => Err(self.error(GgufErrorKind::NoSuchTensor {
                tensor: name.to_string(),
            })),
        }
    }

    /// The raw bytes of the tensor `name` ([`TensorInfo::n_bytes`] of them).
    ///
    /// # Errors
    ///
    /// [`GgufErrorKind::NoSuchTensor`]; [`GgufErrorKind::Io`] or [`GgufErrorKind::Truncated`] if the
    /// file changed since it was opened.
    pub fn read_raw(&self, name: &str) -> Result<Vec<u8>, GgufError> {
        let info = self.tensor_info(name)?;
        let start = self.parsed.data_start + info.offset;
        let truncated = || {
            let what = format!("the data of tensor `{name}`");
            self.error(GgufErrorKind::truncated(what, start, info.n_bytes, start))
        };
        let n = usize::try_from(info.n_bytes).map_err(|_| truncated())?;
        let mut buf = vec![0u8; n];
        let mut source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        let io = |e: std::io::Error| match e.kind() {
            ErrorKind::UnexpectedEof => truncated(),
            _ => self.error(GgufErrorKind::Io(e)),
        };
        source.seek(SeekFrom::Start(start)).map_err(io)?;
        source.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// The values of the tensor `name`, dequantized to `f32`, with its dims
    /// in GGUF order (`dims[0]` is the row length; see [`TensorInfo`]).
    ///
    /// The values are in file order, which is row-major for the reversed
    /// dims ([`row_major_shape`](crate::row_major_shape)).
    ///
    /// # Errors
    ///
    /// [`GgufErrorKind::NoSuchTensor`]; [`GgufErrorKind::UnsupportedTensorType`] for a type
    /// that is not [supported](crate::GgmlType::is_supported) (F32, F16,
    /// BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K);
    /// the errors of [`read_raw`](Self::read_raw).
    pub fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), GgufError> {
        let info = self.tensor_info(name)?;
        let unsupported = |ty| {
            self.error(GgufErrorKind::UnsupportedTensorType {
                tensor: name.to_string(),
                ty,
            })
        };
        if !info.ty.is_supported() {
            return Err(unsupported(info.ty));
        }
        let bytes = self.read_raw(name)?;
        let values = dequantize(info.ty, &bytes).map_err(|e| match e {
            DequantizeError::PartialBlock { ty, .. } | DequantizeError::Unsupported(ty) => {
                unsupported(ty)
            }
        })?;
        Ok((info.dims.clone(), values))
    }

    fn error(&self, kind: GgufErrorKind) -> GgufError {
        GgufError::in_file(self.file.as_deref(), kind)
    }
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Opens `path` and checks that it is a regular file.
fn open_regular(path: &Path) -> Result<File, GgufErrorKind> {
    let file = open_nonblocking(path).map_err(GgufErrorKind::Io)?;
    let meta = file.metadata().map_err(GgufErrorKind::Io)?;
    if !meta.is_file() {
        return Err(GgufErrorKind::NotRegularFile {
            kind: file_kind(&meta),
        });
    }
    Ok(file)
}

pub(crate) fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}
