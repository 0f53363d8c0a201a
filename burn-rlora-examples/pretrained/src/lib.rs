//! The example trainers on real pretrained models, to read next to their
//! binaries (`minilm-multitask`, `smollm-chat`, `smollm-multitask`,
//! `rlora-finetune`):
//!
//! * [`datasets`]: the four text tasks fetched by `scripts/fetch-data.sh`
//!   (BBC News, Rotten Tomatoes, tweet sentiment, SpamAssassin), their
//!   splits and subsamples;
//! * [`finetune`]: fine-tuning a decoder LLM on the user's own multi-task
//!   JSONL data (`rlora-finetune`);
//! * [`minilm`]: a MiniLM sentence encoder loaded from its safetensors file,
//!   its WordPiece tokenizer, and its classification experiment;
//! * [`smollm`]: the instruction-tuning experiment on a decoder LLM
//!   (SmolLM2 by default), whose decoder, tokenizer, chat template and
//!   generation come from the library crate `burn-rlora-llm`.
//!
//! They build on the `burn-rlora-examples` package (backends by name, shared
//! options, the comparison harness); this package is apart from it so that
//! the built-in job (`multitask`) builds without a tokenizer.

#![warn(missing_docs)]

pub mod datasets;
pub mod finetune;
pub mod minilm;
pub mod smollm;

/// The repository README's Rust code, compiled as doctests by `cargo test`
/// (this package depends on every crate the blocks use; blocks that need
/// fetched data are `no_run`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct RepositoryReadmeDoctests;
