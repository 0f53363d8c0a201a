//! Shared pieces of the example binaries: backend selection by name, the
//! embedded multi-task benchmark and comparison runner, and the MiniLM
//! encoder, tokenizer and task data of the real example, and head
//! similarity traced over training (`trace`).

#![warn(missing_docs)]

pub mod backend;
pub mod compare;
pub mod minilm;
pub mod options;
pub mod report;
pub mod smollm;
pub mod stats;
pub mod synthetic;
pub mod trace;
