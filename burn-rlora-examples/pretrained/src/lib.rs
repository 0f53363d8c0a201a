//! The example trainers on real pretrained models, to read next to their
//! binaries (`minilm-multitask`, `smollm-chat`, `smollm-multitask`):
//!
//! * [`datasets`]: the four text tasks fetched by `scripts/fetch-data.sh`
//!   (BBC News, Rotten Tomatoes, tweet sentiment, SpamAssassin), their
//!   splits and subsamples;
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
pub mod minilm;
pub mod smollm;
