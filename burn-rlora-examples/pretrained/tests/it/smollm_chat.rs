//! `smollm-chat` end to end on the real SmolLM2 and Gemma 3 files: a
//! sensible greedy continuation, the same answer with a fresh adapter,
//! another one with a trained adapter, chat with a given template on a
//! model without one, and hostile model files refused with exit status 1.
//!
//! Needs `data/smollm2/` and `data/gemma3/` (`bash scripts/fetch-data.sh`);
//! skipped without them unless `BURN_RLORA_REQUIRE_DATA` is set.

#![cfg(feature = "flex")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn_rlora::{AdaptConfig, RLoraConfig, TargetModules};
use burn_rlora_llm::{save_decoder_adapter, CausalLm, Llm};

use crate::common;

type AD = Autodiff<Flex>;

const PROMPT: &str = "The capital of France is";

fn chat(model: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smollm-chat"))
        .arg("--model")
        .arg(model)
        .args(["--raw", "--max-new-tokens", "6"])
        .args(extra)
        .output()
        .expect("smollm-chat runs")
}

fn answer(model: &Path, extra: &[&str]) -> String {
    let out = chat(model, extra);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "smollm-chat failed: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smollm-chat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn adapter_config() -> RLoraConfig {
    RLoraConfig::r_lora(4, 32.0, 5).with_dropout(0.0)
}

/// `model` after a few Adam steps teaching it that the capital is Berlin.
fn taught(model: CausalLm<AD>, ids: &[u32]) -> CausalLm<AD> {
    let device = Default::default();
    let mut optim = AdamConfig::new().init();
    let mut model = model;
    let (input, target) = (&ids[..ids.len() - 1], &ids[1..]);
    for _ in 0..3 {
        let tokens = model.tokens(&[input], &device).unwrap();
        let logits = model.forward(tokens, None).unwrap();
        let [_, s, v] = logits.dims();
        let targets = burn::tensor::Tensor::<AD, 1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(target.iter().map(|&t| t as i64).collect(), [s]),
            &device,
        );
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.reshape([s, v]), targets);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    model
}

#[test]
fn gemma_continues_raw_text_chats_with_a_given_template_and_takes_an_adapter() {
    let Some(path) = common::gemma3_or_skip("smollm-chat on gemma") else {
        return;
    };
    // A base model: raw text is continued (after its BOS)...
    let code = "def fibonacci(n):\n    ";
    let base = answer(&path, &[code]);
    assert!(base.starts_with(&format!("{code}if n")), "{base:?}");
    // ... and a chat turn needs a template.
    let out = Command::new(env!("CARGO_BIN_EXE_smollm-chat"))
        .arg("--model")
        .arg(&path)
        .args(["--max-new-tokens", "4", "Hello"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has no chat template"), "{stderr}");
    let dir = tempdir("gemma");
    std::fs::create_dir_all(&dir).unwrap();
    let template = dir.join("turns.jinja");
    std::fs::write(&template, burn_rlora_pretrained::smollm::GEMMA_TURNS).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smollm-chat"))
        .arg("--model")
        .arg(&path)
        .arg("--chat-template")
        .arg(&template)
        .args(["--max-new-tokens", "4", "Name a colour."])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!out.stdout.is_empty());

    // A fresh adapter on every projection answers exactly as the base.
    let lm = Llm::<AD>::load(&path, &Default::default()).expect("the model loads");
    let targets = TargetModules::names([
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]);
    let adapted = AdaptConfig::new(adapter_config(), targets)
        .adapt(lm.model)
        .unwrap();
    let fresh = dir.join("adapter");
    save_decoder_adapter(&adapted.valid(), &fresh, &adapter_config(), "gemma-3-270m").unwrap();
    let with_adapter = answer(&path, &["--adapter", fresh.to_str().unwrap(), code]);
    assert_eq!(with_adapter, base, "a fresh adapter answers as the base");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn chat_continues_greedily_and_an_adapter_changes_it_only_once_trained() {
    let Some(path) = common::smollm2_or_skip("smollm-chat") else {
        return;
    };
    let base = answer(&path, &[PROMPT]);
    assert!(
        base.starts_with("The capital of France is Paris."),
        "{base:?}"
    );

    let lm = Llm::<AD>::load(&path, &Default::default()).expect("the model loads");
    let targets = TargetModules::names(["gate_proj", "up_proj", "down_proj"]);
    let adapted = AdaptConfig::new(adapter_config(), targets)
        .adapt(lm.model)
        .unwrap();
    let fresh = tempdir("fresh");
    save_decoder_adapter(
        &adapted.valid(),
        &fresh,
        &adapter_config(),
        "SmolLM2-135M-Instruct",
    )
    .unwrap();
    let fresh_answer = answer(&path, &["--adapter", fresh.to_str().unwrap(), PROMPT]);
    assert_eq!(fresh_answer, base, "a fresh adapter is the identity");

    let ids = lm
        .tokenizer
        .encode("The capital of France is Berlin.")
        .unwrap();
    let trained = tempdir("trained");
    let model = taught(adapted, &ids);
    save_decoder_adapter(
        &model.valid(),
        &trained,
        &adapter_config(),
        "SmolLM2-135M-Instruct",
    )
    .unwrap();
    let trained_answer = answer(&path, &["--adapter", trained.to_str().unwrap(), PROMPT]);
    assert_ne!(trained_answer, base, "a trained adapter changes the answer");
    for dir in [fresh, trained] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn hostile_model_files_exit_with_status_1_and_a_message() {
    let dir = tempdir("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    let mut file = |name: &str, bytes: &[u8], expect: &'static str| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        cases.push((path, expect));
    };
    file("empty.gguf", b"", "empty.gguf");
    file("magic.gguf", b"GGML\x03\0\0\0", "magic.gguf");
    let mut huge = b"GGUF".to_vec();
    huge.extend(3u32.to_le_bytes());
    huge.extend(u64::MAX.to_le_bytes());
    huge.extend(0u64.to_le_bytes());
    file("huge-count.gguf", &huge, "huge-count.gguf");
    let mut no_arch = b"GGUF".to_vec();
    no_arch.extend(3u32.to_le_bytes());
    no_arch.extend(0u64.to_le_bytes());
    no_arch.extend(0u64.to_le_bytes());
    file("no-metadata.gguf", &no_arch, "general.architecture");
    cases.push((dir.clone(), "hostile"));
    cases.push((dir.join("missing.gguf"), "missing.gguf"));
    for (path, expect) in cases {
        let out = chat(&path, &[PROMPT]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", path.display());
        assert!(stderr.contains(expect), "{}: {stderr}", path.display());
        assert!(!stderr.contains("panicked"), "{}: {stderr}", path.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_half_precision_base_answers_alike_where_the_backend_holds_it() {
    let Some(path) = common::smollm2_or_skip("smollm-chat --base-dtype") else {
        return;
    };
    for dtype in ["f16", "bf16"] {
        let text = answer(&path, &["--base-dtype", dtype, PROMPT]);
        assert!(
            text.starts_with("The capital of France is Paris"),
            "{dtype}: {text:?}"
        );
    }
    if cfg!(feature = "ndarray") {
        let out = chat(
            &path,
            &["--backend", "ndarray", "--base-dtype", "f16", PROMPT],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("--base-dtype f16") && stderr.contains("does not support"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn bad_options_are_refused_before_loading() {
    for args in [
        &["--temperature", "-1", PROMPT][..],
        &["--top-p", "0", "--temperature", "1", PROMPT],
        &["--max-new-tokens", "0", PROMPT],
        &["--backend", "abacus", PROMPT],
        &["--base-dtype", "f8", PROMPT],
    ] {
        let out = chat(Path::new("does-not-matter.gguf"), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.is_empty(), "{args:?}");
    }
}
