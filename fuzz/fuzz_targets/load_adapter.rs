//! Fuzz the adapter loader: the input is `[len_lo, len_hi, config JSON (len bytes), safetensors bytes]`.
//! Loading must never panic; whatever it accepts must encode and load back identically.
#![no_main]

use burn::tensor::DType;
use burn_rlora::checkpoint::{AdapterFile, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let len = u16::from_le_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    let (config, tensors) = rest.split_at(len.min(rest.len()));
    for strict in [true, false] {
        if let Ok(file) = AdapterFile::from_bytes(config, tensors, &LoadOptions::new().with_strict(strict)) {
            // Whatever loads must round-trip through our own writer.
            let (json, bytes) = file.encode(DType::F64).expect("encode an accepted adapter");
            let again = AdapterFile::from_bytes(json.as_bytes(), &bytes, &LoadOptions::new())
                .expect("reload what we wrote");
            let bits = |f: &AdapterFile| -> Vec<(String, Vec<u64>)> {
                f.modules
                    .iter()
                    .map(|(name, m)| {
                        let mut all: Vec<u64> = m.a.data.iter().map(|v| v.to_bits()).collect();
                        for h in &m.heads {
                            all.extend(h.data.iter().map(|v| v.to_bits()));
                        }
                        if let Some(r) = &m.route {
                            all.extend(r.data.iter().map(|v| v.to_bits()));
                        }
                        if let Some((a0, b0)) = &m.compensation {
                            all.extend(a0.data.iter().chain(&b0.data).map(|v| v.to_bits()));
                        }
                        (name.clone(), all)
                    })
                    .collect()
            };
            assert_eq!(bits(&again), bits(&file), "round trip changed the tensors");
        }
    }
});
