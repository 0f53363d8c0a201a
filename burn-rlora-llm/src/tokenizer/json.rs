//! Tokenizers from Hugging Face's `tokenizer.json`, with the special tokens
//! of a `tokenizer_config.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokenizers::Tokenizer as HfTokenizer;

use super::decode::Decoding;
use super::{token_type, Tokenizer, TokenizerError};
use crate::chat::ChatTemplate;

/// The largest `tokenizer.json` or `tokenizer_config.json` read (a
/// `tokenizer.json` of 262,144 tokens and their merges is about 35 MB).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// What a `tokenizer.json` leaves to the `tokenizer_config.json` beside it:
/// the special tokens (by their text), whether BOS and EOS are added, and the
/// chat template. Read one with [`TokenizerConfig::from_file`], or fill one in
/// by hand for [`Tokenizer::from_hf`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerConfig {
    /// `bos_token`: the beginning-of-sequence token (needed).
    pub bos_token: Option<String>,
    /// `eos_token`: the end-of-sequence token (needed).
    pub eos_token: Option<String>,
    /// `unk_token`: the unknown token.
    pub unk_token: Option<String>,
    /// `pad_token`: the padding token.
    pub pad_token: Option<String>,
    /// `add_bos_token`: whether a plain text gets BOS first. Without it, the
    /// `tokenizer.json`'s post-processor says (whether it puts BOS first).
    pub add_bos_token: Option<bool>,
    /// `add_eos_token`: whether a plain text gets EOS last. Without it, the
    /// post-processor says.
    pub add_eos_token: Option<bool>,
    /// `chat_template`: the Jinja chat template (the one named `default` if
    /// the file lists several).
    pub chat_template: Option<String>,
}

impl TokenizerConfig {
    /// The fields of a `tokenizer_config.json`'s text: a special token may be
    /// written as a string, as an object with its `content`, or as `null`;
    /// `chat_template` as a string or as a list of `{name, template}` (the one
    /// named `default` is taken). Other fields are ignored.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let Value::Object(map) = value else {
            return Err("not a JSON object".into());
        };
        let token = |name: &str| -> Result<Option<String>, String> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Object(o)) => match o.get("content") {
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    _ => Err(format!("{name} is an object without a string `content`")),
                },
                Some(_) => Err(format!("{name} is neither a string nor an object")),
            }
        };
        let flag = |name: &str| -> Result<Option<bool>, String> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(format!("{name} is not a boolean")),
            }
        };
        let chat_template = match map.get("chat_template") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .map(|t| match t.get("template") {
                    Some(Value::String(s)) => Ok(s.clone()),
                    _ => Err("the default chat_template has no string `template`".to_owned()),
                })
                .transpose()?,
            Some(_) => return Err("chat_template is neither a string nor a list".into()),
        };
        Ok(Self {
            bos_token: token("bos_token")?,
            eos_token: token("eos_token")?,
            unk_token: token("unk_token")?,
            pad_token: token("pad_token")?,
            add_bos_token: flag("add_bos_token")?,
            add_eos_token: flag("add_eos_token")?,
            chat_template,
        })
    }

    /// Reads the `tokenizer_config.json` at `path` (see
    /// [`from_json`](Self::from_json)). Errors name the path.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Self::from_json(&text).map_err(|reason| TokenizerError::BadFile {
            path: path.to_path_buf(),
            reason,
        })
    }
}

/// The text of the file at `path`, if it is a regular file of at most
/// [`MAX_FILE_BYTES`].
fn read_text(path: &Path) -> Result<String, TokenizerError> {
    let read = |source| TokenizerError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(TokenizerError::BadFile {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(TokenizerError::BadFile {
            path: path.to_path_buf(),
            reason: format!("{} bytes, more than {MAX_FILE_BYTES}", meta.len()),
        });
    }
    std::fs::read_to_string(path).map_err(read)
}

impl Tokenizer {
    /// Loads the `tokenizer.json` at `path`, with the `tokenizer_config.json`
    /// of the same directory if there is one (else an empty
    /// [`TokenizerConfig`], and then the BOS and EOS tokens are missing: use
    /// [`from_hf`](Self::from_hf) to give them). Errors name the file.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        let inner: HfTokenizer = text.parse().map_err(|e| TokenizerError::BadFile {
            path: path.to_path_buf(),
            reason: format!("not a tokenizer.json: {e}"),
        })?;
        let config_path = path.with_file_name("tokenizer_config.json");
        let config = if config_path.is_file() {
            TokenizerConfig::from_file(&config_path)?
        } else {
            TokenizerConfig::default()
        };
        Self::from_hf(inner, &config)
    }

    /// A tokenizer of the `tokenizers` tokenizer `inner` (a `tokenizer.json`
    /// loaded with `tokenizers::Tokenizer::from_file`, or built in code), with
    /// the special tokens, flags and chat template of `config`.
    ///
    /// Its encoding and decoding are `inner`'s own (`encode` adds no special
    /// token: its post-processor is not run; its padding and truncation are
    /// turned off); the bytes of an unfinished
    /// character are held back by the [`StreamDecoder`](super::StreamDecoder)
    /// as U+FFFD in `inner`'s decoding. Token types: special added tokens are
    /// [`token_type::CONTROL`], other added tokens
    /// [`token_type::USER_DEFINED`], the rest [`token_type::NORMAL`].
    ///
    /// # Errors
    ///
    /// [`TokenizerError::MissingSpecialToken`] without `bos_token` or
    /// `eos_token`, [`TokenizerError::UnknownSpecialToken`] for a special token
    /// not in the vocabulary, [`TokenizerError::ChatTemplate`] for a template
    /// that does not compile, [`TokenizerError::SparseIds`] for ids with
    /// more gaps than tokens.
    pub fn from_hf(
        mut inner: HfTokenizer,
        config: &TokenizerConfig,
    ) -> Result<Self, TokenizerError> {
        // A model's input is neither padded nor cut here.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(TokenizerError::Tokenizers)?;
        let vocab = inner.get_vocab(true);
        let max_id = vocab.values().max().copied();
        let vocab_size = max_id.map_or(0, |max| max as usize + 1);
        super::build::check_vocab_len(vocab_size)?;
        if let Some(max_id) = max_id.filter(|_| vocab_size > 2 * vocab.len() + 1024) {
            return Err(TokenizerError::SparseIds {
                tokens: vocab.len(),
                max_id,
            });
        }
        let mut tokens = vec![String::new(); vocab_size];
        let mut token_types = vec![token_type::NORMAL; vocab_size];
        for (token, &id) in &vocab {
            tokens[id as usize].clone_from(token);
        }
        for (&id, added) in inner.get_added_tokens_decoder().iter() {
            if let Some(kind) = token_types.get_mut(id as usize) {
                *kind = if added.special {
                    token_type::CONTROL
                } else {
                    token_type::USER_DEFINED
                };
            }
        }
        let id_of = |name: &'static str, token: &Option<String>| {
            token
                .as_deref()
                .map(|text| {
                    inner
                        .token_to_id(text)
                        .ok_or_else(|| TokenizerError::UnknownSpecialToken {
                            name,
                            token: text.to_owned(),
                        })
                })
                .transpose()
        };
        let bos = id_of("bos_token", &config.bos_token)?
            .ok_or(TokenizerError::MissingSpecialToken { name: "bos_token" })?;
        let eos = id_of("eos_token", &config.eos_token)?
            .ok_or(TokenizerError::MissingSpecialToken { name: "eos_token" })?;
        let unknown = id_of("unk_token", &config.unk_token)?;
        let pad = id_of("pad_token", &config.pad_token)?;
        // What the post-processor adds around a text.
        let framed = inner
            .encode("", true)
            .map_err(TokenizerError::Tokenizers)?
            .get_ids()
            .to_vec();
        let chat_template = config
            .chat_template
            .as_deref()
            .map(ChatTemplate::new)
            .transpose()?;
        Ok(Self {
            tokens,
            token_types,
            decoding: Decoding::Pipeline,
            missing_bytes: Vec::new(),
            bos,
            eos,
            pad,
            unknown,
            add_bos: config.add_bos_token.unwrap_or(framed.first() == Some(&bos)),
            add_eos: config.add_eos_token.unwrap_or(
                framed.len() > usize::from(framed.first() == Some(&bos))
                    && framed.last() == Some(&eos),
            ),
            chat_template,
            inner,
        })
    }
}
