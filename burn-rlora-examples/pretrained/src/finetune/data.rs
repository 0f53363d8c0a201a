//! The user's data files read into tasks.

use std::path::{Path, PathBuf};

use burn_rlora_llm::sft::{read_jsonl, SftDataError, SftExample};
use thiserror::Error;

/// The task of examples that name none (when tasks do not come from file
/// names).
pub const DEFAULT_TASK: &str = "default";

/// Which files hold the data, and how tasks are named.
#[derive(Debug, Clone)]
pub struct DataFiles {
    /// Training files (at least one).
    pub train: Vec<PathBuf>,
    /// Validation files (may be none: then 10% of each task's training
    /// examples validate).
    pub valid: Vec<PathBuf>,
    /// Test files (may be none: then nothing is scored).
    pub test: Vec<PathBuf>,
    /// An example without a `task` belongs to the task named after its
    /// file (its name without the extension) instead of [`DEFAULT_TASK`].
    pub task_from_file_name: bool,
    /// The longest line read.
    pub max_line_bytes: usize,
}

/// An example and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The example.
    pub example: SftExample,
    /// Its file.
    pub file: PathBuf,
    /// Its line, from 1.
    pub line: usize,
}

/// One task's examples.
#[derive(Debug, Clone, Default)]
pub struct TaskExamples {
    /// The task's name.
    pub name: String,
    /// Training examples.
    pub train: Vec<Located>,
    /// Validation examples.
    pub valid: Vec<Located>,
    /// Test examples.
    pub test: Vec<Located>,
}

/// What can go wrong reading the data files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FinetuneDataError {
    /// A file could not be read, or a line is not an example.
    #[error(transparent)]
    Read(#[from] SftDataError),
    /// A validation or test example of a task training never saw.
    #[error("{}:{line}: task {task:?} is not in the training data (its tasks: {})", file.display(), known.join(", "))]
    UnknownTask {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// The task.
        task: String,
        /// The training data's tasks.
        known: Vec<String>,
    },
    /// A test conversation whose last turn is not the assistant's, so that
    /// it has no reference answer.
    #[error("{}:{line}: a test conversation must end with the assistant's turn (its reference answer)", file.display())]
    NoReference {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
    },
    /// No training file.
    #[error("no training data: give at least one training file")]
    NoTrainingData,
}

/// The task of a record: its own, else its file's name or [`DEFAULT_TASK`].
fn task_of(task: Option<String>, file: &Path, from_file_name: bool) -> String {
    task.unwrap_or_else(|| match from_file_name {
        true => file.file_stem().map_or_else(
            || DEFAULT_TASK.to_string(),
            |s| s.to_string_lossy().into_owned(),
        ),
        false => DEFAULT_TASK.to_string(),
    })
}

/// The examples of `files`, by task, in the order tasks first appear in
/// the training files.
///
/// # Errors
///
/// [`FinetuneDataError`]: a file that cannot be read or holds a bad line
/// (naming the file and line), a validation or test example of a task the
/// training data lacks, a test conversation without a final answer.
pub fn read_tasks(files: &DataFiles) -> Result<Vec<TaskExamples>, FinetuneDataError> {
    if files.train.is_empty() {
        return Err(FinetuneDataError::NoTrainingData);
    }
    let mut tasks: Vec<TaskExamples> = Vec::new();
    for path in &files.train {
        for record in read_jsonl(path, files.max_line_bytes)? {
            let name = task_of(record.task, path, files.task_from_file_name);
            let index = match tasks.iter().position(|t| t.name == name) {
                Some(i) => i,
                None => {
                    tasks.push(TaskExamples {
                        name,
                        ..Default::default()
                    });
                    tasks.len() - 1
                }
            };
            tasks[index].train.push(Located {
                example: record.example,
                file: path.clone(),
                line: record.line,
            });
        }
    }
    let known: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    for (paths, test) in [(&files.valid, false), (&files.test, true)] {
        for path in paths {
            for record in read_jsonl(path, files.max_line_bytes)? {
                let name = task_of(record.task, path, files.task_from_file_name);
                let Some(task) = tasks.iter_mut().find(|t| t.name == name) else {
                    return Err(FinetuneDataError::UnknownTask {
                        file: path.clone(),
                        line: record.line,
                        task: name,
                        known: known.clone(),
                    });
                };
                if let SftExample::Conversation(turns) = &record.example {
                    if test && turns.last().is_some_and(|t| t.role != "assistant") {
                        return Err(FinetuneDataError::NoReference {
                            file: path.clone(),
                            line: record.line,
                        });
                    }
                }
                let located = Located {
                    example: record.example,
                    file: path.clone(),
                    line: record.line,
                };
                match test {
                    true => task.test.push(located),
                    false => task.valid.push(located),
                }
            }
        }
    }
    Ok(tasks)
}
