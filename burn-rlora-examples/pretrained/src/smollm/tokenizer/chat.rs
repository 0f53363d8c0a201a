//! Conversations and SmolLM2's ChatML chat template: the turns, and the
//! template recognised and rendered without a template engine.

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

/// The start of every recognised ChatML template.
const CHATML_HEAD: &str = "{% for message in messages %}";
/// The start of the default system turn of SmolLM2's template.
const CHATML_SYSTEM_HEAD: &str =
    "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n";
/// The end of that default system turn.
const CHATML_SYSTEM_TAIL: &str = "<|im_end|>\n' }}{% endif %}";
/// The turn loop's body and the generation prompt, the rest of the template.
const CHATML_BODY: &str = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] \
     + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}\
     {{ '<|im_start|>assistant\n' }}{% endif %}";

/// A chat template this module renders itself, without a Jinja engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatFormat {
    /// ChatML: each turn as `<|im_start|>{role}\n{content}<|im_end|>\n`, and
    /// `<|im_start|>assistant\n` as the generation prompt.
    ChatMl {
        /// The system turn put first when the conversation does not start with
        /// one (SmolLM2-Instruct's "You are a helpful AI assistant named
        /// SmolLM, trained by Hugging Face"); `None` for plain ChatML.
        default_system: Option<String>,
    },
}

impl ChatFormat {
    /// The format of a Jinja chat template, if it is one of those rendered here:
    /// SmolLM2's ChatML template, with whatever default system message, or the
    /// same template without the default system turn. The comparison is exact
    /// (whitespace included); any other template gives `None`.
    pub fn from_template(template: &str) -> Option<Self> {
        let rest = template.strip_prefix(CHATML_HEAD)?;
        let (default_system, body) = match rest.strip_prefix(CHATML_SYSTEM_HEAD) {
            Some(system) => {
                let end = system.find(CHATML_SYSTEM_TAIL)?;
                let text = unescape_jinja_single_quoted(&system[..end])?;
                (Some(text), &system[end + CHATML_SYSTEM_TAIL.len()..])
            }
            None => (None, rest),
        };
        (body == CHATML_BODY).then_some(Self::ChatMl { default_system })
    }

    /// The prompt for `turns`, as the template renders it; with
    /// `add_generation_prompt`, followed by the opening of an assistant turn.
    /// Roles and contents are written as given, control tokens included.
    pub fn render(&self, turns: &[ChatTurn], add_generation_prompt: bool) -> String {
        let Self::ChatMl { default_system } = self;
        let mut out = String::new();
        let mut push_turn = |role: &str, content: &str| {
            out.push_str("<|im_start|>");
            out.push_str(role);
            out.push('\n');
            out.push_str(content);
            out.push_str("<|im_end|>\n");
        };
        for (i, turn) in turns.iter().enumerate() {
            if let (0, Some(system)) = (i, default_system) {
                if turn.role != "system" {
                    push_turn("system", system);
                }
            }
            push_turn(&turn.role, &turn.content);
        }
        if add_generation_prompt {
            out.push_str("<|im_start|>assistant\n");
        }
        out
    }
}

/// The text of a single-quoted Jinja string literal's inside, or `None` if it
/// holds an unescaped quote (the literal would end there) or an escape other
/// than `\\`, `\'`, `\"`, `\n`, `\r`, `\t`.
fn unescape_jinja_single_quoted(literal: &str) -> Option<String> {
    let mut out = String::with_capacity(literal.len());
    let mut chars = literal.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => return None,
            '\\' => out.push(match chars.next()? {
                '\\' => '\\',
                '\'' => '\'',
                '"' => '"',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                _ => return None,
            }),
            c => out.push(c),
        }
    }
    Some(out)
}
