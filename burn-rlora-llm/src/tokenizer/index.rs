//! Looking tokens up by their text while a tokenizer is built, and handing
//! the BPE model to `tokenizers`.
//!
//! The index is a plain open-addressing table rather than a generic
//! `HashMap`: its work grows with the vocabulary (Gemma's 262,144 tokens are
//! cut more than a million ways when its merges are derived), and a generic
//! map's hashing and probing would be instantiated in this crate, which
//! `cargo test` builds unoptimised (its dependencies, `tokenizers` included,
//! are optimised). Its hash is polynomial, so that the hashes of all the ways
//! of cutting a token in two come in one pass over the token.

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::Tokenizer as HfTokenizer;

use super::TokenizerError;

/// A free slot of [`TokenIndex`].
const EMPTY: u32 = u32::MAX;

/// The id of every non-empty token of a vocabulary, by its text.
pub(super) struct TokenIndex<'a> {
    tokens: &'a [String],
    /// The id in each slot, or [`EMPTY`].
    slots: Vec<u32>,
    /// The [`text_hash`] of the token in each slot, compared before its text.
    hashes: Vec<u64>,
    mask: usize,
}

/// The multiplier of [`text_hash`].
const MULTIPLIER: u64 = 0x0000_0100_0000_01b3;

/// The polynomial hash of `bytes`: the sum of `(byte + 1) · M^(n - 1 - i)`
/// (wrapping), so that the hash of a text's suffix follows from the text's
/// and its prefix's ([`suffix_hash`]).
pub(super) fn text_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        hash = push_byte(hash, bytes[i]);
        i += 1;
    }
    hash
}

/// The hash of a text one byte longer than the text of `hash`.
pub(super) fn push_byte(hash: u64, byte: u8) -> u64 {
    hash.wrapping_mul(MULTIPLIER)
        .wrapping_add(u64::from(byte) + 1)
}

/// The hash of the last `len` bytes of a text of hash `whole`, whose other
/// bytes have the hash `prefix`; `powers[k]` is `M^k`.
pub(super) fn suffix_hash(whole: u64, prefix: u64, len: usize, powers: &[u64]) -> u64 {
    whole.wrapping_sub(prefix.wrapping_mul(powers[len]))
}

/// `M^0` .. `M^max`.
pub(super) fn powers(max: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(max + 1);
    let mut power: u64 = 1;
    for _ in 0..=max {
        out.push(power);
        power = power.wrapping_mul(MULTIPLIER);
    }
    out
}

/// The slot of a hash: its bits mixed (splitmix64's finaliser), masked.
fn slot_of(hash: u64, mask: usize) -> usize {
    let mut x = hash ^ (hash >> 30);
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    x as usize & mask
}

impl<'a> TokenIndex<'a> {
    /// The index of `tokens` (at most `u32::MAX` of them; empty ones left
    /// out), or the ids of the first text found twice.
    pub(super) fn new(tokens: &'a [String]) -> Result<Self, (u32, u32)> {
        let size = (tokens.len().saturating_mul(2)).next_power_of_two().max(16);
        let mut index = Self {
            tokens,
            slots: vec![EMPTY; size],
            hashes: vec![0; size],
            mask: size - 1,
        };
        for (id, token) in (0u32..).zip(tokens) {
            if token.is_empty() {
                continue;
            }
            let hash = text_hash(token.as_bytes());
            let mut slot = slot_of(hash, index.mask);
            loop {
                let found = index.slots[slot];
                if found == EMPTY {
                    index.slots[slot] = id;
                    index.hashes[slot] = hash;
                    break;
                }
                if index.hashes[slot] == hash && tokens[found as usize] == *token {
                    return Err((found, id));
                }
                slot = (slot + 1) & index.mask;
            }
        }
        Ok(index)
    }

    /// The id of the token spelled `text`.
    pub(super) fn get(&self, text: &str) -> Option<u32> {
        self.get_hashed(text_hash(text.as_bytes()), text)
    }

    /// The id of the token spelled `text`, whose [`text_hash`] is `hash`.
    pub(super) fn get_hashed(&self, hash: u64, text: &str) -> Option<u32> {
        if text.is_empty() {
            return None;
        }
        let mut slot = slot_of(hash, self.mask);
        loop {
            let found = self.slots[slot];
            if found == EMPTY {
                return None;
            }
            if self.hashes[slot] == hash && self.tokens[found as usize] == text {
                return Some(found);
            }
            slot = (slot + 1) & self.mask;
        }
    }

    /// Whether a token is spelled `text`.
    pub(super) fn contains(&self, text: &str) -> bool {
        self.get(text).is_some()
    }
}

/// What a BPE model is made of besides its vocabulary and merges.
pub(super) struct BpeOptions<'a> {
    /// Characters outside the vocabulary are spelled with `<0xNN>` tokens.
    pub byte_fallback: bool,
    /// Consecutive unknown characters make one unknown token.
    pub fuse_unk: bool,
    /// A word that is a token is taken whole.
    pub ignore_merges: bool,
    /// The unknown token.
    pub unk_token: Option<&'a str>,
}

/// A `tokenizers` tokenizer with just a BPE model: the non-empty `tokens`
/// (the position is the id) and `merges` (pairs of token texts, best first).
/// The caller has checked that the tokens are unique and the merges join
/// known tokens into known ones.
pub(super) fn bpe_tokenizer<'t>(
    tokens: &[String],
    merges: impl ExactSizeIterator<Item = (&'t str, &'t str)>,
    options: &BpeOptions<'_>,
) -> Result<HfTokenizer, TokenizerError> {
    let mut vocab = Vocab::with_capacity_and_hasher(tokens.len(), Default::default());
    for (id, token) in (0u32..).zip(tokens) {
        if !token.is_empty() {
            vocab.insert(token.clone(), id);
        }
    }
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(merges.len());
    for (left, right) in merges {
        pairs.push((left.to_owned(), right.to_owned()));
    }
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .byte_fallback(options.byte_fallback)
        .fuse_unk(options.fuse_unk)
        .ignore_merges(options.ignore_merges);
    if let Some(unk) = options.unk_token {
        builder = builder.unk_token(unk.to_owned());
    }
    let model = builder.build().map_err(TokenizerError::Tokenizers)?;
    Ok(HfTokenizer::new(model))
}
