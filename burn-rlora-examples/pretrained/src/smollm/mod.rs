//! SmolLM2-135M-Instruct, a decoder LLM of the Llama architecture, read from
//! its GGUF file: the tokenizer, the decoder as Burn modules with adaptable
//! projections, and generation with a KV cache.

pub mod adapter;
pub mod batch;
pub mod cache;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod experiment;
pub mod generate;
pub mod gguf;
pub mod load;
pub mod model;
pub mod precision;
pub mod rope;
pub mod tasks;
pub mod text_metrics;
pub mod tokenizer;
pub mod train;

pub use adapter::{
    load_decoder_adapter, peft_naming, save_decoder_adapter, AdapterLoadError, PEFT_PREFIX,
};
pub use batch::{answer_loss, answer_nll, AnswerBatch, AnswerSequence};
pub use cache::KvCache;
pub use config::LlamaConfig;
pub use error::DecoderError;
pub use generate::{generate, Generated, GenerationConfig, Sampling, StopReason};
pub use gguf::{llama_config, smollm2_path, tokenizer_spec, SmolLm, SMOLLM2_FILE};
pub use load::{load_llama, HostTensor, WeightSource};
pub use model::{
    LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMlp, LlamaModel, RopeSettings,
};
pub use precision::BasePrecision;
pub use tasks::{
    encode_example, encode_prompt, instruction_tasks, EncodedExample, InstructionEncoder,
    InstructionExample, InstructionSplit, InstructionTask, TaskError, TaskKind,
};
pub use text_metrics::{chrf, exact_match, rouge_l, RougeScore};
pub use tokenizer::{
    ChatFormat, ChatTurn, SmolTokenizer, StreamDecoder, TokenizerError, TokenizerSpec,
};
pub use train::{AnswerCollate, MultiTaskLm};
