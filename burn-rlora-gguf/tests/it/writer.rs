//! The supported writer (`GgufWriter`): what it writes reads back, its
//! Q8_0 and F16 encodings are bit for bit those of llama.cpp's `gguf`
//! package, it refuses what the reader would refuse, and files are written
//! atomically and never over something that is not a regular file.

use std::path::Path;

use burn_rlora_gguf::{
    dequantize, encode_f32, quantize_q8_0, Array, EncodeError, GgmlType, GgufFile, GgufWriter,
    Value, WriteError, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH,
};
use half::{bf16, f16};

use crate::common::TempDir;

/// The inputs of `scripts/llamacpp-q8-fixture.py`, the same formulas in f32.
fn reference_inputs() -> Vec<f32> {
    let mut out = vec![0.5f32, -0.5, 1.5, -2.5, 126.5, -126.5, 127.0, 0.0];
    out.extend((0..24).map(|i| i as f32 - 16.0));
    out.extend([0.0f32; 32]);
    out.extend((0..32).map(|i| 1e-6f32 * (i as f32 - 16.0) / 16.0));
    out.push(-3.0);
    out.extend((0..31).map(|i| i as f32 / 13.0));
    for k in 0..8i64 {
        out.extend((0..32i64).map(|i| (((k * 32 + i) * 7919) % 1000 - 500) as f32 / 37.0));
    }
    out
}

// Printed by `scripts/llamacpp-q8-fixture.py` (gguf.quants.quantize and
// numpy's float16 of the inputs above).
const Q8_0_REFERENCE: &[&str] = &[
    "003c01ff02fd7f817f00f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060700000000000000000000",
    "000000000000000000000000000000000000000000000000000081899199a1a9b1b9c1c8d0d8e0e8f0f80008",
    "1018202830383f474f575f676f770c26810003070a0d1014171a1d2124272a2e3134373b3e4144484b4e5155",
    "585b5e62cf2e816a56412d1804efdac6b19d88725d48341f0bf6e2cdb8a48f7964503b2612fdc52ee8d4bfaa",
    "96816c57422e1904f0dbc6b29d88735e4a35200bf7e2cdb9a48f7a65ba2e513c2813fee9d4bfab96816d5844",
    "2f1a05f0dbc7b29d8874604b36210cf8e3ceb02eb9a48f7c67533e2914ffead5c0ab96816f5a45301b06f1dc",
    "c7b29d8876614c37a62e220df8e3ceb9a48f7e69543f2a15ffead5c0ab9681705b46311c07f2ddc8b29da22e",
    "8878634d38230ef9e4cfbaa48f7f6a55402b1500ebd6c1ac9782715c47321d08ac2ef3dec9b49f8a78634e39",
    "240ffae5d0bba6917f6a55402b1601ecd7c2ad988371b72e5c47321d08f3dfcab5a08b78634e39240ffbe6d1",
    "bca7927f6a55402c1702edd8",
];
const F16_REFERENCE: &[&str] = &[
    "003800b8003e00c1e857e8d7f057000000cc80cb00cb80ca00ca80c900c980c800c800c700c600c500c400c2",
    "00c000bc0000003c004000420044004500460047000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000011801080",
    "0f800e800d800c800a8009800880078006800580048003800280018000000100020003000400050006000700",
    "080009000a000c000d000e000f00100000c20000ec2cec306233ec34273662374f38ec388a39273ac53a623b",
    "003c4f3c9e3cec3c3b3d8a3dd93d273e763ec53e143f623fb13f004027404f4076409e40c2caaa499148f246",
    "c24423410e363ebf00c430c630c849c961ca0a4af248b4478345a6428a3c37bc7dc26fc59fc7e8c800ca6b4a",
    "53493b4845461544913fc2b4f9c0adc4ddc687c89fc9b7cab4499c480747d6444c415a37ebbed6c31cc626c8",
    "3ec956ca154afd48c9479845d042dd3cc9bb53c25ac58ac7ddc8f6c9764a5d4945485a462a44e43febb2d0c0",
    "98c4c9c67dc895c9adcabe49a6481c47eb447641533898beadc307c61cc834c94cca1f4a0749dd47ad45f942",
    "303d23bb2ac245c576c7d3c8ebc9804a684950486f463e441c4053b0a6c083c4b4c672c88ac9a3cac949b048",
    "304700459f41f93845be83c3f2c511c82ac942ca2a4a1149f247c2452343833d7dba00c230c561c7c9c8e1c9",
    "8a4a72495a48834653444540ebaa7dc06fc49fc668c880c998cad349bb4845471545c9419f39f2bd5ac3ddc5",
    "07c81fc937ca344a1c490348d6454c43d63dd6b9d6c11cc54cc7bec8d6c9954a7d496448984668446f40eb26",
    "53c05ac48ac65dc876c98ecadd49c5485a472a45f241453a9fbd30c3c9c5f9c715c92dca3e4a26490e48eb45",
    "76432a3e30b9adc107c537c7b4c8ccc99f4a87496f48ad467d449840eb2e2ac045c476c653c86bc983cae849",
    "d0486f473e451c42eb3a4cbd07c3b4c5e4c70ac923ca494a3049184800469f437d3e8ab883c1f2c423c7aac8",
    "c2c9aa4a91497948c2469144c2400e3200c030c4",
];

fn unhex(parts: &[&str]) -> Vec<u8> {
    let hex: String = parts.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn q8_0_and_f16_are_bit_for_bit_those_of_the_gguf_package() {
    let x = reference_inputs();
    assert_eq!(x.len(), 384);
    assert_eq!(quantize_q8_0(&x).unwrap(), unhex(Q8_0_REFERENCE));
    assert_eq!(
        encode_f32(GgmlType::Q8_0, &x).unwrap(),
        unhex(Q8_0_REFERENCE)
    );
    assert_eq!(encode_f32(GgmlType::F16, &x).unwrap(), unhex(F16_REFERENCE));
}

#[test]
fn q8_0_dequantizes_within_half_a_step() {
    let x = reference_inputs();
    let back = dequantize(GgmlType::Q8_0, &quantize_q8_0(&x).unwrap()).unwrap();
    for (block, got) in x.chunks(32).zip(back.chunks(32)) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // The f16 scale adds a relative error of at most 2^-11 per value,
        // or an absolute one of 2^-25 per step where it is subnormal (the
        // tiny block's scale rounds to 0, as in llama.cpp).
        let step = amax / 127.0;
        for (v, g) in block.iter().zip(got) {
            let bound = step * 0.5 + amax * 1e-3 + 127.0 * 2f32.powi(-25);
            assert!((v - g).abs() <= bound, "{v} -> {g}");
        }
    }
}

fn every_value() -> Vec<(&'static str, Value)> {
    vec![
        ("u8", Value::U8(255)),
        ("i8", Value::I8(-128)),
        ("u16", Value::U16(65535)),
        ("i16", Value::I16(-32768)),
        ("u32", Value::U32(u32::MAX)),
        ("i32", Value::I32(i32::MIN)),
        ("f32", Value::F32(-1.5e-3)),
        ("bool", Value::Bool(false)),
        ("string", Value::String("héllo <|im_start|>".into())),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f64", Value::F64(std::f64::consts::PI)),
        ("empty", Value::String(String::new())),
        ("a.u8", Value::Array(Array::U8(vec![1, 2, 3]))),
        ("a.i8", Value::Array(Array::I8(vec![-1, 2]))),
        ("a.u16", Value::Array(Array::U16(vec![7, 65535]))),
        ("a.i16", Value::Array(Array::I16(vec![-7]))),
        ("a.u32", Value::Array(Array::U32(vec![1, u32::MAX]))),
        ("a.i32", Value::Array(Array::I32(vec![1, 3, -6]))),
        ("a.f32", Value::Array(Array::F32(vec![0.5, -0.0]))),
        ("a.bool", Value::Array(Array::Bool(vec![true, false, true]))),
        (
            "a.str",
            Value::Array(Array::String(vec!["a".into(), "".into(), "Ġt".into()])),
        ),
        ("a.u64", Value::Array(Array::U64(vec![u64::MAX]))),
        ("a.i64", Value::Array(Array::I64(vec![-1, 1]))),
        ("a.f64", Value::Array(Array::F64(vec![1e300]))),
        ("a.empty", Value::Array(Array::I32(vec![]))),
        (
            "a.nested",
            Value::Array(Array::Array(vec![
                Array::String(vec!["x".into()]),
                Array::Array(vec![Array::U8(vec![9]), Array::Array(vec![])]),
                Array::F32(vec![]),
            ])),
        ),
    ]
}

/// `depth` levels of arrays around an array of one u8.
fn nested(depth: usize) -> Array {
    (1..depth).fold(Array::U8(vec![1]), |inner, _| Array::Array(vec![inner]))
}

#[test]
fn every_value_type_and_tensor_type_reads_back() {
    let mut w = GgufWriter::new();
    for (k, v) in every_value() {
        w.add_metadata(k, v).unwrap();
    }
    w.add_metadata("deepest", Value::Array(nested(MAX_ARRAY_DEPTH)))
        .unwrap();
    let x = reference_inputs();
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0] {
        w.add_tensor(format!("t.{ty}"), &[64, 3, 2], ty, &x)
            .unwrap();
    }
    // Raw bytes of a type the writer does not encode: one Q4_1 block.
    let mut q41 = vec![0x00, 0x3c, 0x00, 0xbc]; // d = 1, m = -1
    q41.extend((0..16).map(|j| j as u8 | ((15 - j as u8) << 4)));
    w.add_tensor_bytes("raw.q4_1", &[32], GgmlType::Q4_1, q41.clone())
        .unwrap();
    w.add_tensor("odd", &[3], GgmlType::F32, &[1.0, 2.0, 3.0])
        .unwrap();
    let bytes = w.to_bytes();
    let mut sink = Vec::new();
    assert_eq!(w.write_to(&mut sink).unwrap(), bytes.len() as u64);
    assert_eq!(sink, bytes);
    assert_eq!(bytes.len() % 32, 0);

    let file = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(file.version(), 3);
    let read: Vec<(String, Value)> = file
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut expected: Vec<(String, Value)> = every_value()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    expected.push(("deepest".into(), Value::Array(nested(MAX_ARRAY_DEPTH))));
    assert_eq!(read, expected);
    let names: Vec<&str> = file.tensors().iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        ["t.F32", "t.F16", "t.BF16", "t.Q8_0", "raw.q4_1", "odd"]
    );
    for t in file.tensors() {
        assert_eq!(t.offset() % DEFAULT_ALIGNMENT, 0);
    }
    let read = |name: &str| file.read_f32(name).unwrap();
    assert_eq!(read("t.F32"), (vec![64, 3, 2], x.clone()));
    let f16s: Vec<f32> = x.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    assert_eq!(read("t.F16").1, f16s);
    let bf16s: Vec<f32> = x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
    assert_eq!(read("t.BF16").1, bf16s);
    let q8 = dequantize(GgmlType::Q8_0, &unhex(Q8_0_REFERENCE)).unwrap();
    assert_eq!(read("t.Q8_0").1, q8);
    assert_eq!(file.read_raw("raw.q4_1").unwrap(), q41);
    assert_eq!(read("raw.q4_1").1[..3], [-1.0, 0.0, 1.0]);
    assert_eq!(read("odd").1, [1.0, 2.0, 3.0]);
}

#[test]
fn an_empty_file_reads_back() {
    let bytes = GgufWriter::new().to_bytes();
    assert_eq!(bytes.len(), 32);
    let file = GgufFile::from_bytes(bytes).unwrap();
    assert!(file.tensors().is_empty());
    assert_eq!(file.metadata().iter().count(), 0);
}

#[test]
fn a_custom_alignment_is_written_and_used() {
    let mut w = GgufWriter::new();
    w.add_metadata("a", Value::U8(1)).unwrap();
    w.set_alignment(256).unwrap();
    w.add_metadata("b", Value::U8(2)).unwrap();
    w.add_tensor("x", &[3], GgmlType::F32, &[1.0, 2.0, 3.0])
        .unwrap();
    w.add_tensor("y", &[2], GgmlType::F16, &[4.0, 5.0]).unwrap();
    assert_eq!(w.alignment(), 256);
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(file.alignment(), 256);
    assert_eq!(file.data_offset() % 256, 0);
    let keys: Vec<&str> = file.metadata().iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "general.alignment", "b"]);
    assert_eq!(file.metadata().get_u32("general.alignment").unwrap(), 256);
    assert_eq!(file.tensor_info("y").unwrap().offset(), 256);
    assert_eq!(file.read_f32("y").unwrap().1, [4.0, 5.0]);

    // Back to the default: the entry goes.
    w.set_alignment(32).unwrap();
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let keys: Vec<&str> = file.metadata().iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(file.read_f32("x").unwrap().1, [1.0, 2.0, 3.0]);

    for bad in [0, 3, 48] {
        assert!(matches!(
            w.set_alignment(bad),
            Err(WriteError::InvalidAlignment { alignment }) if alignment == bad
        ));
    }
}

#[test]
fn what_the_reader_refuses_is_refused_first() {
    let mut w = GgufWriter::new();
    w.add_metadata("k", Value::U8(1)).unwrap();
    let err = w.add_metadata("k", Value::U8(2)).unwrap_err();
    assert!(matches!(&err, WriteError::DuplicateKey { key } if key == "k"));
    assert_eq!(err.to_string(), "duplicate metadata key `k`");
    let err = w
        .add_metadata("general.alignment", Value::U32(64))
        .unwrap_err();
    assert!(matches!(err, WriteError::ReservedKey { .. }), "{err}");
    let err = w
        .add_metadata("deep", Value::Array(nested(MAX_ARRAY_DEPTH + 1)))
        .unwrap_err();
    assert!(matches!(err, WriteError::NestingTooDeep { max, .. } if max == MAX_ARRAY_DEPTH));

    w.add_tensor("t", &[32], GgmlType::F32, &[0.0; 32]).unwrap();
    let err = w
        .add_tensor("t", &[32], GgmlType::F32, &[0.0; 32])
        .unwrap_err();
    assert!(matches!(&err, WriteError::DuplicateTensor { tensor } if tensor == "t"));
    for dims in [&[][..], &[1, 1, 1, 1, 1][..]] {
        let err = w.add_tensor("d", dims, GgmlType::F32, &[0.0]).unwrap_err();
        assert!(matches!(err, WriteError::BadDimCount { .. }), "{err}");
    }
    let err = w
        .add_tensor("q", &[16, 2], GgmlType::Q8_0, &[0.0; 32])
        .unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::PartialBlock {
                row_len: 16,
                block_size: 32,
                ..
            }
        ),
        "{err}"
    );
    let err = w
        .add_tensor("n", &[4, 2], GgmlType::F32, &[0.0; 7])
        .unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::DataLength {
                expected: 8,
                found: 7,
                unit: "values",
                ..
            }
        ),
        "{err}"
    );
    let err = w
        .add_tensor_bytes("b", &[32], GgmlType::Q4_0, vec![0; 17])
        .unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::DataLength {
                expected: 18,
                found: 17,
                unit: "bytes",
                ..
            }
        ),
        "{err}"
    );
    let err = w
        .add_tensor("u", &[32], GgmlType::Q4_0, &[0.0; 32])
        .unwrap_err();
    assert!(
        matches!(&err, WriteError::Encode { tensor, error: EncodeError::Unsupported(GgmlType::Q4_0) } if tensor == "u"),
        "{err}"
    );
    let mut x = vec![1.0f32; 32];
    x[5] = f32::NAN;
    let err = w.add_tensor("nan", &[32], GgmlType::Q8_0, &x).unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::Encode {
                error: EncodeError::NonFinite { index: 5, .. },
                ..
            }
        ),
        "{err}"
    );
    let err = w
        .add_tensor_bytes("big", &[1 << 40, 1 << 40], GgmlType::F32, vec![])
        .unwrap_err();
    assert!(matches!(err, WriteError::ShapeOverflow { .. }), "{err}");
    assert!(matches!(
        quantize_q8_0(&[0.0; 33]),
        Err(EncodeError::PartialBlock { len: 33, .. })
    ));
    // Nothing refused was kept: the file holds what was accepted.
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(file.metadata().iter().count(), 1);
    assert_eq!(file.tensors().len(), 1);
    // F32 and F16 keep non-finite values as IEEE values.
    let mut w = GgufWriter::new();
    w.add_tensor("inf", &[2], GgmlType::F16, &[f32::INFINITY, 1e6])
        .unwrap();
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(
        file.read_f32("inf").unwrap().1,
        [f32::INFINITY, f32::INFINITY]
    );
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".gguf-tmp-"))
        .collect()
}

#[test]
fn files_are_written_atomically_and_replaced_whole() {
    let dir = TempDir::new("writer");
    let path = dir.path().join("out.gguf");
    let mut w = GgufWriter::new();
    w.add_metadata("general.type", Value::String("adapter".into()))
        .unwrap();
    w.add_tensor("x", &[32], GgmlType::Q8_0, &reference_inputs()[..32])
        .unwrap();
    w.write_file(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.metadata().get_str("general.type").unwrap(), "adapter");
    drop(file);
    // Over an existing file: replaced by the whole new one.
    std::fs::write(&path, b"old content").unwrap();
    w.write_file(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), w.to_bytes());
    assert!(leftovers(dir.path()).is_empty());
    // Into a directory that does not exist: an I/O error naming the path.
    let missing = dir.path().join("no/such/dir/out.gguf");
    let err = w.write_file(&missing).unwrap_err();
    assert!(matches!(err, WriteError::Io { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_target_that_is_not_a_regular_file_is_refused_untouched() {
    let dir = TempDir::new("writer-special");
    let w = GgufWriter::new();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let err = w.write_file(&sub).unwrap_err();
    assert!(
        matches!(
            &err,
            WriteError::NotRegularFile {
                kind: "a directory",
                ..
            }
        ),
        "{err}"
    );
    assert!(sub.is_dir());
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        // Refused from its type alone: nothing opens (and blocks on) it.
        let err = w.write_file(&fifo).unwrap_err();
        assert!(
            matches!(&err, WriteError::NotRegularFile { kind: "a FIFO", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
    let err = w.write_file("/dev/null").unwrap_err();
    assert!(
        matches!(
            &err,
            WriteError::NotRegularFile {
                kind: "a character device",
                ..
            }
        ),
        "{err}"
    );
    assert!(leftovers(dir.path()).is_empty());
}
