//! BBC News read file by file, and the topic and headline tasks made from
//! one article-level split of it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{
    bbc_topic_instruction, instruction_prompt, label_words, InstructionExample, InstructionSplit,
    InstructionTask, TaskError, TaskKind, BBC_HEADLINE, BBC_HEADLINE_INSTRUCTION,
};
use crate::datasets::{
    stratified_subsample, subsample, train_test_split, DataError, Task, TextExample, MAX_TEXT_CHARS,
};

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
pub(super) struct News {
    /// The class names: the sub-directories', sorted.
    labels: Vec<String>,
    /// The articles kept, in file order.
    articles: Vec<Article>,
    /// Articles dropped as repeats.
    duplicates: usize,
}

/// The sorted entries of `dir` that pass `keep`.
fn sorted_paths(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, TaskError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
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
pub(super) fn read_bbc_articles(dir: &Path) -> Result<News, TaskError> {
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
            let bytes = std::fs::read(&file).map_err(|e| DataError::io(&file, e))?;
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
        return Err(DataError::EmptyTask {
            task: Task::BbcNews.name().into(),
            path: dir.into(),
            skipped: 0,
        }
        .into());
    }
    Ok(news)
}

/// The BBC News topic and headline tasks, from one article-level split.
pub(super) fn bbc_tasks(
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
