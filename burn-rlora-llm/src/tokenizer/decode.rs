//! Ids back to text: each token's bytes as llama.cpp's `token_to_piece`
//! writes them, all at once or one token at a time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use super::build::{parse_byte_token, SPACE};
use super::{token_type, Tokenizer, TokenizerError};

/// How the tokens of a vocabulary are written back as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decoding {
    /// A byte-level BPE vocabulary from a GGUF file: tokens spelled in
    /// GPT-2's byte alphabet.
    ByteLevel,
    /// A SentencePiece vocabulary from a GGUF file: `▁` for a space, byte
    /// tokens `<0xNN>`; with `strip_leading_space`, the space that starts
    /// the text is dropped.
    SentencePiece {
        /// Whether the space put before the text when encoding is dropped.
        strip_leading_space: bool,
    },
    /// A `tokenizer.json`: its own decoder.
    Pipeline,
}

/// GPT-2's byte alphabet (`bytes_to_unicode`): the printable bytes spell
/// themselves, the others (space, controls, ...) take U+0100 onwards in order.
pub(super) static BYTE_CHARS: LazyLock<[char; 256]> = LazyLock::new(|| {
    let mut table = ['\0'; 256];
    let mut next = 0x100u32;
    for byte in 0..=255u8 {
        table[usize::from(byte)] = if matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF) {
            char::from(byte)
        } else {
            next += 1;
            // U+0100..U+0143: all chars.
            char::from_u32(next - 1).unwrap_or(char::REPLACEMENT_CHARACTER)
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

/// The bytes a byte-level token stands for, as the `ByteLevel` decoder finds
/// them: each character of the byte alphabet is one byte; a token with any
/// other character (an added token stored as plain text) is its own UTF-8.
fn byte_level_bytes(token: &str) -> Cow<'_, [u8]> {
    token
        .chars()
        .map(|c| CHAR_BYTES.get(&c).copied())
        .collect::<Option<Vec<u8>>>()
        .map_or(Cow::Borrowed(token.as_bytes()), Cow::Owned)
}

/// The bytes of token `id` (in range) in a vocabulary from a GGUF file,
/// as llama.cpp's `token_to_piece` writes them: empty for a special token
/// when `skip_special`, and for an unused or untyped token.
fn piece(tokenizer: &Tokenizer, id: u32, skip_special: bool) -> Cow<'_, [u8]> {
    let token = tokenizer.token_text(id);
    let kind = tokenizer.token_type(id).unwrap_or(token_type::UNDEFINED);
    let sentencepiece = matches!(tokenizer.decoding, Decoding::SentencePiece { .. });
    match kind {
        token_type::CONTROL | token_type::UNKNOWN if skip_special => Cow::Borrowed(&[]),
        token_type::CONTROL | token_type::UNKNOWN | token_type::USER_DEFINED => {
            Cow::Borrowed(token.as_bytes())
        }
        token_type::BYTE if sentencepiece => match parse_byte_token(token) {
            Some(byte) => Cow::Owned(vec![byte]),
            None => Cow::Borrowed(&[]),
        },
        token_type::NORMAL if sentencepiece => {
            if token.contains(SPACE) {
                Cow::Owned(token.replace(SPACE, " ").into_bytes())
            } else {
                Cow::Borrowed(token.as_bytes())
            }
        }
        token_type::NORMAL | token_type::BYTE => byte_level_bytes(token),
        _ => Cow::Borrowed(&[]),
    }
}

/// Whether the decoder drops the space that starts the text.
fn strips_leading_space(tokenizer: &Tokenizer) -> bool {
    matches!(
        tokenizer.decoding,
        Decoding::SentencePiece {
            strip_leading_space: true
        }
    )
}

/// The text of `ids` (in range).
pub(super) fn decode(
    tokenizer: &Tokenizer,
    ids: &[u32],
    skip_special: bool,
) -> Result<String, TokenizerError> {
    if tokenizer.decoding == Decoding::Pipeline {
        return tokenizer
            .inner
            .decode(ids, skip_special)
            .map_err(TokenizerError::Tokenizers);
    }
    let mut bytes = Vec::new();
    for &id in ids {
        bytes.extend_from_slice(&piece(tokenizer, id, skip_special));
    }
    let text = match bytes.split_first() {
        Some((b' ', rest)) if strips_leading_space(tokenizer) => rest,
        _ => &bytes[..],
    };
    Ok(String::from_utf8_lossy(text).into_owned())
}

/// Turns ids into text one at a time (see [`Tokenizer::stream_decoder`]).
///
/// A token may end inside a UTF-8 character (an emoji is often two or three
/// tokens): its bytes are held back until the character is complete, so no
/// step prints half a character. The steps' texts joined, followed by
/// [`finish`](Self::finish), equal [`Tokenizer::decode`] of all the ids.
///
/// For a tokenizer from a `tokenizer.json`, whose decoder may join tokens in
/// any way, each step decodes the tokens since the previous text was given
/// out together with that text's tokens, and gives what the new ones add;
/// a text ending in U+FFFD (an unfinished character) is held back.
#[derive(Debug, Clone)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    skip_special: bool,
    state: StreamState,
}

/// What a [`StreamDecoder`] holds between steps.
#[derive(Debug, Clone)]
enum StreamState {
    /// Bytes of an unfinished character, and whether no text has been given
    /// yet (for the leading space a SentencePiece decoder drops).
    Bytes { pending: Vec<u8>, at_start: bool },
    /// The ids whose text was given last (`context`, whose text alone is
    /// `prefix`) and the ids given since.
    Pipeline {
        context: Vec<u32>,
        prefix: String,
        pending: Vec<u32>,
    },
}

impl<'a> StreamDecoder<'a> {
    /// A decoder of `tokenizer`'s ids.
    pub(super) fn new(tokenizer: &'a Tokenizer, skip_special: bool) -> Self {
        let state = match tokenizer.decoding {
            Decoding::Pipeline => StreamState::Pipeline {
                context: Vec::new(),
                prefix: String::new(),
                pending: Vec::new(),
            },
            _ => StreamState::Bytes {
                pending: Vec::new(),
                at_start: true,
            },
        };
        Self {
            tokenizer,
            skip_special,
            state,
        }
    }

    /// The text `id` completes, or `None` if it only adds to an unfinished
    /// character (or is a skipped control token). Bytes that can start no
    /// character come out as U+FFFD, as in `decode`. An id out of range is an
    /// error, after which the stream goes on as if it had not been given.
    pub fn step(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        self.tokenizer.check_ids(&[id])?;
        let tokenizer = self.tokenizer;
        match &mut self.state {
            StreamState::Bytes { pending, at_start } => {
                let piece = piece(tokenizer, id, self.skip_special);
                let mut bytes = &piece[..];
                if *at_start && !bytes.is_empty() {
                    if strips_leading_space(tokenizer) && bytes[0] == b' ' {
                        bytes = &bytes[1..];
                    }
                    *at_start = false;
                }
                pending.extend_from_slice(bytes);
                let (text, used) = complete_utf8(pending);
                pending.drain(..used);
                Ok((!text.is_empty()).then_some(text))
            }
            StreamState::Pipeline {
                context,
                prefix,
                pending,
            } => {
                pending.push(id);
                let all = [&context[..], &pending[..]].concat();
                let text = tokenizer
                    .inner
                    .decode(&all, self.skip_special)
                    .map_err(TokenizerError::Tokenizers);
                let text = match text {
                    Ok(text) => text,
                    Err(e) => {
                        pending.pop();
                        return Err(e);
                    }
                };
                if text.ends_with(char::REPLACEMENT_CHARACTER) {
                    return Ok(None);
                }
                let new = after_prefix(&text, prefix).to_owned();
                if new.is_empty() {
                    return Ok(None);
                }
                *context = std::mem::take(pending);
                *prefix = tokenizer
                    .inner
                    .decode(context, self.skip_special)
                    .map_err(TokenizerError::Tokenizers)?;
                Ok(Some(new))
            }
        }
    }

    /// The text still held back (U+FFFD for an unfinished character), or
    /// `None` if there is none.
    pub fn finish(self) -> Option<String> {
        match self.state {
            StreamState::Bytes { pending, .. } => {
                (!pending.is_empty()).then(|| String::from_utf8_lossy(&pending).into_owned())
            }
            StreamState::Pipeline {
                context,
                prefix,
                pending,
            } => {
                if pending.is_empty() {
                    return None;
                }
                let all = [context, pending].concat();
                let text = self.tokenizer.inner.decode(&all, self.skip_special).ok()?;
                let new = after_prefix(&text, &prefix);
                (!new.is_empty()).then(|| new.to_owned())
            }
        }
    }
}

/// `text` after `prefix`, or after the longest prefix they share when
/// `text` does not start with `prefix` (a decoder that rewrote the end of
/// the previous text).
fn after_prefix<'t>(text: &'t str, prefix: &str) -> &'t str {
    if let Some(rest) = text.strip_prefix(prefix) {
        return rest;
    }
    let shared = text
        .char_indices()
        .zip(prefix.chars())
        .find(|((_, a), b)| a != b)
        .map_or_else(|| text.len().min(prefix.len()), |((at, _), _)| at);
    text.get(shared..).unwrap_or_default()
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
