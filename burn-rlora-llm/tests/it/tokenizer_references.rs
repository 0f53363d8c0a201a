//! Tokenizers built from real and hand-made GGUF vocabularies, against
//! llama.cpp's ids and decodings.
//!
//! `tests/fixtures/tokenizer_references.json` (written by
//! `scripts/tokenizer-fixtures.py`) holds, for each vocabulary, at least 30
//! texts (spaces, tabs, line breaks, numbers, accents, CJK, emoji, code,
//! mixed scripts, control and user-defined tokens written in the text, the
//! empty string, characters outside the vocabulary) with llama.cpp's ids and
//! its decoding of them, and transformers' where they differ. The
//! vocabularies: `spm-tiny` (a Llama 2-style SentencePiece vocabulary in the
//! committed `tests/fixtures/tokenizer_spm_tiny.gguf`, run always), Gemma 3's
//! (`data/gemma3/`), the same with a space prefix, and SmolLM2's byte-level
//! vocabulary with the pre-tokenizers of Llama 3, Qwen2 and llama.cpp's
//! default (`data/smollm2/`). Those of the data directory are skipped when
//! the file has not been fetched (`bash scripts/fetch-data.sh`), unless
//! `BURN_RLORA_REQUIRE_DATA` is set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn_rlora_gguf::GgufFile;
use burn_rlora_llm::tokenizer::token_type;
use burn_rlora_llm::{ChatTemplate, Tokenizer, TokenizerError, TokenizerSpec};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    vocabularies: Vec<Vocabulary>,
}

#[derive(Deserialize)]
struct Vocabulary {
    name: String,
    source: Source,
    overrides: Overrides,
    vocab_size: usize,
    add_space_prefix: bool,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Source {
    /// A file under the data directory.
    Data(String),
    /// A file among the test fixtures.
    Fixture(String),
}

/// The metadata the reference read in place of the file's.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Overrides {
    pre: Option<String>,
    add_space_prefix: Option<bool>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture() -> Fixture {
    let path = fixtures().join("tokenizer_references.json");
    let text = std::fs::read_to_string(&path).expect("the committed fixture reads");
    serde_json::from_str(&text).expect("the fixture parses")
}

/// The GGUF file of `vocabulary`, or `None` (after saying why the test is
/// skipped) when it is a data file not fetched.
fn gguf_path(test: &str, vocabulary: &Vocabulary) -> Option<PathBuf> {
    match &vocabulary.source {
        Source::Data(relative) => crate::common::model_or_skip(test, relative),
        Source::Fixture(name) => Some(fixtures().join(name)),
    }
}

/// The spec of `vocabulary`'s file, with the fixture's overrides.
fn spec_of(path: &Path, vocabulary: &Vocabulary) -> TokenizerSpec {
    let file = GgufFile::open(path).expect("the GGUF file opens");
    let mut spec = TokenizerSpec::from_gguf(&file).expect("the tokenizer metadata reads");
    if let Some(pre) = &vocabulary.overrides.pre {
        spec.pre.clone_from(pre);
    }
    if let Some(prefix) = vocabulary.overrides.add_space_prefix {
        spec.add_space_prefix = Some(prefix);
    }
    spec
}

/// Builds `spec`, saying how long it took.
fn build(test: &str, spec: TokenizerSpec) -> Tokenizer {
    let start = Instant::now();
    let tok = Tokenizer::from_spec(spec).expect("the spec builds");
    let _ = writeln!(
        std::io::stderr(),
        "{test}: tokenizer of {} tokens built from the spec in {:.0} ms",
        tok.vocab_size(),
        start.elapsed().as_secs_f64() * 1e3
    );
    tok
}

/// The vocabulary named `name` of the fixture, built, or `None` if its file
/// is missing.
fn reference(name: &str) -> Option<(Vocabulary, Tokenizer)> {
    let vocabulary = fixture()
        .vocabularies
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vocabulary {name} in the fixture"));
    let test = format!("tokenizer references ({name})");
    let path = gguf_path(&test, &vocabulary)?;
    let tok = build(&test, spec_of(&path, &vocabulary));
    Some((vocabulary, tok))
}

/// Checks every case of `vocabulary`: the ids, the decoding, the stream
/// decoding, and (where the ids allow) the text back.
fn check_cases(vocabulary: &Vocabulary, tok: &Tokenizer) {
    let name = &vocabulary.name;
    assert!(
        vocabulary.cases.len() >= 30,
        "{name}: {} texts",
        vocabulary.cases.len()
    );
    assert!(vocabulary.cases.iter().any(|c| c.text.is_empty()));
    assert_eq!(tok.vocab_size(), vocabulary.vocab_size, "{name}");
    assert_eq!(
        tok.add_space_prefix(),
        vocabulary.add_space_prefix,
        "{name}"
    );
    let mut wrong = Vec::new();
    for case in &vocabulary.cases {
        let ids = tok.encode(&case.text).unwrap();
        if ids != case.ids {
            wrong.push(format!(
                "{:?}:\n  got      {ids:?}\n  expected {:?}",
                case.text, case.ids
            ));
            continue;
        }
        let decoded = tok.decode(&ids, false).unwrap();
        if decoded != case.decoded {
            wrong.push(format!(
                "{:?}: decoded as {decoded:?}, expected {:?}",
                case.text, case.decoded
            ));
        }
        for skip in [false, true] {
            let mut stream = tok.stream_decoder(skip);
            let mut text = String::new();
            for &id in &ids {
                text.extend(stream.step(id).unwrap());
            }
            text.extend(stream.finish());
            assert_eq!(
                text,
                tok.decode(&ids, skip).unwrap(),
                "{name}: {:?}",
                case.text
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: {} of {} texts differ from llama.cpp:\n{}",
        wrong.len(),
        vocabulary.cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_fixture_covers_the_vocabularies() {
    let names: Vec<String> = fixture().vocabularies.into_iter().map(|v| v.name).collect();
    for name in [
        "spm-tiny",
        "gemma3",
        "gemma3-space-prefix",
        "smollm2-llama-bpe",
        "smollm2-qwen2",
        "smollm2-default",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
}

#[test]
fn tiny_sentencepiece_vocabulary_matches_llama_cpp() {
    let (vocabulary, tok) = reference("spm-tiny").expect("a committed fixture");
    // Llama 2's layout, and llama.cpp's defaults for what the file leaves out.
    assert_eq!((tok.unknown(), tok.bos(), tok.eos()), (Some(0), 1, 2));
    assert_eq!((tok.bos_token(), tok.eos_token()), ("<s>", "</s>"));
    assert!(tok.add_bos() && !tok.add_eos() && tok.add_space_prefix());
    assert_eq!(tok.token_type(0), Some(token_type::UNKNOWN));
    assert_eq!(
        tok.token_to_id("<0x0A>").map(|id| tok.token_type(id)),
        Some(Some(token_type::BYTE))
    );
    let think = tok.token_to_id("<think>").expect("a user-defined token");
    assert_eq!(tok.token_type(think), Some(token_type::USER_DEFINED));
    assert_eq!(tok.encode_with_special_tokens("Hello").unwrap()[0], 1);
    check_cases(&vocabulary, &tok);
}

#[test]
fn gemma3_vocabulary_matches_llama_cpp() {
    let Some((vocabulary, tok)) = reference("gemma3") else {
        return;
    };
    assert_eq!(tok.vocab_size(), 262_144);
    assert_eq!(
        (tok.bos(), tok.eos(), tok.unknown(), tok.pad()),
        (2, 1, Some(3), Some(0))
    );
    assert_eq!((tok.bos_token(), tok.eos_token()), ("<bos>", "<eos>"));
    assert!(tok.add_bos() && !tok.add_eos() && !tok.add_space_prefix());
    // This file has no chat template.
    assert!(tok.chat_template().is_none());
    let turn = tok.token_to_id("<start_of_turn>").expect("a control token");
    assert!(tok.is_special(turn));
    check_cases(&vocabulary, &tok);
}

#[test]
fn gemma3_vocabulary_with_a_space_prefix_matches_llama_cpp() {
    let Some((vocabulary, tok)) = reference("gemma3-space-prefix") else {
        return;
    };
    assert!(tok.add_space_prefix());
    check_cases(&vocabulary, &tok);
}

#[test]
fn llama3_pre_tokenizer_on_smollm2_vocabulary_matches_llama_cpp() {
    let Some((vocabulary, tok)) = reference("smollm2-llama-bpe") else {
        return;
    };
    // llama.cpp adds BOS for Llama 3's pre-tokenizer unless the file says
    // otherwise, and SmolLM2's says no.
    assert!(!tok.add_bos());
    check_cases(&vocabulary, &tok);
}

#[test]
fn qwen2_pre_tokenizer_on_smollm2_vocabulary_matches_llama_cpp() {
    let Some((vocabulary, tok)) = reference("smollm2-qwen2") else {
        return;
    };
    assert!(!tok.add_bos());
    check_cases(&vocabulary, &tok);
}

#[test]
fn default_pre_tokenizer_on_smollm2_vocabulary_matches_llama_cpp() {
    let Some((vocabulary, tok)) = reference("smollm2-default") else {
        return;
    };
    check_cases(&vocabulary, &tok);
}

#[test]
fn gemma3_reads_in_one_call_and_renders_a_given_chat_template() {
    let Some(path) =
        crate::common::model_or_skip("Gemma 3 from GGUF", "gemma3/gemma-3-270m-q4_k_m.gguf")
    else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let turns = [burn_rlora_llm::ChatTurn::user("Hi")];
    // The file has no template: raw continuation only, until one is given.
    let e = tok.chat_prompt(&turns, true).unwrap_err();
    assert!(matches!(e, TokenizerError::NoChatTemplate), "{e}");
    let template = ChatTemplate::from_file(fixtures().join("chat_templates/gemma-3-it.jinja"))
        .expect("the Gemma 3 template compiles");
    let tok = tok.with_chat_template(Some(template));
    let prompt = tok.chat_prompt(&turns, true).unwrap();
    assert_eq!(
        prompt,
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    );
    // The template writes BOS: encoding the prompt as it is gives one BOS.
    let ids = tok.encode(&prompt).unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == tok.bos()).count(), 1);
    assert_eq!(ids[0], tok.bos());
    let turn = tok.token_to_id("<start_of_turn>").unwrap();
    assert_eq!(ids[1], turn);
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHi\nmodel\n");
}
