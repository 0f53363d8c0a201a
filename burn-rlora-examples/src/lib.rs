//! Shared pieces of the example binaries, to read next to them:
//!
//! * [`backend`] and [`options`]: the backend chosen by name, and the
//!   command-line options the trainers share;
//! * [`synthetic`]: the embedded multi-task data and its small model (the
//!   main job);
//! * [`minilm`] and [`smollm`]: the real pretrained models (a MiniLM sentence
//!   encoder, the SmolLM2 decoder from its GGUF file), their tokenizers and
//!   task data;
//! * [`harness`]: how the trainers compare methods (splits, runs, paired
//!   statistics, reports), which no model needs.

#![warn(missing_docs)]

pub mod backend;
pub mod harness;
pub mod minilm;
pub mod options;
pub mod smollm;
pub mod synthetic;
