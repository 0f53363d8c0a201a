//! The real SmolLM2-135M-Instruct GGUF file (Q4_1, Q8_0, F32) and Gemma 3
//! 270M file (Q4_K_M: Q4_K, Q6_K, Q5_0, Q8_0, F32), fetched by
//! `scripts/fetch-data.sh`. Each test is skipped with a message when its
//! file is absent; with `BURN_RLORA_REQUIRE_DATA` set, the absence fails it.
//!
//! The reference values were computed with llama.cpp's Python `gguf`
//! package by `scripts/gguf-reference-values.py` (SmolLM2) and
//! `scripts/gguf-gemma-reference.py` (Gemma 3).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use burn_rlora_gguf::{GgmlType, GgufFile};

// Produced by scripts/gguf-reference-values.py (gguf 0.19.0, numpy 2.4.6)
// (name, type, dims in GGUF order, [(flat index, f32 bits)], f64 sum of all values)
#[rustfmt::skip]
const REFERENCE: &[Reference] = &[
    ("token_embd.weight", "Q8_0", &[576, 49152], &[(0, 0xbdda3400), (1, 0x3d071400), (31, 0xbe4d3700), (32, 0xbdbf7600), (575, 0x3cf3c000), (576, 0xbcc30000), (1000003, 0x3d8e7e00), (12345678, 0xbe413180), (28311551, 0xbd2ad000)], -15353.04449415207),
    ("blk.0.attn_q.weight", "Q4_1", &[576, 576], &[(0, 0xbdc54000), (1, 0x3e212000), (15, 0x3f09b000), (16, 0xbe648000), (17, 0x3e918000), (31, 0xbdc54000), (32, 0xbeb14000), (100000, 0xbdfa6000), (331775, 0xbe830000)], 59.22322082519531),
    ("blk.29.ffn_down.weight", "Q4_1", &[1536, 576], &[(0, 0xbe8bf000), (16, 0x3ea5f800), (1535, 0xbd5ee000), (1536, 0xbeaa6800), (400000, 0xbcee0000), (884735, 0x3d680000)], 49.83570861816406),
    ("output_norm.weight", "F32", &[576], &[(0, 0x3fe10000), (1, 0x3fe90000), (575, 0x3ffe0000)], 1038.33203125),
];

/// A tensor's name, type name, dims (GGUF order), values at flat indices
/// (as f32 bits) and the f64 sum of all its values.
type Reference = (
    &'static str,
    &'static str,
    &'static [usize],
    &'static [(usize, u32)],
    f64,
);

const SMOLLM2: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA3: &str = "gemma3/gemma-3-270m-q4_k_m.gguf";

/// The model file `file` (under the data directory), or `None` after
/// printing why the test is skipped.
fn model_or_skip(test: &str, file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("BURN_RLORA_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data"));
    let path = dir.join(file);
    if path.is_file() {
        return Some(path);
    }
    let problem = format!(
        "{} not found: run `bash scripts/fetch-data.sh`",
        path.display()
    );
    if std::env::var_os("BURN_RLORA_REQUIRE_DATA").is_some() {
        panic!("{test}: BURN_RLORA_REQUIRE_DATA is set but the data is missing: {problem}");
    }
    // Straight to stderr, so that the harness does not capture the skip.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {problem}");
    None
}

#[test]
fn smollm2_metadata_and_tensor_infos() {
    let Some(path) = model_or_skip("smollm2_metadata_and_tensor_infos", SMOLLM2) else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    assert_eq!(file.tensors().len(), 272);
    let mut by_type = BTreeMap::new();
    for t in file.tensors() {
        *by_type.entry(t.ggml_type().name()).or_insert(0) += 1;
    }
    assert_eq!(
        by_type,
        BTreeMap::from([("Q4_1", 210), ("F32", 61), ("Q8_0", 1)])
    );

    let m = file.metadata();
    assert_eq!(m.len(), 33);
    assert_eq!(m.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(m.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(m.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(m.get_u32("llama.feed_forward_length").unwrap(), 1536);
    assert_eq!(m.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(m.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(m.get_u32("llama.context_length").unwrap(), 8192);
    assert_eq!(m.get_u32("llama.rope.dimension_count").unwrap(), 64);
    assert_eq!(m.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(
        m.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(),
        1e-5
    );
    assert_eq!(m.get_u32("llama.vocab_size").unwrap(), 49152);
    assert_eq!(m.get_u32("general.file_type").unwrap(), 3); // MOSTLY_Q4_1

    assert_eq!(m.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(m.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    let tokens = m.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49152);
    assert_eq!(
        (tokens[1].as_str(), tokens[2].as_str()),
        ("<|im_start|>", "<|im_end|>")
    );
    assert_eq!(
        m.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        48900
    );
    assert_eq!(
        m.get_i32_array("tokenizer.ggml.token_type").unwrap().len(),
        49152
    );
    assert_eq!(m.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 1);
    assert_eq!(m.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 2);
    assert_eq!(m.get_u32("tokenizer.ggml.padding_token_id").unwrap(), 2);
    assert!(!m.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    let template = m.get_str("tokenizer.chat_template").unwrap();
    assert!(template.contains("<|im_start|>") && template.contains("add_generation_prompt"));

    let embd = file.tensor_info("token_embd.weight").unwrap();
    assert_eq!(
        (embd.ggml_type(), embd.dims()),
        (GgmlType::Q8_0, &[576, 49152][..])
    );
    assert_eq!(embd.row_major_shape(), [49152, 576]);
    let q = file.tensor_info("blk.0.attn_k.weight").unwrap();
    assert_eq!(
        (q.ggml_type(), q.row_major_shape()),
        (GgmlType::Q4_1, vec![192, 576])
    );
    let down = file.tensor_info("blk.0.ffn_down.weight").unwrap();
    assert_eq!(down.row_major_shape(), [576, 1536]); // PyTorch [out, in]
}

#[test]
fn smollm2_dequantizes_as_the_python_gguf_package_does() {
    let Some(path) = model_or_skip(
        "smollm2_dequantizes_as_the_python_gguf_package_does",
        SMOLLM2,
    ) else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    for &(name, ty, dims, picks, sum) in REFERENCE {
        let info = file.tensor_info(name).unwrap();
        assert_eq!(info.ggml_type().name(), ty, "{name}");
        let (read_dims, values) = file.read_f32(name).unwrap();
        assert_eq!(read_dims, dims, "{name}");
        assert_eq!(values.len(), dims.iter().product::<usize>(), "{name}");
        for &(i, bits) in picks {
            assert_eq!(
                values[i].to_bits(),
                bits,
                "{name}[{i}]: {} vs {}",
                values[i],
                f32::from_bits(bits)
            );
        }
        let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
        let scale: f64 = values.iter().map(|&v| f64::from(v).abs()).sum();
        assert!(
            (total - sum).abs() <= 1e-9 * scale,
            "{name}: sum {total} vs {sum}"
        );
    }
}

#[test]
fn smollm2_every_tensor_dequantizes() {
    let Some(path) = model_or_skip("smollm2_every_tensor_dequantizes", SMOLLM2) else {
        return;
    };
    let start = std::time::Instant::now();
    let file = GgufFile::open(&path).unwrap();
    let opened = start.elapsed();
    let mut n = 0usize;
    for t in file.tensors() {
        let (dims, values) = file.read_f32(t.name()).unwrap();
        assert_eq!(dims, t.dims());
        assert_eq!(values.len(), t.n_elements(), "{}", t.name());
        assert!(values.iter().all(|v| v.is_finite()), "{}", t.name());
        n += values.len();
    }
    assert_eq!(n, 134_515_008);
    let _ = writeln!(
        std::io::stderr(),
        "smollm2: opened in {opened:?}, read and dequantized {n} values in {:?}",
        start.elapsed()
    );
}

/// `tests/fixtures/gemma3-270m-q4_k_m-reference.txt`, written by
/// `scripts/gguf-gemma-reference.py`: for every tensor of the Gemma file, in
/// file order, what the Python `gguf` package dequantizes it to, as
/// `NAME TYPE DIMS N FNV1A SUM PICKS` (see the script).
const GEMMA3_REFERENCE: &str = include_str!("../fixtures/gemma3-270m-q4_k_m-reference.txt");

/// One line of [`GEMMA3_REFERENCE`].
struct Digest<'a> {
    name: &'a str,
    ty: &'a str,
    dims: Vec<usize>,
    n: usize,
    fnv1a: u64,
    sum: f64,
    picks: Vec<(usize, u32)>,
}

fn gemma3_reference() -> Vec<Digest<'static>> {
    let lines = GEMMA3_REFERENCE.lines().filter(|l| !l.starts_with('#'));
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let [name, ty, dims, n, fnv1a, sum, picks] = f[..] else {
                panic!("bad fixture line: {line}");
            };
            let pick = |p: &str| {
                let (i, bits) = p.split_once(':').unwrap();
                (i.parse().unwrap(), u32::from_str_radix(bits, 16).unwrap())
            };
            Digest {
                name,
                ty,
                dims: dims.split(',').map(|d| d.parse().unwrap()).collect(),
                n: n.parse().unwrap(),
                fnv1a: u64::from_str_radix(fnv1a, 16).unwrap(),
                sum: sum.parse().unwrap(),
                picks: picks.split(',').map(pick).collect(),
            }
        })
        .collect()
}

/// In one pass (this crate's tests are not optimized): the FNV-1a (64-bit)
/// hash of the values' bit patterns, one step per value (as
/// `scripts/gguf-gemma-reference.py` computes it), their f64 sum and the
/// f64 sum of their absolute values.
fn fnv1a_sum_abs_sum(values: &[f32]) -> (u64, f64, f64) {
    let (mut h, mut sum, mut abs_sum) = (0xcbf2_9ce4_8422_2325u64, 0.0f64, 0.0f64);
    for &v in values {
        h = (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
        sum += f64::from(v);
        abs_sum += f64::from(v.abs());
    }
    (h, sum, abs_sum)
}

#[test]
fn gemma3_metadata_and_tensor_types() {
    let Some(path) = model_or_skip("gemma3_metadata_and_tensor_types", GEMMA3) else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    assert_eq!(file.tensors().len(), 236);
    let mut by_type = BTreeMap::new();
    for t in file.tensors() {
        *by_type.entry(t.ggml_type().name()).or_insert(0) += 1;
        assert!(t.ggml_type().is_supported(), "{}", t.name());
    }
    assert_eq!(
        by_type,
        BTreeMap::from([
            ("Q4_K", 27),
            ("Q6_K", 9),
            ("Q5_0", 81),
            ("Q8_0", 10),
            ("F32", 109)
        ])
    );

    let m = file.metadata();
    assert_eq!(m.len(), 33);
    assert_eq!(m.get_str("general.architecture").unwrap(), "gemma3");
    assert_eq!(m.get_str("general.name").unwrap(), "Gemma 3 270m");
    assert_eq!(m.get_str("general.license").unwrap(), "gemma");
    assert_eq!(m.get_u32("general.file_type").unwrap(), 15); // MOSTLY_Q4_K_M
    assert_eq!(m.get_u32("general.quantization_version").unwrap(), 2);
    assert_eq!(m.get_u32("gemma3.block_count").unwrap(), 18);
    assert_eq!(m.get_u32("gemma3.embedding_length").unwrap(), 640);
    assert_eq!(m.get_u32("gemma3.feed_forward_length").unwrap(), 2048);
    assert_eq!(m.get_u32("gemma3.context_length").unwrap(), 32768);
    assert_eq!(m.get_u32("gemma3.attention.head_count").unwrap(), 4);
    assert_eq!(m.get_u32("gemma3.attention.head_count_kv").unwrap(), 1);
    assert_eq!(m.get_u32("gemma3.attention.key_length").unwrap(), 256);
    assert_eq!(m.get_u32("gemma3.attention.value_length").unwrap(), 256);
    assert_eq!(m.get_u32("gemma3.attention.sliding_window").unwrap(), 512);
    assert_eq!(m.get_f32("gemma3.rope.freq_base").unwrap(), 1_000_000.0);
    assert_eq!(
        m.get_f32("gemma3.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-6
    );
    assert_eq!(m.get_str("tokenizer.ggml.model").unwrap(), "llama");
    assert_eq!(
        m.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        262_144
    );
    assert_eq!(m.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 2);
    assert_eq!(m.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 1);
    assert!(m.get_bool("tokenizer.ggml.add_bos_token").unwrap());

    for (name, ty, dims) in [
        ("token_embd.weight", GgmlType::Q8_0, [640, 262_144]),
        ("blk.0.attn_q.weight", GgmlType::Q5_0, [640, 1024]),
        ("blk.0.attn_output.weight", GgmlType::Q4_K, [1024, 640]),
        ("blk.0.ffn_down.weight", GgmlType::Q6_K, [2048, 640]),
    ] {
        let info = file.tensor_info(name).unwrap();
        assert_eq!((info.ggml_type(), info.dims()), (ty, &dims[..]), "{name}");
    }
}

#[test]
fn gemma3_every_tensor_dequantizes_as_the_python_gguf_package_does() {
    let test = "gemma3_every_tensor_dequantizes_as_the_python_gguf_package_does";
    let Some(path) = model_or_skip(test, GEMMA3) else {
        return;
    };
    let reference = gemma3_reference();
    let start = std::time::Instant::now();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(reference.len(), file.tensors().len());
    let mut n = 0usize;
    for (t, r) in file.tensors().iter().zip(&reference) {
        let name = t.name();
        assert_eq!((name, t.ggml_type().name()), (r.name, r.ty));
        let (dims, values) = file.read_f32(name).unwrap();
        assert_eq!((&dims, values.len()), (&r.dims, r.n), "{name}");
        for &(i, bits) in &r.picks {
            assert_eq!(
                values[i].to_bits(),
                bits,
                "{name}[{i}]: {} vs {} (Python)",
                values[i],
                f32::from_bits(bits)
            );
        }
        let (fnv1a, total, scale) = fnv1a_sum_abs_sum(&values);
        assert_eq!(fnv1a, r.fnv1a, "{name}: FNV-1a of the bits");
        // The sum, in another order than numpy's: within the bound of the
        // two summations' rounding errors.
        let bound = values.len() as f64 * f64::EPSILON * scale;
        assert!(
            (total - r.sum).abs() <= bound,
            "{name}: sum {total} vs {}",
            r.sum
        );
        n += values.len();
    }
    assert_eq!(n, 268_098_176);
    let _ = writeln!(
        std::io::stderr(),
        "gemma3: read, dequantized and hashed {n} values in {:?}",
        start.elapsed()
    );
}
