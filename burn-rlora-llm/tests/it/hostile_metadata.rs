//! Model files whose metadata does not describe what they hold: every size
//! the configuration reads is checked against the tensors before anything
//! is allocated from it, and each error names the file and the key. The
//! files are the tiny Llama fixture rewritten with one key changed.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn_rlora_gguf::{GgufFile, GgufWriter, Value};
use burn_rlora_llm::{DecoderConfig, DecoderError, Llm};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoder_tiny_llama.gguf")
}

/// The fixture's bytes with metadata `key` set to `value` (removed when
/// `None`), and without the tensors `drop`.
fn rewritten(key: &str, value: Option<Value>, drop: &[&str]) -> GgufFile {
    let file = GgufFile::open(fixture()).unwrap();
    let mut out = GgufWriter::new();
    let mut set = false;
    for (k, v) in file.metadata().iter() {
        if k == "general.alignment" {
            continue;
        }
        if k == key {
            set = true;
            if let Some(value) = &value {
                out.add_metadata(k, value.clone()).unwrap();
            }
            continue;
        }
        out.add_metadata(k, v.clone()).unwrap();
    }
    if let (false, Some(value)) = (set, value) {
        out.add_metadata(key, value).unwrap();
    }
    for t in file.tensors() {
        if drop.contains(&t.name()) {
            continue;
        }
        let bytes = file.read_raw(t.name()).unwrap();
        out.add_tensor_bytes(t.name(), t.dims(), t.ggml_type(), bytes)
            .unwrap();
    }
    GgufFile::from_bytes(out.to_bytes()).unwrap()
}

/// The error of reading the configuration of the fixture with `key` changed.
fn config_error(key: &str, value: Option<Value>) -> DecoderError {
    DecoderConfig::from_gguf(&rewritten(key, value, &[])).unwrap_err()
}

fn names_key(e: &DecoderError, key: &str) {
    match e {
        DecoderError::Metadata { key: k, .. } => assert_eq!(k, key, "{e}"),
        other => panic!("{key}: {other}"),
    }
}

#[test]
fn the_unchanged_rewrite_reads() {
    let config = DecoderConfig::from_gguf(&rewritten("general.name", None, &[])).unwrap();
    assert_eq!(config.num_hidden_layers, 3);
}

#[test]
fn sizes_the_tensors_do_not_bear_out_are_errors_naming_the_key() {
    // A block count of a billion: refused before any block is allocated.
    let e = config_error("llama.block_count", Some(Value::U32(1_000_000_000)));
    names_key(&e, "llama.block_count");
    assert!(e.to_string().contains("the tensors are of 3"), "{e}");
    names_key(
        &config_error("llama.block_count", Some(Value::U32(2))),
        "llama.block_count",
    );
    names_key(
        &config_error("llama.embedding_length", Some(Value::U32(1 << 30))),
        "llama.embedding_length",
    );
    names_key(
        &config_error("llama.feed_forward_length", Some(Value::U32(65))),
        "llama.feed_forward_length",
    );
    names_key(
        &config_error("llama.attention.head_count_kv", Some(Value::U32(4))),
        "llama.attention.head_count_kv",
    );
    // A vocabulary larger than the embedding.
    let e = config_error("llama.vocab_size", Some(Value::U32(1 << 31)));
    names_key(&e, "llama.vocab_size");
    assert!(e.to_string().contains("300 rows"), "{e}");
}

#[test]
fn missing_and_mistyped_keys_are_named() {
    let e = config_error("llama.block_count", None);
    names_key(&e, "llama.block_count");
    assert!(e.to_string().contains("missing"), "{e}");
    let e = config_error("llama.context_length", Some(Value::String("long".into())));
    names_key(&e, "llama.context_length");
    let e = config_error("llama.rope.freq_base", Some(Value::U32(10_000)));
    names_key(&e, "llama.rope.freq_base");
    let e = config_error("llama.attention.head_count", Some(Value::I32(-4)));
    names_key(&e, "llama.attention.head_count");
}

#[test]
fn what_is_not_built_is_refused_by_name() {
    let e = config_error("general.architecture", Some(Value::String("mamba".into())));
    assert!(
        matches!(&e, DecoderError::UnsupportedArchitecture { architecture, .. } if architecture == "mamba"),
        "{e}"
    );
    assert!(e.to_string().contains("llama, qwen2, qwen3, gemma3"), "{e}");
    names_key(
        &config_error(
            "llama.rope.scaling.type",
            Some(Value::String("yarn".into())),
        ),
        "llama.rope.scaling.type",
    );
    names_key(
        &config_error("llama.expert_count", Some(Value::U32(8))),
        "llama.expert_count",
    );
    names_key(
        &config_error("llama.rope.dimension_count", Some(Value::U32(4))),
        "llama.rope.dimension_count",
    );
}

#[test]
fn a_missing_tensor_is_named_and_nothing_loads() {
    let file = rewritten("general.name", None, &["blk.1.ffn_up.weight"]);
    let config = DecoderConfig::from_gguf(&file).unwrap();
    let mut file = file;
    let e = burn_rlora_llm::load_decoder::<NdArray>(&config, &mut file, &Default::default())
        .unwrap_err();
    assert!(
        matches!(&e, DecoderError::MissingTensor { name, .. } if name == "blk.1.ffn_up.weight"),
        "{e}"
    );
    // The first block's projections are checked with the configuration.
    let file = rewritten("general.name", None, &["blk.0.attn_q.weight"]);
    assert!(matches!(
        DecoderConfig::from_gguf(&file),
        Err(DecoderError::MissingTensor { .. })
    ));
}

#[test]
fn loading_names_the_file() {
    let dir = std::env::temp_dir().join(format!("llm-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.gguf");
    let file = GgufFile::open(fixture()).unwrap();
    let mut out = GgufWriter::new();
    for (k, v) in file.metadata().iter() {
        if k == "general.alignment" {
            continue;
        }
        let v = match k {
            "llama.block_count" => Value::U32(77),
            _ => v.clone(),
        };
        out.add_metadata(k, v).unwrap();
    }
    for t in file.tensors() {
        out.add_tensor_bytes(
            t.name(),
            t.dims(),
            t.ggml_type(),
            file.read_raw(t.name()).unwrap(),
        )
        .unwrap();
    }
    out.write_file(&path).unwrap();
    let e = Llm::<NdArray>::load(&path, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("big.gguf"), "{e}");
    assert!(e.to_string().contains("llama.block_count"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
