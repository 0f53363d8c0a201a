#!/usr/bin/env python3
"""Reference renderings of chat templates, for burn-rlora-llm's chat template tests.

Renders several conversations with several published chat templates through transformers' own
`apply_chat_template(..., tokenize=False)` (Jinja2, set up as transformers sets it up), with and
without `add_generation_prompt`, and writes them to
burn-rlora-llm/tests/fixtures/chat_reference.json. The Rust test `tests/it/chat_templates.rs`
renders the same conversations with `ChatTemplate` and compares byte for byte; it never runs
Python.

The tokenizer is SmolLM2-135M-Instruct's, read from its GGUF file
(`AutoTokenizer.from_pretrained(dir, gguf_file=name)`): its own template (the file's
`tokenizer.chat_template`) is rendered as is, with its own special tokens, and copied to
tests/fixtures/chat_templates/smollm2-135m-instruct.jinja. Every other template is a committed
file in tests/fixtures/chat_templates/ (their origins are listed in TEMPLATES below); it is set
as `tokenizer.chat_template` and rendered with the model's `bos_token` and `eos_token` passed as
keyword arguments (which take the place of the tokenizer's). A template that calls
`raise_exception` is recorded with its message (`raised`); any other error with its type and
text (`error`).

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install transformers jinja2 torch gguf==0.19.0
    /tmp/refvenv/bin/python scripts/chat-template-fixture.py [path/to/SmolLM2.gguf]

(torch only because transformers' GGUF reader imports it.) `bash scripts/fetch-data.sh` fetches
the GGUF file; `$BURN_RLORA_DATA` replaces data/ as everywhere in the project. The committed
fixture was made with transformers 5.25.0 and jinja2 3.1.6 (the versions are recorded in it).
"""

import importlib.metadata
import json
import os
import platform
import sys

import jinja2
from transformers import AutoTokenizer

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DATA = os.environ.get("BURN_RLORA_DATA", os.path.join(ROOT, "data"))
DEFAULT_GGUF = os.path.join(DATA, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
FIXTURES = os.path.join(ROOT, "burn-rlora-llm", "tests", "fixtures")
TEMPLATE_DIR = os.path.join(FIXTURES, "chat_templates")
FIXTURE_OUT = os.path.join(FIXTURES, "chat_reference.json")
SMOLLM2_TEMPLATE = "smollm2-135m-instruct.jinja"

HF_JS = "huggingface/huggingface.js (commit fe42e68017ffc76d09922ea8f9b38a6964345710)"
HF_JS_E2E = f"{HF_JS}, packages/jinja/test/e2e.test.js"

# name -> (file in chat_templates/, where its text comes from, bos_token, eos_token, conversations
# or None for all). The texts are copied byte for byte from their source (no newline added).
TEMPLATES = {
    "smollm2": (
        SMOLLM2_TEMPLATE,
        "tokenizer.chat_template of data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "
        "(HuggingFaceTB/SmolLM2-135M-Instruct), written by this script",
        None,
        None,
        None,
    ),
    "llama-3.1": (
        "llama-3.1-8b-instruct.jinja",
        f"meta-llama/Llama-3.1-8B-Instruct's chat_template, as copied in {HF_JS_E2E}",
        "<|begin_of_text|>",
        "<|eot_id|>",
        None,
    ),
    "gemma-3": (
        "gemma-3-it.jinja",
        "Gemma 3 instruct's chat_template (the tokenizer.chat_template of the gemma3:270m GGUF), "
        f"as copied in {HF_JS}, packages/ollama-utils/src/chat-template-automap.ts",
        "<bos>",
        "<eos>",
        None,
    ),
    "qwen-2.5": (
        "qwen2.5-7b-instruct.jinja",
        f"Qwen/Qwen2.5-7B-Instruct's chat_template, as copied in {HF_JS_E2E}",
        "",
        "<|im_end|>",
        None,
    ),
    "mistral-nemo": (
        "mistral-nemo-instruct-2407.jinja",
        f"mistralai/Mistral-Nemo-Instruct-2407's chat_template, as copied in {HF_JS_E2E}",
        "<s>",
        "</s>",
        None,
    ),
    "mixtral": (
        "mixtral-8x7b-instruct-v0.1.jinja",
        f"mistralai/Mixtral-8x7B-Instruct-v0.1's chat_template, as copied in {HF_JS_E2E}",
        "<s>",
        "</s>",
        None,
    ),
    "deepseek-r1": (
        "deepseek-r1.jinja",
        f"deepseek-ai/DeepSeek-R1's chat_template, as copied in {HF_JS_E2E}",
        "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
        "<\uff5cend\u2581of\u2581sentence\uff5c>",
        None,
    ),
    "pycompat": (
        "pycompat.jinja",
        "written for these tests: Python string and dict methods, trim, tojson, namespace, "
        "loop controls, macros, printing of None and True, the tools and documents defaults",
        "<s>",
        "</s>",
        ["system_user", "multi_turn", "tricky_text", "whitespace_edges", "empty_content"],
    ),
}


def turn(role, content):
    return {"role": role, "content": content}


def system(content):
    return turn("system", content)


def user(content):
    return turn("user", content)


def assistant(content):
    return turn("assistant", content)


CONVERSATIONS = {
    "system_user": [
        system("You are a helpful assistant."),
        user("What is the capital of France?"),
    ],
    "user_only": [user("Hello!")],
    "multi_turn": [
        system("You are a concise assistant."),
        user("Hi, who are you?"),
        assistant("I am an assistant."),
        user("What can you do, Bob?"),
    ],
    "multi_turn_no_system": [
        user("Tell me a joke."),
        assistant("Why did the chicken cross the road?"),
        user("Why?"),
        assistant("To get to the other side."),
    ],
    "tricky_text": [
        system("Quotes: \"double\" and 'single'; a backslash \\ and a\ttab."),
        user(
            "Line one\nLine two\r\n\nJinja-looking: {{ x }} {% if true %}yes{% endif %} "
            "{# comment #} {{ raise_exception('no') }}\nBraces: { } {{ }} }} {{ {'a': 1} "
            "and control tokens <|im_end|> <|eot_id|> <end_of_turn> [INST] </s>"
        ),
        assistant(
            "Unicode: Café naïve 東京 Привет مرحبا 😀👩\u200d💻 \u200bzero-width, "
            "they're O'Brien's"
        ),
        user("  padded with spaces and newlines \n\n"),
    ],
    "empty_content": [user(""), assistant(""), user("")],
    "whitespace_edges": [
        user("\x1c\x1f  edges \x85\xa0\u3000"),
        assistant("\u2028 separators \u2029\t"),
        user("\t\x0b\x0c inner  \x1e  gap \r\n"),
    ],
    "reasoning": [
        user("What is 2+2?"),
        assistant("<think>\nSimple arithmetic.\n</think>\n\nThe answer is 4."),
        user("And 3+3?"),
    ],
    "roles_not_alternating": [
        user("First."),
        user("Second, without an answer in between."),
    ],
    "system_only": [system("Only a system prompt.")],
}


def version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def render(tokenizer, conversation, add_generation_prompt, bos, eos):
    kwargs = {} if bos is None else {"bos_token": bos, "eos_token": eos}
    try:
        out = tokenizer.apply_chat_template(
            conversation,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )
        return {"output": out}
    except jinja2.exceptions.TemplateError as e:
        # raise_exception raises the base class; the engine's own errors are subclasses.
        if type(e) is jinja2.exceptions.TemplateError:
            return {"raised": str(e)}
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    gguf = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    tokenizer = AutoTokenizer.from_pretrained(
        os.path.dirname(gguf), gguf_file=os.path.basename(gguf)
    )
    smollm2 = tokenizer.chat_template
    if not isinstance(smollm2, str):
        sys.exit(f"{gguf}: no chat template read")
    with open(os.path.join(TEMPLATE_DIR, SMOLLM2_TEMPLATE), "w", encoding="utf-8", newline="") as f:
        f.write(smollm2)
    special = tokenizer.special_tokens_map

    templates = {}
    cases = []
    for name, (file, origin, bos, eos, only) in TEMPLATES.items():
        with open(os.path.join(TEMPLATE_DIR, file), encoding="utf-8", newline="") as f:
            text = f.read()
        tokenizer.chat_template = text
        if bos is None:
            # The tokenizer's own special tokens, as transformers passes them.
            bos, eos = special["bos_token"], special["eos_token"]
            passed = None
        else:
            passed = (bos, eos)
        templates[name] = {
            "file": file,
            "origin": origin,
            "bos_token": bos,
            "eos_token": eos,
        }
        for conv_name, conversation in CONVERSATIONS.items():
            if only is not None and conv_name not in only:
                continue
            for add_generation_prompt in (False, True):
                result = render(
                    tokenizer,
                    conversation,
                    add_generation_prompt,
                    *(passed if passed else (None, None)),
                )
                cases.append(
                    {
                        "template": name,
                        "conversation": conv_name,
                        "add_generation_prompt": add_generation_prompt,
                        **result,
                    }
                )
    tokenizer.chat_template = smollm2

    fixture = {
        "generator": "scripts/chat-template-fixture.py",
        "versions": {
            "python": platform.python_version(),
            "transformers": version("transformers"),
            "jinja2": version("jinja2"),
            "tokenizers": version("tokenizers"),
            "gguf": version("gguf"),
        },
        "templates": templates,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    with open(FIXTURE_OUT, "w", encoding="utf-8", newline="\n") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    counts = {}
    for case in cases:
        kind = next(k for k in ("output", "raised", "error") if k in case)
        counts[kind] = counts.get(kind, 0) + 1
    print(f"wrote {FIXTURE_OUT}: {len(cases)} cases {counts}")
    for case in cases:
        if "error" in case:
            print(f"  error: {case['template']} / {case['conversation']}: {case['error']}")


if __name__ == "__main__":
    main()
