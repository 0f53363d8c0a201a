//! The BPE merges a SentencePiece vocabulary implies: llama.cpp's
//! score-driven bigram merging (`llm_tokenizer_spm`) as ranked merges.
//!
//! llama.cpp merges, again and again, the adjacent pair of symbols whose
//! concatenation is the token of highest score. A BPE merges, again and
//! again, the adjacent pair of lowest rank. So every way of cutting a token
//! `t` into two tokens `(l, r)` is a merge `l r -> t`, ranked by the score of
//! `t`, highest first; this is transformers' `generate_merges`
//! (`tokenization_utils_base.py`), whose order this keeps for merges of
//! equal score: longer left part first, then longer right part, then the
//! token's position in the vocabulary.

use std::cmp::Ordering;

use super::build::MAX_SPM_TOKEN_BYTES;
use super::index::{self, TokenIndex};
use super::{token_type, TokenizerError, TokenizerSpec};

/// Whether a token of type `kind` is made by merging: not the tokens
/// matched whole in the text before any merging (control, user-defined,
/// unknown).
fn mergeable(kind: i32) -> bool {
    !matches!(
        kind,
        token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN
    )
}

/// One way of making a token from two: the ids of its parts.
#[derive(Clone, Copy)]
struct Cut {
    /// The left part's length in characters.
    left_chars: usize,
    /// The right part's length in characters.
    right_chars: usize,
    /// The left part's id.
    left: u32,
    /// The right part's id.
    right: u32,
}

/// The merges of the SentencePiece vocabulary `spec` (whose token ids are
/// `ids`), best first, as pairs of token ids.
pub(super) fn derived_merges(
    spec: &TokenizerSpec,
    ids: &TokenIndex<'_>,
) -> Result<Vec<(u32, u32)>, TokenizerError> {
    // The tokens a merge can make, by score (highest first; ties by id).
    let mut made: Vec<u32> = Vec::with_capacity(spec.tokens.len());
    for (id, (token, &kind)) in (0u32..).zip(spec.tokens.iter().zip(&spec.token_types)) {
        if !mergeable(kind) || token.chars().nth(1).is_none() {
            continue;
        }
        if token.len() > MAX_SPM_TOKEN_BYTES {
            return Err(TokenizerError::TokenTooLong {
                id,
                bytes: token.len(),
                max: MAX_SPM_TOKEN_BYTES,
            });
        }
        made.push(id);
    }
    let score = |id: u32| spec.scores[id as usize];
    // Scores are not NaN (checked), so the order is total; -0.0 == 0.0 as
    // in Python. Vocabularies are mostly sorted already.
    let by_score = |a: &u32, b: &u32| score(*b).partial_cmp(&score(*a)).unwrap_or(Ordering::Equal);
    if !made
        .windows(2)
        .all(|w| by_score(&w[0], &w[1]) != Ordering::Greater)
    {
        made.sort_by(by_score);
    }

    let powers = index::powers(MAX_SPM_TOKEN_BYTES);
    let mut merges = Vec::with_capacity(made.len() * 2);
    let mut cuts = Vec::new();
    let mut group: Vec<(usize, Cut)> = Vec::new();
    let mut start = 0;
    while start < made.len() {
        let mut end = start + 1;
        while end < made.len() && score(made[end]) == score(made[start]) {
            end += 1;
        }
        if end - start == 1 {
            // One token: its cuts, longer left part first.
            cuts.clear();
            cuts_of(spec, ids, made[start], &powers, &mut cuts);
            merges.extend(cuts.iter().rev().map(|cut| (cut.left, cut.right)));
        } else {
            group.clear();
            for (position, &id) in made[start..end].iter().enumerate() {
                cuts.clear();
                cuts_of(spec, ids, id, &powers, &mut cuts);
                group.extend(cuts.iter().map(|&cut| (position, cut)));
            }
            group.sort_by(|(pa, a), (pb, b)| {
                b.left_chars
                    .cmp(&a.left_chars)
                    .then(b.right_chars.cmp(&a.right_chars))
                    .then(pa.cmp(pb))
            });
            merges.extend(group.iter().map(|(_, cut)| (cut.left, cut.right)));
        }
        start = end;
    }
    Ok(merges)
}

/// The ways of cutting token `id` into two mergeable tokens, shorter left
/// part first, appended to `cuts`. `powers` are those of [`index::powers`]
/// up to the token's length. The hashes of the parts are found as the cut
/// moves along, each in constant time.
fn cuts_of(
    spec: &TokenizerSpec,
    ids: &TokenIndex<'_>,
    id: u32,
    powers: &[u64],
    cuts: &mut Vec<Cut>,
) {
    let token = spec.tokens[id as usize].as_str();
    let bytes = token.as_bytes();
    let whole = index::text_hash(bytes);
    let part = |hash: u64, text: &str| {
        ids.get_hashed(hash, text)
            .filter(|&id| mergeable(spec.token_types[id as usize]))
    };
    let start = cuts.len();
    let mut prefix = 0;
    let mut left_chars = 0;
    let mut at = 0;
    while at + 1 < bytes.len() {
        prefix = index::push_byte(prefix, bytes[at]);
        at += 1;
        // A UTF-8 continuation byte starts no character.
        if bytes[at] & 0xC0 == 0x80 {
            continue;
        }
        left_chars += 1;
        let Some(left) = part(prefix, &token[..at]) else {
            continue;
        };
        let suffix = index::suffix_hash(whole, prefix, bytes.len() - at, powers);
        let Some(right) = part(suffix, &token[at..]) else {
            continue;
        };
        cuts.push(Cut {
            left_chars,
            right_chars: 0,
            left,
            right,
        });
    }
    // The right part's length, now that the token's is known.
    let chars = left_chars + 1;
    for cut in &mut cuts[start..] {
        cut.right_chars = chars - cut.left_chars;
    }
}
