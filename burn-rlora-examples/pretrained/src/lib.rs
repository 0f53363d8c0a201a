//! The example trainers on real pretrained models, to read next to their
//! binaries (`minilm-multitask`, `smollm-chat`, `smollm-multitask`):
//!
//! * [`minilm`]: a MiniLM sentence encoder loaded from its safetensors file,
//!   its WordPiece tokenizer, and the multi-task text data (BBC News, Rotten
//!   Tomatoes, tweet sentiment, SpamAssassin);
//! * [`smollm`]: the SmolLM2 decoder (Llama architecture) from its GGUF file,
//!   its tokenizer and chat template, generation with a KV cache, and the
//!   instruction-tuning experiment;
//! * [`host_ops`]: host kernels for the elementwise work the CPU backends
//!   run slowly (GELU, SiLU, dropout masks), which both models can opt into.
//!
//! They build on the `burn-rlora-examples` package (backends by name, shared
//! options, the comparison harness); this package is apart from it so that
//! the built-in job (`multitask`) builds without a tokenizer.

#![warn(missing_docs)]

pub mod host_ops;
pub mod minilm;
pub mod smollm;
