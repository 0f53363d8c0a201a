//! Structure-aware fuzzing of `adapter_config.json` against a small valid
//! tensor file: every number of the config (rank, heads, alpha, dropout,
//! format version, the full layer config) is drawn from small, huge,
//! negative, fractional and non-numeric values, and the tensor file holds a
//! drawn number of heads and shapes. Loading must not panic or allocate from
//! the config's numbers; what loads must agree with its config and round-trip.
#![no_main]

use std::collections::BTreeMap;

use burn::tensor::DType;
use burn_rlora::checkpoint::format::{HostTensor, ModuleTensors};
use burn_rlora::checkpoint::{AdapterConfig, AdapterFile, LoadOptions};
use burn_rlora::RLoraConfig;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

#[derive(Arbitrary, Debug)]
enum Num {
    Small(u8),
    Huge(u64),
    Negative(i64),
    Fraction(f64),
    Text,
    Null,
}

impl Num {
    fn json(&self) -> Value {
        match self {
            Num::Small(v) => json!(v),
            Num::Huge(v) => json!(v),
            Num::Negative(v) => json!(v),
            Num::Fraction(v) => json!(v),
            Num::Text => json!("4"),
            Num::Null => Value::Null,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    r: Num,
    lora_nums: Num,
    alpha: Num,
    dropout: Num,
    format: Option<Num>,
    rlora: Option<(Num, Num, bool)>,
    use_rslora: bool,
    listed: Option<Vec<String>>,
    heads_in_file: u8,
    d_in: u8,
    d_out: u8,
    file_r: u8,
    with_route: bool,
    with_pair: bool,
    strict: bool,
}

fn tensor(rows: usize, cols: usize, seed: usize) -> HostTensor {
    HostTensor::new(
        vec![rows, cols],
        (0..rows * cols).map(|k| (k + seed) as f64 * 0.25).collect(),
    )
}

fuzz_target!(|input: Input| {
    let (d_in, d_out, r) = (
        usize::from(input.d_in % 6) + 1,
        usize::from(input.d_out % 6) + 1,
        usize::from(input.file_r % 4) + 1,
    );
    let n = usize::from(input.heads_in_file % 5);
    let module = ModuleTensors {
        a: tensor(r, d_in, 0),
        heads: (0..n).map(|i| tensor(d_out, r, i + 1)).collect(),
        route: input.with_route.then(|| tensor(n.max(1), d_in, 7)),
        compensation: input
            .with_pair
            .then(|| (tensor(r, d_in, 3), tensor(d_out, r, 4))),
    };
    let config = AdapterConfig::new(&RLoraConfig::lora(r, 8.0), vec!["m".into()]);
    let file = AdapterFile {
        config,
        modules: BTreeMap::from([("m".to_string(), module)]),
        ignored_keys: Vec::new(),
    };
    // encode() rewrites the config; only its tensor bytes are used.
    let Ok((_, tensors)) = file.encode(DType::F32) else {
        return;
    };
    let mut json = json!({
        "r": input.r.json(),
        "lora_alpha": input.alpha.json(),
        "lora_dropout": input.dropout.json(),
        "lora_nums": input.lora_nums.json(),
        "target_modules": ["m"],
        "use_rslora": input.use_rslora,
    });
    if let Some(v) = &input.format {
        json["burn_rlora_format"] = v.json();
    }
    if let Some((rank, heads, softmax)) = &input.rlora {
        let mut c = serde_json::to_value(RLoraConfig::lora(r, 8.0)).unwrap();
        c["rank"] = rank.json();
        c["num_heads"] = heads.json();
        if *softmax {
            c["router"] = json!("Softmax");
        }
        json["rlora"] = c;
    }
    if let Some(listed) = &input.listed {
        json["target_module_paths"] = json!(listed);
    }
    let bytes = serde_json::to_vec(&json).unwrap();
    let Ok(loaded) = AdapterFile::from_bytes(&bytes, &tensors, &LoadOptions::new().with_strict(input.strict)) else {
        return;
    };
    for m in loaded.modules.values() {
        assert_eq!(
            m.heads.len(),
            loaded.config.lora_nums,
            "heads and lora_nums disagree"
        );
        let _ = (m.dims(), m.num_trainable());
    }
    let (json, again) = loaded.encode(DType::F64).expect("encode what loaded");
    let reloaded = AdapterFile::from_bytes(json.as_bytes(), &again, &LoadOptions::new()).expect("reload");
    assert_eq!(
        reloaded.modules, loaded.modules,
        "round trip changed the tensors"
    );
});
