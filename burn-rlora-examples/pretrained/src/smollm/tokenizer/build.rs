//! Checks of a [`TokenizerSpec`](super::TokenizerSpec) and the pieces of
//! the `tokenizers` pipeline built from it.

use std::collections::HashMap;

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::AddedToken;

use super::{token_type, TokenizerError, TokenizerSpec, BYTE_CHARS};

/// Checks the spec's vocabulary and returns the id of every token text.
pub(super) fn check_vocabulary(
    spec: &TokenizerSpec,
) -> Result<HashMap<String, u32>, TokenizerError> {
    if spec.model != "gpt2" {
        return Err(TokenizerError::UnsupportedModel(spec.model.clone()));
    }
    if spec.tokens.is_empty() {
        return Err(TokenizerError::EmptyVocabulary);
    }
    if u32::try_from(spec.tokens.len()).is_err() {
        return Err(TokenizerError::VocabularyTooLarge(spec.tokens.len()));
    }
    if spec.tokens.len() != spec.token_types.len() {
        return Err(TokenizerError::TokenTypesLength {
            tokens: spec.tokens.len(),
            token_types: spec.token_types.len(),
        });
    }
    let mut ids = HashMap::with_capacity(spec.tokens.len());
    for (id, (token, &kind)) in (0u32..).zip(spec.tokens.iter().zip(&spec.token_types)) {
        if !(token_type::UNDEFINED..=token_type::BYTE).contains(&kind) {
            return Err(TokenizerError::BadTokenType { id, value: kind });
        }
        if let Some(first) = ids.insert(token.clone(), id) {
            return Err(TokenizerError::DuplicateToken {
                token: token.clone(),
                first,
                second: id,
            });
        }
    }
    Ok(ids)
}

/// Checks that the special ids are tokens of the vocabulary.
pub(super) fn check_special_ids(spec: &TokenizerSpec) -> Result<(), TokenizerError> {
    let vocab_size = spec.tokens.len();
    let specials = [
        ("bos", Some(spec.bos)),
        ("eos", Some(spec.eos)),
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

/// The bytes that have no token of their own in `ids`.
pub(super) fn missing_bytes(ids: &HashMap<String, u32>) -> Vec<u8> {
    (0..=255u8)
        .filter(|&byte| {
            let spelled = BYTE_CHARS[usize::from(byte)];
            !ids.contains_key(spelled.encode_utf8(&mut [0; 4]) as &str)
        })
        .collect()
}

/// The merges as pairs, each checked to join two known tokens into a known one.
pub(super) fn parse_merges(
    merges: &[String],
    ids: &HashMap<String, u32>,
) -> Result<Vec<(String, String)>, TokenizerError> {
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
                if !ids.contains_key(&token) {
                    return Err(TokenizerError::UnknownMergeToken {
                        index,
                        merge: merge.clone(),
                        token,
                    });
                }
            }
            Ok((left.to_owned(), right.to_owned()))
        })
        .collect()
}

/// The pre-tokenizer llama.cpp uses for `pre`.
pub(super) fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, TokenizerError> {
    // GPT-2's regex, split into pieces that are then spelled in the byte alphabet.
    let byte_level = ByteLevel::new(false, true, true);
    match pre {
        // llama.cpp: "\p{N}" first, then the GPT-2 regex on what is between.
        "smollm" => Ok(Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()),
        "gpt2" => Ok(byte_level.into()),
        other => Err(TokenizerError::UnsupportedPreTokenizer(other.to_owned())),
    }
}

/// The tokens of type `kind` as added tokens, matched whole in the raw text;
/// special if `kind` is [`token_type::CONTROL`].
pub(super) fn added_tokens(spec: &TokenizerSpec, kind: i32) -> Vec<AddedToken> {
    spec.tokens
        .iter()
        .zip(&spec.token_types)
        .filter(|&(token, &t)| t == kind && !token.is_empty())
        .map(|(token, _)| {
            AddedToken::from(token.clone(), kind == token_type::CONTROL).normalized(false)
        })
        .collect()
}
