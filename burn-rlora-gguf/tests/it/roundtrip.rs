//! What the test writer writes reads back: every value type, every
//! supported tensor type, versions 2 and 3, custom alignment, and the typed
//! getters' errors.

use burn_rlora_gguf::testing::{f32_bytes, Builder};
use burn_rlora_gguf::{Array, GgmlType, GgufErrorKind, Value, ValueType, DEFAULT_ALIGNMENT};
use half::{bf16, f16};

use crate::common::{accepted, sample};

fn every_value() -> Vec<(&'static str, Value)> {
    vec![
        ("u8", Value::U8(255)),
        ("i8", Value::I8(-128)),
        ("u16", Value::U16(65535)),
        ("i16", Value::I16(-32768)),
        ("u32", Value::U32(u32::MAX)),
        ("i32", Value::I32(i32::MIN)),
        ("f32", Value::F32(-1.5e-3)),
        ("bool", Value::Bool(true)),
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

#[test]
fn every_value_type_round_trips_in_order() {
    let mut b = Builder::new();
    for (k, v) in every_value() {
        b = b.kv(k, v);
    }
    let file = accepted(&b.build());
    let read: Vec<(String, Value)> = file
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let expected: Vec<(String, Value)> = every_value()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(read, expected);
    assert!(file.tensors().is_empty());
    assert_eq!(file.alignment(), DEFAULT_ALIGNMENT);
}

#[test]
fn typed_getters_return_values_and_name_wrong_types() {
    let mut b = Builder::new();
    for (k, v) in every_value() {
        b = b.kv(k, v);
    }
    let file = accepted(&b.build());
    let m = file.metadata();
    assert_eq!(m.get_u8("u8").unwrap(), 255);
    assert_eq!(m.get_i8("i8").unwrap(), -128);
    assert_eq!(m.get_u16("u16").unwrap(), 65535);
    assert_eq!(m.get_i16("i16").unwrap(), -32768);
    assert_eq!(m.get_u32("u32").unwrap(), u32::MAX);
    assert_eq!(m.get_i32("i32").unwrap(), i32::MIN);
    assert_eq!(m.get_f32("f32").unwrap(), -1.5e-3);
    assert!(m.get_bool("bool").unwrap());
    assert_eq!(m.get_str("string").unwrap(), "héllo <|im_start|>");
    assert_eq!(m.get_u64("u64").unwrap(), u64::MAX);
    assert_eq!(m.get_i64("i64").unwrap(), i64::MIN);
    assert_eq!(m.get_f64("f64").unwrap(), std::f64::consts::PI);
    assert_eq!(m.get_i32_array("a.i32").unwrap(), [1, 3, -6]);
    assert_eq!(m.get_str_array("a.str").unwrap(), ["a", "", "Ġt"]);
    assert_eq!(m.get_bool_array("a.bool").unwrap(), [true, false, true]);
    assert_eq!(m.get_f32_array("a.f32").unwrap(), [0.5, -0.0]);
    assert_eq!(m.get_u8_array("a.u8").unwrap(), [1, 2, 3]);
    assert_eq!(m.get_array_array("a.nested").unwrap().len(), 3);
    assert_eq!(m.get_array("a.u64").unwrap().element_type(), ValueType::U64);

    // A u32 asked for as an i32: no conversion, a typed error naming the key.
    let err = m.get_i32("u32").unwrap_err();
    match err.kind() {
        GgufErrorKind::WrongType {
            key,
            expected: ValueType::I32,
            expected_element: None,
            found: ValueType::U32,
            found_element: None,
        } => assert_eq!(key, "u32"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "GGUF bytes: metadata key `u32`: expected i32, found u32"
    );
    let err = m.get_str_array("a.i32").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected array of string, found array of i32"),
        "{err}"
    );
    let err = m.get_str_array("string").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected array of string, found string"),
        "{err}"
    );
    let err = m.get_u32("missing").unwrap_err();
    assert!(matches!(err.kind(), GgufErrorKind::MissingKey { key } if key == "missing"));
}

#[test]
fn getter_errors_name_the_file() {
    let dir = crate::common::TempDir::new("getters");
    let path = dir.write("m.gguf", &sample().build());
    let file = burn_rlora_gguf::GgufFile::open(&path).unwrap();
    let err = file.metadata().get_str("llama.block_count").unwrap_err();
    assert_eq!(err.file(), Some(path.as_path()));
    assert!(
        err.to_string()
            .contains("m.gguf: metadata key `llama.block_count`"),
        "{err}"
    );
    let err = file.read_f32("nope").unwrap_err();
    assert!(matches!(err.kind(), GgufErrorKind::NoSuchTensor { tensor } if tensor == "nope"));
    assert_eq!(err.file(), Some(path.as_path()));
}

#[test]
fn every_supported_tensor_type_round_trips() {
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 8.0).collect();
    let f16s: Vec<u8> = values
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16s: Vec<u8> = values
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect();
    // Q8_0 with d = 0.125 holds these values exactly (q = 8 v).
    let mut q8 = Vec::new();
    for block in values.chunks(32) {
        q8.extend(f16::from_f32(0.125).to_le_bytes());
        q8.extend(block.iter().map(|&v| (v * 8.0) as i8 as u8));
    }
    let b = Builder::new()
        .tensor("f32", &[16, 4], GgmlType::F32, f32_bytes(&values))
        .tensor("f16", &[64], GgmlType::F16, f16s)
        .tensor("bf16", &[8, 2, 2, 2], GgmlType::BF16, bf16s)
        .tensor("q8", &[32, 2], GgmlType::Q8_0, q8);
    let file = accepted(&b.build());
    for name in ["f32", "f16", "bf16", "q8"] {
        let (dims, read) = file.read_f32(name).unwrap();
        assert_eq!(read, values, "{name}");
        let info = file.tensor_info(name).unwrap();
        assert_eq!(dims, info.dims());
        assert_eq!(dims.iter().product::<usize>(), info.n_elements());
        assert_eq!(
            info.row_major_shape(),
            dims.iter().rev().copied().collect::<Vec<_>>()
        );
        assert_eq!(info.offset() % 32, 0);
    }
    assert_eq!(file.tensor_info("bf16").unwrap().dims(), [8, 2, 2, 2]);
}

#[test]
fn a_file_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<burn_rlora_gguf::GgufFile>();
    let file = accepted(&sample().build());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(file.read_f32("a").unwrap().1[7], 8.0));
        }
    });
}

#[test]
fn the_sample_reads_back() {
    let file = accepted(&sample().build());
    assert_eq!(file.version(), 3);
    assert_eq!(
        file.metadata().get_str("general.architecture").unwrap(),
        "llama"
    );
    let names: Vec<&str> = file.tensors().iter().map(|t| t.name()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let (dims, a) = file.read_f32("a").unwrap();
    assert_eq!(
        (dims, a),
        (vec![4, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.])
    );
    let (_, b) = file.read_f32("b").unwrap();
    assert_eq!((b[0], b[31], b[32], b[63]), (0.0, 31.0, 0.0, -15.5));
    let (_, c) = file.read_f32("c").unwrap();
    assert_eq!((c[0], c[15], c[16], c[31]), (0.0, 15.0, 15.0, 0.0));
    let info = file.tensor_info("b").unwrap();
    assert_eq!((info.n_bytes(), info.ggml_type()), (68, GgmlType::Q8_0));
    assert_eq!(file.data_offset() % 32, 0);
    assert!(file.data_len() >= 32 + 68 + 20);
    assert_eq!(file.read_raw("c").unwrap().len(), 20);
}

#[test]
fn version_2_and_a_custom_alignment_read() {
    let mut b = sample().kv("general.alignment", Value::U32(64));
    b.version = 2;
    b.pad_to = 64;
    let file = accepted(&b.build());
    assert_eq!((file.version(), file.alignment()), (2, 64));
    assert_eq!(file.data_offset() % 64, 0);
    assert!(file.tensors().iter().all(|t| t.offset() % 64 == 0));
    assert_eq!(file.read_f32("a").unwrap().1[7], 8.0);
}

#[test]
fn scalars_empty_tensors_and_gaps_are_accepted() {
    let mut b = Builder::new()
        .tensor("scalar", &[], GgmlType::F32, f32_bytes(&[4.5]))
        .tensor("empty", &[0, 7], GgmlType::Q4_1, vec![])
        .tensor("after_gap", &[2], GgmlType::F32, f32_bytes(&[1.0, 2.0]));
    // Leave a 64-byte gap before the last tensor (allowed: in order, aligned).
    b.tensors[2].offset = Some(96);
    let mut bytes = b.build();
    let tail = bytes.split_off(bytes.len() - 8);
    bytes.extend(vec![0u8; 64]);
    bytes.extend(tail);
    let file = accepted(&bytes);
    assert_eq!(file.read_f32("scalar").unwrap(), (vec![], vec![4.5]));
    assert_eq!(file.read_f32("empty").unwrap(), (vec![0, 7], vec![]));
    assert_eq!(file.read_f32("after_gap").unwrap().1, [1.0, 2.0]);
}
