//! # burn-rlora-gguf
//!
//! A strict reader (and a writer, [`GgufWriter`]) of GGUF files (the llama.cpp / ggml model format,
//! versions 2 and 3): the header, every metadata value type, the tensor
//! infos, and tensor data dequantized to `f32` for F32, F16, BF16, the
//! legacy quants Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1, and the K-quants Q2_K,
//! Q3_K, Q4_K, Q5_K and Q6_K (so the usual Q4_K_M, Q5_K_M, Q6_K files of
//! llama.cpp read whole). The values are bit for bit those of llama.cpp's
//! Python `gguf` package. burn-rlora uses it to load pretrained models (such
//! as SmolLM2-135M-Instruct, a Llama) from a `.gguf` file; it does not
//! depend on Burn.
//!
//! ```
//! use burn_rlora_gguf::{row_major_shape, GgmlType, GgufFile};
//!
//! // A tiny GGUF v3 file: one metadata entry and one 3x2 F32 tensor.
//! let mut bytes = b"GGUF".to_vec();
//! bytes.extend(3u32.to_le_bytes()); // version
//! bytes.extend(1u64.to_le_bytes()); // tensors
//! bytes.extend(1u64.to_le_bytes()); // metadata entries
//! let key = "llama.block_count";
//! bytes.extend((key.len() as u64).to_le_bytes());
//! bytes.extend(key.as_bytes());
//! bytes.extend(4u32.to_le_bytes()); // value type u32
//! bytes.extend(30u32.to_le_bytes());
//! bytes.extend(1u64.to_le_bytes()); // name length
//! bytes.extend(b"w");
//! bytes.extend(2u32.to_le_bytes()); // n_dims
//! bytes.extend(2u64.to_le_bytes()); // ne[0]: the row length
//! bytes.extend(3u64.to_le_bytes()); // ne[1]: the number of rows
//! bytes.extend(0u32.to_le_bytes()); // type F32
//! bytes.extend(0u64.to_le_bytes()); // offset in the data section
//! bytes.resize(bytes.len().next_multiple_of(32), 0); // align the data
//! for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
//!     bytes.extend(v.to_le_bytes());
//! }
//!
//! let file = GgufFile::from_bytes(bytes)?;
//! assert_eq!(file.metadata().get_u32("llama.block_count")?, 30);
//! let info = file.tensor_info("w")?;
//! assert_eq!(info.ggml_type(), GgmlType::F32);
//! let (dims, values) = file.read_f32("w")?;
//! assert_eq!(dims, [2, 3]); // GGUF order: the row length first
//! assert_eq!(row_major_shape(&dims), [3, 2]); // as a PyTorch tensor
//! assert_eq!(values[2], 3.0); // row 1, column 0
//! # Ok::<(), burn_rlora_gguf::GgufError>(())
//! ```
//!
//! A real file is opened with [`GgufFile::open`]:
//!
//! ```no_run
//! use burn_rlora_gguf::GgufFile;
//!
//! let file = GgufFile::open("data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let meta = file.metadata();
//! assert_eq!(meta.get_str("general.architecture")?, "llama");
//! let tokens = meta.get_str_array("tokenizer.ggml.tokens")?;
//! let (dims, embedding) = file.read_f32("token_embd.weight")?; // Q8_0
//! assert_eq!(dims, [576, tokens.len()]); // [width, vocabulary]
//! # Ok::<(), burn_rlora_gguf::GgufError>(())
//! ```
//!
//! Files are written with [`GgufWriter`]: metadata of every value type,
//! tensors given as `f32` values and encoded as F32, F16, BF16 or Q8_0
//! (quantized bit for bit as llama.cpp's reference quantizer,
//! [`quantize_q8_0`]) or given as raw bytes of any type, any power-of-two
//! alignment, written atomically ([`GgufWriter::write_file`]). Whatever it
//! writes, the reader reads back (see the [`writer`] module).
//!
//! ## Dimension order
//!
//! GGUF lists a tensor's dimensions fastest-varying first: `dims[0]`
//! (ggml's `ne[0]`) is the length of a row. A PyTorch weight of shape
//! `[out, in]` is stored with dims `[in, out]`, and its values are in the
//! same order as PyTorch's: row-major for the reversed dims, which
//! [`row_major_shape`] and [`TensorInfo::row_major_shape`] return.
//!
//! ## Strictness
//!
//! The reader accepts what llama.cpp writes and refuses, with a typed
//! [`GgufErrorKind`], everything else it can detect, never panicking:
//!
//! - a magic other than `GGUF`, a version other than 2 or 3;
//! - a file that ends early, at any field ([`GgufErrorKind::Truncated`]);
//! - counts and lengths (tensors, entries, array elements, string bytes)
//!   that cannot fit in the rest of the file: checked before anything is
//!   allocated for them, so memory stays bounded by the file's size;
//! - unknown value types, booleans other than 0 and 1, strings that are not
//!   UTF-8, arrays nested deeper than [`MAX_ARRAY_DEPTH`];
//! - duplicate keys or tensor names, a `general.alignment` that is not a
//!   `u32` power of two;
//! - more than [`MAX_DIMS`] dimensions, shapes whose element count or byte
//!   size overflows, a row length that is not a whole number of blocks,
//!   unknown ggml type ids;
//! - tensor data that is misaligned, reaches past the end of the file,
//!   overlaps the previous tensor's or comes before it;
//! - a path that is not a regular file (a directory, `/dev/zero`, a FIFO).
//!
//! Every ggml type is known by name with its block layout ([`GgmlType`]),
//! so a file holding, say, IQ4_XS tensors opens and its layout is checked;
//! reading such a tensor as `f32` fails with
//! [`GgufErrorKind::UnsupportedTensorType`] naming the type (see
//! [`GgmlType::is_supported`]). NaN or infinite scales in quantized blocks
//! are not refused: they propagate to the values as IEEE arithmetic says.
//!
//! Parsing takes time linear in the size of the header and metadata.
//! Errors name the file (for [`GgufFile::open`]) and the key or tensor.
//!
//! ## Why a reader of its own
//!
//! The project reads model files from the internet and wants every
//! malformed one refused with a typed error that names the file and the key
//! or tensor, in memory bounded by the file's size. Of the Rust crates
//! looked at when this was written, `candle-core`'s `gguf_file` checks
//! counts and lengths against the bytes left only since 0.11 (earlier
//! releases allocate from declared counts), reports errors as untyped
//! messages and lets a repeated key or tensor name replace the first;
//! `gguf-rs` (0.1.8) caps a string at 1 GiB but allocates it before
//! checking it against the file, with `anyhow` errors; and `ggus` (0.5)
//! parses a slice held in memory, bounded by it, with a read error that
//! names neither the key nor the tensor.

#![warn(missing_docs)]

mod dequant;
mod error;
mod file;
mod ggml_type;
mod header;
mod kv;
mod metadata;
mod reader;
mod tensor;
mod value;
pub mod writer;

#[cfg(feature = "testing")]
pub mod testing;

pub use dequant::{dequantize, DequantizeError};
pub use error::{GgufError, GgufErrorKind};
pub use file::GgufFile;
pub use ggml_type::GgmlType;
pub use header::DEFAULT_ALIGNMENT;
pub use kv::MAX_ARRAY_DEPTH;
pub use metadata::Metadata;
pub use tensor::{row_major_shape, TensorInfo, MAX_DIMS};
pub use value::{Array, Value, ValueType};
pub use writer::{
    encode_f32, quantize_q8_0, EncodeError, GgufWriter, WriteError, ENCODABLE_TYPES, WRITE_VERSION,
};
