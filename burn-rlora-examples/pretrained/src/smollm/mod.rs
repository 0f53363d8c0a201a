//! The instruction-tuning experiment on a decoder LLM (SmolLM2-135M-Instruct
//! by default): the five instruction tasks built from the fetched data, the
//! multi-task model that trains on their answers, evaluation by generation
//! and label likelihood, and the comparison of methods.
//!
//! The decoder itself, its tokenizer, chat template and generation are the
//! library crate [`burn_rlora_llm`]; this module holds only the experiment.

use std::path::{Path, PathBuf};

pub mod evaluate;
pub mod experiment;
pub mod tasks;
pub mod template;
pub mod text_metrics;
pub mod train;

pub use tasks::{
    encode_example, encode_prompt, instruction_tasks, EncodedExample, InstructionEncoder,
    InstructionExample, InstructionSplit, InstructionTask, TaskError, TaskKind,
};
pub use template::{choose_template, TemplateSource, GEMMA_TURNS};
pub use text_metrics::{chrf, exact_match, rouge_l, RougeScore};
pub use train::{AnswerCollate, MultiTaskLm};

/// Where `scripts/fetch-data.sh` puts SmolLM2-135M-Instruct, under the data directory.
pub const SMOLLM2_FILE: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The SmolLM2 file under `data_dir` (see [`default_data_dir`](crate::datasets::default_data_dir)).
pub fn smollm2_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SMOLLM2_FILE)
}
