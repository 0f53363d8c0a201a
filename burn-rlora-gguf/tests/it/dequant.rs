//! The dequantizers against values computed by hand from the ggml block
//! layouts, and every supported type against the Python `gguf` package's
//! dequantization of random and extreme blocks.

use burn_rlora_gguf::{dequantize, DequantizeError, GgmlType};

#[test]
fn f32_is_bit_exact() {
    let values = [
        0.0f32,
        -0.0,
        1.5,
        f32::MIN_POSITIVE,
        f32::INFINITY,
        -3.25e-7,
    ];
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let out = dequantize(GgmlType::F32, &bytes).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&out), bits(&values));
    let nan = dequantize(GgmlType::F32, &f32::NAN.to_le_bytes()).unwrap();
    assert!(nan[0].is_nan());
}

#[test]
fn f16_values() {
    // 1.0, -2.0, 65504 (largest), 2^-24 (smallest subnormal), +inf, 0.333 (0x3555).
    let halves: [u16; 6] = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x3555];
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let out = dequantize(GgmlType::F16, &bytes).unwrap();
    let third = 1.0 / 4.0 * (1.0 + 0x155 as f32 / 1024.0); // exponent -2, mantissa 0x155
    assert_eq!(
        out,
        [1.0, -2.0, 65504.0, 2f32.powi(-24), f32::INFINITY, third]
    );
}

#[test]
fn bf16_values() {
    // bf16 is the high half of an f32: 1.0, -3.0, 3.140625, -0.0.
    let halves: [u16; 4] = [0x3f80, 0xc040, 0x4049, 0x8000];
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let out = dequantize(GgmlType::BF16, &bytes).unwrap();
    assert_eq!(out, [1.0, -3.0, 3.140625, -0.0]);
    assert!(out[3].is_sign_negative());
}

#[test]
fn q8_0_is_signed_bytes_times_d() {
    let mut block = vec![0x00, 0x40]; // d = 2.0
    let q: Vec<i8> = (0..32)
        .map(|i| if i == 0 { -128 } else { 127 - i })
        .collect();
    block.extend(q.iter().map(|&x| x as u8));
    // A second block, d = -0.25 (0xb400), q = i - 16.
    block.extend([0x00, 0xb4]);
    block.extend((0..32).map(|i| (i as i8 - 16) as u8));
    let out = dequantize(GgmlType::Q8_0, &block).unwrap();
    assert_eq!(out.len(), 64);
    assert_eq!(out[0], -256.0);
    for (i, &v) in out.iter().enumerate().take(32).skip(1) {
        assert_eq!(v, 2.0 * (127 - i as i32) as f32, "value {i}");
    }
    for i in 0..32 {
        assert_eq!(out[32 + i], -0.25 * (i as f32 - 16.0), "value {}", 32 + i);
    }
}

/// 16 bytes whose low nibbles are 0..16 and high nibbles 15..=0.
fn ramp() -> Vec<u8> {
    (0..16u8).map(|j| j | ((15 - j) << 4)).collect()
}

#[test]
fn q4_0_low_nibbles_first_minus_8_times_d() {
    let mut block = vec![0x00, 0x38]; // d = 0.5
    block.extend(ramp());
    let out = dequantize(GgmlType::Q4_0, &block).unwrap();
    assert_eq!(out.len(), 32);
    for j in 0..16 {
        assert_eq!(
            out[j],
            (j as f32 - 8.0) * 0.5,
            "value {j} (low nibble of byte {j})"
        );
        let high = 15 - j as i32;
        assert_eq!(
            out[16 + j],
            (high - 8) as f32 * 0.5,
            "value {} (high nibble)",
            16 + j
        );
    }
    // Hand-checked corners: 0 -> -4, 15 -> 3.5, 16 (high nibble 15) -> 3.5, 31 -> -4.
    assert_eq!((out[0], out[15], out[16], out[31]), (-4.0, 3.5, 3.5, -4.0));
}

#[test]
fn q4_1_is_nibble_times_d_plus_m() {
    let mut block = vec![0x00, 0x34, 0x00, 0xbc]; // d = 0.25, m = -1.0
    block.extend(ramp());
    // A second block: d = 1.0, m = 0.5, all nibbles 0xA (low) and 0x3 (high).
    block.extend([0x00, 0x3c, 0x00, 0x38]);
    block.extend([0x3a; 16]);
    let out = dequantize(GgmlType::Q4_1, &block).unwrap();
    assert_eq!(out.len(), 64);
    for j in 0..16 {
        assert_eq!(out[j], j as f32 * 0.25 - 1.0);
        assert_eq!(out[16 + j], (15 - j) as f32 * 0.25 - 1.0);
        assert_eq!(out[32 + j], 10.5);
        assert_eq!(out[48 + j], 3.5);
    }
    assert_eq!((out[0], out[15], out[16]), (-1.0, 2.75, 2.75));
}

#[test]
fn q5_0_and_q5_1_take_the_fifth_bit_from_qh() {
    // Q5_0: d = 1, qh with bits 0 and 31 set, every nibble 0.
    let mut block = vec![0x00, 0x3c];
    block.extend(0x8000_0001u32.to_le_bytes());
    block.extend([0x00; 16]);
    let out = dequantize(GgmlType::Q5_0, &block).unwrap();
    for (i, &v) in out.iter().enumerate() {
        let q = if i == 0 || i == 31 { 16 } else { 0 };
        assert_eq!(v, (q - 16) as f32, "value {i}");
    }
    // Q5_1: d = 1, m = 0.5, qh bit 16 set, low nibbles 0, high nibbles 15.
    let mut block = vec![0x00, 0x3c, 0x00, 0x38];
    block.extend(0x0001_0000u32.to_le_bytes());
    block.extend([0xf0; 16]);
    let out = dequantize(GgmlType::Q5_1, &block).unwrap();
    assert!(out[..16].iter().all(|&v| v == 0.5));
    assert_eq!(out[16], 31.5);
    assert!(out[17..].iter().all(|&v| v == 15.5));
}

#[test]
fn q4_k_unpacks_six_bit_scales_and_minimums() {
    // d = 1, dmin = 1. Sub-blocks 0..4: scale j + 1 (low 6 bits of
    // scales[j]), minimum 0 (scales[j + 4]). Sub-blocks 4..8: scale 63 and
    // minimum 33, their low 4 bits in scales[8..12] (0x1f: scale 15, minimum
    // 1), their high 2 bits the top bits of scales[0..4] (3) and of
    // scales[4..8] (2).
    let mut block = vec![0x00, 0x3c, 0x00, 0x3c];
    block.extend((0..4u8).map(|j| (j + 1) | 0xc0));
    block.extend([0x80; 4]);
    block.extend([0x1f; 4]);
    // Every quant 1 except those of sub-block 5 (high nibbles of
    // qs[64..96]), which are 15.
    block.extend([0x11; 64]);
    block.extend([0xf1; 32]);
    block.extend([0x11; 32]);
    let out = dequantize(GgmlType::Q4_K, &block).unwrap();
    for (j, sub) in out.chunks(32).enumerate() {
        let want = if j < 4 {
            (j + 1) as f32
        } else if j == 5 {
            63.0 * 15.0 - 33.0
        } else {
            63.0 - 33.0
        };
        assert!(sub.iter().all(|&v| v == want), "sub-block {j}: {sub:?}");
    }
}

#[test]
fn partial_blocks_and_unsupported_types_are_errors() {
    let err = dequantize(GgmlType::Q4_1, &[0; 21]).unwrap_err();
    assert_eq!(
        err,
        DequantizeError::PartialBlock {
            ty: GgmlType::Q4_1,
            len: 21,
            block_bytes: 20
        }
    );
    assert!(dequantize(GgmlType::F32, &[0; 3]).is_err());
    assert!(dequantize(GgmlType::Q8_0, &[]).unwrap().is_empty());
    for &ty in GgmlType::ALL.iter().filter(|t| !t.is_supported()) {
        let err = dequantize(ty, &vec![0; ty.block_bytes() as usize]).unwrap_err();
        assert_eq!(err, DequantizeError::Unsupported(ty));
        assert!(err.to_string().contains(ty.name()), "{err}");
    }
}

/// `tests/fixtures/dequant-reference.txt`: blocks of every supported type
/// (random quants with typical scales, and extreme scales: f16 max of
/// either sign, subnormals, signed zeros, infinities, NaNs) and what the
/// Python `gguf` package's `gguf.quants.dequantize` gives for them, written
/// by `scripts/gguf-dequant-fixture.py`.
const REFERENCE: &str = include_str!("../fixtures/dequant-reference.txt");

fn from_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Every value is bit for bit the Python package's: the operations are the
/// same, in the same order, in `f32`. The one allowance is a NaN's bits:
/// where Python gives a NaN, any NaN is accepted, because which NaN an
/// operation returns is not specified by Rust (nor, when both operands are
/// NaN, by IEEE 754). On x86-64 they are the same as Python's too.
#[test]
fn python_reference() {
    let mut cases = std::collections::BTreeMap::new();
    let (mut values_checked, mut nans) = (0, 0);
    for line in REFERENCE.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split(' ').collect();
        let [ty, case, input, expected] = fields[..] else {
            panic!("bad fixture line: {line:.80}");
        };
        let ty = *GgmlType::ALL.iter().find(|t| t.name() == ty).unwrap();
        let expected: Vec<f32> = from_hex(expected)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let values = dequantize(ty, &from_hex(input)).unwrap();
        assert_eq!(values.len(), expected.len(), "{ty} {case}");
        for (i, (v, want)) in values.iter().zip(&expected).enumerate() {
            if want.is_nan() && v.is_nan() {
                nans += 1;
                continue;
            }
            assert_eq!(
                v.to_bits(),
                want.to_bits(),
                "{ty} {case}, value {i}: {v:e} vs {want:e} (Python)"
            );
        }
        values_checked += values.len();
        *cases.entry(ty.id()).or_insert(0) += 1;
    }
    // Every supported type is covered, and the extreme cases did give NaNs.
    let supported: Vec<u32> = GgmlType::ALL
        .iter()
        .filter(|t| t.is_supported())
        .map(|t| t.id())
        .collect();
    assert_eq!(cases.keys().copied().collect::<Vec<_>>(), supported);
    assert!(cases.values().all(|&n| n >= 2), "{cases:?}");
    assert!(
        values_checked > 30_000 && nans > 1000,
        "{values_checked} values, {nans} NaNs"
    );
}
