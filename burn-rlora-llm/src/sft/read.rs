//! Reading JSONL data files a line at a time, each line checked.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use thiserror::Error;

use super::{SftExample, SftRecord};
use crate::chat::ChatTurn;

/// The longest line read by default (1 MiB): a longer one is an error.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// The roles a conversation's turns may have.
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// What is wrong with one line of a data file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The line is longer than the limit.
    #[error("the line is longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// The line is not valid UTF-8.
    #[error("the line is not valid UTF-8 (byte {at})")]
    InvalidUtf8 {
        /// Where the first invalid byte is, in the line.
        at: usize,
    },
    /// The line is not valid JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The line is JSON but not an object.
    #[error("the line is a JSON {0}, not an object")]
    NotAnObject(&'static str),
    /// Neither `messages` nor `prompt` and `completion`.
    #[error("no \"messages\" (conversational) or \"prompt\" and \"completion\" field")]
    NoExample,
    /// Both shapes at once.
    #[error("both \"messages\" and \"prompt\"/\"completion\": give one shape per line")]
    BothShapes,
    /// A required field is absent.
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// A field of the wrong JSON type.
    #[error("field {field} is a JSON {found}, not {expected}")]
    WrongType {
        /// The field (with its place, e.g. `messages[2].content`).
        field: String,
        /// What it should be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// A turn's role is not `system`, `user` or `assistant`.
    #[error("messages[{turn}] has the role {role:?} (not system, user or assistant)")]
    UnknownRole {
        /// The turn's index.
        turn: usize,
        /// Its role.
        role: String,
    },
    /// A conversation without an assistant turn: nothing to train on.
    #[error("the conversation has no assistant turn: nothing to train on")]
    NoAssistantTurn,
    /// An assistant turn without content.
    #[error("messages[{turn}] is an assistant turn with empty content")]
    EmptyAnswer {
        /// The turn's index.
        turn: usize,
    },
    /// A completion without content.
    #[error("the completion is empty")]
    EmptyCompletion,
    /// An empty `task`.
    #[error("the task is an empty string")]
    EmptyTask,
}

/// What can go wrong reading a data file. Every variant names the file, and
/// the line where there is one.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SftDataError {
    /// The path is not a regular file (a directory, a FIFO, a device).
    #[error("{}: not a regular file ({kind})", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not an example.
    #[error("{}:{line}: {error}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        error: RecordError,
    },
    /// The file holds no example.
    #[error("{}: no example (the file is empty or holds blank lines only)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The records of a JSONL file, a line at a time (blank lines skipped).
///
/// ```
/// use burn_rlora_llm::sft::{JsonlRecords, SftExample};
///
/// let data = "{\"prompt\": \"2 + 2 =\", \"completion\": \" 4\", \"task\": \"sums\"}\n\n\
///             {\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, \
///                             {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n";
/// let records: Vec<_> = JsonlRecords::new(data.as_bytes(), "inline.jsonl", 1024)
///     .collect::<Result<_, _>>()?;
/// assert_eq!(records.len(), 2);
/// assert_eq!(records[0].task.as_deref(), Some("sums"));
/// assert_eq!(records[1].line, 3);
/// assert!(matches!(records[1].example, SftExample::Conversation(_)));
/// # Ok::<(), burn_rlora_llm::sft::SftDataError>(())
/// ```
pub struct JsonlRecords<R> {
    reader: R,
    path: PathBuf,
    max_line: usize,
    line: usize,
    buffer: Vec<u8>,
    done: bool,
}

impl<R: BufRead> JsonlRecords<R> {
    /// The records of `reader`, named `path` in errors, lines of at most
    /// `max_line_bytes` bytes.
    pub fn new(reader: R, path: impl Into<PathBuf>, max_line_bytes: usize) -> Self {
        Self {
            reader,
            path: path.into(),
            max_line: max_line_bytes,
            line: 0,
            buffer: Vec::new(),
            done: false,
        }
    }

    fn error(&self, error: RecordError) -> SftDataError {
        SftDataError::Record {
            path: self.path.clone(),
            line: self.line,
            error,
        }
    }

    /// The next line into `self.buffer` (without its end), or `false` at the
    /// end; a line over the limit is read to its end but not kept.
    fn next_line(&mut self) -> Result<bool, SftDataError> {
        self.buffer.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = self.reader.fill_buf().map_err(|source| SftDataError::Io {
                path: self.path.clone(),
                source,
            })?;
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (part, ends) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], i + 1),
                None => (chunk, chunk.len()),
            };
            if !too_long && self.buffer.len() + part.len() <= self.max_line {
                self.buffer.extend_from_slice(part);
            } else {
                too_long = true;
            }
            let newline = ends > part.len();
            self.reader.consume(ends);
            if newline {
                break;
            }
        }
        if !any {
            return Ok(false);
        }
        self.line += 1;
        if too_long {
            return Err(self.error(RecordError::LineTooLong {
                limit: self.max_line,
            }));
        }
        if self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
        }
        if self.line == 1 && self.buffer.starts_with(b"\xEF\xBB\xBF") {
            self.buffer.drain(..3);
        }
        Ok(true)
    }
}

impl<R: BufRead> Iterator for JsonlRecords<R> {
    type Item = Result<SftRecord, SftDataError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.next_line() {
                Ok(false) => self.done = true,
                Ok(true) if self.buffer.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(true) => {
                    let line = self.line;
                    let parsed = parse_line(&self.buffer).map_err(|e| self.error(e));
                    if parsed.is_err() {
                        self.done = true;
                    }
                    return Some(parsed.map(|(example, task)| SftRecord {
                        example,
                        task,
                        line,
                    }));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Every record of the JSONL file at `path` (lines of at most
/// `max_line_bytes`), or the first error.
///
/// # Errors
///
/// [`SftDataError`]: the path is not a regular file (checked before it is
/// opened, so that a FIFO does not block), cannot be read, holds a line
/// that is not an example, or holds no example.
pub fn read_jsonl(
    path: impl AsRef<Path>,
    max_line_bytes: usize,
) -> Result<Vec<SftRecord>, SftDataError> {
    let path = path.as_ref();
    let io = |source| SftDataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a file (a FIFO, socket or device)"
        };
        return Err(SftDataError::NotAFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    let file = File::open(path).map_err(io)?;
    let records = JsonlRecords::new(BufReader::new(file), path, max_line_bytes)
        .collect::<Result<Vec<_>, _>>()?;
    if records.is_empty() {
        return Err(SftDataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(records)
}

/// The JSON type of `value`, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `object[field]` as a string, `None` when absent or null.
fn string(
    object: &Map<String, Value>,
    field: &str,
    place: &str,
) -> Result<Option<String>, RecordError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(RecordError::WrongType {
            field: format!("{place}{field}"),
            expected: "a string",
            found: kind(other),
        }),
    }
}

/// One line as an example and its task.
fn parse_line(bytes: &[u8]) -> Result<(SftExample, Option<String>), RecordError> {
    let text = std::str::from_utf8(bytes).map_err(|e| RecordError::InvalidUtf8 {
        at: e.valid_up_to(),
    })?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| RecordError::InvalidJson(e.to_string()))?;
    let Value::Object(object) = value else {
        return Err(RecordError::NotAnObject(kind(&value)));
    };
    let task = string(&object, "task", "")?;
    if task.as_deref() == Some("") {
        return Err(RecordError::EmptyTask);
    }
    let has_messages = object.get("messages").is_some_and(|v| !v.is_null());
    let has_completion = ["prompt", "completion"]
        .iter()
        .any(|f| object.get(*f).is_some_and(|v| !v.is_null()));
    let example = match (has_messages, has_completion) {
        (true, true) => return Err(RecordError::BothShapes),
        (false, false) => return Err(RecordError::NoExample),
        (true, false) => conversation(&object["messages"])?,
        (false, true) => {
            let prompt =
                string(&object, "prompt", "")?.ok_or(RecordError::MissingField("prompt"))?;
            let completion = string(&object, "completion", "")?
                .ok_or(RecordError::MissingField("completion"))?;
            if completion.trim().is_empty() {
                return Err(RecordError::EmptyCompletion);
            }
            SftExample::Completion { prompt, completion }
        }
    };
    Ok((example, task))
}

/// `messages` as the turns of a conversation.
fn conversation(messages: &Value) -> Result<SftExample, RecordError> {
    let Value::Array(items) = messages else {
        return Err(RecordError::WrongType {
            field: "messages".into(),
            expected: "an array",
            found: kind(messages),
        });
    };
    let mut turns = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(turn) = item else {
            return Err(RecordError::WrongType {
                field: format!("messages[{i}]"),
                expected: "an object",
                found: kind(item),
            });
        };
        let place = format!("messages[{i}].");
        let role = string(turn, "role", &place)?.ok_or(RecordError::MissingField("role"))?;
        if !ROLES.contains(&role.as_str()) {
            return Err(RecordError::UnknownRole { turn: i, role });
        }
        let content =
            string(turn, "content", &place)?.ok_or(RecordError::MissingField("content"))?;
        if role == "assistant" && content.trim().is_empty() {
            return Err(RecordError::EmptyAnswer { turn: i });
        }
        turns.push(ChatTurn::new(role, content));
    }
    if !turns.iter().any(|t| t.role == "assistant") {
        return Err(RecordError::NoAssistantTurn);
    }
    Ok(SftExample::Conversation(turns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(data: &[u8]) -> SftDataError {
        JsonlRecords::new(data, "t.jsonl", 64)
            .find_map(Result::err)
            .expect("an error")
    }

    fn record_error(data: &[u8]) -> (usize, RecordError) {
        match first_error(data) {
            SftDataError::Record { line, error, .. } => (line, error),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn every_bad_line_is_named_by_its_line_and_fault() {
        let ok = "{\"prompt\": \"a\", \"completion\": \"b\"}\n";
        let cases: Vec<(String, RecordError)> = vec![
            (
                "{\"prompt\": \"a\"".into(),
                RecordError::InvalidJson(String::new()),
            ),
            ("[1, 2]".into(), RecordError::NotAnObject("array")),
            ("{\"text\": \"x\"}".into(), RecordError::NoExample),
            (
                "{\"prompt\": \"a\", \"completion\": \"b\", \"messages\": []}".into(),
                RecordError::BothShapes,
            ),
            (
                "{\"prompt\": \"a\"}".into(),
                RecordError::MissingField("completion"),
            ),
            (
                "{\"prompt\": 3, \"completion\": \"b\"}".into(),
                RecordError::WrongType {
                    field: "prompt".into(),
                    expected: "a string",
                    found: "number",
                },
            ),
            (
                "{\"prompt\": \"a\", \"completion\": \"  \"}".into(),
                RecordError::EmptyCompletion,
            ),
            (
                "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}".into(),
                RecordError::UnknownRole {
                    turn: 0,
                    role: "tool".into(),
                },
            ),
            (
                "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}".into(),
                RecordError::NoAssistantTurn,
            ),
            (
                "{\"messages\": [{\"role\": \"assistant\", \"content\": \"\"}]}".into(),
                RecordError::EmptyAnswer { turn: 0 },
            ),
            (
                "{\"messages\": [{\"role\": \"user\"}]}".into(),
                RecordError::MissingField("content"),
            ),
            (
                "{\"messages\": \"hi\"}".into(),
                RecordError::WrongType {
                    field: "messages".into(),
                    expected: "an array",
                    found: "string",
                },
            ),
            (
                "{\"prompt\": \"a\", \"completion\": \"b\", \"task\": \"\"}".into(),
                RecordError::EmptyTask,
            ),
            (
                format!(
                    "{{\"prompt\": \"{}\", \"completion\": \"b\"}}",
                    "x".repeat(80)
                ),
                RecordError::LineTooLong { limit: 64 },
            ),
        ];
        for (bad, want) in cases {
            let data = format!("{ok}\n{bad}\n{ok}");
            let (line, got) = record_error(data.as_bytes());
            assert_eq!(line, 3, "{bad}");
            match (&got, &want) {
                (RecordError::InvalidJson(_), RecordError::InvalidJson(_)) => {}
                _ => assert_eq!(got, want, "{bad}"),
            }
        }
        let (line, got) = record_error(b"{\"prompt\": \"\xff\", \"completion\": \"b\"}\n");
        assert_eq!((line, got), (1, RecordError::InvalidUtf8 { at: 12 }));
    }

    #[test]
    fn blank_lines_crlf_and_a_bom_are_read() {
        let data = b"\xEF\xBB\xBF{\"prompt\": \"a\", \"completion\": \"b\"}\r\n\r\n  \n{\"prompt\": \"c\", \"completion\": \"d\", \"task\": null}";
        let records: Vec<SftRecord> = JsonlRecords::new(&data[..], "t", 1024)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].line, records[1].line), (1, 4));
        assert_eq!(records[1].task, None);
        assert_eq!(records[1].example.reference(), "d");
    }

    #[test]
    fn reading_stops_at_the_first_error() {
        let data = b"{}\n{\"prompt\": \"a\", \"completion\": \"b\"}\n";
        let items: Vec<_> = JsonlRecords::new(&data[..], "t", 1024).collect();
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }

    #[test]
    fn files_that_are_not_regular_are_refused() {
        let dir = std::env::temp_dir();
        assert!(matches!(
            read_jsonl(&dir, 1024),
            Err(SftDataError::NotAFile { .. })
        ));
        assert!(matches!(
            read_jsonl(dir.join("no-such-file.jsonl"), 1024),
            Err(SftDataError::Io { .. })
        ));
        let empty = dir.join(format!("sft-empty-{}.jsonl", std::process::id()));
        std::fs::write(&empty, "\n\n").unwrap();
        assert!(matches!(
            read_jsonl(&empty, 1024),
            Err(SftDataError::Empty { .. })
        ));
        std::fs::remove_file(empty).unwrap();
    }
}
