#!/usr/bin/env python3
"""Tiny random-weight decoder fixtures (llama, qwen2, qwen3, gemma3) for burn-rlora-llm.

For each architecture this builds a tiny model with Hugging Face transformers
(random weights from a fixed seed, float32), writes it as a GGUF file the way
llama.cpp's `convert_hf_to_gguf.py` would (F32 tensors, same metadata keys,
tensor names and transforms), verifies the file, and records transformers'
logits for a few token-id sequences plus a greedy continuation:

    burn-rlora-llm/tests/fixtures/decoder_tiny_<arch>.gguf
    burn-rlora-llm/tests/fixtures/decoder_tiny_<arch>.json

Run:

    python3 -m venv /work/refvenv
    /work/refvenv/bin/pip install torch transformers==5.25.0 gguf==0.19.0 numpy \
        sentencepiece llama-cpp-python==0.3.36      # llama-cpp-python optional
    /work/refvenv/bin/python scripts/decoder-tiny-fixtures.py [--llama-cpp-dir DIR]

`--llama-cpp-dir` (optional) names a llama.cpp source tree (its
`convert_hf_to_gguf.py`, `conversion/` and `gguf-py/`, e.g. the one vendored in
the llama-cpp-python 0.3.36 sdist). When given, the script also saves each tiny
model as a Hugging Face directory, runs the real converter on it (`--outtype
f32`) and checks that the converter's file has the same metadata (all keys
but general.name) and bit-identical tensors. The converter cannot recognize a
home-made tokenizer's pre-tokenizer hash, so the cross-check makes its
get_vocab_base_pre answer "gpt-2".

What is written into the GGUF (as convert_hf_to_gguf.py does for these archs):

- all: general.architecture, general.type=model, general.name,
  general.size_label, general.file_type=0 (ALL_F32),
  general.quantization_version=2; {arch}.block_count, context_length,
  embedding_length, feed_forward_length, attention.head_count,
  attention.head_count_kv, rope.freq_base, attention.layer_norm_rms_epsilon;
  attention.key_length/value_length whenever the HF config has `head_dim`
  (transformers 5 writes `head_dim` into every llama/qwen3/gemma3 config.json,
  so llama gets them too; Qwen2Config has no head_dim so qwen2 does not).
- llama: {arch}.vocab_size, rope.dimension_count (= head_dim); q_proj and
  k_proj rows permuted with `LlamaModel.permute` (interleaved rope pairs ->
  llama.cpp's NORM rope); the untied lm_head is `output.weight`.
- qwen2: q/k/v biases as blk.N.attn_{q,k,v}.bias; no permutation (NEOX rope).
- qwen3: blk.N.attn_q_norm / attn_k_norm (per-head RMSNorm weights, length
  head_dim); no permutation (NEOX rope).
- gemma3: rope.freq_base (global layers), rope.freq_base_swa (local layers,
  from rope_local_base_freq), attention.sliding_window; EVERY tensor whose HF
  name ends in "norm.weight" is stored as w + 1 (input_layernorm ->
  attn_norm, post_attention_layernorm -> post_attention_norm,
  pre_feedforward_layernorm -> ffn_norm, post_feedforward_layernorm ->
  post_ffw_norm, q_norm -> attn_q_norm, k_norm -> attn_k_norm, model.norm ->
  output_norm); no permutation (NEOX rope). No sliding_window_pattern key:
  llama.cpp assumes 6 (layer il is sliding iff il % 6 < 5), as transformers'
  Gemma3TextConfig default does. llama.cpp's query scale for gemma3 (other
  than the 62-layer 27B) is 1/sqrt(head_dim), so the tiny model uses
  query_pre_attn_scalar = head_dim.
- tokenizer: tokenizer.ggml.model=gpt2, tokenizer.ggml.pre=gpt-2 (llama.cpp's
  name for the GPT-2 regex; "gpt2" is rejected), tokens (ids 0-255: the 256
  bytes in GPT-2's byte-to-unicode alphabet, id = byte value; 256-295: 40
  merges learned from a fixed English text; 296 <|bos|>, 297 <|endoftext|>
  (eos), 298 <|pad|>, 299 <|extra|>, all CONTROL), token_type, merges,
  bos/eos/padding token ids, add_bos_token=true.

Sizes: width 32, feed-forward 64, four query heads (of width 8, or 12 for
qwen3 and gemma3, wider than width / heads) and F32 tensors make the files
155-335 KB (the 7-layer gemma3 is the largest); the shapes are the
arch_specs() constants below. The seed was chosen so that no greedy step is
a near tie (smallest top-1/top-2 logit gap 0.068 along the continuations,
0.0126 over the cases' rows).

JSON schema of decoder_tiny_<arch>.json:

    {
      "arch": "llama" | "qwen2" | "qwen3" | "gemma3",   # general.architecture
      "hf_class": "LlamaForCausalLM", ...,
      "gguf_file": "decoder_tiny_<arch>.gguf",
      "seed": int,
      "config": {vocab_size, hidden_size, intermediate_size,
                 num_hidden_layers, num_attention_heads, num_key_value_heads,
                 head_dim, rope_theta, rms_norm_eps, max_position_embeddings,
                 tie_word_embeddings, attention_bias, hidden_act,
                 bos_token_id, eos_token_id, pad_token_id,
                 # gemma3 only:
                 rope_local_base_freq, sliding_window, layer_types (list of
                 "sliding_attention"/"full_attention" per layer),
                 query_pre_attn_scalar, final_logit_softcapping},
      "weights": "how the random weights were drawn",
      "versions": {"torch", "transformers", "gguf", "numpy", "llama_cpp_python"},
      "checks": {
        "transformers_gguf_roundtrip_max_abs_diff": float | null,
        "transformers_gguf_roundtrip_note": str,
        "llama_cpp_max_abs_diff": float | null,   # over all cases and greedy seq
        "llama_cpp_note": str,
        "converter_crosscheck": str,               # result of --llama-cpp-dir
        "min_top2_margin_cases": float,  # smallest top-1 minus top-2 logit over all case rows
        "sliding_window_check": str      # gemma3 only: the window changes the logits
      },
      "logits_format": "...",
      "cases": [ {"ids": [int], "logits": [[float] * vocab_size] * len(ids)} ],
      "greedy": {"prompt_ids": [int], "new_tokens": 16,
                 "method": "...", "ids": [int] * 16,
                 "min_top2_margin": float}   # smallest top-1/top-2 gap over the 16 steps
    }

Logits are transformers' float32 logits (eager attention, no KV cache, one
forward over the whole sequence), each written as the shortest decimal that
reads back as the same f32 (parse as f64 and round to f32 to get the exact
bits). `cases[k].logits[p]` is the row of logits at position p (predicting
token p+1). The greedy continuation is a manual argmax loop (a full forward
over prompt + generated tokens each step, ties -> lowest id); the script also
checks transformers' `generate(do_sample=False)` (with KV cache) gives the
same ids.

Measured with torch 2.15.0 (CPU), transformers 5.25.0, gguf 0.19.0,
llama-cpp-python 0.3.36 (see the script output; the values are also stored in
each JSON's "checks"):

    arch    gguf bytes  transformers GGUF roundtrip   llama.cpp (F32 K/V)  llama.cpp (F16 K/V)
    llama       195872  0                             5.96e-06             6.31e-03
    qwen2       158464  0                             5.90e-06             1.36e-02
    qwen3       176480  0 (head_dim override)         4.29e-06             5.44e-03
    gemma3      333856  0 (query_pre_attn_scalar      4.15e-03             6.07e-03
                           override)

    (transformers reading the GGUF back gives bit-identical logits; the
    overrides are explained in each JSON's transformers_gguf_roundtrip_note)

    (max abs logit differences against the original transformers model; logits
    have a standard deviation of about 1.7 per row). gemma3's larger llama.cpp
    difference comes from ggml-cpu's GELU, which rounds its input to f16 and
    reads an f16 table (GGML_GELU_FP16); emulating that in transformers brings
    it to about 1e-5..6e-4. llama.cpp's argmax agrees with transformers at every
    position for every arch, and the converter cross-check finds all four files
    identical to convert_hf_to_gguf.py's output (llama-cpp-python 0.3.36's
    vendored llama.cpp) apart from general.name.
"""

import argparse
import copy
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import regex
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "burn-rlora-llm", "tests", "fixtures")

SEED = 20250705
N_MERGES = 40
GREEDY_NEW = 16

# token ids of the control tokens (after the 256 bytes and N_MERGES merges)
# (eos is "<|endoftext|>" because transformers' Qwen2Tokenizer, which the
# converter's AutoTokenizer picks for qwen2/qwen3 directories, adds that token
# when it is missing)
BOS_TEXT, EOS_TEXT, PAD_TEXT, EXTRA_TEXT = "<|bos|>", "<|endoftext|>", "<|pad|>", "<|extra|>"

# token-id inputs (shared by every arch); the longest (20) exceeds gemma3's
# sliding window (8).
CASES = [
    [296, 72, 101, 108, 108],  # starts with bos
    [296, 84, 104, 101, 32, 262, 270, 258, 99, 97, 116, 46],
    [296, 33, 5, 250, 17, 260, 287, 101, 101, 101, 32, 10, 10, 64, 0, 199, 120, 281, 295, 12],
]
GREEDY_PROMPT = CASES[1]

BPE_TRAINING_TEXT = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox "
    "runs and the cat sits on the mat. In the beginning there was the word, "
    "and then there were many more words, then sentences and then stories. "
    "def main():\n    return the_answer + 42\n"
)

GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    """GPT-2's byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_vocab():
    """256 byte tokens (id = byte value), N_MERGES BPE merges learned from a
    fixed text, then 4 control tokens. Returns (tokens, merges)."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    words = {}
    for w in regex.findall(GPT2_PAT, BPE_TRAINING_TEXT):
        key = tuple(b2u[b] for b in w.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    merges = []
    known = set(tokens)
    while len(merges) < N_MERGES:
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        best = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        pair = None
        for p, _ in best:
            if p[0] + p[1] not in known:
                pair = p
                break
        assert pair is not None
        merges.append(pair)
        new = pair[0] + pair[1]
        tokens.append(new)
        known.add(new)
        nw = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == pair:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + c
        words = nw
    tokens += [BOS_TEXT, EOS_TEXT, PAD_TEXT, EXTRA_TEXT]
    return tokens, [f"{a} {b}" for a, b in merges]


TOKENS, MERGES = build_vocab()
VOCAB = len(TOKENS)  # 300
BOS_ID, EOS_ID, PAD_ID = TOKENS.index(BOS_TEXT), TOKENS.index(EOS_TEXT), TOKENS.index(PAD_TEXT)
assert (VOCAB, BOS_ID) == (300, 296)


def arch_specs():
    from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

    common = dict(vocab_size=VOCAB, hidden_size=32, max_position_embeddings=256,
                  bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    return {
        "llama": (LlamaForCausalLM, LlamaConfig(
            **common, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000.0})),
        "qwen2": (Qwen2ForCausalLM, Qwen2Config(
            **common, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, rms_norm_eps=1e-6, tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
        "qwen3": (Qwen3ForCausalLM, Qwen3Config(
            **common, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, head_dim=12, rms_norm_eps=1e-6, tie_word_embeddings=True,
            attention_bias=False,
            rope_parameters={"rope_type": "default", "rope_theta": 20000.0})),
        "gemma3": (Gemma3ForCausalLM, Gemma3TextConfig(
            **common, intermediate_size=64, num_hidden_layers=7, num_attention_heads=4,
            num_key_value_heads=1, head_dim=12, rms_norm_eps=1e-6, tie_word_embeddings=True,
            query_pre_attn_scalar=12, sliding_window=8, sliding_window_pattern=6,
            final_logit_softcapping=None, attn_logit_softcapping=None,
            hidden_activation="gelu_pytorch_tanh",
            rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 100000.0},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})),
    }


WEIGHTS_NOTE = (
    "torch.Generator seeded with SEED + arch index; every parameter drawn in "
    "named_parameters order: embeddings and lm_head N(0, 0.3^2); linear weights "
    "N(0, (1.2/sqrt(fan_in))^2); biases N(0, 0.1^2); RMSNorm weights 1 + N(0, 0.1^2) "
    "(Gemma3: N(0, 0.1^2), since Gemma3RMSNorm multiplies by 1 + w)"
)


def randomize(model, arch, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(0.1 * r if arch == "gemma3" else 1.0 + 0.1 * r)
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.3 * r)
            elif name.endswith(".bias"):
                p.copy_(0.1 * r)
            else:
                p.copy_(r * (1.2 / math.sqrt(p.shape[1])))


# --------------------------------------------------------------------------- GGUF writing


def hf_to_gguf_name(name):
    """HF tensor name -> GGUF tensor name (gguf-py's TensorNameMap for these archs)."""
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    parts = name.split(".")
    assert parts[:2] == ["model", "layers"], name
    bid, rest = parts[2], ".".join(parts[3:])
    table = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
        "post_attention_layernorm": None,  # arch-dependent, below
        "pre_feedforward_layernorm": "ffn_norm",
        "post_feedforward_layernorm": "post_ffw_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    stem, suffix = rest.rsplit(".", 1)
    return f"blk.{bid}.{table[stem]}.{suffix}" if table[stem] else (bid, stem, suffix)


def llama_permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(model, arch, cfg):
    """[(gguf name, np.float32 array)] exactly as convert_hf_to_gguf.py would write them."""
    out = []
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # tied: not in the safetensors file, so not in the GGUF
        data = t.detach().clone().float()
        new = hf_to_gguf_name(name)
        if isinstance(new, tuple):
            bid, stem, suffix = new
            # gemma2/3: post_attention_layernorm -> post_attention_norm; others -> ffn_norm
            new = f"blk.{bid}.{'post_attention_norm' if arch == 'gemma3' else 'ffn_norm'}.{suffix}"
        if arch == "llama":
            if name.endswith(("q_proj.weight", "q_proj.bias")):
                data = llama_permute(data, cfg.num_attention_heads, cfg.num_attention_heads)
            if name.endswith(("k_proj.weight", "k_proj.bias")):
                data = llama_permute(data, cfg.num_attention_heads, cfg.num_key_value_heads)
        if arch == "gemma3" and name.endswith("norm.weight"):
            data = data + 1.0
        out.append((new, data.numpy().astype(np.float32)))
    return out


def write_gguf(path, model, arch, cfg, name):
    import gguf

    tensors = gguf_tensors(model, arch, cfg)
    w = gguf.GGUFWriter(path, arch)
    # prepare_metadata: general.*
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    n_params = sum(int(np.prod(a.shape)) for _, a in tensors)
    w.add_size_label(gguf.size_label(n_params, 0, 0, 0))
    # TextModel.set_gguf_parameters
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    if arch == "gemma3":
        w.add_rope_freq_base(cfg.rope_parameters["full_attention"]["rope_theta"])
        w.add_rope_freq_base_swa(cfg.rope_parameters["sliding_attention"]["rope_theta"])
    else:
        w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    has_head_dim = arch in ("llama", "qwen3", "gemma3")  # keys present in the saved config.json
    if has_head_dim:
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if arch == "llama":  # LlamaModel.set_gguf_parameters
        w.add_vocab_size(cfg.vocab_size)
        w.add_rope_dimension_count(cfg.head_dim)
    if arch == "gemma3":  # Gemma3Model.set_gguf_parameters (re-adds some of the above)
        w.add_sliding_window(cfg.sliding_window)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    # _set_vocab_gpt2
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(TOKENS)
    w.add_token_types([gguf.TokenType.NORMAL] * (VOCAB - 4) + [gguf.TokenType.CONTROL] * 4)
    w.add_token_merges(MERGES)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_pad_token_id(PAD_ID)
    w.add_add_bos_token(True)
    for n, a in tensors:
        w.add_tensor(n, a, raw_dtype=gguf.GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


# --------------------------------------------------------------------------- HF dir + real converter


def save_hf_dir(model, directory):
    """The model as a Hugging Face directory with a matching tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model.save_pretrained(directory, safe_serialization=True)
    vocab = {t: i for i, t in enumerate(TOKENS)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in MERGES]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([BOS_TEXT, EOS_TEXT, PAD_TEXT, EXTRA_TEXT])
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=BOS_TEXT, eos_token=EOS_TEXT,
                                   pad_token=PAD_TEXT)
    fast.save_pretrained(directory)
    # what SpecialVocab reads for tokenizer.ggml.add_bos_token
    cfg_path = os.path.join(directory, "tokenizer_config.json")
    with open(cfg_path) as f:
        tok_cfg = json.load(f)
    tok_cfg["add_bos_token"] = True
    with open(cfg_path, "w") as f:
        json.dump(tok_cfg, f, indent=2)


CONVERTER_WRAPPER = r"""
import sys, runpy
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[1] + "/gguf-py")
import conversion.base as base
# the pre-tokenizer hash of a home-made tokenizer is unknown to the converter
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv = [sys.argv[1] + "/convert_hf_to_gguf.py"] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def gguf_contents(path):
    from gguf import GGUFReader

    r = GGUFReader(path)
    kv = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        v = f.contents()
        kv[k] = v
    tensors = {t.name: (t.tensor_type.name, np.array(t.data).copy()) for t in r.tensors}
    return kv, tensors


def crosscheck_converter(llama_cpp_dir, model, arch, our_path):
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = os.path.join(tmp, f"decoder_tiny_{arch}")
        save_hf_dir(model, hf_dir)
        wrapper = os.path.join(tmp, "wrap.py")
        with open(wrapper, "w") as f:
            f.write(CONVERTER_WRAPPER)
        theirs = os.path.join(tmp, "converted.gguf")
        res = subprocess.run([sys.executable, wrapper, os.path.abspath(llama_cpp_dir), hf_dir,
                              "--outtype", "f32", "--outfile", theirs],
                             capture_output=True, text=True)
        if res.returncode != 0:
            return f"converter failed: {res.stderr[-2000:]}"
        kv_a, t_a = gguf_contents(our_path)
        kv_b, t_b = gguf_contents(theirs)
    problems = []
    for k in sorted(set(kv_a) | set(kv_b)):
        if k == "general.name":
            continue
        if k not in kv_a:
            problems.append(f"key only in converter output: {k}={kv_b[k]!r}"[:200])
        elif k not in kv_b:
            problems.append(f"key only in ours: {k}={kv_a[k]!r}"[:200])
        elif kv_a[k] != kv_b[k]:
            problems.append(f"{k}: ours {kv_a[k]!r} converter {kv_b[k]!r}"[:300])
    if set(t_a) != set(t_b):
        problems.append(f"tensor names differ: {sorted(set(t_a) ^ set(t_b))}")
    for n in sorted(set(t_a) & set(t_b)):
        (ta, a), (tb, b) = t_a[n], t_b[n]
        if ta != tb or a.shape != b.shape or a.tobytes() != b.tobytes():
            problems.append(f"tensor {n} differs ({ta} {a.shape} vs {tb} {b.shape})")
    if problems:
        return "DIFFERENT from convert_hf_to_gguf.py: " + "; ".join(problems)
    return ("identical to convert_hf_to_gguf.py --outtype f32 (all metadata except general.name, "
            "all tensors bit for bit; tokenizer.ggml.pre forced to 'gpt-2' in the converter)")


# --------------------------------------------------------------------------- reference values


def f32_list(row):
    return [float(str(v)) for v in np.asarray(row, dtype=np.float32)]


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def greedy(model, ids, n):
    seq = list(ids)
    for _ in range(n):
        seq.append(int(np.argmax(logits_of(model, seq)[-1])))
    return seq[len(ids):]


def llama_cpp_logits(path, seqs, f32_cache=True):
    import llama_cpp

    kw = dict(n_ctx=64, n_batch=64, logits_all=True, n_threads=2, verbose=False, flash_attn=False)
    if f32_cache:
        kw.update(type_k=0, type_v=0)  # GGML_TYPE_F32 K/V cache (the default is F16)
    llm = llama_cpp.Llama(model_path=path, **kw)
    out = []
    for ids in seqs:
        llm.reset()
        llm.eval(ids)
        out.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
    del llm
    return out


class GeluF16Table(torch.nn.Module):
    """ggml-cpu's f32 GELU with GGML_GELU_FP16: f16(gelu_tanh(f16(x)))."""

    def forward(self, x):
        y = torch.nn.functional.gelu(x.half().float(), approximate="tanh")
        return y.half().float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp-dir", help="llama.cpp source tree for the converter cross-check")
    ap.add_argument("--only", nargs="*", help="subset of archs")
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    try:
        import llama_cpp  # noqa: F401
        have_llama_cpp = True
        llama_cpp_version = importlib.metadata.version("llama_cpp_python")
    except ImportError:
        have_llama_cpp, llama_cpp_version = False, None
    versions = {
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
        "gguf": importlib.metadata.version("gguf"),
        "numpy": np.__version__,
        "llama_cpp_python": llama_cpp_version,
        "python": sys.version.split()[0],
    }
    print("versions:", versions)
    summary = []
    for idx, (arch, (cls, cfg)) in enumerate(arch_specs().items()):
        if args.only and arch not in args.only:
            continue
        cfg._attn_implementation = "eager"
        torch.manual_seed(SEED + idx)
        model = cls(cfg).float().eval()
        randomize(model, arch, SEED + idx)
        if cfg.tie_word_embeddings:
            assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

        fname = f"decoder_tiny_{arch}.gguf"
        path = os.path.join(FIXTURES, fname)
        write_gguf(path, model, arch, cfg, f"decoder_tiny_{arch}")

        # reference values
        cases = [{"ids": ids, "logits": logits_of(model, ids)} for ids in CASES]
        g_ids = greedy(model, GREEDY_PROMPT, GREEDY_NEW)
        with torch.no_grad():
            gen = model.generate(torch.tensor([GREEDY_PROMPT]), max_new_tokens=GREEDY_NEW,
                                 min_new_tokens=GREEDY_NEW, do_sample=False,
                                 pad_token_id=PAD_ID)[0, len(GREEDY_PROMPT):].tolist()
        gen_note = "same" if gen == g_ids else f"DIFFERENT: {gen}"
        full = logits_of(model, GREEDY_PROMPT + g_ids)[len(GREEDY_PROMPT) - 1: -1]
        top2 = np.sort(full, axis=-1)[:, -2:]
        margin = float((top2[:, 1] - top2[:, 0]).min())
        case_margin = min(float(np.diff(np.sort(c["logits"], axis=-1)[:, -2:], axis=-1).min()) for c in cases)
        window_note = None
        if arch == "gemma3":
            wide = copy.deepcopy(model)
            wide.config.sliding_window = 4096
            for layer in wide.model.layers:
                layer.self_attn.sliding_window = None if layer.self_attn.sliding_window is None else 4096
            c = cases[2]
            d = np.abs(logits_of(wide, c["ids"]) - c["logits"]).max(axis=-1)
            window_note = (f"with the sliding window widened to 4096 the logits of the 20-token case "
                           f"change by at most {d[:cfg.sliding_window].max():.3g} at positions "
                           f"0..{cfg.sliding_window - 1} and by up to {d[cfg.sliding_window:].max():.3g} "
                           f"after (so the fixture does test the window)")
            del wide
        spread = [float(c["logits"].std(axis=-1).mean()) for c in cases]

        # (a) transformers reads the GGUF back
        overrides = {}
        rt_note = "AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=float32)"
        if arch == "qwen3":
            overrides["head_dim"] = cfg.head_dim
            rt_note += (f"; needs head_dim={cfg.head_dim} passed explicitly: transformers' GGUF "
                        "loader does not map qwen3.attention.key_length and Qwen3Config defaults "
                        "head_dim to 128")
        if arch == "gemma3":
            overrides["query_pre_attn_scalar"] = cfg.query_pre_attn_scalar
            rt_note += (f"; needs query_pre_attn_scalar={cfg.query_pre_attn_scalar} passed "
                        "explicitly: the GGUF has no such key, transformers defaults it to 256 "
                        "(llama.cpp uses head_dim); rope.freq_base_swa is not read either "
                        "(transformers' default 10000 happens to match)")
        rt = AutoModelForCausalLM.from_pretrained(FIXTURES, gguf_file=fname, dtype=torch.float32,
                                                  attn_implementation="eager", **overrides).eval()
        rt_diff = max(float(np.abs(logits_of(rt, c["ids"]) - c["logits"]).max()) for c in cases)
        # and without the overrides, to report what a plain load gives
        if overrides:
            try:
                plain = AutoModelForCausalLM.from_pretrained(FIXTURES, gguf_file=fname,
                                                             dtype=torch.float32).eval()
                pd = max(float(np.abs(logits_of(plain, c["ids"]) - c["logits"]).max()) for c in cases)
                rt_note += f"; without the override the max abs diff is {pd:.3g}"
                del plain
            except Exception as e:  # noqa: BLE001
                rt_note += f"; without the override it fails: {type(e).__name__}: {str(e)[:200]}"
        del rt

        # (b) llama.cpp
        if have_llama_cpp:
            seqs = [c["ids"] for c in cases] + [GREEDY_PROMPT + g_ids]
            ref = [c["logits"] for c in cases] + [logits_of(model, GREEDY_PROMPT + g_ids)]
            got = llama_cpp_logits(path, seqs)
            lc_diffs = [float(np.abs(a - b).max()) for a, b in zip(got, ref)]
            lc_diff = max(lc_diffs)
            lc_argmax = all((a.argmax(-1) == b.argmax(-1)).all() for a, b in zip(got, ref))
            dflt = max(float(np.abs(a - b).max())
                       for a, b in zip(llama_cpp_logits(path, seqs, f32_cache=False), ref))
            lc_note = (f"llama_cpp.Llama(n_ctx=64, logits_all=True, n_threads=2, type_k=type_v=F32, "
                       f"flash_attn=False).eval(ids) per sequence (the 3 cases, then prompt + greedy "
                       f"continuation); per-sequence max abs diffs {[f'{d:.3g}' for d in lc_diffs]}; "
                       f"argmax {'agrees' if lc_argmax else 'DISAGREES'} at every position; with "
                       f"llama.cpp's default F16 K/V cache: {dflt:.3g}")
            if arch == "gemma3":
                emu = copy.deepcopy(model)
                for layer in emu.model.layers:
                    layer.mlp.act_fn = GeluF16Table()
                e = [float(np.abs(a - logits_of(emu, s)).max()) for a, s in zip(got, seqs)]
                lc_note += (f"; ggml's CPU GELU rounds its input to f16 and looks the result up "
                            f"in an f16 table (GGML_GELU_FP16): emulating that in transformers "
                            f"brings the per-sequence max abs diffs to {[f'{d:.3g}' for d in e]}")
                del emu
        else:
            lc_diff, lc_note = None, "llama-cpp-python not installed when this was written"

        conv = (crosscheck_converter(args.llama_cpp_dir, model, arch, path) if args.llama_cpp_dir
                else "not run (no --llama-cpp-dir)")

        cfgd = {
            "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads,
            "head_dim": getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
            "rope_theta": (cfg.rope_parameters["full_attention"] if arch == "gemma3"
                           else cfg.rope_parameters)["rope_theta"],
            "rms_norm_eps": cfg.rms_norm_eps, "max_position_embeddings": cfg.max_position_embeddings,
            "tie_word_embeddings": cfg.tie_word_embeddings,
            "attention_bias": arch == "qwen2" or bool(getattr(cfg, "attention_bias", False)),
            "hidden_act": getattr(cfg, "hidden_act", None) or getattr(cfg, "hidden_activation", None),
            "bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID,
        }
        if arch == "gemma3":
            cfgd.update({
                "rope_local_base_freq": cfg.rope_parameters["sliding_attention"]["rope_theta"],
                "sliding_window": cfg.sliding_window, "layer_types": list(cfg.layer_types),
                "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
                "final_logit_softcapping": cfg.final_logit_softcapping,
            })
        doc = {
            "arch": arch,
            "hf_class": cls.__name__,
            "gguf_file": fname,
            "seed": SEED + idx,
            "config": cfgd,
            "weights": WEIGHTS_NOTE,
            "versions": versions,
            "checks": {
                "transformers_gguf_roundtrip_max_abs_diff": rt_diff,
                "transformers_gguf_roundtrip_note": rt_note,
                "llama_cpp_max_abs_diff": lc_diff,
                "llama_cpp_note": lc_note,
                "converter_crosscheck": conv,
                "min_top2_margin_cases": case_margin,
                **({"sliding_window_check": window_note} if window_note else {}),
            },
            "logits_format": ("transformers float32 logits, eager attention, one forward over the "
                              "whole sequence; logits[p] = row at position p; each value the "
                              "shortest decimal that reads back as the same f32"),
            "cases": [{"ids": c["ids"], "logits": [f32_list(r) for r in c["logits"]]} for c in cases],
            "greedy": {
                "prompt_ids": GREEDY_PROMPT,
                "new_tokens": GREEDY_NEW,
                "method": ("manual argmax loop: full forward (no KV cache) over prompt + generated "
                           "tokens each step, argmax of the last row (ties -> lowest id); "
                           f"transformers generate(do_sample=False) with KV cache gives the {gen_note} ids"),
                "ids": g_ids,
                "min_top2_margin": margin,
            },
        }
        jpath = os.path.join(FIXTURES, f"decoder_tiny_{arch}.json")
        with open(jpath, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
        line = (f"{arch:7s} gguf {os.path.getsize(path):7d} B json {os.path.getsize(jpath):7d} B | "
                f"logit std {min(spread):.2f}-{max(spread):.2f} | transformers roundtrip {rt_diff:.3g} | "
                f"llama.cpp {lc_diff if lc_diff is None else f'{lc_diff:.3g}'} | generate {gen_note} | "
                f"converter: {conv[:60]}")
        print(line)
        print("   ", rt_note)
        print(f"    smallest top-1/top-2 logit gap: greedy steps {margin:.3g}, cases {case_margin:.3g}")
        if window_note:
            print("   ", window_note)
        print("   ", lc_note)
        if not conv.startswith(("identical", "not run")):
            print("   ", conv)
        summary.append(line)
    print("\n".join(summary))


if __name__ == "__main__":
    main()
