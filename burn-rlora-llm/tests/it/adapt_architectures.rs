//! Every architecture adapts by PEFT's target names, starts as its base,
//! trains only its adapters, and saves and loads them bit for bit — on the
//! tiny models of `tests/fixtures/decoder_tiny_*.gguf`, on flex and ndarray.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use burn_rlora::adapt::adapted_paths;
use burn_rlora::{AdaptConfig, RLoraConfig, TargetModules};
use burn_rlora_gguf::GgufFile;
use burn_rlora_llm::{
    load_decoder, load_decoder_adapter, save_decoder_adapter, CausalLm, DecoderConfig,
};

const ARCHITECTURES: [&str; 4] = ["llama", "qwen2", "qwen3", "gemma3"];
const TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];
const IDS: [u32; 11] = [296, 17, 42, 8, 8, 0, 49, 21, 5, 250, 133];

fn load<B: Backend>(arch: &str) -> (DecoderConfig, CausalLm<B>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("decoder_tiny_{arch}.gguf"));
    let mut file = GgufFile::open(path).unwrap();
    let config = DecoderConfig::from_gguf(&file).unwrap();
    let model = load_decoder::<B>(&config, &mut file, &Default::default()).unwrap();
    (config, model)
}

fn logits<B: Backend>(m: &CausalLm<B>) -> Vec<f32> {
    let tokens = m.tokens(&[IDS], &Default::default()).unwrap();
    let out: Tensor<B, 3> = m.forward(tokens, None).unwrap();
    out.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn adapt<B: Backend>(m: CausalLm<B>, config: &RLoraConfig) -> CausalLm<B> {
    AdaptConfig::new(config.clone(), TargetModules::names(TARGETS))
        .adapt(m)
        .unwrap()
}

/// Every float parameter by its module path: values and whether it trains.
#[derive(Default)]
struct Params {
    path: Vec<String>,
    found: BTreeMap<String, (Vec<f32>, bool)>,
}

impl<B: Backend> ModuleVisitor<B> for Params {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let values = param
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap();
        let mut key = self.path.join(".");
        while self.found.contains_key(&key) {
            key.push('\'');
        }
        self.found.insert(key, (values, param.is_require_grad()));
    }
}

fn params<B: Backend, M: Module<B>>(m: &M) -> BTreeMap<String, (Vec<f32>, bool)> {
    let mut visitor = Params::default();
    m.visit(&mut visitor);
    visitor.found
}

/// The largest logit difference between each architecture's base and the
/// same model freshly adapted by `config`.
fn identity_at_init(config: &RLoraConfig) -> f32 {
    let mut worst = 0.0f32;
    for arch in ARCHITECTURES {
        let (_, base) = load::<Flex>(arch);
        let want = logits(&base);
        let adapted = adapt(base, config);
        assert_eq!(adapted_paths(&adapted).len(), 7 * layers(arch), "{arch}");
        let got = logits(&adapted);
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        worst = worst.max(diff);
    }
    worst
}

fn layers(arch: &str) -> usize {
    match arch {
        "gemma3" => 7,
        _ => 3,
    }
}

#[test]
fn every_architecture_starts_as_its_base() {
    // LoRA and HydraLoRA start with zero B matrices: bit for bit the base.
    assert_eq!(identity_at_init(&RLoraConfig::lora(4, 8.0)), 0.0);
    assert_eq!(identity_at_init(&RLoraConfig::hydra_lora(2, 8.0, 3)), 0.0);
    // R-LoRA's random heads are cancelled by a frozen compensation pair,
    // exactly in real numbers and to rounding in f32 (README).
    let rlora = identity_at_init(&RLoraConfig::r_lora(2, 8.0, 3));
    eprintln!("R-LoRA at init: max |logit difference| {rlora:.2e}");
    assert!(rlora < 1e-4, "{rlora}");
}

/// One Adam step on the adapted `arch`: exactly the trainable parameters
/// change, and they are the adapters'.
fn one_step_trains_only_adapters<B: AutodiffBackend>(arch: &str) {
    let (_, base) = load::<B>(arch);
    let model = adapt(base, &RLoraConfig::r_lora(2, 8.0, 3));
    let before = params(&model);
    let tokens = model.tokens(&[IDS], &Default::default()).unwrap();
    let logits = model.forward(tokens, None).unwrap();
    let loss = logits.slice([0..1, 0..IDS.len(), 7..8]).mean().neg();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = AdamConfig::new().init().step(0.05, model, grads);
    let after = params(&model);
    assert_eq!(before.len(), after.len(), "{arch}");
    let mut changed = 0;
    for (path, (old, trains)) in &before {
        let (new, _) = &after[path];
        assert_eq!(
            old != new,
            *trains,
            "{arch}: {path} trains {trains} but changed {}",
            old != new
        );
        if *trains {
            assert!(path.contains("adapter"), "{arch}: {path} trains");
            changed += 1;
        }
    }
    assert!(changed >= 7 * layers(arch), "{arch}: {changed} changed");
}

#[test]
fn one_step_on_flex_trains_only_the_adapters() {
    for arch in ARCHITECTURES {
        one_step_trains_only_adapters::<Autodiff<Flex>>(arch);
    }
}

#[test]
fn one_step_on_ndarray_trains_only_the_adapters() {
    for arch in ARCHITECTURES {
        one_step_trains_only_adapters::<Autodiff<NdArray>>(arch);
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-adapt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn saved_adapters_load_back_bit_for_bit() {
    type AD = Autodiff<Flex>;
    for arch in ARCHITECTURES {
        let (_, base) = load::<AD>(arch);
        let plain = base.clone().valid();
        let config = RLoraConfig::r_lora(2, 8.0, 3);
        let model = adapt(base, &config);
        // Train one step so that the adapters are not their initial values.
        let tokens = model.tokens(&[IDS], &Default::default()).unwrap();
        let loss = model.forward(tokens, None).unwrap().mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let trained = AdamConfig::new().init().step(0.05, model, grads).valid();
        let dir = tempdir(arch);
        save_decoder_adapter(&trained, &dir, &config, arch).unwrap();
        let (loaded, _) = load_decoder_adapter(plain, &dir).unwrap();
        let (want, got) = (params(&trained), params(&loaded));
        let adapter_params: Vec<&String> = want.keys().filter(|p| p.contains("adapter")).collect();
        assert!(!adapter_params.is_empty());
        for path in adapter_params {
            assert_eq!(want[path].0, got[path].0, "{arch}: {path}");
        }
        assert_eq!(logits(&loaded), logits(&trained), "{arch}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
