//! Supervised fine-tuning data: JSONL files in the two shapes the Python
//! fine-tuning tools read (TRL's `SFTTrainer`, axolotl, LLaMA-Factory), and
//! their encoding into training sequences whose loss counts the answers
//! only.
//!
//! One JSON object per line, either
//!
//! * **conversational**: `{"messages": [{"role": "system" | "user" |
//!   "assistant", "content": "..."}, ...], "task": "..."}`, rendered with the
//!   model's chat template; every assistant turn is trained on;
//! * **prompt/completion**: `{"prompt": "...", "completion": "...", "task":
//!   "..."}`; the completion is trained on.
//!
//! `task` is optional. Other fields are ignored. A line that is not such an
//! object is an error naming the file, the line and what is wrong
//! ([`SftDataError`]); nothing is dropped silently. Files are read a line
//! at a time, each line bounded ([`DEFAULT_MAX_LINE_BYTES`]): a longer line
//! is an error, not an allocation.
//!
//! [`SftEncoder`] turns an example into token ids and the spans of them that
//! are answer tokens ([`AnswerSequence`](crate::AnswerSequence)).

mod encode;
mod read;

pub use encode::{Encoded, LongExamples, PromptFormat, SftEncodeError, SftEncoder};
pub use read::{read_jsonl, JsonlRecords, RecordError, SftDataError, DEFAULT_MAX_LINE_BYTES};

use crate::chat::ChatTurn;

/// One example of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SftExample {
    /// A conversation with at least one assistant turn.
    Conversation(Vec<ChatTurn>),
    /// A prompt and the completion to train on.
    Completion {
        /// The prompt.
        prompt: String,
        /// The completion (not empty).
        completion: String,
    },
}

impl SftExample {
    /// The answer a test example is scored against: the last assistant
    /// turn's content, or the completion.
    pub fn reference(&self) -> &str {
        match self {
            Self::Conversation(turns) => turns
                .iter()
                .rev()
                .find(|t| t.role == "assistant")
                .map_or("", |t| t.content.as_str()),
            Self::Completion { completion, .. } => completion,
        }
    }

    /// The example's input for a report: the last user turn's content, or
    /// the prompt.
    pub fn input(&self) -> &str {
        match self {
            Self::Conversation(turns) => turns
                .iter()
                .rev()
                .find(|t| t.role == "user")
                .map_or("", |t| t.content.as_str()),
            Self::Completion { prompt, .. } => prompt,
        }
    }
}

/// One line of a data file: the example, its task if it names one, and
/// where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftRecord {
    /// The example.
    pub example: SftExample,
    /// The line's `task`, if it has one.
    pub task: Option<String>,
    /// The line number in its file, from 1.
    pub line: usize,
}
