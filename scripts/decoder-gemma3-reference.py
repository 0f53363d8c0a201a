#!/usr/bin/env python3
"""Reference logits and greedy continuations of the real Gemma 3 270M (Q4_K_M GGUF).

Loads data/gemma3/gemma-3-270m-q4_k_m.gguf (fetched by scripts/fetch-data.sh;
sha256 a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818) with
Hugging Face transformers, which dequantizes every tensor to float32 and
subtracts the 1 that llama.cpp's converter added to each Gemma norm weight,
and records for a few prompts what burn-rlora-llm's gemma3 parity test
compares against. Run:

    /work/refvenv/bin/pip install torch transformers==5.25.0 gguf==0.19.0 numpy \
        sentencepiece llama-cpp-python==0.3.36      # llama-cpp-python optional
    bash scripts/fetch-data.sh
    /work/refvenv/bin/python scripts/decoder-gemma3-reference.py [path/to/file.gguf]

writes burn-rlora-llm/tests/fixtures/decoder_gemma3_reference.json:

    {
      "gguf_file": "gemma-3-270m-q4_k_m.gguf",
      "gguf_sha256": str,
      "versions": {"torch", "transformers", "gguf", "numpy", "tokenizers",
                   "llama_cpp_python", "python"},
      "loader": "how the model and tokenizer were loaded",
      "config": {...transformers' config as read from the GGUF (the fields
                 that matter)...},
      "top_k": 20,
      "new_tokens": 24,
      "greedy_method": "...",
      "timing": {"load_s", "forward_s", "greedy_s", "max_rss_mib"},
      "cases": [
        {
          "name": str,
          "prompt": str,
          "ids": [int],                  # transformers' tokenizer, BOS (2) first
          "llama_cpp_ids": [int] | null, # llama.cpp's tokenizer (add_bos, special)
          "positions": [                 # one per prompt token
            {"top_ids": [int]*20,        # descending logit, ties -> lower id
             "top_logits": [float]*20,
             "logsumexp": float}         # over all 262144 logits (f64 from f32)
          ],
          "greedy": [int]*24,            # transformers argmax continuation
          "greedy_text": str,
          "greedy_min_top2_margin": float, # smallest top-1 minus top-2 logit gap
                                           # over the 24 greedy steps
          "llama_cpp": null | {          # llama.cpp on the same Q4_K_M file
             "greedy": [int]*24,
             "argmax_agreement": float,   # fraction of prompt positions
             "max_abs_diff_top20": float, # over transformers' top-20 ids
             # only with BURN_RLORA_GEMMA3_F32 (llama.cpp on an F32 copy,
             # F32 K/V cache): max abs diff over all logits, argmax agreement
             "f32_copy_max_abs_diff": float, "f32_copy_argmax_agreement": float}
        }
      ],
      "fibonacci_check": str
    }

Measured (torch 2.15.0 CPU, transformers 5.25.0, llama-cpp-python 0.3.36, 2
threads on a busy shared 2-core machine): loading takes 80-130 s (dequantizing
to f32), peak RSS about 3.0-3.6 GiB for transformers alone (4.2-4.5 GiB with
llama.cpp's two copies loaded too), the 7 prompt forwards 15-20 s, the 7
greedy continuations 80-150 s. The smallest top-1/top-2 gap along a greedy
continuation is 0.012 ("plain") and 0.018 ("long"): an implementation whose
logits differ from transformers' by ~0.01 may legitimately diverge there. llama.cpp tokenizes every prompt
to the same ids. llama.cpp on the Q4_K_M file itself (its matmuls quantize the
activations to Q8_K) differs from transformers by up to 0.6-3.1 in the top-20
logits, agrees on the argmax at 91-100% of positions and gives the same greedy
continuation for 5 of 7 prompts; on an F32 copy of the file (same weights as
transformers, F32 K/V cache) it differs by at most 0.011-0.035 over all
262144 logits and agrees on every argmax.

Logits are transformers' float32 logits (eager attention, one forward over the
whole prompt). The greedy continuation is a manual argmax loop with the KV
cache (argmax of the last row, ties -> lowest id, no stop at <eos> or
<end_of_turn>).
"""

import hashlib
import importlib.metadata
import json
import os
import resource
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(os.environ.get("BURN_RLORA_DATA", os.path.join(HERE, "..", "data")),
                       "gemma3", "gemma-3-270m-q4_k_m.gguf")
OUT = os.path.join(HERE, "..", "burn-rlora-llm", "tests", "fixtures", "decoder_gemma3_reference.json")
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
TOP = 20
NEW_TOKENS = 24

PROMPTS = [
    ("code", "def fibonacci(n):\n    "),
    ("numbers", "The sum of 1234 and 5678 is 6912; 3.14159 × 2 = 6.28318, and 2^10 ="),
    ("accents", "Les élèves ont mangé des crêpes à Noël ; ça coûte 12,50 € — naïveté oblige, señor Müller."),
    ("emoji", "I love pizza 🍕 and coffee ☕! 😀👍🏽 Let's go 🇫🇷🚀"),
    ("long", "When the old lighthouse keeper finally retired after forty-two years on the rocky "
             "island, the villagers gathered at the harbour with lanterns, fresh bread, and a "
             "hand-painted sign that read 'Thank you for keeping us safe', and he stood there "
             "quietly, unsure of what to say, until a small child handed him a seashell and"),
    ("plain", "The capital of France is"),
    ("chat", "<start_of_turn>user\nWhat is two plus two?<end_of_turn>\n<start_of_turn>model\n"),
]
# set BURN_RLORA_GEMMA3_F32=/tmp/gemma3-f32.gguf (1.1 GB) to also compare llama.cpp on an F32 copy
F32_COPY = os.environ.get("BURN_RLORA_GEMMA3_F32")
FIB_EXPECT = "if n == 0:\n        return 0\n    elif n == 1:"


def f32(v):
    return float(str(np.float32(v)))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def top_k(row, k):
    """Indices of the k largest values, descending, ties -> lower id."""
    order = np.lexsort((np.arange(row.size), -row.astype(np.float64)))
    return order[:k]


def write_f32_copy(src, dst):
    """The same GGUF with every tensor dequantized (by the gguf package) to F32."""
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    r = GGUFReader(src)
    w = GGUFWriter(dst, r.fields["general.architecture"].contents())
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        val = 0 if k == "general.file_type" else f.contents()
        sub = f.types[-1] if f.types[0] == GGUFValueType.ARRAY else None
        w.add_key_value(k, val, f.types[0], sub_type=sub)
    for t in r.tensors:
        w.add_tensor(t.name, np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32),
                     raw_dtype=GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def greedy(model, ids, n):
    """(continuation ids, smallest top-1 minus top-2 logit gap over the steps)"""
    out, gaps = [], []

    def pick(row):
        top2 = np.sort(row)[-2:]
        gaps.append(float(top2[1] - top2[0]))
        return int(np.argmax(row))

    with torch.no_grad():
        res = model(torch.tensor([ids]), use_cache=True)
        past = res.past_key_values
        nxt = pick(res.logits[0, -1].float().numpy())
        for i in range(n):
            out.append(nxt)
            if i + 1 == n:
                break
            res = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = res.past_key_values
            nxt = pick(res.logits[0, -1].float().numpy())
    return out, min(gaps)


def main():
    path = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    digest = sha256(path)
    assert digest == SHA256, f"unexpected sha256 {digest}"
    directory, name = os.path.split(path)
    torch.set_num_threads(2)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    versions = {m: importlib.metadata.version(m) for m in ("torch", "transformers", "gguf", "numpy", "tokenizers")}
    try:
        import llama_cpp
        versions["llama_cpp_python"] = importlib.metadata.version("llama_cpp_python")
    except ImportError:
        llama_cpp = None
        versions["llama_cpp_python"] = None
    versions["python"] = sys.version.split()[0]
    print("versions:", versions)

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    load_s = time.perf_counter() - t0
    cfg = model.config
    print(f"loaded in {load_s:.1f}s; max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    llm = None
    if llama_cpp is not None:
        llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_batch=256, logits_all=True,
                              n_threads=2, verbose=False)

    llm32 = None
    if llama_cpp is not None and F32_COPY:
        # llama.cpp on an F32 copy with an F32 K/V cache: the same weights transformers uses,
        # so the difference is llama.cpp's graph and kernels, not the Q4_K/Q8_K matmuls
        if not os.path.exists(F32_COPY):
            t0 = time.perf_counter()
            write_f32_copy(path, F32_COPY)
            print(f"wrote {F32_COPY} in {time.perf_counter() - t0:.0f}s")
        llm32 = llama_cpp.Llama(model_path=F32_COPY, n_ctx=256, n_batch=256, logits_all=True,
                                n_threads=2, verbose=False, type_k=0, type_v=0, flash_attn=False)

    cases, forward_s, greedy_s = [], 0.0, 0.0
    fib_check = None
    for cname, prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        assert ids[0] == tok.bos_token_id == 2, ids[:3]
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
        forward_s += time.perf_counter() - t0
        positions = []
        for row in logits:
            top = top_k(row, TOP)
            lse = float(torch.logsumexp(torch.from_numpy(row).double(), 0))
            positions.append({"top_ids": [int(i) for i in top], "top_logits": [f32(row[i]) for i in top],
                              "logsumexp": lse})
        t0 = time.perf_counter()
        cont, gap = greedy(model, ids, NEW_TOKENS)
        greedy_s += time.perf_counter() - t0
        text = tok.decode(cont)
        case = {"name": cname, "prompt": prompt, "ids": ids, "llama_cpp_ids": None,
                "positions": positions, "greedy": cont, "greedy_text": text,
                "greedy_min_top2_margin": gap, "llama_cpp": None}
        if llm is not None:
            lids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            case["llama_cpp_ids"] = lids
            llm.reset()
            llm.eval(ids)
            scores = np.array(llm.scores[: len(ids)], dtype=np.float32)
            agree = float(np.mean(scores.argmax(-1) == logits.argmax(-1)))
            d = max(float(np.abs(scores[p, top_k(logits[p], TOP)] - logits[p, top_k(logits[p], TOP)]).max())
                    for p in range(len(ids)))
            lgen = []
            seq = list(ids)
            for _ in range(NEW_TOKENS):
                nxt = int(np.argmax(np.array(llm.scores[len(seq) - 1])))
                lgen.append(nxt)
                seq.append(nxt)
                llm.eval([nxt])
            case["llama_cpp"] = {"greedy": lgen, "argmax_agreement": agree, "max_abs_diff_top20": d}
        if llm32 is not None:
            llm32.reset()
            llm32.eval(ids)
            s32 = np.array(llm32.scores[: len(ids)], dtype=np.float32)
            case["llama_cpp"]["f32_copy_max_abs_diff"] = float(np.abs(s32 - logits).max())
            case["llama_cpp"]["f32_copy_argmax_agreement"] = float(np.mean(s32.argmax(-1) == logits.argmax(-1)))
        if cname == "code":
            ok = text.startswith(FIB_EXPECT)
            fib_check = (f"transformers' greedy continuation of {prompt!r} (with BOS) is {text!r}: "
                         f"{'starts' if ok else 'does NOT start'} with {FIB_EXPECT!r}")
            print(fib_check)
        cases.append(case)
        lc = case["llama_cpp"]
        print(f"{cname:8s} {len(ids):3d} ids | greedy {text!r} (min top-2 gap {gap:.3g})"
              + (f" | llama.cpp ids {'same' if case['llama_cpp_ids'] == ids else 'DIFFERENT: ' + str(case['llama_cpp_ids'])}"
                 f", argmax agree {lc['argmax_agreement']:.3f}, top20 max diff {lc['max_abs_diff_top20']:.3g}, "
                 f"greedy {'same' if lc['greedy'] == cont else 'different: ' + repr(tok.decode(lc['greedy']))}"
                 if lc else "")
              + (f" | F32 copy: max abs diff {lc['f32_copy_max_abs_diff']:.3g}, argmax agree "
                 f"{lc['f32_copy_argmax_agreement']:.3f}" if lc and "f32_copy_max_abs_diff" in lc else ""))

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    timing = {"load_s": round(load_s, 2), "forward_s": round(forward_s, 2), "greedy_s": round(greedy_s, 2),
              "max_rss_mib": round(rss), "threads": 2,
              "note": "max RSS of the whole process (includes llama.cpp when present)"}
    print("timing:", timing)
    doc = {
        "gguf_file": name,
        "gguf_sha256": digest,
        "versions": versions,
        "loader": ("AutoModelForCausalLM.from_pretrained(dir, gguf_file=name, dtype=torch.float32, "
                   "attn_implementation='eager'); AutoTokenizer.from_pretrained(dir, gguf_file=name); "
                   "ids = tok(prompt)['input_ids'] (adds BOS)"),
        "config": {k: getattr(cfg, k, None) for k in (
            "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "rms_norm_eps", "sliding_window", "layer_types",
            "query_pre_attn_scalar", "rope_parameters", "max_position_embeddings", "final_logit_softcapping",
            "tie_word_embeddings", "hidden_activation", "bos_token_id", "eos_token_id")},
        "top_k": TOP,
        "new_tokens": NEW_TOKENS,
        "greedy_method": ("manual argmax loop with transformers' KV cache (argmax of the last logits row, "
                          "ties -> lowest id), no stop at <eos>/<end_of_turn>"),
        "timing": timing,
        "cases": cases,
        "fibonacci_check": fib_check,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
