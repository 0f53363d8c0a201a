#!/usr/bin/env python3
"""Write a small reference-layout adapter fixture for burn-rlora's tests.

Optional to run (needs torch; `cargo test` only reads the committed files).

A seeded PyTorch rendering of the reference R-LoRA layer (shared A, heads
lora_B{i}, router lora_route, scaling lora_alpha / r, softmax router) on two
modules of a tiny MLP, `model.layers.0.mlp.up_proj` (8 -> 12) and
`model.layers.0.mlp.down_proj` (12 -> 8). Like the reference, the random
heads are compensated by subtracting `s * mean_i(B_i A)` from the base weight
in place at init; that offset is not part of the adapter.

Writes under burn-rlora/tests/fixtures/reference/:
  base.json                 original base weights, PyTorch layout [out, in]
  init/adapter_model.bin    the adapter at initialization (+ adapter_config.json)
  trained/adapter_model.bin the adapter after "training" (perturbed), f32
  bf16/adapter_model.bin    the trained adapter stored in bfloat16
  expected.json             inputs and outputs:
      reload   original base + trained adapter (what the reference serves on reload)
      trained  modified base + trained adapter (the model the reference trained)
      reload_bf16  original base + the bf16 adapter

Usage: python scripts/make_reference_fixture.py
"""
import json
import os

import torch

torch.manual_seed(20250215)
R, ALPHA, N, TOKENS = 2, 4.0, 3, 5
PREFIX = "base_model.model."
MODULES = [("model.layers.0.mlp.up_proj", 8, 12), ("model.layers.0.mlp.down_proj", 12, 8)]
OUT = os.path.join(os.path.dirname(__file__), "..", "burn-rlora", "tests", "fixtures", "reference")


class RefLayer(torch.nn.Module):
    """The reference forward, written as a loop over heads like the reference code."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.base = torch.nn.Linear(d_in, d_out)
        self.lora_A = torch.nn.Linear(d_in, R, bias=False)
        for i in range(N):
            setattr(self, f"lora_B{i}", torch.nn.Linear(R, d_out, bias=False))
        self.lora_route = torch.nn.Linear(d_in, N, bias=False)
        self.scaling = ALPHA / R
        # R-LoRA: random heads; the reference subtracts the mean head's product in place.
        for i in range(N):
            torch.nn.init.normal_(getattr(self, f"lora_B{i}").weight, std=0.3)
        torch.nn.init.normal_(self.lora_A.weight, std=0.3)
        torch.nn.init.zeros_(self.lora_route.weight)
        with torch.no_grad():
            self.original_weight = self.base.weight.detach().clone()
            mean = sum(getattr(self, f"lora_B{i}").weight @ self.lora_A.weight for i in range(N)) / N
            self.base.weight -= self.scaling * mean

    def forward(self, x, weight=None):
        w = self.base.weight if weight is None else weight
        y = x @ w.T + self.base.bias
        gates = torch.softmax(self.lora_route(x).float(), dim=-1).to(x.dtype)
        z = self.lora_A(x)
        for i in range(N):
            y = y + self.scaling * gates[..., i : i + 1] * getattr(self, f"lora_B{i}")(z)
        return y

    def adapter(self, name, dtype=torch.float32):
        sd = {f"{PREFIX}{name}.lora_A.weight": self.lora_A.weight}
        for i in range(N):
            sd[f"{PREFIX}{name}.lora_B{i}.weight"] = getattr(self, f"lora_B{i}").weight
        sd[f"{PREFIX}{name}.lora_route.weight"] = self.lora_route.weight
        return {k: v.detach().to(dtype).clone() for k, v in sd.items()}


def save_adapter(sub, state):
    d = os.path.join(OUT, sub)
    os.makedirs(d, exist_ok=True)
    torch.save(state, os.path.join(d, "adapter_model.bin"))
    config = {
        "peft_type": "LORA",
        "r": R,
        "lora_alpha": ALPHA,
        "lora_dropout": 0.05,
        "lora_nums": N,
        "target_modules": ["up_proj", "down_proj"],
        "task_type": "CAUSAL_LM",
        "bias": "none",
    }
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)


def main():
    layers = [(name, RefLayer(i, o)) for name, i, o in MODULES]
    init, trained, bf16, base = {}, {}, {}, {}
    for name, layer in layers:
        init.update(layer.adapter(name))
        base[name] = {
            "weight": layer.original_weight.tolist(),
            "bias": layer.base.bias.detach().tolist(),
        }
    with torch.no_grad():  # "training": move A, the heads and the router
        for _, layer in layers:
            for p in [layer.lora_A.weight, layer.lora_route.weight] + [
                getattr(layer, f"lora_B{i}").weight for i in range(N)
            ]:
                p.add_(0.2 * torch.randn_like(p))
    for name, layer in layers:
        trained.update(layer.adapter(name))
        bf16.update(layer.adapter(name, torch.bfloat16))
    save_adapter("init", init)
    save_adapter("trained", trained)
    save_adapter("bf16", bf16)

    x = torch.randn(TOKENS, MODULES[0][1])
    with torch.no_grad():
        def run(weights=None):
            h = x
            for name, layer in layers:
                h = layer(h, None if weights is None else weights(name, layer))
            return h

        y_trained = run()
        y_reload = run(lambda name, layer: layer.original_weight)
        # The bf16 adapter on the original base, computed in f32.
        saved = {}
        for name, layer in layers:
            saved[name] = {k: v.clone() for k, v in layer.state_dict().items()}
            for k, v in layer.adapter(name, torch.bfloat16).items():
                attr = k[len(PREFIX) + len(name) + 1 : -len(".weight")]
                getattr(layer, attr).weight.copy_(v.float())
        y_bf16 = run(lambda name, layer: layer.original_weight)
    with open(os.path.join(OUT, "base.json"), "w") as f:
        json.dump(base, f)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(
            {
                "prefix": PREFIX + "model.layers.0.mlp.",
                "input": x.tolist(),
                "reload": y_reload.tolist(),
                "trained": y_trained.tolist(),
                "reload_bf16": y_bf16.tolist(),
            },
            f,
        )
    print("wrote", os.path.abspath(OUT))


if __name__ == "__main__":
    main()
