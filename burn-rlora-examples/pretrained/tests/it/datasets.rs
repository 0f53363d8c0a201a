//! The task readers on tiny fixtures in each dataset's real format
//! (`tests/fixtures/tasks/`, laid out as `scripts/fetch-data.sh` lays out `data/tasks/`),
//! their error cases, and the seeded train/test split.

use std::path::{Path, PathBuf};

use crate::common;

use burn_rlora_pretrained::datasets::{
    email_body, read_rotten_tomatoes, read_tweet_sentiment, subsample, train_test_split, DataError,
    Task, TaskData, TextExample, MAX_TEXT_CHARS,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-rlora-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn texts_with_label(data: &TaskData, label: &str) -> Vec<String> {
    let idx = data.labels.iter().position(|l| l == label).expect("label");
    data.examples
        .iter()
        .filter(|e| e.label == idx)
        .map(|e| e.text.clone())
        .collect()
}

#[test]
fn bbc_news_reads_folders_as_labels_lossily() {
    let data = Task::BbcNews.load(fixtures()).expect("reads");
    assert_eq!(data.name, "bbc_news");
    assert_eq!(
        data.labels,
        ["business", "entertainment", "politics", "sports", "tech"]
    );
    assert_eq!(data.class_counts(), [2, 1, 1, 1, 1]);
    // The whitespace-only document is skipped and counted.
    assert_eq!(data.skipped.len(), 1);
    assert!(data.skipped[0].location.ends_with("002.txt"));
    // Titles and bodies are kept; an invalid UTF-8 byte becomes U+FFFD.
    let tech = texts_with_label(&data, "tech");
    assert!(tech[0].starts_with("Mobiles rack up 20 years of use\n\nHandsets cost \u{FFFD}100"));
    let business = texts_with_label(&data, "business");
    assert!(business[0].contains("(\u{a3}600m)"));
}

#[test]
fn rotten_tomatoes_keeps_fresh_and_rotten_and_counts_corrupt_rows() {
    let data = Task::RottenTomatoes.load(fixtures()).expect("reads");
    assert_eq!(data.labels, ["rotten", "fresh"]);
    let got: Vec<(&str, usize)> = data
        .examples
        .iter()
        .map(|e| (e.text.as_str(), e.label))
        .collect();
    assert_eq!(
        got,
        [
            ("a charming , funny and touching film .", 1),
            ("the plot is as predictable as it is \"clever\" .", 0),
            ("a review snippet that spans\ntwo lines .", 1),
            ("ends well enough , but too late .", 0),
        ]
    );
    // Plot rows are left out silently; three corrupt rows are skipped with their line.
    let skipped: Vec<(&str, &str)> = data
        .skipped
        .iter()
        .map(|s| (s.location.rsplit(':').next().unwrap(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(skipped[0], ("7", "expected 4 fields, found 3"));
    assert_eq!(skipped[1].0, "8");
    assert!(skipped[1].1.contains("unknown category \"tomato\""));
    assert_eq!(skipped[2], ("9", "empty text"));
}

#[test]
fn tweet_sentiment_reads_three_classes_lossily() {
    let data = Task::TweetSentiment.load(fixtures()).expect("reads");
    assert_eq!(data.labels, ["negative", "neutral", "positive"]);
    assert_eq!(data.class_counts(), [1, 1, 1]);
    assert_eq!(
        data.examples[0].text,
        "I just don't trust my life in google's hands #driverless cars_\u{FFFD}_.no thank you"
    );
    assert_eq!(
        data.examples[1].text,
        "Self-driving cars: a new report, out today"
    );
    assert_eq!(data.skipped.len(), 1);
    assert!(data.skipped[0].location.ends_with(":4"));
    assert_eq!(data.skipped[0].reason, "expected 3 fields, found 5");
}

#[test]
fn spam_assassin_drops_headers_and_skips_broken_files() {
    let data = Task::SpamAssassin.load(fixtures()).expect("reads");
    assert_eq!(data.labels, ["ham", "spam"]);
    assert_eq!(data.class_counts(), [1, 1]);
    let ham = &texts_with_label(&data, "ham")[0];
    assert!(ham.starts_with("Date:        Wed, 21 Aug 2002"), "{ham}");
    assert!(!ham.contains("Return-Path") && !ham.contains("Subject"));
    let spam = &texts_with_label(&data, "spam")[0];
    assert!(spam.starts_with("<html><body>Save up to 70%"), "{spam}");
    // One email without a body, one truncated JSON file.
    let mut reasons: Vec<&str> = data.skipped.iter().map(|s| s.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0], "empty body");
    assert!(reasons[1].starts_with("invalid JSON"));
}

#[test]
fn email_body_splits_at_the_first_blank_line() {
    assert_eq!(
        email_body("A: 1\nB: 2\n\nbody\n\nmore"),
        Some("body\n\nmore")
    );
    assert_eq!(email_body("A: 1\r\n\r\nbody"), Some("body"));
    assert_eq!(email_body("A: 1\nB: 2\n"), None);
}

#[test]
fn long_texts_are_cut() {
    let dir = temp_dir("long");
    let path = dir.join("tweets.csv");
    let long = "word ".repeat(MAX_TEXT_CHARS);
    std::fs::write(
        &path,
        format!("sentiment,confidence,text\npositive,1,{long}\n"),
    )
    .unwrap();
    let data = read_tweet_sentiment(&path).expect("reads");
    assert_eq!(data.examples[0].text.chars().count(), MAX_TEXT_CHARS);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_data_says_to_run_the_fetch_script() {
    let nowhere = std::env::temp_dir().join("burn-rlora-no-such-dir");
    for task in Task::ALL {
        let err = task.load(&nowhere).expect_err("no data");
        assert!(
            matches!(err, DataError::DataMissing { .. }),
            "{task}: {err:?}"
        );
        assert!(
            err.to_string().contains("scripts/fetch-data.sh"),
            "{task}: {err}"
        );
    }
}

#[test]
fn an_empty_task_is_an_error() {
    let dir = temp_dir("empty");
    let csv = dir.join("rt.csv");
    std::fs::write(
        &csv,
        "category,text,movie_name,has_plot_and_reviews\nplot,\"only a plot\",m,False\n",
    )
    .unwrap();
    let err = read_rotten_tomatoes(&csv).expect_err("no review");
    assert!(
        matches!(err, DataError::EmptyTask { ref task, skipped: 0, .. } if task == "rotten_tomatoes"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no usable example"), "{err}");

    let news = dir.join("news");
    std::fs::create_dir_all(news.join("business")).unwrap();
    std::fs::write(news.join("business/001.txt"), "   \n").unwrap();
    let err = Task::BbcNews
        .read(&news)
        .expect_err("only an empty document");
    assert!(
        matches!(err, DataError::EmptyTask { skipped: 1, .. }),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_csv_without_the_expected_columns_is_an_error() {
    let dir = temp_dir("columns");
    let csv = dir.join("tweets.csv");
    std::fs::write(&csv, "label,confidence,tweet\npositive,1,hello\n").unwrap();
    let err = read_tweet_sentiment(&csv).expect_err("wrong header");
    assert!(matches!(err, DataError::BadFormat { .. }), "{err:?}");
    assert!(err.to_string().contains("no column \"sentiment\""), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

fn toy(n_per_class: &[usize]) -> Vec<TextExample> {
    n_per_class
        .iter()
        .enumerate()
        .flat_map(|(label, &n)| {
            (0..n).map(move |i| TextExample {
                text: format!("{label}-{i}"),
                label,
            })
        })
        .collect()
}

#[test]
fn split_is_stratified_disjoint_and_seeded() {
    let all = toy(&[50, 30, 20]);
    let (train, test) = train_test_split(&all, 0.2, 7).expect("splits");
    assert_eq!(test.len(), 20);
    assert_eq!(train.len(), 80);
    for (label, n) in [(0, 10), (1, 6), (2, 4)] {
        assert_eq!(test.iter().filter(|e| e.label == label).count(), n);
    }
    let mut together: Vec<String> = train.iter().chain(&test).map(|e| e.text.clone()).collect();
    together.sort();
    let mut expected: Vec<String> = all.iter().map(|e| e.text.clone()).collect();
    expected.sort();
    assert_eq!(together, expected, "train and test partition the input");

    let again = train_test_split(&all, 0.2, 7).unwrap();
    assert_eq!(
        (train.clone(), test.clone()),
        again,
        "same seed, same split"
    );
    let other = train_test_split(&all, 0.2, 8).unwrap();
    assert_ne!(test, other.1, "another seed, another split");

    for bad in [0.0, 1.0, -0.5, f64::NAN] {
        assert!(matches!(
            train_test_split(&all, bad, 7),
            Err(DataError::InvalidArgument(_))
        ));
    }
}

#[test]
fn subsample_is_seeded_and_bounded() {
    let all = toy(&[40]);
    let a = subsample(&all, 10, 3);
    assert_eq!(a.len(), 10);
    assert_eq!(a, subsample(&all, 10, 3));
    assert_ne!(a, subsample(&all, 10, 4));
    let mut texts: Vec<&str> = a.iter().map(|e| e.text.as_str()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 10, "drawn without replacement");
    assert_eq!(subsample(&all, 100, 3).len(), 40);
}

#[test]
fn task_names_round_trip() {
    for task in Task::ALL {
        assert_eq!(task.name().parse::<Task>().unwrap(), task);
    }
    assert!("imdb".parse::<Task>().is_err());
}

/// The real data, when fetched: every task reads, with the expected sizes.
#[test]
fn real_tasks_read_when_fetched() {
    let Some(dir) = common::fetched_data_or_skip("real task readers") else {
        return;
    };
    let expect = [
        (Task::BbcNews, 2225, 5),
        (Task::RottenTomatoes, 12808, 2),
        (Task::TweetSentiment, 38158, 3),
        (Task::SpamAssassin, 6046, 2),
    ];
    for (task, n, classes) in expect {
        let data = task.load(&dir).expect("reads");
        let total = data.examples.len() + data.skipped.len();
        assert_eq!(
            total,
            n,
            "{task}: {} read + {} skipped",
            data.examples.len(),
            data.skipped.len()
        );
        assert!(
            data.skipped.len() * 100 < n,
            "{task}: too many skipped: {:?}",
            &data.skipped[..3.min(data.skipped.len())]
        );
        assert_eq!(data.labels.len(), classes);
        assert!(
            data.class_counts().iter().all(|&c| c > 0),
            "{task}: {:?}",
            data.class_counts()
        );
        println!(
            "{task}: {} examples, {:?}, {} skipped",
            data.examples.len(),
            data.class_counts(),
            data.skipped.len()
        );
    }
}

#[test]
fn an_unterminated_quote_costs_one_row_and_reading_goes_on() {
    let dir = temp_dir("quote");
    let path = dir.join("tweets.csv");
    std::fs::write(
        &path,
        "sentiment,confidence,text\n\
         negative,0.5,\"fine text\"\n\
         positive,0.9,\"this quote never closes\n\
         neutral,0.6,\"next row is fine\"\n\
         positive,0.8,plain row\n\
         negative,0.7,\"a quoted field\n\
         over two lines\"\n\
         neutral,0.4,\"and an open quote at the end\n",
    )
    .unwrap();
    let data = Task::TweetSentiment.read(&path).expect("reads");
    let texts: Vec<&str> = data.examples.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "fine text",
            "next row is fine",
            "plain row",
            "a quoted field\nover two lines"
        ]
    );
    let skipped: Vec<(String, &str)> = data
        .skipped
        .iter()
        .map(|s| (s.location.clone(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, format!("{}:3", path.display()));
    assert!(
        skipped[0].1.starts_with("unterminated quote"),
        "{skipped:?}"
    );
    assert_eq!(skipped[1].0, format!("{}:8", path.display()));
    std::fs::remove_dir_all(&dir).ok();
}
