//! Shared pieces of the example binaries: backend selection by name, and the
//! MiniLM encoder, tokenizer and task data of the real example.

#![warn(missing_docs)]

pub mod backend;
pub mod minilm;
