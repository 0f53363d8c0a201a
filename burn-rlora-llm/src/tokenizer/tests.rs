//! Unit tests on hand-made vocabularies.
//!
//! The byte-level one: three control tokens (ids 0-2), the 256 byte tokens
//! in byte order (id = 3 + byte: `Ġ`, the space, is 35), twelve merged tokens
//! (259-270) and one user-defined token (271).
//!
//! The SentencePiece one: `<unk>` (0, unknown), `<s>` and `</s>` (1, 2,
//! control), the 256 byte tokens `<0x00>`..`<0xFF>` (3-258), pieces with
//! falling scores (259-...) and one user-defined token at the end.

use super::decode::BYTE_CHARS;
use super::*;

/// The byte token of `byte`.
fn b(byte: u8) -> u32 {
    3 + u32::from(byte)
}

const MERGES: [&str; 12] = [
    "Ġ t", "h e", "Ġt he", "l l", "ll o", "he llo", "Ġ Ġ", "Ċ Ċ", "i n", "Ġ in", "' t", "1 2",
];
const GT: u32 = 259;
const THE: u32 = 261;
const HELLO: u32 = 264;
const SPACES: u32 = 265;
const NEWLINES: u32 = 266;
const IN: u32 = 268;
const QUOTE_T: u32 = 269;
const TWELVE: u32 = 270;
const THINK: u32 = 271;

const TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

fn spec() -> TokenizerSpec {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .map(String::from)
        .to_vec();
    let mut token_types = vec![token_type::CONTROL; 3];
    tokens.extend(BYTE_CHARS.iter().map(|c| c.to_string()));
    for merge in MERGES {
        tokens.push(merge.replace(' ', ""));
    }
    token_types.resize(tokens.len(), token_type::NORMAL);
    tokens.push("<think>".into());
    token_types.push(token_type::USER_DEFINED);
    TokenizerSpec {
        model: "gpt2".into(),
        tokens,
        token_types,
        merges: MERGES.map(String::from).to_vec(),
        bos: 1,
        eos: 2,
        pad: Some(0),
        pre: "smollm".into(),
        chat_template: Some(TEMPLATE.into()),
        ..Default::default()
    }
}

fn tok() -> Tokenizer {
    Tokenizer::from_spec(spec()).expect("the tiny spec builds")
}

#[test]
fn the_tiny_vocabulary_is_laid_out_as_the_constants_say() {
    let tok = tok();
    assert_eq!(tok.vocab_size(), 272);
    assert_eq!(tok.inner().get_vocab_size(true), 272);
    assert_eq!(tok.token_to_id("Ġ"), Some(b(b' ')));
    assert_eq!(tok.token_to_id("Ġt"), Some(GT));
    assert_eq!(tok.token_to_id("12"), Some(TWELVE));
    assert_eq!(tok.id_to_token(THINK), Some("<think>"));
    assert_eq!(tok.id_to_token(272), None);
    assert_eq!((tok.bos(), tok.eos(), tok.pad()), (1, 2, Some(0)));
    assert_eq!(
        (tok.bos_token(), tok.eos_token()),
        ("<|im_start|>", "<|im_end|>")
    );
    assert!(tok.is_special(1) && !tok.is_special(THINK) && !tok.is_special(999));
    // No add_bos_token key: llama.cpp's default for a byte-level vocabulary.
    assert!(!tok.add_bos() && !tok.add_eos() && !tok.add_space_prefix());
    assert_eq!(tok.unknown(), None);
}

#[test]
fn encodes_by_the_merges_in_rank_order() {
    let tok = tok();
    let w = [b'w', b'o', b'r', b'l', b'd'].map(b);
    let expected = [vec![HELLO, THE, b(b' ')], w.to_vec()].concat();
    assert_eq!(tok.encode("hello the world").unwrap(), expected);
    assert_eq!(tok.encode_with_bos("hello").unwrap(), [1, HELLO]);
    assert_eq!(tok.encode_with_special_tokens("hello").unwrap(), [HELLO]);
    assert_eq!(tok.encode("").unwrap(), Vec::<u32>::new());
    assert_eq!(tok.encode_with_bos("").unwrap(), [1]);
    // GPT-2's split: "don" "'t"; a run of spaces leaves its last one to
    // the word after it; a trailing run stays whole.
    let don = [b'd', b'o', b'n'].map(b);
    assert_eq!(
        tok.encode("don't").unwrap(),
        [&don[..], &[QUOTE_T]].concat()
    );
    assert_eq!(tok.encode("  in").unwrap(), [b(b' '), IN]);
    assert_eq!(tok.encode("a  ").unwrap(), [b(b'a'), SPACES]);
    assert_eq!(tok.encode("\n\n").unwrap(), [NEWLINES]);
    // Two bytes of UTF-8, two byte tokens.
    assert_eq!(tok.encode("é").unwrap(), [b(0xC3), b(0xA9)]);
}

#[test]
fn add_bos_and_add_eos_follow_the_spec() {
    let tok = Tokenizer::from_spec(TokenizerSpec {
        add_bos: Some(true),
        add_eos: Some(true),
        ..spec()
    })
    .unwrap();
    assert!(tok.add_bos() && tok.add_eos());
    assert_eq!(
        tok.encode_with_special_tokens("hello").unwrap(),
        [1, HELLO, 2]
    );
    assert_eq!(tok.encode_with_special_tokens("").unwrap(), [1, 2]);
    // Llama 3's pre-tokenizer adds BOS unless the file says otherwise.
    let llama3 = Tokenizer::from_spec(TokenizerSpec {
        pre: "llama-bpe".into(),
        ..spec()
    })
    .unwrap();
    assert!(llama3.add_bos());
}

#[test]
fn smollm_splits_every_digit_and_gpt2_does_not() {
    assert_eq!(tok().encode("12").unwrap(), [b(b'1'), b(b'2')]);
    // "\p{N}" is split off before GPT-2's regex: the two spaces stay together.
    assert_eq!(tok().encode("a  1").unwrap(), [b(b'a'), SPACES, b(b'1')]);
    for pre in ["gpt2", "gpt-2"] {
        let gpt2 = Tokenizer::from_spec(TokenizerSpec {
            pre: pre.into(),
            ..spec()
        })
        .unwrap();
        assert_eq!(gpt2.encode("12").unwrap(), [TWELVE]);
        assert_eq!(
            gpt2.encode("a  1").unwrap(),
            [b(b'a'), b(b' '), b(b' '), b(b'1')]
        );
    }
}

fn with_pre(pre: &str) -> Tokenizer {
    Tokenizer::from_spec(TokenizerSpec {
        pre: pre.into(),
        ..spec()
    })
    .unwrap()
}

#[test]
fn llama3_and_qwen2_split_numbers_and_newlines_as_llama_cpp() {
    let digits = |s: &str| s.bytes().map(b).collect::<Vec<_>>();
    // Llama 3: runs of up to three digits; "12" is a token and a piece whole.
    let llama3 = with_pre("llama-bpe");
    assert_eq!(llama3.encode("12").unwrap(), [TWELVE]);
    // "123" "4": the merge "1 2" applies in the first piece only.
    assert_eq!(
        llama3.encode("1234").unwrap(),
        [&[TWELVE][..], &digits("34")].concat()
    );
    assert_eq!(llama3.encode("12 12").unwrap(), [TWELVE, b(b' '), TWELVE]);
    // Qwen2: every digit on its own.
    let qwen2 = with_pre("qwen2");
    assert_eq!(qwen2.encode("12").unwrap(), digits("12"));
    // Both: a letter run takes one non-letter before it ("\nin" is not "\n" "in").
    for tok in [&llama3, &qwen2] {
        assert_eq!(tok.encode(" in").unwrap(), [IN]);
        assert_eq!(tok.encode("x\n\n").unwrap(), [b(b'x'), NEWLINES]);
        // "'t" is split off whatever its case.
        assert_eq!(
            tok.encode("don'T").unwrap(),
            [b(b'd'), b(b'o'), b(b'n'), b(b'\''), b(b'T')]
        );
    }
    // Llama 3 takes a piece that is a token whole even without a merge to
    // it: `ignore_merges`. "Ġin" has merges; make a token without any.
    let mut spec = spec();
    spec.tokens.push("xyz".into());
    spec.token_types.push(token_type::NORMAL);
    spec.pre = "llama-bpe".into();
    let tok = Tokenizer::from_spec(spec.clone()).unwrap();
    assert_eq!(tok.encode("xyz").unwrap(), [272]);
    spec.pre = "qwen2".into();
    let tok = Tokenizer::from_spec(spec).unwrap();
    assert_eq!(tok.encode("xyz").unwrap(), [b(b'x'), b(b'y'), b(b'z')]);
}

#[test]
fn the_default_pre_tokenizer_splits_punctuation_and_digit_triples() {
    let tok = with_pre("default");
    let unspecified = with_pre("");
    for (text, expected) in [
        // Runs of digits, then runs of three ASCII digits.
        ("12", vec![TWELVE]),
        ("1212", vec![TWELVE, b(b'1'), b(b'2')]),
        ("2121", vec![b(b'2'), TWELVE, b(b'1')]),
        ("12.12", vec![TWELVE, b(b'.'), TWELVE]),
        // Punctuation is split off before GPT-2's regex: "'" and "t" apart.
        ("don't", vec![b(b'd'), b(b'o'), b(b'n'), b(b'\''), b(b't')]),
        ("hello the", vec![HELLO, THE]),
    ] {
        assert_eq!(tok.encode(text).unwrap(), expected, "{text:?}");
        assert_eq!(unspecified.encode(text).unwrap(), expected, "{text:?}");
    }
}

#[test]
fn control_and_user_defined_tokens_encode_whole() {
    let tok = tok();
    let user = [b'u', b's', b'e', b'r'].map(b);
    let expected = [&[1], &user[..], &[b(b'\n'), b(b'h'), b(b'i'), 2]].concat();
    assert_eq!(
        tok.encode("<|im_start|>user\nhi<|im_end|>").unwrap(),
        expected
    );
    assert_eq!(tok.encode("x<think>").unwrap(), [b(b'x'), THINK]);
    // Skipping drops the control tokens only.
    assert_eq!(
        tok.decode(&[1, HELLO, THINK, 2], true).unwrap(),
        "hello<think>"
    );
    assert_eq!(
        tok.decode(&[1, HELLO, 2], false).unwrap(),
        "<|im_start|>hello<|im_end|>"
    );
}

#[test]
fn decode_inverts_encode() {
    let tok = tok();
    for text in [
        "hello the world",
        "  leading and trailing  ",
        "tabs\tand\r\nnewlines\n\n",
        "café, niño, über, 東京, 😀, 👩‍💻",
        "don't 3.14159 <|im_start|>user<|im_end|>",
        "",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "{ids:?}");
    }
    // A character cut in two decodes as U+FFFD.
    assert_eq!(tok.decode(&[b(0xC3)], false).unwrap(), "\u{FFFD}");
}

#[test]
fn unused_and_untyped_tokens_decode_as_nothing_as_in_llama_cpp() {
    let mut spec = spec();
    spec.token_types[HELLO as usize] = token_type::UNUSED;
    spec.token_types[THE as usize] = token_type::UNDEFINED;
    let tok = Tokenizer::from_spec(spec).unwrap();
    assert_eq!(tok.decode(&[b(b'a'), HELLO, THE], false).unwrap(), "a");
}

#[test]
fn the_stream_decoder_holds_back_unfinished_characters() {
    let tok = tok();
    let ids = tok.encode("a😀é").unwrap();
    assert_eq!(ids.len(), 1 + 4 + 2);
    let mut stream = tok.stream_decoder(false);
    let steps: Vec<_> = ids.iter().map(|&id| stream.step(id).unwrap()).collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        steps,
        [some("a"), None, None, None, some("😀"), None, some("é")]
    );
    assert_eq!(stream.finish(), None);

    // Skipped control tokens; a cut character at the end; a stray
    // continuation byte: the same text as `decode`.
    for skip in [true, false] {
        let ids = [1, HELLO, b(0x80), 2, b(b'x'), b(0xF0), b(0x9F)];
        assert_eq!(
            stream_text(&tok, &ids, skip),
            tok.decode(&ids, skip).unwrap()
        );
    }
}

/// The text of `ids` from a stream decoder, its steps and its finish joined.
fn stream_text(tok: &Tokenizer, ids: &[u32], skip: bool) -> String {
    let mut stream = tok.stream_decoder(skip);
    let mut text: String = ids
        .iter()
        .filter_map(|&id| stream.step(id).unwrap())
        .collect();
    text.extend(stream.finish());
    text
}

#[test]
fn renders_the_chat_template_with_the_special_tokens() {
    let tok = tok();
    assert_eq!(
        tok.chat_template().map(ChatTemplate::source),
        Some(TEMPLATE)
    );
    let system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
    let turns = [ChatTurn::user("Hi"), ChatTurn::assistant("Hello!")];
    assert_eq!(
        tok.chat_prompt(&turns, true).unwrap(),
        format!(
            "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n"
        )
    );
    // bos_token and eos_token are the texts of the BOS and EOS tokens.
    let own =
        ChatTemplate::new("{{ bos_token }}{{ messages[0]['content'] }}{{ eos_token }}").unwrap();
    let tok = tok.with_chat_template(Some(own));
    assert_eq!(
        tok.chat_prompt(&[ChatTurn::user("Hi")], false).unwrap(),
        "<|im_start|>Hi<|im_end|>"
    );
    let none = tok.with_chat_template(None);
    let e = none.chat_prompt(&[], true).unwrap_err();
    assert!(matches!(e, TokenizerError::NoChatTemplate), "{e}");
    assert!(e.to_string().contains("raw continuation"), "{e}");
}

#[test]
fn a_template_that_does_not_compile_is_refused_at_build_time() {
    let e = build_error(|s| s.chat_template = Some("{% for %}".into()));
    assert!(matches!(e, TokenizerError::ChatTemplate(_)), "{e}");
    let without = Tokenizer::from_spec(TokenizerSpec {
        chat_template: None,
        ..spec()
    })
    .unwrap();
    assert!(without.chat_template().is_none());
    // A template that refuses the conversation is an error when rendering.
    let refusing = Tokenizer::from_spec(TokenizerSpec {
        chat_template: Some("{{ raise_exception('no') }}".into()),
        ..spec()
    })
    .unwrap();
    let e = refusing.chat_prompt(&[], true).unwrap_err();
    assert!(matches!(e, TokenizerError::ChatTemplate(_)), "{e}");
}

fn build_error(change: impl FnOnce(&mut TokenizerSpec)) -> TokenizerError {
    let mut spec = spec();
    change(&mut spec);
    Tokenizer::from_spec(spec).expect_err("the spec is refused")
}

#[test]
fn refuses_bad_vocabularies() {
    use TokenizerError as E;
    let empty = build_error(|s| {
        s.tokens.clear();
        s.token_types.clear();
        s.merges.clear();
    });
    assert!(matches!(empty, E::EmptyVocabulary), "{empty}");
    let e = build_error(|s| s.token_types.pop().map(drop).unwrap_or_default());
    assert!(
        matches!(
            e,
            E::TokenTypesLength {
                tokens: 272,
                token_types: 271
            }
        ),
        "{e}"
    );
    let e = build_error(|s| s.token_types[7] = 9);
    assert!(matches!(e, E::BadTokenType { id: 7, value: 9 }), "{e}");
    let e = build_error(|s| s.model = "bert".into());
    assert!(
        matches!(e, E::UnsupportedModel(ref m) if m == "bert"),
        "{e}"
    );
    assert!(e.to_string().contains("`llama` (SentencePiece)"), "{e}");
    let e = build_error(|s| s.pre = "deepseek-llm".into());
    assert!(
        matches!(e, E::UnsupportedPreTokenizer(ref p) if p == "deepseek-llm"),
        "{e}"
    );
    assert!(e.to_string().contains("`qwen2`"), "{e}");
    let e = build_error(|s| s.tokens[THINK as usize] = "hello".into());
    assert!(
        matches!(
            e,
            E::DuplicateToken {
                first: HELLO,
                second: THINK,
                ..
            }
        ),
        "{e}"
    );
    // Scores are optional for a byte-level vocabulary, but one per token.
    let e = build_error(|s| s.scores = vec![0.0; 3]);
    assert!(
        matches!(
            e,
            E::ScoresLength {
                tokens: 272,
                scores: 3
            }
        ),
        "{e}"
    );
    let e = build_error(|s| {
        s.scores = vec![0.0; 272];
        s.scores[5] = f32::NAN;
    });
    assert!(matches!(e, E::BadScore { id: 5, .. }), "{e}");
    assert!(matches!(
        build::check_vocab_len(usize::MAX),
        Err(E::VocabularyTooLarge(usize::MAX))
    ));
}

#[test]
fn empty_tokens_are_neither_matched_nor_repeated() {
    let mut spec = spec();
    spec.tokens.extend(["".to_owned(), "".to_owned()]);
    spec.token_types
        .extend([token_type::CONTROL, token_type::NORMAL]);
    let tok = Tokenizer::from_spec(spec).unwrap();
    assert_eq!(tok.vocab_size(), 274);
    assert_eq!(tok.encode("hello").unwrap(), [HELLO]);
    assert_eq!(tok.decode(&[272, 273, HELLO], false).unwrap(), "hello");
}

#[test]
fn drops_bytes_without_a_token_as_the_references_do() {
    assert_eq!(tok().missing_bytes(), &[] as &[u8]);
    // Byte 0x04 renamed away, as in SmolLM2's vocabulary.
    let mut spec = spec();
    spec.tokens[b(0x04) as usize] = "<unused>".into();
    let tok = Tokenizer::from_spec(spec).unwrap();
    assert_eq!(tok.missing_bytes(), [0x04]);
    assert_eq!(tok.encode("a\u{4}b").unwrap(), [b(b'a'), b(b'b')]);
}

#[test]
fn refuses_bad_merges_and_special_ids() {
    use TokenizerError as E;
    for bad in ["Ġt", "h ", " ", ""] {
        let e = build_error(|s| s.merges[3] = bad.into());
        assert!(matches!(e, E::BadMerge { index: 3, .. }), "{bad:?}: {e}");
    }
    for (merge, missing) in [("Ġ q", "Ġq"), ("x yz", "yz"), ("h e l", "e l")] {
        let e = build_error(|s| s.merges.push(merge.into()));
        assert!(
            matches!(e, E::UnknownMergeToken { index: 12, ref token, .. } if token == missing),
            "{merge:?}: {e}"
        );
    }
    let e = build_error(|s| s.bos = 272);
    assert!(
        matches!(
            e,
            E::SpecialIdOutOfRange {
                name: "bos",
                id: 272,
                ..
            }
        ),
        "{e}"
    );
    let e = build_error(|s| s.eos = u32::MAX);
    assert!(
        matches!(e, E::SpecialIdOutOfRange { name: "eos", .. }),
        "{e}"
    );
    let e = build_error(|s| s.unknown = Some(1000));
    assert!(
        matches!(
            e,
            E::SpecialIdOutOfRange {
                name: "unknown",
                ..
            }
        ),
        "{e}"
    );
    let e = build_error(|s| s.pad = Some(300));
    assert!(
        matches!(
            e,
            E::SpecialIdOutOfRange {
                name: "pad",
                id: 300,
                ..
            }
        ),
        "{e}"
    );
    // No padding token is fine.
    let mut spec = spec();
    spec.pad = None;
    assert_eq!(Tokenizer::from_spec(spec).unwrap().pad(), None);
}

#[test]
fn refuses_ids_out_of_range() {
    let tok = tok();
    let e = tok.decode(&[HELLO, 272], false).unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::IdOutOfRange {
                id: 272,
                vocab_size: 272
            }
        ),
        "{e}"
    );
    let mut stream = tok.stream_decoder(true);
    assert!(matches!(
        stream.step(u32::MAX),
        Err(TokenizerError::IdOutOfRange { .. })
    ));
    // The stream goes on after the error.
    assert_eq!(stream.step(HELLO).unwrap().as_deref(), Some("hello"));
}

#[test]
fn the_spec_round_trips_through_json() {
    let spec = TokenizerSpec {
        scores: vec![0.5; 272],
        unknown: Some(0),
        add_bos: Some(false),
        add_space_prefix: Some(true),
        ..spec()
    };
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<TokenizerSpec>(&json).unwrap(), spec);
    // A spec written before the new fields still reads.
    let old = r#"{"model":"gpt2","tokens":["a"],"token_types":[1],"merges":[],
        "bos":0,"eos":0,"pad":null,"pre":"gpt2","chat_template":null}"#;
    let old: TokenizerSpec = serde_json::from_str(old).unwrap();
    assert_eq!(
        (old.scores.len(), old.unknown, old.add_bos),
        (0, None, None)
    );
}

mod sentencepiece {
    //! A hand-made SentencePiece vocabulary in Llama 2's layout.

    use super::super::*;

    const UNK: u32 = 0;
    const BOS: u32 = 1;
    const EOS: u32 = 2;

    /// The byte token of `byte`.
    fn byte(byte: u8) -> u32 {
        3 + u32::from(byte)
    }

    /// The pieces after the byte tokens, best score first.
    const PIECES: [&str; 22] = [
        "▁", "h", "e", "l", "o", "w", "r", "d", "é", "he", "▁h", "ll", "llo", "hello", "▁hello",
        "▁w", "or", "▁wor", "ld", "▁world", "▁▁", "ll▁",
    ];

    /// The id of piece `text`.
    fn id(text: &str) -> u32 {
        let at = PIECES.iter().position(|&p| p == text).expect("a piece");
        259 + at as u32
    }

    /// The id of the user-defined token.
    const THINK: u32 = 259 + PIECES.len() as u32;

    pub(super) fn spec() -> TokenizerSpec {
        let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
        let mut token_types = vec![
            token_type::UNKNOWN,
            token_type::CONTROL,
            token_type::CONTROL,
        ];
        let mut scores = vec![0.0; 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            token_types.push(token_type::BYTE);
            scores.push(0.0);
        }
        for (i, piece) in PIECES.iter().enumerate() {
            tokens.push((*piece).to_owned());
            token_types.push(token_type::NORMAL);
            scores.push(-(i as f32));
        }
        tokens.push("<think>".into());
        token_types.push(token_type::USER_DEFINED);
        scores.push(0.0);
        TokenizerSpec {
            model: "llama".into(),
            tokens,
            token_types,
            scores,
            bos: BOS,
            eos: EOS,
            unknown: Some(UNK),
            pre: "default".into(),
            ..Default::default()
        }
    }

    fn tok() -> Tokenizer {
        Tokenizer::from_spec(spec()).expect("the SentencePiece spec builds")
    }

    #[test]
    fn merges_the_best_scored_pairs_after_a_space_prefix() {
        let tok = tok();
        assert!(tok.add_bos() && !tok.add_eos() && tok.add_space_prefix());
        assert_eq!(
            (tok.unknown(), tok.bos_token(), tok.eos_token()),
            (Some(UNK), "<s>", "</s>")
        );
        assert_eq!(tok.missing_bytes(), &[] as &[u8]);
        assert_eq!(
            tok.encode("hello world").unwrap(),
            [id("▁hello"), id("▁world")]
        );
        assert_eq!(
            tok.encode_with_special_tokens("hello").unwrap(),
            [BOS, id("▁hello")]
        );
        // "he" (score -9) beats "▁h" (-10), and no "▁he" or "hel" follows.
        assert_eq!(tok.encode("hel").unwrap(), [id("▁"), id("he"), id("l")]);
        // With "▁h" first, "▁hello" is out of reach: "▁h" "e" "llo".
        let mut swapped = spec();
        swapped.scores.swap(id("he") as usize, id("▁h") as usize);
        let swapped = Tokenizer::from_spec(swapped).unwrap();
        assert_eq!(
            swapped.encode("hello").unwrap(),
            [id("▁h"), id("e"), id("llo")]
        );
        // "ll" (-11) is merged before "ll▁" could be; a run of spaces.
        assert_eq!(
            tok.encode("ll  o").unwrap(),
            [id("▁"), id("ll"), id("▁▁"), id("o")]
        );
        assert_eq!(tok.encode("").unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn falls_back_to_bytes_for_what_the_vocabulary_lacks() {
        let tok = tok();
        // "é" is a piece, "ü" is not: its two bytes of UTF-8.
        assert_eq!(tok.encode("é").unwrap(), [id("▁"), id("é")]);
        assert_eq!(
            tok.encode("ü\n").unwrap(),
            [id("▁"), byte(0xC3), byte(0xBC), byte(b'\n')]
        );
        assert_eq!(
            tok.decode(&tok.encode("ü\n").unwrap(), false).unwrap(),
            "ü\n"
        );
    }

    #[test]
    fn special_and_user_defined_tokens_restart_the_space_prefix() {
        let tok = tok();
        // After each control or user-defined token, as llama.cpp does.
        assert_eq!(
            tok.encode("<s>hello</s>world").unwrap(),
            [BOS, id("▁hello"), EOS, id("▁world")]
        );
        assert_eq!(
            tok.encode("hello<think>world").unwrap(),
            [id("▁hello"), THINK, id("▁world")]
        );
        // `<unk>` written in the text is the unknown token.
        assert_eq!(tok.encode("<unk>").unwrap(), [UNK]);
        assert!(tok.is_special(UNK) && tok.is_special(BOS) && !tok.is_special(THINK));
    }

    #[test]
    fn decodes_spaces_bytes_and_the_space_prefix() {
        let tok = tok();
        for text in ["hello world", " hello", "hello  ", "ü é\n\t", "", " "] {
            let ids = tok.encode(text).unwrap();
            assert_eq!(tok.decode(&ids, false).unwrap(), text, "{ids:?}");
            for skip in [false, true] {
                assert_eq!(
                    super::stream_text(&tok, &ids, skip),
                    tok.decode(&ids, skip).unwrap(),
                    "{text:?}"
                );
            }
        }
        // The space put after a control or user-defined token stays, as in
        // llama.cpp.
        let ids = tok.encode("x<think>y</s>hello").unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), "x<think> y</s> hello");
        assert_eq!(tok.decode(&ids, true).unwrap(), "x<think> y hello");
        // The space prefix is dropped after a skipped BOS too (as
        // transformers; llama.cpp keeps it there).
        let ids = tok.encode_with_bos("hello").unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), "hello");
        assert_eq!(tok.decode(&ids, false).unwrap(), "<s> hello");
        assert_eq!(super::stream_text(&tok, &ids, true), "hello");
        // Without the prefix, spaces stay.
        let plain = Tokenizer::from_spec(TokenizerSpec {
            add_space_prefix: Some(false),
            ..spec()
        })
        .unwrap();
        assert_eq!(plain.encode("hello").unwrap(), [id("hello")]);
        assert_eq!(plain.encode(" hello").unwrap(), [id("▁hello")]);
        assert_eq!(plain.decode(&[id("▁hello")], true).unwrap(), " hello");
        assert!(!plain.add_space_prefix());
    }

    #[test]
    fn the_stream_gives_characters_made_of_byte_tokens_whole() {
        let tok = tok();
        let mut stream = tok.stream_decoder(true);
        let steps: Vec<_> = [byte(0xC3), byte(0xBC), id("▁world")]
            .iter()
            .map(|&id| stream.step(id).unwrap())
            .collect();
        assert_eq!(
            steps,
            [None, Some("ü".to_owned()), Some(" world".to_owned())]
        );
        let mut stream = tok.stream_decoder(true);
        assert_eq!(stream.step(id("▁hello")).unwrap().as_deref(), Some("hello"));
        assert_eq!(stream.step(byte(0xE2)).unwrap(), None);
        assert_eq!(stream.finish().as_deref(), Some("\u{FFFD}"));
    }

    fn build_error(change: impl FnOnce(&mut TokenizerSpec)) -> TokenizerError {
        let mut spec = spec();
        change(&mut spec);
        Tokenizer::from_spec(spec).expect_err("the spec is refused")
    }

    #[test]
    fn refuses_what_it_cannot_tokenize() {
        use TokenizerError as E;
        let e = build_error(|s| s.scores.pop().map(drop).unwrap_or_default());
        assert!(matches!(e, E::ScoresLength { scores: 281, .. }), "{e}");
        let e = build_error(|s| s.scores.clear());
        assert!(matches!(e, E::ScoresLength { scores: 0, .. }), "{e}");
        let e = build_error(|s| s.scores[270] = f32::NAN);
        assert!(matches!(e, E::BadScore { id: 270, .. }), "{e}");
        // A byte token missing (renamed): no fallback for that byte.
        let e = build_error(|s| {
            s.tokens[byte(0x41) as usize] = "A".into();
            s.token_types[byte(0x41) as usize] = token_type::NORMAL;
        });
        assert!(
            matches!(e, E::MissingByteTokens { ref missing } if missing == &[0x41]),
            "{e}"
        );
        assert!(e.to_string().contains("0x41"), "{e}");
        let e = build_error(|s| s.tokens[byte(0x41) as usize] = "<0x4a>".into());
        assert!(
            matches!(e, E::BadByteToken { id, ref token } if id == byte(0x41) && token == "<0x4a>"),
            "{e}"
        );
        let e = build_error(|s| s.tokens[300 - 20] = "x".repeat(2000));
        assert!(matches!(e, E::TokenTooLong { bytes: 2000, .. }), "{e}");
        // No byte tokens at all: the unknown token takes their place...
        let mut spec = spec();
        for b in 0..=255u8 {
            spec.tokens[byte(b) as usize] = format!("[{b}]");
            spec.token_types[byte(b) as usize] = token_type::UNUSED;
        }
        let tok = Tokenizer::from_spec(spec.clone()).unwrap();
        assert_eq!(tok.encode("üü!").unwrap(), [id("▁"), UNK]);
        // ... and without one, the vocabulary is refused.
        spec.unknown = None;
        spec.token_types[UNK as usize] = token_type::CONTROL;
        let e = Tokenizer::from_spec(spec).unwrap_err();
        assert!(
            matches!(e, E::MissingByteTokens { ref missing } if missing.len() == 256),
            "{e}"
        );
        assert!(e.to_string().contains("no unknown token"), "{e}");
    }

    #[test]
    fn derived_merges_rank_by_score_then_by_the_left_part() {
        let merges = |spec: &TokenizerSpec| {
            let ids = super::super::build::check_vocabulary(spec).unwrap();
            let merges = super::super::merges::derived_merges(spec, &ids).unwrap();
            let text = |id: u32| spec.tokens[id as usize].as_str();
            merges
                .into_iter()
                .map(|(l, r)| format!("{} {}", text(l), text(r)))
                .collect::<Vec<_>>()
        };
        // Every cut into two tokens, by the score of the token made; none
        // makes a control, unknown or user-defined token.
        let expected = [
            "h e",
            "▁ h",
            "l l",
            "ll o",
            "he llo",
            "▁ hello",
            "▁ w",
            "o r",
            "▁w or",
            "l d",
            "▁wor ld",
            "▁ ▁",
            "ll ▁",
        ];
        assert_eq!(merges(&spec()), expected);
        // Several cuts of one token: the longer left part first; tokens of
        // equal score: by the cuts' lengths, then by position.
        let mut spec = spec();
        for (piece, score) in [("▁he", -14.5), ("▁hel", -30.0), ("el", -30.0)] {
            spec.tokens.push(piece.into());
            spec.token_types.push(token_type::NORMAL);
            spec.scores.push(score);
        }
        let merges = merges(&spec);
        let at = |m: &str| merges.iter().position(|x| x == m).unwrap();
        assert!(at("▁he llo") < at("▁ hello"));
        assert_eq!(merges[merges.len() - 3..], ["▁he l", "▁h el", "e l"]);
    }
}

mod gguf_metadata {
    //! Specs read from GGUF metadata written here byte by byte.

    use burn_rlora_gguf::GgufFile;

    use super::super::*;

    /// A metadata value, as GGUF stores it.
    enum V {
        Str(String),
        U32(u32),
        I32(i32),
        F32(f32),
        Bool(bool),
        Strs(Vec<String>),
        I32s(Vec<i32>),
        F32s(Vec<f32>),
    }

    fn push_str(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    /// A GGUF file (version 3, no tensors) holding `kvs`.
    fn gguf(kvs: &[(&str, V)]) -> GgufFile {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend((kvs.len() as u64).to_le_bytes());
        for (key, value) in kvs {
            push_str(&mut out, key);
            match value {
                V::Str(s) => {
                    out.extend(8u32.to_le_bytes());
                    push_str(&mut out, s);
                }
                V::U32(v) => {
                    out.extend(4u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
                V::I32(v) => {
                    out.extend(5u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
                V::F32(v) => {
                    out.extend(6u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
                V::Bool(v) => {
                    out.extend(7u32.to_le_bytes());
                    out.push(u8::from(*v));
                }
                V::Strs(v) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(8u32.to_le_bytes());
                    out.extend((v.len() as u64).to_le_bytes());
                    for s in v {
                        push_str(&mut out, s);
                    }
                }
                V::I32s(v) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(5u32.to_le_bytes());
                    out.extend((v.len() as u64).to_le_bytes());
                    for x in v {
                        out.extend(x.to_le_bytes());
                    }
                }
                V::F32s(v) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(6u32.to_le_bytes());
                    out.extend((v.len() as u64).to_le_bytes());
                    for x in v {
                        out.extend(x.to_le_bytes());
                    }
                }
            }
        }
        GgufFile::from_bytes(out).expect("the GGUF bytes parse")
    }

    /// The metadata of the byte-level test spec, with `change` applied
    /// (`None` removes a key).
    fn metadata(change: &[(&str, Option<V>)]) -> GgufFile {
        let spec = super::spec();
        let mut kvs: Vec<(&str, V)> = vec![
            ("general.architecture", V::Str("llama".into())),
            ("tokenizer.ggml.model", V::Str(spec.model)),
            ("tokenizer.ggml.pre", V::Str(spec.pre)),
            ("tokenizer.ggml.tokens", V::Strs(spec.tokens)),
            ("tokenizer.ggml.token_type", V::I32s(spec.token_types)),
            ("tokenizer.ggml.merges", V::Strs(spec.merges)),
            ("tokenizer.ggml.bos_token_id", V::U32(spec.bos)),
            ("tokenizer.ggml.eos_token_id", V::U32(spec.eos)),
            ("tokenizer.ggml.padding_token_id", V::U32(0)),
            ("tokenizer.chat_template", V::Str(super::TEMPLATE.into())),
        ];
        for (key, value) in change.iter() {
            kvs.retain(|(k, _)| k != key);
            if let Some(value) = value {
                let value = match value {
                    V::Str(s) => V::Str(s.clone()),
                    V::U32(v) => V::U32(*v),
                    V::I32(v) => V::I32(*v),
                    V::F32(v) => V::F32(*v),
                    V::Bool(v) => V::Bool(*v),
                    V::Strs(v) => V::Strs(v.clone()),
                    V::I32s(v) => V::I32s(v.clone()),
                    V::F32s(v) => V::F32s(v.clone()),
                };
                kvs.push((key, value));
            }
        }
        gguf(&kvs)
    }

    #[test]
    fn reads_the_spec_as_written() {
        let spec = TokenizerSpec::from_gguf(&metadata(&[])).unwrap();
        assert_eq!(spec, super::spec());
        // The optional keys.
        let file = metadata(&[
            ("tokenizer.ggml.unknown_token_id", Some(V::I32(3))),
            ("tokenizer.ggml.add_bos_token", Some(V::Bool(true))),
            ("tokenizer.ggml.add_eos_token", Some(V::Bool(false))),
            ("tokenizer.ggml.add_space_prefix", Some(V::Bool(false))),
            ("tokenizer.ggml.scores", Some(V::I32s(vec![-2; 272]))),
            ("tokenizer.ggml.token_type", None),
            ("tokenizer.ggml.pre", None),
            ("tokenizer.chat_template", None),
        ]);
        let spec = TokenizerSpec::from_gguf(&file).unwrap();
        assert_eq!(spec.unknown, Some(3));
        assert_eq!(
            (spec.add_bos, spec.add_eos, spec.add_space_prefix),
            (Some(true), Some(false), Some(false))
        );
        assert_eq!(spec.scores, vec![-2.0; 272]);
        assert_eq!(spec.token_types, vec![token_type::NORMAL; 272]);
        assert_eq!(spec.pre, "default");
        assert_eq!(spec.chat_template, None);
        let tok = Tokenizer::from_gguf(&file).unwrap();
        assert!(tok.add_bos());
    }

    /// The key and the reason of a [`TokenizerError::Metadata`].
    fn metadata_error(e: TokenizerError) -> (String, String) {
        match e {
            TokenizerError::Metadata { file, key, reason } => {
                assert_eq!(file, "<GGUF bytes>");
                (key, reason)
            }
            other => panic!("not a metadata error: {other}"),
        }
    }

    #[test]
    fn names_the_key_of_a_missing_or_mistyped_value() {
        for key in [
            "tokenizer.ggml.model",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
        ] {
            let e = TokenizerSpec::from_gguf(&metadata(&[(key, None)])).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
            assert_eq!(metadata_error(e), (key.to_owned(), "missing".to_owned()));
        }
        for (key, value, reason) in [
            (
                "tokenizer.ggml.tokens",
                V::I32s(vec![1]),
                "an array of i32 where an array of strings belongs",
            ),
            (
                "tokenizer.ggml.model",
                V::U32(2),
                "a u32 where a string belongs",
            ),
            (
                "tokenizer.ggml.token_type",
                V::F32s(vec![1.0]),
                "an array of f32 where an array of i32 belongs",
            ),
            (
                "tokenizer.ggml.scores",
                V::Strs(vec![]),
                "an array of string where an array of f32 belongs",
            ),
            (
                "tokenizer.ggml.bos_token_id",
                V::I32(-1),
                "-1 is not a token id",
            ),
            (
                "tokenizer.ggml.eos_token_id",
                V::F32(1.0),
                "a f32 where an integer belongs",
            ),
            (
                "tokenizer.ggml.add_bos_token",
                V::U32(1),
                "a u32 where a bool belongs",
            ),
            (
                "tokenizer.chat_template",
                V::Bool(true),
                "a bool where a string belongs",
            ),
        ] {
            let e = TokenizerSpec::from_gguf(&metadata(&[(key, Some(value))])).unwrap_err();
            assert_eq!(metadata_error(e), (key.to_owned(), reason.to_owned()));
        }
    }

    /// The key and the inner error of a [`TokenizerError::InvalidMetadata`].
    fn invalid(e: TokenizerError) -> (String, TokenizerError) {
        match e {
            TokenizerError::InvalidMetadata { key, error, .. } => (key, *error),
            other => panic!("not an invalid-metadata error: {other}"),
        }
    }

    #[test]
    fn names_the_key_of_a_value_that_describes_no_tokenizer() {
        use TokenizerError as E;
        let short_types = V::I32s(vec![1; 271]);
        let e = TokenizerSpec::from_gguf(&metadata(&[(
            "tokenizer.ggml.token_type",
            Some(short_types),
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("tokenizer.ggml.token_type"), "{e}");
        let (key, e) = invalid(e);
        assert_eq!(key, "tokenizer.ggml.token_type");
        assert!(
            matches!(
                e,
                E::TokenTypesLength {
                    token_types: 271,
                    ..
                }
            ),
            "{e}"
        );
        let e = TokenizerSpec::from_gguf(&metadata(&[(
            "tokenizer.ggml.scores",
            Some(V::F32s(vec![0.0])),
        )]))
        .unwrap_err();
        assert!(
            matches!(invalid(e), (k, E::ScoresLength { scores: 1, .. }) if k == "tokenizer.ggml.scores")
        );
        let e = TokenizerSpec::from_gguf(&metadata(&[(
            "tokenizer.ggml.eos_token_id",
            Some(V::U32(272)),
        )]))
        .unwrap_err();
        assert!(
            matches!(invalid(e), (k, E::SpecialIdOutOfRange { name: "eos", .. }) if k == "tokenizer.ggml.eos_token_id")
        );
        let e = TokenizerSpec::from_gguf(&metadata(&[(
            "tokenizer.ggml.tokens",
            Some(V::Strs(vec![])),
        )]))
        .unwrap_err();
        assert!(matches!(invalid(e), (k, E::EmptyVocabulary) if k == "tokenizer.ggml.tokens"));
        // What only building finds, from Tokenizer::from_gguf.
        for (key, value) in [
            ("tokenizer.ggml.pre", V::Str("falcon".into())),
            ("tokenizer.ggml.model", V::Str("t5".into())),
            ("tokenizer.ggml.merges", V::Strs(vec!["q z".into()])),
            ("tokenizer.chat_template", V::Str("{% if %}".into())),
        ] {
            let e = Tokenizer::from_gguf(&metadata(&[(key, Some(value))])).unwrap_err();
            assert!(e.to_string().starts_with("<GGUF bytes>: metadata"), "{e}");
            let (k, e) = invalid(e);
            assert_eq!(k, key, "{e}");
        }
        let mut types = super::spec().token_types;
        types[9] = 17;
        let e = Tokenizer::from_gguf(&metadata(&[(
            "tokenizer.ggml.token_type",
            Some(V::I32s(types)),
        )]))
        .unwrap_err();
        assert!(
            matches!(invalid(e), (k, E::BadTokenType { id: 9, value: 17 }) if k == "tokenizer.ggml.token_type")
        );
    }
}

mod config_json {
    //! `tokenizer_config.json` as written by transformers.

    use super::super::*;

    #[test]
    fn reads_tokens_as_strings_or_objects_and_the_default_template() {
        let config = TokenizerConfig::from_json(
            r#"{
                "bos_token": "<s>",
                "eos_token": {"content": "</s>", "lstrip": false, "special": true},
                "unk_token": null,
                "add_bos_token": true,
                "model_max_length": 1000000,
                "chat_template": [
                    {"name": "tool_use", "template": "tools"},
                    {"name": "default", "template": "{{ messages }}"}
                ]
            }"#,
        )
        .unwrap();
        assert_eq!(
            config,
            TokenizerConfig {
                bos_token: Some("<s>".into()),
                eos_token: Some("</s>".into()),
                add_bos_token: Some(true),
                chat_template: Some("{{ messages }}".into()),
                ..TokenizerConfig::default()
            }
        );
        let plain =
            TokenizerConfig::from_json(r#"{"chat_template": "x", "pad_token": "<pad>"}"#).unwrap();
        assert_eq!(plain.chat_template.as_deref(), Some("x"));
        assert_eq!(plain.pad_token.as_deref(), Some("<pad>"));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for (json, needle) in [
            ("[]", "not a JSON object"),
            ("{", "EOF"),
            (r#"{"bos_token": 1}"#, "bos_token"),
            (r#"{"eos_token": {"special": true}}"#, "eos_token"),
            (r#"{"add_eos_token": "yes"}"#, "add_eos_token"),
            (r#"{"chat_template": 3}"#, "chat_template"),
            (r#"{"chat_template": [{"name": "default"}]}"#, "template"),
        ] {
            let e = TokenizerConfig::from_json(json).unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }

    #[test]
    fn a_gguf_tokenizer_loads_back_from_its_tokenizers_pipeline() {
        let tok = super::tok();
        let config = TokenizerConfig {
            bos_token: Some("<|im_start|>".into()),
            eos_token: Some("<|im_end|>".into()),
            ..TokenizerConfig::default()
        };
        let loaded = Tokenizer::from_hf(tok.inner().clone(), &config).unwrap();
        assert_eq!((loaded.bos(), loaded.eos()), (1, 2));
        assert!(!loaded.add_bos() && !loaded.add_eos());
        assert_eq!(
            loaded.token_type(super::THINK),
            Some(token_type::USER_DEFINED)
        );
        assert!(loaded.is_special(1));
        for text in ["hello the world<think>", "<|im_start|>a😀é", ""] {
            let ids = tok.encode(text).unwrap();
            assert_eq!(loaded.encode(text).unwrap(), ids);
            assert_eq!(loaded.decode(&ids, false).unwrap(), text);
            assert_eq!(super::stream_text(&loaded, &ids, false), text);
        }
        let e = Tokenizer::from_hf(tok.inner().clone(), &TokenizerConfig::default()).unwrap_err();
        assert!(
            matches!(e, TokenizerError::MissingSpecialToken { name: "bos_token" }),
            "{e}"
        );
    }
}

#[test]
fn a_tokenizers_pipeline_with_sparse_ids_is_refused() {
    use tokenizers::models::bpe::{Vocab, BPE};
    let vocab: Vocab = [("a".to_owned(), 0), ("b".to_owned(), 5_000_000)]
        .into_iter()
        .collect();
    let model = BPE::builder()
        .vocab_and_merges(vocab, vec![])
        .build()
        .unwrap();
    let config = TokenizerConfig {
        bos_token: Some("a".into()),
        eos_token: Some("a".into()),
        ..TokenizerConfig::default()
    };
    let e = Tokenizer::from_hf(tokenizers::Tokenizer::new(model), &config).unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::SparseIds {
                tokens: 2,
                max_id: 5_000_000
            }
        ),
        "{e}"
    );
}
