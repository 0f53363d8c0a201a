#!/usr/bin/env python3
"""Checks an exported GGUF LoRA adapter with llama.cpp itself.

For each prompt, greedy continuations of up to --max-new-tokens tokens:

  (a) the base model alone, in llama.cpp (llama-cpp-python) and in this
      project (`smollm-chat --raw`);
  (b) the base model with the adapter: in llama.cpp with the exported GGUF
      adapter (`lora_path`, scale 1), in this project with the adapter
      directory it was exported from (`smollm-chat --adapter DIR --raw`).

llama.cpp computes with the quantized base (Q4_1 blocks, its own kernels)
while the project dequantizes the base to f32, so continuations may differ
for that reason alone: the adapter is judged by whether it changes both the
same way (a and b identical in both), and optionally (--f32-base) on an F32
copy of the base, where the two compute on the same weights.

    /work/refvenv/bin/python scripts/llamacpp-lora-check.py \\
        --base data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --adapter /tmp/lora-run/runs/lora-seed0/adapter --lora /tmp/lora.gguf \\
        --chat target/debug/smollm-chat [--f32-base /tmp/smollm2-f32.gguf]

Prints the versions, each prompt's continuations and whether they are
identical; exits 1 when an adapted pair differs where its base pair agrees.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import gguf
import llama_cpp
from llama_cpp import Llama

PROMPTS = [
    "The capital of France is",
    "Classify the sentiment of this review: the film was a delight from start to finish. Answer:",
    "Headline: Shares rise as profits beat forecasts.\nTopic:",
    "def fibonacci(n):",
]


def llama_cpp_greedy(model: str, lora: str | None, prompt: str, n: int) -> tuple[str, list[int]]:
    """Greedy decoding by argmax of the logits, stopping at an end-of-generation token."""
    kwargs = dict(model_path=model, n_threads=2, n_ctx=512, seed=0, logits_all=True, verbose=False)
    if lora is not None:
        kwargs.update(lora_path=lora, lora_scale=1.0)
    llm = Llama(**kwargs)
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
    llm.reset()
    llm.eval(tokens)
    out: list[int] = []
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    for _ in range(n):
        logits = np.asarray(llm.scores[llm.n_tokens - 1])
        token = int(np.argmax(logits))
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        out.append(token)
        llm.eval([token])
    text = llm.detokenize(out).decode("utf-8", errors="replace")
    llm.close()
    return text, out


def project_greedy(chat: str, model: str, adapter: str | None, prompt: str, n: int) -> str:
    cmd = [chat, "--model", model, "--raw", "--max-new-tokens", str(n)]
    if adapter is not None:
        cmd += ["--adapter", adapter]
    cmd.append(prompt)
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = done.stdout
    out = out[:-1] if out.endswith("\n") else out
    # `--raw` prints the prompt, then streams the continuation.
    if not out.startswith(prompt):
        raise RuntimeError(f"smollm-chat did not echo the prompt: {out!r}")
    return out[len(prompt):]


def f32_copy(src: str, dst: str) -> None:
    """The GGUF file `src` with every tensor dequantized to F32 (same metadata)."""
    reader = gguf.GGUFReader(src)
    arch = reader.get_field("general.architecture").contents()
    writer = gguf.GGUFWriter(dst, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = field.contents()
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        if name == "general.file_type":
            value = 0  # ALL_F32
        writer.add_key_value(name, value, vtype, sub_type=sub)
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        writer.add_tensor(t.name, data.reshape([int(d) for d in reversed(t.shape)]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def check(base: str, args, label: str) -> bool:
    ok = True
    results = []
    for prompt in args.prompt or PROMPTS:
        n = args.max_new_tokens
        lc_base, _ = llama_cpp_greedy(base, None, prompt, n)
        lc_lora, _ = llama_cpp_greedy(base, args.lora, prompt, n)
        pr_base = project_greedy(args.chat, base, None, prompt, n)
        pr_lora = project_greedy(args.chat, base, args.adapter, prompt, n)
        same_base = lc_base == pr_base
        same_lora = lc_lora == pr_lora
        changed = lc_lora != lc_base
        results.append(dict(prompt=prompt, llama_cpp_base=lc_base, project_base=pr_base,
                            llama_cpp_adapter=lc_lora, project_adapter=pr_lora,
                            base_identical=same_base, adapter_identical=same_lora,
                            adapter_changes_output=changed))
        print(f"\n[{label}] prompt: {prompt!r}")
        print(f"  base    llama.cpp: {lc_base!r}")
        print(f"  base    project:   {pr_base!r}   identical: {same_base}")
        print(f"  adapter llama.cpp: {lc_lora!r}")
        print(f"  adapter project:   {pr_lora!r}   identical: {same_lora}")
        print(f"  the adapter changes the continuation: {changed}")
        if same_base and not same_lora:
            ok = False
    if args.json:
        Path(args.json).with_suffix(f".{label}.json").write_text(json.dumps(results, indent=2))
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the base model's GGUF file")
    p.add_argument("--adapter", required=True, help="the adapter directory (this project's format)")
    p.add_argument("--lora", required=True, help="the adapter exported as a GGUF LoRA file")
    p.add_argument("--chat", required=True, help="the smollm-chat binary")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--prompt", action="append", help="a prompt (repeatable; default: a fixed set)")
    p.add_argument("--f32-base", help="also check on an F32 copy of the base, written to this path")
    p.add_argument("--json", help="write the results to <JSON>.<label>.json")
    args = p.parse_args()

    from importlib.metadata import version

    print(f"llama-cpp-python {llama_cpp.__version__}, gguf {version('gguf')}, numpy {np.__version__}")
    print(f"base {args.base}\nadapter {args.adapter}\nexported {args.lora}")
    lora = gguf.GGUFReader(args.lora)
    alpha = lora.get_field("adapter.lora.alpha").contents()
    kinds = sorted({t.tensor_type.name for t in lora.tensors})
    print(f"exported file: {len(lora.tensors) // 2} pairs, alpha {alpha}, types {kinds}")

    ok = check(args.base, args, "quantized-base")
    if args.f32_base:
        if not Path(args.f32_base).exists():
            f32_copy(args.base, args.f32_base)
        ok = check(args.f32_base, args, "f32-base") and ok
    print("\nresult:", "consistent" if ok else "an adapted continuation differs where the base ones agree")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
