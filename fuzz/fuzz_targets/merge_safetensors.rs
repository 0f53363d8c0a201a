//! Fuzz `merge_safetensors` with arbitrary base files: the input is
//! `[flags][base model safetensors bytes]`. The adapter is fixed (module `m`,
//! 4 -> 3, rank 2, one head, and with flag bit 0 a second module `p.m` that
//! collides with `m` after removing the prefix `p.`). Merging must not
//! panic; what it accepts must be a valid safetensors file with the base's
//! tensor names.
#![no_main]

use std::collections::BTreeMap;

use burn_rlora::checkpoint::format::{HostTensor, ModuleTensors};
use burn_rlora::checkpoint::{merge_safetensors, AdapterConfig, AdapterFile};
use burn_rlora::RLoraConfig;
use libfuzzer_sys::fuzz_target;
use safetensors::SafeTensors;

fn module() -> ModuleTensors {
    let t = |rows: usize, cols: usize| {
        HostTensor::new(
            vec![rows, cols],
            (0..rows * cols).map(|k| k as f64 * 0.5 - 1.0).collect(),
        )
    };
    ModuleTensors {
        a: t(2, 4),
        heads: vec![t(3, 2)],
        route: None,
        compensation: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, base)) = data.split_first() else {
        return;
    };
    let mut modules = BTreeMap::from([("m".to_string(), module())]);
    if flags & 1 != 0 {
        modules.insert("p.m".into(), module());
    }
    let names = modules.keys().cloned().collect();
    let adapter = AdapterFile {
        config: AdapterConfig::new(&RLoraConfig::lora(2, 4.0), names),
        modules,
        ignored_keys: Vec::new(),
    };
    let prefix = if flags & 2 != 0 { "p." } else { "" };
    if let Ok(merged) = merge_safetensors(&adapter, base, prefix) {
        let merged = SafeTensors::deserialize(&merged).expect("the merged file is valid");
        let base = SafeTensors::deserialize(base).expect("an accepted base is valid");
        let mut a = merged.names();
        let mut b = base.names();
        a.sort();
        b.sort();
        assert_eq!(a, b, "the merge changed the set of tensors");
    }
});
