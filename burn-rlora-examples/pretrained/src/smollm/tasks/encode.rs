//! Instructions as token ids: the chat rendering of a prompt and its
//! answer, cut by a rule that never cuts the answer.

use std::borrow::Cow;

use serde::Serialize;

use super::{InstructionExample, TaskError, PROMPT_SEPARATOR};
use burn_rlora_llm::{stop_tokens, ChatTurn, Tokenizer};

/// One example as token ids: the prompt, then the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncodedExample {
    /// The chat rendering's ids, ending with the answer and `<|im_end|>`.
    pub ids: Vec<u32>,
    /// The index in `ids` of the first answer token: `ids[..answer_start]` is
    /// the prompt, with the generation prompt (`<|im_start|>assistant\n`).
    pub answer_start: usize,
    /// The task's index.
    pub task: usize,
    /// For classification, the label's index.
    pub label: Option<usize>,
    /// How many tokens of the input were cut to fit `max_len`.
    pub truncated: usize,
}

impl EncodedExample {
    /// The prompt's ids, up to the answer.
    pub fn prompt_ids(&self) -> &[u32] {
        &self.ids[..self.answer_start]
    }

    /// The answer's ids, `<|im_end|>` last: what the model learns to generate.
    pub fn answer_ids(&self) -> &[u32] {
        &self.ids[self.answer_start..]
    }
}

/// The pieces of a prompt, as ids.
struct PromptPieces {
    /// The template's head and the instruction: never cut.
    head: Vec<u32>,
    /// The separator and the input, encoded together: cut from the end when
    /// the sequence is too long, down to the separator's tokens.
    input: Vec<u32>,
    /// How many tokens at the start of `input` hold the separator (never cut).
    separator: usize,
}

/// Encodes instructions for SmolLM2 with its chat template (see the module's
/// documentation), with the template's pieces tokenized once.
///
/// A sequence is built from pieces, each encoded on its own:
///
/// 1. the template up to the user's content (the default system turn and
///    `<|im_start|>user\n`);
/// 2. the instruction: the user message up to its first blank line
///    ([`PROMPT_SEPARATOR`]), or all of it if it has none;
/// 3. the separator and the input (the rest of the user message), encoded
///    together, so that the blank line tokenizes as it does before the
///    input's first character;
/// 4. the end of the user turn and the generation prompt
///    (`<|im_end|>\n<|im_start|>assistant\n`);
/// 5. the answer, followed by the end-of-sequence token `<|im_end|>`, which
///    closes the assistant's turn.
///
/// Pieces 1-4 are the prompt; 5 is the answer. The pieces meet where the
/// tokenizer splits the text anyway (at a control token, or between a
/// word and whitespace), so for an instruction that does not end with
/// whitespace the ids are those of the whole rendering encoded at once,
/// minus the template's newline after the assistant's `<|im_end|>`.
///
/// **Truncation.** When the sequence is longer than `max_len`, tokens are cut
/// from the end of the input (piece 3) only, as many as needed; the
/// template, the instruction, the separator's tokens and the answer are
/// never cut. A cut can end inside a word or a UTF-8 character. If
/// they alone exceed `max_len`, encoding fails with
/// [`TaskError::MaxLenTooSmall`]. The prompt of [`encode_prompt`](Self::encode_prompt)
/// is built from the same pieces by the same rule, so with a budget of
/// `max_len` minus the answer's length it is exactly `ids[..answer_start]`
/// of [`encode_example`](Self::encode_example).
///
/// **Control tokens in the data.** The tokenizer reads control tokens
/// written in the text (`<filename>` occurs in an email of SpamAssassin);
/// their texts are removed from the instruction, the input and the answer
/// before encoding, so that no data can open or close a turn.
#[derive(Debug, Clone)]
pub struct InstructionEncoder<'a> {
    tok: &'a Tokenizer,
    turn_end: u32,
    template_head: Vec<u32>,
    user_close: Vec<u32>,
    controls: Vec<String>,
}

/// Stand-ins for the user's and the assistant's content while the template's
/// pieces are found; the template is rendered around them as text only.
const USER_MARK: &str = "\u{0}user content\u{0}";
const ANSWER_MARK: &str = "\u{0}answer content\u{0}";

impl<'a> InstructionEncoder<'a> {
    /// The encoder of `tok`'s chat template.
    ///
    /// # Errors
    ///
    /// [`TaskError::Tokenizer`] if the tokenizer has no chat template it
    /// renders; [`TaskError::UnsupportedTemplate`] if the rendering of a
    /// prompt is not a prefix of the rendering of the prompt and answer, or
    /// the assistant's turn does not end with one token generation stops at
    /// ([`stop_tokens`]: the end-of-sequence token, or an end-of-turn token
    /// such as Gemma's `<end_of_turn>`).
    pub fn new(tok: &'a Tokenizer) -> Result<Self, TaskError> {
        let prompt = tok.chat_prompt(&[ChatTurn::user(USER_MARK)], true)?;
        let full = tok.chat_prompt(
            &[ChatTurn::user(USER_MARK), ChatTurn::assistant(ANSWER_MARK)],
            false,
        )?;
        let unsupported = |why: &str| TaskError::UnsupportedTemplate(why.to_owned());
        let (head, close) = prompt
            .split_once(USER_MARK)
            .ok_or_else(|| unsupported("the user's content is not rendered as given"))?;
        let tail = full
            .strip_prefix(&format!("{prompt}{ANSWER_MARK}"))
            .ok_or_else(|| {
                unsupported("the prompt with the generation prompt does not begin the full chat")
            })?;
        let end = tail.strip_suffix('\n').unwrap_or(tail);
        let turn_end = match tok.encode(end)?.as_slice() {
            [id] if stop_tokens(tok).contains(id) => *id,
            _ => {
                return Err(unsupported(&format!(
                    "the assistant's turn ends with {end:?}, not a token generation stops at"
                )))
            }
        };
        Ok(Self {
            tok,
            turn_end,
            template_head: tok.encode(head)?,
            user_close: tok.encode(close)?,
            controls: control_texts(tok),
        })
    }

    /// `text` without the texts of control tokens (removed until none is left).
    pub fn clean<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        while let Some(control) = self.controls.iter().find(|c| out.contains(c.as_str())) {
            out = Cow::Owned(out.replace(control.as_str(), ""));
        }
        out
    }

    /// The ids of the answer: `answer` (cleaned of control tokens), then the
    /// token that ends the assistant's turn.
    ///
    /// # Errors
    ///
    /// Tokenizer errors.
    pub fn answer_ids(&self, answer: &str) -> Result<Vec<u32>, TaskError> {
        let mut ids = self.tok.encode(&self.clean(answer))?;
        ids.push(self.turn_end);
        Ok(ids)
    }

    fn pieces(&self, prompt: &str) -> Result<PromptPieces, TaskError> {
        let (instruction, input) = match prompt.split_once(PROMPT_SEPARATOR) {
            Some((instruction, input)) => (instruction, Some(input)),
            None => (prompt, None),
        };
        let mut head = self.template_head.clone();
        head.extend(self.tok.encode(&self.clean(instruction))?);
        let Some(input) = input else {
            return Ok(PromptPieces {
                head,
                input: Vec::new(),
                separator: 0,
            });
        };
        let text = format!("{PROMPT_SEPARATOR}{}", self.clean(input));
        let input = self.tok.encode(&text)?;
        // The fewest leading tokens that spell the separator (with any
        // whitespace of the input's that a token joins to it).
        let mut separator = 0;
        while separator < input.len()
            && self.tok.decode(&input[..separator], false)?.len() < PROMPT_SEPARATOR.len()
        {
            separator += 1;
        }
        Ok(PromptPieces {
            head,
            input,
            separator,
        })
    }

    /// The prompt of `pieces` with as much of the input as fits `budget`
    /// tokens after the `reserved` ones, and how many input tokens were cut.
    fn assemble(
        &self,
        pieces: PromptPieces,
        budget: usize,
        reserved: usize,
    ) -> Result<(Vec<u32>, usize), TaskError> {
        let needed = pieces.head.len() + pieces.separator + self.user_close.len() + reserved;
        if needed > budget {
            return Err(TaskError::MaxLenTooSmall {
                max_len: budget,
                needed,
            });
        }
        let keep = pieces.input.len().min(pieces.separator + budget - needed);
        let mut ids = pieces.head;
        ids.reserve(keep + self.user_close.len() + reserved);
        ids.extend_from_slice(&pieces.input[..keep]);
        ids.extend_from_slice(&self.user_close);
        Ok((ids, pieces.input.len() - keep))
    }

    /// The ids of `example` as the `task`-th task's: its prompt and answer,
    /// at most `max_len` tokens, cut as the type's documentation says.
    ///
    /// # Errors
    ///
    /// [`TaskError::MaxLenTooSmall`] when the uncut pieces exceed `max_len`;
    /// tokenizer errors.
    pub fn encode_example(
        &self,
        example: &InstructionExample,
        task: usize,
        max_len: usize,
    ) -> Result<EncodedExample, TaskError> {
        let answer = self.answer_ids(&example.answer)?;
        let pieces = self.pieces(&example.prompt)?;
        let (mut ids, truncated) = self.assemble(pieces, max_len, answer.len())?;
        let answer_start = ids.len();
        ids.extend(answer);
        Ok(EncodedExample {
            ids,
            answer_start,
            task,
            label: example.label,
            truncated,
        })
    }

    /// The ids of the prompt alone, ending with the generation prompt, at
    /// most `max_len_for_prompt` tokens: what the model continues when it is
    /// evaluated. Token for token the prefix (up to `answer_start`) of
    /// [`encode_example`](Self::encode_example) with
    /// `max_len = max_len_for_prompt + ` the answer's length.
    ///
    /// # Errors
    ///
    /// [`TaskError::MaxLenTooSmall`] when the template and the instruction
    /// exceed `max_len_for_prompt`; tokenizer errors.
    pub fn encode_prompt(
        &self,
        prompt: &str,
        max_len_for_prompt: usize,
    ) -> Result<Vec<u32>, TaskError> {
        let pieces = self.pieces(prompt)?;
        Ok(self.assemble(pieces, max_len_for_prompt, 0)?.0)
    }

    /// Every example of `examples` encoded as the `task`-th task's.
    ///
    /// # Errors
    ///
    /// As [`encode_example`](Self::encode_example).
    pub fn encode_all(
        &self,
        examples: &[InstructionExample],
        task: usize,
        max_len: usize,
    ) -> Result<Vec<EncodedExample>, TaskError> {
        examples
            .iter()
            .map(|e| self.encode_example(e, task, max_len))
            .collect()
    }
}

/// The texts of `tok`'s control tokens, longest first.
fn control_texts(tok: &Tokenizer) -> Vec<String> {
    let mut texts: Vec<String> = (0..tok.vocab_size() as u32)
        .filter(|&id| tok.is_special(id))
        .filter_map(|id| tok.id_to_token(id))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    texts.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    texts
}

/// [`InstructionEncoder::encode_example`] with an encoder made for this call
/// (build an [`InstructionEncoder`] once to encode many examples).
///
/// # Errors
///
/// As [`InstructionEncoder::new`] and [`InstructionEncoder::encode_example`].
pub fn encode_example(
    tok: &Tokenizer,
    example: &InstructionExample,
    task: usize,
    max_len: usize,
) -> Result<EncodedExample, TaskError> {
    InstructionEncoder::new(tok)?.encode_example(example, task, max_len)
}

/// [`InstructionEncoder::encode_prompt`] with an encoder made for this call
/// (build an [`InstructionEncoder`] once to encode many prompts).
///
/// # Errors
///
/// As [`InstructionEncoder::new`] and [`InstructionEncoder::encode_prompt`].
pub fn encode_prompt(
    tok: &Tokenizer,
    prompt: &str,
    max_len_for_prompt: usize,
) -> Result<Vec<u32>, TaskError> {
    InstructionEncoder::new(tok)?.encode_prompt(prompt, max_len_for_prompt)
}

#[cfg(test)]
mod tests {
    //! A hand-made vocabulary as in the tokenizer's tests: four control
    //! tokens (ids 0-3, `<filename>` last), the 256 byte tokens (id = 4 +
    //! byte) and a few merges, with SmolLM2's chat template.

    use super::*;
    use burn_rlora_llm::tokenizer::{token_type, TokenizerError, TokenizerSpec};

    const TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    const MERGES: [&str; 6] = ["Ġ t", "h e", "Ġt he", "Ċ Ċ", "i n", "Ġ in"];
    const CONTROLS: [&str; 4] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<filename>"];

    /// GPT-2's byte alphabet.
    fn byte_char(byte: u8) -> char {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        if printable(byte) {
            return char::from(byte);
        }
        let rank = (0..byte).filter(|&b| !printable(b)).count() as u32;
        char::from_u32(0x100 + rank).unwrap()
    }

    fn spec(template: Option<&str>) -> TokenizerSpec {
        let mut tokens: Vec<String> = CONTROLS.map(String::from).to_vec();
        let mut token_types = vec![token_type::CONTROL; CONTROLS.len()];
        tokens.extend((0..=255u8).map(|b| byte_char(b).to_string()));
        tokens.extend(MERGES.map(|m| m.replace(' ', "")));
        token_types.resize(tokens.len(), token_type::NORMAL);
        TokenizerSpec {
            model: "gpt2".into(),
            tokens,
            token_types,
            merges: MERGES.map(String::from).to_vec(),
            bos: 1,
            eos: 2,
            pad: Some(0),
            pre: "smollm".into(),
            chat_template: template.map(str::to_owned),
            scores: Vec::new(),
            unknown: None,
            add_bos: None,
            add_eos: None,
            add_space_prefix: None,
        }
    }

    fn tok() -> Tokenizer {
        Tokenizer::from_spec(spec(Some(TEMPLATE))).unwrap()
    }

    fn example(prompt: &str, answer: &str) -> InstructionExample {
        InstructionExample {
            prompt: prompt.into(),
            answer: answer.into(),
            label: Some(1),
        }
    }

    /// The ids of the whole chat rendering encoded at once, without the
    /// newline after the assistant's `<|im_end|>`.
    fn natural(tok: &Tokenizer, ex: &InstructionExample) -> Vec<u32> {
        let turns = [
            ChatTurn::user(ex.prompt.as_str()),
            ChatTurn::assistant(ex.answer.as_str()),
        ];
        let text = tok.chat_prompt(&turns, false).unwrap();
        tok.encode(text.strip_suffix('\n').unwrap()).unwrap()
    }

    /// The prompt alone, with the budget `max_len` leaves after the answer,
    /// is the example's prefix.
    fn check_prefix(
        enc: &InstructionEncoder<'_>,
        ex: &InstructionExample,
        e: &EncodedExample,
        max_len: usize,
    ) {
        let budget = max_len - e.answer_ids().len();
        assert_eq!(
            enc.encode_prompt(&ex.prompt, budget).unwrap(),
            e.prompt_ids()
        );
    }

    #[test]
    fn short_examples_encode_as_the_whole_rendering() {
        let tok = tok();
        let enc = InstructionEncoder::new(&tok).unwrap();
        for (prompt, answer) in [
            ("Classify this:\n\nthe thin tin", "positive"),
            ("Classify this:\n\n12 in the tin", "ham"),
            (
                "Write a title:\n\nA  body\n\nwith paragraphs.",
                "The 2 titles",
            ),
            ("No input here", "x"),
            ("Empty input:\n\n", "y"),
        ] {
            let ex = example(prompt, answer);
            let e = enc.encode_example(&ex, 3, 10_000).unwrap();
            assert_eq!(e.ids, natural(&tok, &ex), "{prompt:?}");
            assert_eq!((e.task, e.label, e.truncated), (3, Some(1), 0));
            let answer_text = tok.decode(e.answer_ids(), false).unwrap();
            assert_eq!(answer_text, format!("{answer}<|im_end|>"));
            check_prefix(&enc, &ex, &e, 10_000);
            let rendered = tok.chat_prompt(&[ChatTurn::user(prompt)], true).unwrap();
            let prompt_ids = enc.encode_prompt(prompt, 10_000).unwrap();
            assert_eq!(prompt_ids, tok.encode(&rendered).unwrap());
            assert_eq!(e, encode_example(&tok, &ex, 3, 10_000).unwrap());
            assert_eq!(prompt_ids, encode_prompt(&tok, prompt, 10_000).unwrap());
        }
    }

    #[test]
    fn long_inputs_are_cut_from_their_end_only() {
        let tok = tok();
        let enc = InstructionEncoder::new(&tok).unwrap();
        let input = "the thin tin in the inn ".repeat(20);
        let ex = example(&format!("Classify this:\n\n{input}"), "The answer");
        let full = enc.encode_example(&ex, 0, 10_000).unwrap();
        let rendered = tok
            .chat_prompt(&[ChatTurn::user("Classify this:")], false)
            .unwrap();
        let mut head = tok
            .encode(rendered.strip_suffix("<|im_end|>\n").unwrap())
            .unwrap();
        // Two newlines before a word are two tokens.
        head.extend(tok.encode("\n").unwrap().repeat(2));
        let close = tok.encode("<|im_end|>\n<|im_start|>assistant\n").unwrap();
        // The pieces never cut: template head, instruction and separator,
        // the end of the user turn, the answer.
        let fixed = head.len() + close.len() + full.answer_ids().len();
        for max_len in [fixed, fixed + 1, fixed + 17, full.ids.len() - 1] {
            let e = enc.encode_example(&ex, 0, max_len).unwrap();
            assert_eq!(e.ids.len(), max_len);
            assert_eq!(e.truncated, full.ids.len() - max_len);
            assert_eq!(e.answer_ids(), full.answer_ids());
            let kept = e.answer_start - close.len();
            assert_eq!(e.ids[..kept], full.ids[..kept], "the input's start is kept");
            assert_eq!(e.ids[kept..e.answer_start], close[..]);
            assert_eq!(e.ids[..head.len()], head[..]);
            check_prefix(&enc, &ex, &e, max_len);
        }
        let e = enc.encode_example(&ex, 0, fixed).unwrap();
        assert!(tok
            .decode(&e.ids, false)
            .unwrap()
            .contains("Classify this:\n\n<|im_end|>"));
        let err = enc.encode_example(&ex, 0, fixed - 1).unwrap_err();
        assert!(
            matches!(err, TaskError::MaxLenTooSmall { max_len, needed } if max_len == fixed - 1 && needed == fixed),
            "{err}"
        );
        let prompt_fixed = fixed - full.answer_ids().len();
        assert!(enc.encode_prompt(&ex.prompt, prompt_fixed).is_ok());
        assert!(matches!(
            enc.encode_prompt(&ex.prompt, prompt_fixed - 1),
            Err(TaskError::MaxLenTooSmall { .. })
        ));
        // Without a blank line the whole prompt is the instruction: never cut.
        let whole = example(&input, "a");
        let n = enc.encode_example(&whole, 0, 10_000).unwrap().ids.len();
        assert!(enc.encode_example(&whole, 0, n).is_ok());
        assert!(enc.encode_example(&whole, 0, n - 1).is_err());
    }

    #[test]
    fn control_tokens_in_the_data_are_removed() {
        let tok = tok();
        let enc = InstructionEncoder::new(&tok).unwrap();
        let ex = example(
            "Classify<|im_end|>:\n\nthe <filename> tin<|im_<|im_end|>end|>",
            "ham<|endoftext|>",
        );
        let e = enc.encode_example(&ex, 0, 10_000).unwrap();
        let clean = example("Classify:\n\nthe  tin", "ham");
        assert_eq!(e.ids, natural(&tok, &clean));
        assert_eq!(enc.clean("a<filename>b"), "ab");
        assert!(matches!(enc.clean("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn templates_without_system_turn_or_none_at_all() {
        let plain = TEMPLATE.replace(
            "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}",
            "",
        );
        let tok = Tokenizer::from_spec(spec(Some(&plain))).unwrap();
        let ex = example("Classify this:\n\nthe tin", "spam");
        let e = encode_example(&tok, &ex, 0, 100).unwrap();
        assert_eq!(e.ids, natural(&tok, &ex));
        assert_eq!(e.ids[0], 1, "<|im_start|>user first");
        let none = Tokenizer::from_spec(spec(None)).unwrap();
        assert!(matches!(
            InstructionEncoder::new(&none),
            Err(TaskError::Tokenizer(TokenizerError::NoChatTemplate))
        ));
    }
}
