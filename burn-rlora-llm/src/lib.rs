//! Decoder LLMs read from GGUF files, as Burn modules whose projections can
//! carry R-LoRA, LoRA or HydraLoRA adapters (`burn-rlora`).
//!
//! One call reads a GGUF file into the model, its tokenizer and its
//! configuration ([`Llm::load`]); the model's module paths are those of
//! Hugging Face transformers (`model.layers.3.self_attn.q_proj`), so PEFT's
//! target names adapt the same projections and adapter files carry PEFT's
//! tensor names:
//!
//! ```no_run
//! use std::ops::ControlFlow;
//!
//! use burn::backend::Flex;
//! use burn_rlora::{AdaptConfig, RLoraConfig, TargetModules};
//! use burn_rlora_llm::{generate, stop_tokens, ChatTurn, GenerationConfig, Llm};
//!
//! let device = Default::default();
//! let lm = Llm::<Flex>::load("model.gguf", &device)?;
//! let targets = TargetModules::names(["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]);
//! let model = AdaptConfig::new(RLoraConfig::r_lora(4, 32.0, 3), targets).adapt(lm.model)?;
//! let prompt = lm.tokenizer.chat_prompt(&[ChatTurn::user("Name three colours.")], true)?;
//! let ids = lm.tokenizer.encode(&prompt)?;
//! let config = GenerationConfig::greedy(32, stop_tokens(&lm.tokenizer));
//! let out = generate(&model, &ids, &config, |_| ControlFlow::Continue(()))?;
//! println!("{}", lm.tokenizer.decode(&out.tokens, true)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is where
//!
//! * [`config`]: the decoder's shape ([`DecoderConfig`], field names as in
//!   transformers' configs), read from the GGUF metadata and checked against
//!   the tensors the file holds before anything is allocated;
//! * [`model`]: the decoder as Burn modules ([`CausalLm`]), with a forward
//!   pass for training and one that fills a [`KvCache`];
//! * [`load`]: the weights, dequantized from their GGUF blocks to `f32` and
//!   put under transformers' names;
//! * [`llm`]: the entry point, a file read into all three;
//! * [`rope`], [`cache`]: rotary position embeddings and the KV cache;
//! * [`generate`](mod@generate): greedy and sampled generation;
//! * [`tokenizer`]: the vocabulary the file describes, built with the
//!   `tokenizers` crate; [`chat`]: conversations and chat templates;
//! * [`adapter`]: adapter files under PEFT's names; [`batch`]: training
//!   batches whose loss counts the answer tokens only;
//! * [`export`]: adapters written as llama.cpp LoRA adapters (GGUF), for
//!   `llama-server --lora` and ollama (the `rlora-llm export-gguf` command,
//!   feature `cli`); [`sft`]: fine-tuning
//!   data in the JSONL shapes of the Python tools, encoded with the answers
//!   marked;
//! * [`precision`], [`host_ops`]: a half-precision base for GPUs, and host
//!   kernels for the CPU backends' slow elementwise work.
//!
//! Every error while loading names the file and the metadata key or tensor
//! at fault ([`DecoderError`]).
//!
//! # How it is laid out, and why
//!
//! Three Rust projects run these models. candle-transformers writes one
//! file per architecture and a second, quantized copy of each for GGUF files
//! (`quantized_llama.rs`, ...), and leaves the tokenizer to the caller;
//! mistral.rs has the same split per architecture, plus a GGUF loader that
//! turns the file's vocabulary into a `tokenizers` tokenizer and renders
//! chat templates with `minijinja`; Burn's own llama-burn has one Burn model
//! with a config that `init`s it, a cache and a sampler in modules of their
//! own, a tokenizer per kind of vocabulary, and chat formats written in code.
//!
//! From llama-burn this crate takes Burn's conventions (config, then
//! `init(&device)`, then `forward`) and the split into cache, sampling and
//! tokenizer modules; from mistral.rs the vocabulary built as a `tokenizers`
//! tokenizer from the GGUF metadata and the chat templates run by a Jinja
//! engine; from candle the mapping of GGUF tensor names onto the modules at
//! load time. It differs in three ways. One set of modules serves the whole
//! Llama family, the differences between architectures being switches of the
//! configuration, because adapters, training and generation must behave the
//! same on every model and PEFT's names are the same across them. The base
//! is dequantized once, at load: training needs a float base, and adapters
//! are trained on it. And the module paths are transformers', not
//! llama.cpp's, so that adapters move to and from PEFT unchanged.

#![warn(missing_docs)]

pub mod adapter;
pub mod batch;
pub mod cache;
pub mod chat;
pub mod config;
pub mod error;
pub mod export;
pub mod generate;
pub mod host_ops;
pub mod llm;
pub mod load;
pub mod model;
pub mod precision;
pub mod rope;
pub mod sft;
pub mod tokenizer;

pub use adapter::{
    load_decoder_adapter, peft_naming, save_decoder_adapter, AdapterLoadError, PEFT_PREFIX,
};
pub use batch::{answer_loss, answer_nll, AnswerBatch, AnswerSequence};
pub use cache::KvCache;
pub use chat::{ChatTemplate, ChatTemplateError, ChatTurn};
pub use config::{Architecture, DecoderConfig, HiddenAct};
pub use error::DecoderError;
pub use export::{export_lora_gguf, lora_gguf, ExportError, ExportReport, GgufExportOptions};
pub use generate::{generate, stop_tokens, Generated, GenerationConfig, Sampling, StopReason};
pub use llm::{ChatTemplateChoice, Llm, LoadOptions};
pub use load::{load_decoder, HostTensor, WeightSource};
pub use model::{
    Attention, CausalLm, DecoderLayer, DecoderModel, Mlp, ModelSettings, RopeSettings,
};
pub use precision::BasePrecision;
pub use tokenizer::{StreamDecoder, Tokenizer, TokenizerConfig, TokenizerError, TokenizerSpec};

/// The crate README's code, compiled as a doctest so that it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
