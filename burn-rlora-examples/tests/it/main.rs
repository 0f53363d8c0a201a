//! The integration tests of the examples, in one test binary: each former
//! test file is a module here, so Burn is linked once, not once per file.
//! Run one group with a filter, e.g. `cargo test -p burn-rlora-examples
//! --test it multitask_cli::`; the `mpi` tests need the feature `mpi`.

mod common;
mod minilm_cli;
mod minilm_data;
mod minilm_encoder;
mod minilm_host_ops;
mod minilm_parity;
mod minilm_tokenizer;
mod minilm_train;
#[cfg(feature = "mpi")]
mod mpi;
mod multitask_cli;
mod smollm_chat;
mod smollm_model;
mod smollm_parity;
mod smollm_tasks;
mod smollm_tokenizer;
mod smollm_train;
