//! The integration tests of burn-rlora, in one test binary: each former
//! test file is a module here, so Burn is linked once, not once per file.
//! (The f64 gradient checks are the one other binary, `tests/gradients.rs`.)
//! Run one group with a filter, e.g. `cargo test -p burn-rlora --test it
//! backends::`. The checkpoint tests use the crate's `testing` hooks, which
//! the crate's dev-dependency on itself turns on; the `multitask` tests need
//! the features `train` and `renderers`, the `cli` tests (of the
//! `rlora-adapter` binary) the feature `cli`, which the dev-dependency turns on too.

mod adapt;
mod backends;
mod base_dtype;
mod checkpoint_atomic;
mod checkpoint_common;
mod checkpoint_errors;
mod checkpoint_hostile;
mod checkpoint_merge;
mod checkpoint_reference;
mod checkpoint_roundtrip;
#[cfg(feature = "cli")]
mod cli;
mod common;
mod layer;
#[cfg(all(feature = "train", feature = "renderers"))]
mod multitask;
mod peft_lora;
mod suite;
