//! Checks of a [`TokenizerSpec`] and the `tokenizers` pipeline built from it.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer as HfTokenizer};

use super::decode::BYTE_CHARS;
use super::index::{bpe_tokenizer, BpeOptions, TokenIndex};
use super::merges::derived_merges;
use super::{token_type, TokenizerError, TokenizerSpec};

/// SentencePiece's meta symbol for a space.
pub(super) const SPACE: &str = "\u{2581}";

/// GPT-2's split regex, as llama.cpp writes it.
const GPT2_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's split regex, as llama.cpp adapts it (`LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
const LLAMA3_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split regex, as llama.cpp adapts it (`LLAMA_VOCAB_PRE_TYPE_QWEN2`).
const QWEN2_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's default BPE pre-tokenization (`LLAMA_VOCAB_PRE_TYPE_DEFAULT`),
/// its regexes applied in turn.
const DEFAULT_REGEXES: [&str; 4] = [
    r"[\p{P}\$\+<=>\^~\|]+",
    GPT2_REGEX,
    r"\p{N}+",
    "[0-9][0-9][0-9]",
];

/// The longest token (in bytes) of a `llama` vocabulary whose merges are
/// derived: every way of cutting it is looked up, so the work grows with the
/// square of its length. SentencePiece's own limit is 16 characters (64
/// bytes of UTF-8); Gemma 3's longest token has 48 bytes.
pub(super) const MAX_SPM_TOKEN_BYTES: usize = 1024;

/// What [`build`] makes besides the `tokenizers` tokenizer.
pub(super) struct Built {
    /// The tokenizer.
    pub inner: HfTokenizer,
    /// The bytes a byte-level vocabulary has no token for.
    pub missing_bytes: Vec<u8>,
    /// The unknown token, if any.
    pub unknown: Option<u32>,
}

/// Checks `spec` and builds its pipeline.
pub(super) fn build(spec: &TokenizerSpec) -> Result<Built, TokenizerError> {
    let ids = check_vocabulary(spec)?;
    check_special_ids(spec)?;
    let (mut inner, missing_bytes, unknown) = match spec.model.as_str() {
        "gpt2" => {
            let (pre_tokenizer, ignore_merges) = pre_tokenizer(&spec.pre)?;
            let merges = parse_merges(&spec.merges, &ids)?;
            let options = BpeOptions {
                byte_fallback: false,
                fuse_unk: false,
                ignore_merges,
                unk_token: None,
            };
            let mut inner = bpe_tokenizer(&spec.tokens, merges.into_iter(), &options)?;
            inner
                .with_pre_tokenizer(Some(pre_tokenizer))
                .with_decoder(Some(ByteLevelDecoder::default()));
            (inner, missing_bytes(&ids), spec.unknown)
        }
        "llama" => {
            let (inner, unknown) = sentencepiece(spec, &ids)?;
            (inner, Vec::new(), unknown)
        }
        other => return Err(TokenizerError::UnsupportedModel(other.to_owned())),
    };
    // Both kinds are matched in the raw text (leftmost, longest first)
    // before anything else runs on it.
    inner.add_special_tokens(&added_tokens(
        spec,
        &[token_type::CONTROL, token_type::UNKNOWN],
        true,
    ));
    inner.add_tokens(&added_tokens(spec, &[token_type::USER_DEFINED], false));
    Ok(Built {
        inner,
        missing_bytes,
        unknown,
    })
}

/// Checks the spec's vocabulary (model, size, types, scores, repeated
/// tokens) and returns the id of every token text. Empty tokens (which
/// llama.cpp renames) are left out: they can be neither matched nor merged.
pub(super) fn check_vocabulary(spec: &TokenizerSpec) -> Result<TokenIndex<'_>, TokenizerError> {
    if !matches!(spec.model.as_str(), "gpt2" | "llama") {
        return Err(TokenizerError::UnsupportedModel(spec.model.clone()));
    }
    check_vocab_len(spec.tokens.len())?;
    if spec.tokens.len() != spec.token_types.len() {
        return Err(TokenizerError::TokenTypesLength {
            tokens: spec.tokens.len(),
            token_types: spec.token_types.len(),
        });
    }
    let scores_needed = spec.model == "llama" || !spec.scores.is_empty();
    if scores_needed && spec.scores.len() != spec.tokens.len() {
        return Err(TokenizerError::ScoresLength {
            tokens: spec.tokens.len(),
            scores: spec.scores.len(),
        });
    }
    if let Some((id, &value)) = (0u32..).zip(&spec.scores).find(|(_, s)| s.is_nan()) {
        return Err(TokenizerError::BadScore { id, value });
    }
    if let Some((id, &value)) = (0u32..)
        .zip(&spec.token_types)
        .find(|(_, kind)| !(token_type::UNDEFINED..=token_type::BYTE).contains(*kind))
    {
        return Err(TokenizerError::BadTokenType { id, value });
    }
    TokenIndex::new(&spec.tokens).map_err(|(first, second)| TokenizerError::DuplicateToken {
        token: spec.tokens[second as usize].clone(),
        first,
        second,
    })
}

/// Checks that `len` tokens can be numbered with `u32` ids.
pub(super) fn check_vocab_len(len: usize) -> Result<(), TokenizerError> {
    if len == 0 {
        return Err(TokenizerError::EmptyVocabulary);
    }
    if u32::try_from(len).is_err() {
        return Err(TokenizerError::VocabularyTooLarge(len));
    }
    Ok(())
}

/// Checks that the special ids are tokens of the vocabulary.
pub(super) fn check_special_ids(spec: &TokenizerSpec) -> Result<(), TokenizerError> {
    let vocab_size = spec.tokens.len();
    let specials = [
        ("bos", Some(spec.bos)),
        ("eos", Some(spec.eos)),
        ("unknown", spec.unknown),
        ("pad", spec.pad),
    ];
    match specials
        .into_iter()
        .find_map(|(name, id)| Some((name, id.filter(|&id| id as usize >= vocab_size)?)))
    {
        Some((name, id)) => Err(TokenizerError::SpecialIdOutOfRange {
            name,
            id,
            vocab_size,
        }),
        None => Ok(()),
    }
}

/// The bytes that have no token of their own in a byte-level vocabulary.
fn missing_bytes(ids: &TokenIndex<'_>) -> Vec<u8> {
    (0..=255u8)
        .filter(|&byte| {
            let spelled = BYTE_CHARS[usize::from(byte)];
            !ids.contains(spelled.encode_utf8(&mut [0; 4]))
        })
        .collect()
}

/// The merges as pairs, each checked to join two known tokens into a known one.
fn parse_merges<'m>(
    merges: &'m [String],
    ids: &TokenIndex<'_>,
) -> Result<Vec<(&'m str, &'m str)>, TokenizerError> {
    merges
        .iter()
        .enumerate()
        .map(|(index, merge)| {
            // As llama.cpp: the first space after the first character splits.
            let split = merge
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(at, _)| at);
            let (left, right) = match split {
                Some(at) if at + 1 < merge.len() => (&merge[..at], &merge[at + 1..]),
                _ => {
                    return Err(TokenizerError::BadMerge {
                        index,
                        merge: merge.clone(),
                    })
                }
            };
            for token in [left.to_owned(), right.to_owned(), format!("{left}{right}")] {
                if !ids.contains(&token) {
                    return Err(TokenizerError::UnknownMergeToken {
                        index,
                        merge: merge.clone(),
                        token,
                    });
                }
            }
            Ok((left, right))
        })
        .collect()
}

/// The pre-tokenizer llama.cpp uses for `pre`, and whether a piece that is a
/// token is taken whole (llama.cpp's `ignore_merges`).
pub(super) fn pre_tokenizer(pre: &str) -> Result<(PreTokenizerWrapper, bool), TokenizerError> {
    // The pieces spelled in the byte alphabet, without splitting them again.
    let spell = || ByteLevel::new(false, true, false).into();
    let split = |regex: &str| -> Result<PreTokenizerWrapper, TokenizerError> {
        Split::new(
            SplitPattern::Regex(regex.to_owned()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map(Into::into)
        .map_err(TokenizerError::Tokenizers)
    };
    // GPT-2's regex, split into pieces that are then spelled in the byte alphabet.
    let gpt2 = || ByteLevel::new(false, true, true);
    let (pieces, ignore_merges): (Vec<PreTokenizerWrapper>, bool) = match pre {
        // llama.cpp: "\p{N}" first, then the GPT-2 regex on what is between.
        "smollm" => (vec![Digits::new(true).into(), gpt2().into()], false),
        "gpt2" | "gpt-2" => return Ok((gpt2().into(), false)),
        "llama-bpe" | "llama3" | "llama-v3" => (vec![split(LLAMA3_REGEX)?, spell()], true),
        "qwen2" => (vec![split(QWEN2_REGEX)?, spell()], false),
        "default" | "" => {
            let mut pieces = DEFAULT_REGEXES
                .iter()
                .map(|regex| split(regex))
                .collect::<Result<Vec<_>, _>>()?;
            pieces.push(spell());
            (pieces, false)
        }
        other => return Err(TokenizerError::UnsupportedPreTokenizer(other.to_owned())),
    };
    Ok((Sequence::new(pieces).into(), ignore_merges))
}

/// The SentencePiece pipeline of a `llama` vocabulary (see the module's
/// documentation), and its unknown token.
fn sentencepiece(
    spec: &TokenizerSpec,
    ids: &TokenIndex<'_>,
) -> Result<(HfTokenizer, Option<u32>), TokenizerError> {
    let unknown = spec.unknown.or_else(|| {
        (0u32..)
            .zip(&spec.token_types)
            .find(|&(_, &t)| t == token_type::UNKNOWN)
            .map(|(id, _)| id)
    });
    let unknown_text = unknown
        .map(|id| spec.tokens[id as usize].as_str())
        .filter(|text| !text.is_empty());
    let byte_fallback = check_byte_tokens(spec, ids, unknown_text.is_some())?;
    let merges = derived_merges(spec, ids)?;
    let text = |id: u32| spec.tokens[id as usize].as_str();
    let options = BpeOptions {
        byte_fallback,
        fuse_unk: true,
        ignore_merges: false,
        unk_token: unknown_text,
    };
    let mut inner = bpe_tokenizer(
        &spec.tokens,
        merges
            .iter()
            .map(|&(left, right)| (text(left), text(right))),
        &options,
    )?;
    let spaces = Replace::new(" ", SPACE).map_err(TokenizerError::Tokenizers)?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE, " ")
            .map_err(TokenizerError::Tokenizers)?
            .into(),
        ByteFallback::default().into(),
        Fuse::default().into(),
    ];
    if spec.resolved_add_space_prefix() {
        inner.with_normalizer(Some(NormalizerSequence::new(vec![
            Prepend::new(SPACE.to_owned()).into(),
            spaces.into(),
        ])));
        decoders.push(Strip::new(' ', 1, 0).into());
    } else {
        inner.with_normalizer(Some(spaces));
    }
    inner.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok((inner, unknown))
}

/// The token of byte `byte` in a SentencePiece vocabulary, as llama.cpp
/// and the `tokenizers` byte fallback spell it.
pub(super) fn byte_token(byte: u8) -> String {
    format!("<0x{byte:02X}>")
}

/// The byte a byte token stands for, if `token` is spelled `<0xNN>`.
pub(super) fn parse_byte_token(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    let upper = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
    if hex.len() != 2 || !hex.bytes().all(upper) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Checks the byte tokens of a SentencePiece vocabulary and says whether it
/// falls back to them: every [`token_type::BYTE`] token must be spelled
/// `<0xNN>`, and either all 256 bytes have their token, or none has and
/// there is an unknown token to fall back to.
fn check_byte_tokens(
    spec: &TokenizerSpec,
    ids: &TokenIndex<'_>,
    has_unknown: bool,
) -> Result<bool, TokenizerError> {
    for (id, (token, &kind)) in (0u32..).zip(spec.tokens.iter().zip(&spec.token_types)) {
        if kind == token_type::BYTE && parse_byte_token(token).is_none() {
            return Err(TokenizerError::BadByteToken {
                id,
                token: token.clone(),
            });
        }
    }
    let missing: Vec<u8> = (0..=255u8)
        .filter(|&byte| !ids.contains(&byte_token(byte)))
        .collect();
    match missing.len() {
        0 => Ok(true),
        256 if has_unknown => Ok(false),
        _ => Err(TokenizerError::MissingByteTokens { missing }),
    }
}

/// The tokens of the types `kinds` as added tokens, matched whole in the raw
/// text; special if `special`.
fn added_tokens(spec: &TokenizerSpec, kinds: &[i32], special: bool) -> Vec<AddedToken> {
    spec.tokens
        .iter()
        .zip(&spec.token_types)
        .filter(|&(token, t)| kinds.contains(t) && !token.is_empty())
        .map(|(token, _)| AddedToken::from(token.clone(), special).normalized(false))
        .collect()
}
