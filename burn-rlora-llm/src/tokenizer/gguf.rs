//! The `tokenizer.*` metadata of a GGUF file, read into a [`TokenizerSpec`].

use burn_rlora_gguf::{Array, GgufFile, Value};

use super::{token_type, Tokenizer, TokenizerError, TokenizerSpec};

/// The keys read, as llama.cpp names them.
const MODEL: &str = "tokenizer.ggml.model";
const PRE: &str = "tokenizer.ggml.pre";
const TOKENS: &str = "tokenizer.ggml.tokens";
const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const SCORES: &str = "tokenizer.ggml.scores";
const MERGES: &str = "tokenizer.ggml.merges";
const BOS: &str = "tokenizer.ggml.bos_token_id";
const EOS: &str = "tokenizer.ggml.eos_token_id";
const UNKNOWN: &str = "tokenizer.ggml.unknown_token_id";
const PAD: &str = "tokenizer.ggml.padding_token_id";
const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
const CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// The name of `file` in errors.
fn file_name(file: &GgufFile) -> String {
    file.path()
        .map_or_else(|| "<GGUF bytes>".to_owned(), |p| p.display().to_string())
}

/// Reads the metadata of one file, naming it and the key in every error.
struct Reader<'a> {
    file: &'a GgufFile,
}

impl Reader<'_> {
    fn error(&self, key: &str, reason: impl Into<String>) -> TokenizerError {
        TokenizerError::Metadata {
            file: file_name(self.file),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.file.metadata().get(key)
    }

    fn require(&self, key: &str) -> Result<&Value, TokenizerError> {
        self.get(key).ok_or_else(|| self.error(key, "missing"))
    }

    fn wrong(&self, key: &str, expected: &str, found: &Value) -> TokenizerError {
        let found = match found {
            Value::Array(array) => format!("an array of {}", array.element_type()),
            other => format!("a {}", other.value_type()),
        };
        self.error(key, format!("{found} where {expected} belongs"))
    }

    fn string(&self, key: &str) -> Result<Option<String>, TokenizerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, TokenizerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "a bool", other)),
        }
    }

    /// A token id: any integer type, if it fits in `u32`.
    fn id(&self, key: &str) -> Result<Option<u32>, TokenizerError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let Some(n) = value.as_integer() else {
            return Err(self.wrong(key, "an integer", value));
        };
        u32::try_from(n)
            .map(Some)
            .map_err(|_| self.error(key, format!("{n} is not a token id")))
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<String>>, TokenizerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::String(v))) => Ok(Some(v.clone())),
            Some(other) => Err(self.wrong(key, "an array of strings", other)),
        }
    }
}

impl TokenizerSpec {
    /// The `tokenizer.*` metadata of `file`, as llama.cpp reads it:
    ///
    /// - required: `tokenizer.ggml.model`, `tokenizer.ggml.tokens` (strings),
    ///   `tokenizer.ggml.bos_token_id` and `tokenizer.ggml.eos_token_id`
    ///   (integers that fit in `u32`);
    /// - optional: `tokenizer.ggml.token_type` (`i32`s; every token
    ///   [`token_type::NORMAL`] without it, as in llama.cpp),
    ///   `tokenizer.ggml.scores` (`f32`s, or `i32`s as llama.cpp allows),
    ///   `tokenizer.ggml.merges`, `tokenizer.ggml.pre` (`default` without it,
    ///   as in llama.cpp), `tokenizer.ggml.unknown_token_id`,
    ///   `tokenizer.ggml.padding_token_id`, the flags
    ///   `tokenizer.ggml.add_bos_token`, `tokenizer.ggml.add_eos_token` and
    ///   `tokenizer.ggml.add_space_prefix`, and `tokenizer.chat_template`.
    ///
    /// The arrays are checked against the tokens (one type and, when given,
    /// one score per token) and the ids against the vocabulary's size; the
    /// rest is checked by [`Tokenizer::from_spec`] (or in one go by
    /// [`Tokenizer::from_gguf`]).
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Metadata`] for a missing or mistyped value, and
    /// [`TokenizerError::InvalidMetadata`] for arrays of the wrong length or
    /// ids out of range, naming the file and the key.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        let r = Reader { file };
        let model = match r.require(MODEL)? {
            Value::String(s) => s.clone(),
            other => return Err(r.wrong(MODEL, "a string", other)),
        };
        let tokens = r
            .strings(TOKENS)?
            .ok_or_else(|| r.error(TOKENS, "missing"))?;
        let token_types = match r.get(TOKEN_TYPE) {
            None => vec![token_type::NORMAL; tokens.len()],
            Some(Value::Array(Array::I32(v))) => v.clone(),
            Some(other) => return Err(r.wrong(TOKEN_TYPE, "an array of i32", other)),
        };
        let scores = match r.get(SCORES) {
            None => Vec::new(),
            Some(Value::Array(Array::F32(v))) => v.clone(),
            // llama.cpp allows integer scores.
            Some(Value::Array(Array::I32(v))) => v.iter().map(|&s| s as f32).collect(),
            Some(other) => return Err(r.wrong(SCORES, "an array of f32", other)),
        };
        let id = |key| r.id(key)?.ok_or_else(|| r.error(key, "missing"));
        let spec = TokenizerSpec {
            model,
            merges: r.strings(MERGES)?.unwrap_or_default(),
            bos: id(BOS)?,
            eos: id(EOS)?,
            unknown: r.id(UNKNOWN)?,
            pad: r.id(PAD)?,
            pre: r.string(PRE)?.unwrap_or_else(|| "default".to_owned()),
            add_bos: r.flag(ADD_BOS)?,
            add_eos: r.flag(ADD_EOS)?,
            add_space_prefix: r.flag(ADD_SPACE_PREFIX)?,
            chat_template: r.string(CHAT_TEMPLATE)?,
            tokens,
            token_types,
            scores,
        };
        let check = || -> Result<(), TokenizerError> {
            super::build::check_vocab_len(spec.tokens.len())?;
            if spec.token_types.len() != spec.tokens.len() {
                return Err(TokenizerError::TokenTypesLength {
                    tokens: spec.tokens.len(),
                    token_types: spec.token_types.len(),
                });
            }
            if !spec.scores.is_empty() && spec.scores.len() != spec.tokens.len() {
                return Err(TokenizerError::ScoresLength {
                    tokens: spec.tokens.len(),
                    scores: spec.scores.len(),
                });
            }
            super::build::check_special_ids(&spec)
        };
        check().map_err(|error| in_file(file, error))?;
        Ok(spec)
    }
}

impl Tokenizer {
    /// The tokenizer of the GGUF file `file`: [`TokenizerSpec::from_gguf`],
    /// then [`Tokenizer::from_spec`], with any error naming the file and the
    /// metadata key it concerns ([`TokenizerError::Metadata`] or
    /// [`TokenizerError::InvalidMetadata`]).
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        Self::from_gguf_spec(file, TokenizerSpec::from_gguf(file)?)
    }

    /// [`Tokenizer::from_spec`] of `spec`, read from `file` with
    /// [`TokenizerSpec::from_gguf`] and maybe changed since (say, without its
    /// chat template, when the caller gives another), with any error naming
    /// the file and the metadata key it concerns
    /// ([`TokenizerError::InvalidMetadata`]).
    pub fn from_gguf_spec(file: &GgufFile, spec: TokenizerSpec) -> Result<Self, TokenizerError> {
        Self::from_spec(spec).map_err(|error| in_file(file, error))
    }
}

/// `error` of the spec read from `file`, naming the file and the key it
/// concerns (the error as it is if it concerns no key).
fn in_file(file: &GgufFile, error: TokenizerError) -> TokenizerError {
    use TokenizerError as E;
    let key = match &error {
        E::EmptyVocabulary
        | E::VocabularyTooLarge(_)
        | E::DuplicateToken { .. }
        | E::TokenTooLong { .. }
        | E::BadByteToken { .. }
        | E::MissingByteTokens { .. } => TOKENS,
        E::TokenTypesLength { .. } | E::BadTokenType { .. } => TOKEN_TYPE,
        E::ScoresLength { .. } | E::BadScore { .. } => SCORES,
        E::UnsupportedModel(_) => MODEL,
        E::UnsupportedPreTokenizer(_) => PRE,
        E::BadMerge { .. } | E::UnknownMergeToken { .. } => MERGES,
        E::SpecialIdOutOfRange { name, .. } => match *name {
            "bos" => BOS,
            "eos" => EOS,
            "unknown" => UNKNOWN,
            _ => PAD,
        },
        E::ChatTemplate(_) => CHAT_TEMPLATE,
        _ => return error,
    };
    TokenizerError::InvalidMetadata {
        file: file_name(file),
        key: key.to_owned(),
        error: Box::new(error),
    }
}
