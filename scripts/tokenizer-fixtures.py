#!/usr/bin/env python3
"""Reference token ids for the tokenizer tests of burn-rlora-llm (besides SmolLM2's own, which
scripts/smollm-tokenizer-fixture.py writes).

Writes, under burn-rlora-llm/tests/fixtures/:

- tokenizer_spm_tiny.gguf (committed, a few KB): a vocabulary-only GGUF file in Llama 2's layout,
  `tokenizer.ggml.model = llama`: a SentencePiece BPE model trained here (with the `sentencepiece`
  package, on the CORPUS below, with Llama 2's trainer settings: byte fallback, digits split, a
  dummy prefix, no normalisation), 256 byte tokens `<0x00>`..`<0xFF>`, `<unk>` of type UNKNOWN,
  `<s>`/`</s>` of type CONTROL, `<think>`/`</think>` of type USER_DEFINED. Like Llama 2's files it
  has no `tokenizer.ggml.add_space_prefix` and no `tokenizer.ggml.pre` (llama.cpp then puts a space
  before the text), and `tokenizer.ggml.add_bos_token = true`.
- tokenizer_references.json (committed): for each vocabulary below, the texts with their ids and
  their decoding, from llama.cpp (llama-cpp-python: `Llama(vocab_only=True).tokenize(text,
  add_bos=False, special=True)`, and the pieces of `llama_token_to_piece(..., special=True)`
  joined, the first one's leading space dropped when the vocabulary puts one before the text, as
  llama.cpp's `detokenize` does; its `clean_spaces` pass is not applied, as transformers does not
  apply one either), and where transformers' GGUF conversion (`AutoTokenizer.from_pretrained(dir,
  gguf_file=...)`) gives other ids or another decoding, those too (`transformers_ids`,
  `transformers_decoded`). llama.cpp is the expectation: the files are written for it.

The vocabularies (`source` says where the Rust test finds the file: under the data directory, or
among the fixtures):

- `gemma3`: Gemma 3 270M's (data/gemma3/gemma-3-270m-q4_k_m.gguf; `llama`, 262,144 tokens,
  add_space_prefix false);
- `gemma3-space-prefix`: the same with `tokenizer.ggml.add_space_prefix = true` (a vocabulary-only
  copy written to a temporary directory for llama.cpp; the Rust test sets the same field);
- `smollm2-llama-bpe`, `smollm2-qwen2`, `smollm2-default`: SmolLM2's byte-level vocabulary and
  merges (data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf) with `tokenizer.ggml.pre` set to Llama 3's,
  Qwen2's and llama.cpp's default pre-tokenizer (copies as above);
- `spm-tiny`: tokenizer_spm_tiny.gguf.

Where the references disagree (the script prints each case, and the fixture keeps both; 9 texts
of `spm-tiny`, 1 of `gemma3`, 6 of `smollm2-default`, none of the others):

- The space prefix (`spm-tiny`): llama.cpp puts `▁` before the text even when the text starts
  with a space (" leading space" is `▁▁` `le`..., " " is `▁▁`), and again after every control or
  user-defined token ("<s>hello" is `<s>` `▁` `he`..., "<think>reasoning" is `<think>` `▁re`...);
  transformers' `Metaspace` (`prepend_scheme = "first"`) prefixes only the start of the text, and
  only when it does not start with a space already. The texts: " leading space", "   three leading
  spaces", " ", "  ", and the five with `<s>`, `</s>`, `<unk>`, `<think>` written in them.
- Gemma 3: transformers respells Gemma's user-defined tokens of spaces (`"   "`) with `▁` and
  merges them like any token, so a text holding a literal U+2581 next to spaces ("a literal ▁ meta
  space and ▁▁ two") gets those tokens there; llama.cpp matches them only as written (spaces).
  (`gemma3-space-prefix` is not compared: transformers' Gemma conversion ignores the key.)
- `smollm2-default`: transformers has no `default` pre-tokenizer (it keeps GPT-2's regex, without
  llama.cpp's splits of punctuation runs and of digit runs into threes), so texts with digits or
  punctuation runs differ ("x = 12345678901234567890;", the Rust and Python code, the contractions,
  the punctuation, "Unicode numbers: ...").
- Decoding: no text; transformers' decoding of llama.cpp's ids equals llama.cpp's everywhere.

    python3 -m venv /tmp/tokenv
    /tmp/tokenv/bin/pip install gguf==0.19.0 numpy sentencepiece transformers torch llama-cpp-python
    /tmp/tokenv/bin/python scripts/tokenizer-fixtures.py

(llama-cpp-python builds llama.cpp from source; torch only because transformers' GGUF reader
imports it.) `$BURN_RLORA_DATA` replaces data/ as everywhere in the project; a vocabulary whose
file is missing is left out with a warning. The committed fixtures were made with gguf 0.19.0,
sentencepiece 0.2.3, transformers 5.25.0, tokenizers 0.23.3 and llama-cpp-python 0.3.36.
"""

import ctypes
import importlib.metadata
import io
import json
import os
import re
import sys
import tempfile

import gguf
from gguf import GGUFReader, GGUFValueType, GGUFWriter

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DATA = os.environ.get("BURN_RLORA_DATA", os.path.join(ROOT, "data"))
FIXTURES = os.path.join(ROOT, "burn-rlora-llm", "tests", "fixtures")
TINY_GGUF = os.path.join(FIXTURES, "tokenizer_spm_tiny.gguf")
OUT = os.path.join(FIXTURES, "tokenizer_references.json")

GEMMA3 = "gemma3/gemma-3-270m-q4_k_m.gguf"
SMOLLM2 = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# Texts for every vocabulary.
TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "runs    of     spaces  between",
    "tab\tseparated\t\tvalues\t",
    "\tstarts with a tab",
    "line one\nline two",
    "\n",
    "\n\n\n",
    "windows\r\nline\r\nends\r\n",
    "blank lines\n\n\nafter\n\n",
    "12345 and 3.14159 and 1,000,000 and 2024-01-31",
    "x = 12345678901234567890;",
    "Café, naïve, jalapeño, über, São Paulo, Ærøskøbing, façade",
    "東京は日本の首都です。北京欢迎你。",
    "한국어 텍스트와 Mixed: αβγ, Привет мир, مرحبا, שלום, नमस्ते",
    "Emoji: 😀🎉👍🏽, a family 👨\u200d👩\u200d👧\u200d👦 and a coder 👩\u200d💻",
    'fn main() {\n    let x: Vec<u32> = (0..10).collect();\n    println!("{x:?}");\n}\n',
    "def f(x):\n    if x > 0:\n        return x ** 2  # square\n    return -x\n",
    "don't, I'll, we're, they've, she'd, it's, I'm, DON'T, 'quoted'",
    "Punctuation!!! ... ??? (parens) [brackets] {braces} <angle> @#$%^&*_+-=~`|\\/",
    "",
    " ",
    "  ",
    "a",
    "Unicode numbers: ² ½ ٣٤٥ ① ⅷ",
    "control\x01chars\x1f and \x7f and a rare \U0001F9EC and \U00100000",
    "a literal \u2581 meta space and \u2581\u2581 two",
    "a\u00a0non-breaking space, zero\u200bwidth and a \ufeffBOM",
    "https://example.com/path?query=1&x=y#frag",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
]

# Texts with the control and user-defined tokens of each vocabulary written in them.
SPECIAL_TEXTS = {
    "gemma3": [
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
        "<bos>text between<eos> special tokens",
        "<table><tr><td>cell</td></tr></table> and <h1>Title</h1>",
        "[multimodal] <unk> <pad> <mask> <unused0>x<unused99>",
        "spaces  \n\n  around   tokens<start_of_turn>  after",
    ],
    "smollm2": [
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
        "text before <|im_end|> and after<|im_start|>",
        "<|endoftext|><repo_name>burn<file_sep>",
    ],
    "spm-tiny": [
        "<s>hello</s>world",
        "<s> <s>  a</s>",
        "<unk> an unknown token",
        "<think>reasoning</think>answer",
        "before <think> inside </think> after",
    ],
}

# The text the tiny SentencePiece model is trained on.
CORPUS = """\
The quick brown fox jumps over the lazy dog. Hello, world! Hello again, world.
A tokenizer cuts text into pieces; the model reads the pieces as numbers.
SentencePiece learns its pieces from raw text, spaces included, and writes a space as a meta symbol.
Byte fallback spells a character it has never seen with the bytes of its UTF-8.
Numbers such as 12345, 3.14159, 2024-01-31 and 1,000,000 are cut into single digits.
def f(x):
    if x > 0:
        return x ** 2
    return -x
fn main() { let v: Vec<u32> = (0..10).collect(); println!("{v:?}"); }
Le renard brun saute par-dessus le chien paresseux. Café, crème, naïve, élève, où, déjà.
Der schnelle braune Fuchs springt über den faulen Hund. Größe, Straße, übermäßig.
El zorro marrón salta sobre el perro perezoso. ¿Qué tal? ¡Olé! Mañana, niño, jalapeño.
don't, I'll, we're, they've, she'd, it's, I'm. "Quoted text", (parentheses) and [brackets].
Tabs\tand  double  spaces, line breaks
and more lines. The end of the corpus is near; the tokenizer has seen enough text.
"""


def data_path(relative):
    return os.path.join(DATA, relative)


def field_value(field):
    """A reader field's value and types, as GGUFWriter.add_key_value takes them."""
    main = field.types[0]
    sub = field.types[-1] if main == GGUFValueType.ARRAY else None
    return field.contents(), main, sub


def write_vocab_only(src, dst, overrides):
    """A copy of `src`'s metadata without tensors (llama.cpp loads it with vocab_only),
    `overrides` ({key: (value, type)}) replacing or adding keys."""
    reader = GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = GGUFWriter(dst, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name in overrides:
            continue
        value, main, sub = field_value(field)
        writer.add_key_value(name, value, main, sub)
    for name, (value, vtype) in overrides.items():
        writer.add_key_value(name, value, vtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()


def train_tiny_spm():
    """A SentencePiece BPE model trained on CORPUS as Llama 2's was configured."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.replace("\\t", "\t").splitlines()),
        model_writer=model,
        model_type="bpe",
        vocab_size=700,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        normalization_rule_name="identity",
        character_coverage=1.0,
        user_defined_symbols=["<think>", "</think>"],
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def write_tiny_gguf(sp, path):
    """The vocabulary of `sp` as a Llama 2 GGUF file without tensors."""
    user_defined = {"<think>", "</think>"}
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        tokens.append(piece)
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif piece in user_defined:
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer = GGUFWriter(path, "llama")
    writer.add_name("tokenizer_spm_tiny")
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(16)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return len(tokens)


class LlamaCpp:
    """llama.cpp's tokenizer of a GGUF file."""

    def __init__(self, path):
        import llama_cpp

        self.llama_cpp = llama_cpp
        self.llama = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llama.model)

    def ids(self, text):
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def piece(self, token):
        buf = ctypes.create_string_buffer(256)
        n = self.llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[:n]

    def decoded(self, ids, strip_space):
        pieces = [self.piece(t) for t in ids]
        if strip_space and pieces and pieces[0].startswith(b" "):
            pieces[0] = pieces[0][1:]
        return b"".join(pieces).decode("utf-8", errors="replace")


def transformers_tokenizer(path):
    from transformers import AutoTokenizer

    directory, name = os.path.split(os.path.abspath(path))
    try:
        return AutoTokenizer.from_pretrained(directory, gguf_file=name)
    except Exception as e:  # noqa: BLE001 - a reference that cannot load is left out
        print(f"  transformers cannot load {name}: {e}", file=sys.stderr)
        return None


def cases(llama, hf, texts, strip_space):
    out = []
    for text in texts:
        ids = llama.ids(text)
        case = {"text": text, "ids": ids, "decoded": llama.decoded(ids, strip_space)}
        if hf is not None:
            hf_ids = hf.encode(text, add_special_tokens=False)
            if hf_ids != ids:
                case["transformers_ids"] = hf_ids
                print(f"    ids differ: {text!r}")
            hf_decoded = hf.decode(ids, skip_special_tokens=False)
            if hf_decoded != case["decoded"]:
                case["transformers_decoded"] = hf_decoded
                print(f"    decoding differs: {text!r}")
        out.append(case)
    return out


def vocabulary(name, source, path, overrides, special, compare_transformers=True):
    """One vocabulary's section: `path` is what the references read (a copy with `overrides`
    applied, if any); `overrides` are also written in the fixture for the Rust test."""
    print(f"{name}: {path}")
    llama = LlamaCpp(path)
    hf = transformers_tokenizer(path) if compare_transformers else None
    fields = GGUFReader(path).fields
    prefix_field = fields.get("tokenizer.ggml.add_space_prefix")
    model = fields["tokenizer.ggml.model"].contents()
    strip_space = model == "llama" and (prefix_field is None or bool(prefix_field.contents()))
    texts = TEXTS + SPECIAL_TEXTS.get(special, [])
    return {
        "name": name,
        "source": source,
        "overrides": {k.removeprefix("tokenizer.ggml."): v for k, (v, _) in overrides.items()},
        "vocab_size": len(fields["tokenizer.ggml.tokens"].data),
        "add_space_prefix": strip_space,
        "cases": cases(llama, hf, texts, strip_space),
    }


def main():
    sp = train_tiny_spm()
    n = write_tiny_gguf(sp, TINY_GGUF)
    print(f"wrote {TINY_GGUF}: {n} tokens, {os.path.getsize(TINY_GGUF)} bytes")

    sections = [vocabulary("spm-tiny", {"fixture": os.path.basename(TINY_GGUF)}, TINY_GGUF, {}, "spm-tiny")]
    with tempfile.TemporaryDirectory() as tmp:
        gemma = data_path(GEMMA3)
        if os.path.isfile(gemma):
            sections.append(vocabulary("gemma3", {"data": GEMMA3}, gemma, {}, "gemma3"))
            prefix = {"tokenizer.ggml.add_space_prefix": (True, GGUFValueType.BOOL)}
            copy = os.path.join(tmp, "gemma3-space-prefix.gguf")
            write_vocab_only(gemma, copy, prefix)
            sections.append(
                vocabulary("gemma3-space-prefix", {"data": GEMMA3}, copy, prefix, "gemma3", False)
            )
        else:
            print(f"warning: {gemma} not found, Gemma 3 left out", file=sys.stderr)
        smollm = data_path(SMOLLM2)
        if os.path.isfile(smollm):
            for pre in ("llama-bpe", "qwen2", "default"):
                override = {"tokenizer.ggml.pre": (pre, GGUFValueType.STRING)}
                copy = os.path.join(tmp, f"smollm2-{pre}.gguf")
                write_vocab_only(smollm, copy, override)
                sections.append(vocabulary(f"smollm2-{pre}", {"data": SMOLLM2}, copy, override, "smollm2"))
        else:
            print(f"warning: {smollm} not found, SmolLM2 left out", file=sys.stderr)

    packages = ("gguf", "sentencepiece", "transformers", "tokenizers", "llama_cpp_python")
    fixture = {
        "source": "scripts/tokenizer-fixtures.py",
        "versions": {p: importlib.metadata.version(p) for p in packages},
        "vocabularies": sections,
    }
    text = json.dumps(fixture, ensure_ascii=False, indent=1)
    # Each list of ids on one line.
    text = re.sub(
        r"\[\n\s*(\d+(?:,\n\s*\d+)*)\n\s*\]",
        lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]",
        text,
    )
    with open(OUT, "w", encoding="utf-8") as out:
        out.write(text + "\n")
    for s in sections:
        differ = sum("transformers_ids" in c for c in s["cases"])
        print(f"{s['name']}: {len(s['cases'])} texts, {differ} where transformers' ids differ")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
