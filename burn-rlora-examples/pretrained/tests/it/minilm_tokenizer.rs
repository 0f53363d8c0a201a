//! The tokenizer wrapper: padding and truncation set here (the shipped file
//! forces both to 128), ids, masks and the decode round trip.
//!
//! `tests/fixtures/tiny_tokenizer.json` is the MiniLM tokenizer's pipeline
//! (BERT normalizer, pre-tokenizer, `[CLS] … [SEP]` template, WordPiece, forced
//! padding and truncation to 128) over a 22-word vocabulary written for these
//! tests. The last test uses the real tokenizer when `data/` has been fetched.

use std::path::Path;

use crate::common;

use burn_rlora_pretrained::minilm::{
    MiniLmError, MiniLmPaths, MiniLmTokenizer, Padding, DEFAULT_MAX_LEN,
};

fn tiny(max_len: usize) -> MiniLmTokenizer {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_tokenizer.json");
    MiniLmTokenizer::from_file(path, max_len).expect("tiny tokenizer loads")
}

#[test]
fn encodes_with_special_tokens_and_pads_to_the_longest() {
    let tok = tiny(DEFAULT_MAX_LEN);
    let batch = tok
        .encode_batch(&["The cat sat", "A dog is running!"])
        .expect("encodes");
    // Padded to the longest of the batch, not to the shipped 128.
    assert_eq!((batch.batch, batch.seq_len), (2, 8));
    #[rustfmt::skip]
    assert_eq!(batch.input_ids, [
        2, 5, 6, 7, 3, 0, 0, 0,       // [CLS] the cat sat [SEP] [PAD]...
        2, 12, 13, 17, 14, 16, 19, 3, // [CLS] a dog is run ##ning ! [SEP]
    ]);
    assert_eq!(
        batch.attention_mask,
        [1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    );
    assert_eq!(batch.token_type_ids, [0; 16]);
    assert_eq!((batch.len_of(0), batch.len_of(1)), (5, 8));
}

#[test]
fn decode_round_trips() {
    let tok = tiny(DEFAULT_MAX_LEN);
    let batch = tok
        .encode_batch(&["A dog is running!", "Café  cat"])
        .expect("encodes");
    let row = |i: usize| &batch.input_ids[i * batch.seq_len..(i + 1) * batch.seq_len];
    assert_eq!(tok.decode(row(0), true).unwrap(), "a dog is running!");
    // Lower-cased and accents stripped by the BERT normalizer; padding skipped.
    assert_eq!(tok.decode(row(1), true).unwrap(), "cafe cat");
    assert_eq!(
        tok.decode(row(1), false).unwrap(),
        "[CLS] cafe cat [SEP] [PAD] [PAD] [PAD] [PAD]"
    );
    // Unknown words become [UNK].
    let unk = tok.encode_batch(&["zebra"]).unwrap();
    assert_eq!(unk.input_ids, [2, 1, 3]);
    assert!(matches!(
        tok.decode(&[-1], true),
        Err(MiniLmError::InvalidArgument(_))
    ));
}

#[test]
fn truncates_to_max_len_and_pads_fixed_on_request() {
    let tok = tiny(5);
    let batch = tok.encode_batch(&["a dog is running !"]).unwrap();
    assert_eq!(batch.input_ids, [2, 12, 13, 17, 3], "[CLS] a dog is [SEP]");

    let fixed = tiny(6).with_padding(Padding::Fixed).unwrap();
    let batch = fixed.encode_batch(&["cat", "a dog is running !"]).unwrap();
    assert_eq!(batch.seq_len, 6);
    assert_eq!(&batch.input_ids[..6], [2, 6, 3, 0, 0, 0]);
    assert_eq!(&batch.input_ids[6..], [2, 12, 13, 17, 14, 3]);
}

#[test]
fn bad_arguments_are_errors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_tokenizer.json");
    assert!(matches!(
        MiniLmTokenizer::from_file(&path, 2),
        Err(MiniLmError::InvalidArgument(_))
    ));
    let missing = MiniLmTokenizer::from_file("/no/such/tokenizer.json", 128).unwrap_err();
    assert!(
        missing.to_string().contains("scripts/fetch-data.sh"),
        "{missing}"
    );
    let empty: [&str; 0] = [];
    assert!(matches!(
        tiny(8).encode_batch(&empty),
        Err(MiniLmError::InvalidArgument(_))
    ));
}

#[test]
fn real_tokenizer_round_trips_when_fetched() {
    let Some(dir) = common::fetched_data_or_skip("real tokenizer round trip") else {
        return;
    };
    let paths = MiniLmPaths::in_data_dir(dir).unwrap();
    let tok = MiniLmTokenizer::from_file(&paths.tokenizer, DEFAULT_MAX_LEN).unwrap();
    assert_eq!(tok.vocab_size(), 30522);
    let text = "The quick brown fox jumps over the lazy dog.";
    let long = "word ".repeat(500);
    let batch = tok.encode_batch(&[text, long.as_str()]).unwrap();
    assert_eq!(
        batch.seq_len, DEFAULT_MAX_LEN,
        "the long text is truncated to 128"
    );
    assert_eq!(batch.len_of(0), 12);
    assert_eq!(&batch.input_ids[..2], [101, 1996], "[CLS] the");
    let row0 = &batch.input_ids[..batch.seq_len];
    assert_eq!(
        tok.decode(row0, true).unwrap(),
        "the quick brown fox jumps over the lazy dog."
    );
    assert_eq!(batch.input_ids[2 * DEFAULT_MAX_LEN - 1], 102, "[SEP] last");
}
