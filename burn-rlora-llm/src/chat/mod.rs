//! Conversations and the Jinja chat templates that turn them into prompts.
//!
//! A model's chat template (`tokenizer.chat_template` in a GGUF file, or a
//! template file the user gives) is rendered with [MiniJinja], set up as
//! transformers sets up Jinja2 for `apply_chat_template`
//! (`transformers/utils/chat_template_utils.py`, `_compile_jinja_template`
//! and `render_jinja_template`), so that a template renders the prompt the
//! model was trained on:
//!
//! - `trim_blocks` and `lstrip_blocks` on, `keep_trailing_newline` off;
//!   `{% break %}` and `{% continue %}` (Jinja's `loopcontrols` extension);
//! - the globals `raise_exception(message)` (the render fails with
//!   [`ChatTemplateError::Raised`]) and `strftime_now(format)` (the current
//!   time, in UTC: see below);
//! - the `tojson` filter of transformers, which is Python's `json.dumps`
//!   (`ensure_ascii`, `indent`, `separators` and `sort_keys` as keyword
//!   arguments; no HTML escaping), not Jinja's;
//! - Python's `str` and `dict` methods that templates call, such as
//!   `.strip()`, `.startswith(...)`, `.split(...)`, `.items()`, `.get(...)`
//!   (`minijinja_contrib`'s pycompat), with Python's whitespace (which
//!   includes U+001C..U+001F) for `.strip()`, `.split()`, `.isspace()` and
//!   the `trim` filter, and Python's `.title()`;
//! - the variables `messages` (a list of `{role, content}` maps, in that
//!   key order), `add_generation_prompt`, `bos_token`, `eos_token`, and
//!   `tools` and `documents` as `none`, as transformers passes them when the
//!   caller gives none (so `tools is defined` holds and `tools is none`
//!   too). Other special tokens (`unk_token`, `pad_token`, ...) are left
//!   undefined.
//!
//! Values print as Python prints them (`None`, `True`, `['a']`); the
//! remaining differences from Jinja2 are MiniJinja's (its list of builtins
//! and their corner cases), and `strftime_now` uses UTC where transformers
//! uses the machine's local time.
//!
//! Templates are untrusted input (a GGUF file's metadata, a downloaded file),
//! so a render is bounded: the engine's fuel limits the instructions it runs
//! and the data it creates (a template that loops forever or builds huge
//! strings stops with [`ChatTemplateError::TooMuchWork`]), recursion is
//! limited, the output is limited ([`ChatTemplateError::OutputTooLarge`]),
//! and the render runs on a thread of its own with a large stack, so that
//! deeply nested values a template builds cannot overflow the caller's.
//! Errors are typed, and a panic in the engine (a bug) is caught and
//! reported as [`ChatTemplateError::Panicked`].
//!
//! One gap is MiniJinja's (3.1.0): it keeps `list + list` lazy but turns a
//! chain of more than 32 such concatenations into a list without charging
//! fuel first, so a template that doubles a list 33 times or more
//! (`{% set x = x + x %}` in a loop) can exhaust memory. Jinja2 in
//! transformers has no bound there at all.
//!
//! [MiniJinja]: https://docs.rs/minijinja

mod python;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Enumerator, Object, Value};
use minijinja::{context, Environment, ErrorKind};
use serde::{Deserialize, Serialize};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTurn {
    /// Who speaks: `system`, `user` or `assistant`.
    pub role: String,
    /// What is said.
    pub content: String,
}

impl ChatTurn {
    /// A turn of `role`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A system turn.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A user turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An assistant turn.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// The largest chat template accepted, in bytes (1 MiB). Published templates
/// are a few kilobytes; the largest, with tool-calling instructions, are
/// tens of kilobytes.
pub const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// The fuel every render has, whatever its input: about a million engine
/// instructions, or 64 MB of data created. The published templates of the
/// tests use 200 to 300 on four turns, about 60 a turn.
const BASE_FUEL: u64 = 1_000_000;
/// The fuel added for each turn of the conversation.
const FUEL_PER_TURN: u64 = 2_000;
/// The input bytes (roles, contents, special tokens) that add one fuel: the
/// template may copy each byte of its input eight times (one fuel pays for
/// 64 bytes of data).
const INPUT_BYTES_PER_FUEL: u64 = 8;
/// The most fuel a render has, however long its input: it bounds the work
/// of a render (a few seconds), the data it creates (256 MB), and the depth
/// of the nested lists it can build (the engine spends about 8 fuel a level).
const MAX_FUEL: u64 = 4_000_000;
/// The render thread's stack. Dropping or printing a value nested `n` deep
/// takes a few hundred bytes of stack a level; at most `MAX_FUEL / 8` levels
/// can be built. The memory is reserved, not used, until a template nests
/// that deep.
const RENDER_STACK_BYTES: usize = 512 << 20;
/// The deepest recursion (macro calls, nested blocks) the engine allows;
/// MiniJinja's own maximum.
const RECURSION_LIMIT: usize = 500;
/// The output every render may write, whatever its input (16 MiB).
const BASE_OUTPUT_BYTES: usize = 16 << 20;
/// The output allowed for each byte of input, on top of the base.
const OUTPUT_BYTES_PER_INPUT_BYTE: usize = 4;

/// The name of the template in its environment, as engine errors give it.
const TEMPLATE_NAME: &str = "chat_template";

/// A compiled Jinja chat template, rendered as transformers'
/// `apply_chat_template(..., tokenize=False)` renders it (see the module's
/// documentation for the environment, the variables and the limits).
///
/// Cloning is cheap (the compiled template is shared); a template can be
/// rendered from several threads at once.
#[derive(Clone)]
pub struct ChatTemplate {
    /// The template's text.
    source: Arc<str>,
    /// The environment holding the compiled template, named [`TEMPLATE_NAME`]
    /// (behind an `Arc`: an environment is a few hundred bytes).
    env: Arc<Environment<'static>>,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source())
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles the template `source`. A syntax error is reported with its
    /// line and column ([`ChatTemplateError::Syntax`]); a source of more than
    /// [`MAX_TEMPLATE_BYTES`] is refused.
    pub fn new(source: &str) -> Result<ChatTemplate, ChatTemplateError> {
        if source.len() as u64 > MAX_TEMPLATE_BYTES {
            return Err(ChatTemplateError::TemplateTooLarge {
                path: None,
                size: source.len() as u64,
                limit: MAX_TEMPLATE_BYTES,
            });
        }
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|err| ChatTemplateError::Render {
                line: None,
                message: describe(&err),
            })?;
        env.set_syntax(syntax);
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_fuel(Some(BASE_FUEL));
        // Errors carry the span of the failing expression (for the column).
        env.set_debug(true);
        env.set_unknown_method_callback(python::unknown_method);
        env.add_function("raise_exception", python::raise_exception);
        env.add_function("strftime_now", python::strftime_now);
        env.add_filter("tojson", python::tojson);
        env.add_filter("trim", python::trim_filter);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|err| syntax_error(&err, source, None))?;
        Ok(ChatTemplate {
            source: source.into(),
            env: Arc::new(env),
        })
    }

    /// Reads and compiles the template file at `path` (a template the user
    /// gives, e.g. a model's `chat_template.jinja`). Before reading, anything
    /// but a regular file (a directory, a FIFO, a device; a symbolic link is
    /// followed) and a file of more than [`MAX_TEMPLATE_BYTES`] are refused;
    /// the file must be UTF-8. Errors name the path.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ChatTemplate, ChatTemplateError> {
        let path = path.as_ref();
        let io_error = |source| ChatTemplateError::Io {
            path: path.to_path_buf(),
            source,
        };
        let check = |meta: &std::fs::Metadata| {
            if !meta.is_file() {
                return Err(ChatTemplateError::NotAFile {
                    path: path.to_path_buf(),
                    kind: file_kind(&meta.file_type()),
                });
            }
            if meta.len() > MAX_TEMPLATE_BYTES {
                return Err(ChatTemplateError::TemplateTooLarge {
                    path: Some(path.to_path_buf()),
                    size: meta.len(),
                    limit: MAX_TEMPLATE_BYTES,
                });
            }
            Ok(())
        };
        // Checked before opening: opening a FIFO would block.
        check(&std::fs::metadata(path).map_err(io_error)?)?;
        let file = File::open(path).map_err(io_error)?;
        // And again on the file opened, in case the path changed meanwhile.
        check(&file.metadata().map_err(io_error)?)?;
        let mut bytes = Vec::new();
        file.take(MAX_TEMPLATE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
        if bytes.len() as u64 > MAX_TEMPLATE_BYTES {
            return Err(ChatTemplateError::TemplateTooLarge {
                path: Some(path.to_path_buf()),
                size: bytes.len() as u64,
                limit: MAX_TEMPLATE_BYTES,
            });
        }
        let source = String::from_utf8(bytes).map_err(|err| ChatTemplateError::NotUtf8 {
            path: path.to_path_buf(),
            valid_up_to: err.utf8_error().valid_up_to(),
        })?;
        Self::new(&source).map_err(|err| match err {
            ChatTemplateError::Syntax {
                line,
                column,
                message,
                ..
            } => ChatTemplateError::Syntax {
                path: Some(path.to_path_buf()),
                line,
                column,
                message,
            },
            other => other,
        })
    }

    /// The template's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt for `turns`, as transformers'
    /// `apply_chat_template(turns, tokenize=False, add_generation_prompt=...)`
    /// renders it with `bos_token` and `eos_token` as the tokenizer's special
    /// tokens: with `add_generation_prompt`, the template ends the prompt with
    /// the opening of an assistant turn. Roles and contents are given to the
    /// template as they are (control tokens written in a content stay text
    /// here; how they are encoded is the tokenizer's business).
    ///
    /// An empty conversation is rendered too (transformers refuses it).
    /// Errors if the template calls `raise_exception` (e.g. roles that do not
    /// alternate, a system turn the model does not support), fails (an
    /// undefined method, a type error, too deep a recursion), or goes past
    /// the render's limits.
    pub fn render(
        &self,
        turns: &[ChatTurn],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, ChatTemplateError> {
        let input_bytes = turns
            .iter()
            .map(|turn| turn.role.len() + turn.content.len())
            .sum::<usize>()
            + bos_token.len()
            + eos_token.len();
        let fuel = (BASE_FUEL
            + FUEL_PER_TURN.saturating_mul(turns.len() as u64)
            + input_bytes as u64 / INPUT_BYTES_PER_FUEL)
            .min(MAX_FUEL);
        let output_limit = input_bytes
            .saturating_mul(OUTPUT_BYTES_PER_INPUT_BYTE)
            .saturating_add(BASE_OUTPUT_BYTES);
        let work = || {
            self.render_here(
                turns,
                add_generation_prompt,
                bos_token,
                eos_token,
                fuel,
                output_limit,
            )
        };
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("chat-template".into())
                .stack_size(RENDER_STACK_BYTES)
                .spawn_scoped(scope, work)
                .map_err(|source| ChatTemplateError::RenderThread { source })?;
            handle.join().unwrap_or_else(|panic| {
                Err(ChatTemplateError::Panicked {
                    message: panic_message(panic.as_ref()),
                })
            })
        })
    }

    /// [`render`](Self::render) on the current thread, with `fuel` and at
    /// most `output_limit` bytes of output.
    fn render_here(
        &self,
        turns: &[ChatTurn],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
        fuel: u64,
        output_limit: usize,
    ) -> Result<String, ChatTemplateError> {
        let mut env = Environment::clone(&self.env);
        env.set_fuel(Some(fuel));
        let template = env
            .get_template(TEMPLATE_NAME)
            .map_err(|err| render_error(&err))?;
        let messages: Vec<Value> = turns
            .iter()
            .map(|turn| {
                Value::from_object(Message {
                    role: Value::from(turn.role.as_str()),
                    content: Value::from(turn.content.as_str()),
                })
            })
            .collect();
        let ctx = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
            tools => (),
            documents => (),
        };
        let mut out = LimitedOutput {
            bytes: Vec::new(),
            limit: output_limit,
            exceeded: false,
        };
        match template.render_captured_to(ctx, &mut out) {
            Ok(_) => {}
            Err(_) if out.exceeded => {
                return Err(ChatTemplateError::OutputTooLarge {
                    limit: output_limit,
                })
            }
            Err(err) if err.kind() == ErrorKind::OutOfFuel => {
                return Err(ChatTemplateError::TooMuchWork { fuel })
            }
            Err(err) => return Err(render_error(&err)),
        }
        // The engine writes whole `str`s.
        String::from_utf8(out.bytes).map_err(|err| ChatTemplateError::Panicked {
            message: format!("the engine wrote invalid UTF-8: {err}"),
        })
    }
}

/// A conversation turn as the template sees it: a map of `role` and
/// `content`, in that order (as the dict transformers passes).
#[derive(Debug)]
struct Message {
    /// The `role` string.
    role: Value,
    /// The `content` string.
    content: Value,
}

impl Object for Message {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "role" => Some(self.role.clone()),
            "content" => Some(self.content.clone()),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["role", "content"])
    }
}

/// The render's output, refused past `limit` bytes.
struct LimitedOutput {
    /// What was written.
    bytes: Vec<u8>,
    /// The most bytes allowed.
    limit: usize,
    /// Whether a write went past the limit (the render then fails).
    exceeded: bool,
}

impl io::Write for LimitedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("the chat template's output is too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The error of a template's compilation, at its line and column in `source`.
fn syntax_error(err: &minijinja::Error, source: &str, path: Option<PathBuf>) -> ChatTemplateError {
    let column = err.range().and_then(|range| {
        let start = range.start.min(source.len());
        let before = source.get(..start)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Some(before[line_start..].chars().count() + 1)
    });
    ChatTemplateError::Syntax {
        path,
        line: err.line(),
        column,
        message: describe(err),
    }
}

/// The error of a render: the message of a `raise_exception` call, or the
/// engine's error.
fn render_error(err: &minijinja::Error) -> ChatTemplateError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(raised) = e.downcast_ref::<python::RaisedException>() {
            return ChatTemplateError::Raised {
                message: raised.0.clone(),
            };
        }
        cause = e.source();
    }
    ChatTemplateError::Render {
        line: err.line(),
        message: describe(err),
    }
}

/// An engine error's kind and detail, without the template name and line
/// that its `Display` adds.
fn describe(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

/// What a file that is not a regular file is, in words.
fn file_kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// ` in {path}` for an error about a template file, nothing otherwise.
fn in_file(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!(" {}", path.display()),
        None => String::new(),
    }
}

/// ` at line L, column C` as far as known.
fn at_position(line: &Option<usize>, column: &Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

/// Why a chat template could not be read, compiled or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatTemplateError {
    /// The template does not compile: a Jinja syntax error (or a construct
    /// the engine does not support, such as `{% include %}`).
    #[error("chat template{} has a syntax error{}: {message}", in_file(.path), at_position(.line, .column))]
    Syntax {
        /// The template file, if it came from one.
        path: Option<PathBuf>,
        /// The line of the error (1-based), if known.
        line: Option<usize>,
        /// The column of the error on that line (1-based, in characters),
        /// if known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The template called `raise_exception(message)`: it refuses the
    /// conversation (e.g. roles that do not alternate).
    #[error("the chat template refused the conversation: {message}")]
    Raised {
        /// The template's message.
        message: String,
    },
    /// The render failed: an undefined method or filter, a type error, too
    /// deep a recursion, ...
    #[error("rendering the chat template failed{}: {message}", at_position(.line, &None))]
    Render {
        /// The template line where it failed, if known.
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
    /// The render ran out of fuel: the template does too much work or builds
    /// too much data for the conversation (a loop that does not end, huge
    /// strings).
    #[error("the chat template ran out of its budget of {fuel} fuel (too much work or data: a runaway template?)")]
    TooMuchWork {
        /// The fuel the render had.
        fuel: u64,
    },
    /// The render's output went past its limit.
    #[error("the chat template's output went past its limit of {limit} bytes")]
    OutputTooLarge {
        /// The most bytes the render could write.
        limit: usize,
    },
    /// The template text (or file) is larger than [`MAX_TEMPLATE_BYTES`].
    #[error("chat template{} is {size} bytes, more than the limit of {limit}", in_file(.path))]
    TemplateTooLarge {
        /// The template file, if it came from one.
        path: Option<PathBuf>,
        /// Its size in bytes (for a file, at least this).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The template path names something other than a regular file.
    #[error("chat template {} is {kind}, not a regular file", .path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is: "a directory", "a FIFO", ...
        kind: &'static str,
    },
    /// The template file could not be read.
    #[error("cannot read chat template {}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The template file is not UTF-8.
    #[error("chat template {} is not UTF-8 (invalid bytes after byte {valid_up_to})", .path.display())]
    NotUtf8 {
        /// The path.
        path: PathBuf,
        /// How many bytes from the start are valid UTF-8.
        valid_up_to: usize,
    },
    /// The thread the template is rendered on could not be started.
    #[error("cannot start the chat template's render thread: {source}")]
    RenderThread {
        /// The I/O error from starting it.
        #[source]
        source: io::Error,
    },
    /// The template engine panicked: a bug, reported instead of unwinding
    /// into the caller.
    #[error("the chat template engine panicked (a bug): {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}
