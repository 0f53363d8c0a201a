//! The integration tests of the decoder library, in one test binary (Burn
//! is linked once). Run one group with a filter, e.g. `cargo test -p
//! burn-rlora-llm --test it tokenizer::`. The tests that need a fetched
//! model file skip with a message until `bash scripts/fetch-data.sh` has run
//! (they fail instead with `BURN_RLORA_REQUIRE_DATA=1`).

mod adapt_architectures;
mod architectures;
mod chat_templates;
mod common;
mod export;
mod host_ops;
mod hostile_metadata;
mod model;
mod peft_decoders;
mod readme;
mod readme_blocks;
mod smollm_parity;
mod tokenizer;
mod tokenizer_json;
mod tokenizer_references;
