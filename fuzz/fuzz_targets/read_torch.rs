//! Fuzz the strict `torch.save` reader. An input starting with `PK` is read
//! as a whole `.bin` file (zip); any other input is run as the pickle
//! `data.pkl` against ten fixed storages `"0".."9"` (so that mutations reach
//! the pickle machine without having to keep a zip valid). Reading must not
//! panic or abort (run with `-rss_limit_mb` and `-malloc_limit_mb`), and
//! every tensor it returns must have exactly as many values as its shape says.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use burn_rlora::checkpoint::torch::{read_pickle, read_torch, RawTensors};
use libfuzzer_sys::fuzz_target;

fn storages() -> &'static HashMap<String, Vec<u8>> {
    static S: OnceLock<HashMap<String, Vec<u8>>> = OnceLock::new();
    // The reference fixture's storages: 16 or 24 or 36 floats (and bf16 halves).
    S.get_or_init(|| {
        [64usize, 96, 96, 96, 96, 96, 64, 64, 64, 144]
            .iter()
            .enumerate()
            .map(|(i, &n)| (i.to_string(), (0..n).map(|b| b as u8).collect()))
            .collect()
    })
}

fn check(tensors: &RawTensors) {
    for (key, (shape, values)) in tensors {
        if let Ok(values) = values {
            let numel: usize = shape.iter().product();
            assert_eq!(values.len(), numel, "{key}: values and shape disagree");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"PK") {
        if let Ok(tensors) = read_torch(data, "fuzz") {
            check(&tensors);
        }
    } else {
        let total: usize = storages().values().map(Vec::len).sum();
        if let Ok((tensors, work)) = read_pickle(data, storages(), (data.len() + total) as u64) {
            check(&tensors);
            assert!(
                work <= 2 * data.len() as u64 + 2,
                "work {work} for {} bytes",
                data.len()
            );
        }
    }
});
