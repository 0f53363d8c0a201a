//! Jinja chat templates ([`ChatTemplate`]) against transformers' rendering,
//! and the limits that keep an untrusted template from hanging or failing
//! the caller.
//!
//! `tests/fixtures/chat_reference.json` (written by
//! `scripts/chat-template-fixture.py`) holds transformers'
//! `apply_chat_template(..., tokenize=False)` renderings of a set of
//! conversations (quotes, newlines, unicode, braces and Jinja-looking text,
//! empty contents, Python whitespace at the edges, roles that do not
//! alternate) with the published templates in `tests/fixtures/chat_templates/`
//! (SmolLM2, Llama 3.1, Gemma 3, Qwen2.5, Mistral Nemo, Mixtral, DeepSeek-R1)
//! and one written to exercise Python's string and dict methods and
//! `tojson`; the output, or the message of `raise_exception`, must match
//! byte for byte.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn_rlora_llm::chat::{ChatTemplate, ChatTemplateError, ChatTurn, MAX_TEMPLATE_BYTES};
use serde::Deserialize;

/// The reference renderings.
#[derive(Deserialize)]
struct Fixture {
    versions: BTreeMap<String, Option<String>>,
    templates: BTreeMap<String, TemplateInfo>,
    conversations: BTreeMap<String, Vec<ChatTurn>>,
    cases: Vec<Case>,
}

/// A template of the fixture.
#[derive(Deserialize)]
struct TemplateInfo {
    /// Its file in `tests/fixtures/chat_templates/`.
    file: String,
    bos_token: String,
    eos_token: String,
}

/// One rendering: a template, a conversation, `add_generation_prompt`, and
/// what transformers gave.
#[derive(Deserialize)]
struct Case {
    template: String,
    conversation: String,
    add_generation_prompt: bool,
    /// The prompt.
    output: Option<String>,
    /// The message of `raise_exception`.
    raised: Option<String>,
    /// Any other error (none is expected).
    error: Option<String>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture() -> Fixture {
    let path = fixtures().join("chat_reference.json");
    let text = std::fs::read_to_string(&path).expect("the committed fixture reads");
    serde_json::from_str(&text).expect("the fixture parses")
}

fn template(text: &str) -> ChatTemplate {
    ChatTemplate::new(text).unwrap_or_else(|e| panic!("{text:?} compiles: {e}"))
}

fn user(content: &str) -> Vec<ChatTurn> {
    vec![ChatTurn::user(content)]
}

/// Where two texts first differ, for a readable failure.
fn first_difference(a: &str, b: &str) -> String {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()));
    let from = a[..at].char_indices().rev().nth(40).map_or(0, |(i, _)| i);
    format!(
        "at byte {at}: got {:?}, expected {:?}",
        &a[from..(at + 40).min(a.len())],
        &b[from.min(b.len())..(at + 40).min(b.len())]
    )
}

#[test]
fn renders_as_transformers_does() {
    let fixture = fixture();
    let mut templates = BTreeMap::new();
    for (name, info) in &fixture.templates {
        let path = fixtures().join("chat_templates").join(&info.file);
        let template = ChatTemplate::from_file(&path)
            .unwrap_or_else(|e| panic!("the {name} template compiles: {e}"));
        templates.insert(name.as_str(), (template, info));
    }
    let mut failures = Vec::new();
    let mut outputs = BTreeMap::<&str, usize>::new();
    let mut raised = 0;
    for case in &fixture.cases {
        let (template, info) = &templates[case.template.as_str()];
        let turns = &fixture.conversations[&case.conversation];
        let got = template.render(
            turns,
            case.add_generation_prompt,
            &info.bos_token,
            &info.eos_token,
        );
        let what = format!(
            "{} / {} / add_generation_prompt={}",
            case.template, case.conversation, case.add_generation_prompt
        );
        match (&case.output, &case.raised, &case.error, got) {
            (Some(expected), _, _, Ok(got)) => {
                *outputs.entry(case.template.as_str()).or_default() += 1;
                if &got != expected {
                    failures.push(format!("{what}: {}", first_difference(&got, expected)));
                }
            }
            (_, Some(expected), _, Err(ChatTemplateError::Raised { message })) => {
                raised += 1;
                if &message != expected {
                    failures.push(format!("{what}: raised {message:?}, expected {expected:?}"));
                }
            }
            (_, _, Some(expected), Err(err)) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "{what}: transformers failed with {expected}; here: {err}"
                );
            }
            (output, raised, _, got) => {
                let short = |s: String| s.chars().take(300).collect::<String>();
                failures.push(format!(
                    "{what}: got {}, expected output {} / raised {raised:?}",
                    short(format!("{got:?}")),
                    short(format!("{output:?}")),
                ))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} renderings differ from transformers ({:?}):\n{}",
        failures.len(),
        fixture.cases.len(),
        fixture.versions,
        failures.join("\n")
    );
    // Every template rendered something, and the raise_exception cases ran.
    assert_eq!(outputs.len(), fixture.templates.len(), "{outputs:?}");
    assert!(raised >= 10, "only {raised} raise_exception cases");
    assert!(fixture.cases.len() >= 140, "{} cases", fixture.cases.len());
}

/// The SmolLM2 fixture template is the GGUF file's, and renders the
/// conversation the tokenizer test uses (skipped until the model is fetched).
#[test]
fn smollm2_template_is_the_gguf_files() {
    let Some(path) = crate::common::smollm2_or_skip("smollm2_template_is_the_gguf_files") else {
        return;
    };
    let file = burn_rlora_gguf::GgufFile::open(&path).expect("the GGUF file opens");
    let spec =
        burn_rlora_llm::TokenizerSpec::from_gguf(&file).expect("the tokenizer metadata reads");
    let source = spec.chat_template.expect("SmolLM2 has a chat template");
    let committed =
        ChatTemplate::from_file(fixtures().join("chat_templates/smollm2-135m-instruct.jinja"))
            .expect("the committed template compiles");
    assert_eq!(committed.source(), source);
    let template = template(&source);
    assert_eq!(
        template
            .render(&user("Hi"), true, "<|im_start|>", "<|im_end|>")
            .unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn keeps_its_source_and_renders_empty_conversations() {
    let text = "{% for message in messages %}[{{ message.role }}]{% endfor %}\
                {% if add_generation_prompt %}>{% endif %}";
    let t = template(text);
    assert_eq!(t.source(), text);
    assert_eq!(t.render(&[], false, "", "").unwrap(), "");
    assert_eq!(t.render(&[], true, "", "").unwrap(), ">");
    let copy = t.clone();
    assert_eq!(copy.render(&user("x"), true, "", "").unwrap(), "[user]>");
    assert!(format!("{t:?}").contains("message.role"));
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    shareable::<ChatTemplate>();
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<ChatTemplateError>();
}

#[test]
fn renders_from_several_threads() {
    let t = template("{{ bos_token }}{{ messages[0].content | upper }}{{ eos_token }}");
    std::thread::scope(|s| {
        for i in 0..4 {
            let t = &t;
            s.spawn(move || {
                let text = format!("thread {i}");
                assert_eq!(
                    t.render(&user(&text), false, "<s>", "</s>").unwrap(),
                    format!("<s>THREAD {i}</s>")
                );
            });
        }
    });
}

#[test]
fn syntax_errors_are_typed_with_their_position() {
    let text =
        "{{ bos_token }}\n{% for message in messages %}\n  {{ message.content + }}\n{% endfor %}";
    match ChatTemplate::new(text) {
        Err(ChatTemplateError::Syntax {
            path: None,
            line: Some(3),
            column: Some(column),
            message,
        }) => {
            assert!((3..=24).contains(&column), "column {column}");
            assert!(message.contains("syntax error"), "{message}");
        }
        other => panic!("expected a syntax error at line 3, got {other:?}"),
    }
    for (text, line) in [
        ("{% if messages %}unclosed", 1),
        ("a\nb\n{% for %}", 3),
        ("{{ 'unterminated }}", 1),
        ("{% endfor %}", 1),
        ("ok\n{% include 'other.jinja' %}", 2),
        ("{{ x | }}", 1),
    ] {
        match ChatTemplate::new(text) {
            Err(err @ ChatTemplateError::Syntax { line: l, .. }) => {
                assert_eq!(l, Some(line), "{text:?}: {err}");
                assert!(err.to_string().contains(&format!("line {line}")), "{err}");
            }
            other => panic!("{text:?}: expected a syntax error, got {other:?}"),
        }
    }
    // From a file, the error names it.
    let dir = scratch_dir("syntax");
    let path = dir.join("broken.jinja");
    std::fs::write(&path, "{% for m in messages %}\n{{ m.content }").unwrap();
    match ChatTemplate::from_file(&path) {
        Err(err @ ChatTemplateError::Syntax { .. }) => {
            let ChatTemplateError::Syntax { path: p, line, .. } = &err else {
                unreachable!()
            };
            assert_eq!(p.as_deref(), Some(path.as_path()));
            assert_eq!(*line, Some(2));
            assert!(err.to_string().contains("broken.jinja"), "{err}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn raise_exception_gives_its_message() {
    let t = template(
        "{% for message in messages %}{% if message.role not in ['user', 'assistant'] %}\
         {{ raise_exception('Unsupported role: ' + message.role) }}{% endif %}\
         {{ message.content }}{% endfor %}",
    );
    assert_eq!(t.render(&user("fine"), false, "", "").unwrap(), "fine");
    let turns = [ChatTurn::user("a"), ChatTurn::new("tool", "b")];
    match t.render(&turns, false, "", "") {
        Err(err @ ChatTemplateError::Raised { .. }) => {
            assert_eq!(
                err.to_string(),
                "the chat template refused the conversation: Unsupported role: tool"
            );
            let ChatTemplateError::Raised { message } = err else {
                unreachable!()
            };
            assert_eq!(message, "Unsupported role: tool");
        }
        other => panic!("expected the raised message, got {other:?}"),
    }
    // From inside a macro, and with a value that is not a string.
    let t = template("{% macro check(n) %}{{ raise_exception(n) }}{% endmacro %}{{ check(42) }}");
    match t.render(&[], false, "", "") {
        Err(ChatTemplateError::Raised { message }) => assert_eq!(message, "42"),
        other => panic!("expected the raised message, got {other:?}"),
    }
}

#[test]
fn engine_errors_are_typed() {
    for (text, needle) in [
        (
            "{{ messages[0].content.no_such_method() }}",
            "unknown method",
        ),
        (
            "{{ messages[0].content | no_such_filter }}",
            "unknown filter",
        ),
        ("{{ messages[0].content + 1 }}", ""),
        ("{{ no_such.attribute }}", "undefined"),
        ("{{ messages | tojson(indent=1000) }}", "indent"),
        ("{{ messages | tojson(2) }}", ""),
        ("{{ messages | tojson(color=true) }}", "color"),
        ("{{ strftime_now('%Q') }}", "%Q"),
        ("{{ raise_exception | tojson }}", "JSON serializable"),
        ("{{ messages[0].content | trim(1) }}", "string"),
    ] {
        match template(text).render(&user("x"), false, "", "") {
            Err(err @ ChatTemplateError::Render { line: Some(1), .. }) => {
                assert!(
                    err.to_string()
                        .to_lowercase()
                        .contains(&needle.to_lowercase()),
                    "{text}: {err}"
                );
            }
            other => panic!("{text}: expected a render error, got {other:?}"),
        }
    }
}

#[test]
fn globals_and_filters_of_transformers() {
    let t = template("{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%d %b %Y') }}");
    let out = t.render(&[], false, "", "").unwrap();
    let (iso, human) = out.split_once('|').unwrap();
    assert_eq!(iso.len(), 10, "{out}");
    let year: u32 = iso[..4].parse().unwrap();
    assert!(year >= 2024, "{out}");
    assert!(human.ends_with(&iso[..4]), "{out}");
    // `tojson` does not escape for HTML, keeps non-ASCII, and follows json.dumps.
    let t = template("{{ messages[0] | tojson }} {{ {'n': [1, 2.5, none]} | tojson(indent=2) }}");
    assert_eq!(
        t.render(&user("<a href='x'>&é</a>"), false, "", "").unwrap(),
        "{\"role\": \"user\", \"content\": \"<a href='x'>&é</a>\"} {\n  \"n\": [\n    1,\n    2.5,\n    null\n  ]\n}"
    );
}

/// Renders `text` on `turns` and checks it fails within a few seconds.
fn stopped(text: &str, turns: &[ChatTurn]) -> ChatTemplateError {
    let start = Instant::now();
    let result = template(text).render(turns, false, "", "");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(60), "{text}: took {took:?}");
    match result {
        Ok(out) => panic!("{text}: rendered {} bytes instead of stopping", out.len()),
        Err(err) => err,
    }
}

#[test]
fn runaway_templates_are_stopped() {
    // Loops that would run for ages.
    for text in [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
        "{% set ns = namespace(n=0) %}{% for i in range(100000) %}{% for j in range(100000) %}\
         {% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}{{ ns.n }}",
    ] {
        let err = stopped(text, &user("x"));
        assert!(
            matches!(err, ChatTemplateError::TooMuchWork { .. }),
            "{text}: {err}"
        );
        assert!(err.to_string().contains("fuel"), "{err}");
    }
    // Data that would exhaust memory.
    for text in [
        "{{ 'x' * 1000000000000 }}",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}\
         {% endfor %}{{ ns.s | length }}",
        "{{ messages[0].content.replace('x', 'y' * 100000) | length }}",
        "{% set ns = namespace(s='') %}{% for i in range(100000) %}\
         {% set ns.s = ns.s ~ messages[0].content %}{% endfor %}{{ ns.s | length }}",
    ] {
        let err = stopped(text, &user(&"x".repeat(100_000)));
        assert!(
            matches!(err, ChatTemplateError::TooMuchWork { .. }),
            "{text}: {err}"
        );
    }
    // Output that would exhaust memory: refused at the output limit (or
    // when the fuel runs out, whichever comes first).
    let err = stopped(
        "{% for i in range(100000) %}{% for j in range(100) %}{{ messages[0].content }}\
         {% endfor %}{% endfor %}",
        &user(&"x".repeat(10_000)),
    );
    assert!(
        matches!(
            err,
            ChatTemplateError::OutputTooLarge { .. } | ChatTemplateError::TooMuchWork { .. }
        ),
        "{err}"
    );
    let err = stopped(
        "{% for i in range(100000) %}{{ messages[0].content }}{% endfor %}",
        &user(&"x".repeat(100_000)),
    );
    assert!(
        matches!(err, ChatTemplateError::OutputTooLarge { limit } if limit < 32 << 20),
        "{err}"
    );
    // Recursion without end.
    let err = stopped(
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        &user("x"),
    );
    assert!(
        matches!(&err, ChatTemplateError::Render { message, .. } if message.contains("recursion")),
        "{err}"
    );
}

/// A template may nest lists as deep as its fuel allows; dropping, printing
/// or comparing such a value recurses once a level, which must not overflow
/// the stack (the render has a thread of its own with a large stack).
#[test]
fn deeply_nested_values_do_not_overflow_the_stack() {
    // 2000 turns raise the fuel to its maximum.
    let turns: Vec<ChatTurn> = (0..2000).map(|_| ChatTurn::user("")).collect();
    let nest = |levels_k: usize, tail: &str| {
        format!(
            "{{% set ns = namespace(x=[]) %}}{{% for i in range(1000) %}}\
             {{% for j in range({levels_k}) %}}{{% set ns.x = [ns.x] %}}{{% endfor %}}{{% endfor %}}{tail}"
        )
    };
    // As deep as the fuel goes: stopped, and the half-built value dropped.
    let err = stopped(&nest(100_000, ""), &turns);
    assert!(
        matches!(err, ChatTemplateError::TooMuchWork { .. }),
        "{err}"
    );
    // Hundreds of thousands of levels, then used.
    for tail in [
        "{{ ns.x | length }}",
        "{{ ns.x == ns.x }}",
        "{{ ns.x | string | length }}",
        "{{ ns.x[0] != ns.x }}",
    ] {
        let start = Instant::now();
        match template(&nest(300, tail)).render(&turns, false, "", "") {
            Ok(_) | Err(ChatTemplateError::TooMuchWork { .. }) => {}
            Err(err) => panic!("{tail}: {err}"),
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{tail}");
    }
    // tojson refuses to go deep.
    match template(&nest(1, "{{ ns.x | tojson }}")).render(&turns, false, "", "") {
        Err(ChatTemplateError::Render { message, .. }) => {
            assert!(message.contains("nested"), "{message}")
        }
        other => panic!("expected tojson to refuse the nesting, got {other:?}"),
    }
}

#[test]
fn template_size_is_limited() {
    let big = "x".repeat(MAX_TEMPLATE_BYTES as usize + 1);
    match ChatTemplate::new(&big) {
        Err(ChatTemplateError::TemplateTooLarge {
            path: None,
            size,
            limit,
        }) => {
            assert_eq!(size, MAX_TEMPLATE_BYTES + 1);
            assert_eq!(limit, MAX_TEMPLATE_BYTES);
        }
        other => panic!("expected the size to be refused, got {other:?}"),
    }
    let exact = "x".repeat(MAX_TEMPLATE_BYTES as usize);
    assert_eq!(
        template(&exact).render(&[], false, "", "").unwrap().len(),
        MAX_TEMPLATE_BYTES as usize
    );
}

/// A fresh directory for a test's files.
fn scratch_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("burn-rlora-llm-chat-{test}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("the scratch directory is created");
    dir
}

#[test]
fn from_file_refuses_what_is_not_a_small_regular_utf8_file() {
    let dir = scratch_dir("from-file");
    let name = |err: &ChatTemplateError, path: &Path| {
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "the error names {}: {err}",
            path.display()
        )
    };

    // A directory.
    match ChatTemplate::from_file(&dir) {
        Err(
            err @ ChatTemplateError::NotAFile {
                kind: "a directory",
                ..
            },
        ) => name(&err, &dir),
        other => panic!("expected a directory to be refused, got {other:?}"),
    }
    // A missing file.
    let missing = dir.join("missing.jinja");
    match ChatTemplate::from_file(&missing) {
        Err(err @ ChatTemplateError::Io { .. }) => name(&err, &missing),
        other => panic!("expected a missing file to be refused, got {other:?}"),
    }
    // Too large: refused before reading.
    let big = dir.join("big.jinja");
    std::fs::write(&big, "x".repeat(MAX_TEMPLATE_BYTES as usize + 1)).unwrap();
    match ChatTemplate::from_file(&big) {
        Err(err @ ChatTemplateError::TemplateTooLarge { .. }) => name(&err, &big),
        other => panic!("expected a large file to be refused, got {other:?}"),
    }
    // Not UTF-8.
    let latin1 = dir.join("latin1.jinja");
    std::fs::write(&latin1, b"caf\xe9 {{ bos_token }}").unwrap();
    match ChatTemplate::from_file(&latin1) {
        Err(err @ ChatTemplateError::NotUtf8 { valid_up_to: 3, .. }) => name(&err, &latin1),
        other => panic!("expected non-UTF-8 to be refused, got {other:?}"),
    }
    // A good file, through a symbolic link too.
    let good = dir.join("good.jinja");
    std::fs::write(&good, "{{ bos_token }}{{ messages[0].content }}\n").unwrap();
    let t = ChatTemplate::from_file(&good).expect("a good file reads");
    // As in Jinja2, a single trailing newline of the template is dropped.
    assert_eq!(t.render(&user("hi"), false, "<s>", "").unwrap(), "<s>hi");
    #[cfg(unix)]
    {
        let link = dir.join("link.jinja");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert_eq!(ChatTemplate::from_file(&link).unwrap().source(), t.source());

        // A device.
        let null = Path::new("/dev/null");
        if null.exists() {
            match ChatTemplate::from_file(null) {
                Err(
                    err @ ChatTemplateError::NotAFile {
                        kind: "a device", ..
                    },
                ) => name(&err, null),
                other => panic!("expected a device to be refused, got {other:?}"),
            }
        }
        // A FIFO: refused without opening it (which would block).
        let fifo = dir.join("fifo.jinja");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        if made {
            let start = Instant::now();
            match ChatTemplate::from_file(&fifo) {
                Err(err @ ChatTemplateError::NotAFile { kind: "a FIFO", .. }) => name(&err, &fifo),
                other => panic!("expected a FIFO to be refused, got {other:?}"),
            }
            assert!(start.elapsed() < Duration::from_secs(5));
        } else {
            let _ = writeln!(std::io::stderr(), "mkfifo unavailable: FIFO case not run");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
