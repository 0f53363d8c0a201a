//! Dequantization of ggml tensor data to `f32`.
//!
//! The block layouts (all little-endian, as ggml writes them):
//!
//! | Type | Values per block | Bytes | Layout | Value `i` |
//! |---|---|---|---|---|
//! | F32 | 1 | 4 | `f32` | the value |
//! | F16 | 1 | 2 | IEEE half | the value |
//! | BF16 | 1 | 2 | bfloat16 (an `f32`'s high half) | the value |
//! | Q8_0 | 32 | 34 | `f16 d`, `i8 q[32]` | `q[i] * d` |
//! | Q4_0 | 32 | 18 | `f16 d`, `u8 qs[16]` | `(n - 8) * d` |
//! | Q4_1 | 32 | 20 | `f16 d`, `f16 m`, `u8 qs[16]` | `n * d + m` |
//!
//! In the 4-bit types, the nibble `n` of value `i < 16` is the low nibble of
//! `qs[i]`, and that of value `i + 16` is the high nibble of `qs[i]`.

use half::f16;
use thiserror::Error;

use crate::ggml_type::GgmlType;

/// Why bytes could not be dequantized.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DequantizeError {
    /// The type is not one this crate dequantizes.
    #[error("type {0} is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)")]
    Unsupported(GgmlType),
    /// The bytes are not a whole number of blocks.
    #[error("{len} bytes are not a whole number of {ty} blocks of {block_bytes} bytes")]
    PartialBlock {
        /// The type.
        ty: GgmlType,
        /// The number of bytes given.
        len: usize,
        /// The size of one block.
        block_bytes: u64,
    },
}

/// Dequantizes `bytes`, the data of a tensor of type `ty`, to `f32` values
/// (`block_size` values for every `block_bytes` bytes, in order).
///
/// ```
/// use burn_rlora_gguf::{dequantize, GgmlType};
///
/// // One Q8_0 block: d = 0.5 (f16 0x3800), then 32 signed bytes.
/// let mut block = vec![0x00, 0x38];
/// block.extend((0..32).map(|i| (i as i8 - 16) as u8));
/// let values = dequantize(GgmlType::Q8_0, &block).unwrap();
/// assert_eq!(values.len(), 32);
/// assert_eq!((values[0], values[31]), (-8.0, 7.5));
/// ```
///
/// # Errors
///
/// [`DequantizeError::Unsupported`] for a type other than F32, F16, BF16,
/// Q8_0, Q4_0 and Q4_1; [`DequantizeError::PartialBlock`] when `bytes` is
/// not a whole number of blocks.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, DequantizeError> {
    if !ty.is_supported() {
        return Err(DequantizeError::Unsupported(ty));
    }
    let block_bytes = ty.block_bytes() as usize;
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(DequantizeError::PartialBlock {
            ty,
            len: bytes.len(),
            block_bytes: ty.block_bytes(),
        });
    }
    let mut out = Vec::with_capacity(bytes.len() / block_bytes * ty.block_size() as usize);
    let blocks = bytes.chunks_exact(block_bytes);
    match ty {
        GgmlType::F32 => out.extend(blocks.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        GgmlType::F16 => out.extend(blocks.map(|b| half(b[0], b[1]))),
        GgmlType::BF16 => out.extend(blocks.map(|b| bf16(b[0], b[1]))),
        GgmlType::Q8_0 => blocks.for_each(|b| q8_0(b, &mut out)),
        GgmlType::Q4_0 => blocks.for_each(|b| q4_0(b, &mut out)),
        GgmlType::Q4_1 => blocks.for_each(|b| q4_1(b, &mut out)),
        other => return Err(DequantizeError::Unsupported(other)),
    }
    Ok(out)
}

fn half(lo: u8, hi: u8) -> f32 {
    f16::from_bits(u16::from_le_bytes([lo, hi])).to_f32()
}

fn bf16(lo: u8, hi: u8) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes([lo, hi])) << 16)
}

/// One Q8_0 block of 34 bytes.
fn q8_0(block: &[u8], out: &mut Vec<f32>) {
    let d = half(block[0], block[1]);
    out.extend(block[2..34].iter().map(|&q| f32::from(q as i8) * d));
}

/// The 32 nibbles of a 4-bit block's 16 bytes, in value order: the low
/// nibbles (values 0..16), then the high nibbles (values 16..32).
fn nibbles(qs: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let low = qs.iter().map(|q| q & 0x0f);
    let high = qs.iter().map(|q| q >> 4);
    low.chain(high)
}

/// One Q4_0 block of 18 bytes.
fn q4_0(block: &[u8], out: &mut Vec<f32>) {
    let d = half(block[0], block[1]);
    out.extend(nibbles(&block[2..18]).map(|n| f32::from(n as i8 - 8) * d));
}

/// One Q4_1 block of 20 bytes.
fn q4_1(block: &[u8], out: &mut Vec<f32>) {
    let d = half(block[0], block[1]);
    let m = half(block[2], block[3]);
    out.extend(nibbles(&block[4..20]).map(|n| f32::from(n) * d + m));
}
