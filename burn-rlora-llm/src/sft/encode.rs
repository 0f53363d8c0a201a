//! Examples encoded into token ids and the spans that are answers.
//!
//! **Chat format.** The conversation (a prompt/completion pair is a user
//! turn and an assistant turn) is rendered with the tokenizer's chat
//! template, and each assistant turn is found as the text that its
//! rendering adds after the rendering of the turns before it with the
//! generation prompt: its content and the template's closing of the turn.
//! The template must render a conversation's start the same whatever
//! follows (transformers' `return_assistant_tokens_mask` needs the same);
//! one that does not (say, one that drops earlier turns' reasoning) is an
//! error naming the turn. The answer's tokens are its content and the
//! closing up to and including the first token generation stops at
//! ([`stop_tokens`]): what the model must learn to write, and to stop.
//!
//! **Raw format** (prompt/completion only, for models without a template):
//! the beginning-of-sequence token where the vocabulary asks for it, the
//! prompt, then the completion and the end-of-sequence token, trained on.
//!
//! The text between answers is encoded piece by piece (the template's text,
//! each non-assistant turn's content where the rendering shows it as given,
//! each answer), as TRL encodes a prompt and its completion apart. An
//! example longer than the limit is cut on the input side — the contents of
//! the system and user turns, the longest first, each from its end — never
//! in an answer or the template's text; or skipped ([`LongExamples`]).

use std::ops::Range;

use thiserror::Error;

use super::SftExample;
use crate::chat::ChatTurn;
use crate::generate::stop_tokens;
use crate::tokenizer::{Tokenizer, TokenizerError};

/// How an example becomes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptFormat {
    /// The tokenizer's chat template (the default).
    #[default]
    Chat,
    /// Prompt then completion as plain text (prompt/completion pairs only).
    Raw,
}

/// What happens to an example longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LongExamples {
    /// Cut its input (the default); skipped where that is not enough.
    #[default]
    Truncate,
    /// Skip it.
    Skip,
}

/// What can go wrong encoding an example.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SftEncodeError {
    /// The chat format without a chat template.
    #[error(
        "the tokenizer has no chat template: give one (a template file), or use the raw format \
         with prompt/completion data"
    )]
    NoChatTemplate,
    /// A conversation in the raw format.
    #[error("a conversation needs the chat format (a chat template)")]
    ConversationInRawFormat,
    /// The template renders a conversation's start differently once later
    /// turns follow, so the answers cannot be found.
    #[error(
        "the chat template does not render the turns before messages[{turn}] the same when more \
         turns follow: the answers cannot be told from the rest"
    )]
    NotAPrefix {
        /// The assistant turn.
        turn: usize,
    },
    /// The example does not fit even with its input cut away (or, skipping,
    /// does not fit).
    #[error("{needed} tokens, more than the limit of {max_len}")]
    TooLong {
        /// Tokens after cutting what may be cut.
        needed: usize,
        /// The limit.
        max_len: usize,
    },
    /// The template or the tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// An encoded example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The token ids.
    pub ids: Vec<u32>,
    /// The spans of `ids` that are answer tokens, in order.
    pub answers: Vec<Range<usize>>,
    /// Input tokens cut to fit the limit.
    pub truncated: usize,
}

/// What a piece of an encoding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The template's own text: never cut, not trained.
    Fixed,
    /// A system or user turn's content: may be cut, not trained.
    Input,
    /// An answer: never cut, trained.
    Answer,
}

/// A run of tokens of one kind.
#[derive(Debug, Clone)]
struct Piece {
    kind: Kind,
    ids: Vec<u32>,
}

/// Turns examples into token ids with their answer spans (see the module's
/// documentation).
#[derive(Debug, Clone)]
pub struct SftEncoder<'a> {
    tok: &'a Tokenizer,
    format: PromptFormat,
    stops: Vec<u32>,
}

impl<'a> SftEncoder<'a> {
    /// The encoder of `tok` in `format`.
    ///
    /// # Errors
    ///
    /// [`SftEncodeError::NoChatTemplate`] for the chat format without a
    /// template.
    pub fn new(tok: &'a Tokenizer, format: PromptFormat) -> Result<Self, SftEncodeError> {
        if format == PromptFormat::Chat && tok.chat_template().is_none() {
            return Err(SftEncodeError::NoChatTemplate);
        }
        Ok(Self {
            tok,
            format,
            stops: stop_tokens(tok),
        })
    }

    /// The format.
    pub fn format(&self) -> PromptFormat {
        self.format
    }

    /// `example` as ids with its answer spans, at most `max_len` tokens.
    ///
    /// # Errors
    ///
    /// [`SftEncodeError::TooLong`] when it does not fit (`long` says
    /// whether its input may be cut first); template and tokenizer errors.
    pub fn encode(
        &self,
        example: &SftExample,
        max_len: usize,
        long: LongExamples,
    ) -> Result<Encoded, SftEncodeError> {
        let mut pieces = self.pieces(example)?;
        let truncated = fit(&mut pieces, max_len, long)?;
        let mut ids = Vec::new();
        let mut answers: Vec<Range<usize>> = Vec::new();
        for piece in pieces {
            let start = ids.len();
            ids.extend(piece.ids);
            if piece.kind == Kind::Answer {
                match answers.last_mut() {
                    Some(last) if last.end == start => last.end = ids.len(),
                    _ => answers.push(start..ids.len()),
                }
            }
        }
        Ok(Encoded {
            ids,
            answers,
            truncated,
        })
    }

    /// The ids a model continues to answer `example`: everything before its
    /// last answer (the generation prompt included), at most `max_len`
    /// tokens, cut as [`encode`](Self::encode) cuts.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn encode_prompt(
        &self,
        example: &SftExample,
        max_len: usize,
    ) -> Result<Vec<u32>, SftEncodeError> {
        let mut pieces = self.pieces(example)?;
        let last = pieces
            .iter()
            .rposition(|p| p.kind == Kind::Answer)
            .unwrap_or(pieces.len());
        // The answer's own pieces run to the end; the prompt is before them.
        let first_of_last = pieces[..last]
            .iter()
            .rposition(|p| p.kind != Kind::Answer)
            .map_or(0, |i| i + 1);
        pieces.truncate(first_of_last);
        fit(&mut pieces, max_len, LongExamples::Truncate)?;
        Ok(pieces.into_iter().flat_map(|p| p.ids).collect())
    }

    /// The ids of `answer` as the model writes it after a prompt: its
    /// tokens and the closing token of the turn (for scoring a label by its
    /// likelihood).
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn answer_ids(&self, answer: &str) -> Result<Vec<u32>, SftEncodeError> {
        let example = SftExample::Completion {
            prompt: "?".into(),
            completion: answer.into(),
        };
        let encoded = self.encode(&example, usize::MAX, LongExamples::Skip)?;
        Ok(encoded
            .answers
            .iter()
            .flat_map(|a| encoded.ids[a.clone()].iter().copied())
            .collect())
    }

    /// The pieces of `example`, uncut.
    fn pieces(&self, example: &SftExample) -> Result<Vec<Piece>, SftEncodeError> {
        match (self.format, example) {
            (PromptFormat::Raw, SftExample::Completion { prompt, completion }) => {
                let mut pieces = Vec::new();
                if self.tok.add_bos() {
                    pieces.push(self.piece(Kind::Fixed, vec![self.tok.bos()]));
                }
                pieces.push(self.piece(Kind::Input, self.tok.encode(prompt)?));
                let mut answer = self.tok.encode(completion)?;
                answer.push(self.tok.eos());
                pieces.push(self.piece(Kind::Answer, answer));
                Ok(pieces)
            }
            (PromptFormat::Raw, SftExample::Conversation(_)) => {
                Err(SftEncodeError::ConversationInRawFormat)
            }
            (PromptFormat::Chat, SftExample::Completion { prompt, completion }) => {
                self.chat_pieces(&[ChatTurn::user(prompt), ChatTurn::assistant(completion)])
            }
            (PromptFormat::Chat, SftExample::Conversation(turns)) => self.chat_pieces(turns),
        }
    }

    fn piece(&self, kind: Kind, ids: Vec<u32>) -> Piece {
        Piece { kind, ids }
    }

    /// Where `full` (the rendering of `turns`) shows turn `i`'s content as
    /// given (or trimmed), found by rendering the conversation up to that
    /// turn with a marker for its content: `None` where the template writes
    /// it otherwise, or not at all.
    fn content_span(
        &self,
        turns: &[ChatTurn],
        i: usize,
        full: &str,
    ) -> Result<Option<Range<usize>>, SftEncodeError> {
        const MARK: &str = "\u{1}content\u{1}";
        let content = &turns[i].content;
        if content.trim().is_empty() || content.contains(MARK) {
            return Ok(None);
        }
        let mut marked = turns[..=i].to_vec();
        marked[i].content = MARK.to_string();
        let rendered = self.tok.chat_prompt(&marked, false)?;
        let Some(at) = rendered.find(MARK) else {
            return Ok(None);
        };
        if !full.starts_with(&rendered[..at]) {
            return Ok(None);
        }
        let shown = [content.as_str(), content.trim(), content.trim_start()]
            .into_iter()
            .find(|c| full[at..].starts_with(c));
        Ok(shown.map(|c| at..at + c.len()))
    }

    /// The pieces of a conversation rendered by the chat template.
    fn chat_pieces(&self, turns: &[ChatTurn]) -> Result<Vec<Piece>, SftEncodeError> {
        let full = self.tok.chat_prompt(turns, false)?;
        // Byte spans of the full text: answers, and the inputs found in it.
        let mut spans: Vec<(Range<usize>, Kind)> = Vec::new();
        let mut from = 0;
        for (i, turn) in turns.iter().enumerate() {
            if turn.role == "assistant" {
                let before = self.tok.chat_prompt(&turns[..i], true)?;
                let with = self.tok.chat_prompt(&turns[..=i], false)?;
                if !with.starts_with(&before) || !full.starts_with(&with) || before.len() < from {
                    return Err(SftEncodeError::NotAPrefix { turn: i });
                }
                spans.push((before.len()..with.len(), Kind::Answer));
                from = with.len();
            } else if let Some(span) = self.content_span(turns, i, &full)? {
                if span.start >= from {
                    from = span.end;
                    spans.push((span, Kind::Input));
                }
            }
        }
        let mut pieces = Vec::new();
        let mut at = 0;
        for (span, kind) in spans {
            if span.start > at {
                pieces.push(self.piece(Kind::Fixed, self.tok.encode(&full[at..span.start])?));
            }
            let ids = self.tok.encode(&full[span.clone()])?;
            match kind {
                Kind::Answer => {
                    // Trained up to and including the turn's stop token;
                    // what the template writes after it is its own text.
                    let end = ids
                        .iter()
                        .position(|id| self.stops.contains(id))
                        .map_or(ids.len(), |p| p + 1);
                    let (answer, rest) = ids.split_at(end);
                    pieces.push(self.piece(Kind::Answer, answer.to_vec()));
                    if !rest.is_empty() {
                        pieces.push(self.piece(Kind::Fixed, rest.to_vec()));
                    }
                }
                kind => pieces.push(self.piece(kind, ids)),
            }
            at = span.end;
        }
        if at < full.len() {
            pieces.push(self.piece(Kind::Fixed, self.tok.encode(&full[at..])?));
        }
        pieces.retain(|p| !p.ids.is_empty());
        Ok(pieces)
    }
}

/// Cuts the input pieces of `pieces` until they fit `max_len` tokens (the
/// longest first, from its end), as `long` allows; the tokens cut.
fn fit(pieces: &mut [Piece], max_len: usize, long: LongExamples) -> Result<usize, SftEncodeError> {
    let total: usize = pieces.iter().map(|p| p.ids.len()).sum();
    if total <= max_len {
        return Ok(0);
    }
    let fixed: usize = pieces
        .iter()
        .filter(|p| p.kind != Kind::Input)
        .map(|p| p.ids.len())
        .sum();
    if long == LongExamples::Skip || fixed > max_len {
        let needed = if long == LongExamples::Skip {
            total
        } else {
            fixed
        };
        return Err(SftEncodeError::TooLong { needed, max_len });
    }
    let mut excess = total - max_len;
    let cut = excess;
    while excess > 0 {
        let longest = pieces
            .iter_mut()
            .filter(|p| p.kind == Kind::Input)
            .rev()
            .max_by_key(|p| p.ids.len())
            .expect("the inputs hold the excess");
        longest.ids.pop();
        excess -= 1;
    }
    Ok(cut)
}

// Answer spans are lists of ranges: one-span lists are meant.
#[allow(clippy::single_range_in_vec_init)]
#[cfg(test)]
mod tests {
    //! A byte-level vocabulary without merges: control tokens 0
    //! (`<|endoftext|>`), 1 (`<|im_start|>`), 2 (`<|im_end|>`), then one
    //! token per byte (id = 3 + byte), so that every text's ids and the
    //! expected spans can be counted by hand.

    use super::*;
    use crate::tokenizer::{token_type, TokenizerSpec};

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// GPT-2's byte alphabet.
    fn byte_char(byte: u8) -> char {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        if printable(byte) {
            return char::from(byte);
        }
        let rank = (0..byte).filter(|&b| !printable(b)).count() as u32;
        char::from_u32(0x100 + rank).unwrap()
    }

    fn tokenizer(template: Option<&str>) -> Tokenizer {
        let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
            .map(String::from)
            .to_vec();
        tokens.extend((0..=255u8).map(|b| byte_char(b).to_string()));
        let mut token_types = vec![token_type::CONTROL; 3];
        token_types.resize(tokens.len(), token_type::NORMAL);
        Tokenizer::from_spec(TokenizerSpec {
            model: "gpt2".into(),
            tokens,
            token_types,
            bos: 0,
            eos: 2,
            pre: "gpt2".into(),
            chat_template: template.map(String::from),
            ..Default::default()
        })
        .unwrap()
    }

    /// The ids of `text`, one per byte.
    fn bytes(text: &str) -> Vec<u32> {
        text.bytes().map(|b| 3 + u32::from(b)).collect()
    }

    const START: u32 = 1;
    const END: u32 = 2;

    fn completion(prompt: &str, completion: &str) -> SftExample {
        SftExample::Completion {
            prompt: prompt.into(),
            completion: completion.into(),
        }
    }

    #[test]
    fn a_completion_trains_on_its_answer_and_the_closing_token() {
        let tok = tokenizer(Some(CHATML));
        let enc = SftEncoder::new(&tok, PromptFormat::Chat).unwrap();
        let got = enc
            .encode(&completion("hi", "ok"), 100, LongExamples::Truncate)
            .unwrap();
        // <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n
        let mut want = vec![START];
        want.extend(bytes("user\nhi"));
        want.push(END);
        want.extend(bytes("\n"));
        want.push(START);
        want.extend(bytes("assistant\nok"));
        want.push(END);
        want.extend(bytes("\n"));
        assert_eq!(got.ids, want);
        // "ok" and <|im_end|>: ids 21, 22 and 23.
        assert_eq!(got.answers, [21..24]);
        assert_eq!(got.truncated, 0);
        assert_eq!(
            enc.encode_prompt(&completion("hi", "ok"), 100).unwrap(),
            want[..21]
        );
        let mut label = bytes("ok");
        label.push(END);
        assert_eq!(enc.answer_ids("ok").unwrap(), label);
    }

    #[test]
    fn every_assistant_turn_of_a_conversation_is_trained_on() {
        let tok = tokenizer(Some(CHATML));
        let enc = SftEncoder::new(&tok, PromptFormat::Chat).unwrap();
        let chat = SftExample::Conversation(vec![
            ChatTurn::system("be"),
            ChatTurn::user("a"),
            ChatTurn::assistant("bc"),
            ChatTurn::user("d"),
            ChatTurn::assistant("e"),
        ]);
        let got = enc.encode(&chat, 100, LongExamples::Truncate).unwrap();
        // Turn lengths: system 1+7+2+1+1 = 12 (<s>system\nbe<e>\n), user
        // 1+5+1+1+1 = 9, assistant 1+10 then "bc" at 32..34, <e> 34, \n 35,
        // user 36..45, assistant 45+11 = 56: "e" 56, <e> 57, \n 58.
        assert_eq!(got.ids.len(), 59);
        assert_eq!(got.answers, [32..35, 56..58]);
        assert_eq!(
            got.ids[32..35],
            [3 + u32::from(b'b'), 3 + u32::from(b'c'), END]
        );
        assert_eq!(got.ids[56..58], [3 + u32::from(b'e'), END]);
        // The prompt for the last answer holds the first one.
        let prompt = enc.encode_prompt(&chat, 100).unwrap();
        assert_eq!(prompt, got.ids[..56]);
    }

    #[test]
    fn the_raw_format_is_prompt_then_completion_and_eos() {
        let tok = tokenizer(None);
        assert!(matches!(
            SftEncoder::new(&tok, PromptFormat::Chat),
            Err(SftEncodeError::NoChatTemplate)
        ));
        let enc = SftEncoder::new(&tok, PromptFormat::Raw).unwrap();
        let got = enc
            .encode(&completion("2+2=", "4"), 100, LongExamples::Truncate)
            .unwrap();
        let mut want = bytes("2+2=4");
        want.push(2);
        assert_eq!((got.ids, got.answers), (want, vec![4..6]));
        let chat = SftExample::Conversation(vec![ChatTurn::user("a"), ChatTurn::assistant("b")]);
        assert!(matches!(
            enc.encode(&chat, 100, LongExamples::Truncate),
            Err(SftEncodeError::ConversationInRawFormat)
        ));
    }

    #[test]
    fn a_long_example_loses_input_never_answer_or_template() {
        let tok = tokenizer(Some(CHATML));
        let enc = SftEncoder::new(&tok, PromptFormat::Chat).unwrap();
        let long = completion("abcdefghij", "ok");
        let full = enc.encode(&long, 100, LongExamples::Truncate).unwrap();
        assert_eq!(full.ids.len(), 33);
        let cut = enc.encode(&long, 29, LongExamples::Truncate).unwrap();
        assert_eq!(cut.truncated, 4);
        let mut want = vec![START];
        want.extend(bytes("user\nabcdef"));
        want.push(END);
        want.extend(bytes("\n"));
        want.push(START);
        want.extend(bytes("assistant\nok"));
        want.push(END);
        want.extend(bytes("\n"));
        assert_eq!(cut.ids, want);
        assert_eq!(cut.answers, [25..28]);
        // The longest input loses first: the system prompt keeps its tokens.
        let chat = SftExample::Conversation(vec![
            ChatTurn::system("xy"),
            ChatTurn::user("abcdefgh"),
            ChatTurn::assistant("ok"),
        ]);
        let got = enc.encode(&chat, 39, LongExamples::Truncate).unwrap();
        let text = tok.decode(&got.ids, false).unwrap();
        assert!(text.contains("system\nxy<|im_end|>"), "{text}");
        assert!(text.contains("user\nabcd<|im_end|>"), "{text}");
        // Skipping, or nothing left to cut: too long.
        assert!(matches!(
            enc.encode(&long, 29, LongExamples::Skip),
            Err(SftEncodeError::TooLong {
                needed: 33,
                max_len: 29
            })
        ));
        assert!(matches!(
            enc.encode(&long, 20, LongExamples::Truncate),
            Err(SftEncodeError::TooLong { needed: 23, .. })
        ));
    }

    #[test]
    fn a_template_that_rewrites_earlier_turns_is_refused() {
        // Earlier answers are replaced by "[...]" once a later turn follows.
        let template = "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}[...]{% else %}{{ m['content'] }}{% endif %}{% endfor %}";
        let tok = tokenizer(Some(template));
        let enc = SftEncoder::new(&tok, PromptFormat::Chat).unwrap();
        let chat = SftExample::Conversation(vec![
            ChatTurn::user("a"),
            ChatTurn::assistant("b"),
            ChatTurn::user("c"),
            ChatTurn::assistant("d"),
        ]);
        assert!(matches!(
            enc.encode(&chat, 100, LongExamples::Truncate),
            Err(SftEncodeError::NotAPrefix { turn: 1 })
        ));
    }
}
