//! Tokenizers loaded from Hugging Face's `tokenizer.json`.
//!
//! A tokenizer built from a GGUF vocabulary, saved as a `tokenizer.json`
//! with a `tokenizer_config.json` beside it, loads back and tokenizes the
//! reference texts of `tests/fixtures/tokenizer_references.json` as the GGUF
//! one does (the tiny SentencePiece vocabulary runs always; SmolLM2's and
//! Gemma 3's when fetched). MiniLM's `tokenizer.json` (a BERT WordPiece
//! tokenizer, `data/minilm/`) loads with special tokens given by hand; its
//! ids are those of Hugging Face's `tokenizers` (Python) for the same file.

use std::path::{Path, PathBuf};

use burn_rlora_gguf::GgufFile;
use burn_rlora_llm::tokenizer::{token_type, TokenizerConfig};
use burn_rlora_llm::{ChatTurn, Tokenizer, TokenizerError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    vocabularies: Vec<Vocabulary>,
}

#[derive(Deserialize)]
struct Vocabulary {
    name: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
}

/// The reference texts of vocabulary `name`.
fn texts(name: &str) -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer_references.json");
    let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vocabulary = fixture
        .vocabularies
        .into_iter()
        .find(|v| v.name == name)
        .unwrap();
    vocabulary.cases.into_iter().map(|c| c.text).collect()
}

/// A directory of its own under the system's temporary directory, removed
/// when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "burn-rlora-llm-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `gguf`'s tokenizer saved as a `tokenizer.json` with its special tokens in
/// a `tokenizer_config.json`, loaded back, and checked against the GGUF one
/// on `texts`.
fn round_trip(gguf: &Path, name: &str, texts: &[String]) {
    let tok = Tokenizer::from_gguf(&GgufFile::open(gguf).unwrap()).unwrap();
    let dir = TempDir::new(name);
    let json = dir.0.join("tokenizer.json");
    tok.inner().save(&json, false).unwrap();
    let config = serde_json::json!({
        "bos_token": tok.bos_token(),
        "eos_token": {"content": tok.eos_token(), "special": true},
        "pad_token": null,
        "add_bos_token": tok.add_bos(),
        "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}",
    });
    std::fs::write(dir.0.join("tokenizer_config.json"), config.to_string()).unwrap();
    let loaded = Tokenizer::from_tokenizer_json(&json).unwrap();
    assert_eq!(loaded.vocab_size(), tok.vocab_size(), "{name}");
    assert_eq!(
        (loaded.bos(), loaded.eos()),
        (tok.bos(), tok.eos()),
        "{name}"
    );
    assert_eq!(loaded.add_bos(), tok.add_bos(), "{name}");
    assert_eq!(loaded.pad(), None);
    assert_eq!(
        loaded.chat_prompt(&[ChatTurn::user("Hi")], false).unwrap(),
        format!("{}Hi{}", tok.bos_token(), tok.eos_token())
    );
    for id in 0..tok.vocab_size() as u32 {
        assert_eq!(
            loaded.is_special(id),
            tok.is_special(id),
            "{name}: token {id}"
        );
    }
    for text in texts {
        let ids = tok.encode(text).unwrap();
        assert_eq!(loaded.encode(text).unwrap(), ids, "{name}: {text:?}");
        for skip in [false, true] {
            let decoded = loaded.decode(&ids, skip).unwrap();
            assert_eq!(decoded, tok.decode(&ids, skip).unwrap(), "{name}: {text:?}");
            let mut stream = loaded.stream_decoder(skip);
            let mut streamed = String::new();
            for &id in &ids {
                streamed.extend(stream.step(id).unwrap());
            }
            streamed.extend(stream.finish());
            assert_eq!(streamed, decoded, "{name}: {text:?}");
        }
    }
}

#[test]
fn a_sentencepiece_tokenizer_round_trips_through_tokenizer_json() {
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer_spm_tiny.gguf");
    round_trip(&gguf, "spm-tiny", &texts("spm-tiny"));
}

#[test]
fn real_tokenizers_round_trip_through_tokenizer_json() {
    for (file, name, vocabulary) in [
        (
            "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "smollm2",
            "smollm2-qwen2",
        ),
        ("gemma3/gemma-3-270m-q4_k_m.gguf", "gemma3", "gemma3"),
    ] {
        let Some(path) = crate::common::model_or_skip("tokenizer.json round trip", file) else {
            continue;
        };
        round_trip(&path, name, &texts(vocabulary));
    }
}

#[test]
fn minilm_wordpiece_tokenizer_loads_with_special_tokens_given() {
    let Some(path) = crate::common::model_or_skip("MiniLM tokenizer.json", "minilm/tokenizer.json")
    else {
        return;
    };
    // No tokenizer_config.json beside it: BOS and EOS are unknown.
    let e = Tokenizer::from_tokenizer_json(&path).unwrap_err();
    assert!(
        matches!(e, TokenizerError::MissingSpecialToken { name: "bos_token" }),
        "{e}"
    );
    let inner = tokenizers::Tokenizer::from_file(&path).unwrap();
    let config = TokenizerConfig {
        bos_token: Some("[CLS]".into()),
        eos_token: Some("[SEP]".into()),
        unk_token: Some("[UNK]".into()),
        pad_token: Some("[PAD]".into()),
        ..TokenizerConfig::default()
    };
    let tok = Tokenizer::from_hf(inner.clone(), &config).unwrap();
    assert_eq!(
        (tok.bos(), tok.eos(), tok.unknown(), tok.pad()),
        (101, 102, Some(100), Some(0))
    );
    assert_eq!(tok.vocab_size(), 30_522);
    assert_eq!(tok.token_type(101), Some(token_type::CONTROL));
    assert_eq!(tok.token_type(7592), Some(token_type::NORMAL));
    // Its post-processor frames a text with [CLS] and [SEP].
    assert!(tok.add_bos() && tok.add_eos());
    // Ids as Python's `tokenizers` gives them; no padding to 128.
    for (text, ids, decoded) in [
        (
            "Hello, world!",
            vec![7592, 1010, 2088, 999],
            "hello, world!",
        ),
        (
            "Café naïve über",
            vec![7668, 15743, 19169],
            "cafe naive uber",
        ),
        (
            "tokenization of unaffable words",
            vec![19204, 3989, 1997, 14477, 20961, 3468, 2616],
            "tokenization of unaffable words",
        ),
    ] {
        assert_eq!(tok.encode(text).unwrap(), ids, "{text:?}");
        assert_eq!(
            tok.encode_with_special_tokens(text).unwrap(),
            [&[101], &ids[..], &[102]].concat()
        );
        assert_eq!(tok.decode(&ids, false).unwrap(), decoded);
        let mut stream = tok.stream_decoder(true);
        let mut streamed = String::new();
        for &id in &ids {
            streamed.extend(stream.step(id).unwrap());
        }
        streamed.extend(stream.finish());
        assert_eq!(streamed, decoded, "{text:?}");
    }
    // A special token the vocabulary lacks.
    let e = Tokenizer::from_hf(
        inner,
        &TokenizerConfig {
            eos_token: Some("</s>".into()),
            ..config
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, TokenizerError::UnknownSpecialToken { name: "eos_token", ref token } if token == "</s>"),
        "{e}"
    );
}

#[test]
fn unreadable_files_are_named_in_the_error() {
    let dir = TempDir::new("bad-tokenizer-json");
    let missing = dir.0.join("tokenizer.json");
    let e = Tokenizer::from_tokenizer_json(&missing).unwrap_err();
    assert!(
        matches!(e, TokenizerError::Read { ref path, .. } if path == &missing),
        "{e}"
    );
    std::fs::write(&missing, "{\"not\": \"a tokenizer\"}").unwrap();
    let e = Tokenizer::from_tokenizer_json(&missing).unwrap_err();
    assert!(
        matches!(e, TokenizerError::BadFile { ref path, .. } if path == &missing),
        "{e}"
    );
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
    let e = Tokenizer::from_tokenizer_json(&dir.0).unwrap_err();
    assert!(matches!(e, TokenizerError::BadFile { .. }), "{e}");
    // A bad tokenizer_config.json beside a good tokenizer.json.
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer_spm_tiny.gguf");
    let tok = Tokenizer::from_gguf(&GgufFile::open(gguf).unwrap()).unwrap();
    tok.inner().save(&missing, false).unwrap();
    let config = dir.0.join("tokenizer_config.json");
    std::fs::write(&config, "{\"bos_token\": 3}").unwrap();
    let e = Tokenizer::from_tokenizer_json(&missing).unwrap_err();
    assert!(
        matches!(e, TokenizerError::BadFile { ref path, .. } if path == &config),
        "{e}"
    );
    assert!(e.to_string().contains("bos_token"), "{e}");
}
