//! The types with blocks of 32 values and one `f16` scale: Q8_0, Q4_0,
//! Q4_1, Q5_0 and Q5_1.
//!
//! In the 4- and 5-bit types, the low 4 bits of value `i < 16` are the low
//! nibble of `qs[i]`, and those of value `i + 16` the high nibble of
//! `qs[i]`. In the 5-bit types, the fifth (high) bit of value `i` is bit
//! `i` of the little-endian `u32 qh`.
//!
//! The operations are written in the order (and with the operands in the
//! order) of the `gguf` Python package's numpy code, so that the `f32`
//! results are bit for bit the same.

use super::half;

/// Q8_0 (34 bytes): `f16 d`, then 32 signed bytes `q`; value `q * d`.
pub(super) fn q8_0(block: &[u8; 34], y: &mut [f32; 32]) {
    let d = half(block, 0);
    for (y, &q) in y.iter_mut().zip(&block[2..]) {
        *y = f32::from(q as i8) * d;
    }
}

/// Q4_0 (18 bytes): `f16 d`, `u8 qs[16]`; value `d * (q - 8)`.
pub(super) fn q4_0(block: &[u8; 18], y: &mut [f32; 32]) {
    let d = half(block, 0);
    let (low, high) = y.split_at_mut(16);
    for ((low, high), &q) in low.iter_mut().zip(high).zip(&block[2..]) {
        *low = d * f32::from((q & 0x0f) as i8 - 8);
        *high = d * f32::from((q >> 4) as i8 - 8);
    }
}

/// Q4_1 (20 bytes): `f16 d`, `f16 m`, `u8 qs[16]`; value `d * q + m`.
pub(super) fn q4_1(block: &[u8; 20], y: &mut [f32; 32]) {
    let d = half(block, 0);
    let m = half(block, 2);
    let (low, high) = y.split_at_mut(16);
    for ((low, high), &q) in low.iter_mut().zip(high).zip(&block[4..]) {
        *low = d * f32::from(q & 0x0f) + m;
        *high = d * f32::from(q >> 4) + m;
    }
}

/// The 5-bit values of a Q5 block, 0..32: the nibbles of `qs` with the
/// high bits from `qh`.
#[inline]
fn five_bits(qh: [u8; 4], qs: &[u8], i: usize) -> (u8, u8) {
    let qh = u32::from_le_bytes(qh);
    let high = |bit: usize| (((qh >> bit) & 1) as u8) << 4;
    ((qs[i] & 0x0f) | high(i), (qs[i] >> 4) | high(i + 16))
}

/// Q5_0 (22 bytes): `f16 d`, `u32 qh`, `u8 qs[16]`; value `d * (q - 16)`.
pub(super) fn q5_0(block: &[u8; 22], y: &mut [f32; 32]) {
    let d = half(block, 0);
    let qh = [block[2], block[3], block[4], block[5]];
    let qs = &block[6..];
    for i in 0..16 {
        let (low, high) = five_bits(qh, qs, i);
        y[i] = d * f32::from(low as i8 - 16);
        y[i + 16] = d * f32::from(high as i8 - 16);
    }
}

/// Q5_1 (24 bytes): `f16 d`, `f16 m`, `u32 qh`, `u8 qs[16]`; value
/// `d * q + m`.
pub(super) fn q5_1(block: &[u8; 24], y: &mut [f32; 32]) {
    let d = half(block, 0);
    let m = half(block, 2);
    let qh = [block[4], block[5], block[6], block[7]];
    let qs = &block[8..];
    for i in 0..16 {
        let (low, high) = five_bits(qh, qs, i);
        y[i] = d * f32::from(low) + m;
        y[i + 16] = d * f32::from(high) + m;
    }
}
