//! Write the built-in instruction tasks (BBC News topics and headlines,
//! Rotten Tomatoes, tweet sentiment, SpamAssassin, from the data
//! `scripts/fetch-data.sh` fetches) as JSONL files in the two shapes
//! `rlora-finetune` reads, as an example of "your own data" that runs
//! offline:
//!
//! ```text
//! <out>/chat/train.jsonl        {"messages": [{"role": "user", ...}, {"role": "assistant", ...}], "task": "..."}
//! <out>/chat/test.jsonl
//! <out>/completion/train.jsonl  {"prompt": "...", "completion": "...", "task": "..."}
//! <out>/completion/test.jsonl
//! ```
//!
//! Each file is written whole or not at all.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn_rlora_examples::harness::compare::parse_fraction;
use burn_rlora_examples::options::exit_on_error;
use burn_rlora_pretrained::datasets::default_data_dir;
use burn_rlora_pretrained::smollm::{instruction_tasks, InstructionExample, InstructionSplit};
use clap::Parser;
use serde_json::json;

/// Write the built-in tasks as JSONL fine-tuning data (conversational and
/// prompt/completion).
#[derive(Parser, Debug)]
#[command(name = "write-task-jsonl", version, about)]
struct Args {
    /// Where to write `chat/` and `completion/`.
    #[arg(long)]
    out: PathBuf,
    /// Data directory written by scripts/fetch-data.sh (default: $BURN_RLORA_DATA, else data/).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Tasks to write, comma-separated (default: all five: bbc_news,
    /// rotten_tomatoes, tweet_sentiment, spam_assassin, bbc_headline).
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// Training examples per task at most.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    train_per_task: u64,
    /// Test examples per task at most.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..))]
    test_per_task: u64,
    /// Share of each task held out for testing, before subsampling; in (0, 1).
    #[arg(long, default_value_t = 0.2, value_parser = parse_fraction)]
    test_fraction: f64,
    /// Seed of the splits and subsamples.
    #[arg(long, default_value_t = 2025)]
    split_seed: u64,
}

fn main() {
    exit_on_error(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let split = InstructionSplit {
        test_fraction: args.test_fraction,
        train_per_task: usize::try_from(args.train_per_task).unwrap_or(usize::MAX),
        test_per_task: usize::try_from(args.test_per_task).unwrap_or(usize::MAX),
        split_seed: args.split_seed,
    };
    let mut tasks = instruction_tasks(&data_dir, &split)?;
    if !args.tasks.is_empty() {
        let names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
        if let Some(unknown) = args.tasks.iter().find(|t| !names.contains(t)) {
            anyhow::bail!("unknown task {unknown:?} (the tasks: {})", names.join(", "));
        }
        tasks.retain(|t| args.tasks.contains(&t.name));
    }
    for (part, pick) in [("train", true), ("test", false)] {
        let mut chat = String::new();
        let mut completion = String::new();
        for task in &tasks {
            let examples: &[InstructionExample] = if pick { &task.train } else { &task.test };
            for e in examples {
                let messages = json!([
                    {"role": "user", "content": e.prompt},
                    {"role": "assistant", "content": e.answer},
                ]);
                chat.push_str(&json!({"messages": messages, "task": task.name}).to_string());
                chat.push('\n');
                let pair = json!({"prompt": e.prompt, "completion": e.answer, "task": task.name});
                completion.push_str(&pair.to_string());
                completion.push('\n');
            }
        }
        for (shape, text) in [("chat", &chat), ("completion", &completion)] {
            let path = args.out.join(shape).join(format!("{part}.jsonl"));
            std::fs::create_dir_all(path.parent().expect("a folder"))
                .with_context(|| format!("creating {}", args.out.display()))?;
            burn_rlora::write_atomically(&path, text.as_bytes())?;
            println!("wrote {}", path.display());
        }
    }
    for task in &tasks {
        println!(
            "{}: {} train, {} test",
            task.name,
            task.train.len(),
            task.test.len()
        );
    }
    Ok(())
}
