//! Fine-tuning a decoder LLM on the user's own multi-task data
//! (`rlora-finetune`): the JSONL files read into tasks ([`data`]), encoded
//! with the model's chat template and scored per task ([`prepare`](mod@prepare)), then
//! trained and evaluated by the same harness as the instruction-tuning
//! experiment ([`crate::smollm::experiment::run_smollm`]).
//!
//! The file formats and their encoding are `burn_rlora_llm::sft`'s.

pub mod data;
pub mod prepare;

pub use data::{read_tasks, DataFiles, FinetuneDataError, Located, TaskExamples, DEFAULT_TASK};
pub use prepare::{detect_labels, prepare, PrepareError, PrepareOptions, TaskReport};
