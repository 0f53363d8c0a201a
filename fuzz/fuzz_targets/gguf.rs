//! Fuzz the strict GGUF reader: the input is a whole `.gguf` file. Parsing
//! must not panic or abort (run with `-rss_limit_mb` and `-malloc_limit_mb`:
//! nothing may be allocated from a declared count), and what parses must be
//! consistent: every tensor's byte size agrees with its type and dims, its
//! data lies inside the data section, in order and without overlap, and
//! reading it gives exactly that many bytes; dequantizing every supported
//! tensor (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants
//! Q2_K to Q6_K) gives exactly its element count (at most 1024 bytes of
//! `f32` for 84 bytes of data, Q2_K's ratio), every other type is a typed
//! error. NaN and infinite scales are fine: they give NaN or infinite
//! values, never a panic.
#![no_main]

use burn_rlora_gguf::{GgufErrorKind, GgufFile};
use libfuzzer_sys::fuzz_target;

fn check(file: &GgufFile, input_len: u64) {
    assert!(file.version() == 2 || file.version() == 3);
    assert!(file.alignment().is_power_of_two());
    // The data section runs from an aligned offset to the end of the input
    // (it may be empty, and past the end, only when there are no tensors).
    assert_eq!(file.data_offset() % file.alignment(), 0);
    assert!(file.data_len() == 0 || file.data_offset() + file.data_len() == input_len);
    assert!(file.tensors().is_empty() || file.data_offset() <= input_len);
    // Lookup by key finds the very entry iteration yields (by address:
    // values may be NaN).
    for (key, value) in file.metadata().iter() {
        assert!(
            file.metadata()
                .get(key)
                .is_some_and(|v| std::ptr::eq(v, value)),
            "{key}"
        );
    }
    let mut end = 0u64;
    for t in file.tensors() {
        let ty = t.ggml_type();
        assert!(t.dims().len() <= burn_rlora_gguf::MAX_DIMS as usize);
        assert_eq!(t.dims().iter().product::<usize>(), t.n_elements());
        assert_eq!(
            t.dims().first().copied().unwrap_or(1) as u64 % ty.block_size(),
            0
        );
        assert_eq!(
            t.n_bytes(),
            t.n_elements() as u64 / ty.block_size() * ty.block_bytes()
        );
        assert_eq!(t.offset() % file.alignment(), 0);
        assert!(
            t.offset() >= end,
            "{}: out of order or overlapping",
            t.name()
        );
        end = t.offset() + t.n_bytes();
        assert!(end <= file.data_len(), "{}: past the end", t.name());
        assert_eq!(file.tensor_info(t.name()).unwrap(), t);
        let raw = file.read_raw(t.name()).unwrap();
        assert_eq!(raw.len() as u64, t.n_bytes());
        match file.read_f32(t.name()) {
            Ok((dims, values)) => {
                assert!(ty.is_supported());
                assert_eq!(dims, t.dims());
                assert_eq!(values.len(), t.n_elements());
                assert!(values.len() as u64 * 4 * 84 <= 1024 * t.n_bytes());
            }
            Err(e) => {
                assert!(!ty.is_supported(), "{}: {e}", t.name());
                assert!(matches!(
                    e.kind(),
                    GgufErrorKind::UnsupportedTensorType { .. }
                ));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = GgufFile::from_bytes(data.to_vec()) {
        check(&file, data.len() as u64);
    }
});
