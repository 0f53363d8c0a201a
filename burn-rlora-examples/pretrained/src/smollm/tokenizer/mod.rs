//! The SmolLM2 tokenizer: byte-level BPE built with the `tokenizers` crate from
//! the vocabulary a GGUF file stores, its ChatML chat prompt, and a streaming
//! decoder for generation.
//!
//! The input is a [`TokenizerSpec`]: the `tokenizer.*` metadata of the GGUF file
//! as plain values, so this module reads no file itself. From it
//! [`SmolTokenizer::from_spec`] builds what SmolLM2's own `tokenizer.json`
//! describes:
//!
//! - a BPE model over `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`
//!   (no unknown token, no byte fallback, no dropout: in a byte-level
//!   vocabulary each byte is a token, except those the vocabulary never saw);
//! - the pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre`: for `smollm`,
//!   every Unicode number (`\p{N}`) split off on its own, then GPT-2's split
//!   regex on the rest, in `tokenizers`' terms `Digits(individual_digits)`
//!   then `ByteLevel(add_prefix_space = false, use_regex = true)`, as in
//!   SmolLM2's `tokenizer.json`; for `gpt2`, the GPT-2 regex alone;
//! - a `ByteLevel` decoder;
//! - the control tokens (`tokenizer.ggml.token_type` 3, such as `<|im_start|>`)
//!   as special tokens and the user-defined ones (4) as added tokens, so that
//!   either, written in the text, encodes as one token.
//!
//! Control tokens are recognised anywhere in the text given to
//! [`SmolTokenizer::encode`], as Hugging Face's tokenizers and llama.cpp (with
//! special-token parsing on) do: text from a user that must not open a turn of
//! its own has to be cleaned of them first.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::Tokenizer;

mod build;
mod chat;

use build::{
    added_tokens, check_special_ids, check_vocabulary, missing_bytes, parse_merges, pre_tokenizer,
};
pub use chat::{ChatFormat, ChatTurn};

/// The values of `tokenizer.ggml.token_type`, as llama.cpp writes them.
pub mod token_type {
    /// No type recorded.
    pub const UNDEFINED: i32 = 0;
    /// A token of the BPE vocabulary.
    pub const NORMAL: i32 = 1;
    /// The unknown token.
    pub const UNKNOWN: i32 = 2;
    /// A control token such as `<|im_start|>`: a special token.
    pub const CONTROL: i32 = 3;
    /// A token added by the model's authors, matched whole in the text but not special.
    pub const USER_DEFINED: i32 = 4;
    /// A slot the vocabulary does not use.
    pub const UNUSED: i32 = 5;
    /// A byte token (`<0x0A>`) of a SentencePiece vocabulary.
    pub const BYTE: i32 = 6;
}

/// The tokenizer as a GGUF file describes it: its `tokenizer.*` metadata.
///
/// Ids are positions in [`tokens`](Self::tokens). It can be written and read as
/// JSON with serde, under these field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`: the kind of vocabulary. Only `gpt2` (byte-level
    /// BPE) is supported.
    pub model: String,
    /// `tokenizer.ggml.tokens`: every token's text, spelled in GPT-2's byte
    /// alphabet (a space is `Ġ`, a newline `Ċ`); the position is the id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`: one [`token_type`] per token.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`: the BPE merges, best first, each two tokens
    /// joined by one space (`"Ġ t"`).
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`: the beginning-of-sequence token.
    pub bos: u32,
    /// `tokenizer.ggml.eos_token_id`: the end-of-sequence token (`<|im_end|>`
    /// for SmolLM2-Instruct, where generation stops).
    pub eos: u32,
    /// `tokenizer.ggml.padding_token_id`, if the file has one.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.pre`: llama.cpp's name of the pre-tokenizer. Supported:
    /// `smollm` and `gpt2`.
    pub pre: String,
    /// `tokenizer.chat_template`: the Jinja chat template, if the file has one.
    pub chat_template: Option<String>,
}

/// What can go wrong while building a tokenizer from a [`TokenizerSpec`] or
/// using it. Every variant names the value at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The spec has no token.
    #[error("the vocabulary is empty")]
    EmptyVocabulary,
    /// The vocabulary has more tokens than a `u32` id can number.
    #[error("the vocabulary has {0} tokens, more than u32 ids can number")]
    VocabularyTooLarge(usize),
    /// `tokens` and `token_types` differ in length.
    #[error("{tokens} tokens but {token_types} token types")]
    TokenTypesLength {
        /// The number of tokens.
        tokens: usize,
        /// The number of token types.
        token_types: usize,
    },
    /// A token type that llama.cpp does not define.
    #[error("token {id} has the token type {value}, which is none of 0..=6")]
    BadTokenType {
        /// The token's id.
        id: u32,
        /// Its type.
        value: i32,
    },
    /// `tokenizer.ggml.model` is not a byte-level BPE vocabulary.
    #[error("tokenizer model `{0}` is not supported: only `gpt2` (byte-level BPE) is")]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer this module does not build.
    #[error("pre-tokenizer `{0}` is not supported: only `smollm` and `gpt2` are")]
    UnsupportedPreTokenizer(String),
    /// The same text appears twice in the vocabulary.
    #[error("token {second} repeats the text {token:?} of token {first}")]
    DuplicateToken {
        /// The text.
        token: String,
        /// The first id with that text.
        first: u32,
        /// The repeated id.
        second: u32,
    },
    /// A merge that is not two tokens separated by one space.
    #[error("merge {index} ({merge:?}) is not two tokens separated by a space")]
    BadMerge {
        /// Its position in the merges.
        index: usize,
        /// Its text.
        merge: String,
    },
    /// A merge names a token, or makes one, that the vocabulary lacks.
    #[error("merge {index} ({merge:?}) needs the token {token:?}, which is not in the vocabulary")]
    UnknownMergeToken {
        /// Its position in the merges.
        index: usize,
        /// Its text.
        merge: String,
        /// The missing token.
        token: String,
    },
    /// The id of a special token (`bos`, `eos`, `pad`) is not in the vocabulary.
    #[error("the {name} id {id} is out of range for a vocabulary of {vocab_size} tokens")]
    SpecialIdOutOfRange {
        /// Which special token.
        name: &'static str,
        /// Its id.
        id: u32,
        /// The vocabulary's size.
        vocab_size: usize,
    },
    /// An id given to decode is not in the vocabulary.
    #[error("token id {id} is out of range for a vocabulary of {vocab_size} tokens")]
    IdOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary's size.
        vocab_size: usize,
    },
    /// The spec has no chat template.
    #[error("the tokenizer has no chat template")]
    NoChatTemplate,
    /// The chat template is not one [`ChatFormat::from_template`] recognises.
    #[error("the chat template is not one this tokenizer renders (only SmolLM2's ChatML): {0:?}")]
    UnsupportedChatTemplate(String),
    /// An error from the `tokenizers` crate.
    #[error("tokenizers: {0}")]
    Tokenizers(#[source] tokenizers::Error),
}

/// GPT-2's byte alphabet (`bytes_to_unicode`): the printable bytes spell
/// themselves, the others (space, controls, ...) take U+0100 onwards in order.
static BYTE_CHARS: LazyLock<[char; 256]> = LazyLock::new(|| {
    let mut table = ['\0'; 256];
    let mut next = 0x100u32;
    for byte in 0..=255u8 {
        table[usize::from(byte)] = if matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF) {
            char::from(byte)
        } else {
            next += 1;
            char::from_u32(next - 1).expect("U+0100..U+0144 are chars")
        };
    }
    table
});

/// The inverse of [`BYTE_CHARS`].
static CHAR_BYTES: LazyLock<HashMap<char, u8>> = LazyLock::new(|| {
    (0..=255u8)
        .map(|byte| (BYTE_CHARS[usize::from(byte)], byte))
        .collect()
});

/// The bytes a token stands for, as the `ByteLevel` decoder finds them: each
/// character of the byte alphabet is one byte; a token with any other
/// character (an added token stored as plain text) is its own UTF-8.
fn token_bytes(token: &str) -> Vec<u8> {
    token
        .chars()
        .map(|c| CHAR_BYTES.get(&c).copied())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| token.as_bytes().to_vec())
}

/// SmolLM2's tokenizer, built from the GGUF metadata (see the module's
/// documentation for what it is made of).
#[derive(Debug, Clone)]
pub struct SmolTokenizer {
    inner: Tokenizer,
    tokens: Vec<String>,
    special: Vec<bool>,
    missing_bytes: Vec<u8>,
    ids: HashMap<String, u32>,
    bos: u32,
    eos: u32,
    pad: Option<u32>,
    chat_template: Option<String>,
    chat_format: Option<ChatFormat>,
}

impl SmolTokenizer {
    /// Builds the tokenizer `spec` describes, after checking it: a `gpt2`
    /// model, a supported pre-tokenizer, one known type per token, no repeated
    /// token, merges of known tokens into known tokens, and special ids in
    /// range.
    ///
    /// A byte-level vocabulary need not have a token for every byte: SmolLM2's
    /// lacks 21 (six control characters and bytes such as 0xC0, 0xF1 or 0xFF
    /// that never or hardly ever occur in UTF-8). [`encode`](Self::encode)
    /// drops such bytes, as llama.cpp and Hugging Face's tokenizers do with
    /// this vocabulary; [`missing_bytes`](Self::missing_bytes) lists them.
    pub fn from_spec(spec: TokenizerSpec) -> Result<Self, TokenizerError> {
        let ids = check_vocabulary(&spec)?;
        check_special_ids(&spec)?;
        let merges = parse_merges(&spec.merges, &ids)?;
        let vocab: Vocab = ids.iter().map(|(t, &id)| (t.clone(), id)).collect();
        let model = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .byte_fallback(false)
            .build()
            .map_err(TokenizerError::Tokenizers)?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_pre_tokenizer(Some(pre_tokenizer(&spec.pre)?))
            .with_decoder(Some(ByteLevelDecoder::default()));
        inner.add_special_tokens(&added_tokens(&spec, token_type::CONTROL));
        inner.add_tokens(&added_tokens(&spec, token_type::USER_DEFINED));
        let special = spec
            .token_types
            .iter()
            .map(|&t| t == token_type::CONTROL)
            .collect();
        let chat_format = spec
            .chat_template
            .as_deref()
            .and_then(ChatFormat::from_template);
        Ok(Self {
            inner,
            tokens: spec.tokens,
            special,
            missing_bytes: missing_bytes(&ids),
            ids,
            bos: spec.bos,
            eos: spec.eos,
            pad: spec.pad,
            chat_template: spec.chat_template,
            chat_format,
        })
    }

    /// The ids of `text`. Control tokens written in the text encode as
    /// themselves; bytes without a token
    /// ([`missing_bytes`](Self::missing_bytes)) are dropped. No
    /// beginning-of-sequence token is added: the chat template writes its
    /// own control tokens, and [`encode_with_bos`](Self::encode_with_bos)
    /// puts [`bos`](Self::bos) first.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(TokenizerError::Tokenizers)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The ids of `text` as [`encode`](Self::encode) gives them, with the
    /// beginning-of-sequence token first.
    pub fn encode_with_bos(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = vec![self.bos];
        ids.extend(self.encode(text)?);
        Ok(ids)
    }

    /// The text of `ids`; with `skip_special`, without the control tokens.
    /// Bytes that are not valid UTF-8 (a character cut off at either end)
    /// decode as U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.check_ids(ids)?;
        self.inner
            .decode(ids, skip_special)
            .map_err(TokenizerError::Tokenizers)
    }

    /// A decoder that turns ids into text one at a time, for printing tokens
    /// as they are generated.
    pub fn stream_decoder(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder {
            tokenizer: self,
            skip_special,
            pending: Vec::new(),
        }
    }

    /// The chat prompt for `turns`, rendered as the spec's chat template does
    /// (see [`ChatFormat`]); with `add_generation_prompt`, ending with the
    /// opening of the assistant's turn. Errors if the spec has no template, or
    /// one that is not ChatML as [`ChatFormat::from_template`] recognises it.
    pub fn chat_prompt(
        &self,
        turns: &[ChatTurn],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        match (&self.chat_format, &self.chat_template) {
            (Some(format), _) => Ok(format.render(turns, add_generation_prompt)),
            (None, Some(template)) => {
                Err(TokenizerError::UnsupportedChatTemplate(template.clone()))
            }
            (None, None) => Err(TokenizerError::NoChatTemplate),
        }
    }

    /// The chat template's format, if it is one this module renders.
    pub fn chat_format(&self) -> Option<&ChatFormat> {
        self.chat_format.as_ref()
    }

    /// The beginning-of-sequence id.
    pub fn bos(&self) -> u32 {
        self.bos
    }

    /// The end-of-sequence id.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// The padding id, if the spec has one.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// The number of tokens, added ones included: every id is below it.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of the token spelled `token` (in the byte alphabet: `"Ġthe"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The spelling of token `id`, as the vocabulary has it.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Whether `id` is a control token (skipped by `skip_special`).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// The bytes that have no token, in increasing order: `encode` drops them
    /// (see [`from_spec`](Self::from_spec)).
    pub fn missing_bytes(&self) -> &[u8] {
        &self.missing_bytes
    }

    /// The `tokenizers` tokenizer underneath.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    fn check_ids(&self, ids: &[u32]) -> Result<(), TokenizerError> {
        let vocab_size = self.vocab_size();
        match ids.iter().find(|&&id| id as usize >= vocab_size) {
            Some(&id) => Err(TokenizerError::IdOutOfRange { id, vocab_size }),
            None => Ok(()),
        }
    }
}

/// Turns ids into text one at a time (see [`SmolTokenizer::stream_decoder`]).
///
/// A token may end inside a UTF-8 character (an emoji is often two or three
/// tokens): its bytes are held back until the character is complete, so no
/// step prints half a character. The steps' texts joined, followed by
/// [`finish`](Self::finish), equal [`SmolTokenizer::decode`] of all the ids.
#[derive(Debug, Clone)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a SmolTokenizer,
    skip_special: bool,
    pending: Vec<u8>,
}

impl StreamDecoder<'_> {
    /// The text `id` completes, or `None` if it only adds to an unfinished
    /// character (or is a skipped control token). Bytes that can start no
    /// character come out as U+FFFD, as in `decode`.
    pub fn step(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        self.tokenizer.check_ids(&[id])?;
        if self.skip_special && self.tokenizer.is_special(id) {
            return Ok(None);
        }
        let token = &self.tokenizer.tokens[id as usize];
        self.pending.extend(token_bytes(token));
        let (text, used) = complete_utf8(&self.pending);
        self.pending.drain(..used);
        Ok((!text.is_empty()).then_some(text))
    }

    /// The bytes still held back, as text (U+FFFD for an unfinished
    /// character), or `None` if there are none.
    pub fn finish(self) -> Option<String> {
        (!self.pending.is_empty()).then(|| String::from_utf8_lossy(&self.pending).into_owned())
    }
}

/// The text of `bytes` up to a character cut off at the end, if any, and the
/// number of bytes it took. Invalid sequences become U+FFFD, one for each, as
/// `String::from_utf8_lossy` writes them.
fn complete_utf8(mut bytes: &[u8]) -> (String, usize) {
    let total = bytes.len();
    let mut out = String::new();
    loop {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                out.push_str(text);
                return (out, total);
            }
            Err(e) => {
                let (valid, after) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let Some(invalid) = e.error_len() else {
                    // Cut off at the end: held back for the next token.
                    return (out, total - after.len());
                };
                out.push(char::REPLACEMENT_CHARACTER);
                bytes = &after[invalid..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! A hand-made vocabulary: three control tokens (ids 0-2), the 256 byte
    //! tokens in byte order (id = 3 + byte: `Ġ`, the space, is 35), twelve
    //! merged tokens (259-270) and one user-defined token (271).

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
        }
    }

    fn tok() -> SmolTokenizer {
        SmolTokenizer::from_spec(spec()).expect("the tiny spec builds")
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
        assert!(tok.is_special(1) && !tok.is_special(THINK) && !tok.is_special(999));
    }

    #[test]
    fn encodes_by_the_merges_in_rank_order() {
        let tok = tok();
        let w = [b'w', b'o', b'r', b'l', b'd'].map(b);
        let expected = [vec![HELLO, THE, b(b' ')], w.to_vec()].concat();
        assert_eq!(tok.encode("hello the world").unwrap(), expected);
        assert_eq!(tok.encode_with_bos("hello").unwrap(), [1, HELLO]);
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
    fn smollm_splits_every_digit_and_gpt2_does_not() {
        assert_eq!(tok().encode("12").unwrap(), [b(b'1'), b(b'2')]);
        // "\p{N}" is split off before GPT-2's regex: the two spaces stay together.
        assert_eq!(tok().encode("a  1").unwrap(), [b(b'a'), SPACES, b(b'1')]);
        let gpt2 = SmolTokenizer::from_spec(TokenizerSpec {
            pre: "gpt2".into(),
            ..spec()
        })
        .unwrap();
        assert_eq!(gpt2.encode("12").unwrap(), [TWELVE]);
        assert_eq!(
            gpt2.encode("a  1").unwrap(),
            [b(b'a'), b(b' '), b(b' '), b(b'1')]
        );
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
            let mut stream = tok.stream_decoder(skip);
            let mut text: String = ids
                .iter()
                .filter_map(|&id| stream.step(id).unwrap())
                .collect();
            text.extend(stream.finish());
            assert_eq!(text, tok.decode(&ids, skip).unwrap());
        }
    }

    #[test]
    fn renders_smollm2_chatml_with_its_default_system_turn() {
        let tok = tok();
        let system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
        assert_eq!(
            tok.chat_format(),
            Some(&ChatFormat::ChatMl {
                default_system: Some(system.into())
            })
        );
        let turns = [ChatTurn::user("Hi"), ChatTurn::assistant("Hello!")];
        assert_eq!(
            tok.chat_prompt(&turns, true).unwrap(),
            format!(
                "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
                 <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n"
            )
        );
        let own = [ChatTurn::system("Be brief."), ChatTurn::user("Hi")];
        assert_eq!(
            tok.chat_prompt(&own, false).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
        assert_eq!(tok.chat_prompt(&[], false).unwrap(), "");
        assert_eq!(
            tok.chat_prompt(&[], true).unwrap(),
            "<|im_start|>assistant\n"
        );
    }

    #[test]
    fn recognises_only_the_chatml_templates() {
        let plain = TEMPLATE.replace(
            "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n\
             You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}\
             {% endif %}",
            "",
        );
        assert_ne!(plain, TEMPLATE);
        let format = ChatFormat::from_template(&plain).unwrap();
        assert_eq!(
            format,
            ChatFormat::ChatMl {
                default_system: None
            }
        );
        assert_eq!(
            format.render(&[ChatTurn::user("Hi")], false),
            "<|im_start|>user\nHi<|im_end|>\n"
        );
        let escaped = TEMPLATE.replace("You are", "It\\'s\\nyou, ");
        assert_eq!(
            ChatFormat::from_template(&escaped),
            Some(ChatFormat::ChatMl {
                default_system: Some(
                    "It's\nyou,  a helpful AI assistant named SmolLM, trained by Hugging Face"
                        .into()
                )
            })
        );
        for other in [
            TEMPLATE.replace("{% endfor %}", " {% endfor %}"),
            TEMPLATE.replace("You are", "It's"),
            TEMPLATE.replace("You are", "\\x"),
            "{{ messages }}".to_owned(),
            String::new(),
        ] {
            assert_eq!(ChatFormat::from_template(&other), None, "{other}");
            let tok = SmolTokenizer::from_spec(TokenizerSpec {
                chat_template: Some(other),
                ..spec()
            })
            .unwrap();
            assert!(matches!(
                tok.chat_prompt(&[], true),
                Err(TokenizerError::UnsupportedChatTemplate(_))
            ));
        }
        let none = SmolTokenizer::from_spec(TokenizerSpec {
            chat_template: None,
            ..spec()
        })
        .unwrap();
        assert!(matches!(
            none.chat_prompt(&[], true),
            Err(TokenizerError::NoChatTemplate)
        ));
    }

    fn build_error(change: impl FnOnce(&mut TokenizerSpec)) -> TokenizerError {
        let mut spec = spec();
        change(&mut spec);
        SmolTokenizer::from_spec(spec).expect_err("the spec is refused")
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
        let e = build_error(|s| s.model = "llama".into());
        assert!(
            matches!(e, E::UnsupportedModel(ref m) if m == "llama"),
            "{e}"
        );
        let e = build_error(|s| s.pre = "qwen2".into());
        assert!(
            matches!(e, E::UnsupportedPreTokenizer(ref p) if p == "qwen2"),
            "{e}"
        );
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
    }

    #[test]
    fn drops_bytes_without_a_token_as_the_references_do() {
        assert_eq!(tok().missing_bytes(), &[] as &[u8]);
        // Byte 0x04 renamed away, as in SmolLM2's vocabulary.
        let mut spec = spec();
        spec.tokens[b(0x04) as usize] = "<unused>".into();
        let tok = SmolTokenizer::from_spec(spec).unwrap();
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
        assert_eq!(SmolTokenizer::from_spec(spec).unwrap().pad(), None);
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
        let spec = spec();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<TokenizerSpec>(&json).unwrap(), spec);
    }
}
