//! The SmolLM2 tokenizer built from the real vocabulary, against reference ids.
//!
//! `tests/fixtures/smollm_tokenizer.json` holds texts (accents, CJK, emoji,
//! tabs, runs of spaces, line breaks, code, numbers, control tokens, the empty
//! string...) with llama.cpp's ids for them, and conversations with their chat
//! template rendering and ids; `scripts/smollm-tokenizer-fixture.py` wrote it.
//! The tokenizer is built from the `tokenizer.*` metadata of the GGUF file in
//! `data/smollm2/` (`bash scripts/fetch-data.sh`). Without that file the
//! tests are skipped, unless `BURN_RLORA_REQUIRE_DATA` is set. The other
//! vocabularies (Gemma 3's SentencePiece, the byte-level pre-tokenizers of
//! Llama 3, Qwen2 and llama.cpp's default) are in `tokenizer_references.rs`,
//! loading from a `tokenizer.json` in `tokenizer_json.rs`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use burn_rlora_llm::{ChatTurn, Tokenizer, TokenizerSpec};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    vocab_size: usize,
    texts: Vec<TextCase>,
    lossy_texts: Vec<TextCase>,
    chats: Vec<ChatCase>,
}

#[derive(Deserialize)]
struct TextCase {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct ChatCase {
    turns: Vec<ChatTurn>,
    add_generation_prompt: bool,
    rendered: String,
    ids: Vec<u32>,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm_tokenizer.json");
    let text = std::fs::read_to_string(&path).expect("the committed fixture reads");
    serde_json::from_str(&text).expect("the fixture parses")
}

/// The GGUF file's tokenizer metadata, read with the project's GGUF reader,
/// or `None` (after saying why the test is skipped) when the model has not
/// been fetched; with `BURN_RLORA_REQUIRE_DATA` set that fails the test.
fn spec_from_gguf(test: &str) -> Option<TokenizerSpec> {
    let path = crate::common::smollm2_or_skip(test)?;
    let file = burn_rlora_gguf::GgufFile::open(&path).expect("the GGUF file opens");
    Some(TokenizerSpec::from_gguf(&file).expect("the tokenizer metadata reads"))
}

fn real_tokenizer(test: &str) -> Option<Tokenizer> {
    let spec = spec_from_gguf(test)?;
    let start = Instant::now();
    let tok = Tokenizer::from_spec(spec).expect("the real spec builds");
    let _ = writeln!(
        std::io::stderr(),
        "{test}: tokenizer built from the spec in {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    Some(tok)
}

#[test]
fn the_fixture_covers_the_cases() {
    let fixture = fixture();
    assert!(fixture.texts.len() >= 20, "{} texts", fixture.texts.len());
    assert!(fixture.texts.iter().any(|t| t.text.is_empty()));
    assert!(fixture
        .texts
        .iter()
        .any(|t| t.text.contains("<|im_start|>")));
    assert!(fixture.chats.iter().any(|c| c.turns.len() == 2));
}

#[test]
fn real_vocabulary_matches_the_reference_ids() {
    let Some(tok) = real_tokenizer("SmolLM2 tokenizer ids") else {
        return;
    };
    let fixture = fixture();
    assert_eq!(tok.vocab_size(), fixture.vocab_size);
    assert_eq!((tok.bos(), tok.eos(), tok.pad()), (1, 2, Some(2)));
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    // The bytes SmolLM2's vocabulary has no token for; encode drops them.
    let missing = [4, 6, 19, 20, 22, 29, 0xC0, 0xC1, 0xF1, 0xF2];
    assert_eq!(tok.missing_bytes()[..10], missing);
    assert_eq!(
        tok.missing_bytes()[10..],
        (0xF5..=0xFF).collect::<Vec<u8>>()
    );
    let mut wrong = Vec::new();
    for case in &fixture.texts {
        let ids = tok.encode(&case.text).unwrap();
        if ids != case.ids {
            wrong.push(format!("{:?}: {ids:?}, expected {:?}", case.text, case.ids));
        }
        assert_eq!(tok.decode(&ids, false).unwrap(), case.text);
        assert_eq!(tok.encode_with_bos(&case.text).unwrap()[1..], ids[..]);
    }
    for case in &fixture.lossy_texts {
        assert_eq!(tok.encode(&case.text).unwrap(), case.ids, "{:?}", case.text);
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        fixture.texts.len(),
        wrong.join("\n")
    );
}

#[test]
fn real_chat_prompt_matches_the_reference_rendering() {
    let Some(tok) = real_tokenizer("SmolLM2 chat prompt") else {
        return;
    };
    for case in fixture().chats {
        let rendered = tok
            .chat_prompt(&case.turns, case.add_generation_prompt)
            .unwrap();
        assert_eq!(rendered, case.rendered);
        assert_eq!(tok.encode(&rendered).unwrap(), case.ids, "{rendered:?}");
    }
}

#[test]
fn real_stream_decoding_equals_decode() {
    let Some(tok) = real_tokenizer("SmolLM2 stream decoding") else {
        return;
    };
    for case in fixture().texts {
        for skip in [false, true] {
            let mut stream = tok.stream_decoder(skip);
            let mut text = String::new();
            for &id in &case.ids {
                let piece = stream.step(id).unwrap();
                assert!(
                    !piece.as_deref().unwrap_or("").contains('\u{FFFD}'),
                    "{:?}",
                    case.text
                );
                text.extend(piece);
            }
            text.extend(stream.finish());
            assert_eq!(text, tok.decode(&case.ids, skip).unwrap());
        }
        let without_special = tok.decode(&case.ids, true).unwrap();
        assert!(
            !without_special.contains("<|im_start|>"),
            "{without_special:?}"
        );
    }
}
