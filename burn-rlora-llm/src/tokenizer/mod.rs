//! Tokenizers of decoder LLMs: the vocabulary a GGUF file describes (or a
//! Hugging Face `tokenizer.json`), built with the `tokenizers` crate, and a
//! streaming decoder for generation.
//!
//! # From a GGUF file
//!
//! The input is a [`TokenizerSpec`]: the `tokenizer.*` metadata of the file as
//! plain values ([`TokenizerSpec::from_gguf`] reads it; [`Tokenizer::from_gguf`]
//! reads and builds in one call, naming the file and the key of any value it
//! refuses). [`Tokenizer::from_spec`] builds the pipeline llama.cpp runs for
//! that metadata (`src/llama-vocab.cpp`, the authority a GGUF file is written
//! for), out of `tokenizers`' parts. Two kinds of vocabulary
//! (`tokenizer.ggml.model`) are supported:
//!
//! **`gpt2`: byte-level BPE** (SmolLM2, Llama 3, Qwen2, ...). A BPE model over
//! `tokenizer.ggml.tokens` and `tokenizer.ggml.merges` (no unknown token, no
//! byte fallback: in a byte-level vocabulary each byte is a token, except those
//! the vocabulary never saw, which are dropped as llama.cpp drops them), a
//! `ByteLevel` decoder, and the pre-tokenizer llama.cpp uses for
//! `tokenizer.ggml.pre` (its `LLAMA_VOCAB_PRE_TYPE_*` regexes, applied one
//! after the other, each splitting the pieces the previous left, as `Split`
//! pre-tokenizers with `Isolated` behaviour, then `ByteLevel` to spell the
//! pieces in GPT-2's byte alphabet):
//!
//! | `pre` | pieces |
//! |---|---|
//! | `smollm` | every `\p{N}` on its own (`Digits(individual_digits)`), then GPT-2's regex |
//! | `gpt2`, `gpt-2` | GPT-2's regex |
//! | `llama-bpe` (`llama3`, `llama-v3`) | Llama 3's regex (numbers in runs of up to three digits); a piece that is a token is taken whole (`ignore_merges`), and BOS is added by default |
//! | `qwen2` | Qwen2's regex (every digit on its own) |
//! | `default` (or no `pre`) | llama.cpp's default: runs of punctuation, GPT-2's regex, runs of digits, then runs of three ASCII digits |
//!
//! The regexes are llama.cpp's spelling: Llama 3's and Qwen2's
//! `(?i:'s|'t|...)` is written `(?:'[sS]|'[tT]|...)`, which differs from the
//! case-insensitive form for the few letters whose case folding leaves ASCII
//! (`'ſ`).
//!
//! **`llama`: SentencePiece** (Gemma, Llama 2, Mistral, TinyLlama). llama.cpp
//! tokenizes these with `llm_tokenizer_spm`: the text, its spaces written `▁`
//! (and a `▁` put first with `tokenizer.ggml.add_space_prefix`), is cut into
//! characters, and the adjacent pair whose concatenation is the token of
//! highest score (`tokenizer.ggml.scores`) is merged until no pair is a
//! token; a character that is no token is spelled with the byte tokens
//! `<0x00>`..`<0xFF>`. As transformers does (`convert_slow_tokenizer.py`'s
//! `generate_merges`, used by its GGUF conversion for Llama and Gemma), this
//! module turns that into a `tokenizers` BPE: every way of cutting a token in
//! two tokens is a merge, ranked by the score of the token it makes (best
//! first); the BPE model has byte fallback; a `Replace(" ", "▁")` normalizer
//! (after a `Prepend("▁")` with `add_space_prefix`) spells the spaces. The
//! merge order is the bigram order, so the two agree: a pair is merged when
//! no pair of higher score is left. Where merges of equal score compete,
//! llama.cpp takes the leftmost and the BPE the first in rank, which is
//! transformers' order (longer left part first); real vocabularies give
//! every normal token a score of its own, so this does not arise in them.
//! The derived merges are for the tokens a text can be merged into: the
//! control, user-defined and unknown tokens are matched whole in the text
//! before (below), so no merge makes them.
//!
//! Where llama.cpp and transformers differ, this module follows llama.cpp:
//!
//! - the space prefix is put before the text even when it starts with a
//!   space (`" a"` is `▁▁a`), and again after *every* control or
//!   user-defined token (llama.cpp's `is_prev_special`), as a `Prepend`
//!   normalizer does (each piece between added tokens is normalized on its
//!   own); transformers' `Metaspace` (`prepend_scheme = "first"`) prefixes
//!   only the start of the text, and only if it has no space there;
//! - the merges rank by the file's scores; transformers ranks Gemma's by the
//!   tokens' positions, the same order for the vocabularies seen (Gemma 3's
//!   scores fall with the position);
//! - Gemma's user-defined tokens of two or more spaces (`"  "`) are matched
//!   in the text as written, as llama.cpp does; transformers respells them
//!   with `▁` and lets merges make them, so that a `▁` written in the text
//!   can become one.
//!
//! **In both**, the control tokens (`tokenizer.ggml.token_type` 3, such as
//! `<|im_start|>` or `<start_of_turn>`) and the unknown token (type 2) are
//! special tokens and the user-defined ones (4, such as `<think>` or Gemma's
//! runs of newlines) are added tokens: written in the text, any of them
//! encodes as itself, matched before anything else as llama.cpp does with
//! special-token parsing on. Text from a user that must not open a turn of its
//! own has to be cleaned of them first.
//!
//! # From a `tokenizer.json`
//!
//! [`Tokenizer::from_tokenizer_json`] loads Hugging Face's format as it is,
//! with the special tokens, the BOS/EOS flags and the chat template of the
//! `tokenizer_config.json` beside it ([`TokenizerConfig`], which can also be
//! given by hand with [`Tokenizer::from_hf`]).
//!
//! # Decoding
//!
//! [`Tokenizer::decode`] writes each token as llama.cpp's `token_to_piece`
//! does: a byte-level token through the byte alphabet, a SentencePiece token
//! with its `▁` as spaces and a byte token as its byte, a control token as its
//! text (or nothing, when skipping special tokens), a user-defined token as
//! its text, an unused one as nothing; bytes that do not make UTF-8 come out
//! as U+FFFD. With `add_space_prefix` the space that starts the text is
//! dropped, as transformers' `Strip` decoder does (llama.cpp keeps it when
//! the text follows a BOS it removes; this module gives the text that was
//! encoded back in both cases). [`Tokenizer::stream_decoder`] gives the
//! same text token by token, holding back the bytes of an unfinished
//! character.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokenizers::Tokenizer as HfTokenizer;

use crate::chat::{ChatTemplate, ChatTemplateError};

mod build;
mod decode;
mod gguf;
mod index;
mod json;
mod merges;

pub use crate::chat::ChatTurn;
pub use decode::StreamDecoder;
pub use json::TokenizerConfig;

use decode::Decoding;

/// The values of `tokenizer.ggml.token_type`, as llama.cpp writes them.
pub mod token_type {
    /// No type recorded.
    pub const UNDEFINED: i32 = 0;
    /// A token of the model's vocabulary.
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
/// JSON with serde, under these field names; the fields added after the first
/// version (`scores`, `unknown`, the `add_*` flags) may be left out, and so
/// may `merges`, `pad`, `pre` and `chat_template`. [`Default`] gives an
/// empty spec to fill in with `..Default::default()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`: the kind of vocabulary, `gpt2` (byte-level BPE)
    /// or `llama` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.tokens`: every token's text; the position is the id.
    /// A `gpt2` vocabulary spells its tokens in GPT-2's byte alphabet (a space
    /// is `Ġ`, a newline `Ċ`), a `llama` one writes spaces `▁` and bytes
    /// `<0x0A>`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`: one [`token_type`] per token.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.scores`: one score per token, which ranks the merges
    /// of a `llama` vocabulary (higher first). Empty if the file has none
    /// (allowed for `gpt2`, whose merges are given).
    #[serde(default)]
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.merges`: the BPE merges of a `gpt2` vocabulary, best
    /// first, each two tokens joined by one space (`"Ġ t"`). A `llama`
    /// vocabulary has none (its merges are derived from the scores; any
    /// given are ignored, as llama.cpp ignores them).
    #[serde(default)]
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`: the beginning-of-sequence token.
    pub bos: u32,
    /// `tokenizer.ggml.eos_token_id`: the end-of-sequence token (`<|im_end|>`
    /// for SmolLM2-Instruct, where generation stops).
    pub eos: u32,
    /// `tokenizer.ggml.unknown_token_id`, if the file has one. For a `llama`
    /// vocabulary without it, the first token of type
    /// [`token_type::UNKNOWN`] is the unknown token.
    #[serde(default)]
    pub unknown: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`, if the file has one.
    #[serde(default)]
    pub pad: Option<u32>,
    /// `tokenizer.ggml.pre`: llama.cpp's name of the pre-tokenizer of a `gpt2`
    /// vocabulary: `smollm`, `gpt2` (or `gpt-2`), `llama-bpe` (or `llama3`,
    /// `llama-v3`), `qwen2` or `default`; empty means `default`, as in
    /// llama.cpp. A `llama` vocabulary has no pre-tokenizer: the value is not
    /// read (Gemma's files say `default`).
    #[serde(default)]
    pub pre: String,
    /// `tokenizer.ggml.add_bos_token`, if the file has it. Without it, BOS is
    /// added by default for a `llama` vocabulary and for `llama-bpe`, as
    /// llama.cpp does.
    #[serde(default)]
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`, if the file has it (without it, no).
    #[serde(default)]
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`, if the file has it: whether a `llama`
    /// vocabulary puts a space before the text (without it, yes, as llama.cpp
    /// does; Gemma's files say no). Not read for `gpt2`.
    #[serde(default)]
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.chat_template`: the Jinja chat template, if the file has one.
    #[serde(default)]
    pub chat_template: Option<String>,
}

impl TokenizerSpec {
    /// Whether BOS is added by default: `add_bos`, or llama.cpp's default
    /// for the vocabulary (yes for `llama` and for the `llama-bpe` family).
    fn resolved_add_bos(&self) -> bool {
        self.add_bos.unwrap_or(
            self.model == "llama"
                || matches!(self.pre.as_str(), "llama-bpe" | "llama3" | "llama-v3"),
        )
    }

    /// Whether a `llama` vocabulary puts a space before the text.
    fn resolved_add_space_prefix(&self) -> bool {
        self.model == "llama" && self.add_space_prefix.unwrap_or(true)
    }
}

/// The kinds of vocabulary supported, for error messages.
const SUPPORTED_MODELS: &str = "`gpt2` (byte-level BPE) and `llama` (SentencePiece)";
/// The pre-tokenizers supported, for error messages.
const SUPPORTED_PRE: &str =
    "`smollm`, `gpt2` (`gpt-2`), `llama-bpe` (`llama3`, `llama-v3`), `qwen2` and `default`";

/// What can go wrong while building a tokenizer or using it. Every variant
/// names the value at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A `tokenizer.*` metadata value of a GGUF file is missing or of the
    /// wrong type.
    #[error("{file}: metadata {key:?}: {reason}")]
    Metadata {
        /// The GGUF file (`<GGUF bytes>` for bytes read from memory).
        file: String,
        /// The metadata key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `tokenizer.*` metadata value of a GGUF file reads but describes no
    /// tokenizer this module builds; `error` says why.
    #[error("{file}: metadata {key:?}: {error}")]
    InvalidMetadata {
        /// The GGUF file (`<GGUF bytes>` for bytes read from memory).
        file: String,
        /// The metadata key the error concerns.
        key: String,
        /// The error, as [`Tokenizer::from_spec`] reports it.
        error: Box<TokenizerError>,
    },
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
    /// `tokens` and `scores` differ in length (a `llama` vocabulary needs a
    /// score per token; a `gpt2` one may have none).
    #[error("{tokens} tokens but {scores} scores")]
    ScoresLength {
        /// The number of tokens.
        tokens: usize,
        /// The number of scores.
        scores: usize,
    },
    /// A score that is not a number.
    #[error("token {id} has the score {value}, which is not a number")]
    BadScore {
        /// The token's id.
        id: u32,
        /// Its score.
        value: f32,
    },
    /// A token type that llama.cpp does not define.
    #[error("token {id} has the token type {value}, which is none of 0..=6")]
    BadTokenType {
        /// The token's id.
        id: u32,
        /// Its type.
        value: i32,
    },
    /// `tokenizer.ggml.model` is a kind of vocabulary this module does not build.
    #[error("tokenizer model `{0}` is not supported: supported are {SUPPORTED_MODELS}")]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer this module does not build.
    #[error("pre-tokenizer `{0}` is not supported: supported are {SUPPORTED_PRE}")]
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
    /// A token of a `llama` vocabulary too long for its merges to be derived
    /// in bounded time.
    #[error(
        "token {id} is {bytes} bytes long, more than the {max} a SentencePiece token may have"
    )]
    TokenTooLong {
        /// The token's id.
        id: u32,
        /// Its length in bytes.
        bytes: usize,
        /// The longest allowed.
        max: usize,
    },
    /// A token of type [`token_type::BYTE`] that is not spelled `<0xNN>`.
    #[error(
        "token {id} ({token:?}) is a byte token but not spelled <0xNN> (two upper-case hex digits)"
    )]
    BadByteToken {
        /// The token's id.
        id: u32,
        /// Its text.
        token: String,
    },
    /// A `llama` vocabulary lacks byte tokens `<0xNN>` for byte fallback: it
    /// has some but not all 256, or none and no unknown token either (so a
    /// character outside the vocabulary could not be encoded).
    #[error(
        "the SentencePiece vocabulary has no byte token for {} of the 256 bytes ({}){}",
        .missing.len(),
        byte_list(.missing),
        if .missing.len() == 256 { " and no unknown token" } else { "" }
    )]
    MissingByteTokens {
        /// The bytes without a `<0xNN>` token, in increasing order.
        missing: Vec<u8>,
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
    /// The id of a special token (`bos`, `eos`, `unknown`, `pad`) is not in
    /// the vocabulary.
    #[error("the {name} id {id} is out of range for a vocabulary of {vocab_size} tokens")]
    SpecialIdOutOfRange {
        /// Which special token.
        name: &'static str,
        /// Its id.
        id: u32,
        /// The vocabulary's size.
        vocab_size: usize,
    },
    /// The ids of a `tokenizer.json` leave too many gaps: they must number
    /// its tokens from 0 (a few gaps are allowed; each id below the largest
    /// takes room).
    #[error("the tokenizer has {tokens} tokens but ids up to {max_id}")]
    SparseIds {
        /// The number of tokens.
        tokens: usize,
        /// The largest id.
        max_id: u32,
    },
    /// A `tokenizer.json` comes without a special token the tokenizer needs.
    #[error("no {name} is given: set it in tokenizer_config.json or in the TokenizerConfig")]
    MissingSpecialToken {
        /// Which one: `bos_token` or `eos_token`.
        name: &'static str,
    },
    /// A special token named by a `tokenizer_config.json` (or a
    /// [`TokenizerConfig`]) is not in the vocabulary.
    #[error("the {name} {token:?} is not a token of the vocabulary")]
    UnknownSpecialToken {
        /// Which one: `bos_token`, `eos_token`, `unk_token` or `pad_token`.
        name: &'static str,
        /// Its text.
        token: String,
    },
    /// A `tokenizer.json` or `tokenizer_config.json` could not be read.
    #[error("{}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `tokenizer.json` or `tokenizer_config.json` is not what it should be.
    #[error("{}: {reason}", .path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An id given to decode is not in the vocabulary.
    #[error("token id {id} is out of range for a vocabulary of {vocab_size} tokens")]
    IdOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary's size.
        vocab_size: usize,
    },
    /// The tokenizer has no chat template.
    #[error(
        "the tokenizer has no chat template: encode the text as it is for raw continuation, \
         or give a template (Tokenizer::with_chat_template)"
    )]
    NoChatTemplate,
    /// The chat template does not compile, or refuses to render.
    #[error(transparent)]
    ChatTemplate(#[from] ChatTemplateError),
    /// An error from the `tokenizers` crate.
    #[error("tokenizers: {0}")]
    Tokenizers(#[source] tokenizers::Error),
}

/// `bytes` as hex, at most eight of them.
fn byte_list(bytes: &[u8]) -> String {
    let mut out: Vec<String> = bytes.iter().take(8).map(|b| format!("0x{b:02X}")).collect();
    if bytes.len() > 8 {
        out.push("...".into());
    }
    out.join(", ")
}

/// A tokenizer built from a GGUF file's metadata or a `tokenizer.json` (see
/// the module's documentation for what it is made of).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: HfTokenizer,
    tokens: Vec<String>,
    token_types: Vec<i32>,
    decoding: Decoding,
    missing_bytes: Vec<u8>,
    bos: u32,
    eos: u32,
    pad: Option<u32>,
    unknown: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    chat_template: Option<ChatTemplate>,
}

impl Tokenizer {
    /// Builds the tokenizer `spec` describes, after checking it: a supported
    /// model and pre-tokenizer, one known type per token (and, for `llama`,
    /// one score), no repeated token, merges of known tokens into known tokens
    /// (`gpt2`) or byte tokens for byte fallback (`llama`), special ids in
    /// range, and a chat template that compiles.
    ///
    /// A byte-level vocabulary need not have a token for every byte: SmolLM2's
    /// lacks 21 (six control characters and bytes such as 0xC0, 0xF1 or 0xFF
    /// that never or hardly ever occur in UTF-8). [`encode`](Self::encode)
    /// drops such bytes, as llama.cpp and Hugging Face's tokenizers do with
    /// this vocabulary; [`missing_bytes`](Self::missing_bytes) lists them.
    pub fn from_spec(spec: TokenizerSpec) -> Result<Self, TokenizerError> {
        let built = build::build(&spec)?;
        let chat_template = spec
            .chat_template
            .as_deref()
            .map(ChatTemplate::new)
            .transpose()?;
        let add_bos = spec.resolved_add_bos();
        let decoding = match spec.model.as_str() {
            "llama" => Decoding::SentencePiece {
                strip_leading_space: spec.resolved_add_space_prefix(),
            },
            _ => Decoding::ByteLevel,
        };
        Ok(Self {
            inner: built.inner,
            tokens: spec.tokens,
            token_types: spec.token_types,
            decoding,
            missing_bytes: built.missing_bytes,
            bos: spec.bos,
            eos: spec.eos,
            pad: spec.pad,
            unknown: built.unknown,
            add_bos,
            add_eos: spec.add_eos.unwrap_or(false),
            chat_template,
        })
    }

    /// The ids of `text`, without any token added. Control tokens written in
    /// the text encode as themselves; in a byte-level vocabulary, bytes
    /// without a token ([`missing_bytes`](Self::missing_bytes)) are dropped.
    /// The chat template writes its own control tokens;
    /// [`encode_with_bos`](Self::encode_with_bos) puts [`bos`](Self::bos)
    /// first and [`encode_with_special_tokens`](Self::encode_with_special_tokens)
    /// adds what the vocabulary asks for.
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

    /// The ids of `text` as a model reads a plain text: [`bos`](Self::bos)
    /// first if [`add_bos`](Self::add_bos), the ids of [`encode`](Self::encode),
    /// and [`eos`](Self::eos) last if [`add_eos`](Self::add_eos) (llama.cpp's
    /// `tokenize` with `add_special`).
    pub fn encode_with_special_tokens(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        if self.add_bos {
            ids.push(self.bos);
        }
        ids.extend(self.encode(text)?);
        if self.add_eos {
            ids.push(self.eos);
        }
        Ok(ids)
    }

    /// The text of `ids`; with `skip_special`, without the control tokens (see
    /// the module's documentation for how each token is written). Bytes that
    /// are not valid UTF-8 (a character cut off at either end) decode as
    /// U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.check_ids(ids)?;
        decode::decode(self, ids, skip_special)
    }

    /// A decoder that turns ids into text one at a time, for printing tokens
    /// as they are generated.
    pub fn stream_decoder(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, skip_special)
    }

    /// The chat template: the file's (`tokenizer.chat_template`, or the
    /// `tokenizer_config.json`'s), unless [`with_chat_template`](Self::with_chat_template)
    /// replaced it.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// The tokenizer with `template` as its chat template, in place of the
    /// file's (`None` removes it).
    pub fn with_chat_template(mut self, template: Option<ChatTemplate>) -> Self {
        self.chat_template = template;
        self
    }

    /// The chat prompt for `turns`, rendered by the chat template with
    /// [`bos_token`](Self::bos_token) and [`eos_token`](Self::eos_token); with
    /// `add_generation_prompt`, ending with the opening of the assistant's
    /// turn. Encode it with [`encode`](Self::encode) (the template writes the
    /// BOS it wants). Errors if there is no template
    /// ([`TokenizerError::NoChatTemplate`]) or the template refuses the
    /// conversation or fails ([`TokenizerError::ChatTemplate`]).
    pub fn chat_prompt(
        &self,
        turns: &[ChatTurn],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let template = self
            .chat_template
            .as_ref()
            .ok_or(TokenizerError::NoChatTemplate)?;
        Ok(template.render(
            turns,
            add_generation_prompt,
            self.bos_token(),
            self.eos_token(),
        )?)
    }

    /// The beginning-of-sequence id.
    pub fn bos(&self) -> u32 {
        self.bos
    }

    /// The end-of-sequence id.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// The text of the beginning-of-sequence token (`<bos>`, `<s>`), as a
    /// chat template writes it (`bos_token`).
    pub fn bos_token(&self) -> &str {
        self.token_text(self.bos)
    }

    /// The text of the end-of-sequence token (`<eos>`, `<|im_end|>`), as a
    /// chat template writes it (`eos_token`).
    pub fn eos_token(&self) -> &str {
        self.token_text(self.eos)
    }

    /// The padding id, if the vocabulary has one.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// The unknown token's id, if the vocabulary has one. A SentencePiece
    /// vocabulary with byte tokens never produces it (characters outside the
    /// vocabulary fall back to bytes); it is what `<unk>` written in the text
    /// encodes to.
    pub fn unknown(&self) -> Option<u32> {
        self.unknown
    }

    /// Whether a model reading plain text wants BOS first
    /// (`tokenizer.ggml.add_bos_token`, or llama.cpp's default: yes for
    /// SentencePiece vocabularies and Llama 3's, no for other byte-level
    /// ones such as SmolLM2's; for a `tokenizer.json`, `add_bos_token` of its
    /// config, or whether its post-processor adds BOS).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether a model reading plain text wants EOS last
    /// (`tokenizer.ggml.add_eos_token`; without it, no).
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether a space is put before the text (SentencePiece vocabularies
    /// with `tokenizer.ggml.add_space_prefix`, Llama 2's for one), and dropped
    /// again when decoding.
    pub fn add_space_prefix(&self) -> bool {
        matches!(
            self.decoding,
            Decoding::SentencePiece {
                strip_leading_space: true
            }
        )
    }

    /// The number of tokens, added ones included: every id is below it.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of the token spelled `token`, as the vocabulary spells it
    /// (`"Ġthe"` in a byte-level vocabulary, `"▁the"` in a SentencePiece
    /// one, `"<|im_start|>"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The spelling of token `id`, as the vocabulary has it.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Whether `id` is a special token: a control token or the unknown token
    /// (skipped by `skip_special`).
    pub fn is_special(&self, id: u32) -> bool {
        matches!(
            self.token_types.get(id as usize),
            Some(&(token_type::CONTROL | token_type::UNKNOWN))
        )
    }

    /// The type of token `id` ([`token_type`]). For a `tokenizer.json`:
    /// special added tokens are [`token_type::CONTROL`], other added tokens
    /// [`token_type::USER_DEFINED`], the rest [`token_type::NORMAL`].
    pub fn token_type(&self, id: u32) -> Option<i32> {
        self.token_types.get(id as usize).copied()
    }

    /// The bytes a byte-level vocabulary has no token for, in increasing
    /// order: `encode` drops them (see [`from_spec`](Self::from_spec)). Empty
    /// for other vocabularies (a SentencePiece vocabulary spells such
    /// characters with byte tokens, or the unknown token).
    pub fn missing_bytes(&self) -> &[u8] {
        &self.missing_bytes
    }

    /// The `tokenizers` tokenizer underneath (it can be saved as a
    /// `tokenizer.json`).
    pub fn inner(&self) -> &HfTokenizer {
        &self.inner
    }

    /// The text of token `id` as stored, or `""` for an id out of range.
    fn token_text(&self, id: u32) -> &str {
        self.id_to_token(id).unwrap_or_default()
    }

    fn check_ids(&self, ids: &[u32]) -> Result<(), TokenizerError> {
        let vocab_size = self.vocab_size();
        match ids.iter().find(|&&id| id as usize >= vocab_size) {
            Some(&id) => Err(TokenizerError::IdOutOfRange { id, vocab_size }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
