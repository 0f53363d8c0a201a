//! Writes the fuzz seeds `fuzz/seeds-gguf/` (small synthetic files, not the
//! real model): `cargo test -p burn-rlora-gguf --test it -- --ignored write_fuzz_seeds`.

use burn_rlora_gguf::testing::{f32_bytes, Builder};
use burn_rlora_gguf::{Array, GgmlType, Value};

use crate::common::{accepted, sample};

/// A miniature of the SmolLM2 file's layout: llama and tokenizer metadata,
/// and one tensor of each type it holds (F32 norms, a Q8_0 embedding, Q4_1
/// projections), plus a Q4_0, an F16 and a BF16 tensor.
fn mini_llama() -> Builder {
    let mut q41 = Vec::new();
    for i in 0..4u8 {
        q41.extend([0x00, 0x2c + i, 0x00, 0xac]);
        q41.extend((0..16u8).map(|j| (j * 17).wrapping_add(i)));
    }
    let mut q40 = vec![0x00, 0x30];
    q40.extend(0..16);
    let mut q8 = Vec::new();
    for i in 0..2u8 {
        q8.extend([0x66, 0x26 + i]);
        q8.extend((0..32).map(|j| (j * 7 + i) ^ 0x80));
    }
    let tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "Ġt", "he"];
    Builder::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("llama.block_count", Value::U32(1))
        .kv("llama.embedding_length", Value::U32(32))
        .kv("llama.rope.freq_base", Value::F32(100000.0))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(Array::String(
                tokens.iter().map(|t| t.to_string()).collect(),
            )),
        )
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![3, 3, 3, 1, 1])),
        )
        .kv(
            "tokenizer.ggml.merges",
            Value::Array(Array::String(vec!["Ġ t".into()])),
        )
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(false))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
        .kv("general.alignment", Value::U32(32))
        .tensor("token_embd.weight", &[32, 2], GgmlType::Q8_0, q8)
        .tensor(
            "blk.0.attn_norm.weight",
            &[8],
            GgmlType::F32,
            f32_bytes(&[1.0; 8]),
        )
        .tensor("blk.0.attn_q.weight", &[32, 4], GgmlType::Q4_1, q41)
        .tensor("blk.0.ffn_up.weight", &[32], GgmlType::Q4_0, q40)
        .tensor(
            "h",
            &[4],
            GgmlType::F16,
            vec![0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00],
        )
        .tensor("b", &[2, 1], GgmlType::BF16, vec![0x80, 0x3f, 0x49, 0x40])
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v2 = sample().kv("general.alignment", Value::U32(64));
    v2.version = 2;
    v2.pad_to = 64;
    let every_value = Builder::new()
        .kv("u8", Value::U8(1))
        .kv("i8", Value::I8(-1))
        .kv("u16", Value::U16(2))
        .kv("i16", Value::I16(-2))
        .kv("i32", Value::I32(-3))
        .kv("u64", Value::U64(4))
        .kv("i64", Value::I64(-4))
        .kv("f64", Value::F64(0.5))
        .kv("a.f32", Value::Array(Array::F32(vec![1.0, 2.0])))
        .kv("a.bool", Value::Array(Array::Bool(vec![true, false])))
        .kv(
            "a.nested",
            Value::Array(Array::Array(vec![
                Array::U16(vec![1]),
                Array::Array(vec![]),
            ])),
        );
    vec![
        ("mini-llama.gguf", mini_llama().build()),
        ("sample.gguf", sample().build()),
        ("v2-align64.gguf", v2.build()),
        ("every-value.gguf", every_value.build()),
        ("k-quant.gguf", k_quants().build()),
        ("empty.gguf", Builder::new().build()),
    ]
}

/// One tensor of each supported type the other seeds lack, as Q2_K to
/// Q6_K_M files mix them (Q5_0, Q5_1 and the K-quants Q2_K to Q6_K), and an
/// IQ4_XS tensor, which stays unsupported. Their bytes follow a simple
/// pattern, with the f16 scales set to small positive values, as
/// quantizers write them.
fn k_quants() -> Builder {
    // (type, dims, offsets of the f16 scale fields in a block)
    let tensors: [(GgmlType, &[u64], &[usize]); 8] = [
        (GgmlType::Q5_0, &[32, 2], &[0]),
        (GgmlType::Q5_1, &[64], &[0, 2]),
        (GgmlType::Q2_K, &[256], &[80, 82]),
        (GgmlType::Q3_K, &[256], &[108]),
        (GgmlType::Q4_K, &[256, 2], &[0, 2]),
        (GgmlType::Q5_K, &[256], &[0, 2]),
        (GgmlType::Q6_K, &[256], &[208]),
        (GgmlType::IQ4_XS, &[256], &[0]),
    ];
    let mut b = Builder::new().kv("general.file_type", Value::U32(15));
    for (ty, dims, scales) in tensors {
        let blocks = (dims.iter().product::<u64>() / ty.block_size()) as usize;
        let block_bytes = ty.block_bytes() as usize;
        let mut data: Vec<u8> = (0..blocks * block_bytes)
            .map(|i| (i * 97 + ty.id() as usize * 13) as u8)
            .collect();
        for block in data.chunks_exact_mut(block_bytes) {
            for (k, &at) in scales.iter().enumerate() {
                // d = 2^-7 (0x2000), dmin = 2^-8 (0x1c00).
                block[at..at + 2].copy_from_slice(&[0x00, 0x20 - 4 * k as u8]);
            }
        }
        b = b.tensor(&ty.name().to_lowercase(), dims, ty, data);
    }
    b
}

#[test]
fn seeds_are_valid_and_small() {
    for (name, bytes) in seeds() {
        assert!(bytes.len() < 4096, "{name}: {} bytes", bytes.len());
        let file = accepted(&bytes);
        for t in file.tensors() {
            if t.ggml_type().is_supported() {
                assert_eq!(file.read_f32(t.name()).unwrap().1.len(), t.n_elements());
            }
        }
    }
}

#[test]
#[ignore = "writes fuzz/seeds-gguf/"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds-gguf");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn mini_llama_reads_as_the_python_gguf_package_reads_it() {
    // (tensor, first three values, f64 sum), from gguf 0.19.0's GGUFReader
    // and gguf.quants.dequantize on fuzz/seeds-gguf/mini-llama.gguf.
    let expected: [(&str, [f32; 3], f64); 6] = [
        (
            "token_embd.weight",
            [-3.199_218_8, -3.024_261_5, -2.849_304_2],
            -32.705078125,
        ),
        ("blk.0.attn_norm.weight", [1.0, 1.0, 1.0], 8.0),
        ("blk.0.attn_q.weight", [-0.0625, 0.0, 0.0625], 70.59375),
        ("blk.0.ffn_up.weight", [-1.0, -0.875, -0.75], -17.0),
        ("h", [1.0, -2.0, 65504.0], 65503.000000059605),
        ("b", [1.0, 3.140625, f32::NAN], 4.140625),
    ];
    let file = accepted(&mini_llama().build());
    assert_eq!(file.tensors().len(), 6);
    for (name, first, sum) in expected {
        let (_, values) = file.read_f32(name).unwrap();
        for (i, want) in first.iter().enumerate().filter(|(_, w)| !w.is_nan()) {
            assert_eq!(values[i], *want, "{name}[{i}]");
        }
        let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
        assert_eq!(total, sum, "{name}");
    }
}

#[test]
fn k_quant_seed_reads_as_the_python_gguf_package_reads_it() {
    // (tensor, first three values, f64 sum), from gguf 0.19.0's GGUFReader
    // and gguf.quants.dequantize on fuzz/seeds-gguf/k-quant.gguf.
    let expected: [(&str, [f32; 3], f64); 7] = [
        ("q5_0", [-0.09375, -0.085_937_5, -0.078125], -0.765625),
        ("q5_1", [0.152_343_75, 0.160_156_25, 0.167_968_75], 7.734375),
        ("q2_k", [0.0, 0.015625, -0.03125], 15.34375),
        ("q3_k", [0.726_562_5, -0.96875, 0.242_187_5], 8.8046875),
        ("q4_k", [2.859375, 3.109375, 3.359375], 828.0),
        ("q5_k", [8.597_656, 3.324_218_8, 9.300_781], 918.4375),
        ("q6_k", [5.53125, 21.203125, -22.125], -47.6875),
    ];
    let file = accepted(&k_quants().build());
    assert_eq!(file.tensors().len(), 8);
    for (name, first, sum) in expected {
        let (_, values) = file.read_f32(name).unwrap();
        assert_eq!(values[..3], first, "{name}");
        let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
        assert_eq!(total, sum, "{name}");
    }
    let err = file.read_f32("iq4_xs").unwrap_err();
    assert!(
        err.to_string().contains("type IQ4_XS is not supported"),
        "{err}"
    );
}
