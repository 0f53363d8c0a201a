//! Fuzz reading a reference adapter with the compensation step: the input is
//! `[len as u32 little-endian][trained adapter_model.bin: len bytes][initial
//! adapter_model.bin]`, read with the reference fixture's config. Both reads
//! and `add_reference_compensation` must not panic; whatever is accepted
//! must encode and reload strictly to the same tensors.
#![no_main]

use burn::tensor::DType;
use burn_rlora::checkpoint::reference::{
    add_reference_compensation, reference_from_bytes, TensorFormat,
};
use burn_rlora::checkpoint::{AdapterFile, LoadOptions};
use libfuzzer_sys::fuzz_target;

const CONFIG: &[u8] =
    include_bytes!("../../burn-rlora/tests/fixtures/reference/trained/adapter_config.json");

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let rest = &data[4..];
    let (trained, initial) = rest.split_at(len.min(rest.len()));
    let options = LoadOptions::new();
    let Ok(mut file) = reference_from_bytes(CONFIG, trained, TensorFormat::TorchZip, &options) else {
        return;
    };
    let Ok(init) = reference_from_bytes(CONFIG, initial, TensorFormat::TorchZip, &options) else {
        return;
    };
    if add_reference_compensation(&mut file, &init).is_err() {
        return;
    }
    if file.check_finite().is_err() {
        return;
    }
    let (json, bytes) = file.encode(DType::F64).expect("encode an accepted adapter");
    let again = AdapterFile::from_bytes(json.as_bytes(), &bytes, &LoadOptions::new()).expect("reload");
    assert_eq!(
        again.modules, file.modules,
        "round trip changed the tensors"
    );
});
