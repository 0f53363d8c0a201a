//! WordPiece tokenization with the `tokenizers` crate, with truncation and padding set here.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use super::encoder::BertInput;
use super::error::MiniLmError;

/// The default maximum length in tokens, `[CLS]` and `[SEP]` included.
pub const DEFAULT_MAX_LEN: usize = 128;

/// How a batch is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// To the longest sequence of the batch (the fastest).
    Longest,
    /// Always to the maximum length.
    Fixed,
}

/// A tokenized batch, row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedBatch {
    /// Number of sequences.
    pub batch: usize,
    /// Length of every (padded) sequence.
    pub seq_len: usize,
    /// Token ids.
    pub input_ids: Vec<i64>,
    /// Segment ids.
    pub token_type_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
}

impl TokenizedBatch {
    /// The number of real tokens of row `i`.
    pub fn len_of(&self, i: usize) -> usize {
        self.attention_mask[i * self.seq_len..(i + 1) * self.seq_len]
            .iter()
            .filter(|&&m| m != 0)
            .count()
    }

    /// The batch as integer tensors on `device`.
    pub fn to_input<B: Backend>(&self, device: &B::Device) -> BertInput<B> {
        let shape = [self.batch, self.seq_len];
        let t = |v: &Vec<i64>| {
            Tensor::<B, 2, Int>::from_data(TensorData::new(v.clone(), shape), device)
        };
        BertInput {
            input_ids: t(&self.input_ids),
            token_type_ids: t(&self.token_type_ids),
            attention_mask: t(&self.attention_mask),
        }
    }
}

/// The MiniLM (BERT uncased WordPiece) tokenizer, loaded from `tokenizer.json`.
///
/// The shipped file forces padding and truncation to 128; both are replaced
/// here: sequences are truncated to `max_len` tokens (`[CLS]` and `[SEP]`
/// included) and padded as chosen with [`with_padding`](Self::with_padding).
#[derive(Debug, Clone)]
pub struct MiniLmTokenizer {
    inner: Tokenizer,
    max_len: usize,
    padding: Padding,
}

impl MiniLmTokenizer {
    /// Load `tokenizer.json`, truncating to `max_len` tokens and padding to the
    /// longest sequence of each batch.
    ///
    /// # Errors
    ///
    /// [`DataError::DataMissing`](crate::datasets::DataError::DataMissing) if the file is absent,
    /// [`MiniLmError::InvalidArgument`] if `max_len < 3`, and
    /// [`MiniLmError::Tokenizer`] if the file does not parse.
    pub fn from_file(path: impl AsRef<Path>, max_len: usize) -> Result<Self, MiniLmError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(MiniLmError::missing(path));
        }
        let inner = Tokenizer::from_file(path)
            .map_err(|e| MiniLmError::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::from_tokenizer(inner, max_len)
    }

    /// Wrap an already loaded tokenizer (its own padding and truncation are replaced).
    ///
    /// # Errors
    ///
    /// [`MiniLmError::InvalidArgument`] if `max_len < 3` (room for `[CLS]`, one token, `[SEP]`).
    pub fn from_tokenizer(inner: Tokenizer, max_len: usize) -> Result<Self, MiniLmError> {
        if max_len < 3 {
            return Err(MiniLmError::InvalidArgument(format!(
                "max_len must be at least 3, got {max_len}"
            )));
        }
        let mut this = Self {
            inner,
            max_len,
            padding: Padding::Longest,
        };
        this.configure()?;
        Ok(this)
    }

    /// Change the padding strategy.
    ///
    /// # Errors
    ///
    /// [`MiniLmError::Tokenizer`] if the tokenizer rejects the settings.
    pub fn with_padding(mut self, padding: Padding) -> Result<Self, MiniLmError> {
        self.padding = padding;
        self.configure()?;
        Ok(self)
    }

    fn configure(&mut self) -> Result<(), MiniLmError> {
        let pad_id = self.inner.token_to_id("[PAD]").unwrap_or(0);
        self.inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: self.max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| MiniLmError::Tokenizer(e.to_string()))?;
        self.inner.with_padding(Some(PaddingParams {
            strategy: match self.padding {
                Padding::Longest => PaddingStrategy::BatchLongest,
                Padding::Fixed => PaddingStrategy::Fixed(self.max_len),
            },
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token: "[PAD]".into(),
        }));
        Ok(())
    }

    /// The maximum length in tokens.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Tokenize a batch of texts (special tokens added, truncated, padded).
    ///
    /// # Errors
    ///
    /// [`MiniLmError::InvalidArgument`] for an empty batch, and
    /// [`MiniLmError::Tokenizer`] if the tokenizer fails.
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<TokenizedBatch, MiniLmError> {
        if texts.is_empty() {
            return Err(MiniLmError::InvalidArgument(
                "cannot tokenize an empty batch".into(),
            ));
        }
        let inputs: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| MiniLmError::Tokenizer(e.to_string()))?;
        let seq_len = encodings.first().map_or(0, |e| e.len());
        let mut out = TokenizedBatch {
            batch: encodings.len(),
            seq_len,
            input_ids: Vec::with_capacity(encodings.len() * seq_len),
            token_type_ids: Vec::with_capacity(encodings.len() * seq_len),
            attention_mask: Vec::with_capacity(encodings.len() * seq_len),
        };
        for e in &encodings {
            if e.len() != seq_len {
                return Err(MiniLmError::Tokenizer(format!(
                    "padding produced rows of lengths {seq_len} and {}",
                    e.len()
                )));
            }
            out.input_ids.extend(e.get_ids().iter().map(|&v| v as i64));
            out.token_type_ids
                .extend(e.get_type_ids().iter().map(|&v| v as i64));
            out.attention_mask
                .extend(e.get_attention_mask().iter().map(|&v| v as i64));
        }
        Ok(out)
    }

    /// Turn ids back into text; with `skip_special_tokens`, `[CLS]`, `[SEP]`
    /// and `[PAD]` are left out.
    ///
    /// # Errors
    ///
    /// [`MiniLmError::InvalidArgument`] for a negative id, [`MiniLmError::Tokenizer`]
    /// if the tokenizer fails.
    pub fn decode(&self, ids: &[i64], skip_special_tokens: bool) -> Result<String, MiniLmError> {
        let ids: Vec<u32> = ids
            .iter()
            .map(|&i| {
                u32::try_from(i)
                    .map_err(|_| MiniLmError::InvalidArgument(format!("token id {i} is negative")))
            })
            .collect::<Result<_, _>>()?;
        self.inner
            .decode(&ids, skip_special_tokens)
            .map_err(|e| MiniLmError::Tokenizer(e.to_string()))
    }
}
