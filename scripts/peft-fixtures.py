#!/usr/bin/env python3
"""Standard PEFT LoRA adapters on the tiny decoders, with PEFT's logits.

For the tiny random Llama and Qwen2 models of burn-rlora-llm
(`tests/fixtures/decoder_tiny_{llama,qwen2}.gguf`, made by
`scripts/decoder-tiny-fixtures.py`), this builds LoRA adapters with Hugging
Face PEFT itself, gives every LoRA matrix (A and B) seeded random values (PEFT
starts B at zero, which would make every adapter a no-op), saves each with
`save_pretrained` exactly as PEFT writes it, reloads it with
`PeftModel.from_pretrained` on a freshly loaded base, and records the reloaded
model's logits:

    burn-rlora-llm/tests/fixtures/peft_<name>/adapter_config.json
    burn-rlora-llm/tests/fixtures/peft_<name>/adapter_model.safetensors
    burn-rlora-llm/tests/fixtures/peft_llama_mlp_bin/   (llama_mlp as adapter_model.bin)
    burn-rlora-llm/tests/fixtures/peft_reference.json

The adapters:

- llama_mlp: r=4, lora_alpha=8 on gate_proj/up_proj/down_proj (scaling alpha/r);
  also saved with safe_serialization=False (a torch.save adapter_model.bin,
  which PEFT loads to the same logits).
- llama_all_rslora: r=8, lora_alpha=16, use_rslora=True on all 7 projections
  (scaling alpha/sqrt(r)).
- llama_patterns: r=4, lora_alpha=8 on all 7 projections, with a rank_pattern
  and an alpha_pattern whose keys are a suffix, a longer suffix (listed after
  a shorter one that also matches: PEFT takes the first match), a regex and a
  `^`-anchored full path; layers_to_transform=[0, 2] with layers_pattern
  "layers" (so block 1 has no LoRA at all).
- qwen2_regex: r=4, lora_alpha=8, target_modules as one regex string on
  q/k/v (which have biases in Qwen2) and down_proj, lora_dropout=0.1.
- qwen2_fan_in_fan_out: like qwen2_regex on the attention projections, asked
  for with fan_in_fan_out=True. PEFT warns that the targets are nn.Linear and
  sets fan_in_fan_out to False before saving; the script then writes `true`
  back into the saved adapter_config.json (as an adapter trained for a GPT-2
  style Conv1D model, or edited by hand, would carry it), reloads that file
  with PEFT (which warns and resets it again) and records those logits: the
  flag describes how the *base* layer stores its weight, never the LoRA
  matrices (always lora_A [r, in] and lora_B [out, r]).

Run (the venv of decoder-tiny-fixtures.py, plus PEFT):

    /work/refvenv/bin/pip install peft==0.22.0
    /work/refvenv/bin/python scripts/peft-fixtures.py

The JSON records, per adapter: the LoRA config given to PEFT, the per-module
rank, alpha and scaling PEFT used (read back from the reloaded model's LoRA
layers), the largest logit change the adapter makes over the base model (to
show that the comparison tests something), the largest difference between
the in-memory PEFT model and the reloaded one (0: save/load is exact), and
the reloaded model's float32 logits for the first two token-id inputs of
decoder_tiny_<arch>.json, each value the shortest decimal that reads back as
the same f32.
"""

import importlib.metadata
import json
import os
import platform
import shutil
import sys
import warnings

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Relative to ROOT (the script changes into it), so that the base_model_name_or_path
# PEFT writes into each adapter_config.json is this relative path, not the local one.
FIXTURES = os.path.join("burn-rlora-llm", "tests", "fixtures")
SEED = 20251207
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def adapters():
    """(name, arch, LoraConfig kwargs, edit of the saved config or None)."""
    return [
        ("llama_mlp", "llama",
         dict(r=4, lora_alpha=8, target_modules=["gate_proj", "up_proj", "down_proj"],
              lora_dropout=0.05), None),
        ("llama_all_rslora", "llama",
         dict(r=8, lora_alpha=16, use_rslora=True, target_modules=PROJECTIONS), None),
        ("llama_patterns", "llama",
         dict(r=4, lora_alpha=8, target_modules=PROJECTIONS,
              rank_pattern={
                  "q_proj": 2,
                  "layers.2.self_attn.q_proj": 6,  # never used: "q_proj" matches first
                  "layers.2.self_attn.v_proj": 6,
                  r"model\.layers\.[01]\.mlp\.(up|down)_proj": 3,
              },
              alpha_pattern={
                  "v_proj": 3,
                  "^model.layers.0.self_attn.o_proj": 5,
                  "down_proj": 12,
              },
              layers_to_transform=[0, 2], layers_pattern="layers"), None),
        ("qwen2_regex", "qwen2",
         dict(r=4, lora_alpha=8, target_modules=r".*\.(q_proj|k_proj|v_proj|down_proj)",
              lora_dropout=0.1), None),
        ("qwen2_fan_in_fan_out", "qwen2",
         dict(r=2, lora_alpha=6, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
              fan_in_fan_out=True), {"fan_in_fan_out": True}),
    ]


def f32_list(row):
    return [float(str(v)) for v in np.asarray(row, dtype=np.float32)]


def load_base(arch):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        FIXTURES, gguf_file=f"decoder_tiny_{arch}.gguf", dtype=torch.float32,
        attn_implementation="eager").eval()


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def randomize_lora(model, seed):
    """Seeded N(0, 1/in) for every lora_A and N(0, 0.25^2/r) for every lora_B, in module order."""
    gen = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if not hasattr(module, "lora_A") or "default" not in module.lora_A:
                continue
            a = module.lora_A["default"].weight
            b = module.lora_B["default"].weight
            a.copy_(torch.randn(a.shape, generator=gen) / np.sqrt(a.shape[1]))
            b.copy_(torch.randn(b.shape, generator=gen) * 0.25 / np.sqrt(b.shape[1]))
            n += 1
    return n


def lora_layers(model):
    """Per LoRA module (PEFT's module name, without base_model.model.): r, alpha, scaling."""
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            key = name.removeprefix("base_model.model.")
            out[key] = {
                "r": int(module.r["default"]),
                "lora_alpha": float(module.lora_alpha["default"]),
                "scaling": float(module.scaling["default"]),
                "in_features": int(module.in_features),
                "out_features": int(module.out_features),
            }
    return out


def main():
    # PEFT keeps target_modules as a Python set and saves it as a list in the
    # set's order, which depends on string hashing: fix it, so that reruns write
    # the same files.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors import safe_open

    os.chdir(ROOT)
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    versions = {
        "peft": importlib.metadata.version("peft"),
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
        "safetensors": importlib.metadata.version("safetensors"),
        "gguf": importlib.metadata.version("gguf"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    doc = {
        "script": "scripts/peft-fixtures.py",
        "versions": versions,
        "logits_format": ("PEFT float32 logits of the reloaded adapter "
                          "(PeftModel.from_pretrained on a fresh base, eval mode, eager attention), "
                          "one forward over the whole sequence; logits[p] = row at position p; "
                          "each value the shortest decimal that reads back as the same f32"),
        "lora_init": ("init_lora_weights=False, then every lora_A ~ N(0, 1/in) and every "
                      "lora_B ~ N(0, 0.0625/r), from torch.Generator seeded with SEED + adapter index"),
        "seed": SEED,
        "adapters": {},
    }
    for index, (name, arch, kwargs, edit) in enumerate(adapters()):
        cases = json.load(open(os.path.join(FIXTURES, f"decoder_tiny_{arch}.json")))["cases"][:2]
        base = load_base(arch)
        base_logits = [logits_of(base, c["ids"]) for c in cases]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            config = LoraConfig(init_lora_weights=False, bias="none", task_type="CAUSAL_LM", **kwargs)
            model = get_peft_model(base, config)
        create_warnings = sorted({str(w.message) for w in caught})
        n = randomize_lora(model, SEED + index)
        model.eval()
        live = [logits_of(model, c["ids"]) for c in cases]
        out_dir = os.path.join(FIXTURES, f"peft_{name}")
        shutil.rmtree(out_dir, ignore_errors=True)
        model.save_pretrained(out_dir)
        # PEFT also writes a model card (README.md, boilerplate): not part of the adapter.
        os.remove(os.path.join(out_dir, "README.md"))
        bin_dir = None
        if name == "llama_mlp":
            # The same adapter as a torch.save file (adapter_model.bin), as
            # save_pretrained(..., safe_serialization=False) and older PEFT write it.
            bin_dir = f"{out_dir}_bin"
            shutil.rmtree(bin_dir, ignore_errors=True)
            model.save_pretrained(bin_dir, safe_serialization=False)
            os.remove(os.path.join(bin_dir, "README.md"))
        cfg_path = os.path.join(out_dir, "adapter_config.json")
        saved = json.load(open(cfg_path))
        edited = None
        if edit:
            edited = {k: [saved.get(k), v] for k, v in edit.items()}
            saved.update(edit)
            with open(cfg_path, "w", encoding="utf-8") as f:
                f.write(json.dumps(saved, indent=2))
        del model, base

        # Reload as a user would: a fresh base, PeftModel.from_pretrained.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reloaded = PeftModel.from_pretrained(load_base(arch), out_dir).eval()
        load_warnings = sorted({str(w.message) for w in caught})
        got = [logits_of(reloaded, c["ids"]) for c in cases]
        layers = lora_layers(reloaded)
        with safe_open(os.path.join(out_dir, "adapter_model.safetensors"), "pt") as f:
            keys = sorted(f.keys())
        assert len(keys) == 2 * n == 2 * len(layers), (name, len(keys), n, len(layers))
        if bin_dir:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from_bin = PeftModel.from_pretrained(load_base(arch), bin_dir).eval()
            bin_diff = max(float(np.abs(logits_of(from_bin, c["ids"]) - g).max())
                           for c, g in zip(cases, got))
            assert bin_diff == 0.0, (name, bin_diff)
            del from_bin
        effect = max(float(np.abs(g - b).max()) for g, b in zip(got, base_logits))
        roundtrip = max(float(np.abs(g - l).max()) for g, l in zip(got, live))
        assert roundtrip == 0.0, (name, roundtrip)
        assert effect > 0.05, (name, effect)
        doc["adapters"][name] = {
            "arch": arch,
            "dir": f"peft_{name}",
            "bin_dir": os.path.basename(bin_dir) if bin_dir else None,
            "lora_config": {k: (sorted(v) if isinstance(v, (set, list)) and k != "layers_to_transform"
                                else v) for k, v in kwargs.items()},
            "saved_config_edit": edited,
            "warnings_on_create": create_warnings,
            "warnings_on_load": load_warnings,
            "tensor_keys": len(keys),
            "modules": layers,
            "max_abs_logit_change_over_base": effect,
            "max_abs_diff_reloaded_vs_in_memory": roundtrip,
            "cases": [{"ids": c["ids"], "logits": [f32_list(r) for r in g]}
                      for c, g in zip(cases, got)],
        }
        del reloaded
        print(f"{name:22s} {arch:6s} modules {len(layers):2d} keys {len(keys):2d} "
              f"change over base {effect:.3g} reload diff {roundtrip:.3g} "
              f"size {os.path.getsize(os.path.join(out_dir, 'adapter_model.safetensors'))} B",
              file=sys.stderr)
    path = os.path.join(FIXTURES, "peft_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {path} ({os.path.getsize(path)} B)", file=sys.stderr)


if __name__ == "__main__":
    main()
