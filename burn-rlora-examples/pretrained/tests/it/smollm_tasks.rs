//! The instruction tasks built from the fetched data and encoded with
//! SmolLM2's tokenizer, read from the GGUF file in `data/smollm2/`. Without
//! the data (`bash scripts/fetch-data.sh`) the tests are skipped, unless
//! `BURN_RLORA_REQUIRE_DATA` is set.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn_rlora_llm::{ChatTurn, Tokenizer};
use burn_rlora_pretrained::smollm::tasks::{BBC_HEADLINE, PROMPT_SEPARATOR};
use burn_rlora_pretrained::smollm::{
    instruction_tasks, InstructionEncoder, InstructionExample, InstructionSplit, InstructionTask,
    TaskError,
};

fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn tasks(data_dir: &std::path::Path, split: &InstructionSplit) -> Vec<InstructionTask> {
    let start = Instant::now();
    let tasks = instruction_tasks(data_dir, split).expect("the fetched tasks read");
    note(&format!(
        "instruction tasks read in {:.1} s",
        start.elapsed().as_secs_f64()
    ));
    tasks
}

fn real_tokenizer(path: PathBuf) -> Tokenizer {
    let file = burn_rlora_gguf::GgufFile::open(&path).expect("the GGUF file opens");
    Tokenizer::from_gguf(&file).expect("the real vocabulary builds")
}

/// The input of a user message: what follows the instruction.
fn input(example: &InstructionExample) -> &str {
    example
        .prompt
        .split_once(PROMPT_SEPARATOR)
        .map(|(_, input)| input)
        .expect("every prompt has an instruction and an input")
}

/// The bodies of BBC articles: a topic prompt's input is title, blank line,
/// body; a headline prompt's is the body.
fn bodies(examples: &[InstructionExample], topic: bool) -> HashSet<&str> {
    examples
        .iter()
        .map(|e| match topic {
            true => input(e).split_once("\n\n").expect("title and body").1,
            false => input(e),
        })
        .collect()
}

#[test]
fn five_tasks_from_the_fetched_data() {
    let Some(dir) = crate::common::fetched_data_or_skip("instruction tasks") else {
        return;
    };
    let tasks = tasks(&dir, &InstructionSplit::all(0.2));
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
    let labels: Vec<Option<Vec<&str>>> = tasks
        .iter()
        .map(|t| t.labels().map(|l| l.iter().map(String::as_str).collect()))
        .collect();
    let expected: [Option<&[&str]>; 5] = [
        Some(&["business", "entertainment", "politics", "sports", "tech"]),
        Some(&["negative", "positive"]),
        Some(&["negative", "neutral", "positive"]),
        Some(&["ham", "spam"]),
        None,
    ];
    for (got, want) in labels.iter().zip(expected) {
        assert_eq!(got.as_deref(), want);
    }
    for task in &tasks {
        note(&format!(
            "{}: {} train, {} test ({} kept, {} duplicates dropped, {} records skipped)",
            task.name,
            task.train.len(),
            task.test.len(),
            task.total,
            task.duplicates,
            task.skipped
        ));
        assert_eq!(
            task.train.len() + task.test.len(),
            task.total,
            "{}",
            task.name
        );
        let share = task.test.len() as f64 / task.total as f64;
        assert!((share - 0.2).abs() < 0.01, "{}: {share}", task.name);
        let train: HashSet<&str> = task.train.iter().map(|e| e.prompt.as_str()).collect();
        assert_eq!(
            train.len(),
            task.train.len(),
            "{}: a repeated prompt",
            task.name
        );
        for e in task.train.iter().chain(&task.test) {
            assert!(!input(e).trim().is_empty(), "{}: {:?}", task.name, e.prompt);
            assert!(!e.answer.trim().is_empty(), "{}: {:?}", task.name, e.prompt);
            assert!(!train.contains(e.prompt.as_str()) || task.train.contains(e));
            match task.labels() {
                Some(labels) => assert_eq!(e.answer, labels[e.label.unwrap()]),
                None => assert_eq!(e.label, None),
            }
        }
        assert!(task.test.iter().all(|e| !train.contains(e.prompt.as_str())));
    }
    // No article of either BBC test split is in either BBC training split.
    let (topic, headline) = (&tasks[0], &tasks[4]);
    let mut train = bodies(&topic.train, true);
    train.extend(bodies(&headline.train, false));
    let mut test = bodies(&topic.test, true);
    test.extend(bodies(&headline.test, false));
    assert_eq!(train.len(), topic.train.len());
    assert_eq!(test.len(), topic.test.len());
    assert!(train.is_disjoint(&test));
    assert!(headline.test.iter().all(|e| !input(e).contains(&e.answer)));
}

#[test]
fn encoded_examples_fit_and_keep_their_answers() {
    let Some(dir) = crate::common::fetched_data_or_skip("instruction encoding") else {
        return;
    };
    let Some(model) = crate::common::smollm2_or_skip("instruction encoding") else {
        return;
    };
    let tok = real_tokenizer(model);
    let enc = InstructionEncoder::new(&tok).expect("SmolLM2's template is usable");
    // A subsample keeps the test quick; every task has inputs cut to 256
    // tokens but rotten_tomatoes and tweet_sentiment.
    let split = InstructionSplit {
        train_per_task: 1500,
        test_per_task: 500,
        ..InstructionSplit::all(0.2)
    };
    let tasks = tasks(&dir, &split);
    let max_len = 256;
    let start = Instant::now();
    for (t, task) in tasks.iter().enumerate() {
        let (mut truncated, mut differ) = (0, Vec::new());
        for e in task.train.iter().chain(&task.test) {
            let x = enc
                .encode_example(e, t, max_len)
                .expect("the example encodes");
            assert!(x.ids.len() <= max_len);
            assert_eq!((x.task, x.label), (t, e.label));
            let answer = tok.decode(x.answer_ids(), false).unwrap();
            assert_eq!(answer, format!("{}<|im_end|>", e.answer));
            let budget = max_len - x.answer_ids().len();
            assert_eq!(
                enc.encode_prompt(&e.prompt, budget).unwrap(),
                x.prompt_ids()
            );
            let prompt = tok.decode(x.prompt_ids(), false).unwrap();
            let (instruction, _) = e.prompt.split_once(PROMPT_SEPARATOR).unwrap();
            let opening = format!("<|im_start|>user\n{instruction}\n\n");
            assert!(prompt.contains(&opening), "{prompt}");
            assert!(prompt.ends_with("<|im_end|>\n<|im_start|>assistant\n"));
            if x.truncated > 0 {
                truncated += 1;
                assert_eq!(x.ids.len(), max_len);
            } else {
                // Uncut, the pieces are the whole rendering encoded at once.
                let turns = [
                    ChatTurn::user(enc.clean(&e.prompt)),
                    ChatTurn::assistant(enc.clean(&e.answer)),
                ];
                let text = tok.chat_prompt(&turns, false).unwrap();
                let whole = tok.encode(text.strip_suffix('\n').unwrap()).unwrap();
                if whole != x.ids {
                    differ.push(e.prompt.chars().take(80).collect::<String>());
                }
            }
        }
        note(&format!(
            "{}: {} of {} examples cut to {max_len} tokens",
            task.name,
            truncated,
            task.train.len() + task.test.len()
        ));
        assert!(differ.is_empty(), "{}: {differ:#?}", task.name);
    }
    note(&format!(
        "encoded and checked in {:.1} s",
        start.elapsed().as_secs_f64()
    ));
    let short = enc.encode_example(&tasks[0].test[0], 0, 16).unwrap_err();
    assert!(
        matches!(short, TaskError::MaxLenTooSmall { max_len: 16, .. }),
        "{short}"
    );
}

/// Gemma 3 270M has no chat template: the experiment prompts it in Gemma's
/// turn format, and its answers end with `<end_of_turn>`, where generation
/// stops.
#[test]
fn gemma_is_prompted_in_its_turn_format() {
    use burn_rlora_pretrained::smollm::{choose_template, TemplateSource};

    let Some(path) = crate::common::gemma3_or_skip("gemma instruction encoder") else {
        return;
    };
    let tok = real_tokenizer(path);
    assert!(
        tok.chat_template().is_none(),
        "a base model has no template"
    );
    assert!(matches!(
        InstructionEncoder::new(&tok),
        Err(TaskError::Tokenizer(_))
    ));
    let (template, source) = choose_template(&tok, None).unwrap();
    assert_eq!(source, TemplateSource::GemmaTurns);
    let tok = tok.with_chat_template(template);
    let rendered = tok
        .chat_prompt(&[ChatTurn::system("Be brief."), ChatTurn::user("Hi")], true)
        .unwrap();
    assert_eq!(
        rendered,
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    );
    let encoder = InstructionEncoder::new(&tok).expect("the turn format encodes instructions");
    let example = InstructionExample {
        prompt: format!("Classify the sentiment.{PROMPT_SEPARATOR}What a film!"),
        answer: "positive".into(),
        label: Some(1),
    };
    let encoded = encoder.encode_example(&example, 0, 64).unwrap();
    let end_of_turn = tok.token_to_id("<end_of_turn>").unwrap();
    assert_eq!(encoded.ids.first(), Some(&tok.bos()));
    assert_eq!(encoded.ids.last(), Some(&end_of_turn));
    assert_eq!(
        tok.decode(&encoded.ids[encoded.answer_start..], false)
            .unwrap(),
        "positive<end_of_turn>"
    );
    // The prompt alone is the encoded example's prefix.
    let prompt = encoder.encode_prompt(&example.prompt, 64).unwrap();
    assert_eq!(prompt, encoded.ids[..encoded.answer_start]);
}
