//! Metrics that compare a generated text with a reference: exact match of a
//! label word, ROUGE-L over words and chrF over characters. Every score is on
//! the scale `0..=1` (1 for a perfect match), chrF included (sacrebleu
//! reports it times 100).
//!
//! - [`exact_match`]: the two texts are equal after [`normalize_answer`]
//!   (trim, lower-case, trailing punctuation removed, inner whitespace runs
//!   made one space).
//! - [`rouge_l`]: with `c` and `r` the word tokens of candidate and reference
//!   ([`word_tokens`]: lower-cased, split on every character that is not
//!   alphanumeric) and `L` the length of their longest common subsequence,
//!   `P = L / |c|`, `R = L / |r|`, `F1 = 2PR / (P + R)`; all three are 0 when
//!   either side has no token (as Google's `rouge-score`).
//! - [`chrf`]: sacrebleu's default chrF (`CHRF()`: character n-grams of orders
//!   1 to 6, no word n-grams, β = 2, whitespace removed, case kept, no epsilon
//!   smoothing), for one sentence and one reference. For each order `n` whose
//!   n-grams exist on both sides, `P_n` = matched n-grams / candidate n-grams
//!   and `R_n` = matched / reference n-grams, a match counting each n-gram at
//!   most as often as the other side has it (clipped counts). With `P` and `R`
//!   the means of `P_n` and `R_n` over those orders,
//!   `chrF = (1 + β²) P R / (β² P + R)`; it is 0 when no order has n-grams on
//!   both sides, or `P + R = 0`.

use std::collections::HashMap;

use serde::Serialize;

/// The highest character n-gram order of [`chrf`] (sacrebleu's `char_order`).
pub const CHRF_CHAR_ORDER: usize = 6;

/// The β of [`chrf`]: recall weighs β² = 4 times as much as precision.
pub const CHRF_BETA: f64 = 2.0;

/// The text [`exact_match`] compares: `text` trimmed, lower-cased (Unicode
/// lower case), its trailing characters that are neither alphanumeric nor
/// whitespace removed (`"Positive."` becomes `"positive"`, `"spam!\n"`
/// `"spam"`), and every inner run of whitespace replaced by one space.
/// Leading punctuation is kept.
pub fn normalize_answer(text: &str) -> String {
    let lower = text.trim().to_lowercase();
    let stripped = lower
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .trim_end();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `candidate` and `reference` are the same answer: equal after
/// [`normalize_answer`]. Made for label words (`"Business."` matches
/// `"business"`); two texts that are both empty or punctuation only match.
pub fn exact_match(candidate: &str, reference: &str) -> bool {
    normalize_answer(candidate) == normalize_answer(reference)
}

/// The index of the label that `candidate` names, by [`exact_match`], or
/// `None` if it names none (the first such label if several normalize alike).
pub fn label_index<S: AsRef<str>>(candidate: &str, labels: &[S]) -> Option<usize> {
    let answer = normalize_answer(candidate);
    labels
        .iter()
        .position(|label| normalize_answer(label.as_ref()) == answer)
}

/// A ROUGE score: precision, recall and their harmonic mean, each in `0..=1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RougeScore {
    /// The share of the candidate's tokens in the common subsequence.
    pub precision: f64,
    /// The share of the reference's tokens in the common subsequence.
    pub recall: f64,
    /// `2PR / (P + R)`, 0 when both are 0.
    pub f1: f64,
}

/// The word tokens ROUGE-L compares: `text` lower-cased and split on every
/// character that is not alphanumeric (Unicode letters and digits), empty
/// pieces dropped. `"Don't stop!"` gives `["don", "t", "stop"]`. For ASCII
/// text this is `rouge-score`'s tokenizer without stemming.
pub fn word_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The length of the longest common subsequence of `a` and `b`, by dynamic
/// programming in `O(|a| |b|)` time and `O(|b|)` memory.
pub fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// ROUGE-L of `candidate` against `reference` over [`word_tokens`], by the
/// longest common subsequence (see the module's documentation). All zero
/// when either has no token, two empty texts included.
pub fn rouge_l(candidate: &str, reference: &str) -> RougeScore {
    let (c, r) = (word_tokens(candidate), word_tokens(reference));
    if c.is_empty() || r.is_empty() {
        return RougeScore {
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
        };
    }
    let lcs = lcs_len(&c, &r) as f64;
    let (precision, recall) = (lcs / c.len() as f64, lcs / r.len() as f64);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    RougeScore {
        precision,
        recall,
        f1,
    }
}

/// Whitespace as Python's `str.split()` sees it, which sacrebleu's chrF
/// removes: Unicode `White_Space` and the separators U+001C..U+001F.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The character n-grams of `chars` of order `n`, counted.
fn char_ngrams(chars: &[char], n: usize) -> HashMap<&[char], usize> {
    let mut counts = HashMap::new();
    for gram in chars.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

/// chrF of `candidate` against `reference`, on the scale `0..=1`: sacrebleu's
/// `CHRF().sentence_score(candidate, [reference]).score / 100` (see the
/// module's documentation for the formula). Characters are Unicode scalar
/// values, as Python's; identical non-empty texts score 1, and a side
/// with no character (once whitespace is removed) scores 0.
pub fn chrf(candidate: &str, reference: &str) -> f64 {
    let keep =
        |text: &str| -> Vec<char> { text.chars().filter(|&c| !is_python_whitespace(c)).collect() };
    let (hyp, reference) = (keep(candidate), keep(reference));
    let (mut precision, mut recall, mut orders) = (0.0, 0.0, 0usize);
    for n in 1..=CHRF_CHAR_ORDER {
        let (h, r) = (char_ngrams(&hyp, n), char_ngrams(&reference, n));
        let n_hyp: usize = h.values().sum();
        let n_ref: usize = r.values().sum();
        if n_hyp == 0 || n_ref == 0 {
            continue;
        }
        let matched: usize = h
            .iter()
            .map(|(gram, &count)| count.min(r.get(gram).copied().unwrap_or(0)))
            .sum();
        precision += matched as f64 / n_hyp as f64;
        recall += matched as f64 / n_ref as f64;
        orders += 1;
    }
    if orders == 0 {
        return 0.0;
    }
    let (precision, recall) = (precision / orders as f64, recall / orders as f64);
    let factor = CHRF_BETA * CHRF_BETA;
    if precision + recall > 0.0 {
        (1.0 + factor) * precision * recall / (factor * precision + recall)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn exact_match_normalizes_case_space_and_trailing_punctuation() {
        assert!(exact_match("  Business.\n", "business"));
        assert!(exact_match("SPAM!", "spam"));
        assert!(exact_match("positive", "positive"));
        assert!(exact_match("Not  spam", "not spam"));
        assert!(exact_match("", "  "));
        assert!(exact_match("...", ""));
        assert!(!exact_match("positive", "negative"));
        assert!(!exact_match("\"ham", "ham"));
        assert!(!exact_match("ham spam", "ham"));
        assert_eq!(normalize_answer(" Tech. \n"), "tech");
        assert_eq!(normalize_answer("Ünïcode!?"), "ünïcode");
        let labels = ["business", "entertainment", "politics", "sports", "tech"];
        assert_eq!(label_index("Sports.", &labels), Some(3));
        assert_eq!(label_index("sport", &labels), None);
    }

    #[test]
    fn words_split_on_non_alphanumerics() {
        assert_eq!(word_tokens("Don't stop!"), ["don", "t", "stop"]);
        assert_eq!(word_tokens("  "), Vec::<String>::new());
        assert_eq!(word_tokens("£5bn deal, 2004"), ["5bn", "deal", "2004"]);
        assert_eq!(lcs_len(&[1, 2, 3, 4], &[2, 4, 3]), 2);
        assert_eq!(lcs_len::<u8>(&[], &[1]), 0);
    }

    #[test]
    fn rouge_l_by_hand() {
        // LCS "the cat on the mat": 5 of 6 words on each side.
        let s = rouge_l("the cat sat on the mat", "the cat is on the mat");
        assert!(close(s.precision, 5.0 / 6.0) && close(s.recall, 5.0 / 6.0));
        assert!(close(s.f1, 5.0 / 6.0));
        // [mat, cat, mat] against [the, cat, sat, on, the, mat]: LCS "cat mat".
        let s = rouge_l("Mat, cat... mat!", "The cat sat on the mat");
        assert!(close(s.precision, 2.0 / 3.0) && close(s.recall, 2.0 / 6.0));
        assert!(close(
            s.f1,
            2.0 * (2.0 / 3.0) * (1.0 / 3.0) / (2.0 / 3.0 + 1.0 / 3.0)
        ));
        let s = rouge_l("A B C", "c b a");
        assert!(close(s.precision, 1.0 / 3.0) && close(s.f1, 1.0 / 3.0));
        let same = rouge_l(
            "Ad sales boost Time Warner profit",
            "ad sales boost time warner profit",
        );
        assert_eq!((same.precision, same.recall, same.f1), (1.0, 1.0, 1.0));
        let zero = RougeScore {
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
        };
        assert_eq!(rouge_l("", "the cat"), zero);
        assert_eq!(rouge_l("the cat", "!!"), zero);
        assert_eq!(rouge_l("", ""), zero);
        assert_eq!(rouge_l("dog", "cat"), zero);
    }

    /// Values from sacrebleu 2.6.0, each computed as
    /// `python3 -c "from sacrebleu.metrics import CHRF; print(CHRF().sentence_score(HYP, [REF]).score / 100)"`
    /// (in a venv: `python3 -m venv /tmp/sbenv && /tmp/sbenv/bin/pip install sacrebleu`).
    #[test]
    fn chrf_matches_sacrebleu() {
        let cases = [
            (
                "the cat sat on the mat",
                "the cat is on the mat",
                0.645779420625287,
            ),
            (
                "Ad sales boost Time Warner profit",
                "Ad sales boost Time Warner profit",
                1.0,
            ),
            ("", "", 0.0),
            ("", "Ad sales boost Time Warner profit", 0.0),
            ("Ad sales boost Time Warner profit", "", 0.0),
            ("a", "a", 1.0),
            ("ab", "ac", 0.25),
            ("aaaa", "aa", 0.7812499999999999),
            ("   ", "abc", 0.0),
            (
                "Time Warner profits rise",
                "Ad sales boost Time Warner profit",
                0.5767847951030481,
            ),
            (
                "Dollar gains on Greenspan speech",
                "Dollar hits new low against euro",
                0.2834644934903316,
            ),
            (
                "Café niño über 東京",
                "cafe nino uber 東京",
                0.2846070596070596,
            ),
            ("positive", "Positive.", 0.6904550581251949),
            ("abcdefgh", "abcdefgh xyz", 0.6819571389071707),
        ];
        for (hyp, reference, expected) in cases {
            let got = chrf(hyp, reference);
            assert!(
                (got - expected).abs() < 1e-12,
                "{hyp:?} vs {reference:?}: {got} != {expected}"
            );
        }
    }

    #[test]
    fn chrf_by_hand() {
        // "ab" vs "ac": order 1: 1 of 2 on each side; order 2: 0 of 1.
        // P = R = (1/2 + 0) / 2 = 1/4, so chrF = 1/4.
        assert!(close(chrf("ab", "ac"), 0.25));
        // Whitespace does not count: "a b" is "ab".
        assert!(close(chrf("a b", "ab"), 1.0));
        assert!(close(chrf("same text", "same text"), 1.0));
        assert_eq!(chrf("", ""), 0.0);
        assert_eq!(chrf("abc", ""), 0.0);
        assert_eq!(chrf("", "abc"), 0.0);
        assert_eq!(chrf("abc", "xyz"), 0.0);
    }
}
