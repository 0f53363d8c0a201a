#!/usr/bin/env python3
"""Writes a random one-head LoRA adapter on the attention projections of a
GGUF decoder, in the reference layout this project reads
(`adapter_config.json` without `burn_rlora_format`, and
`adapter_model.safetensors` with `<module>.lora_A.weight` and
`<module>.lora_B0.weight` in PyTorch layout under PEFT's names).

The adapter is not trained: it exists to check, with llama.cpp, the query
and key rows the export reorders for the `llama` architecture, which the
trained adapters of `smollm-multitask` (on the feed-forward projections)
do not touch. Then:

    target/debug/rlora-llm export-gguf --adapter DIR --base MODEL.gguf --out DIR.gguf
    /work/refvenv/bin/python scripts/llamacpp-lora-check.py --adapter DIR --lora DIR.gguf ...

    /work/refvenv/bin/python scripts/llamacpp-random-adapter.py \\
        --base data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --out /tmp/attn-adapter
"""

import argparse
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

import gguf

PROJECTIONS = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--std", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    reader = gguf.GGUFReader(args.base)
    arch = reader.get_field("general.architecture").contents()
    blocks = int(reader.get_field(f"{arch}.block_count").contents())
    dims = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    rng = np.random.default_rng(args.seed)
    tensors = {}
    for n in range(blocks):
        for hf, short in PROJECTIONS.items():
            d_in, d_out = dims[f"blk.{n}.{short}.weight"]
            module = f"base_model.model.model.layers.{n}.self_attn.{hf}"
            a = rng.normal(0.0, args.std, (args.rank, d_in)).astype(np.float32)
            b = rng.normal(0.0, args.std, (d_out, args.rank)).astype(np.float32)
            tensors[f"{module}.lora_A.weight"] = a
            tensors[f"{module}.lora_B0.weight"] = b
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "r": args.rank,
        "lora_alpha": args.alpha,
        "lora_dropout": 0.0,
        "lora_nums": 1,
        "target_modules": list(PROJECTIONS),
        "peft_type": "LORA",
        "base_model_name_or_path": Path(args.base).name,
    }
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    print(f"wrote {out}: {len(tensors) // 2} modules, rank {args.rank}, alpha {args.alpha}, seed {args.seed}")


if __name__ == "__main__":
    main()
