//! The entry point: a GGUF file read into the decoder, its tokenizer and
//! its configuration, in one call.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn_rlora_gguf::GgufFile;

use crate::chat::ChatTemplate;
use crate::config::DecoderConfig;
use crate::error::DecoderError;
use crate::load::load_decoder;
use crate::model::CausalLm;
use crate::tokenizer::{Tokenizer, TokenizerSpec};

/// Which chat template the tokenizer of a loaded model renders.
#[derive(Debug, Clone, Default)]
pub enum ChatTemplateChoice {
    /// The file's `tokenizer.chat_template`, if it has one (the default).
    #[default]
    FromFile,
    /// This template instead of the file's (which is then not read).
    Given(ChatTemplate),
    /// No template: chat is refused, raw continuation works.
    None,
}

/// How [`Llm::load_with`] reads a file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The chat template.
    pub chat_template: ChatTemplateChoice,
}

impl LoadOptions {
    /// These options with `chat_template` as the template.
    pub fn with_chat_template(mut self, chat_template: ChatTemplateChoice) -> Self {
        self.chat_template = chat_template;
        self
    }
}

/// A decoder, its tokenizer and its configuration, read from one GGUF file.
#[derive(Debug)]
pub struct Llm<B: Backend> {
    /// The decoder, its projections plain (adapt them with
    /// [`AdaptConfig`](burn_rlora::AdaptConfig)).
    pub model: CausalLm<B>,
    /// The tokenizer of the file's vocabulary, with its chat template.
    pub tokenizer: Tokenizer,
    /// The decoder's configuration.
    pub config: DecoderConfig,
}

impl<B: Backend> Llm<B> {
    /// Read the GGUF file at `path` onto `device`, with the file's chat
    /// template.
    ///
    /// # Errors
    ///
    /// [`DecoderError`]: the file cannot be read, is of an architecture,
    /// vocabulary or tensor type this crate does not build, or does not
    /// hold what its metadata says; each error names the file and the
    /// metadata key or tensor.
    pub fn load(path: impl AsRef<Path>, device: &B::Device) -> Result<Self, DecoderError> {
        Self::load_with(path, &LoadOptions::default(), device)
    }

    /// Read the GGUF file at `path` onto `device` as `options` say.
    ///
    /// The configuration and the vocabulary are read and checked against
    /// the file's tensor infos before any weight is read.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn load_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
        device: &B::Device,
    ) -> Result<Self, DecoderError> {
        let mut file = GgufFile::open(path)?;
        let config = DecoderConfig::from_gguf(&file)?;
        let tokenizer = read_tokenizer(&file, &options.chat_template)?;
        if tokenizer.vocab_size() != config.vocab_size {
            return Err(DecoderError::Metadata {
                file: crate::config::file_name(&file),
                key: "tokenizer.ggml.tokens".into(),
                reason: format!(
                    "{} tokens for a vocabulary of {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            });
        }
        let model = load_decoder(&config, &mut file, device)?;
        Ok(Self {
            model,
            tokenizer,
            config,
        })
    }
}

/// The tokenizer of `file`, with the chat template `choice` names.
fn read_tokenizer(file: &GgufFile, choice: &ChatTemplateChoice) -> Result<Tokenizer, DecoderError> {
    let tokenizer = match choice {
        ChatTemplateChoice::FromFile => Tokenizer::from_gguf(file)?,
        ChatTemplateChoice::Given(_) | ChatTemplateChoice::None => {
            let mut spec = TokenizerSpec::from_gguf(file)?;
            spec.chat_template = None;
            Tokenizer::from_gguf_spec(file, spec)?
        }
    };
    Ok(match choice {
        ChatTemplateChoice::Given(template) => tokenizer.with_chat_template(Some(template.clone())),
        _ => tokenizer,
    })
}
