//! The K-quants: super-blocks of 256 values, split into sub-blocks of 16
//! (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K) values that each have their own
//! small integer scale (and, for Q2_K, Q4_K and Q5_K, minimum), themselves
//! scaled by the super-block's `f16 d` (and `f16 dmin`).
//!
//! # How the bits are packed
//!
//! Quants of `b` bits are packed several to a byte. The low 2 bits (Q2_K,
//! Q3_K) or 4 bits (Q4_K, Q5_K, Q6_K) of value `v` are found this way:
//!
//! - 2 bits (`qs[64]`): the super-block is two halves of 128 values; in
//!   half `c`, value `128c + 32s + l` (`s` in 0..4, `l` in 0..32) is bits
//!   `2s..2s+2` of `qs[32c + l]`.
//! - 4 bits, Q4_K and Q5_K (`qs[128]`): value `64c + 32h + l` (`c` in
//!   0..4, `h` in 0..2, `l` in 0..32) is the low (`h = 0`) or high
//!   (`h = 1`) nibble of `qs[32c + l]`.
//! - 4 bits, Q6_K (`ql[128]`): value `128c + 64h + l` (`c`, `h` in 0..2,
//!   `l` in 0..64) is the low or high nibble of `ql[64c + l]`.
//!
//! The high bits:
//!
//! - Q3_K, one bit (`hmask[32]`): value `32s + l` (`s` in 0..8) has bit
//!   `s` of `hmask[l]`, and its quant is `low - 4` when that bit is 0,
//!   `low` when it is 1 (so -4..=3).
//! - Q5_K, one bit (`qh[32]`): value `32s + l` has bit `s` of `qh[l]` as
//!   its bit 4 (so 0..=31).
//! - Q6_K, two bits (`qh[64]`): value `128c + 32s + l` has bits `2s..2s+2`
//!   of `qh[32c + l]` as its bits 4 and 5, and its quant is that 6-bit
//!   number minus 32 (so -32..=31).
//!
//! The sub-block scales and minimums:
//!
//! - Q2_K: `scales[i]` of sub-block `i` (16 values) holds the 4-bit scale
//!   (low nibble) and the 4-bit minimum (high nibble).
//! - Q3_K: 16 scales of 6 bits in `scales[12]`, each stored as `sc + 32`:
//!   the low 4 bits of scale `i` are the low (`i < 8`) or high (`i >= 8`)
//!   nibble of `scales[i % 8]`, its high 2 bits are bits `2(i / 4)..` of
//!   `scales[8 + i % 4]`.
//! - Q4_K and Q5_K: 8 scales and 8 minimums of 6 bits in `scales[12]`
//!   (llama.cpp's `get_scale_min_k4`): for `j < 4`, the scale is the low 6
//!   bits of `scales[j]` and the minimum the low 6 bits of `scales[j + 4]`;
//!   for `j >= 4`, their low 4 bits are the low and high nibble of
//!   `scales[j + 4]`, and their high 2 bits the top 2 bits of
//!   `scales[j - 4]` and of `scales[j]`.
//! - Q6_K: `scales[16]`, one signed byte per sub-block of 16.
//!
//! # Arithmetic
//!
//! As in the `gguf` Python package's numpy code (and llama.cpp's
//! `dequantize_row_*`): the sub-block's `f32` scale `dl = d * sc` and
//! minimum `ml = dmin * m` are computed first, then each value is
//! `dl * q - ml` (or `dl * q`), one `f32` rounding per operation.

use super::half;

/// The sub-block scale and minimum `j` (0..8) of a Q4_K or Q5_K block's
/// 12 packed bytes, 6 bits each.
#[inline]
fn scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 0x3f, scales[j + 4] & 0x3f)
    } else {
        let sc = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4);
        let m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
        (sc, m)
    }
}

/// Q2_K (84 bytes): `u8 scales[16]`, `u8 qs[64]`, `f16 d`, `f16 dmin`.
/// Sub-block `i` (16 values) is `(d * sc) * q - dmin * m`, `q` in 0..=3.
pub(super) fn q2_k(block: &[u8; 84], y: &mut [f32; 256]) {
    let (scales, qs) = (&block[..16], &block[16..80]);
    let d = half(block, 80);
    let dmin = half(block, 82);
    for (i, (y, &sc)) in y.chunks_exact_mut(16).zip(scales).enumerate() {
        let dl = d * f32::from(sc & 0x0f);
        let ml = dmin * f32::from(sc >> 4);
        // Value 16i + l is 128c + 32s + 16(i % 2) + l.
        let (c, s) = (i / 8, (i / 2) % 4);
        let q = &qs[32 * c + 16 * (i % 2)..][..16];
        for (y, &q) in y.iter_mut().zip(q) {
            *y = dl * f32::from((q >> (2 * s)) & 3) - ml;
        }
    }
}

/// Q3_K (110 bytes): `u8 hmask[32]`, `u8 qs[64]`, `u8 scales[12]`,
/// `f16 d`. Sub-block `i` (16 values) is `(d * (sc - 32)) * q`, `q` in
/// -4..=3.
pub(super) fn q3_k(block: &[u8; 110], y: &mut [f32; 256]) {
    let (hmask, qs, scales) = (&block[..32], &block[32..96], &block[96..108]);
    let d = half(block, 108);
    for (i, y) in y.chunks_exact_mut(16).enumerate() {
        let low = if i < 8 {
            scales[i] & 0x0f
        } else {
            scales[i - 8] >> 4
        };
        let high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
        let sc = (low | (high << 4)) as i8 - 32;
        let dl = d * f32::from(sc);
        // Value 16i + l is 128c + 32s + 16(i % 2) + l: its low bits are
        // in qs[32c + 16(i % 2) + l], its high bit is bit 4c + s of
        // hmask[16(i % 2) + l].
        let (c, s) = (i / 8, (i / 2) % 4);
        let low_bits = &qs[32 * c + 16 * (i % 2)..][..16];
        let high_bits = &hmask[16 * (i % 2)..][..16];
        let high_bit = 4 * c + s;
        for ((y, &ql), &qh) in y.iter_mut().zip(low_bits).zip(high_bits) {
            let low = ((ql >> (2 * s)) & 3) as i8;
            let minus_4 = if (qh >> high_bit) & 1 == 0 { 4 } else { 0 };
            *y = dl * f32::from(low - minus_4);
        }
    }
}

/// Q4_K (144 bytes): `f16 d`, `f16 dmin`, `u8 scales[12]`, `u8 qs[128]`.
/// Sub-block `j` (32 values) is `(d * sc) * q - dmin * m`, `q` in 0..=15.
pub(super) fn q4_k(block: &[u8; 144], y: &mut [f32; 256]) {
    let d = half(block, 0);
    let dmin = half(block, 2);
    let (scales, qs) = (&block[4..16], &block[16..]);
    for (j, y) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min(scales, j);
        let dl = d * f32::from(sc);
        let ml = dmin * f32::from(m);
        let shift = 4 * (j % 2);
        for (y, &q) in y.iter_mut().zip(&qs[32 * (j / 2)..][..32]) {
            *y = dl * f32::from((q >> shift) & 0x0f) - ml;
        }
    }
}

/// Q5_K (176 bytes): `f16 d`, `f16 dmin`, `u8 scales[12]`, `u8 qh[32]`,
/// `u8 qs[128]`. Sub-block `j` (32 values) is `(d * sc) * q - dmin * m`,
/// `q` in 0..=31.
pub(super) fn q5_k(block: &[u8; 176], y: &mut [f32; 256]) {
    let d = half(block, 0);
    let dmin = half(block, 2);
    let (scales, qh, qs) = (&block[4..16], &block[16..48], &block[48..]);
    for (j, y) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min(scales, j);
        let dl = d * f32::from(sc);
        let ml = dmin * f32::from(m);
        let shift = 4 * (j % 2);
        let low_bits = &qs[32 * (j / 2)..][..32];
        for ((y, &ql), &qh) in y.iter_mut().zip(low_bits).zip(qh) {
            let q = ((ql >> shift) & 0x0f) | (((qh >> j) & 1) << 4);
            *y = dl * f32::from(q) - ml;
        }
    }
}

/// Q6_K (210 bytes): `u8 ql[128]`, `u8 qh[64]`, `i8 scales[16]`, `f16 d`.
/// Sub-block `i` (16 values) is `(d * sc) * q`, `q` in -32..=31.
pub(super) fn q6_k(block: &[u8; 210], y: &mut [f32; 256]) {
    let (ql, qh, scales) = (&block[..128], &block[128..192], &block[192..208]);
    let d = half(block, 208);
    for (i, (y, &sc)) in y.chunks_exact_mut(16).zip(scales).enumerate() {
        let dl = d * f32::from(sc as i8);
        // Value 16i + l is 128c + r with r = 16(i % 8) + l: its low 4 bits
        // are nibble r / 64 of ql[64c + r % 64], its high 2 bits are bits
        // 2(r / 32).. of qh[32c + r % 32].
        let c = i / 8;
        let low_bits = &ql[64 * c + 16 * (i % 4)..][..16];
        let low_shift = 4 * ((i / 4) % 2);
        let high_bits = &qh[32 * c + 16 * (i % 2)..][..16];
        let high_shift = 2 * ((i / 2) % 4);
        for ((y, &l), &h) in y.iter_mut().zip(low_bits).zip(high_bits) {
            let q = ((l >> low_shift) & 0x0f) | (((h >> high_shift) & 3) << 4);
            *y = dl * f32::from(q as i8 - 32);
        }
    }
}
