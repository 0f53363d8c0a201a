//! The integration tests of the pretrained-model examples, in one test
//! binary: each group is a module here, so Burn is linked once. Run one
//! group with a filter, e.g. `cargo test -p burn-rlora-pretrained --test it
//! smollm_chat::`. The tests that need the fetched model and data skip with
//! a message until `bash scripts/fetch-data.sh` has run (they fail instead
//! with `BURN_RLORA_REQUIRE_DATA=1`).

mod common;
mod datasets;
mod finetune_cli;
mod minilm_cli;

mod minilm_encoder;
mod minilm_host_ops;
mod minilm_parity;
mod minilm_tokenizer;
mod minilm_train;
mod smollm_chat;
mod smollm_tasks;
mod smollm_train;
