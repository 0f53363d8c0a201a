//! Dequantization of ggml tensor data to `f32`.
//!
//! The block layouts (all little-endian, as ggml writes them; `f16` is an
//! IEEE half float, `d` a scale, `m` or `dmin` a minimum):
//!
//! | Type | Values per block | Bytes | Layout | Value |
//! |---|---|---|---|---|
//! | F32 | 1 | 4 | `f32` | the value |
//! | F16 | 1 | 2 | `f16` | the value |
//! | BF16 | 1 | 2 | bfloat16 (an `f32`'s high half) | the value |
//! | Q8_0 | 32 | 34 | `f16 d`, `i8 q[32]` | `q * d` |
//! | Q4_0 | 32 | 18 | `f16 d`, `u8 qs[16]` (4-bit `q`) | `d * (q - 8)` |
//! | Q4_1 | 32 | 20 | `f16 d`, `f16 m`, `u8 qs[16]` (4-bit `q`) | `d * q + m` |
//! | Q5_0 | 32 | 22 | `f16 d`, `u32 qh`, `u8 qs[16]` (5-bit `q`) | `d * (q - 16)` |
//! | Q5_1 | 32 | 24 | `f16 d`, `f16 m`, `u32 qh`, `u8 qs[16]` (5-bit `q`) | `d * q + m` |
//! | Q2_K | 256 | 84 | `u8 scales[16]`, `u8 qs[64]`, `f16 d`, `f16 dmin` | `(d * sc) * q - dmin * m` |
//! | Q3_K | 256 | 110 | `u8 hmask[32]`, `u8 qs[64]`, `u8 scales[12]`, `f16 d` | `(d * (sc - 32)) * q` |
//! | Q4_K | 256 | 144 | `f16 d`, `f16 dmin`, `u8 scales[12]`, `u8 qs[128]` | `(d * sc) * q - dmin * m` |
//! | Q5_K | 256 | 176 | `f16 d`, `f16 dmin`, `u8 scales[12]`, `u8 qh[32]`, `u8 qs[128]` | `(d * sc) * q - dmin * m` |
//! | Q6_K | 256 | 210 | `u8 ql[128]`, `u8 qh[64]`, `i8 scales[16]`, `f16 d` | `(d * sc) * (q - 32)` |
//!
//! How the bits of `q` (and of the K-quants' sub-block scales `sc` and
//! minimums `m`) are packed is described in `legacy.rs` (the types with
//! blocks of 32) and `k_quants.rs` (the types with super-blocks of 256).
//!
//! # Floating point
//!
//! Every `f16` field is widened to `f32` exactly, and the arithmetic is
//! `f32`, in the order of the Value column, which is that of the `gguf`
//! Python package's numpy dequantizers (`gguf/quants.py`; llama.cpp's
//! `dequantize_row_*` compute the same). The results are bit for bit that
//! package's, and not by luck of the order: an `f16` has 11 significant
//! bits and the integer factors of a value (sub-block scale and quant) at
//! most 12 together (Q6_K: 7 and 5), so every product is exact in `f32`
//! (at most 23 significant bits, far from overflow and underflow). The only rounding is that of the final
//! addition of the minimum (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K), so each value is
//! the correctly rounded value of its formula, whatever the order of the
//! multiplications and with or without fused multiply-add.
//!
//! NaN and infinite scales are not refused: they propagate as IEEE 754
//! arithmetic says (an infinite `d` times a zero quant gives NaN). A NaN
//! `f16` keeps its payload when widened, as in numpy.

mod k_quants;
mod legacy;

use half::f16;
use thiserror::Error;

use crate::ggml_type::GgmlType;

/// The types [`dequantize`] supports, as its errors list them.
pub(crate) const SUPPORTED: &str =
    "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";

/// Why bytes could not be dequantized.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DequantizeError {
    /// The type is not one this crate dequantizes.
    #[error("type {0} is not supported (supported: {SUPPORTED})")]
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
/// The supported types are F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
/// Q2_K, Q3_K, Q4_K, Q5_K and Q6_K ([`GgmlType::is_supported`]); the
/// results are bit for bit those of the `gguf` Python package's
/// `gguf.quants.dequantize`.
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
/// [`DequantizeError::Unsupported`] for any other type (the I-quants,
/// Q8_1, Q8_K, the ternary and FP4 types, the integer types, F64);
/// [`DequantizeError::PartialBlock`] when `bytes` is not a whole number of
/// blocks.
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
    // The output is at most 1024 bytes of f32 for 84 bytes of input (Q2_K,
    // the densest: 256 values in 84 bytes, about 12 to 1).
    let mut out = vec![0.0f32; bytes.len() / block_bytes * ty.block_size() as usize];
    let y = out.as_mut_slice();
    match ty {
        GgmlType::F32 => each_block(bytes, y, |b: &[u8; 4], y: &mut [f32; 1]| {
            y[0] = f32::from_le_bytes(*b)
        }),
        GgmlType::F16 => each_block(bytes, y, |b: &[u8; 2], y: &mut [f32; 1]| y[0] = half(b, 0)),
        GgmlType::BF16 => each_block(bytes, y, |b: &[u8; 2], y: &mut [f32; 1]| {
            y[0] = f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16)
        }),
        GgmlType::Q8_0 => each_block(bytes, y, legacy::q8_0),
        GgmlType::Q4_0 => each_block(bytes, y, legacy::q4_0),
        GgmlType::Q4_1 => each_block(bytes, y, legacy::q4_1),
        GgmlType::Q5_0 => each_block(bytes, y, legacy::q5_0),
        GgmlType::Q5_1 => each_block(bytes, y, legacy::q5_1),
        GgmlType::Q2_K => each_block(bytes, y, k_quants::q2_k),
        GgmlType::Q3_K => each_block(bytes, y, k_quants::q3_k),
        GgmlType::Q4_K => each_block(bytes, y, k_quants::q4_k),
        GgmlType::Q5_K => each_block(bytes, y, k_quants::q5_k),
        GgmlType::Q6_K => each_block(bytes, y, k_quants::q6_k),
        other => return Err(DequantizeError::Unsupported(other)),
    }
    Ok(out)
}

/// Runs `block` on each block of `B` bytes of `bytes` and the `N` values
/// of `out` it fills. The lengths are whole numbers of blocks (checked by
/// the caller); the fixed-size arrays let the compiler drop the bounds
/// checks inside `block`.
#[inline]
fn each_block<const B: usize, const N: usize>(
    bytes: &[u8],
    out: &mut [f32],
    block: impl Fn(&[u8; B], &mut [f32; N]),
) {
    let (blocks, rest) = bytes.as_chunks::<B>();
    let (values, rest_values) = out.as_chunks_mut::<N>();
    debug_assert!(rest.is_empty() && rest_values.is_empty());
    debug_assert_eq!(blocks.len(), values.len());
    for (b, y) in blocks.iter().zip(values) {
        block(b, y);
    }
}

/// The `f16` at `bytes[at..at + 2]`, widened exactly to `f32`.
///
/// A NaN keeps its sign, payload and quiet bit, as numpy's conversion does
/// (`f16::to_f32` sets the quiet bit of a signaling NaN, as x86's F16C
/// instructions do), so that an F16 tensor's values are those of the
/// Python `gguf` package bit for bit.
#[inline]
fn half(bytes: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    if bits & 0x7fff > 0x7c00 {
        let sign = u32::from(bits & 0x8000) << 16;
        return f32::from_bits(sign | 0x7f80_0000 | (u32::from(bits & 0x03ff) << 13));
    }
    f16::from_bits(bits).to_f32()
}

#[cfg(test)]
mod tests {
    use super::{dequantize, DequantizeError, SUPPORTED};
    use crate::ggml_type::GgmlType;

    #[test]
    fn the_message_lists_exactly_the_supported_types() {
        let listed: Vec<&str> = SUPPORTED.split(", ").collect();
        let supported: Vec<&str> = GgmlType::ALL
            .iter()
            .filter(|t| t.is_supported())
            .map(|t| t.name())
            .collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        let mut expected = supported.clone();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn f16_widening_is_exact_and_keeps_nan_payloads() {
        for bits in 0..=u16::MAX {
            let wide = super::half(&bits.to_le_bytes(), 0);
            let h = half::f16::from_bits(bits);
            if h.is_nan() {
                assert!(wide.is_nan(), "{bits:04x}");
                assert_eq!(
                    wide.to_bits() >> 13,
                    (u32::from(bits & 0x8000) << 3) | 0x3fc00 | u32::from(bits & 0x3ff),
                    "{bits:04x}"
                );
            } else {
                assert_eq!(wide.to_bits(), h.to_f32().to_bits(), "{bits:04x}");
                assert_eq!(half::f16::from_f32(wide), h, "{bits:04x}");
            }
        }
    }

    #[test]
    fn every_supported_type_gives_block_size_values_per_block() {
        for &ty in GgmlType::ALL.iter().filter(|t| t.is_supported()) {
            let bytes: Vec<u8> = (0..ty.block_bytes() * 3).map(|i| (i * 37) as u8).collect();
            let values = dequantize(ty, &bytes).unwrap();
            assert_eq!(values.len() as u64, 3 * ty.block_size(), "{ty}");
            // At most 1024 bytes of f32 for 84 bytes of data (Q2_K's ratio).
            assert!(4 * ty.block_size() * 84 <= 1024 * ty.block_bytes(), "{ty}");
        }
        assert_eq!(
            dequantize(GgmlType::IQ4_XS, &[0; 136]),
            Err(DequantizeError::Unsupported(GgmlType::IQ4_XS))
        );
    }
}
