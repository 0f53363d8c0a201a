#!/usr/bin/env python3
"""Reference logits and greedy continuations of SmolLM2-135M-Instruct.

Loads the GGUF file with Hugging Face transformers (which dequantizes it to
float32 and restores the query/key row order) and writes, for a few fixed
prompts, what the decoder parity test compares against:

- the prompt's token ids;
- at every position: the argmax, the log-sum-exp of all logits, the 20
  largest logits with their ids, and the logits of 32 fixed token ids;
- the greedy continuation of 24 tokens (no sampling, no stop at eos).

Run (after `bash scripts/fetch-data.sh`):

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch transformers gguf accelerate numpy
    /tmp/refenv/bin/python scripts/smollm-reference.py \
        data/smollm2 burn-rlora-llm/tests/fixtures/smollm_reference.json
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nWhat is the boiling point of water?<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Les élèves ont mangé 12 crêpes 🥞 ce matin, et",
]
FIXED_IDS = [i * 1531 % 49152 for i in range(32)]
TOP = 20
NEW_TOKENS = 24


def main(model_dir, out):
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=GGUF, dtype=torch.float32)
    model.eval()
    cases = []
    for prompt in PROMPTS:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
            greedy = model.generate(
                torch.tensor([ids]),
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                do_sample=False,
                pad_token_id=tok.eos_token_id,
            )[0, len(ids):].tolist()
        positions = []
        for row in logits:
            top = torch.topk(row, TOP)
            positions.append({
                "argmax": int(row.argmax()),
                "logsumexp": float(torch.logsumexp(row, 0)),
                "top_ids": top.indices.tolist(),
                "top_logits": top.values.tolist(),
                "fixed_logits": row[FIXED_IDS].tolist(),
            })
        cases.append({"prompt": prompt, "ids": ids, "positions": positions, "greedy": greedy,
                      "greedy_text": tok.decode(greedy)})
        print(repr(prompt), "->", repr(tok.decode(greedy)))
    with open(out, "w") as f:
        json.dump({"model": GGUF, "fixed_ids": FIXED_IDS, "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
