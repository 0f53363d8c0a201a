//! Which chat template the experiment renders its prompts with.
//!
//! A model's own template (`tokenizer.chat_template`) comes first, then a
//! template file given on the command line instead. A model without one
//! (a base model, such as Gemma 3 270M) whose vocabulary holds Gemma's turn
//! tokens (`<start_of_turn>`, `<end_of_turn>`) is prompted in that turn
//! format, [`GEMMA_TURNS`]: it is the format the model family is
//! instruction-tuned in, and its tokens are single control tokens the
//! pre-trained model has seen, so the adapters need learn no new
//! delimiters. Any other model without a template needs a template file.

use std::path::Path;

use burn_rlora_llm::{ChatTemplate, ChatTemplateError, Tokenizer};
use serde::Serialize;

/// Gemma's turn format, written for this experiment: the beginning of
/// sequence, then each turn as `<start_of_turn>{role}\n{content}<end_of_turn>\n`
/// with the assistant's role named `model`, a system turn put before the
/// first user turn's content (Gemma has no system role), and
/// `<start_of_turn>model\n` as the generation prompt.
pub const GEMMA_TURNS: &str = r#"{{ bos_token }}
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set system = messages[0]['content'] + '\n\n' -%}
  {%- set turns = messages[1:] -%}
{%- else -%}
  {%- set system = '' -%}
  {%- set turns = messages -%}
{%- endif -%}
{%- for message in turns -%}
<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}
{{ (system if loop.first else '') + message['content'] }}<end_of_turn>
{{ '' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
<start_of_turn>model
{{ '' }}
{%- endif -%}"#;

/// Where the experiment's chat template comes from (recorded in the run's
/// settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateSource {
    /// The model file's own `tokenizer.chat_template`.
    ModelFile,
    /// A template file given by the user.
    GivenFile(String),
    /// [`GEMMA_TURNS`], for a model without a template whose vocabulary has
    /// Gemma's turn tokens.
    GemmaTurns,
}

/// The chat template to put on `tokenizer` (`None`: keep its own) and where
/// it comes from: `given` if any, else the tokenizer's own, else
/// [`GEMMA_TURNS`] where its vocabulary has Gemma's turn tokens.
///
/// # Errors
///
/// A template file that cannot be read or compiled; a model with neither a
/// template nor Gemma's turn tokens, when no file is given.
pub fn choose_template(
    tokenizer: &Tokenizer,
    given: Option<&Path>,
) -> Result<(Option<ChatTemplate>, TemplateSource), TemplateError> {
    if let Some(path) = given {
        let template = ChatTemplate::from_file(path)?;
        return Ok((
            Some(template),
            TemplateSource::GivenFile(path.display().to_string()),
        ));
    }
    if tokenizer.chat_template().is_some() {
        return Ok((None, TemplateSource::ModelFile));
    }
    let has_turns = ["<start_of_turn>", "<end_of_turn>"].iter().all(|t| {
        tokenizer
            .token_to_id(t)
            .is_some_and(|id| tokenizer.is_special(id))
    });
    if has_turns {
        return Ok((
            Some(ChatTemplate::new(GEMMA_TURNS)?),
            TemplateSource::GemmaTurns,
        ));
    }
    Err(TemplateError::None)
}

/// Why no chat template could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The given template file could not be read or compiled.
    #[error(transparent)]
    Template(#[from] ChatTemplateError),
    /// The model has no template and no turn tokens this experiment knows.
    #[error(
        "the model has no chat template and no turn tokens this experiment knows \
         (Gemma's <start_of_turn>/<end_of_turn>): give one with --chat-template FILE"
    )]
    None,
}
