//! Hostile inputs: each fault class is a typed error naming the file and
//! the key or tensor, from memory and from a file, without a panic and
//! without allocating from the declared counts.

use burn_rlora_gguf::testing::{f32_bytes, Builder, RawTensor};
use burn_rlora_gguf::{GgmlType, GgufErrorKind as K, GgufFile, Value, MAX_ARRAY_DEPTH};

use crate::common::{accepted, refused, sample, TempDir};

fn u64le(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

#[test]
fn bad_magic_and_versions() {
    assert!(matches!(refused(b""), K::BadMagic { found } if found.is_empty()));
    assert!(matches!(refused(b"GGU"), K::BadMagic { found } if found == b"GGU"));
    let mut b = sample();
    b.magic = *b"GGML";
    let err = refused(&b.build());
    assert!(matches!(&err, K::BadMagic { found } if found == b"GGML"));
    assert_eq!(
        err.to_string(),
        r#"not a GGUF file: the magic is "GGML", expected "GGUF""#
    );
    // Version 1 (u32 counts), a future version, and a big-endian version 3.
    for version in [0, 1, 4, 0x0300_0000] {
        let mut b = sample();
        b.version = version;
        match refused(&b.build()) {
            K::UnsupportedVersion { version: v } => assert_eq!(v, version),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample().kv("a.str", Value::String("xyz".into())).build();
    for len in 0..bytes.len() {
        let err = GgufFile::from_bytes(bytes[..len].to_vec()).expect_err("a prefix was accepted");
        assert!(
            matches!(
                err.kind(),
                K::BadMagic { .. }
                    | K::Truncated { .. }
                    | K::CountTooLarge { .. }
                    | K::DataOutOfBounds { .. }
            ),
            "prefix {len}: {err}"
        );
    }
    // From a file, naming what was cut: too short for the declared counts,
    // then inside the first tensor info (bytes 130..171).
    assert!(matches!(refused(&bytes[..40]), K::CountTooLarge { .. }));
    let err = refused(&bytes[..150]);
    assert!(
        err.to_string().contains("the info of tensor #0 `a`"),
        "{err}"
    );
    let err = refused(&bytes[..bytes.len() - 1]);
    assert!(
        matches!(&err, K::DataOutOfBounds { tensor, .. } if tensor == "c"),
        "{err}"
    );
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    for (tensors, kvs) in [(u64::MAX, 0), (0, u64::MAX), (1 << 40, 2), (3, 1 << 40)] {
        let mut b = sample();
        b.tensor_count = Some(tensors);
        b.kv_count = Some(kvs);
        match refused(&b.build()) {
            K::CountTooLarge { what, count, .. } => {
                assert!(count == tensors || count == kvs, "{what}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn huge_lengths_are_refused_before_allocating() {
    // A key whose length is u64::MAX.
    let mut bytes = Builder::new().kv("k", Value::U8(1)).build();
    bytes[24..32].copy_from_slice(&u64le(u64::MAX));
    assert!(
        matches!(refused(&bytes), K::Truncated { what, needed: u64::MAX, .. } if what.contains("key of metadata entry #0"))
    );
    // A string value of 2^62 bytes.
    let b = Builder::new().kv_raw("s", 8, u64le(1 << 62));
    assert!(matches!(refused(&b.build()), K::Truncated { what, .. } if what == "value of key `s`"));
    // Arrays of 2^61 u32, 2^60 strings, 2^59 arrays, u64::MAX bools.
    for (ty, len) in [
        (4u32, 1u64 << 61),
        (8, 1 << 60),
        (9, 1 << 59),
        (7, u64::MAX),
    ] {
        let mut payload = ty.to_le_bytes().to_vec();
        payload.extend(u64le(len));
        let b = Builder::new().kv_raw("arr", 9, payload);
        match refused(&b.build()) {
            K::CountTooLarge { what, count, .. } => {
                assert_eq!(count, len);
                assert!(what.contains("key `arr`"), "{what}");
            }
            other => panic!("{other:?}"),
        }
    }
    // A tensor name of u64::MAX bytes.
    let mut b = sample();
    b.tensors[0].name = String::new();
    let mut bytes = b.build();
    let at = find(&bytes, &[0u8; 8], 0x40).unwrap();
    bytes[at..at + 8].copy_from_slice(&u64le(u64::MAX));
    assert!(
        matches!(refused(&bytes), K::Truncated { what, .. } if what == "the name of tensor #0")
    );
}

/// The first position at or after `from` where `needle` occurs.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    (from..hay.len().saturating_sub(needle.len())).find(|&i| hay[i..].starts_with(needle))
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    let b = Builder::new().kv_raw("t", 13, vec![0; 8]);
    assert!(matches!(refused(&b.build()), K::UnknownValueType { key, id: 13 } if key == "t"));
    let b = Builder::new().kv_raw("flag", 7, vec![2]);
    assert!(matches!(refused(&b.build()), K::InvalidBool { key, byte: 2 } if key == "flag"));
    let mut arr = 7u32.to_le_bytes().to_vec();
    arr.extend(u64le(2));
    arr.extend([1, 0xff]);
    let b = Builder::new().kv_raw("flags", 9, arr);
    assert!(matches!(refused(&b.build()), K::InvalidBool { key, byte: 0xff } if key == "flags"));
    let mut arr = 99u32.to_le_bytes().to_vec();
    arr.extend(u64le(0));
    let b = Builder::new().kv_raw("arr", 9, arr);
    assert!(matches!(refused(&b.build()), K::UnknownValueType { key, id: 99 } if key == "arr"));
    // Strings that are not UTF-8: a value, a key, a tensor name.
    let mut s = u64le(2);
    s.extend([0xc3, 0x28]);
    let b = Builder::new().kv_raw("s", 8, s);
    assert!(matches!(refused(&b.build()), K::InvalidUtf8 { what } if what == "value of key `s`"));
    let mut bytes = Builder::new().kv("ké", Value::U8(0)).build();
    bytes[33] = 0xff; // the second byte of 'é'
    assert!(matches!(refused(&bytes), K::InvalidUtf8 { what } if what.contains("entry #0")));
    let mut b = sample();
    b.tensors[1].name = "é".into();
    let mut bytes = b.build();
    let at = find(&bytes, "é".as_bytes(), 0).unwrap();
    bytes[at + 1] = 0xff;
    assert!(matches!(refused(&bytes), K::InvalidUtf8 { what } if what == "the name of tensor #1"));
}

#[test]
fn nesting_is_bounded() {
    let nested = |depth: usize| {
        // depth arrays, each holding one array, the innermost empty.
        let mut payload = Vec::new();
        for i in 0..depth {
            let inner_is_array = i + 1 < depth;
            payload.extend((if inner_is_array { 9u32 } else { 0 }).to_le_bytes());
            payload.extend(u64le(u64::from(inner_is_array)));
        }
        Builder::new().kv_raw("deep", 9, payload).build()
    };
    let file = accepted(&nested(MAX_ARRAY_DEPTH));
    assert_eq!(file.metadata().get_array_array("deep").unwrap().len(), 1);
    let err = refused(&nested(MAX_ARRAY_DEPTH + 1));
    assert!(
        matches!(err, K::NestingTooDeep { key, max } if key == "deep" && max == MAX_ARRAY_DEPTH)
    );
    // Far deeper than the stack could take by recursion: refused at the limit.
    assert!(matches!(
        refused(&nested(100_000)),
        K::NestingTooDeep { .. }
    ));
}

#[test]
fn duplicates_are_refused() {
    let b = sample().kv("llama.block_count", Value::U32(3));
    assert!(matches!(refused(&b.build()), K::DuplicateKey { key } if key == "llama.block_count"));
    let mut b = sample();
    b.tensors[2].name = "a".into();
    assert!(matches!(refused(&b.build()), K::DuplicateTensor { tensor } if tensor == "a"));
}

#[test]
fn bad_alignment_is_refused() {
    for value in [
        Value::U32(0),
        Value::U32(3),
        Value::U32(48),
        Value::U64(32),
        Value::I32(32),
    ] {
        let b = sample().kv("general.alignment", value.clone());
        assert!(
            matches!(refused(&b.build()), K::InvalidAlignment { .. }),
            "{value:?}"
        );
    }
    // A valid but huge alignment puts the data section past the end.
    let b = sample().kv("general.alignment", Value::U32(1 << 31));
    assert!(matches!(refused(&b.build()), K::Truncated { what, .. } if what.contains("padding")));
}

fn sample_with(f: impl FnOnce(&mut RawTensor)) -> Vec<u8> {
    let mut b = sample();
    f(&mut b.tensors[1]);
    b.build()
}

#[test]
fn bad_dims_and_types_are_refused_naming_the_tensor() {
    let err = refused(&sample_with(|t| t.dims = vec![32, 2, 1, 1, 1]));
    assert!(matches!(err, K::TooManyDims { tensor, n_dims: 5, max: 4 } if tensor == "b"));
    // n_dims = u32::MAX: refused at once, not read as 2^32 dims.
    let mut bytes = sample().build();
    let at = find(&bytes, b"\x01\0\0\0\0\0\0\0b", 0).unwrap() + 9;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        refused(&bytes),
        K::TooManyDims {
            n_dims: u32::MAX,
            ..
        }
    ));
    for dims in [
        vec![1 << 32, 1 << 32, 2],
        vec![u64::MAX],
        vec![1 << 63],
        vec![64, 1 << 62],
    ] {
        let err = refused(&sample_with(|t| t.dims = dims.clone()));
        assert!(
            matches!(&err, K::ShapeOverflow { tensor, dims: d } if tensor == "b" && *d == dims),
            "{err}"
        );
    }
    let err = refused(&sample_with(|t| t.dims = vec![33, 2]));
    assert!(
        matches!(err, K::PartialBlock { tensor, ty: GgmlType::Q8_0, row_len: 33, block_size: 32 } if tensor == "b")
    );
    for id in [4, 5, 31, 36, 42, 1000, u32::MAX] {
        let err = refused(&sample_with(|t| t.type_id = id));
        assert!(
            matches!(&err, K::UnknownTensorType { tensor, id: i } if tensor == "b" && *i == id),
            "{err}"
        );
    }
}

#[test]
fn bad_placements_are_refused() {
    let err = refused(&sample_with(|t| t.offset = Some(4)));
    assert!(matches!(err, K::Misaligned { tensor, offset: 4, alignment: 32 } if tensor == "b"));
    let err = refused(&sample_with(|t| t.offset = Some(1 << 20)));
    assert!(matches!(err, K::DataOutOfBounds { tensor, .. } if tensor == "b"));
    let err = refused(&sample_with(|t| t.offset = Some(u64::MAX - 31)));
    assert!(matches!(err, K::DataOutOfBounds { tensor, .. } if tensor == "b"));
    // Overlapping the previous tensor, and out of order (before it).
    let err = refused(&sample_with(|t| t.offset = Some(0)));
    assert!(
        matches!(err, K::Overlap { tensor, previous, previous_end: 32, .. } if tensor == "b" && previous == "a")
    );
    let mut b = sample();
    b.tensors[2].offset = Some(32);
    let err = refused(&b.build());
    assert!(matches!(err, K::Overlap { tensor, previous, .. } if tensor == "c" && previous == "b"));
    // The shape says more bytes than the file holds (a size that disagrees).
    // Here the middle tensor then runs into the last one; the last one past the end.
    let err = refused(&sample_with(|t| t.dims = vec![32, 3]));
    assert!(matches!(err, K::Overlap { tensor, previous, .. } if tensor == "c" && previous == "b"));
    let mut b = sample();
    b.tensors[2].dims = vec![32, 2];
    let err = refused(&b.build());
    assert!(matches!(err, K::DataOutOfBounds { tensor, size: 40, .. } if tensor == "c"));
    let err = refused(&sample_with(|t| t.dims = vec![32, 2, 1 << 40]));
    assert!(matches!(err, K::DataOutOfBounds { tensor, .. } if tensor == "b"));
}

#[test]
fn quantized_types_refuse_partial_rows_and_short_data_and_read_nan_scales() {
    let quantized = GgmlType::ALL
        .iter()
        .copied()
        .filter(|t| t.is_supported() && t.block_size() > 1);
    for ty in quantized {
        let (bs, bb) = (ty.block_size(), ty.block_bytes() as usize);
        // Rows of half a block, or one value more than a block: refused at
        // parse time, even where the whole tensor is a whole number of blocks.
        for dims in [vec![bs / 2, 2], vec![bs + 1], vec![bs - 1, bs]] {
            let b = Builder::new().tensor("w", &dims, ty, vec![0; 2 * bb]);
            let err = refused(&b.build());
            assert!(
                matches!(&err, K::PartialBlock { tensor, ty: t, row_len, block_size }
                    if tensor == "w" && *t == ty && *row_len == dims[0] && *block_size == bs),
                "{ty} {dims:?}: {err}"
            );
        }
        // Two rows declared, one block of data: past the end.
        let b = Builder::new().tensor("w", &[bs, 2], ty, vec![0; bb]);
        let err = refused(&b.build());
        assert!(
            matches!(&err, K::DataOutOfBounds { tensor, size, .. } if tensor == "w" && *size == 2 * bb as u64),
            "{ty}: {err}"
        );
        // Every byte 0xff: the f16 scales are NaN (0xffff), and so is every value.
        let b = Builder::new().tensor("w", &[bs, 3], ty, vec![0xff; 3 * bb]);
        let (_, values) = accepted(&b.build()).read_f32("w").unwrap();
        assert_eq!(values.len() as u64, 3 * bs, "{ty}");
        assert!(values.iter().all(|v| v.is_nan()), "{ty}");
    }
}

#[test]
fn known_unsupported_types_open_but_do_not_read_as_f32() {
    for &ty in GgmlType::ALL.iter().filter(|t| !t.is_supported()) {
        let data = vec![0u8; ty.block_bytes() as usize * 2];
        let b = Builder::new().tensor("w", &[ty.block_size() * 2], ty, data.clone());
        let file = accepted(&b.build());
        assert_eq!(file.read_raw("w").unwrap(), data);
        let err = file.read_f32("w").unwrap_err();
        assert!(
            matches!(err.kind(), K::UnsupportedTensorType { tensor, ty: t } if tensor == "w" && *t == ty)
        );
        assert!(
            err.to_string()
                .contains(&format!("type {} is not supported", ty.name())),
            "{err}"
        );
    }
}

#[test]
fn non_regular_files_are_refused() {
    let dir = TempDir::new("nonregular");
    let err = GgufFile::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            K::NotRegularFile {
                kind: "a directory"
            } | K::Io(_)
        ),
        "{err}"
    );
    assert_eq!(err.file(), Some(dir.path()));
    if std::path::Path::new("/dev/zero").exists() {
        let err = GgufFile::open("/dev/zero").unwrap_err();
        assert!(
            matches!(
                err.kind(),
                K::NotRegularFile {
                    kind: "a character device"
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("/dev/zero: not a regular file"),
            "{err}"
        );
    }
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        // Opened without blocking (no writer), then refused.
        let err = GgufFile::open(&fifo).unwrap_err();
        assert!(
            matches!(err.kind(), K::NotRegularFile { kind: "a FIFO" }),
            "{err}"
        );
    }
    let err = GgufFile::open(dir.path().join("missing.gguf")).unwrap_err();
    assert!(matches!(err.kind(), K::Io(e) if e.kind() == std::io::ErrorKind::NotFound));
    // The reason is in the message once, and not again as a source (a
    // chain-printing reporter would repeat it).
    let text = err.to_string();
    assert!(
        text.starts_with(&dir.path().join("missing.gguf").display().to_string()),
        "{text}"
    );
    let K::Io(e) = err.kind() else { unreachable!() };
    assert_eq!(text.matches(&e.to_string()).count(), 1, "{text}");
    assert!(std::error::Error::source(&err).is_none());
}

#[test]
fn a_file_that_shrinks_after_opening_fails_cleanly() {
    let dir = TempDir::new("shrink");
    let path = dir.write("s.gguf", &sample().build());
    let file = GgufFile::open(&path).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let err = file.read_f32("c").unwrap_err();
    assert!(
        matches!(err.kind(), K::Truncated { what, .. } if what.contains("`c`")),
        "{err}"
    );
    assert_eq!(err.file(), Some(path.as_path()));
    assert_eq!(file.read_f32("a").unwrap().1.len(), 8);
}

#[test]
fn many_small_items_parse_in_linear_time() {
    // 200,000 empty strings and 100,000 empty nested arrays: a few MB, read
    // once each (a quadratic reader would take minutes here).
    let strings = burn_rlora_gguf::Array::String(vec![String::new(); 200_000]);
    let arrays = burn_rlora_gguf::Array::Array(vec![burn_rlora_gguf::Array::U8(vec![]); 100_000]);
    let b = Builder::new()
        .kv("strings", Value::Array(strings))
        .kv("arrays", Value::Array(arrays))
        .tensor("x", &[1], GgmlType::F32, f32_bytes(&[0.0]));
    let start = std::time::Instant::now();
    let file = GgufFile::from_bytes(b.build()).unwrap();
    assert_eq!(
        file.metadata().get_str_array("strings").unwrap().len(),
        200_000
    );
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}
