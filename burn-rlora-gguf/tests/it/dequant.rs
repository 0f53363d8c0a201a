//! Each dequantizer against values computed by hand from the ggml block
//! layouts.

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
