#!/usr/bin/env python3
"""Reference token ids for the SmolLM2 tokenizer test, and the vocabulary dump it builds from.

Reads the tokenizer metadata of data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf and writes:

- data/smollm2/tokenizer-spec.json (git-ignored, about 1.5 MB): the `tokenizer.*` metadata as
  burn-rlora-llm's `TokenizerSpec` reads it with serde (model, tokens, token_types, scores,
  merges, bos, eos, unknown, pad, pre, the add_* flags, chat_template), read with the `gguf`
  package (llama.cpp's own reader), for comparing with what `TokenizerSpec::from_gguf` reads.
  The Rust test `burn-rlora-llm/tests/it/tokenizer.rs` reads the GGUF file itself.
- burn-rlora-llm/tests/fixtures/smollm_tokenizer.json (committed, small): for each text
  below, its ids without any special token added (`texts`, and `lossy_texts` for two texts
  holding bytes the vocabulary has no token for), and for a few conversations the chat
  template's rendering and its ids (`chats`).

The reference ids are llama.cpp's (llama-cpp-python's `Llama(vocab_only=True).tokenize(text,
add_bos=False, special=True)`): llama.cpp is what the GGUF was written for, and its `smollm`
pre-tokenizer (every `\\p{N}` split off, then GPT-2's regex) is the Digits + ByteLevel one of
SmolLM2's own tokenizer.json. The script also tokenizes every text with transformers'
conversion of the GGUF (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`), both as
transformers builds it and with SmolLM2's tokenizer.json pre-tokenizer put in, and stops if
llama.cpp disagrees with the latter. Transformers does not map `tokenizer.ggml.pre = "smollm"`
to a pre-tokenizer and uses GPT-2's alone, so where a run of spaces comes before a digit it
splits differently: those texts record its ids as `transformers_gguf_ids`. The chat renderings
are transformers' `apply_chat_template(..., tokenize=False)` (its Jinja engine on the file's
template).

    python3 -m venv /tmp/tokenv
    /tmp/tokenv/bin/pip install gguf==0.19.0 numpy transformers torch llama-cpp-python
    /tmp/tokenv/bin/python scripts/smollm-tokenizer-fixture.py [path/to/file.gguf]

(llama-cpp-python builds llama.cpp from source: a C++ compiler is needed; torch only because
transformers' GGUF reader imports it.) `$BURN_RLORA_DATA` replaces data/ as everywhere in the
project. The committed fixture was made with gguf 0.19.0, transformers 5.25.0, tokenizers
0.23.3 and llama-cpp-python 0.3.36.
"""

import importlib.metadata
import json
import os
import re
import sys

from gguf import GGUFReader

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DATA = os.environ.get("BURN_RLORA_DATA", os.path.join(ROOT, "data"))
DEFAULT_GGUF = os.path.join(DATA, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
SPEC_OUT = os.path.join(DATA, "smollm2", "tokenizer-spec.json")
FIXTURE_OUT = os.path.join(ROOT, "burn-rlora-llm", "tests", "fixtures", "smollm_tokenizer.json")

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Café, naïve, jalapeño, über, São Paulo, Ærøskøbing, façade",
    "Ñandú y pingüino: ¿qué tal? ¡Olé!",
    "東京は日本の首都です。北京欢迎你。",
    "한국어 텍스트와 Mixed: αβγ, Привет мир, مرحبا, שלום, नमस्ते",
    "Emoji: 😀🎉👍🏽, a family 👨\u200d👩\u200d👧\u200d👦 and a coder 👩\u200d💻",
    "tab\tseparated\tvalues\t\tend\t",
    "runs    of     spaces  between",
    "line one\nline two\r\nline three\n\n\nafter blank lines\n",
    'fn main() {\n    let x: Vec<u32> = (0..10).collect();\n    println!("{x:?}");\n}\n',
    "def f(x):\n    if x > 0:\n        return x ** 2\n    return -x\n",
    "12345 and 3.14159 and 1,000,000 and 2024-01-31",
    "x =  1;  y   = 42;\n    7 apples",
    "Unicode numbers: ² ½ ٣٤٥ ①",
    "Punctuation!!! ... ??? (parens) [brackets] {braces} <angle> @#$%^&*_+-=~`|\\/",
    "don't, I'll, we're, they've, she'd, it's, I'm, DON'T",
    "   leading spaces",
    "trailing spaces   ",
    "",
    " ",
    "\n",
    "<|im_start|>user\nHi there<|im_end|>\n",
    "text before <|im_end|> and after<|im_start|>",
    "<|endoftext|><repo_name>burn<file_sep>",
    "a\u00a0non-breaking space and zero\u200bwidth",
    "Supercalifragilisticexpialidocious https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1#y",
]

# Texts holding bytes the vocabulary has no token for (control characters
# 0x04 and 0x1d; 0xF1, the first byte of a plane-4 character): both references
# drop those bytes, so these do not decode back to themselves.
LOSSY_TEXTS = [
    "control\x04char\x1d",
    "plane 4: \U00040000.",
]

CHATS = [
    {
        "turns": [
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
        ],
        "add_generation_prompt": True,
    },
    {
        "turns": [
            {"role": "system", "content": "You answer in one word."},
            {"role": "user", "content": "Colour of the sky?"},
        ],
        "add_generation_prompt": False,
    },
    {
        "turns": [{"role": "user", "content": "Écris « bonjour »\nen Python : `print(1)`"}],
        "add_generation_prompt": True,
    },
]


def spec_of(path):
    """The `tokenizer.*` metadata as `TokenizerSpec`'s serde fields."""
    fields = GGUFReader(path).fields

    def value(key, default=None):
        field = fields.get(key)
        return field.contents() if field is not None else default

    return {
        "model": value("tokenizer.ggml.model"),
        "tokens": value("tokenizer.ggml.tokens"),
        "token_types": value("tokenizer.ggml.token_type"),
        "scores": value("tokenizer.ggml.scores", []),
        "merges": value("tokenizer.ggml.merges", []),
        "bos": value("tokenizer.ggml.bos_token_id"),
        "eos": value("tokenizer.ggml.eos_token_id"),
        "unknown": value("tokenizer.ggml.unknown_token_id"),
        "pad": value("tokenizer.ggml.padding_token_id"),
        "pre": value("tokenizer.ggml.pre", "default"),
        "add_bos": value("tokenizer.ggml.add_bos_token"),
        "add_eos": value("tokenizer.ggml.add_eos_token"),
        "add_space_prefix": value("tokenizer.ggml.add_space_prefix"),
        "chat_template": value("tokenizer.chat_template"),
    }


def references(path):
    """Three tokenizers: transformers' as built, transformers' with SmolLM2's
    pre-tokenizer, and llama.cpp's."""
    from llama_cpp import Llama
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    directory, name = os.path.split(os.path.abspath(path))
    transformers_tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    fixed = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    fixed.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    llama = Llama(model_path=path, vocab_only=True, verbose=False)
    return transformers_tok, fixed, llama


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    spec = spec_of(path)
    os.makedirs(os.path.dirname(SPEC_OUT), exist_ok=True)
    with open(SPEC_OUT, "w", encoding="utf-8") as out:
        json.dump(spec, out, ensure_ascii=False)
    print(f"wrote {SPEC_OUT}: {len(spec['tokens'])} tokens, {len(spec['merges'])} merges")

    transformers_tok, fixed, llama = references(path)

    def llama_ids(text):
        return llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    texts = []
    for text in TEXTS:
        ids = llama_ids(text)
        if fixed.encode(text, add_special_tokens=False) != ids:
            sys.exit(f"llama.cpp and transformers with SmolLM2's pre-tokenizer differ on {text!r}")
        entry = {"text": text, "ids": ids}
        plain = transformers_tok.encode(text, add_special_tokens=False)
        if plain != ids:
            entry["transformers_gguf_ids"] = plain
        texts.append(entry)

    lossy = []
    for text in LOSSY_TEXTS:
        ids = llama_ids(text)
        others = (t.encode(text, add_special_tokens=False) for t in (fixed, transformers_tok))
        if any(other != ids for other in others):
            sys.exit(f"the references disagree on {text!r}")
        lossy.append({"text": text, "ids": ids})

    chats = []
    for chat in CHATS:
        rendered = transformers_tok.apply_chat_template(
            chat["turns"], tokenize=False, add_generation_prompt=chat["add_generation_prompt"]
        )
        chats.append(dict(chat, rendered=rendered, ids=llama_ids(rendered)))

    packages = ("gguf", "transformers", "tokenizers", "llama_cpp_python")
    versions = {p: importlib.metadata.version(p) for p in packages}
    fixture = {
        "source": "scripts/smollm-tokenizer-fixture.py on " + os.path.basename(path),
        "versions": versions,
        "vocab_size": len(spec["tokens"]),
        "texts": texts,
        "lossy_texts": lossy,
        "chats": chats,
    }
    text = json.dumps(fixture, ensure_ascii=False, indent=1)
    # Each list of ids on one line.
    text = re.sub(
        r"\[\n\s*(\d+(?:,\n\s*\d+)*)\n\s*\]",
        lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]",
        text,
    )
    with open(FIXTURE_OUT, "w", encoding="utf-8") as out:
        out.write(text + "\n")
    differ = sum("transformers_gguf_ids" in t for t in texts)
    print(
        f"wrote {FIXTURE_OUT}: {len(texts)} texts ({differ} where transformers' GGUF tokenizer"
        f" differs), {len(lossy)} lossy texts, {len(chats)} chats"
    )


if __name__ == "__main__":
    main()
