#!/usr/bin/env python3
"""PyTorch rendering of greedy generation with SmolLM2-135M-Instruct, for a
side-by-side with the `smollm_generate` bench binary.

Optional to run: needs `pip install torch transformers gguf accelerate`.
Reads what `smollm_generate --dump FILE` writes (the prompt's token ids, the
number of tokens to generate, the tokens Burn's greedy decoding produced)
and the model from its GGUF file (transformers dequantizes it to float32).

Generation is the loop a user writes: the prompt through the model once
with a `DynamicCache` and the head at its last position only
(`logits_to_keep=1`), then one token at a time through the cache, the next
token the argmax, under `torch.inference_mode()`; exactly `new` tokens (no
stop token), the same work as the Burn side.

Modes:

* `--serve`: loads once, checks that its greedy tokens are Burn's (prints
  how many of them agree in its first line), then answers one line per
  command on stdin: `gen` runs one generation and prints
  `{"prefill_ms": ..., "decode_ms": [...]}` (each decode step's time);
  `quit` ends;
* `--peak`: peak RSS (`VmHWM`, reset after loading) over one generation.

`--cache DIR` keeps the dequantized model in DIR, shared with
`torch_smollm_step.py`.
"""
import argparse
import inspect
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_smollm_step import load_model, log, peak_rss_mib, reset_peak_rss  # noqa: E402


@torch.inference_mode()
def generate(model, prompt, new):
    """Greedy tokens and timings: prefill ms, then each decode step's ms."""
    from transformers import DynamicCache

    cache = DynamicCache()
    # transformers 5.25 renamed `past_key_values` to `cache`.
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    ids = torch.tensor([prompt], dtype=torch.long)
    start = time.perf_counter()
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{key: cache})
    token = int(out.logits[0, -1].argmax())
    prefill = (time.perf_counter() - start) * 1e3
    tokens, steps = [token], []
    while len(tokens) < new:
        start = time.perf_counter()
        out = model(
            input_ids=torch.tensor([[token]], dtype=torch.long), use_cache=True, **{key: cache}
        )
        token = int(out.logits[0, -1].argmax())
        steps.append((time.perf_counter() - start) * 1e3)
        tokens.append(token)
    return tokens, prefill, steps


def agreement(a, b):
    """How many leading tokens two sequences share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", required=True, help="what `smollm_generate --dump` wrote")
    ap.add_argument("--data-dir", default=os.environ.get("BURN_RLORA_DATA", "data"))
    ap.add_argument("--gguf", default="smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", help="under --data-dir")
    ap.add_argument("--cache", help="keep the dequantized model here")
    ap.add_argument("--attn", default="sdpa", help="transformers' attn_implementation (sdpa, eager)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--serve", action="store_true", help="answer `gen` lines on stdin")
    ap.add_argument("--peak", action="store_true", help="peak RSS of one generation")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    dump = json.load(open(args.inputs))
    prompt, new = dump["prompt"], dump["new"]
    d = os.path.dirname(os.path.join(args.data_dir, args.gguf))
    start = time.perf_counter()
    model = load_model(d, os.path.basename(args.gguf), args.cache, args.attn).eval()
    log(f"torch: model loaded in {time.perf_counter() - start:.1f} s")

    if args.peak:
        reset_peak_rss()
        generate(model, prompt, new)
        print(json.dumps({"peak_rss_mib": peak_rss_mib()}), flush=True)
        return

    tokens, _, _ = generate(model, prompt, new)
    info = {
        "torch": torch.__version__,
        "attn": model.config._attn_implementation,
        "threads": torch.get_num_threads(),
        "agree": agreement(tokens, dump["burn_tokens"]),
        "of": new,
    }
    print(json.dumps(info), flush=True)
    if not args.serve:
        return
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            return
        if cmd != "gen":
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
            continue
        _, prefill, steps = generate(model, prompt, new)
        print(json.dumps({"prefill_ms": prefill, "decode_ms": steps}), flush=True)


if __name__ == "__main__":
    main()
